"""The simulator against a real swapd: same loads, same waits (10 % or 50 ms).

A real daemon with fake upstreams (a fixed load delay and response delay per
model) is sent a generated trace: bursts of requests for random models. What
the daemon did is recorded from its own event bus: each request's admission,
grant and end (its arrival, wait and service time: the recorded trace), and
each swap's start, duration and decisions (the load times).

That recorded trace is then simulated with the same config: with each
model's median load time (as `swapd simulate` takes them from the history)
the same models load in the same order; with each load as long as the
daemon's was, every request's wait is within 10 % or 50 ms of the daemon's.
The trace the daemon kept in its history, exported by `swapctl activity
--export`, is the same trace (arrivals and service times within 50 ms) and
gives the same loads.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from swapd.config import LoadedConfig, load_config
from swapd.daemon import Daemon
from swapd.router.events import Decision, RequestEvent, SwapFinished, SwapStarted
from swapd.simulate.engine import Simulation, simulate
from swapd.simulate.trace import TraceRequest, read_trace
from tests.integration.http.conftest import client, start_port
from tests.integration.http.test_local_models import FAKE

LOAD_DELAY = {"A": 0.4, "B": 0.3, "C": 0.5}
RESPONSE_DELAY = {"A": 0.15, "B": 0.1, "C": 0.2}
BURSTS, PER_BURST = 6, 5
REQUESTS = BURSTS * PER_BURST
#: Quiet time after a burst is answered: more than the simulation can drift from the
#: daemon over one burst when loads take their median time instead of their own.
PAUSE = 0.5
SEED = 18


def config_text(routing: str) -> str:
    models = "".join(
        f"  {m}:\n"
        f"    cmd: {FAKE} --load-delay {LOAD_DELAY[m]} --response-delay {RESPONSE_DELAY[m]}\n"
        "    concurrencyLimit: 100\n"
        for m in LOAD_DELAY
    )
    return f"healthCheckTimeout: 30\nstartPort: {start_port()}\nmodels:\n{models}{routing}"


ROUTINGS = {
    "group": "",
    "priority": (
        "routing:\n  scheduler:\n    use: fifo\n    settings:\n      fifo:\n"
        "        priority: {C: 10, B: 5}\n"
    ),
    "matrix": (
        "routing:\n  router:\n    use: matrix\n    settings:\n      matrix:\n        sets:\n"
        "          ab: A & B\n          c: C\n"
    ),
}


def generated_bursts() -> list[list[tuple[float, str]]]:
    """Bursts of requests for random models, each within 0.15 s (so they all arrive
    during the burst's first load, and the order of the decisions does not hang on a
    few milliseconds of a load); a burst starts once the previous one is answered."""
    rnd = random.Random(SEED)
    return [
        sorted((round(rnd.uniform(0, 0.15), 3), rnd.choice("AABBC")) for _ in range(PER_BURST))
        for _ in range(BURSTS)
    ]


class Observed:
    """What the daemon's bus said about requests and swaps."""

    def __init__(self) -> None:
        self.admitted: dict[int, tuple[float, str]] = {}
        self.granted: dict[int, float] = {}
        self.done: dict[int, float] = {}
        self.swaps: list[SwapFinished] = []
        self.started: list[str] = []
        #: swap id -> (target, seconds from the swap's decision to its end being handled)
        self.decided: dict[int, tuple[str, float]] = {}

    def see(self, event: Any) -> None:
        match event:
            case RequestEvent(phase="admitted", request_id=rid, model=model, time=t):
                self.admitted[rid] = (t, model)
            case RequestEvent(phase="granted", request_id=rid, time=t):
                self.granted[rid] = t
            case RequestEvent(phase="done", request_id=rid, time=t):
                self.done[rid] = t
            case Decision(action="swap_done", swap_id=int(swap_id), model=model, duration=d):
                assert d is not None
                self.decided[swap_id] = (model, d)
            case SwapStarted(target=target):
                self.started.append(target)
            case SwapFinished():
                self.swaps.append(event)

    def recorded_trace(self) -> tuple[list[TraceRequest], list[float]]:
        """The trace the daemon saw (admission order) and each request's wait."""
        rids = sorted(self.admitted, key=lambda rid: (self.admitted[rid][0], rid))
        origin = self.admitted[rids[0]][0]
        trace = [
            TraceRequest(
                t=self.admitted[rid][0] - origin,
                model=self.admitted[rid][1],
                service=self.done[rid] - self.granted[rid],
            )
            for rid in rids
        ]
        return trace, [self.granted[rid] - self.admitted[rid][0] for rid in rids]

    def load_times(self) -> dict[str, float]:
        by_model: dict[str, list[float]] = {}
        for s in self.swaps:
            assert s.ok, s
            by_model.setdefault(s.target, []).append(s.seconds)
        return {m: statistics.median(times) for m, times in by_model.items()}


