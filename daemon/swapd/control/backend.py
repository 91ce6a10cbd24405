"""`DaemonBackend`: the control server's view of the running daemon.

It reads reports (process snapshots, the router's snapshot, explain and
decision log, log rings) and turns them into protocol payloads; it decides
nothing. Actions go through their owners: `load` is a router lease (the
router decides what to evict), `unload` is the router's unload, `reload` is
whatever reload function the daemon hands in.

The daemon swaps `backend.parts` for a new `DaemonParts` when a reload
rebuilds the router or the pool; every query reads the current parts.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import msgspec
import trio

from swapctl import protocol as p
from swapd import __version__
from swapd.config import ConfigError, LoadedConfig, load_config
from swapd.control import convert
from swapd.control.interface import ControlError, EventSource
from swapd.events import EventBus, Subscription
from swapd.history import ActivityQuery, HistoryQuery, HistoryUnavailable
from swapd.history.recorder import Recorder
from swapd.history.store import HistoryStore
from swapd.ports import PoolPort, RouterPort
from swapd.process.events import LogLine
from swapd.process.logs import LogRing
from swapd.process.meter import MeterView
from swapd.process.states import ProcessState
from swapd.router.build import footprint_table
from swapd.router.errors import (
    LoadFailed,
    ModelNotFound,
    RequestAborted,
    RouterError,
    TooManyRequests,
)
from swapd.router.events import RUNNING_STATES
from swapd.router.footprints import FootprintTable, Learned
from swapd.simulate.compare import (
    UsageError,
    compare,
    history_inputs,
    resolve_load_times,
    resolve_wake_times,
)
from swapd.simulate.report import Report
from swapd.simulate.trace import TraceRequest

SIMULATE_WINDOW = 24 * 3600.0
"""`simulate` without `since`: the last day."""
SIMULATE_MAX_REQUESTS = 100_000
"""Most requests a `simulate` replays (the latest of its window): a day of busy
traffic, a few seconds of a worker thread per config."""
SIMULATE_FLUSH_TIMEOUT = 5.0
"""How long `simulate` waits for records not yet written before reading the history."""
STATS_WINDOW = 3600.0
"""`stats` without `since`: the last hour."""
CAPTURE_REPLY_BODY = 320 * 1024
"""Most bytes of each body a `capture` reply carries: base64 of both fits a line."""
MERGE_LOG_BYTES = 64 * 1024
"""Most text merged into one `log` event; far below the 1 MiB line limit, escapes included."""
LOG_SOURCES_HELP = '"proxy", "upstream", "all" or a model ID'


class LogsLike(Protocol):
    """The daemon's shared log rings (`swapd.http.logs_hub.LogHub`)."""

    proxy: LogRing
    upstream: LogRing
    mux: LogRing


@dataclass
class DaemonParts:
    """What the backend reads; replaced as a whole on reload."""

    loaded: LoadedConfig
    router: RouterPort
    pool: PoolPort
    bus: EventBus
    logs: LogsLike
    listen: Sequence[str] = ()
    recorder: Recorder | None = None
    """The history and captures; None when the daemon keeps neither."""
    # live meters and budgets
    meter: MeterView | None = None
    learned: Learned | None = None


Reloader = Callable[[], Awaitable[p.ReloadResult]]
"""Reload the config: returns what changed, or raises ControlError("config_invalid", ...)."""


