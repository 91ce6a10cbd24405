"""What keeping history costs a request, and how fast the writer writes.

`python -m bench.bench_history [--records N] [--no-relay] [--ab-rounds N] [--ab-requests N]`

Rows:

- `record()`: wall time of one call on the event loop (median over chunks of
  100 calls), and the loop thread's CPU per record over a whole run: 100-call
  bursts between checkpoints, as requests finish, with the writer task
  batching them to a real SQLite file meanwhile, so the writer's share on the
  loop (waking, swapping its list, handing a batch to a thread) is counted.
  The CPU of the same loop with a `record` that does nothing is subtracted.
  `time.thread_time` counts the loop's thread only: the SQLite work in the
  worker thread is not the loop's cost.
- usage parsing on the loop: `UsageParser` fed a small JSON answer, and a
  31-event chat stream, then read; beside it, the regex scan of the last
  16 KiB that `/metrics` runs on every response today, which it replaces.
- the writer's throughput: records per second from the first `record()` to
  `flushed()`, and `Database.write` alone in batches of 500.
- the baseline: the relay's CPU per small request in-process (`bench_app`,
  the same run), and what recording plus usage parsing add to it, against
  the goal of at most 3 %. The tail scan the parser replaces is not
  subtracted, so the figure overstates the difference.
- recording on vs off, end to end over HTTP (`_relay_ab`): three relays on
  swapd's HTTP server in this process, one fake upstream: one without
  history, one whose records go to a store that drops them (the loop's
  share), one with a history store in a temporary state directory (records
  written by the store's writer, captures off); small non-streaming
  requests from a client process, the sides taking turns request by
  request. The added cost is the median over rounds of (loop on + writer)
  - loop off: where recording's cost goes, on a relay without a router.
- the goal: `swapd serve` with history on vs off (`_daemon_ab`), two daemons
  on the same config taken in turn request by request, each daemon's CPU
  (all its threads) per request; the median over rounds of on minus off,
  against the 3 % goal.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import trio

from bench import bench_app
from swapd.history import (
    HistorySettings,
    RequestRecord,
    UsageParser,
    open_history,
)
from swapd.history.database import Database
from swapd.history.records import AnyRecord
from swapd.testing.fake_upstream import completion_envelope, stream_events

RECORDS = 100_000
BURST = 100
GOAL_PERCENT = 3.0


def request(i: int) -> RequestRecord:
    return RequestRecord(
        id=i, start=time.time(), client="127.0.0.1:40000", requested="chat", model="chat",
        route="/v1/chat/completions", stream=False, outcome="done", status=200, queued_s=0.0,
        load_wait_s=None, ttfb_s=0.0012, duration_s=0.0015, prompt_tokens=12,
        completion_tokens=4, tokens_per_s=None,
    )  # fmt: skip


class _NoStore:
    """A store that takes records and keeps none."""

    next_request_id = 1

    def record(self, record: RequestRecord) -> None:
        pass


async def _loop_cost(records: list[RequestRecord], state: Path | None) -> dict[str, float]:
    """Loop-thread CPU per record, and the median wall time of one call."""
    settings = HistorySettings(max_pending=len(records) + 1)
    calls: list[float] = []
    if state is None:
        store: Any = _NoStore()
        gc.collect()
        cpu = time.thread_time()
        await _feed(store, records, calls)
        cpu = time.thread_time() - cpu
        return {"cpu_us": cpu / len(records) * 1e6, "call_us": statistics.median(calls)}
    async with open_history(state, settings) as store:
        gc.collect()
        cpu = time.thread_time()
        await _feed(store, records, calls)
        await store.flushed()
        cpu = time.thread_time() - cpu
        assert store.status().written >= len(records), store.status()
    return {"cpu_us": cpu / len(records) * 1e6, "call_us": statistics.median(calls)}


async def _feed(store: Any, records: list[RequestRecord], calls: list[float]) -> None:
    clock = time.perf_counter
    for start in range(0, len(records), BURST):
        before = clock()
        for record in records[start : start + BURST]:
            store.record(record)
        calls.append((clock() - before) / BURST * 1e6)
        await trio.lowlevel.checkpoint()


async def _throughput(records: list[RequestRecord], state: Path) -> float:
    settings = HistorySettings(max_pending=len(records) + 1)
    async with open_history(state, settings) as store:
        start = time.perf_counter()
        for record in records:
            store.record(record)
        await store.flushed(hurry=False)
        seconds = time.perf_counter() - start
        assert store.status().written == len(records), store.status()
    return len(records) / seconds


def _write_alone(records: list[RequestRecord], path: Path) -> float:
    db = Database.open_writer(path)
    try:
        start = time.perf_counter()
        for i in range(0, len(records), 500):
            db.write(records[i : i + 500])
        return len(records) / (time.perf_counter() - start)
    finally:
        db.close()


def _usage_us() -> dict[str, float | None]:
    """Per response: the parser fed and read; and the tail scan `/metrics` does today."""
    usage = {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
    answer = json.dumps(completion_envelope("chat.completion", "chat", usage)).encode()
    events = list(stream_events("chat", "chat", 30, usage, None))

    def parse(chunks: list[bytes], stream: bool) -> None:
        parser = UsageParser(stream)
        for chunk in chunks:
            parser.feed(chunk)
        parser.result()

    out: dict[str, float | None] = {
        "json_us": _best_us(lambda: parse([answer], False), 20_000),
        "stream_us": _best_us(lambda: parse(events, True), 2_000),
        "tail_scan_json_us": None,
        "tail_scan_stream_us": None,
    }
    try:
        from swapd.http.metrics import parse_usage as tail_scan
    except ImportError:  # the HTTP side may no longer have it
        return out
    whole = b"".join(events)
    out["tail_scan_json_us"] = _best_us(lambda: tail_scan(answer), 20_000)
    out["tail_scan_stream_us"] = _best_us(lambda: tail_scan(whole[-16384:]), 2_000)
    return out


def _best_us(call: Callable[[], object], rounds: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(rounds):
            call()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best * 1e6


def _relay_baseline() -> tuple[float | None, str]:
    try:
        from bench import bench_app

        figures = trio.run(bench_app.run, 500, 3, False, "tottime")
        return float(figures["cpu_us_per_request"]), ""
    except Exception as exc:  # the baseline is optional: its absence is reported
        return None, f"{type(exc).__name__}: {exc}"


AB_ROUNDS = 15
AB_REQUESTS = 300
DAEMON_ROUNDS = 30
DAEMON_REQUESTS = 500
#: Relays compared: no history; records built and queued to a store that drops them
#: (the loop's share alone); records written by a real store.
SIDES = ("off", "unwritten", "on")


class _WriterClock:
    """The CPU the store's writer spends in `Database.write`, on its worker thread.

    The sides take turns request by request, so the writer's batches run while
    any side's request is in progress: its CPU is counted where it is spent,
    and added to the recording side.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._write = Database.write

    def __enter__(self) -> _WriterClock:
        clock, write = self, self._write

        def timed(db: Database, records: Sequence[AnyRecord]) -> None:
            started = time.thread_time()
            try:
                write(db, records)
            finally:
                clock.seconds += time.thread_time() - started

        Database.write = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        Database.write = self._write  # type: ignore[method-assign]


