"""Swapping real models: swapd against a bare llama.cpp server and against llama-swap.

Everything is measured in one run, with the demo's real llama.cpp server
(`swapd-llama-server`) and SmolLM2 (the `demo` extra), every side using the
same server options (`bench.real_servers.COMMON_OPTIONS`):

* **cold start**: a bare server, spawn -> first byte of a one-token chat
  completion (the client retries every 5 ms while the port refuses or the
  server answers 503 "loading");
* **swap overhead**: through swapd, the time to first byte of a one-token
  request that needs a swap (another model is ready and must be evicted),
  minus the bare cold start measured next to it (`--cold-starts` pairs, the
  order within a pair alternating; the median of the differences). Also
  split, from swapd's `/api/events`, into request -> target seen ready and
  ready -> first byte;
* **A B C x4**: twelve requests for three model IDs (all the same GGUF, each
  its own process), in the order A B C A B C ..., against llama-swap
  (`bench.anchor`) and against swapd, both reading the same config (one
  group with `swap: true`, so only one model runs at a time), each starting
  with nothing loaded, `--repeats` times, alternating. The requests are sent
  *concurrently*: each is started 10 ms after the previous one, so they
  arrive in that order while the first load is still under way, and the wall
  time runs from the first send to the last answer. That is the case where a
  proxy's scheduling matters: sent one after the other, each request needs
  its own load in both (pass `--sequential` to measure that too). Loads are
  counted from llama-swap's log (`<A> Health check passed`) and from swapd's
  `/api/events` stream (a model entering `starting`). Without a llama-swap
  binary this part measures swapd alone and says so;
* **daemon RSS** of the swapd process (children excluded), idle after start
  and after the run.

The machine may be shared and busy: each swapd figure is taken right after
its baseline, so a ratio never compares a quiet minute with a busy one. The
figures are returned by `main()` (JSON-able) and printed as one table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import psutil
import trio

from bench.anchor import ABSENT_NOTE, llama_swap, llama_swap_binary
from bench.real_servers import (
    COMMON_OPTIONS,
    bare_server,
    free_port,
    option_argv,
    spawn_group,
    stop_group,
)

MODELS = ("A", "B", "C")
ROUNDS = 4
COLD_STARTS = 6
REPEATS = 2
STAGGER = 0.01
PROBE_INTERVAL = 0.005
WORKLOAD_TOKENS = 8
START_WITHIN = 120.0
CHAT = "/v1/chat/completions"
RUNNING = frozenset({"starting", "ready", "stopping"})
MIB = 1024 * 1024


def chat_body(model: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }


def http_client(connections: int = 64) -> httpx2.AsyncClient:
    """A client that opens a fresh connection per request, for every side alike.

    llama.cpp's server (cpp-httplib) closes kept-alive connections on its own;
    a pooled connection it has closed fails the next POST ("server
    disconnected"), which would count as an error of the proxy in front
    that is really the client's. A local connect costs well under a
    millisecond, nothing next to a load.
    """
    limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=0)
    return httpx2.AsyncClient(timeout=httpx2.Timeout(10.0, read=None), limits=limits)


# ----- pure figures --------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    model: str
    status: int
    seconds: float
    text: str

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class WorkloadRun:
    """One A B C x4 run: wall time, every answer, and the loads per model."""

    wall: float
    answers: list[Answer]
    loads: Counter[str] = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return sum(not a.ok for a in self.answers)

    @property
    def total_loads(self) -> int:
        return sum(self.loads.values())


def workload_order(models: Sequence[str] = MODELS, rounds: int = ROUNDS) -> list[str]:
    """A B C A B C ...: `rounds` passes over `models`."""
    return [model for _ in range(rounds) for model in models]


class LoadCounter:
    """Counts loads (a model entering `starting`) from swapd's `modelStatus` snapshots.

    `/api/events` sends the whole list of model states on every state change.
    A load is a model seen in a running state (starting, ready, stopping)
    whose previous snapshot had it not running; seeing it ready without the
    starting in between (two changes encoded in one snapshot) still counts.
    The `SwapStarted` records (`swap` frames) are counted separately.
    """

    def __init__(self) -> None:
        self.states: dict[str, str] = {}
        self.loads: Counter[str] = Counter()
        self.swaps: Counter[str] = Counter()
        self.frames = 0

    def feed(self, kind: str, data: Any) -> None:
        self.frames += 1
        if kind == "modelStatus":
            for item in data:
                model, state = item.get("id", ""), item.get("state", "")
                was = self.states.get(model, "stopped")
                if state in RUNNING and was not in RUNNING:
                    self.loads[model] += 1
                self.states[model] = state
        elif kind == "swap" and isinstance(data, dict) and "evict" in data and "ok" not in data:
            self.swaps[data.get("target", "")] += 1

    def running(self) -> set[str]:
        return {model for model, state in self.states.items() if state in RUNNING}

    def settled(self) -> bool:
        """No model is half-way (starting or stopping)."""
        return not any(state in ("starting", "stopping") for state in self.states.values())


def parse_sse_frame(lines: Sequence[str]) -> tuple[str, Any] | None:
    """`(type, data)` of one `/api/events` frame (its `data:` line), or None."""
    for line in lines:
        if line.startswith("data:"):
            envelope = json.loads(line[5:])
            inner = envelope.get("data")
            data = json.loads(inner) if isinstance(inner, str) and inner[:1] in "[{" else inner
            return str(envelope.get("type", "")), data
    return None


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


# ----- client side --------------------------------------------------------------------


async def chat(client: httpx2.AsyncClient, base: str, model: str, max_tokens: int) -> Answer:
    start = time.perf_counter()
    try:
        response = await client.post(base + CHAT, json=chat_body(model, max_tokens))
    except httpx2.HTTPError as exc:
        return Answer(model, 0, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - start
    text = response.text
    if response.status_code == 200:
        text = response.json()["choices"][0]["message"].get("content") or ""
    return Answer(model, response.status_code, seconds, text)


async def first_byte(
    client: httpx2.AsyncClient, base: str, model: str, started: float, *, retry: bool
) -> float:
    """Seconds from `started` to the first body byte of a 200 answer to a one-token chat.

    With `retry`, a refused connection or a non-200 answer (llama-server says
    503 while it loads) is retried every `PROBE_INTERVAL`; without, it raises.
    """
    with trio.fail_after(START_WITHIN):
        while True:
            try:
                async with client.stream("POST", base + CHAT, json=chat_body(model, 1)) as response:
                    if response.status_code == 200:
                        async for chunk in response.aiter_raw():
                            if chunk:
                                return time.perf_counter() - started
                    body = await response.aread()
                    if not retry:
                        raise RuntimeError(f"{model}: {response.status_code} {body[:200]!r}")
            except httpx2.TransportError:
                if not retry:
                    raise
            await trio.sleep(PROBE_INTERVAL)


async def wait_http(client: httpx2.AsyncClient, url: str, within: float = START_WITHIN) -> None:
    """Poll `url` until it answers 200 (setup only, outside any measured interval)."""
    with trio.fail_after(within):
        while True:
            with contextlib.suppress(httpx2.TransportError):
                if (await client.get(url)).status_code == 200:
                    return
            await trio.sleep(0.02)


async def interleaved(
    client: httpx2.AsyncClient,
    base: str,
    order: Sequence[str],
    *,
    concurrent: bool = True,
    max_tokens: int = WORKLOAD_TOKENS,
) -> tuple[float, list[Answer]]:
    """Send `order` (concurrently, `STAGGER` apart, or one after the other): wall time, answers."""
    answers: list[Answer | None] = [None] * len(order)

    async def one(index: int, model: str) -> None:
        answers[index] = await chat(client, base, model, max_tokens)

    start = time.perf_counter()
    if concurrent:
        async with trio.open_nursery() as nursery:
            for index, model in enumerate(order):
                if index:
                    await trio.sleep(STAGGER)
                nursery.start_soon(one, index, model)
    else:
        for index, model in enumerate(order):
            await one(index, model)
    wall = time.perf_counter() - start
    return wall, [a for a in answers if a is not None]


# ----- the baselines: a bare server and llama-swap ------------------------------------------


async def cold_start(client: httpx2.AsyncClient, binary: Path, gguf: Path, workdir: Path) -> float:
    """Spawn -> first byte of a one-token completion of a bare llama-server."""
    started = time.perf_counter()
    with bare_server(binary, gguf, workdir) as (_proc, base):
        return await first_byte(client, base, "bare", started, retry=True)


async def llama_swap_workload(
    binary: Path, workdir: Path, order: Sequence[str], *, concurrent: bool
) -> WorkloadRun:
    """The A B C workload against a fresh llama-swap, on swapd's config with ports of its own."""
    config = workdir / "llama-swap.yaml"
    config.write_text(swapd_config_yaml({model: free_port() for model in MODELS}))
    async with http_client() as client:
        with llama_swap(binary, config, workdir, env=proxy_environment()) as proxy:
            await wait_http(client, proxy.base_url + "/v1/models")
            wall, answers = await interleaved(client, proxy.base_url, order, concurrent=concurrent)
        # read after it stopped: every line it wrote is in the file by then
        loads = proxy.loads()
    if any(a.ok for a in answers) and not loads:
        raise RuntimeError(f"llama-swap answered but no load was counted in {proxy.log}")
    return WorkloadRun(wall, answers, loads)


# ----- the swapd side ----------------------------------------------------------------------


def swapd_config_yaml(
    ports: Mapping[str, int],
    *,
    swap: bool = True,
    matrix_sets: Mapping[str, str] | None = None,
    kv_dir: Path | None = None,
) -> str:
    """A config for the demo's llama-server and model under `ports`' IDs.

    Paths come from `${env.SWAPD_LLAMA_SERVER}` / `${env.SWAPD_SMOLLM2_GGUF}`
    (`swapd_demo.env.demo_environment()`), as in `config/demo.yaml`. Each
    model gets its own fixed port, so its processes can be found by command
    line. Routing: one group holding every model, with `swap` (true: only one
    runs at a time), or, given `matrix_sets` (set name -> DSL over the model
    IDs, which must be valid variable names), the matrix router. With
    `kv_dir`, every model saves its slots there (`kvCache.persist`).
    """
    options = " ".join(option_argv(COMMON_OPTIONS))
    if kv_dir is not None:
        options += " --slot-save-path ${KV_DIR}"
    lines = [
        "healthCheckTimeout: 120",
        "macros:",
        "  llama: >-",
        "    ${env.SWAPD_LLAMA_SERVER} --host 127.0.0.1",
        f"    --model ${{env.SWAPD_SMOLLM2_GGUF}} {options}",
        "models:",
    ]
    if kv_dir is not None:
        lines[1:1] = [f"kvCache: {{persist: true, dir: {kv_dir}}}"]
    for model_id, port in ports.items():
        lines += [
            f"  {model_id}:",
            f"    cmd: ${{llama}} --port {port} --alias {model_id}",
            f"    proxy: http://127.0.0.1:{port}",
        ]
    if matrix_sets is None:
        members = ", ".join(ports)
        swap_text = "true" if swap else "false"
        lines += ["groups:", "  only:", f"    swap: {swap_text}", f"    members: [{members}]"]
    else:
        lines += ["routing:", "  router:", "    use: matrix", "    settings:", "      matrix:"]
        lines += ["        vars:", *(f"          {m}: {m}" for m in ports)]
        lines += [
            "        sets:",
            *(f"          {name}: {dsl}" for name, dsl in matrix_sets.items()),
        ]
    return "\n".join(lines) + "\n"


def proxy_environment() -> dict[str, str]:
    """A proxy's environment: ours and the demo's paths, without systemd's variables.

    systemd's variables are dropped so a bench or test run inside a unit does
    not talk to it.
    """
    from swapd_demo.env import demo_environment

    env = dict(os.environ)
    env.update(demo_environment())
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "RUNTIME_DIRECTORY", "JOURNAL_STREAM"):
        env.pop(name, None)
    return env


