"""Soak: thousands of requests against swapd on the demo's real llama.cpp server, no hangs.

`python -m bench.soak [--requests 3000] [--clients 16] [--runs 5]` (`just soak`).
Not part of the test suite or of `just bench`: a run takes minutes.

Each run starts a fresh swapd with two models on llama.cpp's own server
(SmolLM2, the demo extra), both running, and sends `--requests` chat
completions from `--clients` concurrent clients, each with its own
keep-alive connection pool, mixing plain and streamed answers. On purpose:

* some clients go idle now and then for longer than llama.cpp keeps an idle
  connection (about 5 s), so swapd's pooled upstream connections go stale;
* some requests are abandoned: the client disconnects before the answer
  (right after sending, or after the first streamed bytes).

A request that does not finish within `--timeout` seconds is a hung request.
A run passes with zero hung requests and no unexpected error; the report
lists each hung request with when it started, and swapd's `slow request`
log lines, which say where a request waited (queue, load, upstream connect,
upstream head, response). The exit status is 1 when any run failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import trio

from bench.bench_swap import SwapdDaemon, serve_argv, swapd_config_yaml, swapd_environment
from bench.real_servers import free_port, spawn_group, stop_group

MODELS = ("chat", "code")
IDLE_GAP = (5.5, 7.0)  # seconds: longer than llama.cpp's idle keep-alive
IDLE_CHANCE = 0.01
ABANDON_CHANCE = 0.05
CONCURRENCY_LIMIT = 64  # above the clients: a 429 would be a soak artefact


@contextlib.contextmanager
def soak_daemon(workdir: Path) -> Iterator[SwapdDaemon]:
    """swapd with both models on the demo's llama.cpp server, running side by side."""
    ports = {model: free_port() for model in MODELS}
    text = swapd_config_yaml(ports, swap=False)
    limit = f"\n    concurrencyLimit: {CONCURRENCY_LIMIT}"
    text = "\n".join(
        line + limit if line.startswith("    proxy: ") else line for line in text.splitlines()
    )
    path = workdir / "swapd.yaml"
    path.write_text(text + "\n")
    port = free_port()
    control = workdir / "control.sock"
    log = workdir / f"swapd-{port}.log"
    proc = spawn_group(serve_argv(path, port, control), log, swapd_environment(control))
    try:
        yield SwapdDaemon(proc, port, path, control, log, ports)
    finally:
        stop_group(proc, grace=30.0)


@dataclass
class RunReport:
    requests: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    hung: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    slow_lines: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.hung and not self.unexpected


def chat(model: str, rng: random.Random, stream: bool) -> dict[str, Any]:
    words = " ".join(rng.choice(("swap", "model", "token", "relay", "trio")) for _ in range(6))
    return {
        "model": model,
        "messages": [{"role": "user", "content": f"Say one word about {words}."}],
        "max_tokens": rng.randint(1, 8),
        "stream": stream,
    }


async def one_request(
    client: httpx2.AsyncClient,
    rng: random.Random,
    report: RunReport,
    hang_after: float,
    start: float,
) -> None:
    model = rng.choice(MODELS)
    stream = rng.random() < 0.5
    abandon = rng.random() < ABANDON_CHANCE
    payload = chat(model, rng, stream)
    began = time.monotonic()
    label = f"{model} stream={stream} at +{began - start:.1f} s"
    with trio.move_on_after(hang_after) as scope:
        try:
            if abandon:
                # the client leaves: right after sending, or after the first bytes
                with trio.move_on_after(rng.choice((0.0, 0.05, 0.3))):
                    async with client.stream("POST", "/v1/chat/completions", json=payload) as r:
                        async for _ in r.aiter_raw():
                            break
                report.outcomes["abandoned"] += 1
                return
            if stream:
                async with client.stream("POST", "/v1/chat/completions", json=payload) as r:
                    data = b"".join([chunk async for chunk in r.aiter_raw()])
                    status = r.status_code
                ok = status == 200 and b"[DONE]" in data
            else:
                r = await client.post("/v1/chat/completions", json=payload)
                status = r.status_code
                ok = status == 200 and "choices" in r.json()
            if ok:
                report.outcomes["ok"] += 1
                report.latencies.append(time.monotonic() - began)
            else:
                report.outcomes[f"status {status}"] += 1
                report.unexpected.append(f"{label}: status {status}")
        except httpx2.TransportError as exc:
            report.outcomes["transport error"] += 1
            report.unexpected.append(f"{label}: {type(exc).__name__}: {exc}")
    if scope.cancelled_caught:
        report.outcomes["hung"] += 1
        report.hung.append(f"{label}: no answer within {hang_after:g} s")


async def client_loop(
    base: str,
    seed: int,
    queue: trio.MemoryReceiveChannel[int],
    report: RunReport,
    hang_after: float,
    start: float,
) -> None:
    rng = random.Random(seed)
    limits = httpx2.Limits(max_connections=4, max_keepalive_connections=4)
    async with httpx2.AsyncClient(base_url=base, timeout=None, limits=limits) as client:
        async for _ in queue:
            if rng.random() < IDLE_CHANCE:
                await trio.sleep(rng.uniform(*IDLE_GAP))
            report.requests += 1
            await one_request(client, rng, report, hang_after, start)


async def soak_run(args: argparse.Namespace, run: int, workdir: Path) -> RunReport:
    report = RunReport()
    with soak_daemon(workdir) as daemon:
        async with httpx2.AsyncClient(timeout=60) as probe:
            await daemon.wait_listening(probe)
            for model in MODELS:  # both loaded before the clock starts
                r = await probe.post(
                    daemon.base_url + "/v1/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": "hi"}],
                          "max_tokens": 1},
                )  # fmt: skip
                r.raise_for_status()
        start = time.monotonic()
        send, receive = trio.open_memory_channel[int](args.requests)
        for i in range(args.requests):
            send.send_nowait(i)
        send.close()
        async with trio.open_nursery() as nursery:
            for client in range(args.clients):
                nursery.start_soon(
                    client_loop, daemon.base_url, run * 1000 + client, receive.clone(),
                    report, args.timeout, start,
                )  # fmt: skip
        report.seconds = time.monotonic() - start
        report.slow_lines = [
            line for line in daemon.log_text().splitlines() if "slow request" in line
        ]
    return report


def describe(run: int, report: RunReport) -> str:
    lat = sorted(report.latencies) or [0.0]
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items()))
    lines = [
        f"run {run}: {'PASS' if report.passed else 'FAIL'}: {report.requests} requests in "
        f"{report.seconds:.0f} s ({outcomes}); answered p50 {p50:.2f} s, p99 {p99:.2f} s; "
        f"hung {len(report.hung)}; slow-request log lines {len(report.slow_lines)}"
    ]
    lines += [f"  hung: {h}" for h in report.hung]
    lines += [f"  unexpected: {u}" for u in report.unexpected[:20]]
    lines += [f"  swapd: {s}" for s in report.slow_lines[:20]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=60.0, help="a request hangs past this")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    results = []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as tmp:
            report = trio.run(soak_run, args, run, Path(tmp))
        print(describe(run, report), flush=True)
        results.append(report)
    failed = sum(not r.passed for r in results)
    print(f"soak: {len(results) - failed} of {len(results)} runs passed")
    if args.json:
        rows = [
            {
                "requests": r.requests, "seconds": r.seconds, "outcomes": r.outcomes,
                "hung": r.hung, "unexpected": r.unexpected, "slow": r.slow_lines,
            }
            for r in results
        ]  # fmt: skip
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
