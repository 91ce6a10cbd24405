"""Percentiles: linear between the nearest ranks, whatever the order of the values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.history.stats import between, percentile, rank

values = st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=50)
ps = st.floats(min_value=0, max_value=1)


@pytest.mark.parametrize(
    ("data", "p", "expected"),
    [
        ([1.0, 2.0], 0.5, 1.5),
        ([3.0], 0.95, 3.0),
        ([1.0, 2.0, 3.0, 4.0, 5.0], 0.5, 3.0),
        ([5.0, 1.0, 4.0, 2.0, 3.0], 0.5, 3.0),
        ([1.0, 2.0, 3.0, 4.0, 5.0], 0.95, 4.8),
        ([10.0, 20.0], 0.0, 10.0),
        ([10.0, 20.0], 1.0, 20.0),
    ],
)
def test_known_percentiles(data: list[float], p: float, expected: float) -> None:
    assert percentile(data, p) == pytest.approx(expected)


def test_no_values_no_percentile() -> None:
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError):
        rank(0, 0.5)


@given(values, ps)
def test_a_percentile_lies_within_the_values(data: list[float], p: float) -> None:
    result = percentile(data, p)
    assert result is not None
    assert min(data) <= result <= max(data) or result == pytest.approx(min(data))


@given(values, ps, ps)
def test_percentiles_grow_with_p(data: list[float], p: float, q: float) -> None:
    low, high = sorted((p, q))
    assert percentile(data, low) <= percentile(data, high) + 1e-9  # type: ignore[operator]


@given(st.integers(1, 10_000), ps)
def test_rank_stays_inside(count: int, p: float) -> None:
    index, weight = rank(count, p)
    assert 0 <= index < count and 0 <= weight < 1
    if index == count - 1:
        assert weight == 0


def test_between() -> None:
    assert between(1.0, 3.0, 0.25) == 1.5
    assert between(1.0, None, 0.5) == 1.0
    assert between(1.0, 3.0, 0.0) == 1.0
