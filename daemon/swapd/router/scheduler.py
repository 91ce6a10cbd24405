"""The FIFO scheduler with collation and bounded wait: a pure state machine.

It never awaits and does no I/O. Each input (`events.AnyInput`) comes with
its `Facts` (the clock, the running process states, the requests whose
handler is gone); the scheduler changes its own state and calls `Effects`
methods, which are pure outputs (grant, fail, start or abort a swap, stop
models, record a decision). The run loop (`run_loop.Router`) turns those
into I/O. Each input type has one handler method, registered with
`@_handles(InputType)`: adding an input is its Struct and its handler.

Behaviour (docs/compat.md, Scheduler and queueing), with swapd's changes:

* admission: unknown model -> not found; `reserved >= limit` -> 429; a
  reservation counts queued, waiting and serving requests;
* decision tree per request: join the active swap of its model; fast path
  when ready and the swapper wants nothing evicted; queue when colliding with
  an active swap or when the eviction would hit a model serving requests;
  otherwise start a swap (swaps with disjoint evict sets run in parallel);
  a model the swapper puts to sleep (`Eviction.sleep`, the budget router)
  counts as evicted for collisions and busy checks;
* the queue is ordered by static priority, then arrival; every drain walks
  it in order, which collates A B C A B C into A A B B C C with three loads;
* beyond llama-swap, **bounded wait**: once the oldest pending request has
  waited `max_wait` seconds, no younger request may progress (fast path,
  join, start a swap, or be granted at the end of a swap) until it is served
  or failed. Ready models stop jumping the queue, they drain and the swap
  happens. Below the bound collation is unchanged;
* beyond llama-swap, **abandoned loads**: when the last waiter of a load
  leaves, the load is aborted (llama-swap #727) unless `keep_abandoned_loads`.
  The aborting swap stays active until its task reports back, so a new
  request for the model queues instead of racing the abort's stop;
* swapd also drains after a cancel (llama-swap does not): with bounded wait a
  cancelled overdue request may be the only thing holding others back;
* beyond llama-swap, **draining reloads** (llama-swap stops every model on a
  reload; docs/compat.md, Reload): a model whose process settings changed, or
  that the new config removed, is *draining*: it gets no new grants, its
  requests in flight finish, and once none is left (or its drain bound has
  passed, so a reload never wedges) the scheduler asks for it to be retired:
  the old process stops and the new config's supervisor takes its place.
  Requests for a changed model queue meanwhile and are served by the new
  process; they never count against maxWait, since holding other models
  back would not make the drain any faster;
* beyond llama-swap, **draining unloads** (llama-swap cuts requests in flight):
  an unloaded model stops once its requests in flight finish, or once its
  `unloadTimeout` has passed, when the ones still running are cut with an
  error; `now` cuts them at once. Its waiting and queued requests fail as
  before; requests that arrive meanwhile queue and start it again once it
  has stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, TypeVar

import msgspec

from swapd.process.events import KvActivity
from swapd.process.states import ProcessState
from swapd.router.events import (
    Action,
    AnyInput,
    Cancel,
    Decision,
    Facts,
    Failure,
    FailureKind,
    Input,
    Reload,
    RequestIn,
    Retired,
    ServeDone,
    Shutdown,
    SwapDone,
    SwapError,
    SwapPlan,
    Tick,
    Unload,
    UnloadFinished,
    input_name,
)
from swapd.router.swapper import Swapper, Usage

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY_LIMIT = 10
DEFAULT_MAX_WAIT = 30.0
DEFAULT_UNLOAD_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class ModelPolicy:
    """Per-model scheduling knobs: `concurrencyLimit` (<= 0 -> 10), queue priority, and
    `unloadTimeout`, the longest an unload waits for the model's requests in flight."""

    limit: int = DEFAULT_CONCURRENCY_LIMIT
    priority: int = 0
    unload_timeout: float = DEFAULT_UNLOAD_TIMEOUT

    @property
    def effective_limit(self) -> int:
        return self.limit if self.limit > 0 else DEFAULT_CONCURRENCY_LIMIT


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """`max_wait` in seconds (0 = unbounded, like llama-swap); `name` prefixes messages."""

    max_wait: float = DEFAULT_MAX_WAIT
    keep_abandoned_loads: bool = False
    name: str = "router"


