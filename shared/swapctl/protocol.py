"""The swapd control protocol: every message kind, as msgspec Structs.

The wire format is newline-delimited JSON. Each line is one object whose
`type` field names its kind (the Struct's tag). A client opens with `hello`;
the daemon answers `welcome`. Requests carry an `id` that their reply echoes
(`<kind>_reply`, or `error`); subscriptions push `event` lines, and `lagged`
when a subscriber fell behind and events were dropped.

Compatibility rule (harlequin's): message kinds and fields are only ever
added, never changed or removed. Decoders ignore fields they do not know, so a
newer daemon can add fields without breaking older clients. A client whose
protocol version is newer than the daemon's is refused with a clear error.

Event payloads (the `data` of an `event`) are a second tagged union, keyed by
`kind`; each payload class also names its bus `topic` as a class attribute so
the daemon's EventBus can route it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec

PROTOCOL_VERSION = 2
"""The version this package speaks. Bumped when message kinds are added
(2: `activity`, `history`, `stats`, `capture`; finished records on the `request` topic;
later `simulate`, an addition that needs no new version)."""

MIN_PROTOCOL_VERSION = 1

#: How the daemon decides what runs together (the config's `routing.router.use`).
RouterKind = Literal["group", "matrix", "budget"]
"""The oldest client version the daemon still serves."""

MAX_LINE_BYTES = 1024 * 1024
"""A line (without its newline) longer than this closes the connection."""

TOPICS: tuple[str, ...] = ("state", "swap", "request", "queue", "log", "config", "decision")
"""Event topics a client can subscribe to."""

RequestId = int | str
"""A request id: any int or string the client picks; the reply echoes it."""


class Message(msgspec.Struct, tag_field="type", kw_only=True, frozen=True):
    """Base of every top-level message; `type` is the tag."""


# --- payload structs (not top-level messages) -------------------------------


class Payload(msgspec.Struct, kw_only=True, frozen=True):
    """Base of the structured values carried inside messages."""


class Problem(Payload, kw_only=True, frozen=True):
    """One config or request problem, with its location when known.

    Formatted like the config loader's errors:
    `config.yaml:12:5: models.llama.ttl: expected int >= -1, got "soon"`.
    """

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    path: str | None = None

    def format(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        key = f"{self.path}: " if self.path else ""
        return f"{where}{key}{self.message}"


class DaemonInfo(Payload, kw_only=True, frozen=True):
    """Who answered: sent in `welcome` and `status`."""

    name: str = "swapd"
    version: str
    pid: int
    started: float
    """Unix time the daemon started."""
    config_path: str | None = None
    router: RouterKind = "group"
    listen: list[str] = []
    """The HTTP addresses the daemon serves the OpenAI API on."""


class StateLegend(Payload, kw_only=True, frozen=True):
    """One process state, from the supervisor's transition table."""

    name: str
    description: str = ""
    next: list[str] = []
    """States reachable from this one."""


# --- live meters and budgets ------------------------------------------------


class Meters(Payload, kw_only=True, frozen=True):
    """A running model's process tree, as the meter last sampled it."""

    cpu_percent: float
    """CPU % over the last sampling period, summed over the tree (may pass 100)."""
    ram: int
    """Resident memory of the whole process tree, bytes."""
    vram: int | None = None
    """GPU memory its processes hold, bytes; None where NVML is not available."""
    processes: int = 1


class GpuMemory(Payload, kw_only=True, frozen=True):
    index: int
    name: str
    used: int
    total: int


class HostMeters(Payload, kw_only=True, frozen=True):
    """The machine: CPU %, memory, and each GPU (None: no NVML)."""

    cpu_percent: float
    mem_used: int
    mem_total: int
    gpus: list[GpuMemory] | None = None


