"""Noticing a client that leaves before its response is complete.

A watch listens on the request's `receive()` and cancels its handler when
the client disconnects: a request waiting for admission or a load leaves the
router's queue (the lease context exits), one mid-stream closes its upstream
connection. It listens only once the request has run for `WATCH_AFTER`:
listening makes the server read the connection and register it with the
poller, then undo that when the response ends, which is about an eighth of
the CPU of a small request and of no use to one that is over sooner. A
client that leaves earlier is noticed at that point.

Who starts the listening: one `Watches` task for all requests. Requests
register in arrival order, and every delay is the same, so that is the
order they fall due; the task sleeps until the oldest is due and starts the
listener of each that is still running. A task per request that timed
itself cost a small request about 35 us, 15 % of its relay CPU. An app
driven without a running `Watches` task (tests, benches) falls back to that
task per request (`DisconnectWatch.run_alone`).
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Protocol

import trio

from swapd.http.asgi import Receive

WATCH_AFTER = 0.1  # seconds before a request's watch starts listening


class ResponseState(Protocol):
    @property
    def finished(self) -> bool:
        """The response went out whole (a disconnect after that is no client leaving)."""
        ...


class _Phase(enum.Enum):
    WAITING = 1
    LISTENING = 2
    STOPPED = 3


class DisconnectWatch:
    """One request's watch: cancels `scope` (the handler's) when the client leaves.

    `stop` ends it, whatever its phase: the handler is done. The server also
    reports `http.disconnect` once a response has been sent in full; that one
    is not a client leaving.
    """

    __slots__ = ("_nursery", "_phase", "_receive", "_response", "_scope", "_stopped", "due")

    def __init__(
        self,
        receive: Receive,
        nursery: trio.Nursery,
        response: ResponseState,
        due: float,
    ) -> None:
        self._receive = receive
        self._nursery = nursery
        self._scope = nursery.cancel_scope
        self._response = response
        self.due = due
        self._phase = _Phase.WAITING
        self._stopped: trio.Event | None = None

    @property
    def stopped(self) -> bool:
        return self._phase is _Phase.STOPPED

    def listen(self) -> None:
        """Start listening now (in the handler's nursery), unless already stopped."""
        if self._phase is _Phase.WAITING:
            self._phase = _Phase.LISTENING
            self._nursery.start_soon(self._listen)

    def stop(self) -> None:
        """The handler is done: end the watch (its scope is the handler's)."""
        phase = self._phase
        self._phase = _Phase.STOPPED
        if phase is _Phase.LISTENING:
            self._scope.cancel()
        elif self._stopped is not None:
            self._stopped.set()

    async def run_alone(self) -> None:
        """Without a `Watches` task: wait `WATCH_AFTER` in a task of its own, then listen."""
        if self._phase is not _Phase.WAITING:
            return  # stopped before this task first ran
        self._stopped = trio.Event()
        with trio.move_on_at(self.due):
            await self._stopped.wait()
            return
        if self._phase is _Phase.WAITING:
            self._phase = _Phase.LISTENING
            await self._listen()

    async def _listen(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                if not self._response.finished:
                    self._scope.cancel()
                return


class Watches:
    """Starts each registered watch's listening when it falls due (see the module
    docstring). `run` is a task of the app's lifetime."""

    def __init__(self) -> None:
        self._due: deque[DisconnectWatch] = deque()
        self._wake = trio.Event()
        self.running = False

    def watch(
        self, receive: Receive, nursery: trio.Nursery, response: ResponseState
    ) -> DisconnectWatch:
        """A watch for the handler running in `nursery`, started now or when due."""
        watch = DisconnectWatch(receive, nursery, response, trio.current_time() + WATCH_AFTER)
        if self.running:
            due = self._due
            due.append(watch)
            if len(due) == 1:
                self._wake.set()
        else:
            nursery.start_soon(watch.run_alone)
        return watch

    @property
    def pending(self) -> int:
        """Watches registered and not yet listening or dropped (stopped ones included)."""
        return len(self._due)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.running = True
        task_status.started()
        due = self._due
        try:
            while True:
                while due and due[0].stopped:
                    due.popleft()
                if not due:
                    self._wake = trio.Event()
                    await self._wake.wait()
                    continue
                await trio.sleep_until(due[0].due)
                now = trio.current_time()
                while due and due[0].due <= now:
                    due.popleft().listen()
        finally:
            self.running = False
            # Whatever is left listens at once rather than never.
            while due:
                watch = due.popleft()
                if not watch.stopped:
                    watch.listen()
