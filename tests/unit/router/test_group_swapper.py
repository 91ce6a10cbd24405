"""The group swapper against llama-swap's worked examples (docs/compat.md, Groups)."""

from __future__ import annotations

import pytest

from swapd.router.group_swapper import DEFAULT_GROUP, Group, GroupSwapper
from swapd.router.swapper import Eviction, Swapper
from tests.unit.router.harness import groups

CASES = [
    # (id, groups, running, target, evicted)
    ("1-swap-stops-previous", groups(g=("TTF", "ab")), ["a"], "b", ["a"]),
    ("2-non-swap-no-stop", groups(g=("FFF", "ab")), ["a"], "b", []),
    ("3-cross-group-exclusive", groups(g1=("TTF", "a"), g2=("TTF", "b")), ["a"], "b", ["a"]),
    ("4-cross-non-exclusive", groups(g1=("TFF", "a"), g2=("TFF", "b")), ["a"], "b", []),
    ("5-same-group-serialises", groups(g=("TFF", "ab")), ["a"], "b", ["a"]),
    ("6-persistent-kept", groups(persist=("TFT", "a"), other=("TTF", "b")), ["a"], "b", []),
    ("7-one-way", groups(g1=("TTF", "a"), g2=("TFF", "b")), ["a"], "b", []),
    ("8-one-way-back", groups(g1=("TTF", "a"), g2=("TFF", "b")), ["a", "b"], "a", ["b"]),
    ("9", groups(g1=("TTF", "ac"), g2=("TFF", "b")), ["a", "b"], "c", ["a", "b"]),
    ("10-persistent-swaps-inside", groups(persist=("TFT", "ab")), ["a"], "b", ["a"]),
    ("11", groups(g1=("FTF", "ab"), g2=("TTF", "c")), ["a", "c"], "b", ["c"]),
    (
        "12-default",
        {DEFAULT_GROUP: Group(members=("model1", "model2"))},
        ["model1"],
        "model2",
        ["model1"],
    ),
    (
        "13-persistent-vs-default",
        {
            "forever": Group(members=("model2",), swap=True, exclusive=False, persistent=True),
            DEFAULT_GROUP: Group(members=("model1",)),
        },
        ["model2"],
        "model1",
        [],
    ),
    (
        "14",
        {
            DEFAULT_GROUP: Group(members=("llama", "qwen")),
            "tools": Group(members=("emb", "rerank"), swap=False, exclusive=False, persistent=True),
        },
        ["emb", "llama", "rerank"],
        "qwen",
        ["llama"],
    ),
]


@pytest.mark.parametrize(
    ("groups_", "running", "target", "evicted"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_worked_examples(groups_, running, target, evicted):
    swapper = GroupSwapper(groups_)
    assert list(swapper.eviction_for(target, running).evict) == evicted


def test_result_keeps_running_order_and_skips_target_and_duplicates():
    swapper = GroupSwapper(groups(g=("TTF", "abcd")))
    result = swapper.eviction_for("b", ["a", "b", "c", "c", "d"])
    assert result == Eviction(evict=("a", "c", "d"), set="g", cost=3)


def test_with_default_puts_ungrouped_models_in_one_exclusive_group():
    swapper = GroupSwapper.with_default(groups(tools=("FFT", ["emb"])), ["x", "y", "emb"])
    assert swapper.eviction_for("x", []).set == DEFAULT_GROUP == swapper.eviction_for("y", []).set
    assert swapper.eviction_for("y", ["emb", "x"]).evict == ("x",)
    assert swapper.eviction_for("emb", ["x"]).evict == ()


def test_model_in_no_group_runs_alone():
    swapper = GroupSwapper(groups(g=("FFF", "ab")))
    assert swapper.eviction_for("loner", ["a", "b"]).evict == ("a", "b")


def test_duplicate_membership_is_rejected():
    with pytest.raises(ValueError, match="is in groups"):
        GroupSwapper(groups(g1=("TTF", "a"), g2=("TTF", "a")))


def test_is_a_swapper_and_pure():
    swapper = GroupSwapper(groups(g=("TTF", "ab")))
    assert isinstance(swapper, Swapper)
    first = swapper.eviction_for("b", ["a"])
    swapper.on_swap_start("b", ["a"])
    assert swapper.eviction_for("b", ["a"]) == first