class Footprint(Payload, kw_only=True, frozen=True):
    """What a model takes, per resource: as declared, as measured (the highest
    peak of its last runs, and of the current run), and as the budget plans it."""

    declared: dict[str, int] = {}
    measured: dict[str, int] = {}
    planned: dict[str, int] = {}
    devices: list[str] = []
    device: str | None = None
    """Where it runs now, for a model with devices."""
    blind: list[str] = []
    """Resources of the capacity it has neither declared nor been measured for."""
    asleep: dict[str, int] | None = None
    """For a model that can sleep: what the budget plans it takes while asleep."""
    asleep_measured: dict[str, int] | None = None
    """For a model that can sleep: the highest peak while asleep (its last runs that
    slept, kept across restarts, and the run in progress)."""
    wake_s: float | None = None
    """For a model that can sleep: the median of its last measured wakes, in seconds (what
    the budget prices putting it to sleep at); null when it never woke."""


class CapacityUse(Payload, kw_only=True, frozen=True):
    """One resource of `resources.capacity`: what the running models take of it."""

    resource: str
    used: int
    capacity: int
    sized: bool = True
    """True when it is written with a unit: bytes."""


class Status(Payload, kw_only=True, frozen=True):
    """The daemon at a glance."""

    daemon: DaemonInfo
    uptime: float
    models: int
    states: dict[str, int]
    """Model count per state name."""
    running: list[str]
    running_set: str | None = None
    """Matrix router: the set the running combination belongs to."""
    in_flight: int = 0
    queued: int = 0
    """Requests not served yet: in the queue, or waiting for a load."""
    subscribers: int = 0
    legend: list[StateLegend] = []
    history: HistoryInfo | None = None
    """The history store; null when the daemon keeps none."""
    # live meters and budgets
    host: HostMeters | None = None
    capacity: list[CapacityUse] = []


class ModelInfo(Payload, kw_only=True, frozen=True):
    """One model's row: everything the TUI's models table shows."""

    id: str
    state: str
    name: str = ""
    description: str = ""
    pid: int | None = None
    port: int | None = None
    proxy: str = ""
    in_flight: int = 0
    queued: int = 0
    """Requests in the queue: behind another swap, or a model busy serving."""
    waiting: int = 0
    """Requests waiting for this model's load (a swap in progress)."""
    ttl: float = 0.0
    """Configured TTL in seconds; 0 means never unloaded for idleness."""
    ttl_left: float | None = None
    """Seconds until the TTL unloads it; None when no TTL countdown runs."""
    last_load_seconds: float | None = None
    argv: list[str] = []
    env: dict[str, str] = {}
    """The environment the config sets for its process (on top of swapd's own)."""
    groups: list[str] = []
    sets: list[str] = []
    aliases: list[str] = []
    unlisted: bool = False
    last_exit_code: int | None = None
    starts: int = 0
    """Starts since swapd (or this config of the model) began."""
    failures: int = 0
    """Failed starts and crashes among them."""
    last_failure: str | None = None
    """How the last failure went, e.g. "killed by SIGSEGV (...) while serving"."""
    last_failure_at: float | None = None
    """When it happened, Unix time."""
    # live meters and budgets
    meters: Meters | None = None
    """None while it has no process."""
    footprint: Footprint | None = None
    """None when the config sets no capacity."""


class LoadResult(Payload, kw_only=True, frozen=True):
    model: str
    state: str
    seconds: float | None = None
    """How long this load took; None when the model was already ready."""
    evicted: list[str] = []
    """The models stopped to make room for it."""


class ReloadResult(Payload, kw_only=True, frozen=True):
    path: str
    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []
    unchanged: list[str] = []
    changes: dict[str, list[str]] = {}
    """For each model in `changed`, the config keys whose effective value changed,
    e.g. `{"chat": ["cmd", "env"], "code": ["port"]}` (`cmd`, `cmdStop`, `env`,
    `port`, `proxy`, `checkEndpoint`, `ttl`, `concurrencyLimit`, ...)."""
    warnings: list[Problem] = []
    """Problems of the new config that did not stop it loading (a matrix model in no set)."""

    def changed_labels(self) -> list[str]:
        """Each changed model with what changed in it: `chat (cmd, env)`."""
        return changed_labels(self.changed, self.changes)


