"""The budget swapper under the scheduler, for random footprints and request sequences:
a busy model is never evicted, what runs once swaps settle fits the capacity, a model
that can never fit is refused at once, and every request ends served or refused."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from swapd.router.budget_swapper import BudgetSwapper, EvictCosts
from swapd.router.events import Decision, SwapPlan
from swapd.router.footprints import Budgeting, FootprintTable, ModelResources
from tests.unit.router.harness import Driver

MODELS = ["a", "b", "c", "d", "e"]
CAPACITY = 10


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, int], list[tuple[str, int]]]:
    sizes = {m: draw(st.integers(0, CAPACITY + 2)) for m in MODELS}
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["request", "request", "swap", "swap", "done"]),
                st.integers(0, 20),
            ),
            min_size=10,
            max_size=60,
        )
    )
    return sizes, ops


def fits(d: Driver, sizes: dict[str, int]) -> bool:
    return sum(sizes[m] for m, s in d.states.items() if s == "ready") <= CAPACITY


@settings(max_examples=200, deadline=None)
@given(cases())
def test_busy_never_evicted_and_what_runs_fits(
    case: tuple[dict[str, int], list[tuple[str, int]]],
) -> None:
    sizes, ops = case
    table = FootprintTable(
        Budgeting({"ram": CAPACITY}, learn=False),
        {m: ModelResources({"ram": sizes[m]}) for m in MODELS},
    )
    d = Driver(BudgetSwapper(table, EvictCosts("uniform"), MODELS), MODELS)
    started = d.fx.start_swap

    def checked(plan: SwapPlan) -> None:
        busy = [m for m in plan.evict if d.sched.in_flight.get(m, 0) > 0]
        assert not busy, f"{plan.target} evicts busy {busy}"
        started(plan)

    d.fx.start_swap = checked  # type: ignore[method-assign]
    decided = d.fx.decided

    def queued(decision: Decision) -> None:
        # Queued for a busy model only when evicting every idle one would not do.
        if decision.action == "queue" and "while serving" in decision.reason:
            running = [m for m in d.states if m != decision.model]
            busy = sum(sizes[m] for m in running if d.sched.in_flight.get(m, 0) > 0)
            if not d.sched.active:
                assert busy + sizes[decision.model] > CAPACITY, decision.reason
        decided(decision)

    d.fx.decided = queued  # type: ignore[method-assign]
    serving: list[int] = []
    asked: list[int] = []
    for op, n in ops:
        d.now += 1
        if op == "request":
            model = MODELS[n % len(MODELS)]
            rid = d.request(model)
            asked.append(rid)
            if sizes[model] > CAPACITY:
                assert d.fx.failed[rid].kind == "too_big"
        elif op == "done":
            granted = [r for r in d.fx.granted if r not in serving and r in d.sched.serving]
            serving.extend(granted)
            live = [r for r in serving if r in d.sched.serving]
            if live:
                d.serve_done(live[n % len(live)])
        elif d.sched.active:
            target = sorted(d.sched.active)[n % len(d.sched.active)]
            d.swap_done(target)
        if not d.sched.active:
            assert fits(d, sizes), d.states
    # Settle: finish every swap and every request; nothing is left waiting.
    for _ in range(100):
        if d.sched.active:
            d.swap_done(sorted(d.sched.active)[0])
        elif d.sched.serving:
            d.serve_done(sorted(d.sched.serving)[0])
        else:
            break
        if not d.sched.active:
            assert fits(d, sizes)
    assert not d.sched.queue and not d.sched.pending
    assert all(r in d.fx.granted or r in d.fx.failed for r in asked)
