"""Compiling a matrix block: validation messages, vars, evict costs, set order."""

from __future__ import annotations

import pytest

from swapd.matrix import MatrixError, MatrixProblem, compile_matrix

MODELS = ["gemma", "qwen", "mistral", "voxtral", "reranker", "llama70B", "sd", "a", "b", "c"]


def problems(
    sets: list[tuple[str, str]],
    vars: dict[str, str] | None = None,
    costs: dict[str, int] | None = None,
    models: list[str] = MODELS,
) -> list[tuple[tuple[str, ...], str]]:
    with pytest.raises(MatrixError) as info:
        compile_matrix(sets, vars or {}, costs or {}, models)
    return [(p.path, p.message) for p in info.value.problems]


def test_no_sets():
    assert problems([]) == [(("sets",), "matrix must define at least one set")]


def test_vars_are_optional_and_model_ids_work_directly():
    matrix = compile_matrix([("s", "gemma & voxtral")], {}, {}, MODELS)
    assert matrix.expand().sets == {"s": [["gemma", "voxtral"]]}


def test_var_shadows_a_model_of_the_same_name():
    matrix = compile_matrix([("s", "a & b")], {"a": "c"}, {}, MODELS)
    assert matrix.expand().sets == {"s": [["b", "c"]]}
    assert matrix.sets_of("a") == ()
    assert matrix.sets_of("c") == ("s",)


@pytest.mark.parametrize("key", ["g_1", "", "x" * 33, "é", "a b", "a+b"])
def test_var_key_pattern(key: str):
    assert problems([("s", "gemma")], {key: "gemma"}) == [
        (
            ("vars", key),
            f"var key \"{key}\" must contain only alphanumeric, '-' or '.' characters "
            "and be 1-32 characters long",
        )
    ]


@pytest.mark.parametrize("key", ["g", "G9", "a.b-c", "x" * 32, "-", "."])
def test_valid_var_keys(key: str):
    compile_matrix([("s", "gemma")], {key: "gemma"}, {}, MODELS)


def test_var_key_pattern_rejects_a_trailing_newline():
    assert problems([("s", "gemma")], {"g\n": "gemma"})[0][0] == ("vars", "g\n")


def test_var_value_must_be_a_model_id_not_an_alias():
    assert problems([("s", "gemma")], {"g": "gemma-alias"}) == [
        (("vars", "g"), 'var key "g" references unknown model "gemma-alias"')
    ]


def test_bad_var_key_and_value_both_reported():
    assert problems([("s", "gemma")], {"g_": "nope"}) == [
        (
            ("vars", "g_"),
            "var key \"g_\" must contain only alphanumeric, '-' or '.' characters "
            "and be 1-32 characters long",
        ),
        (("vars", "g_"), 'var key "g_" references unknown model "nope"'),
    ]


@pytest.mark.parametrize("cost", [0, -1, -50])
def test_evict_cost_must_be_positive(cost: int):
    assert problems([("s", "gemma")], costs={"gemma": cost}) == [
        (("evict_costs", "gemma"), f'evict_cost for "gemma" must be a positive integer, got {cost}')
    ]


def test_evict_cost_key_is_a_var_or_a_model():
    matrix = compile_matrix(
        [("s", "g & qwen")], {"g": "gemma"}, {"g": 5, "qwen": 7, "sd": 2}, MODELS
    )
    assert matrix.evict_costs == {"gemma": 5, "qwen": 7, "sd": 2}
    assert matrix.cost_of("gemma") == 5
    assert matrix.cost_of("mistral") == 1
    assert problems([("s", "gemma")], costs={"alias-of-gemma": 3}) == [
        (("evict_costs", "alias-of-gemma"), 'evict_costs: unknown var or model "alias-of-gemma"')
    ]


def test_evict_cost_var_wins_over_model_of_the_same_name():
    matrix = compile_matrix([("s", "a")], {"a": "c"}, {"a": 9}, MODELS)
    assert matrix.evict_costs == {"c": 9}


def test_evict_cost_keys_resolving_to_one_model():
    assert problems([("s", "gemma")], {"g": "gemma"}, {"g": 2, "gemma": 3}) == [
        (("evict_costs", "gemma"), 'evict_costs: "g" and "gemma" both resolve to model "gemma"')
    ]


@pytest.mark.parametrize(
    ("dsl", "message"),
    [
        ("", 'set "s": empty DSL expression'),
        ("a &", 'set "s": parse: unexpected token ""'),
        ("()", 'set "s": parse: unexpected token ")"'),
        ("(a", 'set "s": parse: missing closing parenthesis'),
        ("a)", 'set "s": parse: unexpected token ")" after expression'),
        ("a b", 'set "s": parse: unexpected token "b" after expression'),
        ("a @ b", "set \"s\": tokenize: unexpected character '@' at position 2"),
        ("+ b", "set \"s\": tokenize: expected set name after '+' at position 1"),
    ],
)
def test_parse_errors(dsl: str, message: str):
    assert problems([("s", dsl)]) == [(("sets", "s"), message)]