def changed_labels(changed: list[str], changes: dict[str, list[str]]) -> list[str]:
    """`["chat"], {"chat": ["cmd", "env"]}` -> `["chat (cmd, env)"]`."""
    return [f"{m} ({', '.join(changes[m])})" if changes.get(m) else m for m in changed]


class LogText(Payload, kw_only=True, frozen=True):
    source: str
    """"proxy" or a model ID."""
    text: str
    truncated: bool = False
    """True when older text was cut to honour the size bound."""


class Explanation(Payload, kw_only=True, frozen=True):
    """What the router would do with a request for `model` right now, and why."""

    model: str
    action: str
    """e.g. "serve", "join", "queue", "swap", "not_found"."""
    why: str = ""
    resolved: str | None = None
    """The model ID an alias resolved to."""
    state: str | None = None
    evict: list[str] = []
    set: str | None = None
    cost: int | None = None
    running: list[str] = []
    queue_position: int | None = None
    """1-based place it would take in the queue (action "queue")."""
    queued: int = 0
    in_flight: int = 0
    blocked_by: list[str] = []
    """Models whose swaps or requests in flight hold it back (action "queue")."""
    busy: dict[str, int] = {}
    """Requests in flight on the models it would evict."""
    sleep: list[str] = []
    """Models it would put to sleep instead of stopping them (the budget router)."""


class KvRecord(Payload, kw_only=True, frozen=True):
    """A KV-cache save (before a planned stop) or restore (after a start) of one model."""

    model: str
    action: Literal["save", "restore"]
    slots: int
    bytes: int
    seconds: float
    timed_out: bool = False
    errors: list[str] = []


class Decision(Payload, kw_only=True, frozen=True):
    """One entry of the router's decision log."""

    time: float
    model: str
    action: str
    why: str = ""
    evict: list[str] = []
    set: str | None = None
    cost: int | None = None
    running: list[str] = []
    duration: float | None = None
    request: str | None = None
    seq: int | None = None
    input: str = ""
    """The router input that led to it: request, cancel, swap_done, serve_done, unload, ..."""
    swap: int | None = None
    queue_length: int = 0
    kv: list[KvRecord] = []
    """For swap_done: the KV-cache slots the swap saved and restored."""
    sleep: list[str] = []
    """Models the swap puts to sleep instead of stopping them (the budget router)."""


class MatrixSet(Payload, kw_only=True, frozen=True):
    name: str
    dsl: str = ""
    combinations: list[list[str]] = []
    truncated: bool = False
    more: int | None = None
    """How many combinations were left out, when known."""


class GroupInfo(Payload, kw_only=True, frozen=True):
    name: str
    members: list[str]
    swap: bool = True
    exclusive: bool = True
    persistent: bool = False


class MatrixView(Payload, kw_only=True, frozen=True):
    """The swap policy: matrix sets (or groups), what runs, and one model's answer."""

    router: RouterKind
    sets: list[MatrixSet] = []
    truncated: bool = False
    running: list[str] = []
    running_set: str | None = None
    groups: list[GroupInfo] = []
    evict_costs: dict[str, int] = {}
    explain: Explanation | None = None


# --- history payloads (activity, history, stats, capture) -------------------


Outcome = Literal["done", "client_gone", "aborted", "failed"]
"""How a request ended: answered in full; the client left first; cut short by
swapd (an unload or shutdown); failed (with the reason) before or while answered."""

OUTCOMES: tuple[Outcome, ...] = ("done", "client_gone", "aborted", "failed")

HistoryKind = Literal["swap", "exit", "reload"]
HISTORY_KINDS: tuple[HistoryKind, ...] = ("swap", "exit", "reload")


