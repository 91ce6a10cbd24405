"""The budget planner: examples, then properties against a brute force over every subset."""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swapd.router.budget import NOTHING, Footprint, Plan, Shortage, Situation, plan
from tests.unit.router.harness import node_budget

GiB = 1 << 30


def worked(target: str, running: Sequence[str], recency: Sequence[str]) -> Plan:
    """The README's example: ram 10 GiB; a, b, c take 4 GiB, d 8 GiB; uniform costs."""
    footprints = {m: Footprint({"ram": 4 * GiB}) for m in "abc"}
    footprints["d"] = Footprint({"ram": 8 * GiB})
    return plan(
        Situation(target, running, footprints, {"ram": 10 * GiB}, recency=recency, order="abcd")
    )


def test_the_worked_example() -> None:
    assert worked("a", [], []).evict == ()
    assert worked("b", ["a"], ["a"]).evict == ()
    c = worked("c", ["a", "b"], ["a", "b"])
    assert (c.kind, c.evict, c.cost) == ("fit", ("a",), 1), "a is the least recently used"
    assert c.need == {"ram": 4 * GiB} and c.free == {"ram": 2 * GiB}
    assert c.freed == {"a": {"ram": 4 * GiB}}
    assert worked("c", ["a", "b"], ["b", "a"]).evict == ("b",), "now b is"
    d = worked("d", ["b", "c"], ["b", "c"])
    assert (d.evict, d.cost) == (("b", "c"), 2)
    assert worked("a", ["d"], ["d"]).evict == ("d",)


def test_a_running_target_needs_nothing_and_keeps_its_device() -> None:
    foot = {"t": Footprint({}, 5, ("g0", "g1"))}
    p = plan(Situation("t", ["t"], foot, {"g0": 1, "g1": 1}, placed={"t": "g1"}))
    assert (p.kind, p.device, p.evict) == ("fit", "g1", ())


def test_cannot_fit_names_the_resource_needed_and_capacity() -> None:
    foot = {"t": Footprint({"vram": 30 * GiB, "ram": GiB})}
    p = plan(Situation("t", ["x"], foot, {"vram": 24 * GiB, "ram": 64 * GiB}))
    assert p.kind == "never" and p.shortage == Shortage("vram", 30 * GiB, 24 * GiB)
    foot = {"t": Footprint({}, 20 * GiB, ("g0", "g1"))}
    p = plan(Situation("t", [], foot, {"g0": 16 * GiB, "g1": 12 * GiB}))
    assert p.shortage == Shortage("g0", 20 * GiB, 16 * GiB, "g0"), "the largest device is named"


def test_busy_models_are_never_evicted_and_make_it_wait_when_only_they_stand_in_the_way() -> None:
    foot = {m: Footprint({"ram": 4}) for m in "abt"}
    cap = {"ram": 8}
    p = plan(Situation("t", ["a", "b"], foot, cap, busy=frozenset({"a"})))
    assert (p.kind, p.evict) == ("fit", ("b",))
    p = plan(Situation("t", ["a", "b"], foot, cap, busy=frozenset({"a", "b"})))
    assert p.kind == "wait" and p.evict == ("a",) and p.wait_for == ("a",)


def test_the_cheapest_set_wins_then_the_fewest_models() -> None:
    foot = {"t": Footprint({"ram": 6}), "a": Footprint({"ram": 6}), "b": Footprint({"ram": 3})}
    foot["c"] = Footprint({"ram": 3})
    cap = {"ram": 12}
    p = plan(Situation("t", ["a", "b", "c"], foot, cap, costs={"a": 5, "b": 1, "c": 1}))
    assert (p.evict, p.cost) == (("b", "c"), 2)
    p = plan(Situation("t", ["a", "b", "c"], foot, cap, costs={"a": 2, "b": 1, "c": 1}))
    assert (p.evict, p.cost) == (("a",), 2), "same cost: one model rather than two"


def test_the_device_where_room_is_cheapest_then_the_one_with_most_free() -> None:
    foot = {
        "t": Footprint({}, 10, ("g0", "g1")),
        "x": Footprint({}, 8, ("g0", "g1")),
        "y": Footprint({}, 4, ("g0", "g1")),
    }
    cap = {"g0": 16, "g1": 16}
    p = plan(Situation("t", ["x", "y"], foot, cap, placed={"x": "g0", "y": "g1"}))
    assert (p.device, p.evict) == ("g1", ()), "g1 has room"
    p = plan(Situation("t", ["x"], foot, cap, placed={"x": "g1"}))
    assert p.device == "g0"
    p = plan(Situation("t", [], foot, cap))
    assert p.device == "g0", "a tie goes to the first device"
    foot["t"] = Footprint({}, 14, ("g0", "g1"))
    p = plan(Situation("t", ["x", "y"], foot, cap, placed={"x": "g0", "y": "g1"}))
    assert (p.device, p.evict) == ("g1", ("y",)), "same cost: g1 has more free"


