"""Shared fixtures for integration tests: free ports and the fake upstream."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from swapd.testing import ports

FAKE_UPSTREAM = (sys.executable, "-m", "swapd.testing.fake_upstream")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (see swapd.testing.ports)."""
    return ports.free_port()


def fake_argv(port: int, *options: str) -> list[str]:
    """The argv that runs the fake upstream on `port` with `options`."""
    return [*FAKE_UPSTREAM, "--port", str(port), *options]


class RunningFake:
    """A fake upstream started directly by a test (not through a supervisor)."""

    def __init__(self, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"

    def read_line(self, timeout: float = 10.0) -> str:
        """The next line the fake printed on stdout; fails after `timeout`."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError(f"no line from the fake upstream within {timeout}s")
            byte = os.read(self.proc.stdout.fileno(), 1)
            if not byte:
                break
            line += byte
        return line.decode()

    def wait_listening(self) -> None:
        while "listening on" not in (line := self.read_line()):
            if not line:
                raise RuntimeError("the fake upstream exited before listening")


@pytest.fixture
def start_fake() -> Iterator[Callable[..., RunningFake]]:
    """Start fake upstreams (each in its own session); all are killed at teardown."""
    started: list[RunningFake] = []

    def start(*options: str, wait: bool = True) -> RunningFake:
        port = free_port()
        proc = subprocess.Popen(
            fake_argv(port, *options),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        fake = RunningFake(port, proc)
        started.append(fake)
        if wait:
            fake.wait_listening()
        return fake

    yield start
    for fake in started:
        try:
            os.killpg(fake.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        fake.proc.wait()
        if fake.proc.stdout is not None:
            fake.proc.stdout.close()
