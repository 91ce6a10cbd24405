"""Sleep as a way to make room, through the footprint table, the budget swapper and the
scheduler: which models are put to sleep, how they count asleep, and what is said."""

from __future__ import annotations

from swapd.router.budget_books import Books
from swapd.router.budget_swapper import COST_SCALE, BudgetSwapper, EvictCosts, GroupBudget
from swapd.router.explain import explain
from swapd.router.footprints import Budgeting, FootprintTable, Learned, ModelResources
from swapd.router.group_swapper import GroupSwapper
from swapd.router.swapper import Usage
from tests.unit.router.harness import Driver, groups

GiB = 1 << 30
MiB = 1 << 20


def ab_table(
    learned: Learned | None = None, *, a_asleep: dict[str, int] | None = None
) -> FootprintTable:
    """vram 10 GiB, ram 32 GiB: a (vram 8 GiB, ram 2 GiB) can sleep, b (vram 8 GiB) cannot,
    c takes vram 1 GiB."""
    models = {
        "a": ModelResources(
            {"vram": 8 * GiB, "ram": 2 * GiB},
            sleeps=True,
            asleep={"vram": GiB} if a_asleep is None else a_asleep,
        ),
        "b": ModelResources({"vram": 8 * GiB, "ram": GiB}),
        "c": ModelResources({"vram": GiB, "ram": GiB}),
    }
    capacity = {"vram": 10 * GiB, "ram": 32 * GiB}
    return FootprintTable(Budgeting(capacity, True, (), tuple(capacity)), models, learned)


def ab(books: Books | None = None, **kw: dict[str, int]) -> BudgetSwapper:
    books = books or Books()
    return BudgetSwapper(ab_table(Learned(books), **kw), EvictCosts("measured", books), "abc")