def test_resources_the_target_does_not_take_are_not_its_concern() -> None:
    foot = {"t": Footprint({"ram": 1}), "a": Footprint({"vram": 30})}
    p = plan(Situation("t", ["a"], foot, {"ram": 4, "vram": 24}))
    assert (p.kind, p.evict) == ("fit", ())


# ----------------------------------------------------------- properties

MODELS = [f"m{i}" for i in range(7)]
RESOURCES = ["r0", "r1"]
DEVICES = ["d0", "d1", "d2"]


@st.composite
def situations(draw: st.DrawFn, max_running: int = 6) -> Situation:
    """Mostly tight: every model takes something, capacities hold a few models."""
    capacity = {r: draw(st.integers(4, 14)) for r in RESOURCES}
    capacity |= {d: draw(st.integers(4, 14)) for d in DEVICES}
    footprints: dict[str, Footprint] = {}
    for m in MODELS:
        if m != "m0" and not draw(st.integers(0, 7)):
            continue  # a model nothing is known of: it takes nothing
        kinds = st.sampled_from(RESOURCES + DEVICES[:1])
        chosen = draw(st.lists(kinds, unique=True, min_size=1, max_size=2))
        amounts = {r: draw(st.integers(0, 9)) for r in chosen}
        devices: tuple[str, ...] = ()
        if draw(st.booleans()):
            devices = tuple(draw(st.lists(st.sampled_from(DEVICES), unique=True, min_size=1)))
        footprints[m] = Footprint(amounts, draw(st.integers(1, 9)) if devices else 0, devices)
    target = draw(st.sampled_from(MODELS))
    others = [m for m in MODELS if m != target]
    running = draw(st.lists(st.sampled_from(others), unique=True, max_size=max_running))
    if not draw(st.integers(0, 9)):
        running.insert(draw(st.integers(0, len(running))), target)
    placed = {}
    for m in running:
        foot = footprints.get(m, NOTHING)
        if foot.devices and draw(st.integers(0, 3)):
            placed[m] = draw(st.sampled_from(foot.devices))
    return Situation(
        target=target,
        running=running,
        footprints=footprints,
        capacity=capacity,
        costs={}
        if draw(st.booleans())  # uniform: ties everywhere, for the tie rules
        else {m: draw(st.integers(0, 4)) for m in MODELS if draw(st.booleans())},
        busy=frozenset(draw(st.lists(st.sampled_from(MODELS), unique=True, max_size=3))),
        keep=frozenset(draw(st.lists(st.sampled_from(MODELS), unique=True, max_size=2))),
        placed=placed,
        recency=draw(st.lists(st.sampled_from(MODELS), unique=True, max_size=4)),
        order=draw(st.permutations(MODELS)),
        default_cost=draw(st.integers(1, 3)),
    )


def where(s: Situation, model: str) -> str | None:
    foot = s.footprints.get(model, NOTHING)
    if not foot.devices:
        return None
    device = s.placed.get(model)
    return device if device in foot.devices else foot.devices[0]


def needs(s: Situation, device: str | None) -> dict[str, int]:
    foot = s.footprints.get(s.target, NOTHING)
    out = {r: a for r, a in foot.amounts.items() if a > 0 and r in s.capacity}
    if device is not None and foot.on_device > 0:
        out[device] = out.get(device, 0) + foot.on_device
    return out


def load_of(s: Situation, models: Sequence[str]) -> dict[str, int]:
    total: dict[str, int] = {}
    for m in models:
        foot = s.footprints.get(m, NOTHING)
        for r, a in foot.amounts.items():
            total[r] = total.get(r, 0) + a
        device = where(s, m)
        if device is not None:
            total[device] = total.get(device, 0) + foot.on_device
    return total


def fits(s: Situation, device: str | None, evict: Sequence[str]) -> bool:
    staying = [m for m in dict.fromkeys(s.running) if m != s.target and m not in evict]
    load = load_of(s, staying)
    return all(load.get(r, 0) + a <= s.capacity[r] for r, a in needs(s, device).items())


