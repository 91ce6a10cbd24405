"""The real control server (trio) in a thread, so asyncio Pilot tests can talk to it.

The dashboard runs on asyncio (Textual) and the daemon on trio; in a test the
server gets its own thread and trio loop, with the control tests' in-memory
backend behind it. `call` runs a function in the server's loop (to publish an
event or change the backend), `stop` cancels it, which closes every
connection and removes the socket file, like a daemon that exits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import trio

from swapd.control.server import ControlServer, serve_control
from tests.integration.control.fake_backend import FakeBackend

T = TypeVar("T")


class ServerThread:
    def __init__(self, path: Path, backend: FakeBackend | None = None) -> None:
        self.path = path
        self.backend = backend or FakeBackend()
        self.server: ControlServer | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="control-server", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                self.server = await nursery.start(serve_control, self.path, self.backend)
                self._started.set()

        try:
            trio.run(main)
        except BaseException as exc:
            self._error = exc
            self._started.set()

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("the control server did not start")
        if self._error is not None:
            raise RuntimeError("the control server failed to start") from self._error
        return self

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in the server's trio loop and return its result."""
        assert self._token is not None
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def stop(self, timeout: float = 10.0) -> None:
        if self._scope is not None and self._thread.is_alive():
            self.call(self._scope.cancel)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the control server did not stop")