def swapd_environment(control_socket: Path) -> dict[str, str]:
    """swapd's environment: `proxy_environment()` and a private control socket.

    `SWAPD_SOCKET` is the path rule every swapd tool follows (`swapctl.paths`).
    """
    return {**proxy_environment(), "SWAPD_SOCKET": str(control_socket)}


@dataclass
class SwapdDaemon:
    """A `swapd serve` subprocess on a private port, config and control socket."""

    proc: subprocess.Popen[bytes]
    port: int
    config: Path
    socket: Path
    log: Path
    model_ports: dict[str, int]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the daemon process itself (children excluded)."""
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_listening(self, client: httpx2.AsyncClient, within: float = 60.0) -> None:
        """Poll `/health` until it answers 200; fail with the daemon's output if it exited."""
        with trio.fail_after(within):
            while self.proc.poll() is None:
                with contextlib.suppress(httpx2.TransportError):
                    if (await client.get(self.base_url + "/health")).status_code == 200:
                        return
                await trio.sleep(0.02)
        raise RuntimeError(f"swapd exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}")


def serve_argv(config: Path, port: int, control_socket: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "swapd",
        "serve",
        "--config",
        str(config),
        "--listen",
        f"127.0.0.1:{port}",
        "--control-socket",
        str(control_socket),
    ]


