"""A recording `Effects` and a driver that feeds a `FifoScheduler` typed inputs.

The driver plays the run loop's part with no I/O: it keeps the process
states the tests set, the clock, and the set of handlers that have gone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from swapd.process.states import RUNNING_STATES, ProcessState
from swapd.router.events import (
    AnyInput,
    Cancel,
    Decision,
    Facts,
    Failure,
    Policy,
    Recorded,
    Reload,
    RequestIn,
    ServeDone,
    Shutdown,
    SwapDone,
    SwapError,
    SwapPlan,
    Unload,
    UnloadFinished,
)
from swapd.router.group_swapper import Group, GroupSwapper
from swapd.router.scheduler import FifoScheduler, ModelPolicy, SchedulerSettings
from swapd.router.swapper import Swapper


@dataclass
class Recorder:
    """Effects that record every call, in order."""

    calls: list[tuple] = field(default_factory=list)
    admitted: list[int] = field(default_factory=list)
    granted: list[int] = field(default_factory=list)
    failed: dict[int, Failure] = field(default_factory=dict)
    swaps: list[SwapPlan] = field(default_factory=list)
    aborted: list[int] = field(default_factory=list)
    stops: list[tuple[str, ...]] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)
    positions: dict[int, int] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)

    def admit(self, request_id: int, model: str) -> None:
        self.calls.append(("admit", request_id, model))
        self.admitted.append(request_id)

    def grant(self, request_id: int, model: str) -> None:
        self.calls.append(("grant", request_id, model))
        self.granted.append(request_id)

    def fail(self, request_id: int, failure: Failure) -> None:
        self.calls.append(("fail", request_id, failure.kind))
        self.failed[request_id] = failure

    def waiting(self, request_id: int, swap_id: int, model: str) -> None:
        self.calls.append(("waiting", request_id, swap_id))

    def queued(self, positions: Mapping[int, int]) -> None:
        self.calls.append(("queued", dict(positions)))
        self.positions = dict(positions)

    def start_swap(self, plan: SwapPlan) -> None:
        self.calls.append(("start_swap", plan.swap_id, plan.target, plan.evict))
        self.swaps.append(plan)

    def abort_swap(self, swap_id: int, model: str, stop_target: bool) -> None:
        self.calls.append(("abort_swap", swap_id, model, stop_target))
        self.aborted.append(swap_id)

    def stop(self, models: tuple[str, ...], reason: str) -> None:
        self.calls.append(("stop", models, reason))
        self.stops.append(models)

    def cut(self, request_ids: tuple[int, ...], model: str, reason: str) -> None:
        self.calls.append(("cut", request_ids, model))
        self.cuts.extend(request_ids)

    def decided(self, decision: Decision) -> None:
        self.decisions.append(decision)


def groups(**spec: tuple[str, Sequence[str]]) -> dict[str, Group]:
    """groups(g1=("TTF", ["a", "b"])): flags as swap/exclusive/persistent letters T/F."""
    out = {}
    for name, (flags, members) in spec.items():
        s, e, p = (c == "T" for c in flags)
        out[name] = Group(members=tuple(members), swap=s, exclusive=e, persistent=p)
    return out


def one_at_a_time(models: Sequence[str]) -> GroupSwapper:
    """The implicit default group: one model at a time."""
    return GroupSwapper.with_default({}, models)


class Driver:
    def __init__(
        self,
        swapper: Swapper,
        models: Sequence[str] | Mapping[str, ModelPolicy],
        *,
        max_wait: float = 0.0,
        keep_abandoned_loads: bool = False,
    ) -> None:
        policies = (
            dict(models) if isinstance(models, Mapping) else {m: ModelPolicy() for m in models}
        )
        self.fx = Recorder()
        self.sched = FifoScheduler(
            policies,
            swapper,
            self.fx,
            SchedulerSettings(max_wait=max_wait, keep_abandoned_loads=keep_abandoned_loads),
        )
        self.states: dict[str, str] = {}
        self.gone: set[int] = set()
        self.now = 0.0
        self.inputs: list[Recorded] = []
        self._next = 1
        self.model_of: dict[int, str] = {}

    def facts(self) -> Facts:
        """What the run loop would capture now: the clock, running models, handlers gone."""
        running = {m: ProcessState(s) for m, s in self.states.items() if s in RUNNING_STATES}
        return Facts(time=self.now, running=running, gone=frozenset(self.gone))

    def feed(self, inp: AnyInput) -> None:
        facts = self.facts()
        self.inputs.append(Recorded(facts, inp))
        self.sched.handle(inp, facts)

    def request(self, model: str) -> int:
        rid = self._next
        self._next += 1
        self.model_of[rid] = model
        self.feed(RequestIn(request_id=rid, model=model))
        return rid

    def cancel(self, rid: int) -> None:
        self.feed(Cancel(request_id=rid))

    def swap_for(self, model: str) -> SwapPlan:
        return self.sched.active[model].plan

    def swap_done(self, model: str, error: str | None = None, *, ready: bool = True) -> None:
        plan = self.swap_for(model)
        for m in plan.evict:
            self.states.pop(m, None)
        for m in plan.sleep:
            self.states[m] = "asleep"
        if error is None and ready:
            self.states[model] = "ready"
        err = SwapError(reason=error) if error is not None else None
        self.feed(SwapDone(swap_id=plan.swap_id, model=model, error=err))

    def serve_done(self, rid: int) -> None:
        self.feed(ServeDone(request_id=rid, model=self.model_of[rid]))

    def unload(self, models: Sequence[str] | None = None, *, now: bool = False) -> None:
        """An unload; every stop it asks for at once is carried out and reported."""
        before = len(self.fx.stops)
        self.feed(Unload(models=None if models is None else tuple(models), now=now))
        self.stopped(*(m for batch in self.fx.stops[before:] for m in batch))

    def stopped(self, *models: str) -> None:
        """The unload's stop of these models is done."""
        if not models:
            return
        for m in models:
            self.states.pop(m, None)
        self.feed(UnloadFinished(models=tuple(models)))

    def serve_done_then_stops(self, rid: int) -> None:
        """A serve-done, then whatever stop it released is carried out and reported."""
        before = len(self.fx.stops)
        self.serve_done(rid)
        self.stopped(*(m for batch in self.fx.stops[before:] for m in batch))

    def shutdown(self) -> None:
        self.feed(Shutdown())

    def reload(
        self,
        models: Mapping[str, ModelPolicy],
        swapper: Swapper | None = None,
        *,
        max_wait: float | None = None,
    ) -> None:
        if swapper is not None:
            self.sched.swapper = swapper
        policies = {m: Policy(limit=p.limit, priority=p.priority) for m, p in models.items()}
        self.feed(
            Reload(
                models=policies,
                max_wait=self.sched.settings.max_wait if max_wait is None else max_wait,
                keep_abandoned_loads=self.sched.settings.keep_abandoned_loads,
            )
        )

    @property
    def queue(self) -> list[int]:
        return [r.id for r in self.sched.queue]

    @property
    def queue_models(self) -> list[str]:
        return [r.model for r in self.sched.queue]

    def started(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(p.target, p.evict) for p in self.fx.swaps]


@contextmanager
def node_budget(nodes: int) -> Iterator[None]:
    """The budget planner's search budget (`budget.NODE_BUDGET`) set to `nodes` in the block."""
    from swapd.router import budget

    saved = budget.NODE_BUDGET
    budget.NODE_BUDGET = nodes
    try:
        yield
    finally:
        budget.NODE_BUDGET = saved
