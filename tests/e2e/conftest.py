"""Fixtures of the end-to-end tests: a real `swapd serve` running the real llama-server.

`start_swapd(...)` writes a config for three model IDs (A, B, C: the demo's
SmolLM2 GGUF, each its own llama-server on a port unique to the test) and
starts `python -m swapd serve` on it as a subprocess, on an ephemeral listen
port, with a private control socket (`SWAPD_SOCKET`) and the demo's paths
from `swapd_demo.env.demo_environment()`. It returns once `/health` answers
and an `/api/events` follower (a thread) has its first `modelStatus`, so the
test can count every load from swapd's own events.

Teardown stops swapd (SIGTERM to its process group, SIGKILL after a grace
period) and then makes sure no llama-server of the test is left, killing
any leftover so one broken test cannot poison the others.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx2
import openai
import psutil
import pytest
import trio

import swapctl.client
from bench.bench_swap import (
    MODELS,
    RUNNING,
    LoadCounter,
    SwapdDaemon,
    parse_sse_frame,
    swapd_daemon,
)
from swapd_demo.env import DemoMissing, demo_environment

START_WITHIN = 120.0


@pytest.fixture(scope="session")
def demo_installed() -> dict[str, str]:
    """The demo's paths. A missing demo extra fails the e2e tests: they never skip."""
    try:
        return demo_environment()
    except DemoMissing as exc:
        pytest.fail(f"the demo extra is not installed (./just setup installs it): {exc}")


class EventFollower(threading.Thread):
    """Reads swapd's `/api/events` in a thread and counts loads with `LoadCounter`.

    The stream ends when swapd stops (it closes long-lived streams first) or
    dies; a transport error then is expected and only recorded.
    """

    def __init__(self, base_url: str) -> None:
        super().__init__(name="swapd-events", daemon=True)
        self.base_url = base_url
        self.counter = LoadCounter()
        self.cond = threading.Condition()
        self.started_stream = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            timeout = httpx2.Timeout(10.0, read=None)
            with (
                httpx2.Client(timeout=timeout) as client,
                client.stream("GET", self.base_url + "/api/events") as response,
            ):
                response.raise_for_status()
                frame: list[str] = []
                for line in response.iter_lines():
                    if line:
                        frame.append(line)
                        continue
                    parsed = parse_sse_frame(frame)
                    frame = []
                    if parsed is None:
                        continue
                    with self.cond:
                        self.counter.feed(*parsed)
                        self.cond.notify_all()
                    if parsed[0] == "modelStatus":
                        self.started_stream.set()
        except BaseException as exc:
            self.error = exc
        finally:
            self.started_stream.set()
            with self.cond:
                self.cond.notify_all()

    def wait_for(self, predicate: Callable[[LoadCounter], bool], timeout: float) -> None:
        """Block until `predicate(counter)` holds (checked on every event), or fail."""
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self.counter), timeout):
                raise AssertionError(
                    f"swapd's events never reached the expected state; seen {self.counter.states}, "
                    f"loads {dict(self.counter.loads)}, stream error {self.error!r}"
                )

    def loads(self) -> Counter[str]:
        """Per model, how often its process entered a running state."""
        with self.cond:
            return Counter(self.counter.loads)

    def swaps(self) -> Counter[str]:
        """Per target, the swaps the router started (its `SwapStarted` records)."""
        with self.cond:
            return Counter(self.counter.swaps)


