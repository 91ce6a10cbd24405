"""The matrix swapper over the real solver: llama-swap's worked examples."""

from __future__ import annotations

import logging

import pytest

from swapd.matrix import compile_matrix
from swapd.router.matrix_swapper import MatrixSwapper
from swapd.router.swapper import Eviction, Swapper
from tests.unit.router.harness import Driver

FULL = dict(
    sets=[
        ("standard", "(g | q | m) & v"),
        ("with_rerank", "(g | q) & v & e"),
        ("creative", "(g | q) & sd"),
        ("full", "L"),
    ],
    vars={},
    evict_costs={"v": 50, "L": 30},
    models=["g", "q", "m", "v", "e", "sd", "L"],
)


def swapper(sets, evict_costs=None, vars_=None, models=None) -> MatrixSwapper:
    names = models or sorted(
        {
            c
            for _, dsl in sets
            for c in dsl.replace("(", " ")
            .replace(")", " ")
            .replace("&", " ")
            .replace("|", " ")
            .split()
            if not c.startswith("+")
        }
    )
    return MatrixSwapper(compile_matrix(sets, vars_ or {}, evict_costs or {}, names))


CASES = [
    # (sets, costs, running, target, evict, set)
    ([("first", "a & b"), ("second", "a & c")], {}, [], "a", (), "first"),
    (
        [("a_with_c", "a & c"), ("a_with_b", "a & b")],
        {"b": 10, "c": 1},
        ["b", "c"],
        "a",
        ("c",),
        "a_with_b",
    ),
    ([("s_a", "a"), ("s_b", "b")], {}, ["a"], "b", ("a",), "s_b"),
    ([("s_ab", "a & b")], {}, ["a"], "b", (), "s_ab"),
    ([("P", "(x & t) | +Q"), ("Q", "t & y")], {}, ["x", "y"], "t", ("x",), "Q"),
]


@pytest.mark.parametrize(("sets", "costs", "running", "target", "evict", "set_"), CASES)
def test_worked_examples(sets, costs, running, target, evict, set_):
    result = swapper(sets, costs).eviction_for(target, running)
    assert result.evict == evict and result.set == set_


@pytest.mark.parametrize(
    ("running", "target", "evict", "set_", "cost"),
    [
        (["g", "v"], "q", ("g",), "standard", 1),
        (["g", "v"], "sd", ("v",), "creative", 50),
        (["e", "q", "v"], "g", ("q",), "with_rerank", 1),
        (["v"], "L", ("v",), "full", 50),
    ],
)
def test_790_full_scenario(running, target, evict, set_, cost):
    s = MatrixSwapper(compile_matrix(**FULL))
    assert s.eviction_for(target, running) == Eviction(evict=evict, set=set_, cost=cost)


def test_target_in_no_set_evicts_everything():
    s = swapper([("known", "a & b")], models=["a", "b", "missing"])
    assert s.eviction_for("missing", ["a", "b"]).evict == ("a", "b")


def test_is_a_swapper_and_logs_only_on_swap_start(caplog):
    s = MatrixSwapper(compile_matrix(**FULL))
    assert isinstance(s, Swapper)
    with caplog.at_level(logging.DEBUG, logger="swapd.router.matrix_swapper"):
        s.eviction_for("sd", ["g", "v"])
        assert caplog.records == []
        s.on_swap_start("sd", ["g", "v"])
        s.on_swap_start("g", [])
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == (
        "matrix: model=sd set=creative dsl=\"(g | q) & sd\" evict=['v'] target=['g', 'sd'] cost=50"
    )
    assert messages[1] == "matrix: model=g starting (no models running)"


def test_a_query_over_the_solver_budget_is_logged_and_runs_the_target_alone(caplog):
    groups = 16
    names = [f"{c}{i}" for i in range(groups) for c in "xy"]
    dsl = "t & " + " & ".join(f"(x{i} | y{i})" for i in range(groups))
    s = MatrixSwapper(compile_matrix([("pairs", dsl)], {}, {}, [*names, "t"]))
    assert s.eviction_for("t", names) == Eviction(evict=tuple(names), set=None, cost=len(names))
    with caplog.at_level(logging.WARNING, logger="swapd.router.matrix_swapper"):
        s.on_swap_start("t", names)
    assert "over the solver's budget" in caplog.records[0].getMessage()


def test_in_flight_targets_make_conflicting_requests_queue_and_coexisting_ones_load():
    """A target being loaded counts as running for the next decision."""
    s = swapper([("pair", "a & b"), ("solo", "c")])
    d = Driver(s, ["a", "b", "c"])
    d.request("a")
    d.request("b")  # may coexist with the loading a: parallel load
    c1 = d.request("c")  # would evict the loading a and b: collides
    assert d.started() == [("a", ()), ("b", ())]
    assert d.queue == [c1]