@contextlib.contextmanager
def swapd_daemon(
    workdir: Path, models: Sequence[str] = MODELS, **config: Any
) -> Iterator[SwapdDaemon]:
    """Start swapd on a fresh config in `workdir`; SIGTERM it (and its group) afterwards."""
    model_ports = {model: free_port() for model in models}
    path = workdir / "swapd.yaml"
    path.write_text(swapd_config_yaml(model_ports, **config))
    port = free_port()
    control = workdir / "control.sock"
    log = workdir / f"swapd-{port}.log"
    proc = spawn_group(serve_argv(path, port, control), log, swapd_environment(control))
    try:
        yield SwapdDaemon(proc, port, path, control, log, model_ports)
    finally:
        stop_group(proc, grace=30.0)


class LiveLoads:
    """A LoadCounter fed by a background task, with a way to wait on what it has seen."""

    def __init__(self) -> None:
        self.counter = LoadCounter()
        self.ready_at: dict[str, float] = {}  # perf_counter() when a model was last seen turn ready
        self._changed = trio.Event()

    def feed(self, kind: str, data: Any) -> None:
        before = dict(self.counter.states)
        self.counter.feed(kind, data)
        for model, state in self.counter.states.items():
            if state == "ready" and before.get(model) != "ready":
                self.ready_at[model] = time.perf_counter()
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Callable[[LoadCounter], bool]) -> None:
        while not predicate(self.counter):
            await self._changed.wait()