def test_unknown_identifiers_once_each_in_order():
    assert problems([("s", "nope & (gemma | alias) & nope")], {"g": "gemma"}) == [
        (("sets", "s"), 'set "s": unknown var or model "nope"'),
        (("sets", "s"), 'set "s": unknown var or model "alias"'),
    ]


def test_undefined_reference():
    assert problems([("s", "gemma & +missing | +missing")]) == [
        (("sets", "s"), 'set "s" references undefined set "missing"')
    ]


def test_names_and_refs_reported_left_to_right():
    assert problems([("s", "+x & nope")]) == [
        (("sets", "s"), 'set "s" references undefined set "x"'),
        (("sets", "s"), 'set "s": unknown var or model "nope"'),
    ]


def test_self_reference_is_a_cycle():
    assert problems([("s", "gemma | +s")]) == [
        (("sets", "s"), 'circular reference detected involving set "s"')
    ]


def test_cycle_names_the_set_met_again():
    assert problems([("p", "+q & a"), ("q", "+r"), ("r", "+q | b")]) == [
        (("sets", "q"), 'circular reference detected involving set "q"')
    ]


def test_two_independent_cycles_both_reported():
    assert problems([("a1", "+a2"), ("a2", "+a1"), ("b1", "+b1 & a")]) == [
        (("sets", "a1"), 'circular reference detected involving set "a1"'),
        (("sets", "b1"), 'circular reference detected involving set "b1"'),
    ]


def test_duplicate_set_name():
    assert problems([("s", "a"), ("s", "b")]) == [
        (("sets", "s"), 'set "s" is defined more than once')
    ]


def test_set_names_are_go_quoted():
    assert problems([('we"ird', "nope")]) == [
        (("sets", 'we"ird'), 'set "we\\"ird": unknown var or model "nope"')
    ]


def test_every_problem_collected_in_check_order():
    with pytest.raises(MatrixError) as info:
        compile_matrix(
            [("one", "a &"), ("two", "+zzz & x"), ("three", "+three")],
            {"bad_key": "a", "x": "ghost"},
            {"a": 0, "nope": 2},
            MODELS,
        )
    assert info.value.problems == [
        MatrixProblem(
            ("vars", "bad_key"),
            "var key \"bad_key\" must contain only alphanumeric, '-' or '.' characters "
            "and be 1-32 characters long",
        ),
        MatrixProblem(("vars", "x"), 'var key "x" references unknown model "ghost"'),
        MatrixProblem(("evict_costs", "a"), 'evict_cost for "a" must be a positive integer, got 0'),
        MatrixProblem(("evict_costs", "nope"), 'evict_costs: unknown var or model "nope"'),
        MatrixProblem(("sets", "one"), 'set "one": parse: unexpected token ""'),
        MatrixProblem(("sets", "two"), 'set "two" references undefined set "zzz"'),
        MatrixProblem(("sets", "three"), 'circular reference detected involving set "three"'),
    ]
    assert str(info.value).splitlines()[0].startswith('matrix: var key "bad_key"')
    assert len(str(info.value).splitlines()) == 7


def test_set_order_references_first():
    matrix = compile_matrix(
        [("mega", "+with_tts & reranker"), ("with_tts", "+llms & voxtral"), ("llms", "gemma|qwen")],
        {},
        {},
        MODELS,
    )
    assert matrix.set_names == ("mega", "with_tts", "llms")
    assert matrix.set_order == ("llms", "with_tts", "mega")


def test_set_order_refs_in_order_of_first_appearance():
    matrix = compile_matrix(
        [("top", "+z & (+y | +x) & +z"), ("x", "a"), ("y", "b"), ("z", "c"), ("w", "a")],
        {},
        {},
        MODELS,
    )
    assert matrix.set_order == ("z", "y", "x", "top", "w")


def test_matrix_accessors():
    matrix = compile_matrix(
        [("standard", "(g|q|m)&v"), ("full", "L")],
        {"g": "gemma", "q": "qwen", "m": "mistral", "v": "voxtral", "L": "llama70B"},
        {"v": 50, "L": 30},
        MODELS,
    )
    assert matrix.dsl("standard") == "(g|q|m)&v"
    assert matrix.sets_of("voxtral") == ("standard",)
    assert matrix.sets_of("sd") == ()
    assert matrix.models == {"gemma", "qwen", "mistral", "voxtral", "llama70B"}
    assert matrix.vars["g"] == "gemma"
    assert matrix.solve("gemma", ["voxtral"]).evict == ()  # one combination holds both
    assert matrix.solve("gemma", ["qwen"]).evict == ("qwen",)  # none does
    assert matrix.solve("sd", []).set is None  # in no set: it runs alone
    assert "standard" in repr(matrix)
