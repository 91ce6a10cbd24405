"""Where a request spent its time, phase by phase, for the log line of a slow one.

A request moves through `body` (its body arriving), `queue` or `load`
(waiting for the router's grant: `load` when its model was not ready on
arrival), `upstream connect`, `upstream head` (waiting for the model
server's response head) and `response` (relaying the body). When a request
is slow to get its answer started, or ends badly after a long time, the log
says which phase held it, so a rare wedge can be located.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

SLOW_SECONDS = 10.0


@dataclass(slots=True)
class Timeline:
    phase: str = "body"
    started: float = field(default_factory=time.perf_counter)
    since: float = 0.0
    spent: dict[str, float] = field(default_factory=dict)
    head_at: float = 0.0  # when the response head came back, 0 until then

    def __post_init__(self) -> None:
        self.since = self.started

    def enter(self, phase: str) -> None:
        now = time.perf_counter()
        self.spent[self.phase] = self.spent.get(self.phase, 0.0) + now - self.since
        self.phase, self.since = phase, now
        if phase == "response" and not self.head_at:
            self.head_at = now

    @staticmethod
    def now() -> float:
        """The clock the timeline keeps (`time.perf_counter`)."""
        return time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def slow(self, completed: bool) -> bool:
        """Slow to start its answer, or ended badly after a long time."""
        to_head = (self.head_at or time.perf_counter()) - self.started
        return to_head > SLOW_SECONDS or (not completed and self.elapsed() > SLOW_SECONDS)

    def summary(self) -> str:
        """`queue 0.01 s, upstream head 61.20 s (ended in upstream head)`."""
        spent = dict(self.spent)
        spent[self.phase] = spent.get(self.phase, 0.0) + time.perf_counter() - self.since
        parts = [f"{name} {seconds:.2f} s" for name, seconds in spent.items() if seconds >= 0.005]
        return f"{', '.join(parts) or 'nothing measurable'} (ended in {self.phase})"
