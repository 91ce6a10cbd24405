"""The solver on llama-swap's worked examples (docs/compat.md, Swap matrix)."""

from __future__ import annotations

import pytest

from swapd.matrix import Solution, compile_matrix

FULL_SCENARIO = dict(
    sets=[
        ("standard", "(g|q|m)&v"),
        ("with_rerank", "(g|q)&v&e"),
        ("creative", "(g|q)&sd"),
        ("full", "L"),
    ],
    vars={"g": "g", "q": "q", "m": "m", "v": "v", "e": "e", "L": "L"},
    evict_costs={"v": 50, "L": 30},
    models=["g", "q", "m", "v", "e", "L", "sd"],
)


def solve(sets, target, running, *, costs=None, vars=None, models=None) -> Solution:
    if models is None:
        models = sorted({ch for _, dsl in sets for ch in dsl if ch.isalpha()} | {target, *running})
    matrix = compile_matrix(sets, vars or {}, costs or {}, models)
    return matrix.solve(target, running)


def test_tie_goes_to_the_set_defined_first():
    result = solve([("first", "a&b"), ("second", "a&c")], "a", [])
    assert result == Solution("a", "first", ("a", "b"), (), 0)


def test_evict_costs_preferred():
    result = solve(
        [("a_with_c", "a&c"), ("a_with_b", "a&b")], "a", ["b", "c"], costs={"b": 10, "c": 1}
    )
    assert (result.set, result.evict, result.cost) == ("a_with_b", ("c",), 1)


def test_swap_evicts_conflicting():
    result = solve([("s_a", "a"), ("s_b", "b")], "b", ["a"])
    assert (result.set, result.evict, result.cost) == ("s_b", ("a",), 1)


def test_coexist_in_set():
    result = solve([("s_ab", "a&b")], "b", ["a"])
    assert result == Solution("b", "s_ab", ("a", "b"), (), 0)


def test_validate_matrix_basic():
    matrix = compile_matrix(
        [("standard", "(g | q | m) & v"), ("full", "L")],
        {"g": "gemma", "q": "qwen", "m": "mistral", "v": "voxtral", "L": "llama70B"},
        {"v": 50, "L": 30},
        ["gemma", "qwen", "mistral", "voxtral", "llama70B"],
    )
    result = matrix.solve("llama70B", ["voxtral"])
    assert result == Solution("llama70B", "full", ("llama70B",), ("voxtral",), 50)


def test_with_ref():
    matrix = compile_matrix(
        [("llms", "g|q|m"), ("with_tts", "+llms&v"), ("mega", "+with_tts&e")],
        {"g": "gemma", "q": "qwen", "m": "mistral", "v": "voxtral", "e": "reranker"},
        {},
        ["gemma", "qwen", "mistral", "voxtral", "reranker"],
    )
    result = matrix.solve("reranker", ["gemma", "voxtral"])
    assert result == Solution("reranker", "mega", ("gemma", "reranker", "voxtral"), (), 0)


def test_dominated_projection():
    result = solve([("preferred", "target&(a|(a&b))")], "target", ["a", "b"])
    assert result == Solution("target", "preferred", ("a", "b", "target"), (), 0)


def test_target_absent_runs_alone():
    result = solve([("known", "a&b")], "missing", ["a", "b"])
    assert result == Solution("missing", None, ("missing",), ("a", "b"), 2)


def test_target_absent_cost_is_the_real_eviction_cost():
    result = solve([("known", "a&b")], "missing", ["a", "b"], costs={"a": 5})
    assert (result.set, result.evict, result.cost) == (None, ("a", "b"), 6)


@pytest.mark.parametrize(
    ("running", "target", "expected"),
    [
        (["g", "v"], "q", Solution("q", "standard", ("q", "v"), ("g",), 1)),
        (["g", "v"], "sd", Solution("sd", "creative", ("g", "sd"), ("v",), 50)),
        (["e", "q", "v"], "g", Solution("g", "with_rerank", ("e", "g", "v"), ("q",), 1)),
    ],
)
def test_full_scenario(running: list[str], target: str, expected: Solution):
    matrix = compile_matrix(**FULL_SCENARIO)
    assert matrix.solve(target, running) == expected


def test_referenced_set_is_evaluated_first():
    result = solve([("P", "(x&t)|+Q"), ("Q", "t&y")], "t", ["x", "y"])
    assert (result.set, result.evict, result.combination) == ("Q", ("x",), ("t", "y"))


def test_derived_06_keeps_file_order():
    # Latest llama-swap re-sorts set names (creative first) and evicts v; file order evicts sd.
    sets = [
        ("standard", "(g|q|m)&v"),
        ("with_rerank", "(g|q)&v&e"),
        ("creative", "(g|q)&sd"),
        ("full", "L"),
    ]
    result = solve(sets, "g", ["v", "sd"])
    assert (result.set, result.evict, result.cost) == ("standard", ("sd",), 1)


