"""Random interleavings of every scheduler input, on a mock clock, with invariants.

The world around the scheduler is simulated: swap tasks finish (or fail) when
the machine says so, handlers leave at any time and their cancel arrives
later, granted handlers finish in any order, models crash, unloads happen.
Checked after every step and at the end:

* every request is resolved exactly once (granted, failed or dropped);
* reservations equal queued + waiting + serving requests, in-flight equals
  serving requests, neither goes negative, both return to zero;
* no swap starts evicting a model with requests in flight, active swaps
  never collide, and no model is granted while a swap is evicting it;
* once a request has waited `max_wait` in the queue, nothing that arrived
  after it is granted before it is granted or failed;
* the recorded inputs, JSON round-tripped, replay to the same decisions.
"""

from __future__ import annotations

import copy

import msgspec
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from swapd.matrix import compile_matrix
from swapd.process.states import RUNNING_STATES, ProcessState
from swapd.router.events import (
    AnyInput,
    Cancel,
    Decision,
    Facts,
    Failure,
    Recorded,
    RequestIn,
    ServeDone,
    SwapDone,
    SwapError,
    SwapPlan,
    Tick,
    Unload,
    UnloadFinished,
)
from swapd.router.explain import explain
from swapd.router.group_swapper import GroupSwapper
from swapd.router.matrix_swapper import MatrixSwapper
from swapd.router.scheduler import FifoScheduler, ModelPolicy, SchedulerSettings
from tests.unit.router.harness import Recorder, groups

MODELS = ["a", "b", "c", "d"]
SWAPPERS = {
    "one-at-a-time": lambda: GroupSwapper.with_default({}, MODELS),
    "mixed-groups": lambda: GroupSwapper(
        groups(g1=("TTF", "ab"), g2=("TFF", "c"), keep=("FFT", "d"))
    ),
    "non-exclusive": lambda: GroupSwapper(groups(g1=("TFF", "ab"), g2=("FFF", "cd"))),
    "matrix": lambda: MatrixSwapper(
        compile_matrix(
            [("pair", "(a | b) & c"), ("trio", "a & d & +pair"), ("solo", "b")],
            {},
            {"c": 5},
            MODELS,
        )
    ),
}
POLICIES = {
    "a": ModelPolicy(limit=5),
    "b": ModelPolicy(limit=3, priority=5),
    "c": ModelPolicy(limit=4),
    "d": ModelPolicy(limit=3, priority=-1),
}


class CheckingEffects(Recorder):
    """Records, and checks each effect against the scheduler's state as it happens."""

    def __init__(self, machine: SchedulerMachine) -> None:
        super().__init__()
        self.m = machine

    def start_swap(self, plan: SwapPlan) -> None:
        sched = self.m.sched
        busy = [e for e in plan.evict if sched.in_flight.get(e, 0) > 0]
        assert not busy, f"swap {plan} evicts {busy} with requests in flight"
        super().start_swap(plan)
        self.m.tasks[plan.swap_id] = plan
        for e in plan.evict:
            if e in self.m.states:
                self.m.states[e] = "stopping"
        self.m.states.setdefault(plan.target, "starting")

    def abort_swap(self, swap_id: int, model: str, stop_target: bool) -> None:
        super().abort_swap(swap_id, model, stop_target)
        if not stop_target:
            self.m.keep_on_abort.add(swap_id)

    def stop(self, models: tuple[str, ...], reason: str) -> None:
        busy = [
            m for m in models if self.m.sched.in_flight.get(m, 0) and m not in self.m.cut_models
        ]
        assert not busy, f"unload stops {busy} with requests in flight that were not cut"
        super().stop(models, reason)
        self.m.stops_pending.append(models)
        for m in models:
            if m in self.m.states:
                self.m.states[m] = "stopping"

    def cut(self, request_ids: tuple[int, ...], model: str, reason: str) -> None:
        assert set(request_ids) <= self.m.serving | self.m.gone, "cut a request not in flight"
        super().cut(request_ids, model, reason)
        self.m.cut_models.add(model)

    def grant(self, request_id: int, model: str) -> None:
        m = self.m
        for target, swap in m.sched.active.items():
            assert model not in swap.plan.evict, f"{model} granted while {target} evicts it"
        assert model not in m.sched.unloading, f"{model} granted while it is being unloaded"
        assert model not in m.sched.unload_stopping, f"{model} granted while its unload stops it"
        assert request_id not in m.outcome, f"request {request_id} resolved twice"
        m.check_bounded_wait(request_id)
        m.outcome[request_id] = "granted"
        # A handler that has gone never runs, so it never reports serve-done.
        if request_id not in m.gone:
            m.serving.add(request_id)
        m.left_queue.setdefault(request_id, m.now)
        super().grant(request_id, model)

    def fail(self, request_id: int, failure: Failure) -> None:
        assert request_id not in self.m.outcome, f"request {request_id} resolved twice"
        self.m.outcome[request_id] = "failed:" + failure.kind
        self.m.left_queue.setdefault(request_id, self.m.now)
        super().fail(request_id, failure)

    def decided(self, decision: Decision) -> None:
        super().decided(decision)
        m, rid = self.m, decision.request_id
        if rid is None:
            return
        if decision.action in ("queue", "requeue"):
            m.queued_since[rid] = decision.clock
            m.left_queue.pop(rid, None)
        elif decision.action in ("join", "swap") and rid in m.queued_since:
            m.left_queue.setdefault(rid, decision.clock)
        elif decision.action in ("drop", "cancel"):
            assert rid not in m.outcome, f"request {rid} resolved twice"
            m.outcome[rid] = decision.action
            m.left_queue.setdefault(rid, decision.clock)


