"""A history file written before sleep figures (schema version 4): migrated on open, its
swaps read with nothing slept and no wake, its model runs with no asleep peaks or wakes;
new rows keep theirs; read unmigrated, it still answers (history, stats, load times)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from swapd.history.database import Database
from swapd.history.queries import HistoryQuery
from swapd.history.records import SwapRecord
from swapd.history.runs import RunRow, books_data, insert_runs, read_rows
from swapd.history.schema import SCHEMA_VERSION, schema_version
from swapd.router.budget_books import Books

#: Version 4 of the schema, as swapd wrote it before swaps named the models they put to
#: sleep and model runs kept their asleep peaks and wakes.
OLD_DDL = (
    """CREATE TABLE requests (
        seq INTEGER PRIMARY KEY, id INTEGER NOT NULL, start REAL NOT NULL, client TEXT,
        requested TEXT, model TEXT, route TEXT NOT NULL, stream INTEGER NOT NULL,
        outcome TEXT NOT NULL, status INTEGER, queued_s REAL, load_wait_s REAL, ttfb_s REAL,
        duration_s REAL, prompt_tokens INTEGER, completion_tokens INTEGER, tokens_per_s REAL,
        peer TEXT, reason TEXT, swap_id INTEGER)""",
    "CREATE INDEX requests_start ON requests (start)",
    "CREATE INDEX requests_model_start ON requests (model, start)",
    "CREATE INDEX requests_not_done ON requests (outcome, start) WHERE outcome != 'done'",
    "CREATE TABLE request_ids (next INTEGER NOT NULL)",
    "INSERT INTO request_ids VALUES (1)",
    """CREATE TABLE swaps (
        seq INTEGER PRIMARY KEY, swap_id INTEGER NOT NULL, start REAL NOT NULL,
        target TEXT NOT NULL, evicted TEXT NOT NULL, why TEXT NOT NULL, set_name TEXT,
        cost INTEGER NOT NULL, load_s REAL, result TEXT NOT NULL, error TEXT, kv TEXT)""",
    "CREATE INDEX swaps_start ON swaps (start)",
    "CREATE INDEX swaps_target_start ON swaps (target, start)",
    """CREATE TABLE exits (
        seq INTEGER PRIMARY KEY, time REAL NOT NULL, model TEXT NOT NULL, pid INTEGER NOT NULL,
        exit_code INTEGER, signal TEXT, reason TEXT NOT NULL, failed INTEGER NOT NULL,
        uptime_s REAL, kv TEXT)""",
    "CREATE INDEX exits_time ON exits (time)",
    "CREATE INDEX exits_model_time ON exits (model, time)",
    """CREATE TABLE reloads (
        seq INTEGER PRIMARY KEY, time REAL NOT NULL, ok INTEGER NOT NULL, source TEXT NOT NULL,
        path TEXT NOT NULL, added TEXT NOT NULL, removed TEXT NOT NULL, changed TEXT NOT NULL,
        errors TEXT NOT NULL)""",
    "CREATE INDEX reloads_time ON reloads (time)",
    """CREATE TABLE model_runs (
        seq INTEGER PRIMARY KEY, model TEXT NOT NULL, started REAL NOT NULL, load_s REAL,
        peak_ram INTEGER, peak_vram INTEGER)""",
    "CREATE INDEX model_runs_model ON model_runs (model)",
    "PRAGMA user_version = 4",
)

T = 1_800_000_000.0
OLD_SWAP = SwapRecord(
    swap_id=4, start=T, target="b", evicted=("a",), why="request 9", set=None, cost=3,
    load_s=1.5, result="ok",
)  # fmt: skip
OLD_RUN = RunRow(model="a", started=T - 60, load_s=2.0, peak_ram=900, peak_vram=4000)


def old_file(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in OLD_DDL:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO swaps (swap_id, start, target, evicted, why, set_name, cost, load_s,"
        " result, error, kv) VALUES (4, ?, 'b', '[\"a\"]', 'request 9', NULL, 3, 1.5, 'ok',"
        " NULL, NULL)",
        [T],
    )
    conn.execute(
        "INSERT INTO model_runs (model, started, load_s, peak_ram, peak_vram)"
        " VALUES ('a', ?, 2.0, 900, 4000)",
        [T - 60],
    )
    conn.close()


def test_old_swaps_read_as_nothing_slept_and_new_ones_keep_theirs(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    old_file(path)
    db = Database.open_writer(path)
    try:
        assert schema_version(db.conn) == SCHEMA_VERSION == 5
        [old] = db.history(HistoryQuery())
        assert old == OLD_SWAP and old.slept == () and old.wake is False
        slept = SwapRecord(
            swap_id=5, start=T + 2, target="b", evicted=(), why="request 10", set=None,
            cost=0, load_s=0.5, result="ok", slept=("a",),
        )  # fmt: skip
        woke = SwapRecord(
            swap_id=6, start=T + 3, target="a", evicted=(), why="request 11", set=None,
            cost=0, load_s=0.25, result="ok", slept=("b",), wake=True,
        )  # fmt: skip
        db.write([slept, woke])
        assert db.history(HistoryQuery()) == [woke, slept, OLD_SWAP]
        raw = db.conn.execute("SELECT slept, wake FROM swaps ORDER BY seq").fetchall()
        assert raw == [(None, None), ('["a"]', 0), ('["b"]', 1)]
        stats = {m.model: m for m in db.stats(T - 1, T + 10).models}
        # b: one start before (old row) and one after; a: woken once, slept once.
        assert (stats["b"].loads, stats["b"].wakes, stats["b"].sleeps) == (2, 0, 1)
        assert stats["b"].load_p50_s == 1.0
        assert (stats["a"].loads, stats["a"].wakes, stats["a"].sleeps) == (0, 1, 1)
        assert stats["a"].wake_p50_s == 0.25 and stats["a"].load_p50_s is None
        # A wake is not a load: the load times simulate reads leave it out.
        assert db.load_times("a", 10) == [] and db.load_times("b", 10) == [0.5, 1.5]
    finally:
        db.close()


def test_old_model_runs_read_without_asleep_figures_and_new_ones_keep_theirs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.sqlite3"
    old_file(path)
    db = Database.open_writer(path)
    try:
        assert read_rows(db.conn) == [OLD_RUN]
        new = RunRow(
            model="a", started=T, load_s=1.0, peak_ram=1000, peak_vram=4100,
            asleep_ram=700, asleep_vram=300, wakes=(0.5, 0.75),
        )  # fmt: skip
        insert_runs(db.conn, [new])
        assert read_rows(db.conn) == [OLD_RUN, new]
        books = Books(books_data(read_rows(db.conn)))
        assert books.footprints.measured("a") == {"ram": 1000, "vram": 4100}
        assert books.asleep.measured("a") == {"ram": 700, "vram": 300}
        assert books.costs.median_wake("a") == 0.625
        assert books.costs.median_load("a") == 1.5
    finally:
        db.close()


def test_an_old_file_nobody_migrated_still_answers(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    old_file(path)
    reader = Database.open_reader(path)  # readers never migrate
    try:
        assert schema_version(reader.conn) == 4
        assert reader.history(HistoryQuery()) == [OLD_SWAP]
        [b] = reader.stats(T - 1, T + 1).models
        assert (b.model, b.loads, b.wakes, b.sleeps, b.load_p50_s) == ("b", 1, 0, 0, 1.5)
        assert reader.load_times("b", 10) == [1.5]
        # `config check --with-history` reads the model runs of such a file too.
        assert read_rows(reader.conn) == [OLD_RUN]
    finally:
        reader.close()
