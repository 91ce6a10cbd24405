"""CPU cost of the relay per request, in-process: the ASGI app called directly.

`python -m bench.bench_app [--requests N] [--profile] [--sort tottime|cumtime]`

No HTTP server in front: each request is a synthetic scope, a `receive` that
hands over the body once and then waits until the response is complete (as
swapd's server does, without its socket reads), and a `send` that only notes
the status. The router grants at once (as in `bench_relay --relay-only`), and
the real `UpstreamClient` talks to a real fake upstream in a subprocess, so what
is measured is the relay's own work per request: routing, auth, body read,
model extraction, in-flight bookkeeping, lease, the upstream exchange, the
relay of the response and the metrics. The server's share is not in it.

The figure is CPU time of this process (`time.process_time`) per request,
over many small non-streaming POST /v1/chat/completions requests one after
the other; the fake upstream's CPU is in another process and not counted.
With `--profile` a cProfile of the measured loop is printed as well.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from bench.bench_relay import body, fake_argv, free_port, spawn, stop, wait_http
from swapd.events import EventBus
from swapd.http.app import create_app
from swapd.http.logs_hub import LogHub
from swapd.http.services import Services
from swapd.http.settings import ApiSettings, ModelView
from swapd.http.upstream import UpstreamClient
from swapd.testing.stand_ins import GrantAtOnce, NoPool

MODEL = "small"
WARMUP = 200
REQUESTS = 2000
ROUNDS = 7


def make_scope(data: bytes) -> dict[str, Any]:
    """What an HTTP server would pass for a small JSON POST from an OpenAI client."""
    headers = [
        (b"host", b"127.0.0.1:8080"),
        (b"user-agent", b"OpenAI/Python 1.0"),
        (b"accept", b"application/json"),
        (b"accept-encoding", b"gzip, deflate"),
        (b"connection", b"keep-alive"),
        (b"content-type", b"application/json"),
        (b"authorization", b"Bearer sk-none"),
        (b"content-length", str(len(data)).encode()),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }


class Exchange:
    """The server side of one request: ASGI receive and send, as swapd's server does them.

    `receive` hands over the body, then blocks until the response is complete
    (or the client leaves, which never happens here) and returns
    `http.disconnect`; `send` only notes the status.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.delivered = False
        self.finished = False
        self.status = 0
        self._waiter: trio.CancelScope | None = None

    async def receive(self) -> dict[str, Any]:
        if not self.delivered:
            self.delivered = True
            return {"type": "http.request", "body": self.data, "more_body": False}
        if not self.finished:
            with trio.CancelScope() as self._waiter:
                await trio.sleep_forever()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif not message.get("more_body", False):
            self.finished = True
            if self._waiter is not None:
                self._waiter.cancel()


async def one_request(app: Any, data: bytes) -> int:
    """Call the app once as a server would; returns the response status."""
    exchange = Exchange(data)
    await app(make_scope(data), exchange.receive, exchange.send)
    return exchange.status


@asynccontextmanager
async def small_upstream() -> AsyncIterator[str]:
    """One fake upstream answering 4 tokens, up and healthy; yields its URL."""
    port = free_port()
    proc = spawn(fake_argv(port, "--tokens", "4"))
    upstream = f"http://127.0.0.1:{port}"
    try:
        probe = UpstreamClient()
        await wait_http(probe, upstream + "/health")
        await probe.aclose()
        yield upstream
    finally:
        stop(proc, grace=5)


async def run(requests: int, rounds: int, profile: bool, sort: str) -> dict[str, Any]:
    async with small_upstream() as upstream:
        bus = EventBus()
        settings = ApiSettings(models={MODEL: ModelView(MODEL, proxy=upstream)})
        services = Services(
            settings,
            GrantAtOnce({MODEL: upstream}),
            NoPool(),
            bus,
            LogHub(bus),
            client=UpstreamClient(),
        )
        async with trio.open_nursery() as nursery:
            # As in the daemon: one task starts the requests' disconnect watches.
            await nursery.start(services.watches.run)
            app = create_app(services)
            data = body(MODEL)
            for _ in range(WARMUP):
                if await one_request(app, data) != 200:
                    raise RuntimeError("the relay did not answer 200")
            per_request: list[float] = []
            for _ in range(rounds):
                cpu = time.process_time()
                for _ in range(requests):
                    await one_request(app, data)
                per_request.append((time.process_time() - cpu) / requests * 1e6)
            if profile:
                profiler = cProfile.Profile(time.process_time)  # CPU, not waits
                profiler.enable()
                for _ in range(requests):
                    await one_request(app, data)
                profiler.disable()
                stats = pstats.Stats(profiler, stream=sys.stdout)
                stats.sort_stats(sort).print_stats(35)
            nursery.cancel_scope.cancel()
        await services.client.aclose()
    return {
        "cpu_us_per_request": min(per_request),
        "median_us": statistics.median(per_request),
        "rounds_us": per_request,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench_app", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime", choices=("tottime", "cumtime"))
    args = parser.parse_args(argv)
    figures = trio.run(run, args.requests, args.rounds, args.profile, args.sort)
    rounds = ", ".join(f"{r:.0f}" for r in figures["rounds_us"])
    print(
        f"relay CPU per small request, in-process: {figures['cpu_us_per_request']:.0f} µs best, "
        f"{figures['median_us']:.0f} µs median ({args.rounds} rounds of {args.requests}: {rounds})"
    )
    return figures


if __name__ == "__main__":
    main()