class RequestRecord(Payload, kw_only=True, frozen=True):
    """One finished request. Times are Unix seconds, durations seconds; a value that
    is not known is null (never 0), so "no tokens reported" and "zero tokens" differ.
    `swapctl activity --json` and `/api/activity` give these keys."""

    id: int
    """The daemon's request number (the `id` of its in-flight entry while it runs)."""
    start: float
    client: str | None = None
    """The client's address, when known."""
    requested: str | None = None
    """The model name as the client sent it (an ID, alias or peer name)."""
    model: str | None = None
    """The model that served it: a local model ID, or the model asked of `peer`."""
    route: str = ""
    """The path relayed, e.g. `/v1/chat/completions`."""
    stream: bool = False
    outcome: Outcome = "done"
    status: int | None = None
    """The HTTP status the client got; null when nothing was sent."""
    queued_s: float | None = None
    """Seconds in the router's queue (behind other models' swaps or a busy model)."""
    load_wait_s: float | None = None
    """Seconds waiting for its model's load (swap `swap_id`)."""
    ttfb_s: float | None = None
    """Seconds from arrival to the first byte of the response body."""
    duration_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_per_s: float | None = None
    peer: str | None = None
    """The peer that served it, for a request relayed to another server."""
    reason: str | None = None
    """Why it failed or was cut short."""
    swap_id: int | None = None
    """The swap whose load it waited for, if any."""


class SwapRecord(Payload, tag_field="kind", tag="swap", kw_only=True, frozen=True):
    """One swap: stop `evicted`, then make `target` ready."""

    swap_id: int
    start: float
    target: str
    evicted: list[str] = []
    why: str = ""
    set: str | None = None
    cost: int = 0
    load_s: float | None = None
    """Seconds from the start of the swap to its end."""
    result: Literal["ok", "failed", "aborted"] = "ok"
    error: str | None = None
    kv: list[KvRecord] = []
    """The KV-cache saves of the evicted models, then the restore of the target
    (`kvCache.persist`); empty when none was made."""
    slept: list[str] = []
    """The models put to sleep to make room (they live on, asleep)."""
    wake: bool = False
    """The target was asleep when the swap began: a wake, not a start."""


class ExitRecord(Payload, tag_field="kind", tag="exit", kw_only=True, frozen=True):
    """A model server process ended."""

    time: float
    model: str
    pid: int
    exit_code: int | None = None
    """Null when a signal killed it."""
    signal: str | None = None
    """e.g. `SIGKILL`; null when it exited."""
    reason: str = ""
    failed: bool = False
    """It ended on its own (a crash, a failed start), not because swapd stopped it."""
    uptime_s: float | None = None
    kv: KvRecord | None = None
    """The KV-cache save made just before this stop (a swap's eviction, a TTL, an unload,
    a reload, the shutdown); null when there was none."""


class ReloadRecord(Payload, tag_field="kind", tag="reload", kw_only=True, frozen=True):
    """One config reload, applied (`ok`) or refused (`errors`)."""

    time: float
    ok: bool
    source: str = ""
    path: str = ""
    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []
    """Changed models with what changed in each: `chat (cmd, env)`."""
    errors: list[str] = []


HistoryRecord = SwapRecord | ExitRecord | ReloadRecord


class ModelStats(Payload, kw_only=True, frozen=True):
    """One model over a window; a figure with no data is null. Errors: failed, aborted,
    or status >= 400 (a client that left is not the model's error)."""

    model: str
    requests: int = 0
    errors: int = 0
    ttfb_p50_s: float | None = None
    ttfb_p95_s: float | None = None
    duration_p50_s: float | None = None
    duration_p95_s: float | None = None
    tokens_per_s_p50: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    loads: int = 0
    """Swaps that started it; a wake is counted in `wakes`, not here."""
    load_p50_s: float | None = None
    load_failures: int = 0
    crashes: int = 0
    sleeps: int = 0
    """Swaps that put it to sleep to make room."""
    wakes: int = 0
    """Swaps that woke it."""
    wake_p50_s: float | None = None
    wake_failures: int = 0


