"""What the daemon reported, as a plain model the dashboard renders from.

The connection (or a test's fake source) hands protocol messages to
`DashboardState.apply_*`; every call records which *areas* changed in
`dirty`. The app drains `take_dirty()` on its own refresh tick, so a burst of
a thousand events costs one repaint per area, not a thousand (toolong's
"replace unread predecessors" idea, applied to the whole screen).

Nothing here does I/O, awaits, or imports Textual: it is tested directly.
Every collection is bounded: logs and the timeline drop their oldest entries.
The dashboard decides nothing the daemon owns; the only things computed here
are display conveniences (TTL countdowns between reports, uptime).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from swapctl import protocol as p
from swapctl.render import duration

MODELS = "models"
LOGS = "logs"
TIMELINE = "timeline"
MATRIX = "matrix"
EXPLAIN = "explain"
HEADER = "header"
VERDICT = "verdict"
ACTIVITY = "activity"
AREAS = frozenset({MODELS, LOGS, TIMELINE, MATRIX, EXPLAIN, HEADER, VERDICT, ACTIVITY})

PROXY_SOURCE = "proxy"
"""The log source name of swapd's own proxy log (lifecycle lines, requests)."""
NOTE_SOURCE = "swaptui"
"""The log source of swaptui's own notes (lags, undecodable lines from the daemon)."""

DEFAULT_LOG_LINES = 50_000
DEFAULT_TIMELINE = 500
DEFAULT_REQUEST_EVENTS = 2_000
DEFAULT_ACTIVITY = 1_000
"""Finished request records the Activity view keeps (the daemon keeps the rest)."""
MAX_CAPTURES = 16
"""Captures fetched and kept for the record details opened recently."""
ACTIVITY_PROTOCOL = 2
"""The first protocol version whose daemon answers `activity` and `capture`."""

ConnectionStatus = Literal["connecting", "connected", "disconnected"]

RATE_WINDOW = 10.0
"""Seconds over which the header's requests/s is averaged."""
FINISHED_PHASES = frozenset({"done", "aborted", "failed"})
"""Request event phases that end a request (a cancelled one names no model)."""


@dataclass(slots=True)
class ModelRow:
    """One model as the daemon last reported it."""

    id: str
    state: str = "stopped"
    pid: int | None = None
    port: int | None = None
    in_flight: int = 0
    waiting: int = 0
    """Requests waiting for its load (a swap in progress)."""
    queued: int = 0
    """Requests in the queue: behind another swap, or a model busy serving."""
    ttl: float = 0.0
    """Configured TTL in seconds (0 = never unloads for idleness)."""
    ttl_deadline: float | None = None
    """Local clock time when the TTL runs out, from the reported `ttl_left`."""
    last_load_seconds: float | None = None
    memberships: tuple[str, ...] = ()
    """Groups or matrix sets this model belongs to."""
    argv: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    """What the config adds to the process's environment, sorted by name."""
    starts: int = 0
    failures: int = 0
    """Failed starts and crashes among `starts`."""
    last_failure: str | None = None
    """How it last ended on its own, in the daemon's words."""
    last_failure_at: float | None = None
    """When (the daemon's Unix time)."""
    name: str = ""
    description: str = ""
    proxy: str = ""
    """Where swapd forwards its requests."""
    aliases: tuple[str, ...] = ()
    last_exit_code: int | None = None
    state_reason: str = ""
    """Why it entered its state, from the last state change seen."""
    state_since: float | None = None
    """When it entered its state (the daemon's Unix time), if seen."""
    meters: p.Meters | None = None
    """CPU and memory of its process tree, as last sampled (None: no process)."""
    footprint: p.Footprint | None = None
    """Declared, measured and planned footprints (None: no capacity is configured)."""

    def ttl_left(self, now: float) -> float | None:
        if self.ttl_deadline is None:
            return None
        return max(0.0, self.ttl_deadline - now)


