"""`_maximal_of`, the antichain filter under every solver query (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from swapd.matrix.solver import _maximal_of


def by_definition(masks: list[int]) -> set[int]:
    distinct = set(masks)
    return {m for m in distinct if not any(m != o and m | o == o for o in distinct)}


@given(st.lists(st.integers(0, 2**10 - 1), max_size=60))
def test_keeps_exactly_the_masks_no_other_contains(masks: list[int]) -> None:
    kept = _maximal_of(masks)
    assert set(kept) == by_definition(masks)
    assert len(kept) == len(set(kept))
    assert [m.bit_count() for m in kept] == sorted((m.bit_count() for m in kept), reverse=True)


def test_one_size_antichain_is_kept_whole() -> None:
    """2^12 choices of one model per pair: none contains another."""
    masks = [0]
    for pair in range(12):
        masks = [m | 1 << (2 * pair + side) for m in masks for side in (0, 1)]
    assert len(_maximal_of([*masks, 0b1, 0])) == 2**12  # a part of one, and nothing
