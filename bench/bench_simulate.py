"""Simulator speed: a day of traffic (100,000 requests) replayed through one config.

The trace: sessions of about five requests to one model, 20 s of thinking
apart on average; six models with skewed popularity (one takes 70 %, the
rarest 1 %); sessions start as a Poisson process whose rate follows the day
(four times busier at noon than at night); service times exponential around
1.5 s; load times from 2 to 10 s. It is written to a file and read back as
`swapd simulate --trace` would, then replayed through three configs: every
model in the default group (one at a time), a matrix letting pairs run
together, and the group config with `maxWait` off. That much traffic
overloads one slot on purpose: long queues make every drain walk them, the
simulator's worst case (and a config's, as the failures show: requests over
`concurrencyLimit` are refused). The goal is under 10 s for reading the
trace and one replay. Figures are wall-clock seconds, and what each replay
did (loads, the wait at p95, the peak queue) so the work is visibly real.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swapd.config import load_config_text
from swapd.simulate.engine import simulate
from swapd.simulate.report import summarize
from swapd.simulate.trace import TraceRequest, read_trace, write_trace

GOAL_S = 10.0
REQUESTS = 100_000
SEED = 18
DAY = 86_400.0
MODELS = {"chat": 0.70, "code": 0.15, "embed": 0.08, "writer": 0.04, "vision": 0.02, "big": 0.01}
THINK_S = 20.0
LOAD_TIMES = {"chat": 4.0, "code": 3.0, "embed": 2.0, "writer": 4.0, "vision": 6.0, "big": 10.0}

_MODELS_YAML = "".join(f"  {m}:\n    cmd: fake --port ${{PORT}}\n" for m in MODELS)
CONFIGS = {
    "group": f"models:\n{_MODELS_YAML}",
    "matrix": (
        f"models:\n{_MODELS_YAML}"
        "routing:\n  router:\n    use: matrix\n    settings:\n      matrix:\n        sets:\n"
        "          pairs: (chat | writer) & (code | embed)\n"
        "          alone: vision | big\n"
    ),
    "group, no maxWait": (
        f"models:\n{_MODELS_YAML}"
        "routing:\n  scheduler:\n    use: fifo\n    settings:\n      fifo:\n        maxWait: 0\n"
    ),
}


def day_trace(count: int, seed: int) -> list[TraceRequest]:
    """`count` requests over a day, in sessions: a session picks a model (skewed) and
    sends a few requests to it, a think time apart; sessions start busier at noon."""
    rnd = random.Random(seed)
    names, weights = list(MODELS), list(MODELS.values())
    per_session = 5
    session_rate = count / per_session / DAY
    peak = session_rate * 1.6
    out: list[TraceRequest] = []
    t = 0.0
    while len(out) < count:
        t += rnd.expovariate(peak)
        # thinning: the rate follows the day, from 0.4 (midnight) to 1.6 (noon) x mean
        if rnd.random() * peak > session_rate * (1 - 0.6 * math.cos(2 * math.pi * t / DAY)):
            continue
        model = rnd.choices(names, weights)[0]
        at = t
        for _ in range(1 + int(rnd.expovariate(1 / (per_session - 1)))):
            out.append(
                TraceRequest(
                    t=round(at, 3),
                    model=model,
                    service=round(rnd.expovariate(1 / 1.5), 3),
                    stream=rnd.random() < 0.7,
                )
            )
            at += rnd.expovariate(1 / THINK_S)
    out.sort(key=lambda r: r.t)
    return out[:count]


def run(count: int, seed: int) -> dict[str, Any]:
    trace = day_trace(count, seed)
    figures: dict[str, Any] = {"requests": count, "goal_s": GOAL_S}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "day.jsonl"
        write_trace(path, trace)
        started = time.perf_counter()
        read = read_trace(path)
        figures["read_s"] = time.perf_counter() - started
    for name, text in CONFIGS.items():
        loaded = load_config_text(text)
        started = time.perf_counter()
        result = simulate(loaded, read, LOAD_TIMES)
        elapsed = time.perf_counter() - started
        totals, _ = summarize(result)
        figures[name] = {
            "replay_s": elapsed,
            "loads": totals.loads,
            "wait_p95_s": totals.wait_p95,
            "peak_queue": totals.peak_queue,
            "failures": totals.failures,
        }
    return figures


def table(figures: dict[str, Any]) -> str:
    lines = [
        f"{figures['requests']} requests; reading the trace: {figures['read_s']:.2f} s",
        f"{'config':<20}{'replay s':>10}{'+read s':>10}{'loads':>8}{'p95 wait s':>12}"
        f"{'peak q':>8}{'failed':>8}",
    ]
    for name in CONFIGS:
        f = figures[name]
        lines.append(
            f"{name:<20}{f['replay_s']:>10.2f}{f['replay_s'] + figures['read_s']:>10.2f}"
            f"{f['loads']:>8}{f['wait_p95_s']:>12.1f}{f['peak_queue']:>8}{f['failures']:>8}"
        )
    worst = max(figures[name]["replay_s"] for name in CONFIGS) + figures["read_s"]
    verdict = "ok" if worst < GOAL_S else "OVER"
    lines.append(f"slowest read + replay: {worst:.2f} s (goal < {GOAL_S:g} s): {verdict}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench_simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    figures = run(args.requests, args.seed)
    print(table(figures))
    return figures


if __name__ == "__main__":
    main()