@contextlib.asynccontextmanager
async def watched_loads(client: httpx2.AsyncClient, base: str) -> AsyncIterator[LiveLoads]:
    """Follow swapd's `/api/events` in the background, counting loads, while the block runs.

    Yields once the stream is open and its initial `modelStatus` is in, so no
    load of the block can be missed.
    """
    counter = LiveLoads()
    ready = trio.Event()

    async def follow(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with client.stream("GET", base + "/api/events") as response:
            if response.status_code != 200:
                raise RuntimeError(f"/api/events answered {response.status_code}")
            frame: list[str] = []
            async for line in response.aiter_lines():
                if line:
                    frame.append(line)
                    continue
                parsed = parse_sse_frame(frame)
                frame = []
                if parsed is None:
                    continue
                counter.feed(*parsed)
                if parsed[0] == "modelStatus" and not ready.is_set():
                    ready.set()
                    task_status.started()

    async with trio.open_nursery() as nursery:
        with trio.fail_after(30):
            await nursery.start(follow)
        yield counter
        nursery.cancel_scope.cancel()


async def swapd_workload(
    client: httpx2.AsyncClient, daemon: SwapdDaemon, order: Sequence[str], *, concurrent: bool
) -> WorkloadRun:
    """The A B C workload through swapd, from nothing loaded; loads from `/api/events`."""
    await unload_all(client, daemon.base_url)
    async with watched_loads(client, daemon.base_url) as live:
        wall, answers = await interleaved(client, daemon.base_url, order, concurrent=concurrent)
        await settle(client, daemon.base_url, live)
        return WorkloadRun(wall, answers, Counter(live.counter.loads))


async def settle(client: httpx2.AsyncClient, base: str, live: LiveLoads) -> None:
    """Wait until the event stream agrees with `/running`: every load so far is counted."""
    response = await client.get(base + "/running")
    running = {item["model"] for item in response.json()["running"]}
    with trio.fail_after(30):
        await live.wait_for(lambda c: c.running() == running and c.settled())


async def measured_swap(
    client: httpx2.AsyncClient, base: str, live: LiveLoads, model: str
) -> tuple[float, float]:
    """A swap to `model`: (time to first byte, time until the event stream showed it ready)."""
    started = time.perf_counter()
    ttfb = await first_byte(client, base, model, started, retry=False)
    with trio.fail_after(30):  # the ready frame may trail the answer a little
        await live.wait_for(lambda _c: live.ready_at.get(model, 0.0) > started)
    return ttfb, live.ready_at[model] - started


async def swap_first_byte(client: httpx2.AsyncClient, base: str, model: str) -> float:
    """Time to first byte of a one-token request for `model`, which must need a swap."""
    started = time.perf_counter()
    return await first_byte(client, base, model, started, retry=False)


async def unload_all(client: httpx2.AsyncClient, base: str) -> None:
    response = await client.get(base + "/unload")
    if response.status_code != 200:
        raise RuntimeError(f"/unload answered {response.status_code}")


# ----- the run and its table -------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement, each swapd figure taken right after its baseline.

    The machine is shared and its load drifts; pairing each baseline with its
    swapd counterpart (bare cold start then swapd swap, llama-swap workload
    then swapd workload) keeps a ratio from comparing a quiet minute with a
    busy one.
    """
    from swapd_demo.env import llama_server_binary, smollm2_gguf

    binary, gguf = llama_server_binary(), smollm2_gguf()
    anchor = llama_swap_binary()
    if anchor is None:
        print(ABSENT_NOTE, flush=True)
    order = workload_order()
    modes = [True, False] if args.sequential else [True]
    raw: dict[str, Any] = {"cold": [], "swap": [], "anchor": {}, "swapd": {}}
    async with contextlib.AsyncExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-swap-")))
        client = await stack.enter_async_context(http_client())
        daemon = None
        if not args.baselines_only:
            daemon = stack.enter_context(swapd_daemon(workdir))
            await daemon.wait_listening(client)
            raw["rss_idle"] = daemon.rss()
            raw["cpu_idle"] = daemon.cpu_seconds()
        for concurrent in modes:
            mode = "concurrent" if concurrent else "sequential"
            for _ in range(args.repeats):
                if anchor is not None:
                    raw["anchor"].setdefault(mode, []).append(
                        await llama_swap_workload(anchor, workdir, order, concurrent=concurrent)
                    )
                if daemon is not None:
                    raw["swapd"].setdefault(mode, []).append(
                        await swapd_workload(client, daemon, order, concurrent=concurrent)
                    )
        live = None
        if daemon is not None:  # make A ready, so each request below needs a swap
            await swap_first_byte(client, daemon.base_url, MODELS[0])
            live = await stack.enter_async_context(watched_loads(client, daemon.base_url))
        for index in range(args.cold_starts):
            if index % 2:  # alternate which of the pair goes first
                raw["cold"].append(await cold_start(client, binary, gguf, workdir))
            if daemon is not None and live is not None:
                model = MODELS[(index + 1) % 2]
                ttfb, ready = await measured_swap(client, daemon.base_url, live, model)
                raw["swap"].append(ttfb)
                raw.setdefault("swap_ready", []).append(ready)
            if not index % 2:
                raw["cold"].append(await cold_start(client, binary, gguf, workdir))
        if daemon is not None:
            raw["rss_after"] = daemon.rss()
            raw["cpu_after"] = daemon.cpu_seconds()
    return figures_of(raw)


def _workload_figures(runs: Sequence[WorkloadRun]) -> dict[str, Any]:
    """Median wall time over the repeats; loads, errors and answers of every run."""
    failed = [a for r in runs for a in r.answers if not a.ok]
    return {
        "wall_s": statistics.median(r.wall for r in runs),
        "wall_s_each": [r.wall for r in runs],
        "loads": max(r.total_loads for r in runs),
        "loads_each": [r.total_loads for r in runs],
        "loads_per_model": [dict(sorted(r.loads.items())) for r in runs],
        "errors": sum(r.errors for r in runs),
        "error_samples": [f"{a.model}: {a.status} {a.text[:200]}" for a in failed][:3],
        "answers": sum(sum(a.ok for a in r.answers) for r in runs),
    }


def figures_of(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-able figures from the raw measures, with the ratios against the baselines.

    `raw`: `cold` and `swap` (paired lists of seconds, `swap` empty without
    swapd), `anchor` (llama-swap) and `swapd` (mode -> WorkloadRun), `rss_idle` and
    `rss_after` (bytes). The swap overhead is the median of the paired
    differences (each swap minus the cold start measured just before it).
    """
    figures: dict[str, Any] = {"cores": os.cpu_count(), "cold_start_s": summary(raw["cold"])}
    for mode, runs in raw["anchor"].items():
        figures[f"llama_swap_{mode}"] = _workload_figures(runs)
    if not raw["swap"]:
        return figures
    figures["swap_ttfb_s"] = summary(raw["swap"])
    pairs = [s - c for s, c in zip(raw["swap"], raw["cold"], strict=True)]
    figures["swap_overhead_ms"] = statistics.median(pairs) * 1000
    # where a swap's time goes: request -> target seen ready on /api/events (stop the
    # evicted model, spawn, load, readiness probe), then ready -> first byte (grant, relay,
    # and llama-server's own one-token answer, which the bare cold start includes too)
    figures["swap_ready_s"] = summary(raw["swap_ready"])
    after_ready = [t - r for t, r in zip(raw["swap"], raw["swap_ready"], strict=True)]
    figures["swap_ready_to_first_byte_ms"] = statistics.median(after_ready) * 1000
    for mode, runs in raw["swapd"].items():
        mine = figures[f"swapd_{mode}"] = _workload_figures(runs)
        base = figures.get(f"llama_swap_{mode}")
        if base is not None:
            figures[f"wall_ratio_{mode}"] = mine["wall_s"] / base["wall_s"]
    figures["rss_idle_mib"] = raw["rss_idle"] / MIB
    figures["rss_after_mib"] = raw["rss_after"] / MIB
    # the daemon's own CPU per load, over every workload run and measured swap: on a
    # small machine it competes with the model being loaded
    loads = sum(r.total_loads for runs in raw["swapd"].values() for r in runs) + len(raw["swap"])
    figures["swapd_cpu_s"] = raw["cpu_after"] - raw["cpu_idle"]
    figures["swapd_cpu_ms_per_load"] = figures["swapd_cpu_s"] * 1000 / max(1, loads)
    return figures


def _each(values: Sequence[int]) -> str:
    return ",".join(str(v) for v in values)


def table(f: Mapping[str, Any]) -> str:
    """One table: the baseline (a bare server, llama-swap), swapd, and swapd against it."""
    rows: list[tuple[str, str, str, str]] = []
    cold_ms = f["cold_start_s"]["median"] * 1000
    swapd_present = "swapd_concurrent" in f
    swap_ms = f["swap_ttfb_s"]["median"] * 1000 if swapd_present else None
    if swapd_present:
        rows.append(
            (
                "swap: target ready / ready -> 1st byte (ms)",
                "",
                f"{f['swap_ready_s']['median'] * 1000:.0f} / "
                f"{f['swap_ready_to_first_byte_ms']:.0f}",
                "",
            )
        )
    rows.insert(
        0,
        (
            "cold start / swap, first byte (ms, median)",
            f"{cold_ms:.0f} (bare)",
            f"{swap_ms:.0f} (swap)" if swap_ms is not None else "-",
            f"{f['swap_overhead_ms']:+.0f} ms" if swapd_present else "-",
        ),
    )
    for mode in ("concurrent", "sequential"):
        base = f.get(f"llama_swap_{mode}")
        mine = f.get(f"swapd_{mode}")
        if base is None and mine is None:
            continue
        ratio = f.get(f"wall_ratio_{mode}")
        rows.append(
            (
                f"A B C x4 {mode}, wall (s, median)",
                f"{base['wall_s']:.2f} (llama-swap)" if base else "-",
                f"{mine['wall_s']:.2f}" if mine else "-",
                f"{ratio:.2f} x" if ratio is not None else "-",
            )
        )
        rows.append(
            (
                f"A B C x4 {mode}, loads per run / errors",
                f"{_each(base['loads_each'])} / {base['errors']}" if base else "-",
                f"{_each(mine['loads_each'])} / {mine['errors']}" if mine else "-",
                f"{mine['loads'] - base['loads']:+d} loads" if mine and base else "-",
            )
        )
    if swapd_present:
        rows.append(
            (
                "swapd RSS idle / after (MiB)",
                "",
                f"{f['rss_idle_mib']:.1f} / {f['rss_after_mib']:.1f}",
                f"+{f['rss_after_mib'] - f['rss_idle_mib']:.1f} MiB",
            )
        )
        rows.append(
            (
                "swapd CPU per load (ms, whole run)",
                "",
                f"{f['swapd_cpu_ms_per_load']:.0f}",
                "",
            )
        )
    head = ("measure", "baseline", "swapd", "swapd vs baseline")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = [f"swapping SmolLM2-135M with llama.cpp's server (cores: {f['cores']})"]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        cells = [
            row[0].ljust(widths[0]),
            *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench_swap", description=__doc__.splitlines()[0])
    parser.add_argument("--cold-starts", type=int, default=COLD_STARTS)
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs of each workload")
    parser.add_argument("--sequential", action="store_true", help="also send A B C x4 one by one")
    parser.add_argument("--baselines-only", action="store_true", help="skip the swapd side")
    args = parser.parse_args(argv)
    figures = trio.run(run, args)
    print(table(figures))
    return figures


if __name__ == "__main__":
    main()
