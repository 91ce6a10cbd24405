"""Relay overhead: the fake upstream directly, through llama-swap and through swapd.

The three sides are measured in one run, on the same fake upstreams (one
per kind, reached directly; each proxy runs its own copies from the same
config, which llama-swap reads as swapd does), in `--rounds` rounds (5) in
which every side takes its turn in a rotating order, so that the noise of a
shared machine hits all alike:

* 500 small sequential requests: p50 and p99 latency, and the proxy's CPU
  per request;
* 32 concurrent streams at 200 tokens/s each: delivered tokens/s and time
  to first token (p50 and p90 of each round, median over rounds; goal:
  swapd adds at most 1.5 x what llama-swap adds);
* relay capacity: 32 concurrent streams from an upstream sending as fast as
  it can, SSE events/s.

"Through swapd" is a real `swapd serve` subprocess whose config runs the
fake upstreams as its models, so the figures include the router and the
whole HTTP stack. llama-swap is skipped, with a note, when its binary is
absent (`bench.anchor`), or with `--no-llama-swap`. With `--relay-only` the
swapd side is instead a bare relay (the HTTP app with a router that grants
at once) served by `--server` (swapd's own HTTP server or hypercorn), to
compare HTTP servers under the same app.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import trio

from bench.anchor import ABSENT_NOTE, llama_swap, llama_swap_binary
from swapd.http.upstream import UpstreamClient
from swapd.testing.ports import free_port_run

SMALL_REQUESTS = 500
STREAMS = 32
PACED_TOKENS = 200
PACED_INTERVAL = 1 / 200
FAST_TOKENS = 4000
WARM_PACED_TOKENS = 20  # 100 ms per stream: the 32 overlap
ROUNDS = 5
PACED_ROUNDS = ROUNDS
CHAT = "/v1/chat/completions"
JSON_HEADERS = [(b"content-type", b"application/json")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()
PR_SET_PDEATHSIG = 1


def spawn(
    argv: list[str], death_signal: int = signal.SIGKILL, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a helper process (before the measured part; blocking is fine here).

    It leads a process group of its own (so `stop` reaches everything it
    started) and gets `death_signal` if the bench itself dies, even by SIGKILL:
    no fake upstream or swapd outlives a killed bench. The bench forks from
    its main thread, which lives as long as it does (the signal is tied to the
    forking thread, not the process).
    """
    parent = os.getpid()

    def die_with_parent() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), death_signal)

    return subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent,
        env=env,
    )


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    """Stop a helper and everything it started, whatever state the bench is in.

    SIGTERM to its group first (swapd stops its models gracefully), SIGKILL to
    the group after `grace`; then any descendant that left the group (swapd
    starts each model in a session of its own) is killed too.
    """
    descendants = _descendants(proc.pid)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left
    descendants += _descendants(proc.pid)
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(descendants, timeout=5)


# Two settings of the fake upstream are changed for the bench, as real servers
# such as llama-server have them: TCP_NODELAY (it writes a response head and
# body in two writes; with Nagle's algorithm the second waits for the client's
# delayed ACK, ~40 ms) and a listen backlog above socketserver's 5 (32 streams
# connecting at once overflow it, and a dropped SYN is retried only after 1 s).
# Without them the figures measure those stalls instead of the relay.
FAKE_NODELAY = (
    "import sys, http.server, swapd.testing.fake_upstream as f; "
    "f.Handler.disable_nagle_algorithm = True; "
    "http.server.ThreadingHTTPServer.request_queue_size = 128; sys.exit(f.main())"
)


def fake_argv(port: int, *extra: str) -> list[str]:
    return [sys.executable, "-c", FAKE_NODELAY, "--port", str(port), "--quiet", *extra]


UPSTREAMS = {
    "small": ("--tokens", "4"),
    "paced": ("--token-interval", str(PACED_INTERVAL)),
    "fast": (),
}


def body(model: str, *, stream: bool = False, tokens: int = 4) -> bytes:
    payload = {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": tokens,
    }
    if stream:
        payload["stream"] = True
    return json.dumps(payload).encode()


