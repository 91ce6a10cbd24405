"""The history file itself: opening, writing batches, retention, reading. Every call blocks.

Nothing here may run on the event loop: `HistoryStore` calls it through
`trio.to_thread`, one batch at a time on the writer connection, one question
at a time on the reader connection. The file is SQLite in WAL mode (readers
never wait for the writer, nor the writer for them) with `synchronous =
NORMAL`: a crash of swapd loses nothing committed, a power cut may lose the
last batches, which is the right price for history.
"""

from __future__ import annotations

import heapq
import itertools
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from swapd.history import stats as st
from swapd.history.queries import (
    ActivityQuery,
    HistoryQuery,
    activity_sql,
    clamp_limit,
    history_sql,
    load_times_sql,
)
from swapd.history.records import AnyRecord, HistoryRecord, RequestRecord, SwapRecord
from swapd.history.rows import (
    EXITS,
    HISTORY_TABLES,
    RELOADS,
    REQUESTS,
    SWAPS,
    TABLE_OF,
    Table,
)
from swapd.history.schema import SCHEMA_VERSION, NewerSchema, migrate, schema_version
from swapd.history.settings import DAY, HistorySettings

STATEMENT_ROWS = (100, 10, 1)
"""How many rows one insert statement takes: a batch goes in as statements of
100 rows, then of 10, then single rows. Three statements per table, compiled
once and kept in the connection's cache: a statement sized to each batch's
remainder was compiled anew for most batches (a 50-row insert compiles in
about 0.3 ms, more than writing its rows), and far below SQLite's 32766
parameters."""
FILE_MODE = 0o600
BUSY_TIMEOUT = 5.0
#: Rows deleted per retention transaction, so one pass never holds a huge one.
PRUNE_CHUNK = 20_000


class HistoryUnavailable(Exception):
    """The history file cannot be read (never created, unreadable, or too new)."""


