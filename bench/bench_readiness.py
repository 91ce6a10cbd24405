"""Readiness latency: how long after a server first answers 200 swapd calls it ready.

A supervisor starts the fake upstream with a range of load delays; the fake
prints the wall-clock instant from which its /health answers 200, and the
supervisor's `StateChanged(ready)` event carries the instant it declared the
model ready. The difference is the readiness latency (goal: median <= 10 ms).
For comparison the table also shows what llama-swap's schedule (first probe
250 ms after spawn, then one per second) would add for the same load, computed
from the measured spawn-to-healthy time, not measured.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence
from typing import Any

import trio

from swapd.events import EventBus
from swapd.process.events import StateChanged
from swapd.process.spec import ProcessSpec
from swapd.process.supervisor import Supervisor

LOADS = (0.0, 0.1, 0.5, 1.0, 2.0)
REPEATS = 5
GOAL_MEDIAN_MS = 10.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def llama_swap_delay(healthy_after_spawn: float) -> float:
    """Seconds llama-swap's probe schedule adds: probes at 0.25 s, then every 1 s."""
    if healthy_after_spawn <= 0.25:
        return 0.25 - healthy_after_spawn
    waited = 0.25 + math.ceil(healthy_after_spawn - 0.25)
    return waited - healthy_after_spawn


async def measure_once(load: float) -> tuple[float, float]:
    """(readiness latency, spawn-to-healthy) in seconds for one start."""
    port = free_port()
    argv = [sys.executable, "-m", "swapd.testing.fake_upstream", "--port", str(port)]
    spec = ProcessSpec(
        model_id="bench",
        argv=[*argv, "--quiet", "--load-delay", str(load)],
        proxy_url=f"http://127.0.0.1:{port}",
        health_check_timeout=30.0,
        unload_timeout=5.0,
    )
    bus = EventBus()
    states = bus.subscribe(topics=["state"])
    async with trio.open_nursery() as nursery:
        sup = Supervisor(spec, bus)
        await nursery.start(sup.run)
        await sup.ensure_ready()
        ready: StateChanged = next(e for e in bus.recent(["state"]) if e.new == "ready")
        healthy = next(
            float(line.text.split()[-1])
            for line in sup.logs
            if line.text.startswith("healthy from ")
        )
        spawned = next((e.time for e in bus.recent(["state"]) if e.new == "starting"), ready.time)
        await sup.stop()
        nursery.cancel_scope.cancel()
    states.close()
    return ready.time - healthy, healthy - spawned


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(loads: Sequence[float], repeats: int) -> dict[str, Any]:
    rows = []
    every: list[float] = []
    for load in loads:
        latencies, spawn_to_healthy = [], []
        for _ in range(repeats):
            latency, healthy_after = await measure_once(load)
            latencies.append(latency)
            spawn_to_healthy.append(healthy_after)
        every.extend(latencies)
        rows.append(
            {
                "load_s": load,
                "median_ms": statistics.median(latencies) * 1000,
                "p90_ms": percentile(latencies, 0.9) * 1000,
                "max_ms": max(latencies) * 1000,
                "spawn_to_healthy_s": statistics.median(spawn_to_healthy),
                "llama_swap_ms": statistics.median(llama_swap_delay(h) for h in spawn_to_healthy)
                * 1000,
            }
        )
    median = statistics.median(every) * 1000
    return {
        "rows": rows,
        "median_ms": median,
        "goal_median_ms": GOAL_MEDIAN_MS,
        "meets_goal": median <= GOAL_MEDIAN_MS,
    }


def table(figures: dict[str, Any]) -> str:
    lines = [
        "readiness latency: server first answers 200 -> swapd declares ready",
        f"{'load':>6}  {'spawn->200':>10}  {'median':>8}  {'p90':>8}  {'max':>8}  "
        f"{'llama-swap':>10}",
    ]
    for row in figures["rows"]:
        lines.append(
            f"{row['load_s']:>5.1f}s  {row['spawn_to_healthy_s']:>9.3f}s  "
            f"{row['median_ms']:>6.1f}ms  {row['p90_ms']:>6.1f}ms  {row['max_ms']:>6.1f}ms  "
            f"{row['llama_swap_ms']:>8.0f}ms"
        )
    verdict = "meets" if figures["meets_goal"] else "MISSES"
    lines.append(
        f"overall median {figures['median_ms']:.1f} ms ({verdict} the goal of "
        f"<= {figures['goal_median_ms']:.0f} ms); llama-swap column: its schedule, computed"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench_readiness", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--loads", type=float, nargs="+", default=list(LOADS))
    args = parser.parse_args(argv)
    figures = trio.run(run, args.loads, args.repeats)
    print(table(figures))
    return figures


if __name__ == "__main__":
    main()
