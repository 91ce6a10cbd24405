"""Typed inputs of the scheduler and typed records the router publishes.

Inputs are everything the pure `FifoScheduler` ever learns about the world:
callers (HTTP handlers, swap tasks, the control socket) post them to the run
loop as they are. The loop hands each to the scheduler with the `Facts` it
captured at that moment: the clock, the process states that count as
running, and the requests whose handler has already gone but whose cancel
has not been processed yet. Because nothing else is consulted, a recorded
list of `(facts, input)` pairs fed to a fresh scheduler reproduces the
recorded decisions exactly (replay). An input's name in the decision log is
its tag.

Records (`Decision`, `SwapStarted`, `SwapFinished`, `RequestEvent`,
`QueueChanged`, `Preloaded`) are published on the `EventBus`; their `topic`
class attribute routes them. All are msgspec Structs so the control socket
can encode them as they are.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import msgspec

from swapd.process.events import KvActivity
from swapd.process.states import RUNNING_STATES, ProcessState

__all__ = ["RUNNING_STATES"]


class SwapError(msgspec.Struct, frozen=True):
    """Why a swap did not leave its target ready."""

    reason: str
    log_tail: str = ""
    exit_code: int | None = None
    aborted: bool = False


class Facts(msgspec.Struct, frozen=True, kw_only=True):
    """What the world looked like when the loop handled an input.

    `time` is the scheduling clock (trio's, so a MockClock drives maxWait in
    tests); `wall` is the epoch time stamped on the records it produces;
    `running` holds the models whose process state counts as running
    (`RUNNING_STATES`) and no others; `gone` the requests whose handler left
    before its cancel was handled.
    """

    time: float
    wall: float = 0.0
    running: dict[str, ProcessState] = {}
    gone: frozenset[int] = frozenset()


class Input(msgspec.Struct, frozen=True, kw_only=True, tag_field="input"):
    """A scheduler input; its tag is its name in the decision log."""


class RequestIn(Input, frozen=True, kw_only=True, tag="request"):
    """An HTTP handler asks for `model`; `request_id` identifies it from now on."""

    request_id: int
    model: str


class Cancel(Input, frozen=True, kw_only=True, tag="cancel"):
    """The handler of `request_id` left before it was granted (client gone)."""

    request_id: int


class SwapDone(Input, frozen=True, kw_only=True, tag="swap_done"):
    """A swap task finished: `error` is None when the target is ready."""

    swap_id: int
    model: str
    error: SwapError | None = None
    kv: tuple[KvActivity, ...] = ()
    """The KV-cache saves of the evicted models and the target's restore, during the swap."""


class ServeDone(Input, frozen=True, kw_only=True, tag="serve_done"):
    """A granted handler returned (normally, with an error, or cancelled)."""

    request_id: int
    model: str


class Unload(Input, frozen=True, kw_only=True, tag="unload"):
    """Admin unload of `models` (None = every model).

    Each model stops once its requests in flight have finished, or once its
    `unloadTimeout` has passed (those still in flight are then cut); with
    `now`, at once, cutting them. Each stop is followed by `UnloadFinished`.
    """

    models: tuple[str, ...] | None = None
    now: bool = False


class UnloadFinished(Input, frozen=True, kw_only=True, tag="unload_finished"):
    """The processes of an unload are stopped: the queue may drain."""

    models: tuple[str, ...] = ()


class Shutdown(Input, frozen=True, kw_only=True, tag="shutdown"):
    """The router is shutting down: every waiter fails, nothing new is admitted."""


class Policy(msgspec.Struct, frozen=True):
    """A model's `concurrencyLimit`, queue priority and `unloadTimeout` (seconds, the
    longest an unload waits for its requests in flight), as a reload carries them."""

    limit: int
    priority: int = 0
    unload_timeout: float = 10.0


class Reload(Input, frozen=True, kw_only=True, tag="reload"):
    """A new config: the models it routes, their policies and the fifo settings.

    The swapper in force is set on the scheduler just before (it is code, not
    data): replaying a log with a reload needs the same swapper at that point.

    `drain` names the models whose process must be retired (settings changed,
    or removed from the config) with the longest each may take to drain, in
    seconds: they get no new grants, and once none of their requests is in
    flight (or the bound has passed) the scheduler asks for their retirement.
    """

    models: dict[str, Policy]
    max_wait: float
    keep_abandoned_loads: bool
    drain: dict[str, float] = {}
    #: model -> draining models it must not start before: its new process takes
    #: over their old port (docs/compat.md, Reload).
    after: dict[str, tuple[str, ...]] = {}


class Retired(Input, frozen=True, kw_only=True, tag="retired"):
    """The old processes of these draining models are gone and the new config's
    supervisors (if any) are in place: they may be granted again."""

    models: tuple[str, ...]


class Tick(Input, frozen=True, kw_only=True, tag="tick"):
    """The clock reached a deadline the scheduler asked about (`next_deadline`)."""


def input_name(inp: Input) -> str:
    """The input's tag: "request", "serve_done", ..."""
    return str(type(inp).__struct_config__.tag)


AnyInput = (
    RequestIn
    | Cancel
    | SwapDone
    | ServeDone
    | Unload
    | UnloadFinished
    | Shutdown
    | Reload
    | Retired
    | Tick
)