class DaemonBackend:
    def __init__(
        self,
        parts: DaemonParts,
        *,
        reloader: Reloader | None = None,
        started: float | None = None,
    ) -> None:
        self.parts = parts
        self.reloader = reloader
        self.started = time.time() if started is None else started
        self._started_monotonic = time.monotonic()
        self._simulations = trio.CapacityLimiter(1)

    # --- helpers ----------------------------------------------------------------

    def _resolve(self, name: str) -> str:
        model_id = self.parts.loaded.resolve(name)
        if model_id is None or model_id not in self.parts.pool:
            raise ControlError("not_found", f"no local model named {name!r}")
        return model_id

    def _running(self) -> list[str]:
        snaps = self.parts.pool.snapshots()
        return [m for m, s in snaps.items() if str(s.state) in RUNNING_STATES]

    def _running_set(self, running: Sequence[str]) -> str | None:
        matrix = self.parts.loaded.matrix
        if matrix is None or not running:
            return None
        return matrix.solve(running[0], running).set

    # --- queries ----------------------------------------------------------------

    def info(self) -> p.DaemonInfo:
        loaded = self.parts.loaded
        return p.DaemonInfo(
            version=__version__,
            pid=os.getpid(),
            started=self.started,
            config_path=str(loaded.path),
            router=loaded.router_use,
            listen=list(self.parts.listen),
        )

    def status(self) -> p.Status:
        snaps = self.parts.pool.snapshots()
        states: dict[str, int] = {}
        for snap in snaps.values():
            states[str(snap.state)] = states.get(str(snap.state), 0) + 1
        running = self._running()
        router = self.parts.router.snapshot()
        return p.Status(
            daemon=self.info(),
            uptime=time.monotonic() - self._started_monotonic,
            models=len(snaps),
            states=states,
            running=running,
            running_set=self._running_set(running),
            in_flight=sum(router.in_flight.values()),
            queued=sum(router.queued.values()) + sum(router.waiting.values()),
            legend=convert.legend(),
            history=self._history_info(),
            host=self._host(),
            capacity=self._capacity(
                running,
                frozenset(m for m, x in snaps.items() if x.state is ProcessState.ASLEEP),
            ),
        )

    def _history_info(self) -> p.HistoryInfo | None:
        recorder = self.parts.recorder
        if recorder is None or recorder.store is None:
            return None
        return convert.history_info(recorder.store.status(), len(recorder.captures))

    def models(self) -> list[p.ModelInfo]:
        loaded = self.parts.loaded
        router = self.parts.router.snapshot()
        groups: dict[str, list[str]] = {}
        for name, group in loaded.groups.items():
            for member in group.members:
                groups.setdefault(member, []).append(name)
        rows = []
        table = self._table()
        for model_id, snap in self.parts.pool.snapshots().items():
            cfg = loaded.models.get(model_id)
            rows.append(
                p.ModelInfo(
                    id=model_id,
                    state=str(snap.state),
                    name=cfg.name if cfg else "",
                    description=cfg.description if cfg else "",
                    pid=snap.pid,
                    port=cfg.port if cfg else None,
                    proxy=snap.proxy_url,
                    in_flight=router.in_flight.get(model_id, snap.in_flight),
                    queued=router.queued.get(model_id, 0),
                    waiting=router.waiting.get(model_id, 0),
                    ttl=float(cfg.ttl) if cfg else 0.0,
                    ttl_left=snap.ttl_left,
                    last_load_seconds=snap.last_load_seconds,
                    argv=list(snap.argv),
                    env=dict(cfg.env) if cfg else {},
                    groups=groups.get(model_id, []),
                    sets=list(loaded.matrix.sets_of(model_id)) if loaded.matrix else [],
                    aliases=list(cfg.aliases) if cfg else [],
                    unlisted=cfg.unlisted if cfg else False,
                    last_exit_code=snap.last_exit_code,
                    starts=snap.starts,
                    failures=snap.failures,
                    last_failure=snap.last_failure,
                    last_failure_at=snap.last_failure_at,
                    meters=self._meters(model_id),
                    footprint=convert.footprint(table, model_id) if table else None,
                )
            )
        return rows

    # --- live meters and budgets ---------------------------------------------------

    def _table(self) -> FootprintTable | None:
        return footprint_table(self.parts.loaded, self.parts.learned)

    def _meters(self, model_id: str) -> p.Meters | None:
        meter = self.parts.meter
        reading = meter.reading(model_id) if meter is not None else None
        return convert.meters(reading) if reading is not None else None

    def _host(self) -> p.HostMeters | None:
        meter = self.parts.meter
        host = meter.host() if meter is not None else None
        return convert.host(host) if host is not None else None

    def _capacity(
        self, running: Sequence[str], asleep: frozenset[str] = frozenset()
    ) -> list[p.CapacityUse]:
        table = self._table()
        return convert.capacity(table, running, asleep) if table is not None else []

    def _ring(self, source: str) -> LogRing:
        logs = self.parts.logs
        named = {"proxy": logs.proxy, "upstream": logs.upstream, "all": logs.mux}
        if source in named:
            return named[source]
        model_id = self.parts.loaded.resolve(source)
        if model_id is None or model_id not in self.parts.pool:
            raise ControlError("not_found", f"no log source {source!r}; use {LOG_SOURCES_HELP}")
        return self.parts.pool[model_id].logs

    def logs(self, source: str, max_bytes: int) -> p.LogText:
        ring = self._ring(source)
        picked: deque[str] = deque()
        size = 0
        truncated = False
        for line in reversed(ring.lines()):
            cost = len(line.text.encode()) + 1
            if size + cost > max_bytes:
                truncated = True
                break
            picked.appendleft(line.text)
            size += cost
        text = "".join(t + "\n" for t in picked)
        return p.LogText(source=source, text=text, truncated=truncated)

    def explain(self, model: str) -> p.Explanation:
        model_id = self._resolve(model)
        x = self.parts.router.explain(model_id)
        return convert.explanation(x, asked=model, running=self._running())

    def matrix(self, model: str | None, limit: int) -> p.MatrixView:
        loaded = self.parts.loaded
        running = self._running()
        explained = self.explain(model) if model is not None else None
        if loaded.matrix is None:
            return p.MatrixView(
                router="group",
                running=running,
                groups=[
                    p.GroupInfo(
                        name=name,
                        members=list(g.members),
                        swap=g.swap,
                        exclusive=g.exclusive,
                        persistent=g.persistent,
                    )
                    for name, g in loaded.groups.items()
                ],
                explain=explained,
            )
        matrix = loaded.matrix
        # One more than shown tells, per set, whether there were more than `limit`.
        expansion = matrix.expand(limit + 1)
        sets = []
        for name in matrix.set_names:
            combos = expansion.sets.get(name, [])
            sets.append(
                p.MatrixSet(
                    name=name,
                    dsl=matrix.dsl(name),
                    combinations=combos[:limit],
                    truncated=len(combos) > limit,
                )
            )
        return p.MatrixView(
            router="matrix",
            sets=sets,
            truncated=any(s.truncated for s in sets),
            running=running,
            running_set=self._running_set(running),
            evict_costs={m: matrix.cost_of(m) for m in sorted(loaded.models)},
            explain=explained,
        )

    def decisions(self, limit: int) -> list[p.Decision]:
        return [convert.decision(d) for d in self.parts.router.decisions(limit)]

    # --- history ----------------------------------------------------------------

    def _store(self) -> HistoryStore:
        recorder = self.parts.recorder
        if recorder is None or recorder.store is None:
            raise ControlError("unavailable", "this daemon keeps no history (history.enabled)")
        return recorder.store

    async def activity(self, query: p.ActivityRequest) -> list[p.RequestRecord]:
        store = self._store()
        model = query.model
        if model is not None:
            model = self.parts.loaded.resolve(model) or model
        asked = ActivityQuery(
            model=model, outcome=query.outcome, since=query.since, until=query.until,
            limit=query.limit,
        )  # fmt: skip
        try:
            records = await store.activity(asked)
        except HistoryUnavailable as exc:
            raise ControlError("unavailable", str(exc)) from None
        return [convert.request_record(r) for r in records]

    async def history(self, query: p.HistoryRequest) -> list[p.HistoryRecord]:
        store = self._store()
        model = query.model
        if model is not None:
            model = self.parts.loaded.resolve(model) or model
        asked = HistoryQuery(
            kinds=tuple(query.kinds) or HistoryQuery().kinds, model=model, since=query.since,
            until=query.until, limit=query.limit,
        )  # fmt: skip
        try:
            records = await store.history(asked)
        except HistoryUnavailable as exc:
            raise ControlError("unavailable", str(exc)) from None
        return [convert.history_record(r) for r in records]

    async def stats(self, since: float | None, until: float | None) -> p.Stats:
        store = self._store()
        end = time.time() if until is None else until
        start = end - STATS_WINDOW if since is None else since
        try:
            stats = await store.stats(start, end)
        except HistoryUnavailable as exc:
            raise ControlError("unavailable", str(exc)) from None
        return convert.stats(stats)

    async def simulate(self, request: p.SimulateRequest) -> p.Simulation:
        """The history replayed through a config file (NEW) and the running config
        (OLD), on a worker thread, one simulation at a time."""
        store = self._store()
        running = self.parts.loaded
        path = Path(request.config) if request.config is not None else running.path
        if not path.is_absolute():
            # Relative to which directory? The client's is not ours.
            raise ControlError("bad_request", f"config must be an absolute path, got {path}")
        since = time.time() - SIMULATE_WINDOW if request.since is None else request.since
        flags = list(request.load_times.items())
        # What finished before the question is part of the answer.
        with trio.move_on_after(SIMULATE_FLUSH_TIMEOUT):
            await store.flushed()
        try:
            report, truncated = await trio.to_thread.run_sync(
                partial(_simulate, path, running, store.path, since, flags),
                limiter=self._simulations,
            )
        except ConfigError as exc:
            count = len(exc.problems)
            raise ControlError(
                "config_invalid",
                f"{path}: {count} problem{'s' if count != 1 else ''}; nothing was simulated",
                problems=[convert.problem(c) for c in exc.problems],
            ) from None
        except UsageError as exc:
            raise ControlError("bad_request", str(exc)) from None
        except HistoryUnavailable as exc:
            raise ControlError("unavailable", str(exc)) from None
        return convert.simulation(report, since=since, truncated=truncated)

    def capture(self, request_id: int) -> p.Capture:
        recorder = self.parts.recorder
        capture = recorder.captures.get(request_id) if recorder is not None else None
        if capture is None:
            off = recorder is None or not recorder.captures.enabled
            why = "captures are off (captureBuffer)" if off else "it is not (or no longer) kept"
            raise ControlError("not_found", f"no capture of request {request_id}: {why}")
        return convert.capture(capture, CAPTURE_REPLY_BODY)

    # --- actions ----------------------------------------------------------------

    async def load(self, model: str) -> p.LoadResult:
        model_id = self._resolve(model)
        before = self.parts.pool.snapshots().get(model_id)
        was_ready = before is not None and str(before.state) == "ready"
        start = trio.current_time()
        try:
            async with self.parts.router.lease(model_id) as grant:
                request_id = grant.request_id
        except RouterError as exc:
            raise _control_error(exc) from None
        elapsed = trio.current_time() - start
        after = self.parts.pool.snapshots().get(model_id)
        state = str(after.state) if after is not None else "ready"
        return p.LoadResult(
            model=model_id,
            state=state,
            seconds=None if was_ready else elapsed,
            evicted=list(self.parts.router.evicted_for(request_id)),
        )

    async def unload(self, models: Sequence[str] | None, now: bool = False) -> p.UnloadReply:
        ids = None if models is None else [self._resolve(m) for m in models]
        running = self._running()
        asked = running if ids is None else [m for m in ids if m in running]
        try:
            cut = await self.parts.router.unload(ids, now=now)
        except RouterError as exc:
            raise _control_error(exc) from None
        return p.UnloadReply(models=asked, cut=cut)

    async def reload(self) -> p.ReloadResult:
        if self.reloader is None:
            raise ControlError("unavailable", "this daemon cannot reload its config")
        return await self.reloader()

    # --- events -----------------------------------------------------------------

    def subscribe(
        self,
        topics: frozenset[str],
        models: frozenset[str] | None,
        history: bool,
        maxlen: int,
    ) -> EventSource:
        wanted = None if models is None else frozenset(self._aliases_to_ids(models))
        predicate = None if wanted is None else (lambda e: convert.concerns(e, wanted))
        backlog: list[p.EventData] = []
        if history:
            backlog = self._history(topics, wanted, predicate, maxlen)
        # No await between reading the history and subscribing: nothing is missed or doubled.
        live = self.parts.bus.subscribe(topics=topics, predicate=predicate, maxlen=maxlen)
        return ConvertingSource(live, backlog)

    def _aliases_to_ids(self, names: frozenset[str]) -> set[str]:
        out = set(names)
        for name in names:
            model_id = self.parts.loaded.resolve(name)
            if model_id is not None:
                out.add(model_id)
        return out

    def _history(
        self,
        topics: frozenset[str],
        wanted: frozenset[str] | None,
        predicate: Callable[[Any], bool] | None,
        maxlen: int,
    ) -> list[p.EventData]:
        """The backlog: recent bus events in publication order, then buffered log lines.

        Log lines come from the log rings (they hold far more than the bus's
        history), merged across sources by their timestamps; they follow the
        other events rather than interleave with them, because only the order
        of publication is reliable across different kinds of record.
        """
        events = [
            convert.event(e)
            for e in self.parts.bus.recent(topics=topics - {"log"})
            if predicate is None or predicate(e)
        ]
        lines: list[LogLine] = []
        if "log" in topics:
            for source in ["proxy", *self.parts.pool.snapshots()]:
                if wanted is not None and source not in wanted:
                    continue
                ring = self.parts.logs.proxy if source == "proxy" else self.parts.pool[source].logs
                lines.extend(ring.lines(maxlen))
            lines.sort(key=lambda line: line.time)
        backlog = [*events, *(convert.log_line(line, history=True) for line in lines)]
        return backlog[len(backlog) - maxlen :] if maxlen else []


