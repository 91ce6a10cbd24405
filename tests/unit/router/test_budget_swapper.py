"""The budget strategies behind the Swapper interface, driven through the scheduler."""

from __future__ import annotations

from swapd.config import load_config_text
from swapd.router.budget_books import Books
from swapd.router.budget_swapper import COST_SCALE, BudgetSwapper, EvictCosts
from swapd.router.build import footprint_table, swapper_for
from swapd.router.errors import CannotFit, error_for
from swapd.router.explain import explain
from swapd.router.footprints import Budgeting, FootprintTable, Learned, ModelResources
from swapd.router.swapper import Usage
from tests.unit.router.harness import Driver

GiB = 1 << 30


def table(
    declared: dict[str, dict[str, int]],
    capacity: dict[str, int],
    learned: Learned | None = None,
    learn: bool = True,
    devices: dict[str, tuple[str, ...]] | None = None,
) -> FootprintTable:
    devices = devices or {}
    models = {m: ModelResources(d, devices.get(m, ())) for m, d in declared.items()}
    device_keys = tuple(sorted({d for ds in devices.values() for d in ds}))
    return FootprintTable(Budgeting(capacity, learn, device_keys, tuple(capacity)), models, learned)


def worked_example() -> BudgetSwapper:
    t = table(
        {
            "a": {"ram": 4 * GiB},
            "b": {"ram": 4 * GiB},
            "c": {"ram": 4 * GiB},
            "d": {"ram": 8 * GiB},
        },
        {"ram": 10 * GiB},
    )
    return BudgetSwapper(t, EvictCosts("uniform"), ["a", "b", "c", "d"])


def serve(d: Driver, model: str) -> int:
    d.now += 1
    rid = d.request(model)
    if model in d.sched.active:
        d.swap_done(model)
    d.serve_done(rid)
    return rid


def running(d: Driver) -> list[str]:
    return sorted(m for m, s in d.states.items() if s == "ready")


def test_the_readme_worked_example() -> None:
    d = Driver(worked_example(), ["a", "b", "c", "d"])
    serve(d, "a")
    serve(d, "b")
    assert running(d) == ["a", "b"]
    serve(d, "c")
    assert running(d) == ["b", "c"]
    serve(d, "d")
    assert running(d) == ["d"]
    serve(d, "a")
    assert running(d) == ["a"]
    swaps = [x for x in d.fx.decisions if x.action == "swap"]
    assert [(x.model, x.evict, x.cost) for x in swaps] == [
        ("a", (), 0),
        ("b", (), 0),
        ("c", ("a",), 1),
        ("d", ("b", "c"), 2),
        ("a", ("d",), 1),
    ]
    assert "needs ram 4GiB, free ram 2GiB; evicts a (frees ram 4GiB); cost 1" in swaps[2].reason


def test_least_recently_used_is_by_use_not_by_load() -> None:
    d = Driver(worked_example(), ["a", "b", "c", "d"])
    serve(d, "a")
    serve(d, "b")
    serve(d, "a")  # a is now the most recently used
    serve(d, "c")
    assert running(d) == ["a", "c"]


def test_a_busy_model_is_never_evicted_the_request_queues() -> None:
    d = Driver(worked_example(), ["a", "b", "c", "d"])
    serve(d, "a")
    rb = d.request("b")
    d.swap_done("b")  # b serves, a idle
    rc = d.request("c")  # evicts idle a, not busy b
    assert d.swap_for("c").evict == ("a",)
    d.swap_done("c")
    rd = d.request("d")  # needs b and c gone: b and c are busy: queue
    queued = [x for x in d.fx.decisions if x.action == "queue"]
    assert queued and queued[-1].model == "d" and "while serving requests" in queued[-1].reason
    assert "waits for b, c to finish their requests" in queued[-1].reason
    d.serve_done(rb)
    assert "d" not in d.sched.active
    d.serve_done(rc)
    assert d.swap_for("d").evict == ("b", "c")
    d.swap_done("d")
    assert rd in d.fx.granted


def test_a_model_that_cannot_fit_alone_fails_at_once_with_500_naming_the_resource() -> None:
    t = table({"big": {"ram": 12 * GiB}}, {"ram": 10 * GiB})
    d = Driver(BudgetSwapper(t, EvictCosts("uniform"), ["big"]), ["big"])
    rid = d.request("big")
    failure = d.fx.failed[rid]
    assert failure.kind == "too_big"
    assert failure.message == "big cannot run: it needs 12GiB of ram, capacity is 10GiB"
    err = error_for(failure)
    assert isinstance(err, CannotFit) and err.status == 500
    assert not d.sched.active and not d.sched.reserved


def test_blind_resources_are_said() -> None:
    t = table({"a": {"ram": GiB}, "b": {}}, {"ram": 10 * GiB, "vram": 8 * GiB})
    d = Driver(BudgetSwapper(t, EvictCosts("uniform"), ["a", "b"]), ["a", "b"])
    serve(d, "a")
    serve(d, "b")
    swap = [x for x in d.fx.decisions if x.action == "swap"][-1]
    assert "the plan is blind to ram for b; vram for b, a" in swap.reason


