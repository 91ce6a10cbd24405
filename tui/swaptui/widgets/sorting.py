"""Column sorting shared by the tables: which column, which way, unknowns last.

A table's rows come with one sort value per column (a number, a string, or
None for "unknown"); sorting is a pure function over them, so the order is
tested without Textual. `o` cycles the sort column of the focused table, `O`
flips the direction, a click on a header sorts by that column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

SortValue = str | float | None

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SortOrder:
    """Sort by `column` (None: the view's own order), descending when `reverse`."""

    column: str | None = None
    reverse: bool = False

    def cycle(self, columns: Sequence[str]) -> SortOrder:
        """The next column (after the last: the view's own order again)."""
        if self.column is None:
            return SortOrder(columns[0], self.reverse) if columns else self
        index = columns.index(self.column) if self.column in columns else -1
        if index + 1 >= len(columns):
            return SortOrder(None, False)
        return SortOrder(columns[index + 1], self.reverse)

    def flipped(self) -> SortOrder:
        return SortOrder(self.column, not self.reverse)

    def by(self, column: str) -> SortOrder:
        """Sort by `column`; asked again for the same column, the other way."""
        if column == self.column:
            return self.flipped()
        return SortOrder(column, False)

    def describe(self, labels: dict[str, str]) -> str:
        if self.column is None:
            return ""
        return f"{labels.get(self.column, self.column)} {'▼' if self.reverse else '▲'}"


def sort_rows(
    rows: Sequence[T],
    columns: Sequence[str],
    values: Callable[[T], Sequence[SortValue]],
    order: SortOrder,
) -> list[T]:
    """`rows` in `order`; rows whose value is unknown come last either way. Stable."""
    if order.column is None or order.column not in columns:
        return list(rows)
    index = columns.index(order.column)
    known: list[tuple[SortValue, T]] = []
    unknown: list[T] = []
    for row in rows:
        value = values(row)[index]
        if value is None:
            unknown.append(row)
        else:
            known.append((value.casefold() if isinstance(value, str) else value, row))
    known.sort(key=lambda pair: _key(pair[0]), reverse=order.reverse)
    return [row for _, row in known] + unknown


def _key(value: SortValue) -> tuple[int, float, str]:
    # Numbers before strings should a column ever mix them; never compare across types.
    if isinstance(value, str):
        return (1, 0.0, value)
    return (0, float(value or 0), "")