class Stats(Payload, kw_only=True, frozen=True):
    since: float
    until: float
    models: list[ModelStats] = []


class Capture(Payload, kw_only=True, frozen=True):
    """A request and its response as relayed (`captureBuffer`); bodies base64 in JSON.
    Credentials in headers are `[REDACTED]`."""

    id: int
    req_path: str
    req_headers: dict[str, str] | None = None
    req_body: bytes | None = None
    resp_headers: dict[str, str] | None = None
    resp_body: bytes | None = None
    truncated: bool = False
    """A body was cut (longer than half the buffer, or than a reply line may carry)."""


class HistoryInfo(Payload, kw_only=True, frozen=True):
    """The history store's health, in `status`."""

    path: str
    available: bool
    """The database is open for writing."""
    error: str | None = None
    written: int = 0
    dropped: int = 0
    """Records lost since start: queue full, or storage failing (logged once)."""
    pending: int = 0
    captures: int = 0
    """Captures held in memory now."""


# --- simulate payloads --------------------------------------------------------


class SimSummary(Payload, kw_only=True, frozen=True):
    """One model's (or all models') figures in a simulation; times in seconds."""

    requests: int
    loads: int
    load_seconds: float
    wait_p50: float
    """Wait is queue plus load: from arrival to the grant, for the requests granted."""
    wait_p95: float
    wait_max: float
    over_max_wait: int
    """Requests granted after waiting longer than the config's `maxWait`."""
    failures: int
    peak_queue: int
    failure_kinds: dict[str, int] = {}
    wakes: int = 0
    wake_seconds: float = 0.0


class SimConfig(Payload, kw_only=True, frozen=True):
    """One config's run of the trace."""

    config: str
    router: str
    max_wait: float
    totals: SimSummary
    models: dict[str, SimSummary]


class SimLoadTime(Payload, kw_only=True, frozen=True):
    seconds: float
    source: Literal["flag", "history", "default"]


class Simulation(Payload, kw_only=True, frozen=True):
    """What `swapd simulate --json` prints: `configs` holds NEW first, then OLD."""

    configs: list[SimConfig]
    load_times: dict[str, SimLoadTime]
    requests: int
    """Requests in the trace."""
    diff: dict[str, dict[str, float]] | None = None
    """NEW minus OLD, per model and under "total", for each figure."""
    wake_times: dict[str, SimLoadTime] = {}
    since: float | None = None
    """Unix time of the window's start (the history's requests since then)."""
    truncated: bool = False
    """The window held more requests than the daemon replays: only the latest were."""


# --- event payloads ---------------------------------------------------------


class EventData(msgspec.Struct, tag_field="kind", kw_only=True, frozen=True):
    """Base of event payloads; `kind` is the tag, `topic` the bus topic."""

    topic: ClassVar[str] = "misc"
    time: float


class StateChanged(EventData, tag="state_changed", kw_only=True, frozen=True):
    topic: ClassVar[str] = "state"
    model: str
    old: str
    new: str
    reason: str = ""


class SwapStarted(EventData, tag="swap_started", kw_only=True, frozen=True):
    topic: ClassVar[str] = "swap"
    target: str
    evict: list[str] = []
    set: str | None = None
    cost: int | None = None
    why: str = ""
    swap: int | None = None
    """The swap's id; decisions about it carry the same `swap`."""
    sleep: list[str] = []
    """Models it puts to sleep instead of stopping them (the budget router)."""
    wake: bool = False
    """The target is asleep: the swap wakes it rather than starts it."""