def test_learned_footprints_count_with_a_margin_and_measured_costs() -> None:
    books = Books()
    live: dict[str, dict[str, int]] = {}
    learned = Learned(books, lambda m: live.get(m, {}))
    t = table({"a": {"ram": 100}, "b": {}}, {"ram": 1000}, learned)
    books.record_run("a", {"ram": 200})
    assert t.planned("a") == {"ram": 220}
    live["b"] = {"ram": 50, "vram": 7}
    assert t.measured("b") == {"ram": 50, "vram": 7}
    assert t.planned("b") == {"ram": 55, "vram": 8}
    off = table({"a": {"ram": 100}}, {"ram": 1000}, learned, learn=False)
    assert off.planned("a") == {"ram": 100}
    costs = EvictCosts("measured", books)
    assert costs.cost("a") == 1.0
    for seconds in (3.0, 1.0, 2.0):
        books.record_load("a", seconds)
    assert costs.cost("a") == 2.0 and costs.scaled(["a"]) == {"a": 2 * COST_SCALE}


def test_measured_vram_counts_on_the_device_for_a_model_with_devices() -> None:
    books = Books()
    books.record_run("m", {"vram": 10})
    t = table(
        {"m": {"gpu": 5}},
        {"gpu0": 24, "gpu1": 24},
        Learned(books),
        devices={"m": ("gpu0", "gpu1")},
    )
    foot = t.footprint("m")
    assert foot.on_device == 11 and foot.devices == ("gpu0", "gpu1")
    assert t.in_use(["m"]) == {"gpu0": 11, "gpu1": 0}


BASE = """
models:
  a: {cmd: "srv ${PORT}", resources: {ram: 4GiB}}
  b: {cmd: "srv ${PORT}", resources: {ram: 4GiB}}
  c: {cmd: "srv ${PORT}", resources: {ram: 4GiB}}
resources:
  capacity: {ram: 10GiB}
"""


def test_group_with_a_capacity_also_evicts_outside_the_group_and_says_so() -> None:
    loaded = load_config_text(
        BASE
        + """
groups:
  g1: {swap: false, exclusive: false, members: [a, b]}
  g2: {swap: false, exclusive: false, members: [c]}
"""
    )
    swapper = swapper_for(loaded)
    ev = swapper.eviction_for("c", ["a", "b"], Usage(last_used={"a": 1.0, "b": 2.0}))
    assert ev.evict == ("a",)
    assert "the group's choice would not fit: also evicts a outside the group" in ev.detail


def test_persistent_groups_are_never_evicted_for_room() -> None:
    loaded = load_config_text(
        BASE
        + """
groups:
  g1: {swap: false, exclusive: false, persistent: true, members: [a, b]}
  g2: {swap: false, exclusive: false, members: [c]}
"""
    )
    ev = swapper_for(loaded).eviction_for("c", ["a", "b"])
    assert ev.refuse.startswith("c cannot run: it needs 4GiB of ram, capacity is 10GiB")
    assert "a, b (never evicted) hold 8GiB" in ev.refuse


def test_budget_router_is_built_from_the_config() -> None:
    loaded = load_config_text(BASE + "routing:\n  router:\n    use: budget\n")
    swapper = swapper_for(loaded)
    assert isinstance(swapper, BudgetSwapper)
    assert swapper.eviction_for("c", ["a", "b"]).evict == ("a",)
    t = footprint_table(loaded)
    assert t is not None and t.in_use(["a", "b"]) == {"ram": 8 * GiB}
    assert (
        "b" == swapper.eviction_for("c", ["a", "b"], Usage(last_used={"a": 2.0, "b": 1.0})).evict[0]
    )


def test_matrix_with_a_capacity_keeps_only_what_fits_and_refuses_what_never_fits() -> None:
    loaded = load_config_text(
        """
models:
  a: {cmd: "srv ${PORT}", resources: {ram: 4GiB}}
  b: {cmd: "srv ${PORT}", resources: {ram: 4GiB}}
  c: {cmd: "srv ${PORT}", resources: {ram: 4GiB}}
resources:
  capacity: {ram: 10GiB}
routing:
  router:
    use: matrix
    settings:
      matrix:
        sets:
          all: "a & b & c"
"""
    )
    swapper = swapper_for(loaded)
    assert len(swapper.eviction_for("c", ["a", "b"]).evict) == 1
    assert swapper.eviction_for("b", ["a"]).evict == ()


def test_explain_says_what_a_budget_decision_needs_frees_and_costs() -> None:
    d = Driver(worked_example(), ["a", "b", "c", "d"])
    serve(d, "a")
    serve(d, "b")
    x = explain(d.sched, "c", d.facts())
    assert (x.verdict, x.evict, x.cost) == ("swap", ("a",), 1)
    assert x.reason == (
        "load c evicting a; needs ram 4GiB, free ram 2GiB; evicts a (frees ram 4GiB); cost 1"
    )
    big = table({"big": {"ram": 12 * GiB}}, {"ram": 10 * GiB})
    d = Driver(BudgetSwapper(big, EvictCosts("uniform"), ["big"]), ["big"])
    x = explain(d.sched, "big", d.facts())
    assert x.verdict == "refuse" and "needs 12GiB of ram, capacity is 10GiB" in x.reason
