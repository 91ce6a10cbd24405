"""Column sorting: a pure function over each row's sort values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from swaptui.widgets.sorting import SortOrder, sort_rows

COLUMNS = ("n", "s")

Row = tuple[float | None, str | None]


@given(
    st.lists(st.tuples(st.none() | st.floats(-1e6, 1e6), st.none() | st.text(max_size=3))),
    st.sampled_from(COLUMNS),
    st.booleans(),
)
def test_sorted_known_values_first_unknowns_last_in_their_order(
    rows: list[Row], column: str, reverse: bool
) -> None:
    index = COLUMNS.index(column)
    out = sort_rows(rows, COLUMNS, lambda row: row, SortOrder(column, reverse))
    assert sorted(out, key=repr) == sorted(rows, key=repr)  # a permutation
    values = [row[index] for row in out]
    known = [v for v in values if v is not None]
    assert values[: len(known)] == known  # unknowns last, either direction
    keys = [v.casefold() if isinstance(v, str) else v for v in known]
    assert keys == sorted(keys, reverse=reverse)  # type: ignore[type-var]
    assert [row for row in out if row[index] is None] == [row for row in rows if row[index] is None]


def test_no_column_keeps_the_views_own_order() -> None:
    rows = [(2.0, "b"), (1.0, "a")]
    assert sort_rows(rows, COLUMNS, lambda row: row, SortOrder()) == rows


def test_cycling_visits_every_column_then_the_views_own_order() -> None:
    order = SortOrder()
    seen = []
    for _ in range(3):
        order = order.cycle(COLUMNS)
        seen.append(order.column)
    assert seen == ["n", "s", None]
    assert SortOrder("n").by("n") == SortOrder("n", True)
    assert SortOrder("n", True).by("s") == SortOrder("s", False)
    assert SortOrder("s", True).describe({"s": "State"}) == "State ▼"
