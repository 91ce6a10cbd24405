"""The history store: records go in from the event loop without waiting; questions come back.

`record()` is what the relay, the router and the supervisors call. It appends
to an in-memory list and returns: no I/O, no lock, no await, a few hundred
nanoseconds. The list is bounded (`max_pending`); when it is full the record
is dropped and counted, so a stalled disk can cost memory only up to that
bound and never slows a request.

The writer is a trio task that owns that list. Once records wait, it lets
them gather for `flush_interval` seconds or until `batch_size` of them wait,
swaps the list for an empty one, and hands the batch to
`trio.to_thread.run_sync`, which writes it in one SQLite transaction on a
worker thread (one batch at a time: a limiter of 1). A trio task rather than
a thread of our own because it lives in the store's nursery like every other
task of the daemon (it ends with the store, and the last batch is written on
the way out), because nothing but that task touches the list (no locking on
the loop's side), and because waiting for a flush (`flushed()`) is a plain
trio wait. The loop's cost is one thread hand-off per batch, not per record.

Every failure is absorbed: a state directory that cannot be created, a file
that cannot be opened (read-only, newer schema), a full disk. The writer logs
the first failure of a run of them once, drops the batches (counted in
`status().dropped`), retries opening every `reopen_interval` seconds and logs
again when writes succeed. Retention runs at open and every `prune_interval`.

Reads run on a connection of their own, also through `trio.to_thread`, one
question at a time; they raise `HistoryUnavailable` when there is no history
to read.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import msgspec
import trio

from swapd.history.database import Database, HistoryUnavailable
from swapd.history.paths import database_path, ensure_state_dir
from swapd.history.queries import ActivityQuery, HistoryQuery
from swapd.history.records import AnyRecord, HistoryRecord, RequestRecord
from swapd.history.schema import NewerSchema
from swapd.history.settings import HistorySettings
from swapd.history.stats import Stats

log = logging.getLogger("swapd.history")

T = TypeVar("T")

#: How long a read waits for the records still queued to be written first.
READ_FLUSH_TIMEOUT = 1.0
#: What a failed open or write may raise (anything else is a bug and is raised).
_STORAGE_ERRORS = (OSError, sqlite3.Error, NewerSchema)


class HistoryStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The writer's health, for `swapctl status` and the log."""

    path: str
    available: bool
    """The database is open for writing."""
    error: str | None
    """Why it is not, or why the last write failed (None once writes succeed again)."""
    written: int
    """Records written since the store opened."""
    dropped: int
    """Records lost since the store opened: queue full, storage failing, or after close."""
    pending: int
    """Records waiting for the writer now."""
    pruned: int
    """Rows deleted by retention since the store opened."""


