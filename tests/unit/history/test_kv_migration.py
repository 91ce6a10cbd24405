"""A history file written before KV-cache figures: migrated on open, its rows read as before
(with no figures), new rows keep theirs; read unmigrated, it still answers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from swapd.history.database import Database
from swapd.history.queries import HistoryQuery
from swapd.history.records import ExitRecord, KvRecord, SwapRecord
from swapd.history.schema import SCHEMA_VERSION, schema_version

#: Version 2 of the schema, as swapd wrote it before swaps and exits had a `kv` column.
OLD_DDL = (
    """CREATE TABLE requests (
        seq INTEGER PRIMARY KEY, id INTEGER NOT NULL, start REAL NOT NULL, client TEXT,
        requested TEXT, model TEXT, route TEXT NOT NULL, stream INTEGER NOT NULL,
        outcome TEXT NOT NULL, status INTEGER, queued_s REAL, load_wait_s REAL, ttfb_s REAL,
        duration_s REAL, prompt_tokens INTEGER, completion_tokens INTEGER, tokens_per_s REAL,
        peer TEXT, reason TEXT, swap_id INTEGER)""",
    "CREATE INDEX requests_start ON requests (start)",
    "CREATE INDEX requests_model_start ON requests (model, start)",
    "CREATE INDEX requests_outcome_start ON requests (outcome, start)",
    "CREATE INDEX requests_id ON requests (id)",
    """CREATE TABLE swaps (
        seq INTEGER PRIMARY KEY, swap_id INTEGER NOT NULL, start REAL NOT NULL,
        target TEXT NOT NULL, evicted TEXT NOT NULL, why TEXT NOT NULL, set_name TEXT,
        cost INTEGER NOT NULL, load_s REAL, result TEXT NOT NULL, error TEXT)""",
    "CREATE INDEX swaps_start ON swaps (start)",
    "CREATE INDEX swaps_target_start ON swaps (target, start)",
    """CREATE TABLE exits (
        seq INTEGER PRIMARY KEY, time REAL NOT NULL, model TEXT NOT NULL, pid INTEGER NOT NULL,
        exit_code INTEGER, signal TEXT, reason TEXT NOT NULL, failed INTEGER NOT NULL,
        uptime_s REAL)""",
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
    "PRAGMA user_version = 2",
)

T = 1_800_000_000.0
OLD_SWAP = SwapRecord(
    swap_id=4, start=T, target="b", evicted=("a",), why="request 9", set="ab", cost=3,
    load_s=1.5, result="ok",
)  # fmt: skip
OLD_EXIT = ExitRecord(
    time=T + 1, model="a", pid=321, exit_code=None, signal="SIGTERM", reason="evicted by b",
    failed=False, uptime_s=60.0,
)  # fmt: skip
SAVE = KvRecord(model="a", action="save", slots=3, bytes=12 << 20, seconds=0.41)
RESTORE = KvRecord(
    model="b", action="restore", slots=1, bytes=4096, seconds=0.08, timed_out=True,
    errors=("restore slot 1: 500", "timed out after 10s"),
)  # fmt: skip


def old_file(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in OLD_DDL:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO swaps (swap_id, start, target, evicted, why, set_name, cost, load_s,"
        " result, error) VALUES (4, ?, 'b', '[\"a\"]', 'request 9', 'ab', 3, 1.5, 'ok', NULL)",
        [T],
    )
    conn.execute(
        "INSERT INTO exits (time, model, pid, exit_code, signal, reason, failed, uptime_s)"
        " VALUES (?, 'a', 321, NULL, 'SIGTERM', 'evicted by b', 0, 60.0)",
        [T + 1],
    )
    conn.close()


def test_an_old_file_is_migrated_and_its_rows_read_without_figures(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    old_file(path)
    db = Database.open_writer(path)
    try:
        assert schema_version(db.conn) == SCHEMA_VERSION
        assert db.history(HistoryQuery()) == [OLD_EXIT, OLD_SWAP]
        new_swap = SwapRecord(
            swap_id=5, start=T + 2, target="a", evicted=("b",), why="request 10", set=None,
            cost=0, load_s=0.5, result="ok", kv=(SAVE, RESTORE),
        )  # fmt: skip
        new_exit = ExitRecord(
            time=T + 3, model="a", pid=400, exit_code=0, signal=None, reason="ttl",
            failed=False, uptime_s=9.0, kv=SAVE,
        )  # fmt: skip
        db.write([new_swap, new_exit])
        assert db.history(HistoryQuery()) == [new_exit, new_swap, OLD_EXIT, OLD_SWAP]
        raw = db.conn.execute("SELECT kv FROM exits ORDER BY seq").fetchall()
        assert raw[0] == (None,) and raw[1][0].startswith("{")  # none is NULL, not 'null'
    finally:
        db.close()


def test_an_old_file_nobody_migrated_still_answers(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    old_file(path)
    reader = Database.open_reader(path)  # readers never migrate
    try:
        assert schema_version(reader.conn) == 2
        assert reader.history(HistoryQuery(model="a")) == [OLD_EXIT, OLD_SWAP]
        assert reader.history(HistoryQuery(kinds=("swap",))) == [OLD_SWAP]
    finally:
        reader.close()