async def wait_http(client: UpstreamClient, url: str, within: float = 20.0) -> None:
    with trio.fail_after(within):
        while True:
            try:
                response = await client.request("GET", url, [])
                await response.read()
                await response.aclose()
                if response.status == 200:
                    return
            except Exception:
                pass
            await trio.sleep(0.05)


# ----- measurements ---------------------------------------------------------------


async def sequential(client: UpstreamClient, base: str, model: str, count: int) -> list[float]:
    """Latencies (ms) of `count` small non-streaming requests, one after the other."""
    out = []
    data = body(model)
    for _ in range(count):
        start = time.perf_counter()
        response = await client.request("POST", base + CHAT, JSON_HEADERS, data)
        await response.read()
        await response.aclose()
        if response.status != 200:
            raise RuntimeError(f"small request answered {response.status}")
        out.append((time.perf_counter() - start) * 1000)
    return out


@dataclass
class StreamRun:
    events: int
    seconds: float
    ttft_ms: list[float]

    @property
    def rate(self) -> float:
        return self.events / self.seconds


async def streams(
    client: UpstreamClient, base: str, model: str, count: int, tokens: int
) -> StreamRun:
    """`count` concurrent streaming requests; SSE events delivered and time to first byte."""
    ttft: list[float] = []
    events = 0
    data = body(model, stream=True, tokens=tokens)

    async def one() -> None:
        nonlocal events
        start = time.perf_counter()
        response = await client.request("POST", base + CHAT, JSON_HEADERS, data)
        first = True
        async for chunk in response.chunks():
            if first:
                ttft.append((time.perf_counter() - start) * 1000)
                first = False
            events += chunk.count(b"data: ")
        await response.aclose()

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
    return StreamRun(events, time.perf_counter() - start, ttft)


async def warm(client: UpstreamClient, base: str, model: str, count: int, tokens: int) -> None:
    """Open `count` keep-alive connections on every hop before a measure.

    `count` streams are held open together (none is read before all have their
    response head), so swapd's pool to the upstream also ends up with `count`
    connections, as the client's pool to swapd and to the fake does. Concurrent
    small requests did not ensure that through swapd (one finished before the
    next arrived and its upstream connection was reused), and the measure then
    included dialling the fake, whose accept thread is slow while 32 others stream.
    """
    data = body(model, stream=True, tokens=tokens)
    heads = 0
    all_started = trio.Event()

    async def one() -> None:
        nonlocal heads
        response = await client.request("POST", base + CHAT, JSON_HEADERS, data)
        heads += 1
        if heads == count:
            all_started.set()
        await all_started.wait()
        await response.read()
        await response.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Side:
    """One way to reach the fakes: directly, or through a proxy (`pid` for its CPU)."""

    name: str
    bases: dict[str, str]  # kind -> base URL (a proxy serves every kind on one)
    pid: int | None = None
    small_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    paced: list[StreamRun] = field(default_factory=list)
    fast: list[StreamRun] = field(default_factory=list)


def _cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def rotated(sides: list[Side], turn: int) -> list[Side]:
    """The sides in a different order each round, so no side always goes first."""
    turn %= len(sides)
    return sides[turn:] + sides[:turn]