class Database:
    """One connection to the history file (autocommit; transactions are explicit)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._inserts: dict[tuple[str, int], str] = {}

    @classmethod
    def open_writer(cls, path: Path) -> Database:
        """Open (creating it 0600 if needed) and migrate. Raises OSError, sqlite3.Error,
        NewerSchema."""
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT
        )
        try:
            # Before anything changes the file (WAL mode is written into it).
            version = schema_version(conn)
            if version > SCHEMA_VERSION:
                raise NewerSchema(f"schema version {version}, newer than this swapd's")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot use WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    @classmethod
    def open_reader(cls, path: Path) -> Database:
        """A read-only connection; HistoryUnavailable if there is no readable file.

        In a directory swapd cannot write, SQLite cannot create the shared
        memory file a WAL database is read through; the file is then read as
        immutable (no writer can be at work there), which is what lets an
        operator still read the history of a read-only state directory.
        """
        if not path.exists():
            raise HistoryUnavailable(f"no history at {path}")
        uri = path.absolute().as_uri() + "?mode=ro"
        error: sqlite3.Error | None = None
        for options in ("", "&immutable=1"):
            try:
                conn = sqlite3.connect(
                    uri + options,
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=BUSY_TIMEOUT,
                )
            except sqlite3.Error as exc:
                error = exc
                continue
            try:
                conn.execute("SELECT 1 FROM requests LIMIT 1").fetchall()
            except sqlite3.Error as exc:
                conn.close()
                error = exc
                continue
            return cls(conn, path)
        raise HistoryUnavailable(f"cannot read {path}: {error}")

    def close(self) -> None:
        self.conn.close()

    # ----- writing -----------------------------------------------------------

    def write(self, records: Sequence[AnyRecord]) -> None:
        """All of `records` in one transaction, or none (the error is raised)."""
        by_table: dict[str, list[tuple[Any, ...]]] = {}
        tables: dict[str, Table[Any]] = {}
        top_id = 0
        for record in records:
            table = TABLE_OF[type(record)]
            rows = by_table.get(table.name)
            if rows is None:
                rows = by_table[table.name] = []
                tables[table.name] = table
            rows.append(table.to_row(record))
            if isinstance(record, RequestRecord) and record.id > top_id:
                top_id = record.id
        conn = self.conn
        conn.execute("BEGIN")
        try:
            for name, rows in by_table.items():
                start = 0
                for size in STATEMENT_ROWS:
                    if len(rows) - start < size:
                        continue
                    sql = self._insert_sql(tables[name], size)
                    while len(rows) - start >= size:
                        part = rows[start : start + size]
                        conn.execute(sql, list(itertools.chain.from_iterable(part)))
                        start += size
            if top_id:
                conn.execute("UPDATE request_ids SET next = MAX(next, ?)", [top_id + 1])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _insert_sql(self, table: Table[Any], rows: int) -> str:
        """The insert of `rows` rows into `table`, built once per connection."""
        key = (table.name, rows)
        sql = self._inserts.get(key)
        if sql is None:
            sql = self._inserts[key] = table.insert_rows_sql(rows)
        return sql

    def prune(self, settings: HistorySettings, now: float) -> int:
        """Apply retention; the number of rows deleted."""
        deleted = 0
        if settings.retention_days > 0:
            cutoff = now - settings.retention_days * DAY
            for table in (REQUESTS, SWAPS, EXITS, RELOADS):
                deleted += self._delete_chunked(
                    table, f"SELECT seq FROM {table.name} WHERE {table.time_column} < ?", [cutoff]
                )
        caps: list[tuple[Table[Any], int]] = [(REQUESTS, settings.max_requests)]
        caps += [(t, settings.max_events) for t in (SWAPS, EXITS, RELOADS)]
        for table, cap in caps:
            if cap <= 0:
                continue
            row = self.conn.execute(
                f"SELECT seq FROM {table.name} ORDER BY seq DESC LIMIT 1 OFFSET ?", [cap]
            ).fetchone()
            if row is not None:
                deleted += self._delete_chunked(
                    table, f"SELECT seq FROM {table.name} WHERE seq <= ?", [row[0]]
                )
        return deleted

    def _delete_chunked(self, table: Table[Any], select: str, params: list[Any]) -> int:
        deleted = 0
        while True:
            cursor = self.conn.execute(
                f"DELETE FROM {table.name} WHERE seq IN ({select} LIMIT {PRUNE_CHUNK})", params
            )
            deleted += cursor.rowcount
            if cursor.rowcount < PRUNE_CHUNK:
                return deleted

    # ----- reading -----------------------------------------------------------

    def activity(self, query: ActivityQuery) -> list[RequestRecord]:
        sql, params = activity_sql(query)
        return [REQUESTS.from_row(row) for row in self.conn.execute(sql, params)]

    def request(self, request_id: int) -> RequestRecord | None:
        """The newest request with this id. There is no index on ids: the walk starts
        at the newest row, and the ids asked for are those of recent requests."""
        row = self.conn.execute(
            f"SELECT {REQUESTS.select_columns} FROM requests WHERE id = ?"
            " ORDER BY seq DESC LIMIT 1",
            [request_id],
        ).fetchone()
        return None if row is None else REQUESTS.from_row(row)

    def history(self, query: HistoryQuery) -> list[HistoryRecord]:
        """The newest `limit` swaps, exits and reloads (of `query.kinds`), merged by time."""
        streams: list[Iterable[tuple[float, HistoryRecord]]] = []
        for kind in dict.fromkeys(query.kinds):
            table = HISTORY_TABLES[kind]
            sql, params = history_sql(kind, query, self._columns(table.name))
            records = [table.from_row(row) for row in self.conn.execute(sql, params)]
            streams.append((_time_of(r), r) for r in records)
        merged = heapq.merge(*streams, key=lambda pair: pair[0], reverse=True)
        return [record for _, record in list(merged)[: clamp_limit(query.limit)]]

    def _columns(self, table: str) -> frozenset[str]:
        """The columns the file's table has: a reader may look at a file an older swapd
        wrote and nobody could migrate (a read-only state directory)."""
        return frozenset(row[1] for row in self.conn.execute(f"PRAGMA table_info({table})"))

    def load_times(self, model: str, limit: int) -> list[float]:
        """The last successful starts of `model` (wakes are not loads)."""
        sql, params = load_times_sql(model, limit, _wake_sql(self._columns("swaps")))
        return [row[0] for row in self.conn.execute(sql, params)]

    def next_request_id(self) -> int:
        """One past the largest request id ever written, so a new run's ids follow the
        old ones (`write` keeps it, whatever retention has deleted since)."""
        row = self.conn.execute("SELECT next FROM request_ids").fetchone()
        return 1 if row is None else int(row[0])

    def stats(self, since: float, until: float) -> st.Stats:
        window = [since, until]
        models: dict[str, dict[str, Any]] = {}
        for row in self.conn.execute(
            f"""SELECT model, COUNT(*), SUM({st.ERROR_SQL}), COUNT(ttfb_s), COUNT(duration_s),
                       COUNT(tokens_per_s), TOTAL(prompt_tokens), TOTAL(completion_tokens)
                FROM requests WHERE model IS NOT NULL AND start >= ? AND start < ?
                GROUP BY model""",
            window,
        ):
            model, count, errors, n_ttfb, n_duration, n_rate, prompt, completion = row
            spot = (model, since, until)
            models[model] = {
                "requests": count,
                "errors": int(errors or 0),
                "ttfb_p50_s": self._percentile("ttfb_s", n_ttfb, 0.5, spot),
                "ttfb_p95_s": self._percentile("ttfb_s", n_ttfb, 0.95, spot),
                "duration_p50_s": self._percentile("duration_s", n_duration, 0.5, spot),
                "duration_p95_s": self._percentile("duration_s", n_duration, 0.95, spot),
                "tokens_per_s_p50": self._percentile("tokens_per_s", n_rate, 0.5, spot),
                "prompt_tokens": int(prompt),
                "completion_tokens": int(completion),
            }
        swap_columns = self._columns("swaps")
        wake = _wake_sql(swap_columns)
        for target, is_wake, swaps, failures, n_ok in self.conn.execute(
            f"""SELECT target, {wake}, COUNT(*), SUM(result = 'failed'),
                      COUNT(CASE WHEN result = 'ok' THEN load_s END)
               FROM swaps WHERE start >= ? AND start < ? GROUP BY 1, 2""",
            window,
        ):
            entry = models.setdefault(target, {})
            kind = "wake" if is_wake else "load"
            entry[f"{kind}s"] = swaps
            entry[f"{kind}_failures"] = int(failures or 0)
            entry[f"{kind}_p50_s"] = self._load_percentile(
                target, n_ok, since, until, f"{wake} = {int(bool(is_wake))}"
            )
        if "slept" in swap_columns:
            for model, sleeps in self.conn.execute(
                """SELECT slept.value, COUNT(*) FROM swaps, json_each(swaps.slept) AS slept
                   WHERE swaps.slept != '[]' AND start >= ? AND start < ?
                   GROUP BY slept.value""",
                window,
            ):
                models.setdefault(model, {})["sleeps"] = sleeps
        for model, crashes in self.conn.execute(
            "SELECT model, SUM(failed) FROM exits WHERE time >= ? AND time < ? GROUP BY model",
            window,
        ):
            if crashes:
                models.setdefault(model, {})["crashes"] = int(crashes)
        return st.Stats(
            since=since,
            until=until,
            models=[st.ModelStats(model=m, **models[m]) for m in sorted(models)],
        )

    def _percentile(
        self, column: str, count: int, p: float, spot: tuple[str, float, float]
    ) -> float | None:
        """The percentile of a request column, sorted by SQLite: two rows come back."""
        if count <= 0:
            return None
        index, weight = st.rank(count, p)
        values = [
            row[0]
            for row in self.conn.execute(
                f"SELECT {column} FROM requests WHERE model = ? AND start >= ? AND start < ?"
                f" AND {column} IS NOT NULL ORDER BY {column} LIMIT 2 OFFSET ?",
                [*spot, index],
            )
        ]
        return st.between(values[0], values[1] if len(values) > 1 else None, weight)

    def _load_percentile(
        self, target: str, count: int, since: float, until: float, which: str
    ) -> float | None:
        """The median `load_s` of the successful swaps to `target` that match `which`
        (starts or wakes)."""
        if count <= 0:
            return None
        index, weight = st.rank(count, 0.5)
        values = [
            row[0]
            for row in self.conn.execute(
                "SELECT load_s FROM swaps WHERE target = ? AND start >= ? AND start < ?"
                f" AND result = 'ok' AND load_s IS NOT NULL AND {which}"
                " ORDER BY load_s LIMIT 2 OFFSET ?",
                [target, since, until, index],
            )
        ]
        return st.between(values[0], values[1] if len(values) > 1 else None, weight)


def _wake_sql(swap_columns: frozenset[str]) -> str:
    """The SQL of a swap row's `wake` as 0/1 (0 in a file older than the column)."""
    return "COALESCE(wake, 0)" if "wake" in swap_columns else "0"


def _time_of(record: HistoryRecord) -> float:
    return record.start if isinstance(record, SwapRecord) else record.time
