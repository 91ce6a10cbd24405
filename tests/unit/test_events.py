"""The event bus: fan-out, topic filters, bounded buffers with lag counts."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio
import trio.testing

from swapd.events import EventBus


@dataclass
class Ev:
    n: int
    topic: str = "state"


@pytest.mark.trio
async def test_each_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus()
    a, b = bus.subscribe(), bus.subscribe()
    for n in range(3):
        bus.publish(Ev(n))
    assert [a.receive_nowait().n for _ in range(3)] == [0, 1, 2]
    assert [(await b.receive()).n for _ in range(3)] == [0, 1, 2]


def test_topic_filter_and_predicate() -> None:
    bus = EventBus()
    logs = bus.subscribe(topics=["log"])
    odd = bus.subscribe(predicate=lambda e: e.n % 2 == 1)
    bus.publish(Ev(1, "state"))
    bus.publish(Ev(2, "log"))
    assert logs.receive_nowait().n == 2
    assert odd.receive_nowait().n == 1
    with pytest.raises(trio.WouldBlock):
        odd.receive_nowait()


def test_full_buffer_drops_oldest_and_counts_lag_without_affecting_others() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxlen=2)
    fast = bus.subscribe(maxlen=100)
    for n in range(5):
        bus.publish(Ev(n))
    assert slow.take_lagged() == 3
    assert slow.take_lagged() == 0
    assert [slow.receive_nowait().n for _ in range(2)] == [3, 4]
    assert fast.pending == 5


def test_history_replay_and_recent() -> None:
    bus = EventBus(history=2)
    for n in range(3):
        bus.publish(Ev(n, "log" if n else "state"))
    late = bus.subscribe(history=True)
    assert [late.receive_nowait().n for _ in range(3)] == [0, 1, 2]
    assert [e.n for e in bus.recent(topics=["log"], limit=1)] == [2]


@pytest.mark.trio
async def test_close_ends_iteration_and_unsubscribes() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    got: list[int] = []

    async def consume() -> None:
        async for event in sub:
            got.append(event.n)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        bus.publish(Ev(7))
        await trio.testing.wait_all_tasks_blocked()
        sub.close()
    assert got == [7]
    assert bus.subscriber_count == 0
    bus.publish(Ev(8))  # publishing to nobody is fine


def test_history_is_kept_per_topic_so_logs_cannot_push_out_state() -> None:
    bus = EventBus(history=3)
    bus.publish(Ev(0, "state"))
    for n in range(1, 100):
        bus.publish(Ev(n, "log"))
    bus.publish(Ev(100, "swap"))
    assert [e.n for e in bus.recent()] == [0, 97, 98, 99, 100]
    assert [e.n for e in bus.recent(topics=["state", "swap"])] == [0, 100]
    late = bus.subscribe(topics=["state"], history=True)
    assert late.receive_nowait().n == 0


def test_subscriptions_coming_and_going_after_a_topic_was_published() -> None:
    """The bus remembers who wants each topic; a new or closed subscription counts at once."""
    bus = EventBus()
    early = bus.subscribe(topics=["state"])
    bus.publish(Ev(0, "state"))
    bus.publish(Ev(1, "log"))
    late = bus.subscribe(topics=["state", "log"])
    everything = bus.subscribe()
    odd = bus.subscribe(topics=["state"], predicate=lambda e: e.n % 2 == 1)
    bus.publish(Ev(2, "state"))
    bus.publish(Ev(3, "state"))
    early.close()
    bus.publish(Ev(4, "state"))
    bus.publish(Ev(5, "log"))

    def got(sub) -> list[int]:  # type: ignore[no-untyped-def]
        return [sub.receive_nowait().n for _ in range(sub.pending)]

    assert got(early) == [0, 2, 3]
    assert got(late) == [2, 3, 4, 5]
    assert got(everything) == [2, 3, 4, 5]
    assert got(odd) == [3]