def test_asleep_footprints_declared_measured_and_the_conservative_default() -> None:
    t = ab_table()
    assert t.asleep_planned("a") == {"vram": GiB, "ram": 2 * GiB}, "ram not declared: as awake"
    t = ab_table(a_asleep={})
    assert t.asleep_planned("a") == {"ram": 2 * GiB}, "nothing declared: vram is released"
    learned = Learned(live_asleep=lambda m: {"vram": 2 * GiB, "ram": GiB} if m == "a" else {})
    t = ab_table(learned)
    assert t.asleep_planned("a") == {"vram": 2 * GiB * 11 // 10 + 1, "ram": GiB * 11 // 10 + 1}
    assert t.can_sleep("a") and not t.can_sleep("b")
    assert t.in_use(["a", "b"], frozenset({"a"}))["vram"] == 8 * GiB + 2 * GiB * 11 // 10 + 1
    assert t.in_use(["a", "b"])["vram"] == 16 * GiB


def test_the_device_resource_is_released_asleep_when_nothing_is_said() -> None:
    models = {"g": ModelResources({"gpu": 6 * GiB}, ("gpu0",), sleeps=True)}
    t = FootprintTable(Budgeting({"gpu0": 24 * GiB}, True, ("gpu0",)), models)
    assert t.asleep_planned("g") == {}
    foot = t.asleep_footprint("g")
    assert foot.on_device == 0 and foot.devices == ("gpu0",)


def test_wake_costs_are_the_median_wake_else_a_tenth_of_the_stop_cost() -> None:
    books = Books()
    costs = EvictCosts("measured", books)
    assert costs.wake_cost("a") == 0.1, "never loaded nor woken: a tenth of 1"
    books.record_load("a", 20.0)
    assert costs.wake_cost("a") == 2.0
    for seconds in (3.0, 1.0, 2.0):
        books.record_wake("a", seconds)
    assert costs.wake_cost("a") == 2.0 and books.costs.median_wake("a") == 2.0
    assert EvictCosts("uniform", books).wake_cost("a") == 0.1
    assert EvictCosts({"a": 5.0}, books).wake_cost("a") == 0.5


def test_the_swapper_sleeps_a_to_make_room_for_b_and_says_so() -> None:
    ev = ab().eviction_for("b", ["a"])
    assert (ev.evict, ev.sleep, ev.cost) == ((), ("a",), 0)
    assert ev.detail == (
        "needs vram 8GiB, ram 1GiB, free vram 2GiB, ram 30GiB; sleeps a (frees vram 7GiB); cost 0.1"
    )


def test_a_wake_dearer_than_a_load_stops_instead() -> None:
    books = Books()
    books.record_load("a", 1.0)
    books.record_wake("a", 3.0)
    ev = ab(books).eviction_for("b", ["a"])
    assert (ev.evict, ev.sleep, ev.cost) == (("a",), (), 1)


def test_an_asleep_model_counts_small_and_waking_it_makes_room_again() -> None:
    swapper = ab()
    asleep = Usage(asleep=frozenset({"a"}))
    ev = swapper.eviction_for("c", ["a", "b"], asleep)
    assert (ev.evict, ev.sleep) == ((), ()), "1 + 8 + 1 <= 10"
    ev = swapper.eviction_for("c", ["a", "b"])
    assert (ev.evict, ev.sleep) == ((), ("a",)), "awake, a is put to sleep"
    ev = swapper.eviction_for("a", ["a", "b"], asleep)
    assert (ev.evict, ev.sleep) == (("b",), ())
    assert ev.detail == (
        "needs vram 8GiB, ram 2GiB, free vram 2GiB, ram 31GiB; evicts b (frees vram 8GiB, "
        "ram 1GiB); cost 1"
    ), "asleep, a's own 1 GiB of vram is its own to take back"
    assert swapper.eviction_for("a", ["a"], asleep).evict == ()


def test_the_group_budget_never_sleeps() -> None:
    swapper = GroupBudget(GroupSwapper(groups(all=("TFF", ["a", "b", "c"]))), ab())
    ev = swapper.eviction_for("c", ["a"])
    assert ev.sleep == ()


def test_the_scheduler_starts_a_swap_that_sleeps_a_then_wakes_a_evicting_b() -> None:
    d = Driver(ab(), ["a", "b", "c"])
    rid = d.request("a")
    d.swap_done("a")
    d.serve_done(rid)
    d.now += 1
    d.request("b")
    plan = d.swap_for("b")
    assert (plan.evict, plan.sleep, plan.wake) == ((), ("a",), False)
    swap = [x for x in d.fx.decisions if x.action == "swap"][-1]
    assert swap.sleep == ("a",) and "putting a to sleep" in swap.reason
    assert "sleeps a (frees vram 7GiB)" in swap.reason
    d.swap_done("b")
    d.serve_done(2)
    assert d.states == {"a": "asleep", "b": "ready"}
    d.now += 1
    x = explain(d.sched, "a", d.facts())
    assert (x.verdict, x.evict, x.sleep) == ("swap", ("b",), ())
    d.request("a")
    woke = d.swap_for("a")
    assert (woke.evict, woke.wake) == (("b",), True), "a was asleep: the swap wakes it"


def test_a_model_being_put_to_sleep_collides_like_an_evicted_one() -> None:
    d = Driver(ab(), ["a", "b", "c"])
    rid = d.request("a")
    d.swap_done("a")
    d.serve_done(rid)
    d.request("b")
    assert d.swap_for("b").sleep == ("a",)
    late = d.request("a")
    queued = [x for x in d.fx.decisions if x.request_id == late][-1]
    assert queued.action == "queue" and "collides with the swap of b" in queued.reason


def test_a_busy_model_is_put_to_sleep_only_once_idle() -> None:
    d = Driver(ab(), ["a", "b", "c"])
    rid = d.request("a")
    d.swap_done("a")
    wants_b = d.request("b")
    queued = [x for x in d.fx.decisions if x.request_id == wants_b][-1]
    assert queued.action == "queue" and queued.sleep == ("a",)
    assert "would evict a while serving requests" in queued.reason
    d.serve_done(rid)
    assert d.swap_for("b").sleep == ("a",)


def test_costs_are_scaled_like_stop_costs() -> None:
    assert COST_SCALE == 1000
    swapper = ab()
    s = swapper.situation("b", ["a"], Usage())
    assert s.wake_costs == {"a": 100} and s.asleep_footprints["a"].amounts == {
        "vram": GiB,
        "ram": 2 * GiB,
    }
