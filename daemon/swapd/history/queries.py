"""What a reader may ask of the history, and the SQL each question becomes (no I/O).

Windows are half-open: `since` inclusive, `until` exclusive, both Unix
seconds, either may be None. Results are newest first; `limit` is clamped to
[1, MAX_LIMIT] so no question can make the daemon hold an unbounded answer.
"""

from __future__ import annotations

from typing import Any

import msgspec

from swapd.history.records import HISTORY_KINDS, HistoryKind, Outcome
from swapd.history.rows import HISTORY_TABLES, REQUESTS, SWAPS, Table

MAX_LIMIT = 10_000
#: The condition of the partial index `requests_not_done` (see `schema`).
NOT_DONE = "outcome != 'done'"
DEFAULT_LIMIT = 100


class ActivityQuery(msgspec.Struct, frozen=True, kw_only=True):
    model: str | None = None
    """Only requests served by this model (or asked of a peer as this model)."""
    outcome: Outcome | None = None
    since: float | None = None
    until: float | None = None
    limit: int = DEFAULT_LIMIT


class HistoryQuery(msgspec.Struct, frozen=True, kw_only=True):
    kinds: tuple[HistoryKind, ...] = HISTORY_KINDS
    model: str | None = None
    """Swaps that load or evict it, its exits, reloads that add, remove or change it."""
    since: float | None = None
    until: float | None = None
    limit: int = DEFAULT_LIMIT


def clamp_limit(limit: int) -> int:
    return max(1, min(MAX_LIMIT, limit))


def _window(table: Table[Any], since: float | None, until: float | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if since is not None:
        clauses.append(f"{table.time_column} >= ?")
        params.append(since)
    if until is not None:
        clauses.append(f"{table.time_column} < ?")
        params.append(until)
    return " AND ".join(clauses), params


def _select(
    table: Table[Any],
    clauses: list[str],
    params: list[Any],
    limit: int,
    present: frozenset[str] | None = None,
) -> tuple[str, list[Any]]:
    where = f" WHERE {' AND '.join(c for c in clauses if c)}" if any(clauses) else ""
    time = table.time_column
    columns = table.select_columns if present is None else table.select_present(present)
    sql = f"SELECT {columns} FROM {table.name}{where} ORDER BY {time} DESC, seq DESC LIMIT ?"
    return sql, [*params, clamp_limit(limit)]


def activity_sql(query: ActivityQuery) -> tuple[str, list[Any]]:
    window, params = _window(REQUESTS, query.since, query.until)
    clauses = [window]
    if query.model is not None:
        clauses.insert(0, "model = ?")
        params.insert(0, query.model)
    if query.outcome is not None:
        clauses.insert(0, "outcome = ?")
        params.insert(0, query.outcome)
        if query.outcome != "done":
            # Spelled out so that SQLite may use the partial index of those rows.
            clauses.insert(0, NOT_DONE)
    return _select(REQUESTS, clauses, params, query.limit)


# Per kind: how a model takes part in a row of that table.
_MODEL_CLAUSES: dict[str, str] = {
    "swap": "(target = ?1 OR EXISTS (SELECT 1 FROM json_each(evicted) WHERE value = ?1))",
    "exit": "model = ?1",
    "reload": (
        "(EXISTS (SELECT 1 FROM json_each(added) WHERE value = ?1)"
        " OR EXISTS (SELECT 1 FROM json_each(removed) WHERE value = ?1)"
        " OR EXISTS (SELECT 1 FROM json_each(changed)"
        " WHERE value = ?1 OR substr(value, 1, length(?1) + 2) = ?1 || ' ('))"
    ),
}


def history_sql(
    kind: HistoryKind, query: HistoryQuery, present: frozenset[str] | None = None
) -> tuple[str, list[Any]]:
    """The newest `limit` rows of one kind; the store merges the kinds by time.
    `present`: the table's columns, when the file may predate some of them.

    The model is parameter ?1, used several times; SQLite numbers each later
    plain `?` one past the largest number so far, so the window's bounds and
    the limit follow it in order.
    """
    table = HISTORY_TABLES[kind]
    clauses: list[str] = []
    params: list[Any] = []
    if query.model is not None:
        clauses.append(_MODEL_CLAUSES[kind])
        params.append(query.model)
    window, window_params = _window(table, query.since, query.until)
    clauses.append(window)
    params.extend(window_params)
    return _select(table, clauses, params, query.limit, present)


def load_times_sql(model: str, limit: int, wake: str = "0") -> tuple[str, list[Any]]:
    """The last successful starts of `model`; `wake`: the SQL of a row's wake flag."""
    return (
        f"SELECT load_s FROM {SWAPS.name} WHERE target = ? AND result = 'ok'"
        f" AND load_s IS NOT NULL AND {wake} = 0 ORDER BY start DESC, seq DESC LIMIT ?",
        [model, clamp_limit(limit)],
    )