def _simulate(
    path: Path,
    running: LoadedConfig,
    history: Path,
    since: float,
    flags: Sequence[tuple[str, float]],
) -> tuple[Report, bool]:
    """`swapd simulate --config PATH --against RUNNING --history`, on a worker thread:
    the report, and whether the window held more requests than are replayed."""
    new = load_config(path)
    configs = [new, running]
    models = list(dict.fromkeys(m for cfg in configs for m in cfg.models))
    trace, measured, books = history_inputs(
        history, models, trace=True, since=since, limit=SIMULATE_MAX_REQUESTS + 1
    )
    assert trace is not None
    truncated = len(trace) > SIMULATE_MAX_REQUESTS
    if truncated:
        trace = _rebase(trace[1:])
    load_times = resolve_load_times(configs, flags, measured)
    wake_times = resolve_wake_times(configs, (), books)
    named = [(str(path), new), (f"{running.path} (running)", running)]
    return compare(named, trace, load_times, wake_times, books), truncated


def _rebase(trace: Sequence[TraceRequest]) -> list[TraceRequest]:
    """The trace starting at its first request."""
    origin = trace[0].t if trace else 0.0
    return [msgspec.structs.replace(r, t=r.t - origin) for r in trace]


class ConvertingSource:
    """A bus subscription yielding protocol payloads, after an optional backlog.

    Consecutive log lines of one source and stream that are already waiting
    go out as one `log` event (up to MERGE_LOG_BYTES): a model printing
    thousands of lines at start-up then costs a handful of frames, and the
    client keeps up instead of lagging.
    """

    def __init__(self, live: Subscription, backlog: Sequence[p.EventData] = ()) -> None:
        self._live = live
        self._backlog = deque(backlog)
        self._held: p.EventData | None = None  # taken while merging, not part of the merge

    @property
    def pending(self) -> int:
        return len(self._backlog) + (self._held is not None) + self._live.pending

    def take_lagged(self) -> int:
        # Drops during the backlog, or while an event is held back, are of live
        # events that come after it: report them when those come up.
        return 0 if self._backlog or self._held is not None else self._live.take_lagged()

    async def receive(self) -> p.EventData:
        if self._backlog:
            await trio.lowlevel.checkpoint()
            return self._backlog.popleft()
        if self._held is not None:
            await trio.lowlevel.checkpoint()
            data, self._held = self._held, None
        else:
            data = convert.event(await self._live.receive())
        return self._merge_waiting_lines(data) if isinstance(data, p.LogLines) else data

    def _merge_waiting_lines(self, first: p.LogLines) -> p.LogLines:
        texts, size = [first.text], len(first.text)
        while size < MERGE_LOG_BYTES:
            try:
                data = convert.event(self._live.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            if isinstance(data, p.LogLines) and (data.source, data.stream, data.history) == (
                first.source,
                first.stream,
                first.history,
            ):
                texts.append(data.text)
                size += len(data.text)
            else:
                self._held = data
                break
        if len(texts) == 1:
            return first
        return msgspec.structs.replace(first, text="".join(texts))

    def close(self) -> None:
        self._live.close()


def _control_error(exc: RouterError) -> ControlError:
    if isinstance(exc, ModelNotFound):
        return ControlError("not_found", exc.message)
    if isinstance(exc, TooManyRequests):
        return ControlError("busy", exc.message)
    if isinstance(exc, LoadFailed):
        return ControlError("load_failed", exc.message, log_tail=exc.log_tail)
    if isinstance(exc, RequestAborted):
        return ControlError("aborted", exc.message)
    return ControlError("unavailable", exc.message)