async def _relay_ab(rounds: int, requests: int, state: Path) -> dict[str, Any]:
    """Recording on vs off, over HTTP: three relays on swapd's own HTTP server in
    this process, one fake upstream, a client in a process of its own.

    The client (`_ab_client`) takes the sides in turn request by request (the
    order rotating each round), so whatever the machine does meanwhile falls
    on all three alike; rounds of a few hundred requests per side, compared
    one after the other, swung by 20 % and hid a difference of a few percent.
    Around each request it reads this process's loop thread's CPU time from
    the kernel (`/proc/.../schedstat`, nanoseconds), once that thread is idle
    again (so the work after the response, the record among it, is counted).
    The loop's CPU between requests (the writer task waking and handing a
    batch to its thread) is charged to the recording side, and the writer
    thread's CPU is measured where it writes (`_WriterClock`) and added too.
    """
    from bench.bench_relay import body
    from swapd.events import EventBus
    from swapd.history.recorder import Recorder
    from swapd.http.app import create_app
    from swapd.http.logs_hub import LogHub
    from swapd.http.server import Server
    from swapd.http.services import Services
    from swapd.http.settings import ApiSettings, ModelView
    from swapd.http.upstream import UpstreamClient
    from swapd.serve_cli import tune_garbage_collector, tune_thread_switching
    from swapd.testing.stand_ins import GrantAtOnce, NoPool

    async with bench_app.small_upstream() as upstream:
        with _WriterClock() as writer:
            async with open_history(state) as store, trio.open_nursery() as nursery:
                urls: dict[str, str] = {}
                clients = []
                for side in SIDES:
                    bus = EventBus()
                    settings = ApiSettings(models={"small": ModelView("small", proxy=upstream)})
                    client = UpstreamClient()
                    clients.append(client)
                    kept: Any = {"off": None, "on": store, "unwritten": _NoStore()}[side]
                    services = Services(
                        settings, GrantAtOnce({"small": upstream}), NoPool(), bus, LogHub(bus),
                        client=client, recorder=Recorder(bus, kept),
                    )  # fmt: skip
                    await nursery.start(services.watches.run)
                    served = await nursery.start(
                        partial(
                            Server(create_app(services)).serve,
                            "127.0.0.1:0",
                            shutdown_trigger=trio.sleep_forever,
                        )
                    )
                    urls[side] = served[0]
                # The relays run as `swapd serve` runs them.
                tune_garbage_collector()
                tune_thread_switching()
                spec = {
                    "pid": os.getpid(),
                    "tid": threading.get_native_id(),
                    "urls": urls,
                    "rounds": rounds,
                    "requests": requests,
                    "body": body("small").decode(),
                }
                done = await trio.run_process(
                    [sys.executable, "-m", "bench.bench_history", "--ab-client", json.dumps(spec)],
                    capture_stdout=True,
                )
                await store.flushed()
                written = store.status().written
                nursery.cancel_scope.cancel()
            for client in clients:
                await client.aclose()
    measured = json.loads(done.stdout)
    loop: dict[str, list[float]] = measured["loop_us"]
    between: list[float] = measured["between_us"]
    writer_us = writer.seconds / max(written, 1) * 1e6
    on = [o + b for o, b in zip(loop["on"], between, strict=True)]
    off = statistics.median(loop["off"])

    def added(side: list[float], extra: float = 0.0) -> float:
        diffs = [s - o for s, o in zip(side, loop["off"], strict=True)]
        return (statistics.median(diffs) + extra) / off * 100

    return {
        "ab_rounds": rounds,
        "ab_requests": requests,
        "ab_written": written,
        "ab_off_us": off,
        "ab_loop_on_us": statistics.median(on),
        "ab_between_us": statistics.median(between),
        "ab_writer_us": writer_us,
        "ab_loop_added_percent": added(on),
        "ab_added_percent": added(on, writer_us),
        "ab_unwritten_us": statistics.median(loop["unwritten"]),
        "ab_unwritten_added_percent": added(loop["unwritten"]),
        "ab_rounds_us": {side: [round(v, 1) for v in loop[side]] for side in SIDES},
    }


