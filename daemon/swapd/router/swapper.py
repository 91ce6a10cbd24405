"""The swap-planner interface shared by the group and matrix strategies.

A swapper answers one question, purely: to run `target` now, which of the
`running` models must stop? The scheduler asks it for every request and again
for every queued request on every drain, so `eviction_for` must not log, read
process state or keep per-call state. `on_swap_start` is called once per swap
that really starts, with the same arguments: the one place to log a decision.

Anyone can add a strategy by implementing this protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import msgspec


class Eviction(msgspec.Struct, frozen=True):
    """The models to stop (in `running` order), the set chosen and its cost."""

    evict: tuple[str, ...] = ()
    set: str | None = None
    cost: int = 0


@runtime_checkable
class Swapper(Protocol):
    def eviction_for(self, target: str, running: Sequence[str]) -> Eviction:
        """Pure: which of `running` (sorted, may contain `target`) must stop for `target`."""
        ...

    def on_swap_start(self, target: str, running: Sequence[str]) -> None:
        """A swap for `target` starts, decided against `running`: log it if wanted."""
        ...
