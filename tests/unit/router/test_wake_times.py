"""Wake times learnt from state changes: asleep -> starting -> ready, nothing else."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from swapd.events import EventBus
from swapd.process.events import StateChanged
from swapd.process.states import ProcessState as S
from swapd.router.budget_books import Books
from swapd.router.wake_times import WakeTimer, follow_wakes


def change(model: str, old: S, new: S, at: float) -> StateChanged:
    return StateChanged(model=model, old=old, new=new, time=at)


def test_a_wake_is_from_asleep_starting_to_ready() -> None:
    t = WakeTimer()
    assert t.on_state(change("a", S.READY, S.ASLEEP, 1.0)) is None
    assert t.on_state(change("a", S.ASLEEP, S.STARTING, 10.0)) is None
    assert t.on_state(change("b", S.STARTING, S.READY, 11.0)) is None, "b's load is no wake"
    assert t.on_state(change("a", S.STARTING, S.READY, 12.5)) == ("a", 2.5)
    assert t.on_state(change("a", S.STOPPED, S.STARTING, 20.0)) is None
    assert t.on_state(change("a", S.STARTING, S.READY, 21.0)) is None, "a cold start"


def test_a_failed_wake_is_not_counted() -> None:
    t = WakeTimer()
    t.on_state(change("a", S.ASLEEP, S.STARTING, 1.0))
    assert t.on_state(change("a", S.STARTING, S.FAILED, 2.0)) is None
    assert t.on_state(change("a", S.STARTING, S.READY, 3.0)) is None


@pytest.mark.trio
async def test_follow_wakes_records_into_the_books() -> None:
    bus, books = EventBus(), Books()
    async with trio.open_nursery() as nursery:
        await nursery.start(follow_wakes, bus, books)
        bus.publish(change("a", S.ASLEEP, S.STARTING, 1.0))
        bus.publish(change("a", S.STARTING, S.READY, 3.0))
        with trio.fail_after(5):
            while books.costs.median_wake("a") is None:
                await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert books.costs.median_wake("a") == 2.0