async def _daemon_ab(rounds: int, requests: int) -> dict[str, Any]:
    """Recording on vs off as deployed: two `swapd serve` on the same config, one with
    `history: {enabled: false}`, each its own process, a client taking them in turn
    request by request. Each daemon's CPU (every thread: the loop, the writer, the
    router, the meter) is read from the kernel around each round; the difference is
    the median over rounds of on minus off, against the 3 % goal."""
    from bench.bench_relay import body, free_port_run, swapd_daemon, write_config

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bases: dict[str, str] = {}
        pids: dict[str, int] = {}
        async with contextlib.AsyncExitStack() as stack:
            for side in ("off", "on"):
                config = work / f"{side}.yaml"
                write_config(config, free_port_run(3))
                if side == "off":
                    with config.open("a") as f:
                        f.write("history:\n  enabled: false\n")
                bases[side], pids[side] = await stack.enter_async_context(swapd_daemon(config))
            figures = await trio.to_thread.run_sync(
                _alternate, bases, pids, body("small"), rounds, requests
            )
    cpu = figures["cpu_us"]
    off = statistics.median(cpu["off"])
    diffs = [on - o for on, o in zip(cpu["on"], cpu["off"], strict=True)]
    return {
        "daemon_rounds": rounds,
        "daemon_requests": requests,
        "daemon_off_us": off,
        "daemon_on_us": statistics.median(cpu["on"]),
        "daemon_added_percent": statistics.median(diffs) / off * 100,
        "daemon_rounds_us": {side: [round(v, 1) for v in cpu[side]] for side in cpu},
    }


