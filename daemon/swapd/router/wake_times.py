"""How long each wake from sleep takes, learnt from the process state events.

A wake is the span from `asleep -> starting` to the `starting -> ready` that
follows it (a wake that fails ends elsewhere and is not counted). The books
keep the last few per model (and the run history keeps them across restarts);
their median is what the budget planner prices putting that model to sleep at
(`EvictCosts.wake_cost`).
"""

from __future__ import annotations

from typing import Protocol

import trio

from swapd.events import EventBus
from swapd.process.events import StateChanged
from swapd.process.states import ProcessState


class WakeSink(Protocol):
    """Who keeps the wake times: the books, or the run history that feeds them."""

    def record_wake(self, model: str, seconds: float) -> None: ...


class WakeTimer:
    """Pure: state changes in, (model, seconds) out once a wake completes."""

    def __init__(self) -> None:
        self._began: dict[str, float] = {}

    def on_state(self, event: StateChanged) -> tuple[str, float] | None:
        if event.old is ProcessState.ASLEEP and event.new is ProcessState.STARTING:
            self._began[event.model] = event.time
            return None
        began = self._began.pop(event.model, None)
        if began is None or event.new is not ProcessState.READY:
            return None
        return event.model, max(0.0, event.time - began)


async def follow_wakes(
    bus: EventBus, books: WakeSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Record every completed wake into `books` until cancelled."""
    timer = WakeTimer()
    with bus.subscribe(topics=("state",), maxlen=256) as sub:
        task_status.started()
        async for event in sub:
            if isinstance(event, StateChanged):
                wake = timer.on_state(event)
                if wake is not None:
                    books.record_wake(*wake)