class RunningSwapd:
    """A started swapd: its URLs, an openai client factory, its events and its children."""

    def __init__(self, daemon: SwapdDaemon, events: EventFollower) -> None:
        self.daemon = daemon
        self.events = events

    @property
    def base_url(self) -> str:
        return self.daemon.base_url

    @property
    def pid(self) -> int:
        return self.daemon.pid

    @property
    def model_ports(self) -> dict[str, int]:
        return self.daemon.model_ports

    def openai(self, *, timeout: float = 120.0) -> openai.OpenAI:
        """A client that never retries, so every failure is seen."""
        return openai.OpenAI(
            base_url=self.base_url + "/v1", api_key="unused", max_retries=0, timeout=timeout
        )

    def running(self) -> set[str]:
        """The models `/running` reports."""
        with httpx2.Client(timeout=10.0) as client:
            response = client.get(self.base_url + "/running")
        response.raise_for_status()
        return {item["model"] for item in response.json()["running"]}

    def settle(self, timeout: float = 30.0) -> set[str]:
        """Wait until the event stream agrees with `/running` and no model is half-way.

        After that every load up to the `/running` call has been counted.
        """
        running = self.running()
        self.events.wait_for(lambda c: c.running() == running and c.settled(), timeout)
        return running

    def llama_children(self) -> list[psutil.Process]:
        """llama-server processes that are children of this swapd."""
        return [p for p in psutil.Process(self.pid).children(recursive=True) if is_llama(p)]

    def reported_pids(self) -> dict[str, int]:
        """The PIDs swapd itself reports for its running models (the control socket)."""
        with swapctl.client.connect(self.daemon.socket, name="e2e", timeout=10.0) as control:
            return {m.id: m.pid for m in control.models() if m.pid}


def is_llama(proc: psutil.Process) -> bool:
    """A live llama.cpp server: the demo's launcher (a Python script) or a llama-server binary."""
    with contextlib.suppress(psutil.Error):
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        names = [proc.name(), *(Path(arg).name for arg in proc.cmdline()[:2])]
        return any(name.startswith(("llama-server", "swapd-llama-server")) for name in names)
    return False


def processes_with_ports(ports: Mapping[str, int]) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line has one of the test's ports."""
    needles = {f"--port {port}" for port in ports.values()}
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or ())
        if any(needle in cmdline for needle in needles) and is_llama(proc):
            found.append(proc)
    return found


def reap_leftovers(ports: Mapping[str, int]) -> list[int]:
    """Kill any llama-server of the test that outlived swapd; their PIDs (empty when clean)."""
    leftovers = processes_with_ports(ports)
    for proc in leftovers:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(leftovers, timeout=10)
    return [p.pid for p in leftovers]


@pytest.fixture
def start_swapd(
    tmp_path: Path, demo_installed: dict[str, str]
) -> Iterator[Callable[..., RunningSwapd]]:
    """Factory: `start_swapd(swap=True | False, matrix_sets=None)` -> a RunningSwapd."""
    with contextlib.ExitStack() as stack:
        started: list[RunningSwapd] = []

        def start(**config: Any) -> RunningSwapd:
            workdir = tmp_path / f"swapd-{len(started)}"
            workdir.mkdir()
            daemon_cm = swapd_daemon(workdir, MODELS, **config)
            daemon = daemon_cm.__enter__()
            follower: list[EventFollower] = []

            def teardown() -> None:
                try:
                    daemon_cm.__exit__(None, None, None)
                finally:
                    for events in follower:
                        events.join(30)
                    leftovers = reap_leftovers(daemon.model_ports)
                assert not leftovers, f"llama-server processes outlived swapd: {leftovers}"

            stack.callback(teardown)
            trio.run(_wait_listening, daemon)
            events = EventFollower(daemon.base_url)
            follower.append(events)
            events.start()
            if not events.started_stream.wait(30) or events.error is not None:
                raise RuntimeError(f"/api/events did not start: {events.error!r}")
            running = RunningSwapd(daemon, events)
            started.append(running)
            return running

        yield start


async def _wait_listening(daemon: SwapdDaemon) -> None:
    async with httpx2.AsyncClient(timeout=10.0) as client:
        await daemon.wait_listening(client, within=START_WITHIN)


__all__ = ["MODELS", "RUNNING", "RunningSwapd", "processes_with_ports", "reap_leftovers"]
