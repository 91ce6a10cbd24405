"""The router's run loop: the one task that owns all routing state.

HTTP handlers, the control socket and swap tasks only post messages to its
inbox and wait on their own one-shot ticket; the loop turns each message
into a typed scheduler input (stamped with the clock, the process states and
the handlers already gone), hands it to the pure `FifoScheduler`, and
carries out the effects: wake a ticket, start or abort a swap task, stop
models for an unload, publish records.

The inbox is unbounded on purpose: every message stands for a live handler
(one request, one cancel or one serve-done each) or a swap task (one result
each), so its length is bounded by those, and posting never blocks, which
lets a cancelled handler still report from its `finally`.

Reload (beyond llama-swap, which stops every model, spec router.md §7.5):
`reload(swapper, settings, drain=...)` hands the scheduler the new config;
the models in `drain` get no new grants and, once the scheduler sees none of
their requests in flight (or their drain bound passed), it asks for their
retirement, which a task carries out through `ProcessControl.retire` before
reporting `Retired`. A timer task feeds `Tick` at the scheduler's next drain
deadline, so the bound holds even when nothing else happens.

Unload (beyond llama-swap, which cuts requests in flight): the scheduler
asks for each unloaded model's stop once its requests in flight are done (or
its `unloadTimeout` has passed, or at once with `now`); a task carries the
stop out and reports `UnloadFinished`, and `unload()` returns once every
model it named has stopped. Requests cut short are told through the
`on_cut` callback their handler passed to `lease`, and are reported
"aborted" instead of "done". The loop itself never waits on a stop.

In-flight accounting (spec router.md §3.5, with the trio caveat): a grant
is counted only when the scheduler saw the handler alive; the lease's
`finally` reports serve-done whenever the ticket was granted, even if the
handler was cancelled before it resumed, and reports a cancel otherwise.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import msgspec
import trio

from swapd.events import EventBus
from swapd.router.decision_log import DEFAULT_DECISION_LOG_SIZE, DecisionLog
from swapd.router.errors import RequestAborted, RouterError, error_for
from swapd.router.events import (
    RUNNING_STATES,
    AnyInput,
    Cancel,
    Decision,
    Failure,
    Policy,
    Preloaded,
    Progress,
    QueueChanged,
    Reload,
    RequestEvent,
    RequestIn,
    Retired,
    ServeDone,
    Shutdown,
    SwapDone,
    SwapError,
    SwapFinished,
    SwapPlan,
    SwapStarted,
    Tick,
    Unload,
    UnloadFinished,
)
from swapd.router.explain import Explanation, explain
from swapd.router.process_control import PoolControl, ProcessControl, state_name, swap_error
from swapd.router.scheduler import (
    DEFAULT_MAX_WAIT,
    FifoScheduler,
    ModelPolicy,
    SchedulerSettings,
)
from swapd.router.swapper import Swapper

log = logging.getLogger(__name__)

_NOBODY_GONE: frozenset[int] = frozenset()
#: Distinct process states `Router._states` remembers the name of (a handful exist).
_STATE_NAMES_BOUND = 64


@dataclass(frozen=True)
class RouterSettings:
    """`record_inputs` keeps every scheduler input in memory for replay (tests, debugging).

    A model that a swap evicts gets its own `unloadTimeout` to stop before it is
    killed (llama-swap gives it the global healthCheckTimeout; docs/compat.md).
    """

    models: Mapping[str, ModelPolicy]
    max_wait: float = DEFAULT_MAX_WAIT
    keep_abandoned_loads: bool = False
    name: str = "router"
    decision_log_size: int = DEFAULT_DECISION_LOG_SIZE
    record_inputs: bool = False


class Grant(msgspec.Struct, frozen=True):
    """What a lease yields: where to relay the request (a Struct: built once per request)."""

    model: str
    upstream: str
    request_id: int


class QueuedEntry(msgspec.Struct, frozen=True):
    request_id: int
    model: str
    position: int
    waited: float


class SwapEntry(msgspec.Struct, frozen=True):
    swap_id: int
    target: str
    evict: tuple[str, ...]
    set: str | None
    cost: int
    waiters: int
    aborting: bool
    seconds: float


class RouterSnapshot(msgspec.Struct, frozen=True):
    """A report of the router's state (advisory).

    Per model: `in_flight` requests being served, `waiting` requests waiting for
    its load (a swap in progress), `queued` requests in the queue (behind
    another swap, or a model busy serving).
    """

    queue: tuple[QueuedEntry, ...]
    swaps: tuple[SwapEntry, ...]
    in_flight: dict[str, int]
    reserved: dict[str, int]
    queued: dict[str, int]
    closed: bool
    waiting: dict[str, int] = {}

    @classmethod
    def empty(cls) -> RouterSnapshot:
        """Nothing queued, waiting or in flight (a router stand-in's report)."""
        return cls(queue=(), swaps=(), in_flight={}, reserved={}, queued={}, closed=False)


# ----------------------------------------------------------------- messages


CutCallback = Callable[[str], None]


class _Ticket:
    """One lease's one-shot slot: filled once by the loop with a grant or a failure.

    `on_cut` is the handler's way to be told, after its grant, that its request
    is cut short (its model is being unloaded); `cut` keeps the reason.
    """

    __slots__ = ("closed", "cut", "done", "failure", "granted", "id", "model", "on_cut", "progress")

    def __init__(
        self,
        id: int,
        model: str,
        progress: trio.MemorySendChannel[Any] | None,
        on_cut: CutCallback | None = None,
    ) -> None:
        self.id = id
        self.model = model
        self.progress = progress
        self.on_cut = on_cut
        self.granted = False
        self.failure: Failure | None = None
        self.cut: str | None = None
        self.closed = False
        self.done = trio.Event()

    def resolve(self) -> None:
        """Granted or failed: wake the lease."""
        self.done.set()

    def tell(self, progress: Progress) -> None:
        if self.progress is None or self.closed:
            return
        try:
            self.progress.send_nowait(progress)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # a full or closed progress channel only loses a cosmetic update


@dataclass(frozen=True)
class _RequestMsg:
    ticket: _Ticket


@dataclass(frozen=True)
class _CancelMsg:
    request_id: int


@dataclass(frozen=True)
class _ServeDoneMsg:
    request_id: int
    model: str


@dataclass(frozen=True)
class _SwapResultMsg:
    swap_id: int
    model: str
    error: SwapError | None


@dataclass(frozen=True)
class _UnloadMsg:
    wait: _UnloadWait
    now: bool


@dataclass(frozen=True)
class _StoppedMsg:
    models: tuple[str, ...]


@dataclass
class _UnloadWait:
    """One `unload()` call: the models it still waits for, and the requests it cut."""

    models: set[str]
    done: trio.Event
    cut: int = 0


@dataclass(frozen=True)
class _ShutdownMsg:
    done: trio.Event


@dataclass(frozen=True)
class _ReloadMsg:
    swapper: Swapper
    settings: RouterSettings
    drain: Mapping[str, float]
    after: Mapping[str, tuple[str, ...]]
    done: trio.Event


@dataclass(frozen=True)
class _RetiredMsg:
    models: tuple[str, ...]


@dataclass(frozen=True)
class _TickMsg:
    pass


@dataclass(frozen=True)
class _SyncMsg:
    done: trio.Event


# ----------------------------------------------------------------- effects


class _Inbox:
    """The loop's receive side: messages already waiting are taken without a checkpoint.

    A plain `async for` over a memory channel yields to the scheduler for every
    message, so a burst of N requests needed N scheduler rounds to be granted,
    each round also running every other ready task (streams being relayed,
    requests being parsed): 32 requests arriving together waited tens of ms.
    Taking what is queued in one go (at most `BATCH`, then a real checkpoint)
    handles them in the same order, with the same effects, in one round.
    """

    BATCH = 64

    def __init__(self, channel: trio.MemoryReceiveChannel[object]) -> None:
        self._channel = channel
        self._taken = 0

    def receive_nowait(self) -> object:
        return self._channel.receive_nowait()

    def __aiter__(self) -> _Inbox:
        return self

    async def __anext__(self) -> object:
        if self._taken < self.BATCH:
            try:
                msg = self._channel.receive_nowait()
            except trio.WouldBlock:
                pass
            except trio.EndOfChannel:
                raise StopAsyncIteration from None
            else:
                self._taken += 1
                return msg
        self._taken = 0
        try:
            return await self._channel.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class _LoopEffects:
    """The scheduler's effects, carried out by the run loop (never awaiting).

    Records are stamped with `wall`, the wall clock of the input being
    handled (set by `Router._handle`), like the decisions that input produces.
    """

    def __init__(self, router: Router) -> None:
        self.r = router
        self.wall = 0.0

    def _event(self, rid: int, model: str, phase: Any, detail: str = "") -> None:
        self.r.bus.publish(
            RequestEvent(request_id=rid, model=model, phase=phase, time=self.wall, detail=detail)
        )

    def admit(self, request_id: int, model: str) -> None:
        ticket = self.r._tickets.get(request_id)
        if ticket is not None and ticket.progress is not None:
            ticket.tell(Progress(kind="admitted", model=model))
        self._event(request_id, model, "admitted")

    def grant(self, request_id: int, model: str) -> None:
        ticket = self.r._tickets.pop(request_id, None)
        if ticket is None or ticket.closed:
            # Cannot happen (the scheduler checks `gone`); if it ever does, balance
            # the count at once rather than strand an in-flight slot forever.
            log.error("grant for request %s whose handler has gone", request_id)
            self.r._post(_ServeDoneMsg(request_id, model))
            return
        ticket.granted = True
        self.r._serving[request_id] = ticket
        if ticket.progress is not None:
            ticket.tell(Progress(kind="granted", model=model))
        ticket.resolve()
        self._event(request_id, model, "granted")

    def fail(self, request_id: int, failure: Failure) -> None:
        ticket = self.r._tickets.pop(request_id, None)
        if ticket is not None:
            ticket.failure = failure
            ticket.resolve()
        self._event(request_id, failure.model, "failed", failure.message)

    def waiting(self, request_id: int, swap_id: int, model: str) -> None:
        ticket = self.r._tickets.get(request_id)
        if ticket is not None:
            ticket.tell(Progress(kind="loading", model=model))
        self._event(request_id, model, "waiting", f"swap {swap_id}")

    def queued(self, positions: Mapping[int, int]) -> None:
        entries = []
        for rid, pos in positions.items():
            ticket = self.r._tickets.get(rid)
            if ticket is not None:
                ticket.tell(Progress(kind="queued", model=ticket.model, position=pos))
                entries.append((rid, ticket.model))
        self.r._queue_entries = tuple(entries)
        self.r._queue_dirty = True

    def start_swap(self, plan: SwapPlan) -> None:
        self.r._start_swap_task(plan)

    def abort_swap(self, swap_id: int, model: str, stop_target: bool) -> None:
        scope = self.r._swap_scopes.get(swap_id)
        if scope is not None:
            if stop_target:
                self.r._stop_on_abort.add(swap_id)
            scope.cancel()

    def stop(self, models: tuple[str, ...], reason: str) -> None:
        self.r._start_stop_task(models, reason)

    def cut(self, request_ids: tuple[int, ...], model: str, reason: str) -> None:
        for rid in request_ids:
            ticket = self.r._serving.get(rid)
            if ticket is None or ticket.cut is not None:
                continue
            ticket.cut = reason
            for wait in self.r._unload_waits:
                if model in wait.models:
                    wait.cut += 1
            if ticket.on_cut is not None and not ticket.closed:
                try:
                    ticket.on_cut(reason)
                except Exception:  # a handler's callback must never break the loop
                    log.exception("telling request %s it was cut failed", rid)

    def decided(self, decision: Decision) -> None:
        self.r._log.append(decision)
        self.r.bus.publish(decision)

    def retire(self, models: tuple[str, ...], reason: str) -> None:
        self.r._start_retire_task(models, reason)


class _Lease(AbstractAsyncContextManager[Grant]):
    """`Router.lease`: a plain context manager, cheaper than a generator-based one.

    Entering opens a ticket and waits for the scheduler; a grant holds the
    model (TTL) until the block is left. Leaving, or failing on the way in
    (cancelled, an error), releases the hold and reports the end exactly once.
    """

    __slots__ = ("_held", "_model", "_on_cut", "_progress", "_router", "_ticket", "_token")

    def __init__(
        self,
        router: Router,
        model: str,
        progress: trio.MemorySendChannel[Any] | None,
        on_cut: CutCallback | None,
    ) -> None:
        self._router = router
        self._model = model
        self._progress = progress
        self._on_cut = on_cut
        self._ticket: _Ticket | None = None
        self._token: object = None
        self._held = False

    async def __aenter__(self) -> Grant:
        router, model = self._router, self._model
        if router._closed or not router._started:
            raise RequestAborted(f"{router.settings.name} is shutting down", model=model)
        # A caller already cancelled never reaches the loop; one cancelled while
        # its request is posted is settled by the in-flight accounting above.
        await trio.lowlevel.checkpoint_if_cancelled()
        ticket = self._ticket = router._open(model, self._progress, self._on_cut)
        try:
            await router._admit(ticket)
            if ticket.failure is not None:
                raise error_for(ticket.failure)
            self._token = router.pool.hold(model)
            self._held = True
            return Grant(model=model, upstream=router.pool.upstream(model), request_id=ticket.id)
        except BaseException:
            self._finish()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish()

    def _finish(self) -> None:
        ticket = self._ticket
        if ticket is None or ticket.closed:
            return
        try:
            if self._held:
                self._held = False
                self._router.pool.release(self._model, self._token)
        finally:
            self._router._leave(ticket)


# ----------------------------------------------------------------- router


class Router:
    """Owner of routing state. Start with `await nursery.start(router.run)`."""

    def __init__(
        self,
        pool: ProcessControl | Any,
        swapper: Swapper,
        bus: EventBus,
        settings: RouterSettings,
    ) -> None:
        # A ProcessPool (or anything shaped like it) is wrapped; a ProcessControl is used as is.
        self.pool: ProcessControl = pool if hasattr(pool, "upstream") else PoolControl(pool)
        self.swapper = swapper
        self.bus = bus
        self.settings = settings
        self._effects = _LoopEffects(self)
        self._sched = FifoScheduler(
            settings.models,
            swapper,
            self._effects,
            SchedulerSettings(
                max_wait=settings.max_wait,
                keep_abandoned_loads=settings.keep_abandoned_loads,
                name=settings.name,
            ),
        )
        self._log = DecisionLog(settings.decision_log_size)
        self._send, receive = trio.open_memory_channel[object](math.inf)
        self._recv = _Inbox(receive)
        self._tickets: dict[int, _Ticket] = {}
        # What the last QueueChanged said, and whether the queue changed since.
        self._queue_entries: tuple[tuple[int, str], ...] = ()
        self._queue_dirty = False
        self._last_waiting: dict[str, int] = {}
        #: Granted tickets, until their serve-done: an unload may have to cut them.
        self._serving: dict[int, _Ticket] = {}
        #: The `unload()` calls still waiting for their models to stop.
        self._unload_waits: list[_UnloadWait] = []
        self._gone: set[int] = set()
        self._next_id = 1
        self._swap_scopes: dict[int, trio.CancelScope] = {}
        self._stop_on_abort: set[int] = set()
        self._nursery: trio.Nursery | None = None
        self._started = False
        self._closed = False
        self._shutdown_asked = False
        self._ended = trio.Event()
        self._wake = trio.Event()
        self._armed: float | None = None
        self._running_names: dict[Any, str | None] = {s: s for s in RUNNING_STATES}
        self._last_states: Mapping[str, Any] | None = None
        self._last_running: dict[str, str] = {}
        self.inputs: list[AnyInput] = []

    # ------------------------------------------------------------ public API

    def lease(
        self,
        model: str,
        progress: trio.MemorySendChannel[Any] | None = None,
        on_cut: CutCallback | None = None,
    ) -> AbstractAsyncContextManager[Grant]:
        """`async with router.lease(model) as grant`: wait until `model` may serve
        this request, then yield where to send it.

        Raises a `RouterError` (404, 429, 500 load failed, 503 aborted). Leaving
        the block reports serve-done exactly once, even on cancellation. After
        the grant, `on_cut(reason)` is called (from the run loop, so it must not
        block) if an unload cuts the request short: the handler should end its
        response with an error.
        """
        return _Lease(self, model, progress, on_cut)

    async def unload(self, models: Sequence[str] | None = None, *, now: bool = False) -> int:
        """Stop these models (None: all); waiters and queued requests for them fail.

        Each model stops once its requests in flight have finished (at most its
        unloadTimeout, after which they are cut); with `now`, at once, cutting
        them. Returns once every model named has stopped. Unknown names are
        ignored. Requests for them that arrive meanwhile wait for the stop,
        then start them again. All targets stop in parallel, each with its own
        unloadTimeout before SIGKILL. Returns how many requests in flight were cut.
        """
        if self._closed or not self._started:
            return 0
        known = self._sched.models
        targets = tuple(sorted(known)) if models is None else tuple(m for m in models if m in known)
        wait = _UnloadWait(set(targets), trio.Event())
        self._post(_UnloadMsg(wait, now))
        await wait.done.wait()
        return wait.cut

    async def shutdown(self) -> None:
        """Fail every waiter, stop every process, end the run loop. Idempotent: a
        second call waits for the first one to finish."""
        if not self._started:
            return
        if not self._shutdown_asked:
            self._shutdown_asked = True
            self._post(_ShutdownMsg(trio.Event()))
        await self._ended.wait()

    async def reload(
        self,
        swapper: Swapper,
        settings: RouterSettings,
        drain: Mapping[str, float] | None = None,
        after: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Adopt a new config's swapper and policies.

        Waiters and queued requests for models the new config removed fail
        (503); requests being served finish; the queue drains under the new
        rules. `drain` maps the models whose process must be replaced or
        removed to their drain bound in seconds: they are retired through
        `ProcessControl.retire` once idle (stage the new processes first, e.g.
        `ProcessPool.stage`). Without `drain` the caller replaces processes itself
        (`ProcessPool.update`), cutting requests in flight. `after` maps a model
        to the draining models whose old port its new process takes over: it
        is not started before they are retired.
        """
        if self._closed or not self._started:
            return
        done = trio.Event()
        handover = {m: tuple(deps) for m, deps in (after or {}).items()}
        self._post(_ReloadMsg(swapper, settings, dict(drain or {}), handover, done))
        await done.wait()

    async def preload(self, models: Iterable[str]) -> None:
        """Load each model in turn through the normal request path (hooks.on_startup)."""
        for model in models:
            try:
                async with self.lease(model):
                    pass
            except RouterError as exc:
                log.warning("preloading %s failed: %s", model, exc.message)
                self.bus.publish(Preloaded(model=model, ok=False, error=exc.message))
            else:
                self.bus.publish(Preloaded(model=model, ok=True))

    async def settled(self) -> None:
        """Return once every message posted before this call has been processed."""
        if self._closed or not self._started:
            return
        done = trio.Event()
        self._post(_SyncMsg(done))
        await done.wait()

    def explain(self, model: str) -> Explanation:
        return explain(self._sched, model, now=trio.current_time(), running=self._states())

    def decisions(self, limit: int | None = None) -> list[Decision]:
        return self._log.recent(limit)

    def evicted_for(self, request_id: int) -> tuple[str, ...]:
        """The models the swap that served `request_id` stopped (a report, after the fact)."""
        return self._log.evicted_for(request_id)

    def snapshot(self) -> RouterSnapshot:
        now = trio.current_time()
        s = self._sched
        queued: dict[str, int] = {}
        for r in s.queue:
            queued[r.model] = queued.get(r.model, 0) + 1
        return RouterSnapshot(
            queue=tuple(
                QueuedEntry(r.id, r.model, i + 1, now - r.arrival) for i, r in enumerate(s.queue)
            ),
            swaps=tuple(
                SwapEntry(
                    swap_id=a.plan.swap_id,
                    target=t,
                    evict=a.plan.evict,
                    set=a.plan.set,
                    cost=a.plan.cost,
                    waiters=len(a.waiters),
                    aborting=a.aborting,
                    seconds=now - a.started,
                )
                for t, a in s.active.items()
            ),
            in_flight=dict(s.in_flight),
            reserved=dict(s.reserved),
            queued=queued,
            closed=self._closed,
            waiting=self._waiting(),
        )

    def _waiting(self) -> dict[str, int]:
        return {t: len(a.waiters) for t, a in self._sched.active.items() if a.waiters}

    # ------------------------------------------------------------- the loop

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._started = True
                nursery.start_soon(self._drain_timer)
                task_status.started()
                await self._loop()
                nursery.cancel_scope.cancel()
        finally:
            self._close()

    async def _loop(self) -> None:
        async for msg in self._recv:
            match msg:
                case _RequestMsg(ticket):
                    self._handle(
                        RequestIn(request_id=ticket.id, model=ticket.model, **self._facts())
                    )
                case _CancelMsg(rid):
                    self._handle(Cancel(request_id=rid, **self._facts()))
                    self._gone.discard(rid)
                    self._request_event(rid, "", "cancelled")
                case _ServeDoneMsg(rid, model):
                    self._handle(ServeDone(request_id=rid, model=model, **self._facts()))
                    ticket = self._serving.pop(rid, None)
                    cut = ticket is not None and ticket.cut is not None
                    self._request_event(rid, model, "aborted" if cut else "done")
                case _SwapResultMsg(swap_id, model, error):
                    self._swap_scopes.pop(swap_id, None)
                    self._handle(
                        SwapDone(swap_id=swap_id, model=model, error=error, **self._facts())
                    )
                case _UnloadMsg(wait, now):
                    if wait.models:
                        self._unload_waits.append(wait)
                        models = tuple(sorted(wait.models))
                        self._handle(Unload(models=models, now=now, **self._facts()))
                    else:
                        wait.done.set()
                case _StoppedMsg(models):
                    self._handle(UnloadFinished(models=models, **self._facts()))
                    self._unloaded(models)
                case _ReloadMsg(swapper, settings, drain, after, done):
                    self._reload(swapper, settings, drain, after)
                    done.set()
                case _RetiredMsg(models):
                    self._handle(Retired(models=models, **self._facts()))
                case _TickMsg():
                    self._handle(Tick(**self._facts()))
                case _SyncMsg(done):
                    done.set()
                case _ShutdownMsg(done):
                    try:
                        await self._shutdown()
                    finally:
                        done.set()
                    return

    def _request_event(self, rid: int, model: str, phase: Any) -> None:
        self.bus.publish(
            RequestEvent(request_id=rid, model=model, phase=phase, time=self._effects.wall)
        )

    def _facts(self) -> dict[str, Any]:
        """The facts every input carries: clock, wall clock, running states, gone."""
        gone = frozenset(self._gone) if self._gone else _NOBODY_GONE
        return {
            "time": trio.current_time(),
            "wall": time.time(),
            "running": self._states(),
            "gone": gone,
        }

    def _states(self) -> dict[str, str]:
        """The running states, by model. The same dict as last time while the pool
        reports the same states (no input changes it), so it is worked out only
        when a process changed state."""
        try:
            states = self.pool.states()
        except Exception:  # a report only; never let it wedge the loop
            log.exception("reading process states failed")
            return {}
        if states == self._last_states:
            return self._last_running
        names = self._running_names
        out = {}
        for model, state in states.items():
            try:
                name = names[state]
            except (KeyError, TypeError):
                name = self._running_name(state)
            if name is not None:
                out[model] = name
        # A copy: a ProcessControl may hand out a dict it keeps changing.
        self._last_states, self._last_running = dict(states), out
        return out

    def _running_name(self, state: Any) -> str | None:
        """The state's name when it counts as running, else None; remembered per
        state value, since `state_name` costs more than the rest of `_states`."""
        name = state_name(state)
        result = name if name in RUNNING_STATES else None
        try:
            if len(self._running_names) < _STATE_NAMES_BOUND:
                self._running_names[state] = result
        except TypeError:
            pass  # an unhashable state is only never remembered
        return result

    def _handle(self, inp: AnyInput) -> None:
        if self.settings.record_inputs:
            self.inputs.append(inp)
        self._effects.wall = inp.wall
        self._sched.handle(inp)
        if self._sched.next_deadline() != self._armed:
            self._wake.set()
        self._publish_queue()

    def _publish_queue(self) -> None:
        """One `QueueChanged` per input that changed the queue or who waits for a load."""
        waiting = self._waiting() if self._sched.active or self._last_waiting else {}
        if not self._queue_dirty and waiting == self._last_waiting:
            return
        self._queue_dirty = False
        self._last_waiting = waiting
        self.bus.publish(
            QueueChanged(time=self._effects.wall, entries=self._queue_entries, waiting=waiting)
        )

    # ------------------------------------------------- requests in callers' tasks

    def _open(
        self,
        model: str,
        progress: trio.MemorySendChannel[Any] | None,
        on_cut: CutCallback | None,
    ) -> _Ticket:
        ticket = _Ticket(self._next_id, model, progress, on_cut)
        self._next_id += 1
        self._tickets[ticket.id] = ticket
        return ticket

    async def _admit(self, ticket: _Ticket) -> None:
        """Hand the request to the run loop and wait until it is granted or failed."""
        self._post(_RequestMsg(ticket))
        await ticket.done.wait()

    def _leave(self, ticket: _Ticket) -> None:
        """The lease is over: serve-done when it was granted, else a cancel."""
        ticket.closed = True
        if ticket.granted:
            self._post(_ServeDoneMsg(ticket.id, ticket.model))
        elif ticket.failure is None:
            self._tickets.pop(ticket.id, None)
            self._gone.add(ticket.id)
            self._post(_CancelMsg(ticket.id))

    async def _drain_timer(self) -> None:
        """Feed a `Tick` when the clock reaches the scheduler's next drain deadline.

        Woken whenever that deadline changes; after a tick it waits for the next
        change, so a deadline the scheduler cannot act on yet never spins.
        """
        while True:
            wake = self._wake = trio.Event()
            deadline = self._armed = self._sched.next_deadline()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await wake.wait()
                continue
            self._post(_TickMsg())
            await wake.wait()

    def _reload(
        self,
        swapper: Swapper,
        settings: RouterSettings,
        drain: Mapping[str, float],
        after: Mapping[str, tuple[str, ...]],
    ) -> None:
        self.swapper = swapper
        self.settings = settings
        self._sched.swapper = swapper
        policies = {
            m: Policy(limit=p.limit, priority=p.priority, unload_timeout=p.unload_timeout)
            for m, p in settings.models.items()
        }
        self._handle(
            Reload(
                models=policies,
                max_wait=settings.max_wait,
                keep_abandoned_loads=settings.keep_abandoned_loads,
                drain=dict(drain),
                after=dict(after),
                **self._facts(),
            )
        )

    def _unloaded(self, models: tuple[str, ...]) -> None:
        """These models have stopped: release the `unload()` calls that waited for them."""
        still = []
        for wait in self._unload_waits:
            wait.models.difference_update(models)
            if wait.models:
                still.append(wait)
            else:
                wait.done.set()
        self._unload_waits = still

    async def _shutdown(self) -> None:
        self._handle(Shutdown(**self._facts()))
        self._closed = True
        try:
            await self.pool.stop(tuple(self._sched.models), grace=None, reason="shutdown")
        except Exception:
            log.exception("stopping the models at shutdown failed")

    def _close(self) -> None:
        """The loop is over: every caller still waiting is released, every open
        ticket gets a shutdown error."""
        self._closed = True
        self._send.close()
        for wait in self._unload_waits:
            wait.done.set()
        self._unload_waits.clear()
        while True:
            try:
                msg = self._recv.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            match msg:
                case _UnloadMsg(wait, _):
                    wait.done.set()
                case _ReloadMsg() | _SyncMsg() | _ShutdownMsg():
                    msg.done.set()
        for ticket in list(self._tickets.values()):
            ticket.failure = Failure(
                kind="shutdown",
                model=ticket.model,
                message=f"{self.settings.name} is shutting down",
            )
            ticket.resolve()
        self._tickets.clear()
        self._ended.set()

    def _post(self, msg: object) -> None:
        try:
            self._send.send_nowait(msg)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the loop has ended; nothing is counted any more

    # --------------------------------------------------------- unload stops

    def _start_stop_task(self, models: tuple[str, ...], reason: str) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._stop_task, models, reason, name="unload")

    async def _stop_task(self, models: tuple[str, ...], reason: str) -> None:
        """Stop unloaded models (each with its own unloadTimeout); report `UnloadFinished`.

        Failures are logged: the scheduler hears of the stop either way, so the
        model's queue never waits forever.
        """
        try:
            await self.pool.stop(models, grace=None, reason=reason)
        except Exception:
            log.exception("unloading %s failed", ", ".join(models))
        self._post(_StoppedMsg(models))

    # --------------------------------------------------------- retirements

    def _start_retire_task(self, models: tuple[str, ...], reason: str) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._retire_task, models, reason, name="retire")

    async def _retire_task(self, models: tuple[str, ...], reason: str) -> None:
        """Stop the drained models' old processes and swap in the new supervisors.

        A `ProcessControl` without `retire` (nothing staged) only stops them.
        Failures are logged: the scheduler hears `Retired` either way, so the
        model's queue never waits forever.
        """
        try:
            retire = getattr(self.pool, "retire", None)
            if retire is not None:
                await retire(models, reason=f"config reloaded ({reason})")
            else:
                await self.pool.stop(models, grace=None, reason=f"config reloaded ({reason})")
        except Exception:
            log.exception("retiring %s failed", ", ".join(models))
        self._post(_RetiredMsg(models))

    # --------------------------------------------------------- swap tasks

    def _start_swap_task(self, plan: SwapPlan) -> None:
        assert self._nursery is not None
        scope = trio.CancelScope()
        self._swap_scopes[plan.swap_id] = scope
        self.bus.publish(
            SwapStarted(
                swap_id=plan.swap_id,
                target=plan.target,
                evict=plan.evict,
                set=plan.set,
                cost=plan.cost,
                time=time.time(),
            )
        )
        self._nursery.start_soon(self._swap_task, plan, scope, name=f"swap-{plan.target}")

    async def _swap_task(self, plan: SwapPlan, scope: trio.CancelScope) -> None:
        """Stop the evicted models in parallel, then make the target ready (spec §3.6).

        An abort (abandoned load, unload, shutdown) cancels this and stops the
        target, so a start it triggered does not keep going (llama-swap #727,
        and the unload race of spec §4.9).
        """
        started = trio.current_time()
        error: SwapError | None = None
        with scope:
            try:
                if plan.evict:
                    await self.pool.stop(
                        plan.evict, grace=None, reason=f"evicted for {plan.target}"
                    )
                await self.pool.ensure_ready(plan.target)
            except Exception as exc:
                error = swap_error(exc)
                if not self._closed:
                    log.warning(
                        "%s: starting %s failed: %s", self.settings.name, plan.target, error.reason
                    )
        if scope.cancel_called:
            error = SwapError(reason="load aborted", aborted=True)
            if plan.swap_id in self._stop_on_abort:
                self._stop_on_abort.discard(plan.swap_id)
                await self.pool.stop([plan.target], grace=None, reason="load aborted")
        self.bus.publish(
            SwapFinished(
                swap_id=plan.swap_id,
                target=plan.target,
                ok=error is None,
                seconds=trio.current_time() - started,
                error=error,
                time=time.time(),
            )
        )
        self._post(_SwapResultMsg(plan.swap_id, plan.target, error))