def _alternate(
    bases: dict[str, str], pids: dict[str, int], data: bytes, rounds: int, requests: int
) -> dict[str, Any]:
    """Sequential keep-alive requests to each daemon in turn; each daemon's CPU per
    request in each round (all its threads' time on a CPU)."""
    one = _Client(bases, data).one

    def cpu(side: str) -> float:
        """Seconds on a CPU of all the daemon's threads (nanoseconds from the scheduler;
        psutil's user and system times tick in 10 ms, a few percent of a round)."""
        total = 0
        for task in Path(f"/proc/{pids[side]}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that just ended
                total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9

    sides = list(bases)
    for _ in range(bench_app.WARMUP):
        for side in sides:
            one(side)
    figures: dict[str, list[float]] = {side: [] for side in sides}
    for turn in range(rounds):
        order = sides[turn % 2 :] + sides[: turn % 2]
        before = {side: cpu(side) for side in sides}
        for _ in range(requests):
            for side in order:
                one(side)
        for side in sides:
            figures[side].append((cpu(side) - before[side]) / requests * 1e6)
    return {"cpu_us": figures}


class _Client:
    """Keep-alive connections to each side; one small chat request at a time."""

    def __init__(self, urls: dict[str, str], data: bytes) -> None:
        import http.client
        from urllib.parse import urlsplit

        self._conns = {}
        for side, url in urls.items():
            parts = urlsplit(url)
            self._conns[side] = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self._data = data

    def one(self, side: str) -> None:
        conn = self._conns[side]
        conn.request("POST", "/v1/chat/completions", self._data, JSON)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"the {side} side answered {response.status}")


JSON = {"Content-Type": "application/json"}


def _ab_client(spec: dict[str, Any]) -> dict[str, Any]:
    """The A/B's client (its own process): sequential keep-alive requests to the three
    relays in turn, each bracketed by the relay's loop-thread CPU time."""

    task = f"/proc/{spec['pid']}/task/{spec['tid']}"
    schedstat = os.open(f"{task}/schedstat", os.O_RDONLY)
    wchan = os.open(f"{task}/wchan", os.O_RDONLY)

    def cpu_ns() -> int:
        return int(os.pread(schedstat, 64, 0).split()[0])

    def settle() -> None:
        """Wait for the loop thread to sleep in epoll: the request's work is done. (Asleep
        on a futex, it waits for the GIL, held by the writer: its work is not done.)"""
        for _ in range(1_000_000):
            if b"epoll" in os.pread(wchan, 64, 0):
                return
            os.sched_yield()  # the writer and the upstream need the cores more
        raise RuntimeError("the relay's loop thread never went idle")

    one = _Client(spec["urls"], spec["body"].encode()).one

    for _ in range(bench_app.WARMUP):
        for side in SIDES:
            one(side)
    loop: dict[str, list[float]] = {side: [] for side in SIDES}
    between: list[float] = []
    requests = spec["requests"]
    for turn in range(spec["rounds"]):
        order = SIDES[turn % 3 :] + SIDES[: turn % 3]
        spent = dict.fromkeys(SIDES, 0)
        settle()
        round_start = cpu_ns()
        for _ in range(requests):
            for side in order:
                settle()
                before = cpu_ns()
                one(side)
                settle()
                spent[side] += cpu_ns() - before
        settle()
        total = cpu_ns() - round_start
        for side in SIDES:
            loop[side].append(spent[side] / requests / 1e3)
        between.append((total - sum(spent.values())) / requests / 1e3)
    return {"loop_us": loop, "between_us": between}


def run(records: int = RECORDS, relay: bool = True) -> dict[str, Any]:
    batch = [request(i) for i in range(records)]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        bare = trio.run(_loop_cost, batch, None)
        best: dict[str, float] | None = None
        for attempt in range(3):  # the least disturbed of three runs
            row = trio.run(_loop_cost, batch, base / f"loop{attempt}")
            if best is None or row["cpu_us"] < best["cpu_us"]:
                best = row
        assert best is not None
        throughput = trio.run(_throughput, batch, base / "throughput")
        alone = _write_alone(batch, base / "alone.sqlite3")
    usage = _usage_us()
    loop_us = max(0.0, best["cpu_us"] - bare["cpu_us"])
    figures: dict[str, Any] = {
        "records": records,
        "record_call_us": best["call_us"],
        "record_loop_cpu_us": loop_us,
        "harness_cpu_us": bare["cpu_us"],
        "usage_json_us": usage["json_us"],
        "usage_stream_us": usage["stream_us"],
        "tail_scan_json_us": usage["tail_scan_json_us"],
        "tail_scan_stream_us": usage["tail_scan_stream_us"],
        "writer_records_per_s": throughput,
        "write_alone_records_per_s": alone,
        "relay_us": None,
        "added_percent": None,
        "goal_percent": GOAL_PERCENT,
    }
    if relay:
        relay_us, why = _relay_baseline()
        figures["relay_us"] = relay_us
        figures["relay_missing"] = why
        if relay_us:
            added = loop_us + (usage["json_us"] or 0.0)
            figures["added_percent"] = added / relay_us * 100
    return figures