class Recorded(msgspec.Struct, frozen=True):
    """One handled input with its facts: a replay step."""

    facts: Facts
    input: AnyInput


FailureKind = Literal["not_found", "too_many", "load_failed", "unloaded", "shutdown", "too_big"]


class Failure(msgspec.Struct, frozen=True):
    """An error handed to one request; `errors.error_for` maps it to a RouterError."""

    kind: FailureKind
    model: str
    message: str
    reason: str = ""
    log_tail: str = ""


class SwapPlan(msgspec.Struct, frozen=True):
    """What a swap task must do: stop `evict` and put `sleep` to sleep (in parallel),
    then make `target` ready."""

    swap_id: int
    target: str
    evict: tuple[str, ...]
    set: str | None = None
    cost: int = 0
    why: str = ""
    """The planner's reason, for the swap's record."""
    sleep: tuple[str, ...] = ()
    wake: bool = False
    """The target is asleep: the swap wakes it rather than starts it."""


Action = Literal[
    "reject",  # admission refused (unknown model, concurrency limit, shutting down)
    "serve",  # fast path: granted at once
    "join",  # waits on the active swap of its model
    "queue",  # parked in the queue (reason says behind whom and why)
    "swap",  # started a swap and waits on it
    "grant",  # granted at the end of a swap or by a drain
    "requeue",  # swap finished but an overdue older request goes first
    "fail",  # an error was handed to the request
    "drop",  # the handler was gone when it would have been granted or admitted
    "cancel",  # removed from the queue or from a swap's waiters
    "abort_load",  # the last waiter of a load left: the load is aborted
    "unload",  # admin unload of models
    "unload_wait",  # an unloaded model waits for its requests in flight before it stops
    "cut",  # requests in flight are cut short (unload --now, or its wait ran out)
    "stop",  # an unloaded model's process is stopped
    "swap_done",  # a swap task reported its result
    "shutdown",
    "reload",  # a new config took effect
    "drain",  # a reloaded model waits for its requests in flight before it is retired
    "retire",  # a drained model's old process is stopped and replaced (or removed)
    "retired",  # the retirement is done: the model's queue may drain again
]


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the decision log: what the scheduler did and why.

    `time` is the wall clock (epoch seconds), `clock` the scheduling clock.
    """

    topic: ClassVar[str] = "decision"

    seq: int
    time: float
    input: str
    action: Action
    model: str = ""
    request_id: int | None = None
    swap_id: int | None = None
    evict: tuple[str, ...] = ()
    set: str | None = None
    cost: int = 0
    queue_length: int = 0
    reason: str = ""
    clock: float = 0.0
    duration: float | None = None
    """For `swap_done`: seconds from the start of the swap, on the scheduling clock."""
    kv: tuple[KvActivity, ...] = ()
    """For `swap_done`: the KV-cache slots saved and restored (time, bytes) by the swap."""
    sleep: tuple[str, ...] = ()
    """The models the swap puts to sleep (as `evict`, but they stay alive)."""


class SwapStarted(msgspec.Struct, frozen=True, kw_only=True):
    """A swap task started (`time`: wall clock, like every published record)."""

    topic: ClassVar[str] = "swap"

    swap_id: int
    target: str
    evict: tuple[str, ...]
    set: str | None
    cost: int
    time: float
    why: str = ""
    sleep: tuple[str, ...] = ()
    wake: bool = False
    """The target was asleep when the swap began (a wake, not a start)."""


class SwapFinished(msgspec.Struct, frozen=True, kw_only=True):
    topic: ClassVar[str] = "swap"

    swap_id: int
    target: str
    ok: bool
    seconds: float
    error: SwapError | None
    time: float
    kv: tuple[KvActivity, ...] = ()
    """The KV-cache slots saved (evicted models) and restored (the target) by the swap."""


RequestPhase = Literal["admitted", "waiting", "granted", "failed", "done", "cancelled", "aborted"]


class RequestEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Life of one request as the router sees it ("waiting": on a swap; queue
    membership is in `QueueChanged`; "cancelled" carries no model; "aborted": it
    was granted and then cut short by an unload, instead of "done")."""

    topic: ClassVar[str] = "request"

    request_id: int
    model: str
    phase: RequestPhase
    time: float
    detail: str = ""


class QueueChanged(msgspec.Struct, frozen=True, kw_only=True):
    """Who waits, after a change: the queue (request ids and their models, in queue
    order), and per model the requests waiting for its load (a swap in progress)."""

    topic: ClassVar[str] = "queue"

    time: float
    entries: tuple[tuple[int, str], ...]
    waiting: dict[str, int] = {}


class Preloaded(msgspec.Struct, frozen=True, kw_only=True):
    topic: ClassVar[str] = "preload"

    model: str
    ok: bool
    error: str = ""


ProgressKind = Literal["admitted", "queued", "loading", "granted"]


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """Sent to a lease's `progress` channel, for the loading stream (`sendLoadingState`).

    "admitted" comes first (the 429 can no longer happen, a 200 may be sent),
    "queued" carries the 1-based queue position, "loading" means the request
    now waits on a swap of `model`, "granted" that the wait is over.
    """

    kind: ProgressKind
    model: str
    position: int | None = None