def test_derived_01_first_expanded_combination_wins():
    # v790's rule; latest's frontier would keep [b, c, t] and evict a.
    result = solve([("s", "t & (a | c | (a & b)) & b")], "t", ["a", "b", "c"])
    assert result == Solution("t", "s", ("a", "b", "t"), ("c",), 1)


def test_matrix_28_first_expanded_combination_wins():
    # latest keeps a (evicting b, c, d); the first expanded combination keeps d.
    result = solve([("s", "(d | a | (d & e)) & e")], "e", ["a", "b", "c", "d"])
    assert result == Solution("e", "s", ("d", "e"), ("a", "b", "c"), 3)


def test_target_running_evicts_nothing_even_outside_every_set():
    result = solve([("s_a", "a"), ("s_b", "b")], "a", ["a", "b"])
    assert result == Solution("a", None, ("a", "b"), (), 0)


def test_target_running_reports_first_set_holding_all_running():
    result = solve([("one", "a & c"), ("two", "(a | b) & (c | d)")], "a", ["c", "a"])
    assert result == Solution("a", "one", ("a", "c"), (), 0)
    result = solve([("one", "a & c"), ("two", "(b | a) & (d | c) & e")], "a", ["d", "a"])
    assert result == Solution("a", "two", ("a", "d", "e"), (), 0)


def test_running_model_in_no_set_is_always_evicted():
    result = solve([("s", "a & b")], "a", ["z", "b"], costs={"z": 7})
    assert result == Solution("a", "s", ("a", "b"), ("z",), 7)


def test_running_duplicates_and_order_kept():
    result = solve([("s", "a"), ("t", "b")], "a", ["c", "b", "c"])
    assert result == Solution("a", "s", ("a",), ("c", "b"), 2)


def test_combination_includes_models_that_are_not_running():
    result = solve([("s", "(x | y) & t & (p | q)")], "t", ["q"])
    assert result == Solution("t", "s", ("q", "t", "x"), (), 0)


def test_empty_running_picks_first_set_with_target_and_its_first_combination():
    result = solve([("s", "a | b & c"), ("u", "c")], "c", [])
    assert result == Solution("c", "s", ("b", "c"), (), 0)


def test_combination_is_sorted_by_code_point():
    result = solve([("s", "a & L")], "a", [])
    assert result.combination == ("L", "a")


def test_as_dict_shape():
    result = solve([("s", "a&b")], "x", ["a"], models=["a", "b", "x"])
    assert result.as_dict() == {
        "target": "x",
        "set": None,
        "combination": ["x"],
        "evict": ["a"],
        "cost": 1,
    }


def test_ten_groups_of_ten_solved_symbolically():
    models = [f"m{g}_{a}" for g in range(10) for a in range(10)]
    dsl = " & ".join("(" + " | ".join(f"m{g}_{a}" for a in range(10)) + ")" for g in range(10))
    matrix = compile_matrix([("big", dsl)], {}, {"m3_7": 5}, models)
    result = matrix.solve("m0_5", ["m0_1", "m3_2", "m3_7", "m3_9", "m9_9", "m9_0"])
    assert result.evict == ("m0_1", "m3_2", "m3_9", "m9_9")
    assert result.cost == 4
    assert result.combination == (
        "m0_5",
        "m1_0",
        "m2_0",
        "m3_7",
        "m4_0",
        "m5_0",
        "m6_0",
        "m7_0",
        "m8_0",
        "m9_0",
    )


def doubling_chain(length: int) -> list[tuple[str, str]]:
    """s0 = a|b|c, s_i = +s_{i-1} & +s_{i-1}: s_i denotes 3^(2^i) tuples."""
    sets = [("s0", "a | b | c")]
    sets += [(f"s{i}", f"+s{i - 1} & +s{i - 1}") for i in range(1, length)]
    return sets


def test_deep_shared_references_stay_cheap():
    matrix = compile_matrix(
        [*doubling_chain(40), ("last", "+s39 & t")], {}, {}, ["a", "b", "c", "d", "t"]
    )
    assert matrix.solve("t", ["a", "b"]) == Solution("t", "last", ("a", "b", "t"), (), 0)
    assert matrix.solve("t", ["d", "c"]) == Solution("t", "last", ("a", "c", "t"), ("d",), 1)
    assert matrix.solve("a", ["b"]) == Solution("a", "s1", ("a", "b"), (), 0)


def test_deep_shared_references_expand_cheaply():
    matrix = compile_matrix(doubling_chain(40), {}, {}, ["a", "b", "c"])
    expansion = matrix.expand(3)
    assert expansion.truncated
    assert expansion.sets["s39"] == [["a"], ["a", "b"], ["a", "c"]]
    assert expansion.sets["s0"] == [["a"], ["b"], ["c"]]