class SwapFinished(EventData, tag="swap_finished", kw_only=True, frozen=True):
    topic: ClassVar[str] = "swap"
    target: str
    ok: bool = True
    duration: float | None = None
    evict: list[str] = []
    set: str | None = None
    cost: int | None = None
    error: str = ""
    log_tail: str = ""
    aborted: bool = False
    swap: int | None = None
    kv: list[KvRecord] = []
    """The KV-cache slots the swap saved (evicted models) and restored (its target)."""


class DecisionMade(EventData, tag="decision", kw_only=True, frozen=True):
    topic: ClassVar[str] = "decision"
    decision: Decision


class RequestEvent(EventData, tag="request", kw_only=True, frozen=True):
    topic: ClassVar[str] = "request"
    model: str
    phase: str
    """The router's "admitted", "waiting", "granted", "done", "failed", "cancelled",
    "aborted"; and "finished" once the HTTP layer has answered (with `record`)."""
    request: str | None = None
    status: int | None = None
    duration: float | None = None
    detail: str = ""
    record: RequestRecord | None = None
    """With phase "finished": the request's record, as `activity` returns it
    (its `request` is the record's id; the other phases carry the router's)."""


class QueueChanged(EventData, tag="queue", kw_only=True, frozen=True):
    topic: ClassVar[str] = "queue"
    queued: dict[str, int] = {}
    """Queued request count per model (behind another swap, or a busy model)."""
    in_flight: dict[str, int] = {}
    order: list[str] = []
    """The queue, oldest first, as model IDs."""
    waiting: dict[str, int] = {}
    """Requests waiting for the model's load (a swap in progress), per model."""


class LogLines(EventData, tag="log", kw_only=True, frozen=True):
    topic: ClassVar[str] = "log"
    source: str
    """"proxy" or a model ID."""
    text: str
    """Complete lines, each ending with a newline."""
    history: bool = False
    """True for the backlog sent when a subscription asked for history."""
    stream: str = ""
    """"stdout", "stderr", or swapd's own ("info", "swapd", "dropped", ...)."""


class ConfigReloaded(EventData, tag="config", kw_only=True, frozen=True):
    """A reload, whatever asked for it (swapctl, SIGHUP, the file watcher)."""

    topic: ClassVar[str] = "config"
    ok: bool
    path: str
    problems: list[Problem] = []
    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []
    changes: dict[str, list[str]] = {}
    """As in `ReloadResult`: per changed model, the keys that changed."""
    warnings: list[Problem] = []
    source: str = ""
    """What asked for it: `control` (swapctl), `signal` (SIGHUP), `watch` (the file changed)."""

    def changed_labels(self) -> list[str]:
        return changed_labels(self.changed, self.changes)


class OtherEvent(EventData, tag="other", kw_only=True, frozen=True):
    """A daemon event this protocol version has no dedicated kind for."""

    event_topic: str
    name: str
    fields: dict[str, Any] = {}


EventPayload = (
    StateChanged
    | SwapStarted
    | SwapFinished
    | DecisionMade
    | RequestEvent
    | QueueChanged
    | LogLines
    | ConfigReloaded
    | OtherEvent
)

# --- client -> daemon -------------------------------------------------------


class Hello(Message, tag="hello", kw_only=True, frozen=True):
    client: str = ""
    protocol: int = PROTOCOL_VERSION


class Request(Message, kw_only=True, frozen=True):
    """A request; its reply echoes `id`."""

    id: RequestId = 0


class StatusRequest(Request, tag="status", kw_only=True, frozen=True):
    pass


class ModelsRequest(Request, tag="models", kw_only=True, frozen=True):
    pass


class LoadRequest(Request, tag="load", kw_only=True, frozen=True):
    model: str


class UnloadRequest(Request, tag="unload", kw_only=True, frozen=True):
    models: list[str] = []
    all: bool = False
    now: bool = False
    """Stop at once, cutting requests in flight (they end with an error), instead of
    waiting for them (at most each model's unloadTimeout)."""


class ReloadRequest(Request, tag="reload", kw_only=True, frozen=True):
    pass


