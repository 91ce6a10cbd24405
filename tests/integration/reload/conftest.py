"""Helpers for the reload tests: a whole daemon in this trio loop, swapctl as a process."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import trio

from swapd.config import load_config
from swapd.daemon import Daemon
from swapd.events import EventBus

FAKE = f"{sys.executable} -m swapd.testing.fake_upstream --port ${{PORT}} --quiet"


@asynccontextmanager
async def running(
    config: Path, **options: Any
) -> AsyncIterator[tuple[Daemon, httpx2.AsyncClient, Path]]:
    """A daemon for `config` on an ephemeral port; yields it, an HTTP client and its socket."""
    sock = config.parent / "control.sock"
    daemon = Daemon(load_config(config), "127.0.0.1:0", control_socket=sock, **options)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(daemon.run)
        try:
            async with httpx2.AsyncClient(base_url=urls[0], timeout=httpx2.Timeout(20.0)) as c:
                yield daemon, c, sock
        finally:
            daemon.request_stop()


async def swapctl(sock: Path, *argv: str) -> tuple[int, str, str]:
    result = await trio.run_process(
        [sys.executable, "-m", "swapctl.cli", "--socket", str(sock), *argv],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def pid_of(daemon: Daemon, model: str) -> int | None:
    assert daemon.services is not None
    return daemon.services.pool[model].pid


class Watch:
    """Events of some topics from the moment it is created; `until` waits for one."""

    def __init__(self, bus: EventBus, *topics: str) -> None:
        self._sub = bus.subscribe(topics=topics, maxlen=4096)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self._sub.close()

    async def until(self, match: Callable[[Any], bool], within: float = 20.0) -> Any:
        with trio.fail_after(within):
            async for event in self._sub:
                if match(event):
                    return event
        raise AssertionError("the event stream ended")

    async def decision(self, action: str, model: str) -> Any:
        return await self.until(
            lambda e: getattr(e, "action", None) == action and getattr(e, "model", None) == model
        )
