"""Disconnect watches: one task starts them when due, in order, for requests still running."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from swapd.http.disconnect import WATCH_AFTER, Watches


class Client:
    """A request's `receive` after its body: counts the calls, answers a disconnect on `gone`."""

    def __init__(self) -> None:
        self.listened_at: float | None = None
        self.gone = trio.Event()

    async def receive(self) -> dict[str, Any]:
        if self.listened_at is None:
            self.listened_at = trio.current_time()
        await self.gone.wait()
        return {"type": "http.disconnect"}


class Response:
    def __init__(self, finished: bool = False) -> None:
        self.finished = finished


class Handler:
    """A handler in its own nursery, as `ModelRoutes` runs one: it lasts `seconds`."""

    def __init__(self, watches: Watches, seconds: float, response: Response | None = None):
        self.watches = watches
        self.seconds = seconds
        self.client = Client()
        self.response = response or Response()
        self.cancelled = False
        self.ended_at: float | None = None

    async def run(self) -> None:
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            watch = self.watches.watch(self.client.receive, nursery, self.response)
            try:
                await trio.sleep(self.seconds)
            finally:
                watch.stop()
        self.ended_at = trio.current_time()
        # The watch ends its listener by cancelling the nursery too: cut short is what tells.
        self.cancelled = self.ended_at < started + self.seconds


@pytest.mark.trio
async def test_only_requests_still_running_listen_each_when_due(autojump_clock: MockClock) -> None:
    watches = Watches()
    handlers: list[Handler] = []
    async with trio.open_nursery() as outer:
        await outer.start(watches.run)
        async with trio.open_nursery() as requests:
            for i in range(50):
                # every third request lasts longer than WATCH_AFTER
                handler = Handler(watches, WATCH_AFTER * 3 if i % 3 == 0 else WATCH_AFTER / 4)
                handlers.append(handler)
                requests.start_soon(handler.run)
                await trio.sleep(WATCH_AFTER / 10)
        assert watches.pending <= 1
        outer.cancel_scope.cancel()
    for i, handler in enumerate(handlers):
        if i % 3 == 0:
            assert handler.client.listened_at == pytest.approx(i * WATCH_AFTER / 10 + WATCH_AFTER)
        else:
            assert handler.client.listened_at is None
        assert not handler.cancelled


@pytest.mark.trio
async def test_a_client_that_leaves_cancels_its_handler(autojump_clock: MockClock) -> None:
    watches = Watches()
    async with trio.open_nursery() as outer:
        await outer.start(watches.run)
        handler = Handler(watches, 3600)
        async with trio.open_nursery() as requests:
            requests.start_soon(handler.run)
            await trio.sleep(WATCH_AFTER * 2)
            handler.client.gone.set()
        outer.cancel_scope.cancel()
    assert handler.cancelled and handler.ended_at == pytest.approx(WATCH_AFTER * 2)


@pytest.mark.trio
async def test_a_disconnect_after_the_whole_response_cancels_nothing(
    autojump_clock: MockClock,
) -> None:
    watches = Watches()
    async with trio.open_nursery() as outer:
        await outer.start(watches.run)
        handler = Handler(watches, WATCH_AFTER * 3, Response(finished=True))
        async with trio.open_nursery() as requests:
            requests.start_soon(handler.run)
            await trio.sleep(WATCH_AFTER * 2)
            handler.client.gone.set()
        outer.cancel_scope.cancel()
    assert not handler.cancelled and handler.ended_at == pytest.approx(WATCH_AFTER * 3)


@pytest.mark.trio
async def test_when_the_watches_task_ends_the_waiting_watches_listen_at_once(
    autojump_clock: MockClock,
) -> None:
    watches = Watches()
    async with trio.open_nursery() as requests:
        async with trio.open_nursery() as outer:
            await outer.start(watches.run)
            handler = Handler(watches, 3600)
            requests.start_soon(handler.run)
            await trio.testing.wait_all_tasks_blocked()
            assert watches.pending == 1
            outer.cancel_scope.cancel()
        assert not watches.running
        await trio.testing.wait_all_tasks_blocked()
        assert handler.client.listened_at == 0.0
        late = Handler(watches, 3600)  # no task any more: it times itself
        requests.start_soon(late.run)
        await trio.sleep(WATCH_AFTER * 2)
        assert late.client.listened_at == pytest.approx(WATCH_AFTER)
        requests.cancel_scope.cancel()


@pytest.mark.trio
async def test_an_idle_watches_task_wakes_for_a_new_request(autojump_clock: MockClock) -> None:
    watches = Watches()
    async with trio.open_nursery() as outer:
        await outer.start(watches.run)
        for round_ in range(3):
            await trio.sleep(10)  # idle: nothing due
            started = trio.current_time()
            handler = Handler(watches, WATCH_AFTER * 2)
            await handler.run()
            assert handler.client.listened_at == pytest.approx(started + WATCH_AFTER), round_
        outer.cancel_scope.cancel()