def brute(s: Situation) -> tuple[str, str | None, frozenset[str]]:
    """(kind, device, evict) by trying every subset on every device (the rules, spelt out)."""
    foot = s.footprints.get(s.target, NOTHING)
    if s.target in s.running:
        return "fit", where(s, s.target), frozenset()
    recency = {m: i for i, m in enumerate(s.recency)}
    order = {m: i for i, m in enumerate(s.order)}
    others = sorted(
        (m for m in dict.fromkeys(s.running) if m != s.target),
        key=lambda m: (recency.get(m, -1), order.get(m, len(order)), m),
    )
    rank = {m: i for i, m in enumerate(others)}
    devices: list[str | None] = list(foot.devices) or [None]
    usable = [d for d in devices if all(a <= s.capacity[r] for r, a in needs(s, d).items())]
    if not usable:
        return "never", None, frozenset()
    for kind, pool in (
        ("fit", [m for m in others if m not in s.busy and m not in s.keep]),
        ("wait", [m for m in others if m not in s.keep]),
    ):
        best: tuple[object, ...] | None = None
        answer: tuple[str | None, frozenset[str]] | None = None
        for pos, device in enumerate(devices):
            if device not in usable:
                continue
            free = 0 if device is None else s.capacity[device] - load_of(s, others).get(device, 0)
            for size in range(len(pool) + 1):
                for subset in itertools.combinations(pool, size):
                    if not fits(s, device, subset):
                        continue
                    cost = sum(max(0, s.costs.get(m, s.default_cost)) for m in subset)
                    key = (cost, -free, size, tuple(sorted(rank[m] for m in subset)), pos)
                    if best is None or key < best:
                        best, answer = key, (device, frozenset(subset))
        if answer is not None:
            return kind, answer[0], answer[1]
    return "never", None, frozenset()


@settings(max_examples=300, deadline=None)
@given(situations())
def test_the_plan_is_the_brute_force_optimum(s: Situation) -> None:
    p = plan(s)
    kind, device, evict = brute(s)
    assert p.exhaustive
    assert (p.kind, p.device, frozenset(p.evict)) == (kind, device, evict)


@settings(max_examples=200, deadline=None)
@given(situations())
def test_a_plan_fits_never_evicts_a_busy_model_and_costs_what_it_says(s: Situation) -> None:
    p = plan(s)
    if p.kind == "never":
        shortage = p.shortage
        assert shortage is not None
        assert shortage.needed + shortage.held > shortage.capacity
        assert set(shortage.beside) <= s.keep
        return
    if s.target in s.running:
        assert (p.kind, p.evict) == ("fit", ())
        return
    assert fits(s, p.device, p.evict)
    assert s.target not in p.evict and set(p.evict) <= set(s.running)
    assert not set(p.evict) & s.keep
    assert p.cost == sum(max(0, s.costs.get(m, s.default_cost)) for m in p.evict)
    if p.kind == "fit":
        assert not set(p.evict) & s.busy and p.wait_for == ()
    else:
        assert p.wait_for and set(p.wait_for) == set(p.evict) & s.busy
    assert list(p.evict) == [m for m in dict.fromkeys(s.running) if m in p.evict]


@settings(max_examples=150, deadline=None)
@given(situations(), st.randoms(use_true_random=False))
def test_the_same_inputs_give_the_same_answer_in_any_order(
    s: Situation, rnd: random.Random
) -> None:
    first = plan(s)
    assert plan(s) == first
    running = list(s.running)
    rnd.shuffle(running)
    footprints = dict(rnd.sample(sorted(s.footprints.items()), len(s.footprints)))
    shuffled = plan(dataclasses.replace(s, running=running, footprints=footprints))
    assert (shuffled.kind, shuffled.device, set(shuffled.evict)) == (
        first.kind,
        first.device,
        set(first.evict),
    )


def ladder(running: int, devices: int, seed: int) -> Situation:
    """`running` models spread over `devices` GPUs of 24 GiB, all in 64 GiB of ram."""
    rnd = random.Random(seed)
    names = [f"m{i:02d}" for i in range(running)]
    gpus = tuple(f"gpu{i}" for i in range(devices))
    footprints: dict[str, Footprint] = {}
    placed: dict[str, str] = {}
    load = dict.fromkeys(gpus, 0)
    for i, m in enumerate(names):
        size = rnd.randint(1, 5) * GiB
        gpu = gpus[i % devices]
        load[gpu] += size
        footprints[m] = Footprint({"ram": rnd.randint(1, 3) * GiB}, size, gpus)
        placed[m] = gpu
    footprints["t"] = Footprint({"ram": 6 * GiB}, 18 * GiB, gpus)
    ram = sum(f.amounts["ram"] for f in footprints.values()) - 4 * GiB
    capacity = {"ram": ram, **dict.fromkeys(gpus, max(load.values()) + 2 * GiB)}
    return Situation(
        "t",
        names,
        footprints,
        capacity,
        costs={m: rnd.randint(500, 5000) for m in names},
        busy=frozenset(rnd.sample(names, 3)),
        placed=placed,
        recency=rnd.sample(names, len(names)),
        order=names,
    )


@pytest.mark.parametrize("seed", range(5))
def test_thirty_models_on_four_devices_are_searched_to_the_end(seed: int) -> None:
    p = plan(ladder(30, 4, seed))
    assert p.kind == "fit" and p.exhaustive and p.device is not None


@settings(max_examples=100, deadline=None)
@given(situations())
def test_over_its_budget_the_search_keeps_a_set_that_fits(s: Situation) -> None:
    with node_budget(1):
        p = plan(s)
    if p.kind != "never" and s.target not in s.running:
        assert fits(s, p.device, p.evict)
        assert p.kind == "wait" or not set(p.evict) & s.busy
