"""The history database's tables, and the migrations that bring any older file up to date.

The schema version is SQLite's `user_version`. `MIGRATIONS[n]` takes a
database from version n to n + 1; each runs in one transaction with the
version bump, so a crash mid-migration leaves the previous version intact.
A migration is only ever appended, never edited: a released file may sit at
any version. A database newer than this code is left untouched (`NewerSchema`).

Every table has `seq INTEGER PRIMARY KEY` (the rowid, in insertion order) so
each index also orders by it, which makes "newest first" a walk of an index.
Request ids are the daemon's numbers, going on across runs (`request_ids`
keeps the next one) but not keys: a run whose file could not be opened at
start numbers from 1. They are not indexed (see migration 3 -> 4). Tuples
(evicted models, reload changes) and nested records (KV-cache figures) are
JSON text; a column added by a later migration is NULL on older rows, which
reads as the field's default.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 0 -> 1: the first schema.
    (
        """CREATE TABLE requests (
            seq INTEGER PRIMARY KEY,
            id INTEGER NOT NULL,
            start REAL NOT NULL,
            client TEXT,
            requested TEXT,
            model TEXT,
            route TEXT NOT NULL,
            stream INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            status INTEGER,
            queued_s REAL,
            load_wait_s REAL,
            ttfb_s REAL,
            duration_s REAL,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            tokens_per_s REAL,
            peer TEXT,
            reason TEXT,
            swap_id INTEGER
        )""",
        "CREATE INDEX requests_start ON requests (start)",
        "CREATE INDEX requests_model_start ON requests (model, start)",
        "CREATE INDEX requests_outcome_start ON requests (outcome, start)",
        "CREATE INDEX requests_id ON requests (id)",
        """CREATE TABLE swaps (
            seq INTEGER PRIMARY KEY,
            swap_id INTEGER NOT NULL,
            start REAL NOT NULL,
            target TEXT NOT NULL,
            evicted TEXT NOT NULL,
            why TEXT NOT NULL,
            set_name TEXT,
            cost INTEGER NOT NULL,
            load_s REAL,
            result TEXT NOT NULL,
            error TEXT
        )""",
        "CREATE INDEX swaps_start ON swaps (start)",
        "CREATE INDEX swaps_target_start ON swaps (target, start)",
        """CREATE TABLE exits (
            seq INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            model TEXT NOT NULL,
            pid INTEGER NOT NULL,
            exit_code INTEGER,
            signal TEXT,
            reason TEXT NOT NULL,
            failed INTEGER NOT NULL,
            uptime_s REAL
        )""",
        "CREATE INDEX exits_time ON exits (time)",
        "CREATE INDEX exits_model_time ON exits (model, time)",
        """CREATE TABLE reloads (
            seq INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            ok INTEGER NOT NULL,
            source TEXT NOT NULL,
            path TEXT NOT NULL,
            added TEXT NOT NULL,
            removed TEXT NOT NULL,
            changed TEXT NOT NULL,
            errors TEXT NOT NULL
        )""",
        "CREATE INDEX reloads_time ON reloads (time)",
    ),
    # 1 -> 2: one row per run of a model: its load time and peaks (swapd.history.runs).
    (
        """CREATE TABLE model_runs (
            seq INTEGER PRIMARY KEY,
            model TEXT NOT NULL,
            started REAL NOT NULL,
            load_s REAL,
            peak_ram INTEGER,
            peak_vram INTEGER
        )""",
        "CREATE INDEX model_runs_model ON model_runs (model)",
    ),
    # 2 -> 3: KV-cache figures (JSON) on swaps (saves and restore) and exits (the save
    # before the stop); NULL on older rows, read as none.
    (
        "ALTER TABLE swaps ADD COLUMN kv TEXT",
        "ALTER TABLE exits ADD COLUMN kv TEXT",
    ),
    # 3 -> 4: cheaper request rows. Every index is written on every insert, and
    # the writer's CPU per request is what recording costs. The next request id
    # is kept in a row of its own (updated once per batch) instead of read as
    # MAX(id); a request by id is found from the newest row back (the ids asked
    # for are recent ones); and only requests that did not end `done` are
    # indexed by outcome (a query for `done` walks the start index, where
    # nearly every row matches).
    (
        "CREATE TABLE request_ids (next INTEGER NOT NULL)",
        "INSERT INTO request_ids SELECT COALESCE(MAX(id), 0) + 1 FROM requests",
        "DROP INDEX IF EXISTS requests_id",
        "DROP INDEX IF EXISTS requests_outcome_start",
        "CREATE INDEX requests_not_done ON requests (outcome, start) WHERE outcome != 'done'",
    ),
    # 4 -> 5: sleep. A swap names the models it put to sleep (`slept`, JSON) and whether
    # it woke its target (`wake`, 0/1); a model run keeps its peaks while asleep and the
    # seconds each of its wakes took (`wakes`, JSON). NULL on older rows: none, not a wake.
    (
        "ALTER TABLE swaps ADD COLUMN slept TEXT",
        "ALTER TABLE swaps ADD COLUMN wake INTEGER",
        # `stats` counts sleeps from the few swaps that slept a model: only those indexed.
        "CREATE INDEX swaps_slept_start ON swaps (start) WHERE slept != '[]'",
        "ALTER TABLE model_runs ADD COLUMN asleep_ram INTEGER",
        "ALTER TABLE model_runs ADD COLUMN asleep_vram INTEGER",
        "ALTER TABLE model_runs ADD COLUMN wakes TEXT",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


class NewerSchema(Exception):
    """The database was written by a newer swapd; it is not touched."""


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(
    conn: sqlite3.Connection, migrations: Sequence[Sequence[str]] = MIGRATIONS
) -> tuple[int, int]:
    """Apply the migrations this database lacks; (version before, version after).

    `conn` must be in autocommit mode (`isolation_level=None`): each step is
    its own explicit transaction.
    """
    before = schema_version(conn)
    target = len(migrations)
    while True:
        # The version is read again inside each write transaction: another
        # process opening the same file may have migrated it meanwhile.
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(conn)
            if version > target:
                raise NewerSchema(f"schema version {version}, newer than this swapd's {target}")
            if version == target:
                conn.execute("COMMIT")
                return before, target
            for statement in migrations[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
