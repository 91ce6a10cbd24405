"""A control server on a background trio thread, for blocking and asyncio clients.

`run_sync(fn, *args)` and `run(async_fn, *args)` execute inside the server's
trio thread, so a test can change the fake backend or publish events without
racing the server.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import trio

from swapd.control import ControlLimits, serve_control
from tests.integration.control.fake_backend import FakeBackend

T = TypeVar("T")


class ServerThread:
    def __init__(
        self,
        backend: FakeBackend | None = None,
        limits: ControlLimits | None = None,
        directory: Path | None = None,
    ):
        """`directory`: serve in this one (e.g. a stopped server's, to stand for a restart)."""
        self.directory = directory or Path(tempfile.mkdtemp(prefix="swt-", dir="/tmp"))
        self.path = self.directory / "control.sock"
        self.backend = backend or FakeBackend()
        self.limits = limits
        self.ready = threading.Event()
        self.thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            self.cancel_scope = nursery.cancel_scope
            self.token = trio.lowlevel.current_trio_token()
            self.server = await nursery.start(
                serve_control, self.path, self.backend, None, self.limits
            )
            self.ready.set()

    def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return trio.from_thread.run_sync(fn, *args, trio_token=self.token)

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return trio.from_thread.run(fn, *args, trio_token=self.token)

    def stop(self) -> None:
        """Cancel the server (closing every connection) and wait for its thread."""
        try:
            self.run_sync(self.cancel_scope.cancel)
        except trio.RunFinishedError:
            pass  # already stopped
        self.thread.join(10)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        assert self.ready.wait(10), "the control server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