class MeasuredLoads(Simulation):
    """A simulation whose loads take, in order, as long as the daemon's did: from
    the scheduler's decision to its hearing that the model is ready."""

    def __init__(self, loaded: LoadedConfig, trace: list[TraceRequest], observed: Observed) -> None:
        super().__init__(loaded, trace, {})
        self.measured: dict[str, list[float]] = {}
        for _, (model, seconds) in sorted(observed.decided.items(), reverse=True):
            self.measured.setdefault(model, []).append(seconds)

    def load_time(self, model: str) -> float:
        return self.measured[model].pop()


@asynccontextmanager
async def daemon(tmp_path: Path, config_text: str) -> AsyncIterator[tuple[str, Daemon]]:
    """A whole swapd that keeps its history in `tmp_path/state`, with a control socket."""
    path = tmp_path / "config.yaml"
    path.write_text(config_text)
    d = Daemon(
        load_config(path),
        "127.0.0.1:0",
        control_socket=tmp_path / "control.sock",
        state_dir=tmp_path / "state",
    )
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(d.run)
        try:
            yield urls[0], d
        finally:
            d.request_stop()


def exported_trace(tmp_path: Path) -> list[TraceRequest]:
    """What `swapctl activity --export` writes from the daemon's history."""
    out = tmp_path / "trace.jsonl"
    argv = [sys.executable, "-m", "swapctl.cli", "--socket", str(tmp_path / "control.sock")]
    subprocess.run([*argv, "activity", "--export", str(out)], check=True, timeout=60)
    return read_trace(out)


@pytest.mark.trio
@pytest.mark.parametrize("routing", sorted(ROUTINGS))
async def test_simulation_matches_the_daemon(tmp_path: Path, routing: str) -> None:
    text = config_text(ROUTINGS[routing])
    observed = Observed()
    async with daemon(tmp_path, text) as (base, d), client(base) as c:
        with d.bus.subscribe(topics=("request", "swap", "decision"), maxlen=100_000) as sub:
            statuses: list[int] = []

            async def send(start: float, at: float, model: str) -> None:
                await trio.sleep_until(start + at)
                r = await c.post("/v1/chat/completions", json={"model": model, "max_tokens": 1})
                statuses.append(r.status_code)

            with trio.fail_after(60):
                for burst in generated_bursts():
                    start = trio.current_time()
                    async with trio.open_nursery() as nursery:
                        for at, model in burst:
                            nursery.start_soon(send, start, at, model)
                    await trio.sleep(PAUSE)
                await d.router.settled()
            assert statuses == [200] * REQUESTS
            while True:
                try:
                    observed.see(sub.receive_nowait())
                except trio.WouldBlock:
                    break
            assert sub.take_lagged() == 0
            assert d.recorder is not None and d.recorder.store is not None
            await d.recorder.store.flushed()
            exported = await trio.to_thread.run_sync(exported_trace, tmp_path)
    trace, daemon_waits = observed.recorded_trace()
    assert len(trace) == REQUESTS
    loaded = load_config(tmp_path / "config.yaml")
    # With each model's median load time, as `swapd simulate` takes them from the history:
    # the same loads, in the same order.
    result = simulate(loaded, trace, observed.load_times())
    assert [ld.model for ld in result.loads] == observed.started
    # With each load as long as the daemon's was (spawning a process on a busy machine
    # varies by tens of milliseconds, and so does a busy event loop): every wait as
    # the daemon's.
    result = MeasuredLoads(loaded, trace, observed).run()
    assert [ld.model for ld in result.loads] == observed.started
    for i, (sim, real) in enumerate(zip(result.requests, daemon_waits, strict=True)):
        assert sim.wait is not None, (i, sim)
        assert abs(sim.wait - real) <= max(0.05, 0.1 * real), (i, trace[i], sim.wait, real)
    # The history's own trace: the same requests, arriving and served as the bus saw.
    assert [r.model for r in exported] == [r.model for r in trace]
    for kept, seen in zip(exported, trace, strict=True):
        assert abs(kept.t - seen.t) <= 0.05, (kept, seen)
        assert kept.service is not None and abs(kept.service - seen.service) <= 0.05, (kept, seen)
    result = simulate(loaded, exported, observed.load_times())
    assert [ld.model for ld in result.loads] == observed.started