class Effects(Protocol):
    """The scheduler's only window on the world. Every method is an output."""

    def admit(self, request_id: int, model: str) -> None:
        """The request passed admission (a loading stream may start now)."""

    def grant(self, request_id: int, model: str) -> None:
        """Hand the live handler its grant; it will report `ServeDone` exactly once."""

    def fail(self, request_id: int, failure: Failure) -> None:
        """Hand the request an error; it is finished for the scheduler."""

    def waiting(self, request_id: int, swap_id: int, model: str) -> None:
        """The request now waits on swap `swap_id` (loading `model`)."""

    def queued(self, positions: Mapping[int, int]) -> None:
        """The queue changed: 1-based position of every queued request."""

    def start_swap(self, plan: SwapPlan) -> None:
        """Launch a swap task; its result comes back as a `SwapDone` input."""

    def abort_swap(self, swap_id: int, model: str, stop_target: bool) -> None:
        """Cancel a swap task (it still reports `SwapDone`); with `stop_target`, also
        stop the target so a load it triggered does not keep going."""

    def stop(self, models: tuple[str, ...], reason: str) -> None:
        """Stop these models (unload); `UnloadFinished` follows once they are stopped."""

    def cut(self, request_ids: tuple[int, ...], model: str, reason: str) -> None:
        """Cut these granted requests short (their model is being unloaded): each
        handler ends its response with an error; its `ServeDone` follows as usual."""

    def decided(self, decision: Decision) -> None:
        """Record one decision (decision log, event bus)."""

    def retire(self, models: tuple[str, ...], reason: str) -> None:
        """Retire these drained models: stop the old process and put the reloaded
        config's supervisor in its place (none for a removed model); `Retired`
        follows once that is done. Only called after a `Reload` with `drain`."""


PlanAction = Literal["not_found", "refuse", "serve", "join", "queue", "swap"]


class Plan(msgspec.Struct, frozen=True):
    """What would happen to a request for `model` now (pure; used by explain too).

    A Struct, not a frozen dataclass: one is built per request and per drain
    step, and a frozen dataclass costs several times as much to build.
    """

    action: PlanAction
    model: str
    evict: tuple[str, ...] = ()
    set: str | None = None
    cost: int = 0
    blocked_by: tuple[str, ...] = ()
    overdue: int | None = None
    swap_id: int | None = None
    reason: str = ""
    sleep: tuple[str, ...] = ()


@dataclass(slots=True)
class Pending:
    """An admitted request that is neither granted nor failed yet."""

    id: int
    model: str
    arrival: float
    priority: int
    #: It left the queue after waiting `max_wait`: it keeps holding younger requests back.
    overdue: bool = False

    @property
    def key(self) -> tuple[float, int]:
        return (self.arrival, self.id)


@dataclass(slots=True)
class ActiveSwap:
    plan: SwapPlan
    started: float
    waiters: list[Pending] = field(default_factory=list)
    aborting: bool = False


InputT = TypeVar("InputT", bound=Input)
_Handler = Callable[["FifoScheduler", InputT], None]
_HANDLERS: dict[type[Input], _Handler[Input]] = {}


def _handles(kind: type[InputT]) -> Callable[[_Handler[InputT]], _Handler[InputT]]:
    """Register the scheduler's handler of one input type."""

    def register(handler: _Handler[InputT]) -> _Handler[InputT]:
        _HANDLERS[kind] = handler  # type: ignore[assignment]
        return handler

    return register