class LogsRequest(Request, tag="logs", kw_only=True, frozen=True):
    source: str = "proxy"
    """"proxy" or a model ID."""
    max_bytes: int = 64 * 1024


class SubscribeRequest(Request, tag="subscribe", kw_only=True, frozen=True):
    topics: list[str] = []
    """Topics from TOPICS; empty means all of them."""
    models: list[str] = []
    """Only events about these models (or log sources); empty means all."""
    history: bool = False
    """Start with recent events (and, for "log", the buffered log text)."""


class UnsubscribeRequest(Request, tag="unsubscribe", kw_only=True, frozen=True):
    subscription: int


class ExplainRequest(Request, tag="explain", kw_only=True, frozen=True):
    model: str


class MatrixRequest(Request, tag="matrix", kw_only=True, frozen=True):
    model: str | None = None
    """Also explain a request for this model."""
    limit: int = 1000
    """At most this many combinations are expanded per set."""


class DecisionsRequest(Request, tag="decisions", kw_only=True, frozen=True):
    limit: int = 100


class ActivityRequest(Request, tag="activity", kw_only=True, frozen=True):
    """Finished requests, newest first."""

    model: str | None = None
    outcome: Outcome | None = None
    since: float | None = None
    """Unix seconds, inclusive."""
    until: float | None = None
    """Unix seconds, exclusive."""
    limit: int = 100
    """At most this many (clamped to 1..10000; a reply too long for a line is refused)."""


class HistoryRequest(Request, tag="history", kw_only=True, frozen=True):
    """Swaps, exits and reloads, newest first."""

    kinds: list[HistoryKind] = []
    """Empty means all three."""
    model: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100


class StatsRequest(Request, tag="stats", kw_only=True, frozen=True):
    """Per-model figures over [since, until)."""

    since: float | None = None
    """Null: one hour before `until`."""
    until: float | None = None
    """Null: now."""


class CaptureRequest(Request, tag="capture", kw_only=True, frozen=True):
    request: int
    """The request's id (`RequestRecord.id`)."""


class SimulateRequest(Request, tag="simulate", kw_only=True, frozen=True):
    """Replay the daemon's request history through a config file (NEW) and through
    the config it runs (OLD), as `swapd simulate --config NEW --against OLD --history`."""

    config: str | None = None
    """A config file the daemon can read (an absolute path); null: its own config file
    as it is on disk now."""
    since: float | None = None
    """Unix seconds; null: 24 hours ago."""
    load_times: dict[str, float] = {}
    """Seconds per model ID or alias; other models: measured in the history, else 1 s."""


ClientMessage = (
    Hello
    | StatusRequest
    | ModelsRequest
    | LoadRequest
    | UnloadRequest
    | ReloadRequest
    | LogsRequest
    | SubscribeRequest
    | UnsubscribeRequest
    | ExplainRequest
    | MatrixRequest
    | DecisionsRequest
    | ActivityRequest
    | HistoryRequest
    | StatsRequest
    | CaptureRequest
    | SimulateRequest
)

# --- daemon -> client -------------------------------------------------------


class Welcome(Message, tag="welcome", kw_only=True, frozen=True):
    protocol: int
    daemon: DaemonInfo


class Reply(Message, kw_only=True, frozen=True):
    id: RequestId = 0


class StatusReply(Reply, tag="status_reply", kw_only=True, frozen=True):
    status: Status


class ModelsReply(Reply, tag="models_reply", kw_only=True, frozen=True):
    models: list[ModelInfo]


class LoadReply(Reply, tag="load_reply", kw_only=True, frozen=True):
    result: LoadResult


class UnloadReply(Reply, tag="unload_reply", kw_only=True, frozen=True):
    models: list[str]
    """The models that were asked to stop."""
    cut: int = 0
    """Requests in flight that were cut short (with `now`, or past unloadTimeout)."""


class ReloadReply(Reply, tag="reload_reply", kw_only=True, frozen=True):
    result: ReloadResult


