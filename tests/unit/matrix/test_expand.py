"""Bounded expansion for display, on llama-swap's examples."""

from __future__ import annotations

import pytest

from swapd.matrix import compile_matrix

MODELS = list("abcdegqv")


def expand_one(dsl: str, limit: int | None = 1000) -> list[list[str]]:
    return compile_matrix([("s", dsl)], {}, {}, MODELS).expand(limit).sets["s"]


@pytest.mark.parametrize(
    ("dsl", "combinations"),
    [
        ("a", [["a"]]),
        ("a & b", [["a", "b"]]),
        ("a | b", [["a"], ["b"]]),
        ("(a|b)&(c|d)", [["a", "c"], ["a", "d"], ["b", "c"], ["b", "d"]]),
        ("a & a", [["a"]]),
        ("(g|q)&v&e", [["e", "g", "v"], ["e", "q", "v"]]),
        ("b & a", [["a", "b"]]),
        ("a | b & c", [["a"], ["b", "c"]]),
        ("a | a", [["a"], ["a"]]),
        ("(a | b) & (a | c)", [["a"], ["a", "c"], ["a", "b"], ["b", "c"]]),
    ],
)
def test_spec_examples(dsl: str, combinations: list[list[str]]):
    assert expand_one(dsl) == combinations


def test_vars_map_to_model_ids_and_refs_inline():
    matrix = compile_matrix(
        [("with_tts", "+llms & v"), ("llms", "g | q")],
        {"g": "gemma", "q": "qwen", "v": "voxtral"},
        {},
        ["gemma", "qwen", "voxtral"],
    )
    expansion = matrix.expand()
    assert list(expansion.sets) == ["with_tts", "llms"]  # file order
    assert expansion.sets == {
        "with_tts": [["gemma", "voxtral"], ["qwen", "voxtral"]],
        "llms": [["gemma"], ["qwen"]],
    }
    assert expansion.truncated is False
    assert expansion.as_dict() == {"sets": expansion.sets, "truncated": False}


def test_limit_is_per_set_and_sets_truncated():
    matrix = compile_matrix([("big", "(a|b|c)&(d|e)"), ("small", "a")], {}, {}, MODELS)
    expansion = matrix.expand(limit=4)
    assert expansion.sets == {
        "big": [["a", "d"], ["a", "e"], ["b", "d"], ["b", "e"]],
        "small": [["a"]],
    }
    assert expansion.truncated is True
    assert matrix.expand(limit=6).truncated is False
    assert matrix.expand(limit=None).truncated is False
    assert matrix.expand(limit=0).sets == {"big": [], "small": []}


def test_negative_limit_rejected():
    matrix = compile_matrix([("s", "a")], {}, {}, MODELS)
    with pytest.raises(ValueError, match="limit"):
        matrix.expand(-1)


def test_huge_matrix_expands_only_what_is_asked():
    models = [f"m{g}_{a}" for g in range(10) for a in range(10)]
    dsl = " & ".join("(" + " | ".join(f"m{g}_{a}" for a in range(10)) + ")" for g in range(10))
    matrix = compile_matrix([("big", dsl)], {}, {}, models)
    expansion = matrix.expand(limit=12)  # 10^10 combinations exist
    combos = expansion.sets["big"]
    assert expansion.truncated
    assert len(combos) == 12
    assert combos[0] == [f"m{g}_0" for g in range(10)]
    assert combos[11] == [*(f"m{g}_0" for g in range(8)), "m8_1", "m9_1"]
