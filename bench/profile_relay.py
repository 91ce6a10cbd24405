"""Where swapd's CPU goes on the relay path: `swapd serve` under a CPU-time profile.

`python -m bench.profile_relay [--workload small|streams|both] [--top N]`

A real `swapd serve` (the config of `bench_relay`: three fake upstreams as
models, side by side) runs with a cProfile whose clock is the process's CPU
time, switched on by SIGUSR1 and written out by SIGUSR2, so only the measured
workload is in it (not the start, the loads or the warm-up):

* small: `bench_relay`'s sequential small requests;
* streams: 32 streams of one token each, started together, which is the
  work of 32 stream setups (request head to first token) and little else.

For each workload it prints swapd's CPU per request measured without the
profiler (psutil, best of the rounds), then the profile grouped by where the
time goes (module areas, `AREAS`) scaled to that figure, then the top
functions by own time. cProfile slows the calls it counts, so the areas are
shares of the profiled run applied to the unprofiled figure: an estimate of
where the microseconds go, not a measurement of each.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
import trio

from bench.bench_relay import (
    STREAMS,
    UPSTREAMS,
    free_port,
    load_every_model,
    sequential,
    spawn,
    stop,
    streams,
    write_config,
)
from swapd.http.upstream import UpstreamClient
from swapd.testing.ports import free_port_run

# Areas of the relay path, by the file a function is defined in (first match wins).
AREAS: list[tuple[str, str]] = [
    ("swapd/http/server.py", "HTTP server (connection, exchange)"),
    ("swapd/http/parse.py", "HTTP parsing (llhttp callbacks)"),
    ("swapd/http/http1.py", "HTTP heads (formatting)"),
    ("swapd/http/upstream.py", "upstream client"),
    ("swapd/http/relay.py", "relay (headers, body)"),
    ("swapd/http/model_routes.py", "model routes (handler)"),
    ("swapd/http/request_model.py", "model routes (body: model, stream)"),
    ("swapd/http/app.py", "ASGI app (dispatch, origin)"),
    ("swapd/http/origin.py", "ASGI app (dispatch, origin)"),
    ("swapd/http/asgi.py", "ASGI helpers (body read)"),
    ("swapd/http/inflight.py", "in-flight registry"),
    ("swapd/http/metrics.py", "metrics"),
    ("prometheus_client", "metrics"),
    ("swapd/http/timeline.py", "timeline"),
    ("swapd/http/budget.py", "body budget"),
    ("swapd/router/", "router (lease, run loop, scheduler)"),
    ("swapd/events.py", "event bus"),
    ("swapd/", "other swapd"),
    ("trio/", "trio (scheduling, sockets, cancel scopes)"),
    ("contextlib", "trio (scheduling, sockets, cancel scopes)"),
    ("msgspec", "msgspec"),
    ("selectors", "trio (scheduling, sockets, cancel scopes)"),
]
BUILTIN = "builtins, C calls (socket, select, ...)"

# `swapd serve` with a CPU-time profiler that SIGUSR1 starts and SIGUSR2 writes to argv[1].
RUNNER = """
import cProfile, gc, json, signal, sys, time
out = sys.argv.pop(1)
profile = cProfile.Profile(time.process_time)
collections = {"count": [0, 0, 0], "seconds": [0.0, 0.0, 0.0], "started": 0.0}

def on_gc(phase, info):
    if phase == "start":
        collections["started"] = time.process_time()
    else:
        generation = info["generation"]
        collections["count"][generation] += 1
        collections["seconds"][generation] += time.process_time() - collections["started"]

def start(*_):
    collections.update(count=[0, 0, 0], seconds=[0.0, 0.0, 0.0])
    gc.callbacks.append(on_gc)
    profile.enable()

def write(*_):
    profile.disable()
    gc.callbacks.remove(on_gc)
    profile.dump_stats(out)
    profile.clear()
    with open(out + ".gc", "w") as f:
        json.dump(collections, f)

signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, write)
from swapd.cli import main
sys.argv[0] = "swapd"
raise SystemExit(main())
"""


def area_of(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return BUILTIN
    for marker, area in AREAS:
        if marker in filename:
            return area
    return "other Python"


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def _signal(client: UpstreamClient, base: str, pid: int, sig: int) -> None:
    """Send `sig`, then one request: once it is answered the handler has run.

    (Python runs a signal's handler before its next bytecode, and trio's
    wake-up descriptor wakes the loop for it.)
    """
    os.kill(pid, sig)
    response = await client.request("GET", base + "/health", [])
    await response.read()
    await response.aclose()


async def small(client: UpstreamClient, base: str, count: int) -> int:
    await sequential(client, base, "small", count)
    return count


async def stream_setups(client: UpstreamClient, base: str, count: int) -> int:
    """`count` rounds of 32 one-token streams started together."""
    for _ in range(count):
        run = await streams(client, base, "small", STREAMS, 1)
        if len(run.ttft_ms) != STREAMS:
            raise RuntimeError("a stream did not start")
    return count * STREAMS


WORKLOADS = {"small": (small, 500), "streams": (stream_setups, 20)}


def report(stats_file: Path, per_request_us: float, requests: int, top: int) -> str:
    stats = pstats.Stats(str(stats_file))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    areas: dict[str, float] = {}
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        area = area_of(filename)
        areas[area] = areas.get(area, 0.0) + tottime
    collected = json.loads(Path(str(stats_file) + ".gc").read_text())
    counts, seconds = collected["count"], collected["seconds"]
    out = io.StringIO()
    out.write(
        f"swapd CPU per request without the profiler: {per_request_us:.0f} us; "
        f"profiled: {total / requests * 1e6:.0f} us\n"
        f"garbage collections (generations 0/1/2): {counts[0]}/{counts[1]}/{counts[2]}, "
        f"{sum(seconds) / requests * 1e6:.0f} us per request "
        f"({' / '.join(f'{s / requests * 1e6:.1f}' for s in seconds)})\n\n"
        "| where | share | us per request (scaled) |\n|---|---|---|\n"
    )
    for area, seconds in sorted(areas.items(), key=lambda kv: -kv[1]):
        share = seconds / total
        out.write(f"| {area} | {share:.0%} | {share * per_request_us:.0f} |\n")
    out.write("\n")
    listing = io.StringIO()
    pstats.Stats(str(stats_file), stream=listing).sort_stats("tottime").print_stats(top)
    out.write(listing.getvalue())
    return out.getvalue()


async def run(workload: str, rounds: int, top: int, save: str) -> str:
    from bench.bench_relay import upstream_fakes

    texts = []
    async with upstream_fakes():
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            config = workdir / "swapd.yaml"
            write_config(config, free_port_run(len(UPSTREAMS)))
            listen = free_port()
            prof = workdir / "swapd.prof"
            argv = [sys.executable, "-c", RUNNER, str(prof), "serve", "--config", str(config)]
            argv += ["--listen", f"127.0.0.1:{listen}", "--control-socket", str(workdir / "c.sock")]
            proc = spawn(argv, death_signal=signal.SIGTERM)
            try:
                base = f"http://127.0.0.1:{listen}"
                await load_every_model(base)
                client = UpstreamClient(max_idle_per_origin=STREAMS * 2)
                names = [workload] if workload != "both" else list(WORKLOADS)
                for name in names:
                    fn, count = WORKLOADS[name]
                    await fn(client, base, count // 5)  # warm-up: pools, caches
                    per_round = []
                    for _ in range(rounds):
                        cpu = _cpu(proc.pid)
                        done = await fn(client, base, count)
                        per_round.append((_cpu(proc.pid) - cpu) / done * 1e6)
                    await _signal(client, base, proc.pid, signal.SIGUSR1)
                    done = await fn(client, base, count)
                    await _signal(client, base, proc.pid, signal.SIGUSR2)
                    rounds_text = ", ".join(f"{r:.0f}" for r in per_round)
                    title = (
                        f"== {name}: {done} requests profiled; unprofiled rounds {rounds_text} us"
                    )
                    texts.append(title + "\n" + report(prof, min(per_round), done, top))
                    if save:
                        prof.replace(Path(save) / f"{name}.prof")
                    else:
                        prof.unlink()
                    prof.with_suffix(".prof.gc").unlink()
                await client.aclose()
            finally:
                stop(proc, grace=30)
    return "\n".join(texts)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="profile_relay", description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("small", "streams", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=3, help="unprofiled rounds (best is used)")
    parser.add_argument("--top", type=int, default=30, help="functions listed by own time")
    parser.add_argument("--save", metavar="DIR", default="", help="keep the profiles here")
    args = parser.parse_args(argv)
    print(trio.run(run, args.workload, args.rounds, args.top, args.save))


if __name__ == "__main__":
    main()
