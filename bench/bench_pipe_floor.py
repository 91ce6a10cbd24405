"""The floor of a relay in Python: a trio byte pipe in front of the paced fake upstream.

The pipe parses nothing and routes nothing: each client connection gets its
own upstream connection and bytes are copied both ways. What it adds to the
time to first token of 32 concurrent streams (bench_relay's second measure,
the same rounds) is what any trio relay on this machine adds before doing
any work of its own, which puts bench_relay's `<= +2 ms` goal in context.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Sequence
from typing import Any

import trio

from bench.bench_relay import (
    PACED_ROUNDS,
    PACED_TOKENS,
    STREAMS,
    WARM_PACED_TOKENS,
    free_port,
    spawn,
    stop,
    streams,
    upstream_fakes,
    wait_http,
    warm,
)
from swapd.http.upstream import UpstreamClient

READ_SIZE = 64 * 1024


async def _copy(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    try:
        while data := await source.receive_some(READ_SIZE):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def serve_pipe(listen: int, upstream_port: int) -> None:
    """Copy bytes between each accepted connection and a new one to the upstream."""

    async def handle(client: trio.SocketStream) -> None:
        upstream = await trio.open_tcp_stream("127.0.0.1", upstream_port)
        async with client, upstream, trio.open_nursery() as nursery:
            nursery.start_soon(_copy, client, upstream)
            await _copy(upstream, client)
            nursery.cancel_scope.cancel()

    listeners = await trio.open_tcp_listeners(listen, host="127.0.0.1")
    await trio.serve_listeners(handle, listeners)


async def measure() -> dict[str, Any]:
    async with upstream_fakes() as fakes:
        port, direct = fakes["paced"]
        listen = free_port()
        argv = [sys.executable, "-m", "bench.bench_pipe_floor", "--serve", str(listen), str(port)]
        proc = spawn(argv)
        try:
            client = UpstreamClient(max_idle_per_origin=STREAMS * 2)
            piped = f"http://127.0.0.1:{listen}"
            await wait_http(client, piped + "/health")
            for base in (direct, piped):
                await warm(client, base, "paced", STREAMS, WARM_PACED_TOKENS)
            direct_ms, piped_ms = [], []
            for _ in range(PACED_ROUNDS):
                d = await streams(client, direct, "paced", STREAMS, PACED_TOKENS)
                p = await streams(client, piped, "paced", STREAMS, PACED_TOKENS)
                direct_ms.append(statistics.median(d.ttft_ms))
                piped_ms.append(statistics.median(p.ttft_ms))
            await client.aclose()
        finally:
            stop(proc, grace=5)
    figures = {
        "direct_ttft_ms": statistics.median(direct_ms),
        "pipe_ttft_ms": statistics.median(piped_ms),
        "rounds_added_ms": [p - d for d, p in zip(direct_ms, piped_ms, strict=True)],
    }
    figures["added_ttft_ms"] = figures["pipe_ttft_ms"] - figures["direct_ttft_ms"]
    return figures


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench_pipe_floor", description=__doc__.splitlines()[0])
    parser.add_argument("--serve", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        trio.run(serve_pipe, *args.serve)
        return {}
    f = trio.run(measure)
    rounds = ", ".join(f"{x:+.2f}" for x in f["rounds_added_ms"])
    print(f"relay floor: a trio byte pipe, {STREAMS} streams @200 tok/s (cores: {os.cpu_count()})")
    print(f"| {'TTFT p50 (ms), median of rounds':<34} | {'direct':>7} | {'pipe':>7} | added |")
    print(f"|{'-' * 36}|{'-' * 9}|{'-' * 9}|-------|")
    print(
        f"| {'':<34} | {f['direct_ttft_ms']:>7.2f} | {f['pipe_ttft_ms']:>7.2f} "
        f"| {f['added_ttft_ms']:+.2f} |"
    )
    print(f"added per round: {rounds} ms")
    return f


if __name__ == "__main__":
    main()