class FifoScheduler:
    def __init__(
        self,
        models: Mapping[str, ModelPolicy],
        swapper: Swapper,
        effects: Effects,
        settings: SchedulerSettings | None = None,
    ) -> None:
        self.models: dict[str, ModelPolicy] = dict(models)
        self.swapper = swapper
        self.effects = effects
        self.settings = settings or SchedulerSettings()
        self.reserved: dict[str, int] = {}
        self.in_flight: dict[str, int] = {}
        #: When each model was last granted a request or done with one (scheduling clock).
        self.last_used: dict[str, float] = {}
        self._usage = Usage(self.in_flight, self.last_used)
        self.active: dict[str, ActiveSwap] = {}
        self.queue: list[Pending] = []
        self.pending: dict[int, Pending] = {}
        #: The pending requests marked `overdue` (a subset of `pending`).
        self._overdue: dict[int, Pending] = {}
        self.serving: dict[int, str] = {}
        self.closed = False
        #: Draining models (see the module docstring) and the clock time their drain ends.
        self.draining: dict[str, float] = {}
        #: Models whose retirement was asked for and has not been reported yet.
        self.retiring: set[str] = set()
        #: Unloaded models waiting for their requests in flight, and when the wait ends.
        self.unloading: dict[str, float] = {}
        #: Unloaded models whose stop was asked for and has not been reported yet.
        self.unload_stopping: set[str] = set()
        # A reload that drains a model already retiring: it drains again afterwards.
        self._redrain: dict[str, float] = {}
        #: model -> draining models whose old port its new process takes over.
        self.after: dict[str, tuple[str, ...]] = {}
        self._next_swap = 1
        self._seq = 0
        # The input being handled, and its facts.
        self._input = ""
        self._now = 0.0
        self._wall = 0.0
        self._running: Mapping[str, ProcessState] = {}
        self._gone: frozenset[int] = frozenset()

    # ------------------------------------------------------------------ inputs

    def handle(self, inp: AnyInput, facts: Facts) -> None:
        """Apply one input, decided against `facts`. Never awaits; all consequences go
        through `effects`."""
        self._input = input_name(inp)
        self._now, self._wall = facts.time, facts.wall
        self._running, self._gone = facts.running, facts.gone
        self._note_asleep()
        _HANDLERS[type(inp)](self, inp)
        self._settle_draining()
        self._settle_unloading()

    def admission(self, model: str) -> Failure | None:
        """Why a request for `model` arriving now would be refused; None if admitted."""
        if self.closed:
            message = f"{self.settings.name} is shutting down"
            return Failure(kind="shutdown", model=model, message=message)
        policy = self.models.get(model)
        if policy is None:
            message = "no local server found for requested model"
            return Failure(kind="not_found", model=model, message=message)
        if self.reserved.get(model, 0) >= policy.effective_limit:
            return Failure(kind="too_many", model=model, message="Too many requests")
        return None

    @_handles(RequestIn)
    def _on_request(self, inp: RequestIn) -> None:
        model, rid = inp.model, inp.request_id
        refused = self.admission(model)
        if refused is not None:
            self.effects.fail(rid, refused)
            self._record("reject", model=model, request_id=rid, reason=refused.message)
            return
        policy = self.models[model]
        if rid in self._gone:
            self._record("drop", model=model, request_id=rid, reason="client gone at admission")
            return
        self.reserved[model] = self.reserved.get(model, 0) + 1
        req = Pending(id=rid, model=model, arrival=self._now, priority=policy.priority)
        self.pending[rid] = req
        self.effects.admit(rid, model)
        self._act(req, self._plan_for(req), fresh=True)

    @_handles(Cancel)
    def _on_cancel(self, inp: Cancel) -> None:
        req = self.pending.get(inp.request_id)
        if req is None:
            return  # already granted, failed or never admitted: a no-op
        del self.pending[req.id]
        self._overdue.pop(req.id, None)
        self._release(req.model)
        if req in self.queue:
            self.queue.remove(req)
            self._record("cancel", model=req.model, request_id=req.id, reason="left the queue")
            self._broadcast_positions()
        else:
            swap = self.active[req.model]
            swap.waiters.remove(req)
            self._record(
                "cancel",
                model=req.model,
                request_id=req.id,
                swap_id=swap.plan.swap_id,
                reason="left the swap's waiters",
            )
            if not swap.waiters and not swap.aborting and not self.settings.keep_abandoned_loads:
                self._abort(swap, "every waiter of the load has gone")
        self._drain()

    @_handles(SwapDone)
    def _on_swap_done(self, inp: SwapDone) -> None:
        swap = self.active.get(inp.model)
        if swap is None or swap.plan.swap_id != inp.swap_id:
            self._record(
                "swap_done",
                model=inp.model,
                swap_id=inp.swap_id,
                reason="ignored: the swap is no longer active",
            )
            return
        del self.active[inp.model]
        err = inp.error
        outcome = "aborted" if swap.aborting else ("failed: " + err.reason if err else "ready")
        self._record(
            "swap_done",
            model=inp.model,
            swap_id=inp.swap_id,
            reason=outcome,
            duration=self._now - swap.started,
            kv=inp.kv,
        )
        if not swap.aborting:
            if err is not None:
                for w in swap.waiters:
                    self._fail_pending(w, self._load_failure(inp.model, err))
            else:
                requeued = False
                for w in sorted(swap.waiters, key=lambda p: p.key):
                    overdue = self._barrier()
                    if overdue is not None and overdue is not w and overdue.key < w.key:
                        requeued = True
                        self._insert(w)
                        self._record(
                            "requeue",
                            model=w.model,
                            request_id=w.id,
                            reason=f"request #{overdue.id} has waited longer than maxWait",
                        )
                    else:
                        self._grant(w, "grant", swap_id=swap.plan.swap_id)
                if requeued:
                    self._broadcast_positions()
        self._drain()

    @_handles(ServeDone)
    def _on_serve_done(self, inp: ServeDone) -> None:
        model = self.serving.pop(inp.request_id, None)
        if model is None:
            log.warning("serve_done for unknown request %s ignored", inp.request_id)
            return
        self.in_flight[model] -= 1
        self.last_used[model] = self._now
        self._release(model)
        if self.in_flight[model] <= 0:
            del self.in_flight[model]
            self._drain()

    @_handles(Unload)
    def _on_unload(self, inp: Unload) -> None:
        targets = tuple(sorted(self.models)) if inp.models is None else tuple(inp.models)
        self._fail_all(
            set(targets), "unloaded", f"{self.settings.name}: model unloaded", "model unloaded"
        )
        self._record(
            "unload", reason=("unload now " if inp.now else "unload ") + ", ".join(targets)
        )
        for model in targets:
            if model in self.unload_stopping:
                continue  # already being stopped: this unload ends with that stop
            busy = self.in_flight.get(model, 0)
            if inp.now or not busy:
                self.unloading.pop(model, None)
                continue  # stopped by `_settle_unloading`, which runs next
            bound = self.models[model].unload_timeout if model in self.models else 0.0
            deadline = self._now + max(0.0, bound)
            self.unloading[model] = min(self.unloading.get(model, deadline), deadline)
            self._record(
                "unload_wait",
                model=model,
                reason=f"stops once its {busy} request(s) in flight finish (at most {bound:g}s)",
            )
        if inp.now:
            self._cut([m for m in targets if m not in self.unload_stopping], "unload --now")
        self._stop_unloaded([m for m in targets if m not in self.unloading])

    @_handles(UnloadFinished)
    def _on_unload_finished(self, inp: UnloadFinished) -> None:
        self.unload_stopping.difference_update(inp.models)
        self._drain()

    @_handles(Tick)
    def _on_tick(self, inp: Tick) -> None:
        """Nothing but the clock: the bounds are checked after every input."""

    def _settle_unloading(self) -> None:
        """Stop unloaded models whose requests in flight are done; past the wait's end,
        cut what is still in flight and stop them anyway."""
        if not self.unloading:
            return
        idle = [m for m, _ in sorted(self.unloading.items()) if self.in_flight.get(m, 0) <= 0]
        overdue = [
            m for m, end in sorted(self.unloading.items()) if m not in idle and self._now >= end
        ]
        for model in idle + overdue:
            del self.unloading[model]
        self._cut(overdue, "its requests in flight outlasted unloadTimeout")
        self._stop_unloaded(idle + overdue)

    def _cut(self, models: Sequence[str], why: str) -> None:
        for model in models:
            rids = tuple(sorted(r for r, m in self.serving.items() if m == model))
            if not rids:
                continue
            reason = f"{model} was unloaded while {len(rids)} request(s) were in flight ({why})"
            self._record("cut", model=model, reason=reason)
            self.effects.cut(rids, model, reason)

    def _stop_unloaded(self, models: Sequence[str]) -> None:
        batch = tuple(m for m in models if m not in self.unload_stopping)
        if not batch:
            return
        self.unload_stopping.update(batch)
        for model in batch:
            self._record("stop", model=model, reason="unload")
        self.effects.stop(batch, "unload")

    @_handles(Reload)
    def _on_reload(self, inp: Reload) -> None:
        """Adopt a new config. Requests for models it removed fail like an unload;
        requests being served finish normally and report serve-done as usual."""
        removed = tuple(sorted(m for m in self.models if m not in inp.models))
        self.models = {
            m: ModelPolicy(limit=p.limit, priority=p.priority, unload_timeout=p.unload_timeout)
            for m, p in inp.models.items()
        }
        self.settings = replace(
            self.settings,
            max_wait=inp.max_wait,
            keep_abandoned_loads=inp.keep_abandoned_loads,
        )
        self._fail_all(
            set(removed),
            "unloaded",
            f"{self.settings.name}: model removed from the config",
            "model removed from the config",
        )
        self._record("reload", reason="removed: " + ", ".join(removed) if removed else "")
        self.after.update({m: tuple(deps) for m, deps in inp.after.items() if deps})
        for model, seconds in sorted(inp.drain.items()):
            if model in self.retiring:
                self._redrain[model] = seconds
                continue
            deadline = self._now + max(0.0, seconds)
            self.draining[model] = min(self.draining.get(model, deadline), deadline)
            self._record(
                "drain",
                model=model,
                reason=(
                    f"{'removed from' if model in removed else 'changed in'} the config: "
                    f"retired once its requests in flight finish (at most {seconds:g}s)"
                ),
            )
        self._drain()

    @_handles(Retired)
    def _on_retired(self, inp: Retired) -> None:
        for model in inp.models:
            self.retiring.discard(model)
            self._record("retired", model=model)
            seconds = self._redrain.pop(model, None)
            if seconds is not None:
                self.draining[model] = self._now + max(0.0, seconds)
                self._record("drain", model=model, reason="changed again while it was retired")
        self.after = {
            m: deps for m, deps in self.after.items() if any(self._drain_blocked(d) for d in deps)
        }
        self._drain()

    def _settle_draining(self) -> None:
        """Ask for the retirement of draining models with nothing in flight, or whose
        drain bound has passed. A load in progress for one finishes first (its
        waiters were admitted under the old config and are served by it)."""
        if self.closed or not self.draining:
            return
        idle: list[str] = []
        overdue: list[str] = []
        for model, deadline in sorted(self.draining.items()):
            if model in self.active:
                continue
            if self.in_flight.get(model, 0) <= 0:
                idle.append(model)
            elif self._now >= deadline:
                overdue.append(model)
        for models, reason in ((idle, "drained"), (overdue, "drain bound reached")):
            if not models:
                continue
            for model in models:
                del self.draining[model]
                self.retiring.add(model)
                busy = self.in_flight.get(model, 0)
                detail = f"; {busy} request(s) still in flight are cut" if busy else ""
                self._record("retire", model=model, reason=reason + detail)
            self.effects.retire(tuple(models), reason)

    def next_deadline(self) -> float | None:
        """The earliest drain or unload bound; the run loop feeds a `Tick` when the clock
        gets there."""
        if not self.draining and not self.unloading:
            return None
        return min((*self.draining.values(), *self.unloading.values()))

    @_handles(Shutdown)
    def _on_shutdown(self, inp: Shutdown) -> None:
        self.closed = True
        self.unloading.clear()  # every model is stopped now
        self._fail_all(
            None, "shutdown", f"{self.settings.name} is shutting down", "shutting down", always=True
        )
        self._record("shutdown")

    def _fail_all(
        self,
        models: set[str] | None,
        kind: FailureKind,
        message: str,
        why: str,
        *,
        always: bool = False,
    ) -> None:
        """Fail every request waiting on a load of `models` (None: all) or queued for
        one, and abort those loads; queue positions are re-broadcast when the queue
        changed (or `always`)."""
        for target, swap in list(self.active.items()):
            if models is not None and target not in models:
                continue
            for w in list(swap.waiters):
                self._fail_pending(w, Failure(kind=kind, model=w.model, message=message))
            if not swap.aborting:
                self._abort(swap, why)
        dropped = [r for r in self.queue if models is None or r.model in models]
        for r in dropped:
            self.queue.remove(r)
            self._fail_pending(r, Failure(kind=kind, model=r.model, message=message))
        if dropped or always:
            self._broadcast_positions()

    # ------------------------------------------------------------- decisions

    def running_set(self, target: str) -> tuple[str, ...]:
        """Running processes plus targets of other active swaps, sorted."""
        if not self.active:
            return tuple(sorted(self._running))
        names = set(self._running)
        names.update(t for t in self.active if t != target)
        return tuple(sorted(names))

    def _note_asleep(self) -> None:
        """Tell the swapper which running models are asleep (from the facts at hand)."""
        asleep = frozenset(m for m, s in self._running.items() if s is ProcessState.ASLEEP)
        if asleep != self._usage.asleep:
            self._usage = Usage(self.in_flight, self.last_used, asleep)

    def collisions(
        self, target: str, evict: Sequence[str], sleep: Sequence[str] = ()
    ) -> tuple[str, ...]:
        """Targets of active swaps that a swap (target, evict, sleep) would collide with:
        a model put to sleep counts as evicted."""
        if not self.active:
            return ()
        evict_set = {*evict, *sleep}
        hits = []
        for other, swap in self.active.items():
            if other == target:
                continue
            theirs = {*swap.plan.evict, *swap.plan.sleep}
            if other in evict_set or target in theirs or evict_set & theirs:
                hits.append(other)
        return tuple(hits)

    def _barrier(self) -> Pending | None:
        """The oldest request that has waited `max_wait` in the queue and is not granted yet.

        A request that waited that long keeps the privilege after it leaves the
        queue to wait on its swap, so nothing younger is granted before it. A
        request that never queued that long (a slow load it joined at once)
        holds nobody back.
        """
        if self.settings.max_wait <= 0:
            return None
        if not self.queue and not self.active:
            # An overdue request is queued or waits on a swap: with neither there is none.
            return None
        wait = self.settings.max_wait
        best: Pending | None = None
        # The queue is ordered by priority, then by age: within one priority the
        # first request not held by a drain is its oldest, so it alone decides
        # that priority (anything after it is younger). Only what a drain holds
        # is passed over; a priority decided, the walk moves to the next one.
        queue = self.queue
        last_priority = queue[-1].priority if queue else 0
        blocking = bool(self.draining or self.retiring or self.unloading or self.unload_stopping)
        decided: int | None = None
        for r in queue:
            if r.priority == decided:
                continue
            if blocking and self._drain_blocked(r.model, handover=True):
                continue
            decided = r.priority
            if self._now - r.arrival >= wait and (best is None or r.key < best.key):
                best = r
            if decided == last_priority:
                break
        for p in self._overdue.values():
            if best is None or p.key < best.key:
                best = p
        return best

    def _drain_blocked(self, model: str, *, handover: bool = False) -> bool:
        """Draining, retiring or being unloaded; with `handover`, also waiting for one that is."""
        if model in self.draining or model in self.retiring:
            return True
        if model in self.unloading or model in self.unload_stopping:
            return True
        return handover and any(self._drain_blocked(d) for d in self.after.get(model, ()))

    def plan(
        self,
        model: str,
        *,
        key: tuple[float, int] | None = None,
    ) -> Plan:
        """The decision tree for a request for `model` with age `key`, without acting.

        `key` (arrival, id) positions the request against an overdue one; None
        means "arriving now".
        """
        if model not in self.models:
            return Plan("not_found", model, reason="no local server found for requested model")
        if model in self.unloading or model in self.unload_stopping:
            return Plan(
                "queue",
                model,
                blocked_by=(model,),
                reason=f"{model} is being unloaded; it starts again once it has stopped",
            )
        if self._drain_blocked(model):
            return Plan(
                "queue",
                model,
                blocked_by=(model,),
                reason=(
                    f"{model} restarts with its new settings once its requests in flight finish"
                ),
            )
        deps = self.after.get(model)
        handover = tuple(d for d in deps if self._drain_blocked(d)) if deps else ()
        if handover:
            return Plan(
                "queue",
                model,
                blocked_by=handover,
                reason=(
                    f"{model} takes over the port of "
                    + ", ".join(handover)
                    + ", which drains first"
                ),
            )
        overdue = self._barrier()
        if overdue is not None and (key is None or overdue.key < key):
            return Plan(
                "queue",
                model,
                blocked_by=(overdue.model,),
                overdue=overdue.id,
                reason=(
                    f"request #{overdue.id} for {overdue.model} has waited longer than "
                    f"maxWait ({self.settings.max_wait:g}s) and goes first"
                ),
            )
        swap = self.active.get(model)
        if swap is not None:
            if swap.aborting:
                return Plan(
                    "queue",
                    model,
                    blocked_by=(model,),
                    reason=f"the abandoned load of {model} is being aborted",
                )
            return Plan(
                "join",
                model,
                evict=swap.plan.evict,
                sleep=swap.plan.sleep,
                set=swap.plan.set,
                cost=swap.plan.cost,
                swap_id=swap.plan.swap_id,
                reason=f"joins the load of {model} already in progress",
            )
        running = self.running_set(model)
        ev = self.swapper.eviction_for(model, running, self._usage)
        if ev.refuse:
            return Plan("refuse", model, reason=ev.refuse)
        detail = "; " + ev.detail if ev.detail else ""
        blockers = self.collisions(model, ev.evict, ev.sleep)
        if self._running.get(model) == "ready" and not ev.evict and not ev.sleep and not blockers:
            return Plan(
                "serve", model, evict=ev.evict, set=ev.set, cost=ev.cost, reason=f"{model} is ready"
            )
        if blockers:
            return Plan(
                "queue",
                model,
                evict=ev.evict,
                sleep=ev.sleep,
                set=ev.set,
                cost=ev.cost,
                blocked_by=blockers,
                reason="collides with the swap of " + ", ".join(blockers),
            )
        busy = tuple(m for m in (*ev.evict, *ev.sleep) if self.in_flight.get(m, 0) > 0)
        if busy:
            return Plan(
                "queue",
                model,
                evict=ev.evict,
                sleep=ev.sleep,
                set=ev.set,
                cost=ev.cost,
                blocked_by=busy,
                reason="would evict " + ", ".join(busy) + " while serving requests" + detail,
            )
        reason = (
            f"load {model}"
            + (" evicting " + ", ".join(ev.evict) if ev.evict else "")
            + (" putting " + ", ".join(ev.sleep) + " to sleep" if ev.sleep else "")
            + detail
        )
        return Plan(
            "swap", model, evict=ev.evict, sleep=ev.sleep, set=ev.set, cost=ev.cost, reason=reason
        )

    def query(self, model: str, facts: Facts) -> Plan:
        """`plan` for a request arriving now, as `facts` say; changes nothing."""
        saved = (self._now, self._running, self._usage)
        self._now, self._running = facts.time, facts.running
        self._note_asleep()
        try:
            return self.plan(model)
        finally:
            self._now, self._running, self._usage = saved

    def queue_position_for(self, priority: int) -> int:
        """How many queued requests a new request of `priority` would be behind."""
        for i, r in enumerate(self.queue):
            if r.priority < priority:
                return i
        return len(self.queue)

    # ------------------------------------------------------------- acting

    def _plan_for(self, req: Pending) -> Plan:
        return self.plan(req.model, key=req.key)

    def _act(self, req: Pending, plan: Plan, *, fresh: bool) -> bool:
        """Carry out `plan` for `req`; False when it stays (or goes) in the queue."""
        match plan.action:
            case "not_found" | "refuse":
                if not fresh:
                    self.queue.remove(req)
                kind: FailureKind = "not_found" if plan.action == "not_found" else "too_big"
                self._fail_pending(req, Failure(kind=kind, model=req.model, message=plan.reason))
                return True
            case "queue":
                if fresh:
                    self._insert(req)
                    self._record(
                        "queue",
                        model=req.model,
                        request_id=req.id,
                        evict=plan.evict,
                        sleep=plan.sleep,
                        set=plan.set,
                        cost=plan.cost,
                        reason=plan.reason,
                    )
                    self._broadcast_positions()
                return False
        if not fresh:
            self.queue.remove(req)
            if 0 < self.settings.max_wait <= self._now - req.arrival:
                req.overdue = True
                self._overdue[req.id] = req
        match plan.action:
            case "serve":
                self._grant(req, "serve")
            case "join":
                swap = self.active[req.model]
                swap.waiters.append(req)
                self.effects.waiting(req.id, swap.plan.swap_id, req.model)
                self._record(
                    "join",
                    model=req.model,
                    request_id=req.id,
                    swap_id=swap.plan.swap_id,
                    reason=plan.reason,
                )
            case "swap":
                self._start_swap(req, plan)
        return True

    def _start_swap(self, req: Pending, plan: Plan) -> None:
        running = self.running_set(req.model)
        swap_plan = SwapPlan(
            swap_id=self._next_swap,
            target=req.model,
            evict=plan.evict,
            set=plan.set,
            cost=plan.cost,
            why=plan.reason,
            sleep=plan.sleep,
            wake=self._running.get(req.model) is ProcessState.ASLEEP,
        )
        self._next_swap += 1
        self.active[req.model] = ActiveSwap(plan=swap_plan, started=self._now, waiters=[req])
        self.swapper.on_swap_start(req.model, running, self._usage)
        self.effects.start_swap(swap_plan)
        self.effects.waiting(req.id, swap_plan.swap_id, req.model)
        self._record(
            "swap",
            model=req.model,
            request_id=req.id,
            swap_id=swap_plan.swap_id,
            evict=plan.evict,
            sleep=plan.sleep,
            set=plan.set,
            cost=plan.cost,
            reason=plan.reason,
        )

    def _abort(self, swap: ActiveSwap, reason: str) -> None:
        """Abort a swap. Its target is stopped too unless it was already ready or is
        serving requests: a swap for a ready target only evicts others, and
        aborting that must not take down the model it was for."""
        target = swap.plan.target
        swap.aborting = True
        keep = self._running.get(target) == "ready" or self.in_flight.get(target, 0) > 0
        self.effects.abort_swap(swap.plan.swap_id, target, not keep)
        self._record(
            "abort_load",
            model=target,
            swap_id=swap.plan.swap_id,
            reason=reason + ("; the model stays loaded" if keep else ""),
        )

    def _grant(self, req: Pending, action: Action, swap_id: int | None = None) -> None:
        self.pending.pop(req.id, None)
        self._overdue.pop(req.id, None)
        if req.id in self._gone:
            self._release(req.model)
            self._record(
                "drop", model=req.model, request_id=req.id, reason="client gone before grant"
            )
            return
        self.in_flight[req.model] = self.in_flight.get(req.model, 0) + 1
        self.last_used[req.model] = self._now
        self.serving[req.id] = req.model
        self.effects.grant(req.id, req.model)
        self._record(action, model=req.model, request_id=req.id, swap_id=swap_id)

    def _fail_pending(self, req: Pending, failure: Failure) -> None:
        """Fail an admitted request that is no longer queued nor waiting."""
        self.pending.pop(req.id, None)
        self._overdue.pop(req.id, None)
        swap = self.active.get(req.model)
        if swap is not None and req in swap.waiters:
            swap.waiters.remove(req)
        self._release(req.model)
        self.effects.fail(req.id, failure)
        self._record("fail", model=req.model, request_id=req.id, reason=failure.message)

    def _load_failure(self, model: str, err: SwapError) -> Failure:
        return Failure(
            kind="load_failed",
            model=model,
            message=f"{self.settings.name}: loading {model} failed: {err.reason}",
            reason=err.reason,
            log_tail=err.log_tail,
        )

    def _release(self, model: str) -> None:
        left = self.reserved.get(model, 0) - 1
        if left < 0:
            raise AssertionError(f"reservation of {model} released twice")
        if left:
            self.reserved[model] = left
        else:
            self.reserved.pop(model, None)

    def _insert(self, req: Pending) -> None:
        """Before the first request of strictly lower priority, or of equal priority
        that arrived later (only a requeued request can be older than the tail)."""
        for i, r in enumerate(self.queue):
            if r.priority < req.priority or (r.priority == req.priority and r.key > req.key):
                self.queue.insert(i, req)
                return
        self.queue.append(req)

    def _drain(self) -> None:
        """Walk the queue in order and re-run the decision tree on each item.

        A second pass runs only when the bounded-wait barrier held an item back
        and something progressed after it, so an item skipped early in the pass
        is not stranded until the next event.
        """
        if not self.queue:
            return
        before = [r.id for r in self.queue]
        while True:
            progressed = False
            held_by_barrier = False
            for req in list(self.queue):
                plan = self._plan_for(req)
                if plan.action == "queue":
                    held_by_barrier = held_by_barrier or plan.overdue is not None
                    continue
                self._act(req, plan, fresh=False)
                progressed = True
            if not (progressed and held_by_barrier):
                break
        if [r.id for r in self.queue] != before:
            self._broadcast_positions()

    def _broadcast_positions(self) -> None:
        self.effects.queued({r.id: i + 1 for i, r in enumerate(self.queue)})

    def _record(
        self,
        action: Action,
        *,
        model: str = "",
        request_id: int | None = None,
        swap_id: int | None = None,
        evict: tuple[str, ...] = (),
        set: str | None = None,
        cost: int = 0,
        reason: str = "",
        duration: float | None = None,
        kv: tuple[KvActivity, ...] = (),
        sleep: tuple[str, ...] = (),
    ) -> None:
        self._seq += 1
        self.effects.decided(
            Decision(
                seq=self._seq,
                time=self._wall,
                clock=self._now,
                input=self._input,
                action=action,
                model=model,
                request_id=request_id,
                swap_id=swap_id,
                evict=evict,
                set=set,
                cost=cost,
                queue_length=len(self.queue),
                reason=reason,
                duration=duration,
                kv=kv,
                sleep=sleep,
            )
        )