class HistoryStore:
    """Records in, questions out; create with `open_history`."""

    def __init__(
        self, path: Path, settings: HistorySettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.settings = settings
        self.next_request_id = 1
        """One past the largest request id of earlier runs (known once open)."""
        self._clock = clock
        self._pending: list[AnyRecord] = []
        self._accepted = 0  # records ever appended to _pending
        self._done = 0  # of those, written or dropped by the writer
        self._written = 0
        self._dropped = 0
        self._pruned = 0
        self._passes = 0  # retention passes run (or skipped for want of a file)
        self._closing = False
        self._arrived = trio.Event()
        self._full = trio.Event()
        self._progress = trio.Event()
        self._writer: Database | None = None
        self._writer_busy = False
        self._limiter = trio.CapacityLimiter(1)
        self._reader: Database | None = None
        self._read_lock = trio.Lock()
        self._error: str | None = None
        self._next_open = -math.inf
        self._next_prune = math.inf
        self._queue_full_logged = False

    # ----- the loop's side ---------------------------------------------------

    def record(self, record: AnyRecord) -> None:
        """Queue `record` for writing. Never blocks, never raises; drops (counted) when full."""
        try:
            pending = self._pending
            if self._closing or len(pending) >= self.settings.max_pending:
                self._drop_one()
                return
            pending.append(record)
            self._accepted += 1
            self._arrived.set()
            if len(pending) >= self.settings.batch_size:
                self._full.set()
        except Exception:  # pragma: no cover - a bug here must not reach a request
            self._dropped += 1

    def _drop_one(self) -> None:
        self._dropped += 1
        if not self._queue_full_logged and not self._closing:
            self._queue_full_logged = True
            log.warning(
                "history: %d records wait to be written; dropping new ones until the writer "
                "catches up (counted in the history status)",
                len(self._pending),
            )

    async def flushed(self, *, hurry: bool = True) -> None:
        """Return once every record given before this call is written (or dropped),
        and a retention pass that was due has run.

        With `hurry` the writer writes what waits at once; without, at its own
        pace (a full batch, or `flush_interval` after the first record).
        """
        target = self._accepted
        passes = self._passes if trio.current_time() >= self._next_prune else None
        while self._done < target or self._passes == passes:
            if hurry:
                self._arrived.set()
                self._full.set()
            await self._progress.wait()

    def status(self) -> HistoryStatus:
        return HistoryStatus(
            path=str(self.path),
            available=self._writer is not None,
            error=self._error,
            written=self._written,
            dropped=self._dropped,
            pending=len(self._pending),
            pruned=self._pruned,
        )

    def update_settings(self, settings: HistorySettings) -> None:
        """New retention or bounds (a reload); the next retention pass applies them."""
        self.settings = settings
        self._next_prune = min(self._next_prune, trio.current_time())
        self._arrived.set()

    # ----- reads -------------------------------------------------------------

    async def activity(self, query: ActivityQuery) -> list[RequestRecord]:
        """Finished requests, newest first."""
        return await self._read(lambda db: db.activity(query))

    async def request(self, request_id: int) -> RequestRecord | None:
        """The latest request with this id, if it is still kept."""
        return await self._read(lambda db: db.request(request_id))

    async def history(self, query: HistoryQuery) -> list[HistoryRecord]:
        """Swaps, exits and reloads, newest first."""
        return await self._read(lambda db: db.history(query))

    async def stats(self, since: float, until: float | None = None) -> Stats:
        """Per-model figures of [since, until) (until: now)."""
        end = self._clock() if until is None else until
        return await self._read(lambda db: db.stats(since, end))

    async def load_times(self, model: str, limit: int = 20) -> list[float]:
        """Seconds of `model`'s latest successful loads, newest first."""
        return await self._read(lambda db: db.load_times(model, limit))

    async def _read(self, question: Callable[[Database], T]) -> T:
        # What finished before the question is part of the answer: the records
        # waiting for the writer's pace are written first (for a bounded time).
        with trio.move_on_after(READ_FLUSH_TIMEOUT):
            await self.flushed()
        async with self._read_lock:
            if self._reader is None:
                self._reader = await trio.to_thread.run_sync(Database.open_reader, self.path)
            reader = self._reader
            try:
                return await trio.to_thread.run_sync(question, reader)
            except sqlite3.Error as exc:
                # Opened again at the next question (the file may have been replaced).
                self._reader = None
                await trio.to_thread.run_sync(reader.close)
                raise HistoryUnavailable(f"cannot read {self.path}: {exc}") from None

    # ----- the writer --------------------------------------------------------

    async def _open(self, state_dir: Path | None) -> None:
        try:
            db = await trio.to_thread.run_sync(_open_writer, state_dir, self.path)
        except _STORAGE_ERRORS as exc:
            self._failed(f"cannot open {self.path}: {exc}")
            self._next_open = trio.current_time() + self.settings.reopen_interval
            return
        self._writer = db
        self.next_request_id = await trio.to_thread.run_sync(db.next_request_id)
        await self._prune()

    async def _run(self, state_dir: Path | None) -> None:
        """The writer task: batches to disk, retention, reopening after failures."""
        while True:
            with trio.move_on_at(self._next_prune):
                await self._arrived.wait()
                if not self._closing:
                    with trio.move_on_after(self.settings.flush_interval):
                        await self._full.wait()
            if self._arrived.is_set():
                self._arrived = trio.Event()
                self._full = trio.Event()
                batch, self._pending = self._pending, []
                if self._writer is None and trio.current_time() >= self._next_open:
                    await self._open(state_dir)
                await self._write(batch)
                self._done += len(batch)
                if not self._pending:
                    self._queue_full_logged = False
            if trio.current_time() >= self._next_prune:
                await self._prune()
            # After the retention pass too: a flush waited for now follows any pass due.
            self._progress.set()
            self._progress = trio.Event()

    async def _write(self, batch: list[AnyRecord]) -> None:
        if not batch:
            return
        db = self._writer
        if db is None:
            self._dropped += len(batch)
            return
        self._writer_busy = True
        try:
            # Abandoned on cancel: a write stuck on a dead disk must not hold up shutdown.
            await trio.to_thread.run_sync(
                db.write, batch, limiter=self._limiter, abandon_on_cancel=True
            )
        except _STORAGE_ERRORS as exc:
            self._writer_busy = False
            self._dropped += len(batch)
            self._failed(f"cannot write to {self.path}: {exc}")
            return
        self._writer_busy = False
        self._written += len(batch)
        if self._error is not None:
            log.warning("history: writing to %s again", self.path)
            self._error = None

    async def _prune(self) -> None:
        self._next_prune = trio.current_time() + self.settings.prune_interval
        db = self._writer
        if db is None:
            self._passes += 1
            return
        self._writer_busy = True
        try:
            self._pruned += await trio.to_thread.run_sync(
                db.prune, self.settings, self._clock(), limiter=self._limiter,
                abandon_on_cancel=True,
            )  # fmt: skip
        except _STORAGE_ERRORS as exc:
            self._failed(f"cannot apply retention to {self.path}: {exc}")
        self._writer_busy = False
        self._passes += 1

    def _failed(self, error: str) -> None:
        """Log the first failure of a run of them; the rest are only counted."""
        if self._error is None:
            log.warning("history: %s; records are dropped (and counted) until this works", error)
        self._error = error

    async def _close(self) -> None:
        """Write what waits (for at most `close_timeout`), then close the connections."""
        with trio.move_on_after(self.settings.close_timeout):
            await self.flushed()
        self._closing = True
        self._dropped += len(self._pending)
        self._done += len(self._pending)
        self._pending = []
        self._progress.set()
        for db in (self._reader, None if self._writer_busy else self._writer):
            if db is not None:
                with trio.move_on_after(self.settings.close_timeout):
                    await trio.to_thread.run_sync(db.close, abandon_on_cancel=True)
        self._reader = self._writer = None


def _open_writer(state_dir: Path | None, path: Path) -> Database:
    if state_dir is not None:
        ensure_state_dir(state_dir)
    return Database.open_writer(path)


@asynccontextmanager
async def open_history(
    state_dir: Path,
    settings: HistorySettings | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[HistoryStore]:
    """The store of `state_dir` (created 0700 if missing), its writer running.

    Never fails for storage reasons: an unusable directory or file gives a
    store that drops (and counts) what it is given, logs why once, and
    keeps trying to open the file. On exit the records still waiting are
    written, for at most `settings.close_timeout` seconds.
    """
    store = HistoryStore(database_path(state_dir), settings or HistorySettings(), clock=clock)
    async with trio.open_nursery() as nursery:
        await store._open(state_dir)
        nursery.start_soon(store._run, state_dir)
        try:
            yield store
        finally:
            with trio.CancelScope(shield=True):
                await store._close()
            nursery.cancel_scope.cancel()