async def measure(sides: list[Side], names: dict[str, str], rounds: int) -> dict[str, Any]:
    """Every measurement on every side, in `rounds` interleaved rounds (sides[0] is direct)."""
    client = UpstreamClient(max_idle_per_origin=STREAMS * 2)
    per_round = max(1, SMALL_REQUESTS // rounds)
    for side in sides:
        await sequential(client, side.bases["small"], names["small"], 50)
        await warm(client, side.bases["paced"], names["paced"], STREAMS, WARM_PACED_TOKENS)
        await warm(client, side.bases["fast"], names["fast"], STREAMS, FAST_TOKENS // 10)
    # Where a round's burst of 32 first tokens falls varies by tens of percent from
    # round to round on a shared machine: each figure is over rounds in which every
    # side had its turn, in a rotating order.
    for turn in range(rounds):
        for side in rotated(sides, turn):
            cpu = _cpu(side.pid)
            small = side.bases["small"]
            side.small_ms += await sequential(client, small, names["small"], per_round)
            side.cpu_s += _cpu(side.pid) - cpu
        for side in rotated(sides, turn):
            run = await streams(client, side.bases["paced"], names["paced"], STREAMS, PACED_TOKENS)
            side.paced.append(run)
        for side in rotated(sides, turn):
            run = await streams(client, side.bases["fast"], names["fast"], STREAMS, FAST_TOKENS)
            side.fast.append(run)
    await client.aclose()
    figures: dict[str, Any] = {"rounds": rounds}
    for side in sides:
        key = side.name.replace("-", "_")
        figures[key] = {
            "p50_ms": pct(side.small_ms, 0.5),
            "p99_ms": pct(side.small_ms, 0.99),
            "cpu_us_per_request": side.cpu_s / len(side.small_ms) * 1e6,
            "paced_tokens_s": statistics.median(r.rate for r in side.paced),
            "ttft_p50_ms": statistics.median(statistics.median(r.ttft_ms) for r in side.paced),
            "ttft_p90_ms": statistics.median(pct(r.ttft_ms, 0.9) for r in side.paced),
            "ttft_p50_rounds_ms": [statistics.median(r.ttft_ms) for r in side.paced],
            "fast_events_s": statistics.median(r.rate for r in side.fast),
        }
    direct = figures[sides[0].name]
    for side in sides[1:]:
        f = figures[side.name.replace("-", "_")]
        for name in ("p50_ms", "p99_ms", "ttft_p50_ms", "ttft_p90_ms"):
            f[f"added_{name}"] = f[name] - direct[name]
        f["paced_ratio"] = f["paced_tokens_s"] / direct["paced_tokens_s"]
        f["fast_ratio"] = f["fast_events_s"] / direct["fast_events_s"]
    return figures


# (label, key, how swapd is compared with llama-swap, goal): "added" compares what each
# adds to direct, "ratio" the figures themselves.
ROWS = [
    ("small request p50 (ms)", "p50_ms", "added", "<= 1.0 x"),
    ("small request p99 (ms)", "p99_ms", "ratio", "<= 1.0 x"),
    ("CPU per small request (us)", "cpu_us_per_request", "ratio", "<= 1.0 x"),
    ("32 streams @200 tok/s, tokens/s", "paced_tokens_s", "ratio", ">= 1.0 x"),
    ("32 streams @200 tok/s, TTFT p50 (ms)", "ttft_p50_ms", "added", "<= 1.5 x"),
    ("32 streams @200 tok/s, TTFT p90 (ms)", "ttft_p90_ms", "added", "<= 1.0 x"),
    ("32 streams, fastest, events/s", "fast_events_s", "ratio", ">= 1.0 x"),
]


def compare(
    how: str, key: str, direct: dict[str, Any], anchor: dict[str, Any], swapd: dict[str, Any]
) -> str:
    if how == "ratio":
        return f"{swapd[key] / anchor[key]:.2f} x" if anchor[key] > 0 else "n/a"
    added_anchor, added_swapd = anchor[key] - direct[key], swapd[key] - direct[key]
    if added_anchor <= 0:
        return f"adds {added_swapd:+.2f} vs {added_anchor:+.2f}"
    return f"{added_swapd / added_anchor:.2f} x added"


def table(
    figures: dict[str, Any], title: str, proxy: str = "swapd", anchor: str = "llama_swap"
) -> str:
    """direct | llama-swap | swapd | swapd vs llama-swap (llama-swap's columns when measured).

    `anchor` names another side to put in llama-swap's columns (`--other`).
    """
    d = figures["direct"]
    s = figures[proxy]
    a = figures.get(anchor)
    lines = [
        title,
        "| measure | direct | llama-swap | swapd | swapd vs llama-swap | goal |",
        "|---|---|---|---|---|---|",
    ]
    for label, key, how, goal in ROWS:
        fmt = "{:.0f}" if key.endswith("_s") or key.startswith("cpu") else "{:.2f}"
        shown_direct = "" if key.startswith("cpu") else fmt.format(d[key])
        anchor = fmt.format(a[key]) if a else "-"
        versus = compare(how, key, d, a, s) if a else ""
        lines.append(
            f"| {label} | {shown_direct} | {anchor} | {fmt.format(s[key])} | {versus} | {goal} |"
        )
    return "\n".join(lines)


# ----- the swapd side -------------------------------------------------------------------


def write_config(path: Path, start_port: int) -> None:
    """The config swapd and llama-swap both read: the three fakes as models, side by side."""
    lines = ["healthCheckTimeout: 15", f"startPort: {start_port}", "models:"]
    for kind in UPSTREAMS:
        cmd = shlex.join(fake_argv(0, *UPSTREAMS[kind])).replace("--port 0", "--port ${PORT}")
        lines += [
            f"  {kind}:",
            f"    cmd: {cmd}",
            "    proxy: http://127.0.0.1:${PORT}",
            "    concurrencyLimit: 64",
        ]
    # one group that is not swapping: the three fakes run side by side
    lines += ["groups:", "  all:", "    swap: false", "    members: [small, paced, fast]"]
    path.write_text("\n".join(lines) + "\n")


async def load_every_model(base: str) -> None:
    """Wait for the proxy, then load each model through it."""
    client = UpstreamClient()
    await wait_http(client, base + "/health")
    for kind in UPSTREAMS:
        response = await client.request("POST", base + CHAT, JSON_HEADERS, body(kind, tokens=1))
        await response.read()
        await response.aclose()
        if response.status != 200:
            raise RuntimeError(f"{base} could not load {kind}: {response.status}")
    await client.aclose()


@asynccontextmanager
async def swapd_daemon(config: Path, source: str = "") -> AsyncIterator[tuple[str, int]]:
    """`swapd serve` on `config`; `source`, when given, is where its packages are imported from.
    Its state (the history) is kept beside the config, never in the user's state directory."""
    listen = free_port()
    argv = [sys.executable, "-m", "swapd", "serve", "--config", str(config)]
    argv += ["--listen", f"127.0.0.1:{listen}"]
    state = config.with_suffix(".state")
    state.mkdir(exist_ok=True)
    argv += ["--state-dir", str(state)]
    # a control socket of its own: two swapd sides (`--other`), or a swapd already
    # running on this machine, would otherwise refuse to share the default one
    argv += ["--control-socket", str(config.with_suffix(".sock"))]
    # SIGTERM if the bench dies: swapd then stops its models itself
    # (they would also get SIGKILL from their own death signal if it died).
    env = None
    if source:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(str(Path(source) / p) for p in ("daemon", "shared"))
    proc = spawn(argv, death_signal=signal.SIGTERM, env=env)
    try:
        base = f"http://127.0.0.1:{listen}"
        await load_every_model(base)
        yield base, proc.pid
    finally:
        stop(proc, grace=30)


@asynccontextmanager
async def upstream_fakes() -> AsyncIterator[dict[str, tuple[int, str]]]:
    ports = {kind: free_port() for kind in UPSTREAMS}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for kind, port in ports.items():
            procs.append(spawn(fake_argv(port, *UPSTREAMS[kind])))
        client = UpstreamClient()
        for port in ports.values():
            await wait_http(client, f"http://127.0.0.1:{port}/health")
        await client.aclose()
        yield {kind: (port, f"http://127.0.0.1:{port}") for kind, port in ports.items()}
    finally:
        for proc in procs:
            stop(proc, grace=10)


async def run_daemon(rounds: int, with_anchor: bool = True, other: str = "") -> dict[str, Any]:
    names = {k: k for k in UPSTREAMS}
    binary = llama_swap_binary() if with_anchor else None
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        async with upstream_fakes() as fakes, contextlib.AsyncExitStack() as proxies:
            sides = [Side("direct", {kind: url for kind, (_, url) in fakes.items()})]
            swapd_config = workdir / "swapd.yaml"
            write_config(swapd_config, free_port_run(len(UPSTREAMS)))
            base, pid = await proxies.enter_async_context(swapd_daemon(swapd_config))
            swapd = Side("swapd", dict.fromkeys(UPSTREAMS, base), pid)
            if binary is not None:
                anchor_config = workdir / "llama-swap.yaml"
                write_config(anchor_config, free_port_run(len(UPSTREAMS)))
                running = stack.enter_context(llama_swap(binary, anchor_config, workdir))
                await load_every_model(running.base_url)
                sides.append(
                    Side("llama-swap", dict.fromkeys(UPSTREAMS, running.base_url), running.pid)
                )
            sides.append(swapd)
            if other:  # another checkout of swapd, measured as one more side
                other_config = workdir / "other.yaml"
                write_config(other_config, free_port_run(len(UPSTREAMS)))
                base, pid = await proxies.enter_async_context(swapd_daemon(other_config, other))
                sides.append(Side("other", dict.fromkeys(UPSTREAMS, base), pid))
            figures = await measure(sides, names, rounds)
    if binary is None:
        figures["note"] = ABSENT_NOTE
    return figures


async def run_relay_only(server_name: str, rounds: int) -> dict[str, Any]:
    async with upstream_fakes() as fakes:
        listen = free_port()
        spec = json.dumps({kind: url for kind, (_port, url) in fakes.items()})
        argv = [sys.executable, "-m", "bench.bench_relay", "--serve-relay"]
        argv += ["--server", server_name, "--listen", str(listen), "--upstreams", spec]
        proc = spawn(argv)
        try:
            base = f"http://127.0.0.1:{listen}"
            client = UpstreamClient()
            await wait_http(client, base + "/health")
            await client.aclose()
            sides = [
                Side("direct", {kind: url for kind, (_port, url) in fakes.items()}),
                Side("swapd", dict.fromkeys(fakes, base), proc.pid),
            ]
            return await measure(sides, {k: k for k in fakes}, rounds)
        finally:
            stop(proc, grace=10)


# ----- the bare relay, on either HTTP server ------------------------------------------------


def serve_relay(server_name: str, listen: int, upstreams: dict[str, str]) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    from swapd.events import EventBus
    from swapd.http.app import create_app
    from swapd.http.logs_hub import LogHub
    from swapd.http.server import Server
    from swapd.http.services import Services
    from swapd.http.settings import ApiSettings, ModelView
    from swapd.testing.stand_ins import GrantAtOnce, NoPool

    async def main() -> None:
        bus = EventBus()
        client = UpstreamClient(max_idle_per_origin=128)
        settings = ApiSettings(models={k: ModelView(k) for k in upstreams})
        services = Services(
            settings, GrantAtOnce(upstreams), NoPool(), bus, LogHub(bus), client=client
        )
        if server_name == "swapd":
            async with trio.open_nursery() as nursery:
                await nursery.start(services.watches.run)
                await Server(create_app(services)).serve(
                    f"127.0.0.1:{listen}", shutdown_trigger=trio.sleep_forever
                )
            return
        config = Config()
        config.bind = [f"127.0.0.1:{listen}"]
        config.accesslog = None
        await serve(create_app(services), config)

    trio.run(main)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench_relay", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds (5)")
    parser.add_argument("--no-llama-swap", action="store_true", help="skip the llama-swap side")
    parser.add_argument(
        "--other",
        metavar="CHECKOUT",
        default="",
        help="also measure the swapd of another checkout (its daemon/ and shared/), e.g. main's",
    )
    parser.add_argument("--relay-only", action="store_true", help="bench a bare relay")
    parser.add_argument(
        "--server",
        choices=("swapd", "hypercorn"),
        default="swapd",
        help="the HTTP server of the bare relay (default swapd's own)",
    )
    parser.add_argument("--serve-relay", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--listen", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstreams", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_relay:
        serve_relay(args.server, args.listen, json.loads(args.upstreams))
        return {}
    if args.relay_only:
        figures = trio.run(run_relay_only, args.server, args.rounds)
        title = f"relay only, server {args.server} (cores: {os.cpu_count()}, {args.rounds} rounds)"
    else:
        figures = trio.run(run_daemon, args.rounds, not args.no_llama_swap, args.other)
        title = (
            f"swapd serve vs llama-swap vs direct (cores: {os.cpu_count()}, {args.rounds} rounds)"
        )
    print(table(figures, title))
    if "other" in figures:
        print(
            table(
                figures, f"this swapd (swapd) vs {args.other} (llama-swap column)", "swapd", "other"
            )
        )
    if "note" in figures:
        print(figures["note"])
    return figures


if __name__ == "__main__":
    main()