@dataclass(frozen=True, slots=True)
class LogLine:
    seq: int
    time: float
    source: str
    """A model ID, or `PROXY_SOURCE`."""
    text: str


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which log lines the log view shows: one source (or all) and a substring."""

    source: str | None = None
    text: str = ""

    def matches(self, line: LogLine) -> bool:
        if self.source is not None and line.source != self.source:
            return False
        return not self.text or self.text.casefold() in line.text.casefold()


class LogBuffer:
    """The most recent log lines of every source, bounded, oldest dropped first.

    `appended` counts every line ever added, so a viewer asks for the lines it
    has not seen yet with `since(seq)`, even after old ones were dropped.
    """

    def __init__(self, max_lines: int = DEFAULT_LOG_LINES) -> None:
        if max_lines < 1:
            raise ValueError("the log buffer must hold at least one line")
        self.max_lines = max_lines
        self.lines: deque[LogLine] = deque(maxlen=max_lines)
        self.appended = 0
        self._partial: dict[str, str] = {}
        self._sources: set[str] = set()

    def add(self, source: str, text: str, when: float) -> None:
        """Add a chunk of text; each complete line becomes a row.

        Chunks are not line-aligned (a child's output arrives in pieces), so an
        unterminated tail is held back per source until its newline arrives.
        """
        text = self._partial.pop(source, "") + text
        parts = text.split("\n")
        tail = parts.pop()
        if tail:
            self._partial[source] = tail
        for part in parts:
            self._append(source, part.rstrip("\r"), when)

    def flush(self, source: str, when: float) -> None:
        """Emit a held-back partial line (the source's process went away)."""
        tail = self._partial.pop(source, "")
        if tail:
            self._append(source, tail.rstrip("\r"), when)

    def _append(self, source: str, text: str, when: float) -> None:
        self.lines.append(LogLine(self.appended, when, source, text))
        self.appended += 1
        self._sources.add(source)

    def since(self, seq: int) -> list[LogLine]:
        """Lines numbered `seq` or later that are still buffered, oldest first."""
        if not self.lines:
            return []
        skip = max(0, seq - self.lines[0].seq)
        return list(itertools.islice(self.lines, skip, None))

    def sources(self) -> list[str]:
        """Every source a line was ever seen from, sorted."""
        return sorted(self._sources)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One row of the swaps view: a router decision or a swap."""

    time: float
    kind: Literal["decision", "swap"]
    target: str
    action: str = ""
    """The decision taken ("serve", "queue", "swap", ...) or "swap" for swaps."""
    evicted: tuple[str, ...] = ()
    why: str = ""
    """Why: queue, collision, busy, maxWait reached, ... in the daemon's words."""
    duration: float | None = None
    """How long the load took, once the swap has finished."""
    set: str | None = None
    cost: int | None = None
    outcome: str = ""
    """Empty while in progress, then "ok" or the failure."""
    swap_id: int | None = None
    decision: p.Decision | None = None
    """The router's decision behind it (for a swap: the one that started it)."""
    log_tail: str = ""
    """A failed load's last log lines."""
    kv: tuple[p.KvRecord, ...] = ()
    """The KV-cache saves of the evicted models and the restore of the target."""
    slept: tuple[str, ...] = ()
    """The models the swap puts to sleep to make room (they stay alive)."""
    wake: bool = False
    """The target was asleep: the swap wakes it rather than starts it."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The daemon's answer to an action (load, unload, reload)."""

    action: str
    ok: bool
    message: str = ""
    problems: tuple[str, ...] = ()
    """Each problem formatted `file:line:column: path: message`."""
    warnings: tuple[str, ...] = ()
    """What went through but deserves a look: a reload's config warnings, requests cut."""


@dataclass(slots=True)
class DaemonInfo:
    version: str = ""
    pid: int | None = None
    protocol: int | None = None
    config_path: str = ""
    router: str = ""
    listen: tuple[str, ...] = ()
    started_at: float | None = None
    """Local clock time the daemon started (from its uptime, so clock skew over SSH is moot)."""


@dataclass(slots=True)
class ConnectionInfo:
    status: ConnectionStatus = "connecting"
    target: str = ""
    """What we connect to: a socket path or `ssh HOST`."""
    detail: str = ""
    """The last error, in words."""
    retry_at: float | None = None
    attempts: int = 0
    down_since: float | None = None
    """When the link was lost (None while it is up, or before it was ever up)."""
    reconnected_at: float | None = None
    """When the link last came back after a loss."""
    down_for: float | None = None
    """How long it was down before `reconnected_at`."""
    ever_connected: bool = False


@dataclass(frozen=True, slots=True)
class Summary:
    """The header's totals over every model."""

    models: int
    running: int
    in_flight: int
    queued: int
    """Queued behind another swap or a busy model, or waiting for a load."""
    requests_per_second: float
    memory_bytes: int | None = None
    """Resident memory of the models' process trees; None when none is measured."""
    gpu_bytes: int | None = None
    """GPU memory the models hold; None when none is measured (no NVML)."""


@dataclass(frozen=True, slots=True)
class LegendEntry:
    name: str
    description: str = ""
    next: tuple[str, ...] = ()


@dataclass
class DashboardState:
    """Everything the dashboard shows. Mutated only through its methods."""

    clock: Callable[[], float] = time.time
    max_log_lines: int = DEFAULT_LOG_LINES
    max_timeline: int = DEFAULT_TIMELINE
    max_activity: int = DEFAULT_ACTIVITY
    daemon: DaemonInfo = field(default_factory=DaemonInfo)
    connection: ConnectionInfo = field(default_factory=ConnectionInfo)
    models: dict[str, ModelRow] = field(default_factory=dict)
    legend: tuple[LegendEntry, ...] = ()
    routing: p.MatrixView | None = None
    explain: dict[str, p.Explanation] = field(default_factory=dict)
    verdict: Verdict | None = None
    dirty: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.logs = LogBuffer(self.max_log_lines)
        self.timeline: deque[TimelineEntry] = deque(maxlen=self.max_timeline)
        self._decision_keys: set[tuple[float, str, str] | None] = set()
        self._finished: deque[float] = deque(maxlen=100_000)
        self.request_events: deque[p.RequestEvent] = deque(maxlen=DEFAULT_REQUEST_EVENTS)
        self.records: dict[int, p.RequestRecord] = {}
        """Finished requests by id, oldest first, at most `max_activity`."""
        self.activity_note = ""
        """Why there are no records, when the daemon cannot give any."""
        self.captures: dict[int, p.Capture | str] = {}
        """A record's capture, or why there is none, by request id (the last few)."""
        """The last request events (every phase), for a model's detail."""
        self.events_missed = 0

    # -- bookkeeping ---------------------------------------------------------

    def touch(self, *areas: str) -> None:
        self.dirty.update(areas)

    def take_dirty(self) -> set[str]:
        dirty, self.dirty = self.dirty, set()
        return dirty

    # -- connection and daemon ----------------------------------------------

    def set_connection(
        self, status: ConnectionStatus, detail: str = "", retry_in: float | None = None
    ) -> None:
        conn = self.connection
        now = self.clock()
        if status == "connected":
            conn.attempts = 0
            if conn.down_since is not None:
                conn.reconnected_at = now
                conn.down_for = now - conn.down_since
                self.add_note(f"--- reconnected after {duration(conn.down_for)} down ---")
            conn.down_since = None
            conn.ever_connected = True
        elif status == "disconnected":
            conn.attempts += 1
            if conn.down_since is None and conn.ever_connected:
                conn.down_since = now
        conn.status = status
        conn.detail = detail
        conn.retry_at = None if retry_in is None else now + retry_in
        self.touch(HEADER)

    @property
    def online(self) -> bool:
        return self.connection.status == "connected"

    def apply_welcome(self, welcome: p.Welcome) -> None:
        self._set_daemon(welcome.daemon, protocol=welcome.protocol)

    def apply_status(self, status: p.Status) -> None:
        self._set_daemon(status.daemon, protocol=self.daemon.protocol, uptime=status.uptime)
        self.legend = tuple(
            LegendEntry(e.name, e.description, tuple(e.next)) for e in status.legend
        )
        self.touch(MODELS)

    def _set_daemon(
        self, info: p.DaemonInfo, *, protocol: int | None, uptime: float | None = None
    ) -> None:
        now = self.clock()
        self.daemon = DaemonInfo(
            version=info.version,
            pid=info.pid,
            protocol=protocol,
            config_path=info.config_path or "",
            router=info.router,
            listen=tuple(info.listen),
            started_at=now - uptime if uptime is not None else self.daemon.started_at,
        )
        self.touch(HEADER)

    def uptime(self) -> float | None:
        if self.daemon.started_at is None:
            return None
        return max(0.0, self.clock() - self.daemon.started_at)

    # -- models --------------------------------------------------------------

    def apply_models(self, models: Iterable[p.ModelInfo]) -> None:
        """A full `models` reply: rows not in it are gone (removed by a reload)."""
        now = self.clock()
        rows = {}
        for m in models:
            seen = self.models.get(m.id)
            ttl_deadline = None if m.ttl_left is None else now + m.ttl_left
            rows[m.id] = ModelRow(
                id=m.id,
                state=m.state,
                pid=m.pid,
                port=m.port,
                in_flight=m.in_flight,
                waiting=m.waiting,
                queued=m.queued,
                ttl=m.ttl,
                ttl_deadline=ttl_deadline,
                last_load_seconds=m.last_load_seconds,
                memberships=tuple(m.sets or m.groups),
                argv=tuple(m.argv),
                env=tuple(sorted(m.env.items())),
                starts=m.starts,
                failures=m.failures,
                last_failure=m.last_failure,
                last_failure_at=m.last_failure_at,
                name=m.name,
                description=m.description,
                proxy=m.proxy,
                aliases=tuple(m.aliases),
                last_exit_code=m.last_exit_code,
                # The reply says where a model is, the events why and since when.
                state_reason=seen.state_reason if seen and seen.state == m.state else "",
                state_since=seen.state_since if seen and seen.state == m.state else None,
                meters=m.meters,
                footprint=m.footprint,
            )
        self.models = rows
        self.touch(MODELS)

    def running(self) -> list[str]:
        return sorted(m for m, row in self.models.items() if row.state in p.RUNNING_STATES)

    def requests_per_second(self) -> float:
        """Requests finished per second over the last `RATE_WINDOW` seconds."""
        horizon = self.clock() - RATE_WINDOW
        finished = self._finished
        while finished and finished[0] < horizon:
            finished.popleft()
        return len(finished) / RATE_WINDOW

    def summary(self) -> Summary:
        rows = self.models.values()
        return Summary(
            models=len(self.models),
            running=sum(1 for row in rows if row.state in p.RUNNING_STATES),
            in_flight=sum(row.in_flight for row in rows),
            queued=sum(row.queued + row.waiting for row in rows),
            requests_per_second=self.requests_per_second(),
            memory_bytes=_total(row.meters.ram for row in rows if row.meters is not None),
            gpu_bytes=_total(
                row.meters.vram
                for row in rows
                if row.meters is not None and row.meters.vram is not None
            ),
        )

    # -- events --------------------------------------------------------------

    def apply_event(self, event: p.EventPayload) -> None:
        """One subscription event. Unknown kinds are ignored (the protocol only grows)."""
        match event:
            case p.LogLines():
                self.logs.add(event.source, event.text, event.time)
                self.touch(LOGS)
            case p.StateChanged():
                self._state_changed(event)
            case p.QueueChanged():
                self._queue_changed(event)
            case p.RequestEvent():
                self._request(event)
            case p.SwapStarted():
                self._swap_started(event)
            case p.SwapFinished():
                self._swap_finished(event)
            case p.DecisionMade():
                self._add_decision(event.decision)
            case p.ConfigReloaded():
                self.set_verdict(reload_verdict(event))
                self.touch(MODELS, MATRIX)
            case _:
                pass

    def apply_lagged(self, missed: int) -> None:
        """The daemon dropped `missed` events for us: say so, in the log, where it happened."""
        self.events_missed += missed
        self.add_note(f"--- swaptui fell behind: the daemon dropped {missed} events ---")
        self.touch(HEADER)

    def add_note(self, text: str) -> None:
        """A line of our own in the log: something the operator should know about the link."""
        self.logs.add(NOTE_SOURCE, text.rstrip("\n") + "\n", self.clock())
        self.touch(LOGS)

    def apply_logs(self, log: p.LogText) -> None:
        """A `logs` reply (the backlog of one source)."""
        text = log.text if log.text.endswith("\n") or not log.text else log.text + "\n"
        self.logs.add(log.source, text, self.clock())
        self.touch(LOGS)

    def _state_changed(self, event: p.StateChanged) -> None:
        row = self.models.get(event.model)
        if row is None:
            row = self.models[event.model] = ModelRow(event.model)
        row.state = event.new
        row.state_reason = event.reason
        row.state_since = event.time
        if event.new in ("stopped", "failed", "shutdown"):
            row.pid = None
            row.ttl_deadline = None
            row.in_flight = 0
            self.logs.flush(event.model, event.time)
        if event.new == "failed":
            # The event says how and when; the counts come with the models reply it prompts.
            row.last_failure = event.reason or None
            row.last_failure_at = event.time
        elif event.new == "ready" and row.ttl > 0:
            row.ttl_deadline = self.clock() + row.ttl
        self.touch(MODELS, MATRIX)

    def _queue_changed(self, event: p.QueueChanged) -> None:
        # Who waits, and nothing else: requests in flight are the models reply's (the
        # source re-asks after request events; the queue event's `in_flight` is not filled).
        for model, row in self.models.items():
            row.queued = event.queued.get(model, 0)
            row.waiting = event.waiting.get(model, 0)
        self.touch(MODELS)

    def _request(self, event: p.RequestEvent) -> None:
        if event.record is not None:
            self.add_record(event.record)
            return
        self.request_events.append(event)
        if event.phase in FINISHED_PHASES:
            self._finished.append(self.clock())
            self.touch(HEADER)
        # Activity restarts the TTL countdown in the daemon; mirror it until the next report.
        row = self.models.get(event.model)
        if row is not None and row.state == "ready" and row.ttl > 0:
            row.ttl_deadline = self.clock() + row.ttl
            self.touch(MODELS)

    # -- activity: finished requests ------------------------------------------

    def add_record(self, record: p.RequestRecord) -> None:
        """A finished request, from the `request` topic or an `activity` reply."""
        records = self.records
        if record.id in records:
            records[record.id] = record
        else:
            records[record.id] = record
            while len(records) > self.max_activity:
                del records[next(iter(records))]  # the first kept: the oldest, near enough
        self.touch(ACTIVITY)

    def apply_activity(self, records: Iterable[p.RequestRecord]) -> None:
        """An `activity` reply (newest first): merged with what the topic brought."""
        for record in sorted(records, key=lambda r: r.start):
            self.add_record(record)
        self.activity_note = ""
        self.touch(ACTIVITY)

    def activity_unavailable(self, why: str) -> None:
        self.activity_note = why
        self.touch(ACTIVITY)

    def activity(self) -> list[p.RequestRecord]:
        """Every record kept, newest first."""
        return sorted(self.records.values(), key=lambda r: (r.start, r.id), reverse=True)

    def apply_capture(self, request_id: int, capture: p.Capture | str) -> None:
        """A record's capture, or why there is none."""
        self.captures.pop(request_id, None)
        self.captures[request_id] = capture
        while len(self.captures) > MAX_CAPTURES:
            del self.captures[next(iter(self.captures))]
        self.touch(ACTIVITY)

    def model_records(self, model: str, limit: int = 8) -> list[p.RequestRecord]:
        """The latest finished requests served by `model`, newest first."""
        return [r for r in self.activity() if r.model == model][:limit]

    # -- swaps and decisions -------------------------------------------------
    #
    # One row per swap: the router's "swap" decision, the swap's start and its end
    # carry the same swap id and merge into one entry, whatever order they arrive in
    # (the decisions reply and a subscription's history interleave).

    def _add_timeline(self, entry: TimelineEntry) -> None:
        if len(self.timeline) == self.timeline.maxlen:
            self._decision_keys.discard(_decision_key(self.timeline[0]))
        self.timeline.append(entry)
        self._decision_keys.add(_decision_key(entry))
        self.touch(TIMELINE)

    def _replace_timeline(self, index: int, entry: TimelineEntry) -> None:
        self.timeline[index] = entry
        self._decision_keys.add(_decision_key(entry))
        self.touch(TIMELINE)

    def _find_swap(self, swap_id: int | None, target: str, *, open_only: bool) -> int | None:
        """The newest entry of this swap: by id when there is one, else by target."""
        for i in range(len(self.timeline) - 1, -1, -1):
            entry = self.timeline[i]
            if entry.action != "swap":
                continue
            if swap_id is not None:
                if entry.swap_id == swap_id:
                    return i
                continue
            if entry.target == target and not (open_only and entry.outcome):
                return i
        return None

    def _add_decision(self, d: p.Decision) -> None:
        # The decisions reply and a subscription's history overlap: keep one of each.
        if (d.time, d.model, d.action) in self._decision_keys:
            return
        if d.action == "swap" and d.swap is not None:
            index = self._find_swap(d.swap, d.model, open_only=False)
            if index is not None:
                entry = self.timeline[index]
                self._replace_timeline(
                    index,
                    replace(
                        entry,
                        time=min(entry.time, d.time),
                        why=d.why or entry.why,
                        evicted=entry.evicted or tuple(d.evict),
                        slept=entry.slept or tuple(d.sleep),
                        set=entry.set or d.set,
                        cost=d.cost if entry.cost is None else entry.cost,
                        decision=d,
                    ),
                )
                return
        self._add_timeline(
            TimelineEntry(
                time=d.time,
                kind="decision",
                target=d.model,
                action=d.action,
                evicted=tuple(d.evict),
                why=d.why,
                duration=d.duration,
                set=d.set,
                cost=d.cost,
                swap_id=d.swap,
                decision=d,
                slept=tuple(d.sleep),
            )
        )

    def apply_decisions(self, decisions: Iterable[p.Decision]) -> None:
        """The `decisions` reply: the recent log, replacing what we had."""
        self.timeline.clear()
        self._decision_keys.clear()
        for d in sorted(decisions, key=lambda d: d.time):
            self._add_decision(d)
        self.touch(TIMELINE)

    def _swap_started(self, event: p.SwapStarted) -> None:
        index = self._find_swap(event.swap, event.target, open_only=True)
        if index is not None and (event.swap is not None or self.timeline[index].kind != "swap"):
            entry = self.timeline[index]
            self._replace_timeline(
                index,
                replace(
                    entry,
                    kind="swap",
                    time=min(entry.time, event.time),
                    evicted=tuple(event.evict) or entry.evicted,
                    why=entry.why or event.why,
                    set=event.set or entry.set,
                    cost=entry.cost if event.cost is None else event.cost,
                    swap_id=event.swap,
                    slept=tuple(event.sleep) or entry.slept,
                    wake=event.wake or entry.wake,
                ),
            )
            return
        self._add_timeline(
            TimelineEntry(
                time=event.time,
                kind="swap",
                target=event.target,
                action="swap",
                evicted=tuple(event.evict),
                why=event.why,
                set=event.set,
                cost=event.cost,
                swap_id=event.swap,
                slept=tuple(event.sleep),
                wake=event.wake,
            )
        )

    def _swap_finished(self, event: p.SwapFinished) -> None:
        outcome = "ok" if event.ok else (event.error or "failed")
        if event.aborted and not event.error:
            outcome = "aborted"
        index = self._find_swap(event.swap, event.target, open_only=True)
        if index is not None:
            entry = self.timeline[index]
            self._replace_timeline(
                index,
                replace(
                    entry,
                    kind="swap",
                    duration=event.duration,
                    outcome=outcome,
                    log_tail=event.log_tail,
                    evicted=entry.evicted or tuple(event.evict),
                    kv=tuple(event.kv),
                ),
            )
            return
        # We joined after it started (or lagged): record it whole.
        self._add_timeline(
            TimelineEntry(
                time=event.time,
                kind="swap",
                target=event.target,
                action="swap",
                evicted=tuple(event.evict),
                duration=event.duration,
                set=event.set,
                cost=event.cost,
                outcome=outcome,
                swap_id=event.swap,
                log_tail=event.log_tail,
                kv=tuple(event.kv),
            )
        )

    def model_swaps(self, model: str, limit: int = 5) -> list[TimelineEntry]:
        """The latest swaps that loaded or evicted `model`, newest first."""
        found = [
            e
            for e in self.timeline
            if e.action == "swap" and (e.target == model or model in (*e.evicted, *e.slept))
        ]
        return sorted(found, key=lambda e: e.time, reverse=True)[:limit]

    def model_requests(self, model: str, limit: int = 8) -> list[p.RequestEvent]:
        """The latest finished requests on `model`, newest first."""
        found = [e for e in self.request_events if e.model == model and e.phase in FINISHED_PHASES]
        return found[::-1][:limit]

    def swap_decisions(self, swap_id: int) -> list[p.Decision]:
        """Every decision the timeline holds about one swap (queued behind it, granted...)."""
        return [
            entry.decision
            for entry in self.timeline
            if entry.decision is not None and entry.decision.swap == swap_id
        ]

    # -- routing, explain, verdicts -----------------------------------------

    def apply_matrix(self, view: p.MatrixView) -> None:
        self.routing = view
        if view.explain is not None:
            self.apply_explanation(view.explain)
        self.touch(MATRIX)

    def nothing_to_explain(self, model: str) -> None:
        """The daemon does not know `model` (a reload removed it): there is nothing to explain."""
        self.apply_explanation(
            p.Explanation(model=model, action="none", why="not in the daemon's config")
        )

    def apply_explanation(self, explanation: p.Explanation) -> None:
        self.explain[explanation.model] = explanation
        self.touch(EXPLAIN)

    def set_verdict(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.touch(VERDICT)


def _total(values: Iterable[int]) -> int | None:
    """The sum, or None when there is nothing to sum (unknown is not zero)."""
    found = list(values)
    return sum(found) if found else None


def _decision_key(entry: TimelineEntry) -> tuple[float, str, str] | None:
    d = entry.decision
    return None if d is None else (d.time, d.model, d.action)


def reload_verdict(event: p.ConfigReloaded) -> Verdict:
    """A reload's outcome in words: what changed, or every problem with its location."""
    if not event.ok:
        return Verdict(
            action="reload",
            ok=False,
            message=f"{event.path}: invalid, the old config keeps running",
            problems=tuple(problem.format() for problem in event.problems),
        )
    return Verdict(action="reload", ok=True, message=describe_changes(event))


def describe_changes(result: p.ConfigReloaded | p.ReloadResult) -> str:
    parts = [
        f"{label}: {', '.join(names)}"
        for label, names in (
            ("added", result.added),
            ("removed", result.removed),
            (
                "changed",
                result.changed_labels() if isinstance(result, p.ReloadResult) else result.changed,
            ),
        )
        if names
    ]
    return f"{result.path}: reloaded" + (" (" + "; ".join(parts) + ")" if parts else ", no changes")
