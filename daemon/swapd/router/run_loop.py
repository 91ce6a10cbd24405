"""The router's run loop: the one owner of all routing state, `Router._handle`.

HTTP handlers, the control socket and swap tasks post typed scheduler
inputs (`events.AnyInput`) to its inbox and wait on their own one-shot
ticket (a lease's inputs may be handled without the trip, see below); the
loop hands each input, with the `Facts` of that moment (the
clock, the running process states, the handlers already gone), to the pure
`FifoScheduler`. The `Router` is the scheduler's `Effects`: it wakes tickets,
starts and aborts swap tasks, starts stop and retire tasks, and publishes
records. It never waits on a process itself.

The inbox is unbounded on purpose: every message stands for a live handler
(one request, one cancel or one serve-done each) or a task (one result
each), so its length is bounded by those, and posting never blocks, which
lets a cancelled handler still report from its `finally`.

Reload (beyond llama-swap, which stops every model): `reload(swapper,
settings, drain=...)` hands the scheduler the new config; the models in
`drain` get no new grants and, once the scheduler sees none of their
requests in flight (or their drain bound passed), it asks for their
retirement, which a task carries out through `ProcessControl.retire` before
reporting `Retired`. A timer task posts `Tick` at the scheduler's next
deadline, so the bounds hold even when nothing else happens.

Unload (beyond llama-swap, which cuts requests in flight): the scheduler
asks for each unloaded model's stop once its requests in flight are done (or
its `unloadTimeout` has passed, or at once with `now`); a task carries the
stop out and posts `UnloadFinished`, and `unload()` returns once every model
it named has stopped. Requests cut short are told through the `on_cut`
callback their handler passed to `lease`, and are reported "aborted"
instead of "done".

In-flight accounting: a grant is counted only when the scheduler saw the
handler alive; leaving a lease posts serve-done whenever the ticket was
granted, even if the handler was cancelled before it resumed, and a cancel
otherwise.

A lease's own inputs (its request, its serve-done or cancel) are handled at
once in the caller's task when the loop has nothing waiting in its inbox
(`Router._submit`): `_handle` never awaits, and nothing else runs while it
does, so the scheduler sees the same inputs in the same order as through the
inbox. The round trip through the loop task cost a request two scheduling
rounds, and when many requests arrive together it held each one's upstream
request back until every one of them had reached the router: with the grant
at once, the first request is on its way upstream while the others are
still being read.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import msgspec
import trio

from swapd.events import EventBus, Subscription
from swapd.process.events import KvActivity
from swapd.process.states import RUNNING_STATES
from swapd.router.decision_log import DEFAULT_DECISION_LOG_SIZE, DecisionLog
from swapd.router.errors import RequestAborted, RouterError, error_for
from swapd.router.events import (
    AnyInput,
    Cancel,
    Decision,
    Facts,
    Failure,
    Input,
    Policy,
    Preloaded,
    Progress,
    QueueChanged,
    Recorded,
    Reload,
    RequestEvent,
    RequestIn,
    RequestPhase,
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
from swapd.router.footprints import Learned
from swapd.router.process_control import ProcessControl, swap_error
from swapd.router.scheduler import DEFAULT_MAX_WAIT, FifoScheduler, ModelPolicy, SchedulerSettings
from swapd.router.snapshot import QueuedEntry, RouterSnapshot, SwapEntry
from swapd.router.swapper import Swapper

log = logging.getLogger(__name__)

__all__ = ["CutCallback", "Grant", "Router", "RouterSettings", "RouterSnapshot"]


@dataclass(frozen=True)
class RouterSettings:
    """`record_inputs` keeps every handled input with its facts, for replay.

    A model that a swap evicts gets its own `unloadTimeout` to stop before it is
    killed (llama-swap gives it the global healthCheckTimeout; docs/compat.md).
    """

    models: Mapping[str, ModelPolicy]
    max_wait: float = DEFAULT_MAX_WAIT
    keep_abandoned_loads: bool = False
    name: str = "router"
    decision_log_size: int = DEFAULT_DECISION_LOG_SIZE
    record_inputs: bool = False

    def scheduler_settings(self) -> SchedulerSettings:
        """What the scheduler itself is given of these settings."""
        return SchedulerSettings(
            max_wait=self.max_wait,
            keep_abandoned_loads=self.keep_abandoned_loads,
            name=self.name,
        )


class Grant(msgspec.Struct, frozen=True):
    """What a lease yields: where to relay the request, and the load it waited for."""

    model: str
    upstream: str
    request_id: int
    swap_id: int | None = None
    """The swap whose load this request waited for (None: it waited for none)."""
    load_wait_s: float | None = None
    """Seconds from joining that swap to the grant."""


CutCallback = Callable[[str], None]
ProgressChannel = trio.MemorySendChannel[Progress]


class _Ticket:
    """One lease's one-shot slot: filled once by the loop with a grant or a failure.

    `on_cut` is the handler's way to be told, after its grant, that its request
    is cut short (its model is being unloaded); `cut` keeps the reason.
    """

    def __init__(
        self, id: int, model: str, progress: ProgressChannel | None, on_cut: CutCallback | None
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
        self.swap_id: int | None = None
        self.waiting_since = 0.0  # time.perf_counter() when it joined swap `swap_id`
        self.load_wait: float | None = None

    def grant(self, model: str, upstream: str) -> Grant:
        return Grant(model, upstream, self.id, self.swap_id, self.load_wait)

    def tell(self, progress: Progress) -> None:
        if self.progress is None or self.closed:
            return
        try:
            self.progress.send_nowait(progress)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # a full or closed progress channel only loses a cosmetic update


# Commands the loop takes besides scheduler inputs: each carries what the caller
# waits on, or code (a swapper), which inputs never hold.


@dataclass
class _UnloadWait:
    """One `unload()` call: the models it still waits for, and the requests it cut."""

    models: set[str]
    done: trio.Event
    cut: int = 0


@dataclass(frozen=True)
class _UnloadCmd:
    wait: _UnloadWait
    now: bool


@dataclass(frozen=True)
class _ReloadCmd:
    swapper: Swapper
    settings: RouterSettings
    drain: Mapping[str, float]
    after: Mapping[str, tuple[str, ...]]
    done: trio.Event


@dataclass(frozen=True)
class _SyncCmd:
    done: trio.Event


@dataclass(frozen=True)
class _ShutdownCmd:
    pass


_Message = AnyInput | _UnloadCmd | _ReloadCmd | _SyncCmd | _ShutdownCmd


class _Inbox:
    """The loop's receive side: messages already waiting are taken without a checkpoint.

    A plain `async for` over a memory channel yields to the scheduler for every
    message, so a burst of N requests needs N scheduler rounds to be granted,
    each round also running every other ready task (streams being relayed,
    requests being parsed). Taking what is queued in one go (at most `BATCH`,
    then a real checkpoint) handles them in the same order, with the same
    effects, in one round.
    """

    BATCH = 64

    def __init__(self, channel: trio.MemoryReceiveChannel[_Message]) -> None:
        self._channel = channel
        self._taken = 0

    def receive_nowait(self) -> _Message:
        return self._channel.receive_nowait()

    def __aiter__(self) -> _Inbox:
        return self

    async def __anext__(self) -> _Message:
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


class Router:
    """Owner of routing state. Start with `await nursery.start(router.run)`.

    Its public methods above "effects" are its API; the methods under
    "effects" implement the scheduler's `Effects` and are called by the
    scheduler only, inside the loop.
    """

    def __init__(
        self,
        pool: ProcessControl,
        swapper: Swapper,
        bus: EventBus,
        settings: RouterSettings,
        request_ids: Callable[[], int] | None = None,
    ) -> None:
        self.pool = pool
        self.swapper = swapper
        self.bus = bus
        #: Where a lease without an id of its own gets one. The daemon shares the
        #: history's numbering, so a request has one id in its events, the
        #: decisions and its record.
        self._request_ids = request_ids or itertools.count(1).__next__
        self.settings = settings
        #: The measured footprints and load times its swappers plan with (budgets).
        self.learned: Learned | None = None
        self._sched = FifoScheduler(settings.models, swapper, self, settings.scheduler_settings())
        self._log = DecisionLog(settings.decision_log_size)
        self._send, receive = trio.open_memory_channel[_Message](math.inf)
        self._recv = _Inbox(receive)
        #: Messages posted and not yet taken by the loop (see `_submit`).
        self._pending = 0
        self._handling = False  # inside `_handle` (whose effects may post)
        #: Tickets waiting for the scheduler. A lease registers its own before it
        #: posts its request (the only entry callers write); the loop takes it out.
        self._tickets: dict[int, _Ticket] = {}
        #: Granted tickets, until their serve-done: an unload may have to cut them.
        self._serving: dict[int, _Ticket] = {}
        self._unload_waits: list[_UnloadWait] = []
        self._gone: set[int] = set()
        self._swap_scopes: dict[int, trio.CancelScope] = {}
        self._stop_on_abort: set[int] = set()
        self._nursery: trio.Nursery | None = None
        self._started = False
        self._closed = False
        self._shutdown_asked = False
        self._ended = trio.Event()
        self._wake = trio.Event()
        self._armed: float | None = None
        self._wall = 0.0  # the wall clock of the input being handled
        # What the last QueueChanged said, and whether the queue changed since.
        self._queue_entries: tuple[tuple[int, str], ...] = ()
        self._queue_dirty = False
        self._last_waiting: dict[str, int] = {}
        self.inputs: list[Recorded] = []

    # ------------------------------------------------------------ public API

    def lease(
        self,
        model: str,
        progress: ProgressChannel | None = None,
        on_cut: CutCallback | None = None,
        request_id: int | None = None,
    ) -> AbstractAsyncContextManager[Grant]:
        """`async with router.lease(model) as grant`: wait until `model` may serve
        this request, then yield where to send it.

        Raises a `RouterError` (404, 429, 500 load failed, 503 aborted). Leaving
        the block reports serve-done exactly once, even on cancellation. While
        granted, the model is held (its TTL does not run). After the grant,
        `on_cut(reason)` is called (from the run loop, so it must not block) if
        an unload cuts the request short: the handler should end its response
        with an error. `request_id`: the
        request's id, when the caller numbered it from the router's source
        (`request_ids`); else the router draws one.
        """
        rid = self._request_ids() if request_id is None else request_id
        return self._lease(model, progress, on_cut, rid)

    @asynccontextmanager
    async def _lease(
        self,
        model: str,
        progress: ProgressChannel | None,
        on_cut: CutCallback | None,
        request_id: int,
    ) -> AsyncIterator[Grant]:
        if self._closed or not self._started:
            raise RequestAborted(f"{self.settings.name} is shutting down", model=model)
        # A caller already cancelled never reaches the loop.
        await trio.lowlevel.checkpoint_if_cancelled()
        ticket = _Ticket(request_id, model, progress, on_cut)
        self._tickets[ticket.id] = ticket
        held = None
        try:
            self._submit(RequestIn(request_id=ticket.id, model=model))
            if ticket.done.is_set():  # answered at once: on without a scheduling round
                await trio.lowlevel.checkpoint_if_cancelled()
            else:
                await ticket.done.wait()
            if ticket.failure is not None:
                error = error_for(ticket.failure)
                if ticket.swap_id is not None:
                    error.swap_id = ticket.swap_id
                    error.load_wait_s = time.perf_counter() - ticket.waiting_since
                raise error
            held = self.pool.hold(model)
            yield ticket.grant(model, self.pool.upstream(model))
        finally:
            if held is not None:
                held.release()
            self._leave(ticket)

    async def unload(self, models: Sequence[str] | None = None, *, now: bool = False) -> int:
        """Stop these models (None: all); waiters and queued requests for them fail.

        Each model stops once its requests in flight have finished (at most its
        unloadTimeout, after which they are cut); with `now`, at once, cutting
        them. Returns once every model named has stopped, with how many
        requests in flight were cut. Unknown names are ignored. Requests for
        them that arrive meanwhile wait for the stop, then start them again.
        All targets stop in parallel, each with its own unloadTimeout before
        SIGKILL.
        """
        if self._closed or not self._started:
            return 0
        known = self._sched.models
        targets = sorted(known) if models is None else [m for m in models if m in known]
        wait = _UnloadWait(set(targets), trio.Event())
        self._post(_UnloadCmd(wait, now))
        await wait.done.wait()
        return wait.cut

    async def shutdown(self) -> None:
        """Fail every waiter, stop every process, end the run loop. Idempotent: a
        second call waits for the first one to finish."""
        if not self._started:
            return
        if not self._shutdown_asked:
            self._shutdown_asked = True
            self._post(_ShutdownCmd())
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
        `ProcessPool.stage`). `after` maps a model to the draining models whose
        old port its new process takes over: it is not started before they are
        retired.
        """
        if self._closed or not self._started:
            return
        done = trio.Event()
        handover = {m: tuple(deps) for m, deps in (after or {}).items()}
        self._post(_ReloadCmd(swapper, settings, dict(drain or {}), handover, done))
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
        self._post(_SyncCmd(done))
        await done.wait()

    def explain(self, model: str) -> Explanation:
        return explain(self._sched, model, self._facts())

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
                    sleep=a.plan.sleep,
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

    # ------------------------------------------------------------- the loop

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._started = True
                nursery.start_soon(self._deadline_timer)
                task_status.started()
                await self._loop()
                nursery.cancel_scope.cancel()
        finally:
            self._close()

    async def _loop(self) -> None:
        async for msg in self._recv:
            self._pending -= 1
            match msg:
                case Input():
                    self._handle(msg)
                case _UnloadCmd(wait, now):
                    if wait.models:
                        self._unload_waits.append(wait)
                        self._handle(Unload(models=tuple(sorted(wait.models)), now=now))
                    else:
                        wait.done.set()
                case _ReloadCmd():
                    self._reload(msg)
                    msg.done.set()
                case _SyncCmd(done):
                    done.set()
                case _ShutdownCmd():
                    self._handle(Shutdown())
                    self._closed = True
                    try:
                        await self.pool.stop(
                            tuple(self._sched.models), grace=None, reason="shutdown"
                        )
                    except Exception:
                        log.exception("stopping the models at shutdown failed")
                    return

    def _facts(self) -> Facts:
        """The world as the next input sees it: clocks, running models, handlers gone."""
        try:
            states = self.pool.states()
        except Exception:  # a report only; never let it wedge the loop
            log.exception("reading process states failed")
            states = {}
        return Facts(
            time=trio.current_time(),
            wall=time.time(),
            running={m: s for m, s in states.items() if s in RUNNING_STATES},
            gone=frozenset(self._gone),
        )

    def _handle(self, inp: AnyInput) -> None:
        self._handling = True
        try:
            self._handle_input(inp)
        finally:
            self._handling = False

    def _handle_input(self, inp: AnyInput) -> None:
        facts = self._facts()
        if self.settings.record_inputs:
            self.inputs.append(Recorded(facts, inp))
        self._wall = facts.wall
        self._sched.handle(inp, facts)
        if self._sched.next_deadline() != self._armed:
            self._wake.set()
        self._publish_queue()
        match inp:  # what the loop itself reports about some inputs
            case Cancel(request_id=rid):
                self._gone.discard(rid)
                self._request_event(rid, "", "cancelled")
            case ServeDone(request_id=rid, model=model):
                ticket = self._serving.pop(rid, None)
                cut = ticket is not None and ticket.cut is not None
                self._request_event(rid, model, "aborted" if cut else "done")
            case UnloadFinished(models=models):
                self._unloaded(models)

    def _request_event(self, rid: int, model: str, phase: RequestPhase, detail: str = "") -> None:
        self.bus.publish(
            RequestEvent(request_id=rid, model=model, phase=phase, time=self._wall, detail=detail)
        )

    def _waiting(self) -> dict[str, int]:
        return {t: len(a.waiters) for t, a in self._sched.active.items() if a.waiters}

    def _publish_queue(self) -> None:
        """One `QueueChanged` per input that changed the queue or who waits for a load."""
        waiting = self._waiting() if self._sched.active or self._last_waiting else {}
        if not self._queue_dirty and waiting == self._last_waiting:
            return
        self._queue_dirty = False
        self._last_waiting = waiting
        self.bus.publish(
            QueueChanged(time=self._wall, entries=self._queue_entries, waiting=waiting)
        )

    def _reload(self, cmd: _ReloadCmd) -> None:
        self.swapper = cmd.swapper
        self.settings = cmd.settings
        self._sched.swapper = cmd.swapper
        policies = {
            m: Policy(limit=p.limit, priority=p.priority, unload_timeout=p.unload_timeout)
            for m, p in cmd.settings.models.items()
        }
        self._handle(
            Reload(
                models=policies,
                max_wait=cmd.settings.max_wait,
                keep_abandoned_loads=cmd.settings.keep_abandoned_loads,
                drain=dict(cmd.drain),
                after=dict(cmd.after),
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

    def _leave(self, ticket: _Ticket) -> None:
        """The lease is over: serve-done when it was granted, else a cancel."""
        ticket.closed = True
        if ticket.granted:
            self._submit(ServeDone(request_id=ticket.id, model=ticket.model))
        elif ticket.failure is None:
            self._tickets.pop(ticket.id, None)
            self._gone.add(ticket.id)
            self._submit(Cancel(request_id=ticket.id))

    async def _deadline_timer(self) -> None:
        """Post a `Tick` when the clock reaches the scheduler's next deadline.

        Woken whenever that deadline changes; after a tick it waits for the next
        change, so a deadline the scheduler cannot act on yet never spins.
        """
        while True:
            wake = self._wake = trio.Event()
            deadline = self._armed = self._sched.next_deadline()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await wake.wait()
                continue
            self._post(Tick())
            await wake.wait()

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
                case _UnloadCmd(wait, _):
                    wait.done.set()
                case _ReloadCmd() | _SyncCmd():
                    msg.done.set()
        for ticket in list(self._tickets.values()):
            ticket.failure = Failure(
                kind="shutdown",
                model=ticket.model,
                message=f"{self.settings.name} is shutting down",
            )
            ticket.done.set()
        self._tickets.clear()
        self._ended.set()

    def _post(self, msg: _Message) -> None:
        try:
            self._send.send_nowait(msg)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the loop has ended; nothing is counted any more
        else:
            self._pending += 1

    def _submit(self, inp: RequestIn | ServeDone | Cancel) -> None:
        """A lease's input: handled now when the loop has nothing waiting, else posted.

        With an empty inbox the loop would take this input next and handle it
        the same way (see the module docstring); the caller is spared the
        round trip through the loop task.
        """
        if self._pending or self._handling or self._closed or not self._started:
            self._post(inp)
        else:
            self._handle(inp)

    # ---------------------------------------------------------------- effects

    def admit(self, request_id: int, model: str) -> None:
        ticket = self._tickets.get(request_id)
        if ticket is not None:
            ticket.tell(Progress(kind="admitted", model=model))
        self._request_event(request_id, model, "admitted")

    def grant(self, request_id: int, model: str) -> None:
        ticket = self._tickets.pop(request_id, None)
        if ticket is None or ticket.closed:
            # Cannot happen (the scheduler checks `gone`); if it ever does, balance
            # the count at once rather than strand an in-flight slot forever.
            log.error("grant for request %s whose handler has gone", request_id)
            self._post(ServeDone(request_id=request_id, model=model))
            return
        ticket.granted = True
        if ticket.swap_id is not None:
            ticket.load_wait = time.perf_counter() - ticket.waiting_since
        self._serving[request_id] = ticket
        ticket.tell(Progress(kind="granted", model=model))
        ticket.done.set()
        self._request_event(request_id, model, "granted")

    def fail(self, request_id: int, failure: Failure) -> None:
        ticket = self._tickets.pop(request_id, None)
        if ticket is not None:
            ticket.failure = failure
            ticket.done.set()
        self._request_event(request_id, failure.model, "failed", failure.message)

    def waiting(self, request_id: int, swap_id: int, model: str) -> None:
        ticket = self._tickets.get(request_id)
        if ticket is not None:
            if ticket.swap_id is None:
                ticket.waiting_since = time.perf_counter()
            ticket.swap_id = swap_id
            ticket.tell(Progress(kind="loading", model=model))
        self._request_event(request_id, model, "waiting", f"swap {swap_id}")

    def queued(self, positions: Mapping[int, int]) -> None:
        entries = []
        for rid, pos in positions.items():
            ticket = self._tickets.get(rid)
            if ticket is not None:
                ticket.tell(Progress(kind="queued", model=ticket.model, position=pos))
                entries.append((rid, ticket.model))
        self._queue_entries = tuple(entries)
        self._queue_dirty = True

    def start_swap(self, plan: SwapPlan) -> None:
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
                why=plan.why,
                sleep=plan.sleep,
                wake=plan.wake,
            )
        )
        self._nursery.start_soon(self._swap_task, plan, scope, name=f"swap-{plan.target}")

    def abort_swap(self, swap_id: int, model: str, stop_target: bool) -> None:
        scope = self._swap_scopes.get(swap_id)
        if scope is not None:
            if stop_target:
                self._stop_on_abort.add(swap_id)
            scope.cancel()

    def stop(self, models: tuple[str, ...], reason: str) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._stop_task, models, reason, name="unload")

    def cut(self, request_ids: tuple[int, ...], model: str, reason: str) -> None:
        for rid in request_ids:
            ticket = self._serving.get(rid)
            if ticket is None or ticket.cut is not None:
                continue
            ticket.cut = reason
            for wait in self._unload_waits:
                if model in wait.models:
                    wait.cut += 1
            if ticket.on_cut is not None and not ticket.closed:
                try:
                    ticket.on_cut(reason)
                except Exception:  # a handler's callback must never break the loop
                    log.exception("telling request %s it was cut failed", rid)

    def decided(self, decision: Decision) -> None:
        self._log.append(decision)
        self.bus.publish(decision)

    def retire(self, models: tuple[str, ...], reason: str) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._retire_task, models, reason, name="retire")

    # ------------------------------------------------------------------ tasks

    async def _stop_task(self, models: tuple[str, ...], reason: str) -> None:
        """Stop unloaded models (each with its own unloadTimeout); post `UnloadFinished`.

        Failures are logged: the scheduler hears of the stop either way, so the
        model's queue never waits forever.
        """
        try:
            await self.pool.stop(models, grace=None, reason=reason)
        except Exception:
            log.exception("unloading %s failed", ", ".join(models))
        self._post(UnloadFinished(models=models))

    async def _retire_task(self, models: tuple[str, ...], reason: str) -> None:
        """Stop the drained models' old processes and swap in the new supervisors;
        post `Retired` whatever happened, so the model's queue never waits forever."""
        try:
            await self.pool.retire(models, reason=f"config reloaded ({reason})")
        except Exception:
            log.exception("retiring %s failed", ", ".join(models))
        self._post(Retired(models=models))

    async def _swap_task(self, plan: SwapPlan, scope: trio.CancelScope) -> None:
        """Stop the evicted models and put the others named to sleep, all in parallel,
        then make the target ready. A model that fails to go to sleep is stopped
        instead (logged), so the room is made either way.

        An abort (abandoned load, unload, shutdown) cancels this and stops the
        target, so a start it triggered does not keep going (llama-swap #727).
        """
        started = trio.current_time()
        error: SwapError | None = None
        touched = frozenset((*plan.evict, *plan.sleep, plan.target))
        kv_sub = self.bus.subscribe(
            topics=("kv",),
            predicate=lambda e: isinstance(e, KvActivity) and e.model in touched,
            maxlen=KV_RECORDS,
        )
        with scope:
            try:
                if plan.evict or plan.sleep:
                    async with trio.open_nursery() as nursery:
                        if plan.evict:
                            nursery.start_soon(self._evict, plan.evict, plan.target)
                        for model in plan.sleep:
                            nursery.start_soon(self._put_to_sleep, model, plan.target)
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
        kv_sub.close()
        kv = _drain_kv(kv_sub)
        self.bus.publish(
            SwapFinished(
                swap_id=plan.swap_id,
                target=plan.target,
                ok=error is None,
                seconds=trio.current_time() - started,
                error=error,
                time=time.time(),
                kv=kv,
            )
        )
        self._swap_scopes.pop(plan.swap_id, None)
        self._post(SwapDone(swap_id=plan.swap_id, model=plan.target, error=error, kv=kv))

    async def _evict(self, models: tuple[str, ...], target: str) -> None:
        await self.pool.stop(models, grace=None, reason=f"evicted for {target}")

    async def _put_to_sleep(self, model: str, target: str) -> None:
        """Sleep `model` to make room for `target`; stop it when it cannot sleep."""
        if await self.pool.sleep(model, reason=f"making room for {target}"):
            return
        log.warning(
            "%s: %s did not go to sleep: stopping it for %s", self.settings.name, model, target
        )
        await self.pool.stop([model], grace=None, reason=f"evicted for {target} (sleep failed)")


# A swap records at most this many KV-cache saves and restores (one per model it touches).
KV_RECORDS = 64


def _drain_kv(sub: Subscription) -> tuple[KvActivity, ...]:
    """The KV-cache activity a swap's subscription collected."""
    out: list[KvActivity] = []
    while True:
        try:
            event = sub.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return tuple(out)
        if isinstance(event, KvActivity):
            out.append(event)