class LogsReply(Reply, tag="logs_reply", kw_only=True, frozen=True):
    log: LogText


class Subscribed(Reply, tag="subscribed", kw_only=True, frozen=True):
    subscription: int
    topics: list[str]
    history: int = 0
    """How many history events come first (delivered or counted in `lagged`), before live ones."""


class Unsubscribed(Reply, tag="unsubscribed", kw_only=True, frozen=True):
    subscription: int


class ExplainReply(Reply, tag="explain_reply", kw_only=True, frozen=True):
    explanation: Explanation


class MatrixReply(Reply, tag="matrix_reply", kw_only=True, frozen=True):
    matrix: MatrixView


class DecisionsReply(Reply, tag="decisions_reply", kw_only=True, frozen=True):
    decisions: list[Decision]


class ActivityReply(Reply, tag="activity_reply", kw_only=True, frozen=True):
    records: list[RequestRecord]


class HistoryReply(Reply, tag="history_reply", kw_only=True, frozen=True):
    records: list[HistoryRecord]


class StatsReply(Reply, tag="stats_reply", kw_only=True, frozen=True):
    stats: Stats


class CaptureReply(Reply, tag="capture_reply", kw_only=True, frozen=True):
    capture: Capture


class SimulateReply(Reply, tag="simulate_reply", kw_only=True, frozen=True):
    simulation: Simulation


class Error(Message, tag="error", kw_only=True, frozen=True):
    """A refusal or failure. `id` is the request's, or None for a bad line."""

    id: RequestId | None = None
    code: str
    message: str
    problems: list[Problem] = []
    log_tail: str = ""


class Event(Message, tag="event", kw_only=True, frozen=True):
    subscription: int
    topic: str
    data: EventPayload


class Lagged(Message, tag="lagged", kw_only=True, frozen=True):
    """The subscriber fell behind: `missed` events were dropped before the next one."""

    subscription: int
    missed: int


ServerMessage = (
    Welcome
    | StatusReply
    | ModelsReply
    | LoadReply
    | UnloadReply
    | ReloadReply
    | LogsReply
    | Subscribed
    | Unsubscribed
    | ExplainReply
    | MatrixReply
    | DecisionsReply
    | ActivityReply
    | HistoryReply
    | StatsReply
    | CaptureReply
    | SimulateReply
    | Error
    | Event
    | Lagged
)

RUNNING_STATES: frozenset[str] = frozenset({"starting", "ready", "stopping", "asleep"})
"""The process states in which a model holds its resources: what "running" means
everywhere (swapd's eviction, `/running`, swapctl, swaptui)."""


ERROR_CODES: dict[str, str] = {
    "bad_frame": "the line is not valid JSON or not a known message",
    "frame_too_large": "the line exceeds MAX_LINE_BYTES; the connection is closed",
    "hello_required": "the first message must be hello",
    "version_mismatch": "the client's protocol version is not served",
    "permission_denied": "the peer is not allowed on this socket",
    "not_found": "no such model, log source or capture",
    "bad_request": "a field has an invalid value",
    "busy": "too many requests or subscriptions on this connection",
    "reply_too_large": "the reply would exceed MAX_LINE_BYTES; ask for less",
    "load_failed": "the model failed to start",
    "aborted": "the request was aborted by unload or shutdown",
    "config_invalid": "the config has problems (reload: the old one keeps running)",
    "unavailable": "the daemon cannot do this now (shutting down, no history kept)",
    "internal": "an unexpected daemon error",
}
"""Every `error.code` the daemon sends, with its meaning."""


def message_types(union: Any) -> dict[str, type[msgspec.Struct]]:
    """Tag -> class for a union of tagged Structs (ClientMessage, ServerMessage, EventPayload)."""
    out: dict[str, type[msgspec.Struct]] = {}
    for cls in union.__args__:
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        out[str(info.tag)] = cls
    return out
