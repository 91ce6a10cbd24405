"""The swap-planner interface shared by the group, matrix and budget strategies.

A swapper answers one question, purely: to run `target` now, which of the
`running` models must stop? The scheduler asks it for every request and again
for every queued request on every drain, so `eviction_for` must not log, read
process state or keep per-call state. `on_swap_start` is called once per swap
that really starts, with the same arguments: the one place to log a decision.

`usage` is what the scheduler knows of the models' use: requests in flight
(a busy model is never stopped for another: when the eviction names one, the
request queues until it is idle), when each was last used, and which running
models are asleep. The group and
matrix strategies do not need it; the budget strategy prefers idle models and
evicts the least recently used first.

Anyone can add a strategy by implementing this protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import msgspec


class Eviction(msgspec.Struct, frozen=True):
    """The models to stop (in `running` order), the set chosen and its cost.

    `sleep`: the models to put to sleep instead of stopping them (in
    `running` order; only the budget strategy asks for it). A model is in
    `evict` or in `sleep`, never both.

    `detail`: the decision in words, for explain and the decision log (a
    budget decision says what is needed, what is free, what each evicted
    model frees and the cost). `refuse`: when not empty, the target can never
    run (it needs more than the machine has); the request fails at once with
    this message.
    """

    evict: tuple[str, ...] = ()
    set: str | None = None
    cost: int = 0
    detail: str = ""
    refuse: str = ""
    sleep: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    """What the scheduler knows of use: requests in flight per model, and when each
    model was last used (granted or done with a request), on the scheduling clock."""

    in_flight: Mapping[str, int] = field(default_factory=dict)
    last_used: Mapping[str, float] = field(default_factory=dict)
    asleep: frozenset[str] = frozenset()
    """The running models that are asleep."""

    def busy(self, models: Sequence[str]) -> frozenset[str]:
        return frozenset(m for m in models if self.in_flight.get(m, 0) > 0)

    def recency(self, models: Sequence[str]) -> tuple[str, ...]:
        """`models` that were ever used, least recently used first."""
        used = [m for m in dict.fromkeys(models) if m in self.last_used]
        used.sort(key=lambda m: (self.last_used[m], m))
        return tuple(used)


NO_USAGE = Usage()


@runtime_checkable
class Swapper(Protocol):
    def eviction_for(
        self, target: str, running: Sequence[str], usage: Usage = NO_USAGE
    ) -> Eviction:
        """Pure: which of `running` (sorted, may contain `target`) must stop for `target`."""
        ...

    def on_swap_start(self, target: str, running: Sequence[str], usage: Usage = NO_USAGE) -> None:
        """A swap for `target` starts, decided against `running`: log it if wanted."""
        ...
