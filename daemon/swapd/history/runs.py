"""Model runs in the history file: what each run of a model took, kept across restarts.

One row per run (`model_runs`): the model, when the run started, how long
its load took, the peaks of its resident memory (`ram`, its process tree)
and GPU memory (`vram`), for a model that slept its peaks while asleep, and
the seconds each of its wakes took. The budget planner learns from them: the
footprints (awake and asleep) are the highest peaks of the last runs, the
`measured` evict cost is the median of the last load times, the cost of a
sleep the median of the last wakes (`swapd.router.budget_books`).

Wakes are timed from the process states (`swapd.router.wake_times`) while
the run lives; `RunHistory` holds them per model until that run's row is
written (its end), so they are kept with the run they belong to.

`RunHistory` is the meter's sink. The books change at once (planning reads
them on the event loop); the row is written by its own task, off the loop,
through a bounded queue (a stalled disk drops rows, counted, and never holds
up the meter). Without a file (no state directory, an unreadable or newer
database) the books live in memory only, and the reason is logged once.
Each model keeps its last `KEEP_ROWS` rows; older ones are deleted as new
ones are written, so the table stays small.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import trio

from swapd.history.database import Database
from swapd.history.schema import NewerSchema
from swapd.process.meter import RunReport
from swapd.router.budget_books import LOADS_KEPT, RUNS_KEPT, Books, BooksData

log = logging.getLogger("swapd.history")

KEEP_ROWS = 2 * max(RUNS_KEPT, LOADS_KEPT)
QUEUE_SIZE = 256


class RunRow(msgspec.Struct, frozen=True):
    model: str
    started: float
    load_s: float | None
    peak_ram: int | None
    peak_vram: int | None
    asleep_ram: int | None = None
    asleep_vram: int | None = None
    wakes: tuple[float, ...] = ()
    """The seconds each wake of the run took (the last `LOADS_KEPT`)."""


_COLUMNS = "model, started, load_s, peak_ram, peak_vram, asleep_ram, asleep_vram, wakes"
_wakes_decoder = msgspec.json.Decoder(tuple[float, ...])


def row_of(report: RunReport, wakes: Sequence[float] = ()) -> RunRow:
    return RunRow(
        model=report.model,
        started=report.started,
        load_s=report.load_seconds,
        peak_ram=report.peaks.get("ram"),
        peak_vram=report.peaks.get("vram"),
        asleep_ram=report.asleep.get("ram"),
        asleep_vram=report.asleep.get("vram"),
        wakes=tuple(wakes[-LOADS_KEPT:]),
    )


def _values(r: RunRow) -> tuple[object, ...]:
    wakes = msgspec.json.encode(r.wakes).decode() if r.wakes else None
    return (
        r.model,
        r.started,
        r.load_s,
        r.peak_ram,
        r.peak_vram,
        r.asleep_ram,
        r.asleep_vram,
        wakes,
    )


def _row(values: Sequence[Any]) -> RunRow:
    model, started, load_s, peak_ram, peak_vram, asleep_ram, asleep_vram, wakes = values
    return RunRow(
        model=model,
        started=started,
        load_s=load_s,
        peak_ram=peak_ram,
        peak_vram=peak_vram,
        asleep_ram=asleep_ram,
        asleep_vram=asleep_vram,
        wakes=_wakes_decoder.decode(wakes) if wakes is not None else (),
    )


def insert_runs(conn: sqlite3.Connection, rows: Iterable[RunRow]) -> None:
    """Write `rows` in one transaction and keep each model's last `KEEP_ROWS` rows."""
    rows = list(rows)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            f"INSERT INTO model_runs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [_values(r) for r in rows],
        )
        for model in {r.model for r in rows}:
            conn.execute(
                "DELETE FROM model_runs WHERE model = ? AND seq NOT IN "
                "(SELECT seq FROM model_runs WHERE model = ? ORDER BY seq DESC LIMIT ?)",
                (model, model, KEEP_ROWS),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def read_rows(conn: sqlite3.Connection) -> list[RunRow]:
    """Every kept row, oldest first."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(model_runs)")}
    # A file an older swapd wrote, read without migrating it (`config check
    # --with-history`, a read-only state directory): NULL for the columns it lacks.
    columns = ", ".join(c if c in present else "NULL" for c in _COLUMNS.split(", "))
    cursor = conn.execute(f"SELECT {columns} FROM model_runs ORDER BY seq")
    return [_row(row) for row in cursor.fetchall()]


def books_data(rows: Iterable[RunRow]) -> BooksData:
    """The books as the rows (oldest first) say: the last runs' peaks (awake and asleep),
    the last loads and the last wakes."""
    peaks: dict[str, dict[str, list[int]]] = {}
    asleep: dict[str, dict[str, list[int]]] = {}
    loads: dict[str, list[float]] = {}
    wakes: dict[str, list[float]] = {}
    for r in rows:
        for measure, value in (("ram", r.peak_ram), ("vram", r.peak_vram)):
            if value is not None:
                peaks.setdefault(r.model, {}).setdefault(measure, []).append(int(value))
        for measure, value in (("ram", r.asleep_ram), ("vram", r.asleep_vram)):
            if value is not None:
                asleep.setdefault(r.model, {}).setdefault(measure, []).append(int(value))
        if r.load_s is not None:
            loads.setdefault(r.model, []).append(float(r.load_s))
        if r.wakes:
            wakes.setdefault(r.model, []).extend(float(w) for w in r.wakes)
    return BooksData(
        peaks={m: {k: v[-RUNS_KEPT:] for k, v in p.items()} for m, p in peaks.items()},
        loads={m: v[-LOADS_KEPT:] for m, v in loads.items()},
        asleep={m: {k: v[-RUNS_KEPT:] for k, v in p.items()} for m, p in asleep.items()},
        wakes={m: v[-LOADS_KEPT:] for m, v in wakes.items()},
    )


def _open(path: Path) -> tuple[Database, list[RunRow]]:
    db = Database.open_writer(path)
    try:
        return db, read_rows(db.conn)
    except BaseException:
        db.conn.close()
        raise


class RunHistory:
    """The meter's sink: into `books` at once, and one row per run into the file at `path`."""

    def __init__(self, books: Books, path: Path | None) -> None:
        self.books = books
        self.path = path
        self.written = 0
        self.dropped = 0
        self.error: str | None = None
        self._send, self._receive = trio.open_memory_channel[RunRow](QUEUE_SIZE)
        self._db: Database | None = None
        self._wakes: dict[str, list[float]] = {}  # per model, the wakes of its run in progress
        self._queued = 0
        self._done = 0
        self._progress = trio.Event()

    # -- the meter's side (on the loop, never blocks)

    def loaded(self, model: str, seconds: float) -> None:
        self.books.record_load(model, seconds)

    def record_wake(self, model: str, seconds: float) -> None:
        """A wake of `model`'s run in progress took `seconds`: into the books at once, and
        into that run's row when it ends."""
        self.books.record_wake(model, seconds)
        if seconds >= 0:
            wakes = self._wakes.setdefault(model, [])
            wakes.append(float(seconds))
            del wakes[:-LOADS_KEPT]

    def run_ended(self, report: RunReport) -> None:
        self.books.record_run(report.model, report.peaks, report.asleep)
        wakes = self._wakes.pop(report.model, [])
        if self._db is None:
            return
        try:
            self._send.send_nowait(row_of(report, wakes))
            self._queued += 1
        except trio.WouldBlock:
            self.dropped += 1

    # -- the task

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the file and read the books from it, then write rows as runs end."""
        if self.path is not None:
            try:
                self._db, rows = await trio.to_thread.run_sync(_open, self.path)
            except (OSError, sqlite3.Error, NewerSchema) as exc:
                self.error = str(exc)
                log.warning(
                    "model runs are not kept across restarts: cannot open %s: %s", self.path, exc
                )
            else:
                self._load(rows)
        task_status.started()
        if self._db is None:
            await trio.sleep_forever()
        db = self._db
        try:
            async for row in self._receive:
                batch = [row]
                while True:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                try:
                    await trio.to_thread.run_sync(insert_runs, db.conn, batch)
                    self.written += len(batch)
                except sqlite3.Error as exc:
                    self.dropped += len(batch)
                    if self.error is None:
                        log.warning("cannot write model runs to %s: %s", self.path, exc)
                    self.error = str(exc)
                self._done += len(batch)
                self._progress.set()
                self._progress = trio.Event()
        finally:
            db.conn.close()

    def _load(self, rows: list[RunRow]) -> None:
        """The rows of earlier runs first, then what this run learnt before the file opened."""
        fresh = Books(books_data(rows))
        fresh.add(self.books.data())
        self.books.footprints = fresh.footprints
        self.books.asleep = fresh.asleep
        self.books.costs = fresh.costs

    async def flushed(self) -> None:
        """Wait until every row queued so far is written or dropped."""
        queued = self._queued
        while self._done < queued:
            await self._progress.wait()