def table(f: dict[str, Any]) -> str:
    lines = _store_lines(f) if "records" in f else []
    if f.get("relay_us") is not None:
        lines.append(
            f"  relay CPU per small request (bench_app)  {f['relay_us']:8.1f} us: recording and "
            f"usage add {f['added_percent']:.2f} % (estimated from the parts)"
        )
    elif f.get("relay_missing"):
        lines.append(f"  relay baseline not measured: {f['relay_missing']}")
    if f.get("ab_rounds"):
        lines += [
            f"recording on vs off over HTTP, {f['ab_rounds']} rounds of {f['ab_requests']} small"
            f" requests per side, the sides taking turns request by request ({f['ab_written']}"
            " records written)",
            f"  loop thread per request   off {f['ab_off_us']:7.1f} us   on "
            f"{f['ab_loop_on_us']:7.1f} us (of which between requests {f['ab_between_us']:.1f} us)"
            f"   added {f['ab_loop_added_percent']:+.2f} %",
            f"  writer thread per record  {f['ab_writer_us']:7.1f} us",
            f"  loop + writer             added {f['ab_added_percent']:+.2f} %"
            " (a bare relay: no router, so a smaller base than the daemon's)",
            f"  records built, not written (the loop's share)  {f['ab_unwritten_us']:7.1f} us"
            f"   added {f['ab_unwritten_added_percent']:+.2f} %",
        ]
    if f.get("daemon_rounds"):
        lines += [
            f"swapd serve, history on vs off, {f['daemon_rounds']} rounds of"
            f" {f['daemon_requests']} small requests per daemon, taken in turn",
            f"  daemon CPU per request    off {f['daemon_off_us']:7.1f} us   on"
            f" {f['daemon_on_us']:7.1f} us   added {f['daemon_added_percent']:+.2f} %"
            f" (goal <= {f['goal_percent']:.0f} %)",
        ]
    return "\n".join(lines)


def _store_lines(f: dict[str, Any]) -> list[str]:
    return [
        f"history: cost on the event loop per request, and the writer ({f['records']} records)",
        f"  record(), one call (median)              {f['record_call_us']:8.2f} us",
        f"  record() + writer, loop CPU per record   {f['record_loop_cpu_us']:8.2f} us"
        f"   (harness {f['harness_cpu_us']:.2f} us subtracted)",
        f"  usage of a small JSON answer             {f['usage_json_us']:8.2f} us"
        f"{_was(f['tail_scan_json_us'])}",
        f"  usage of a 31-event stream               {f['usage_stream_us']:8.2f} us"
        f"{_was(f['tail_scan_stream_us'])}",
        f"  writer, record() to flushed              {f['writer_records_per_s']:8.0f} records/s",
        f"  Database.write alone, batches of 500     {f['write_alone_records_per_s']:8.0f}"
        " records/s",
    ]


def _was(us: float | None) -> str:
    return "" if us is None else f"   (the tail scan of /metrics: {us:.2f} us)"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench_history", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=RECORDS)
    parser.add_argument("--no-relay", action="store_true", help="skip the relay baseline")
    parser.add_argument("--ab-rounds", type=int, default=AB_ROUNDS, help="0 skips on vs off")
    parser.add_argument("--ab-requests", type=int, default=AB_REQUESTS)
    parser.add_argument("--ab-only", action="store_true", help="only recording on vs off")
    parser.add_argument(
        "--daemon-rounds", type=int, default=DAEMON_ROUNDS, help="0 skips swapd serve on vs off"
    )
    parser.add_argument("--daemon-requests", type=int, default=DAEMON_REQUESTS)
    parser.add_argument("--ab-client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ab_client:
        print(json.dumps(_ab_client(json.loads(args.ab_client))))
        return {}
    figures = (
        {"goal_percent": GOAL_PERCENT} if args.ab_only else run(args.records, not args.no_relay)
    )
    if args.ab_rounds > 0:
        with tempfile.TemporaryDirectory() as tmp:
            figures.update(trio.run(_relay_ab, args.ab_rounds, args.ab_requests, Path(tmp)))
    if args.daemon_rounds > 0:
        figures.update(trio.run(_daemon_ab, args.daemon_rounds, args.daemon_requests))
    print(table(figures))
    return figures


if __name__ == "__main__":
    main()
