"""Helpers for supervisor tests: specs for the fake upstream, a supervised run, HTTP."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import psutil
import trio

from swapd.events import EventBus, Subscription
from swapd.process.events import LogLine, StateChanged
from swapd.process.spec import ProcessSpec
from swapd.process.states import ProcessState
from swapd.process.supervisor import Supervisor
from tests.integration.conftest import fake_argv, free_port

WAIT = 15.0  # a generous bound for anything that should happen (2 loaded cores)


def fake_spec(*options: str, model: str = "m", **overrides: Any) -> ProcessSpec:
    port = free_port()
    spec = ProcessSpec(
        model_id=model,
        argv=fake_argv(port, *options),
        proxy_url=f"http://127.0.0.1:{port}",
        health_check_timeout=WAIT,
        unload_timeout=5.0,
    )
    return replace(spec, **overrides)


@dataclass
class Run:
    sup: Supervisor
    bus: EventBus
    states: Subscription
    scope: trio.CancelScope

    def transitions(self) -> list[tuple[ProcessState, ProcessState]]:
        """Every state change published so far (drains the subscription)."""
        seen = []
        while True:
            try:
                event = self.states.receive_nowait()
            except trio.WouldBlock:
                return seen
            seen.append((event.old, event.new))

    async def wait_state(self, state: ProcessState, within: float = WAIT) -> StateChanged:
        """The next StateChanged into `state` (earlier events are consumed)."""
        with trio.fail_after(within):
            while True:
                event: StateChanged = await self.states.receive()
                if event.new is state:
                    return event

    async def wait_log(self, predicate: Callable[[LogLine], bool]) -> LogLine:
        """The first line of the model's log (history included) that matches."""
        with self.sup.logs.subscribe(history=True, maxlen=100_000) as sub, trio.fail_after(WAIT):
            async for line in sub:
                if predicate(line):
                    return line
        raise AssertionError("log closed")


@contextlib.asynccontextmanager
async def supervised(spec: ProcessSpec) -> AsyncIterator[Run]:
    """A supervisor running in its own nursery; cancelled (shut down) at the end."""
    bus = EventBus()
    states = bus.subscribe(topics=["state"], maxlen=1000)
    async with trio.open_nursery() as nursery:
        sup = Supervisor(spec, bus)
        await nursery.start(sup.run)
        try:
            yield Run(sup, bus, states, nursery.cancel_scope)
        finally:
            nursery.cancel_scope.cancel()


def gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie counts as gone: PID 1 may never reap it)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    """A minimal HTTP/1.0 GET: (status, body); raises OSError when nothing listens."""
    with trio.fail_after(WAIT):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
            data = b""
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def port_of(spec: ProcessSpec) -> int:
    return int(spec.proxy_url.rsplit(":", 1)[1])


def read_pids(path: os.PathLike[str] | str) -> list[int]:
    with open(path) as f:
        return [int(line) for line in f if line.strip()]