class SchedulerMachine(RuleBasedStateMachine):
    @initialize(
        swapper=st.sampled_from(sorted(SWAPPERS)),
        max_wait=st.sampled_from([0.0, 5.0, 30.0]),
        keep=st.booleans(),
    )
    def setup(self, swapper: str, max_wait: float, keep: bool) -> None:
        self.config = (swapper, max_wait, keep)
        self.fx = CheckingEffects(self)
        self.sched = self._fresh(self.fx)
        self.now = 0.0
        self.states: dict[str, str] = {}
        self.gone: set[int] = set()
        self.cancels: list[int] = []
        self.tasks: dict[int, SwapPlan] = {}
        self.keep_on_abort: set[int] = set()
        self.serving: set[int] = set()
        self.stops_pending: list[tuple[str, ...]] = []
        self.cut_models: set[str] = set()
        self.outcome: dict[int, str] = {}
        self.arrival: dict[int, float] = {}
        self.model_of: dict[int, str] = {}
        self.queued_since: dict[int, float] = {}
        self.left_queue: dict[int, float] = {}
        self.inputs: list[AnyInput] = []
        self.next_id = 1

    def _fresh(self, effects) -> FifoScheduler:
        swapper, max_wait, keep = self.config
        return FifoScheduler(
            POLICIES,
            SWAPPERS[swapper](),
            effects,
            SchedulerSettings(max_wait=max_wait, keep_abandoned_loads=keep),
        )

    def facts(self) -> Facts:
        running = {m: ProcessState(s) for m, s in self.states.items() if s in RUNNING_STATES}
        return Facts(time=self.now, running=running, gone=frozenset(self.gone))

    def feed(self, inp: AnyInput) -> None:
        facts = self.facts()
        self.inputs.append(Recorded(facts, inp))
        self.sched.handle(inp, facts)

    # ------------------------------------------------------------ properties

    def check_bounded_wait(self, granted: int) -> None:
        """Nothing younger is granted while an older request that waited max_wait
        in the queue is still unresolved, unless its model is being unloaded (it
        waits for the stop; holding others back would not make that faster)."""
        max_wait = self.config[1]
        if max_wait <= 0:
            return
        key = (self.arrival[granted], granted)
        blocked = self.sched.unloading.keys() | self.sched.unload_stopping
        for rid, since in self.queued_since.items():
            if rid in self.outcome or (self.arrival[rid], rid) >= key:
                continue
            if self.model_of[rid] in blocked:
                continue
            waited_until = self.left_queue.get(rid, self.now)
            assert waited_until - self.arrival[rid] < max_wait, (
                f"request {granted} granted before {rid}, which waited "
                f"{waited_until - self.arrival[rid]}s in the queue (queued at {since})"
            )

    @invariant()
    def barrier_is_the_oldest_overdue(self) -> None:
        """The barrier, found by its short walk, is what a walk over everything finds."""
        if not hasattr(self, "sched"):
            return
        sched = self.sched
        assert sched._overdue == {rid: p for rid, p in sched.pending.items() if p.overdue}
        wait = sched.settings.max_wait
        candidates = [p for p in sched.pending.values() if p.overdue]
        if wait > 0 and (sched.queue or sched.active):
            candidates += [
                r
                for r in sched.queue
                if not sched._drain_blocked(r.model, handover=True)
                and sched._now - r.arrival >= wait
            ]
        expected = min(candidates, key=lambda p: p.key) if candidates and wait > 0 else None
        assert sched._barrier() is expected

    @invariant()
    def counts_match(self) -> None:
        if not hasattr(self, "sched"):
            return
        sched = self.sched
        expected_reserved: dict[str, int] = {}
        for rid in list(sched.pending) + list(sched.serving):
            m = self.model_of[rid]
            expected_reserved[m] = expected_reserved.get(m, 0) + 1
        assert sched.reserved == expected_reserved
        expected_in_flight: dict[str, int] = {}
        for rid in sched.serving:
            m = self.model_of[rid]
            expected_in_flight[m] = expected_in_flight.get(m, 0) + 1
        assert sched.in_flight == expected_in_flight
        assert set(sched.serving) == self.serving
        for m, n in sched.reserved.items():
            assert 0 < n <= POLICIES[m].limit
        active = list(sched.active.items())
        for i, (t1, s1) in enumerate(active):
            for t2, s2 in active[i + 1 :]:
                assert t1 not in s2.plan.evict and t2 not in s1.plan.evict
                assert not set(s1.plan.evict) & set(s2.plan.evict)

    @rule(model=st.sampled_from([*MODELS, "unknown"]))
    def explain_agrees_with_the_scheduler(self, model: str) -> None:
        """explain's verdict is what a request for `model` arriving now really gets."""
        facts = self.facts()
        verdict = explain(self.sched, model, facts).verdict
        # A deep copy of the scheduler's state; the (stateless) swapper is shared.
        memo = {id(self.sched.swapper): self.sched.swapper, id(self.sched.effects): Recorder()}
        twin = copy.deepcopy(self.sched, memo)
        rid = 10**9
        twin.handle(RequestIn(request_id=rid, model=model), facts)
        recorder = twin.effects
        assert isinstance(recorder, Recorder)
        first = next(d for d in recorder.decisions if d.request_id == rid)
        happened = recorder.failed[rid].kind if first.action == "reject" else first.action
        assert verdict == happened, (model, first)

    # ----------------------------------------------------------------- rules

    @rule(model=st.sampled_from([*MODELS, *MODELS, "unknown"]))
    def request(self, model: str) -> None:
        rid = self.next_id
        self.next_id += 1
        self.arrival[rid] = self.now
        self.model_of[rid] = model
        self.feed(RequestIn(request_id=rid, model=model))
        if rid not in self.fx.admitted:
            assert self.outcome.get(rid, "").startswith("failed:")

    @rule(model=st.sampled_from(MODELS))
    def another_request(self, model: str) -> None:
        self.request(model)

    def _waiting(self) -> list[int]:
        return sorted(
            rid for rid in self.fx.admitted if rid not in self.outcome and rid not in self.gone
        )

    @precondition(lambda self: self._waiting())
    @rule(data=st.data())
    def handler_leaves(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(self._waiting()))
        self.gone.add(rid)
        self.cancels.append(rid)

    @precondition(lambda self: self.cancels)
    @rule(data=st.data())
    def cancel_arrives(self, data: st.DataObject) -> None:
        rid = self.cancels.pop(data.draw(st.integers(0, len(self.cancels) - 1)))
        self.feed(Cancel(request_id=rid))
        self.gone.discard(rid)
        self.outcome.setdefault(rid, "cancelled-late")

    @precondition(lambda self: self.tasks)
    @rule(data=st.data(), ok=st.booleans())
    def swap_finishes(self, data: st.DataObject, ok: bool) -> None:
        swap_id = data.draw(st.sampled_from(sorted(self.tasks)))
        self._finish(swap_id, ok)

    def _finish(self, swap_id: int, ok: bool) -> None:
        plan = self.tasks.pop(swap_id)
        aborted = swap_id in self.fx.aborted
        for e in plan.evict:
            self.states.pop(e, None)
        if ok and not aborted:
            self.states[plan.target] = "ready"
            err = None
        elif aborted and swap_id in self.keep_on_abort:
            err = SwapError(reason="aborted", aborted=True)  # the target keeps its state
        else:
            self.states.pop(plan.target, None)
            err = SwapError(reason="aborted" if aborted else "boom", aborted=aborted)
        self.feed(SwapDone(swap_id=swap_id, model=plan.target, error=err))

    @precondition(lambda self: self.tasks)
    @rule(data=st.data())
    def swap_succeeds(self, data: st.DataObject) -> None:
        self._finish(data.draw(st.sampled_from(sorted(self.tasks))), True)

    @precondition(lambda self: self.serving)
    @rule(data=st.data())
    def serve_finishes(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(self.serving)))
        self.serving.discard(rid)
        self.feed(ServeDone(request_id=rid, model=self.model_of[rid]))

    @rule(
        gate=st.integers(0, 3),
        models=st.none() | st.lists(st.sampled_from(MODELS), min_size=1, unique=True),
        now=st.booleans(),
    )
    def unload(self, gate: int, models: list[str] | None, now: bool) -> None:
        if gate:  # unloads are rarer than the rest
            return
        targets = tuple(models) if models is not None else None
        self.feed(Unload(models=targets, now=now))

    @precondition(lambda self: self.stops_pending)
    @rule(data=st.data())
    def unload_stop_done(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.stops_pending) - 1))
        self._stopped(self.stops_pending.pop(index))

    def _stopped(self, models: tuple[str, ...]) -> None:
        for m in models:
            self.states.pop(m, None)
        self.feed(UnloadFinished(models=models))

    @rule()
    def tick(self) -> None:
        """The run loop's timer: fed when the clock reached `next_deadline`."""
        deadline = self.sched.next_deadline()
        if deadline is not None and deadline <= self.now:
            self.feed(Tick())

    @precondition(lambda self: self.states)
    @rule(data=st.data())
    def process_exits(self, data: st.DataObject) -> None:
        """A crash or a TTL stop: the scheduler only sees it in later states."""
        self.states.pop(data.draw(st.sampled_from(sorted(self.states))))

    @rule(dt=st.sampled_from([0.5, 3.0, 10.0, 31.0]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(dt=st.sampled_from([1.0, 6.0]))
    def advance_a_little(self, dt: float) -> None:
        self.now += dt

    # -------------------------------------------------------------- teardown

    def teardown(self) -> None:
        if not hasattr(self, "sched"):
            return
        self._quiesce()
        self._check_replay()

    def _quiesce(self) -> None:
        """Let the world settle: everything must end resolved with counts at zero."""
        for _ in range(200):
            progressed = False
            while self.cancels:
                rid = self.cancels.pop(0)
                self.feed(Cancel(request_id=rid))
                self.gone.discard(rid)
                progressed = True
            for swap_id in sorted(self.tasks):
                self._finish(swap_id, True)
                progressed = True
            while self.stops_pending:
                self._stopped(self.stops_pending.pop(0))
                progressed = True
            for rid in sorted(self.serving):
                self.serving.discard(rid)
                self.feed(ServeDone(request_id=rid, model=self.model_of[rid]))
                progressed = True
            if not progressed:
                break
            self.now += 1.0
        sched = self.sched
        assert not sched.pending and not sched.queue and not sched.active, "stranded requests"
        assert not sched.unloading and not sched.unload_stopping, "an unload never finished"
        assert sched.reserved == {} and sched.in_flight == {}
        for rid in self.arrival:
            assert rid in self.outcome, f"request {rid} never resolved"

    def _check_replay(self) -> None:
        encoded = msgspec.json.encode(self.inputs)
        inputs = msgspec.json.decode(encoded, type=list[Recorded])
        assert inputs == self.inputs
        fresh = Recorder()
        sched = self._fresh(fresh)
        for step in inputs:
            sched.handle(step.input, step.facts)
        assert fresh.decisions == self.fx.decisions
        assert fresh.calls == self.fx.calls


TestScheduler = SchedulerMachine.TestCase
TestScheduler.settings = settings(max_examples=200, stateful_step_count=50)
