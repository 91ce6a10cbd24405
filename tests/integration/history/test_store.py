"""The store on trio: batches off the loop, restarts, bad disks, full queues, retention."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from swapd.history import (
    ActivityQuery,
    ExitRecord,
    HistoryQuery,
    HistorySettings,
    HistoryUnavailable,
    ReloadRecord,
    RequestRecord,
    SwapRecord,
    open_history,
)
from swapd.history.database import Database
from swapd.history.schema import SCHEMA_VERSION
from swapd.history.settings import DAY

REPO = Path(__file__).resolve().parents[3]
WAIT = 30  # seconds: a bound for waits on events, never reached when things work


def req(i: int, start: float | None = None, **fields: object) -> RequestRecord:
    base = RequestRecord(
        id=i, start=time.time() if start is None else start, client="127.0.0.1:5000",
        requested="chat", model="chat", route="/v1/chat/completions", stream=True,
        outcome="done", status=200, queued_s=0.0, load_wait_s=0.5, ttfb_s=0.6, duration_s=1.0,
        prompt_tokens=10, completion_tokens=20, tokens_per_s=40.0, swap_id=3,
    )  # fmt: skip
    return msgspec.structs.replace(base, **fields)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "swapd.history" and r.levelno >= logging.WARNING
    ]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


# ----- the records come back, across restarts --------------------------------------------


@pytest.mark.trio
async def test_history_survives_a_restart(state: Path) -> None:
    now = time.time()
    records = [
        req(1, now - 3),
        req(2, now - 2, outcome="failed", status=500, reason="load_failed: exited with code 1"),
        SwapRecord(swap_id=3, start=now - 4, target="chat", evicted=("code",), why="request 1",
                   set="main", cost=2, load_s=0.5, result="ok"),
        ExitRecord(time=now - 5, model="code", pid=4242, exit_code=None, signal="SIGTERM",
                   reason="evicted by chat", failed=False, uptime_s=30.0),
        ReloadRecord(time=now - 1, ok=True, source="control", path="/etc/swapd/config.yaml",
                     changed=("chat (cmd)",)),
    ]  # fmt: skip
    async with open_history(state) as store:
        assert store.next_request_id == 1
        for record in records:
            store.record(record)
    assert os.stat(state).st_mode & 0o777 == 0o700
    async with open_history(state) as store:  # a new run: nothing in memory
        assert store.next_request_id == 3
        assert await store.activity(ActivityQuery()) == [records[1], records[0]]
        assert await store.history(HistoryQuery()) == [records[4], records[2], records[3]]
        assert await store.request(1) == records[0]
        assert await store.load_times("chat") == [0.5]
        stats = await store.stats(now - 60)
        assert [(m.model, m.requests, m.errors, m.loads) for m in stats.models] == [
            ("chat", 2, 1, 1),
        ]
        assert store.status().written == 0 and store.status().available


@pytest.mark.trio
async def test_flushed_makes_records_readable_at_once(state: Path) -> None:
    settings = HistorySettings(flush_interval=3600, batch_size=10_000)
    async with open_history(state, settings) as store:
        store.record(req(1))
        await store.flushed()
        assert [r.id for r in await store.activity(ActivityQuery())] == [1]
        assert store.status().written == 1


@pytest.mark.trio
async def test_the_writer_waits_for_its_interval(state: Path, autojump_clock: Any) -> None:
    settings = HistorySettings(flush_interval=5.0, prune_interval=1e9)
    async with open_history(state, settings) as store:
        start = trio.current_time()
        store.record(req(1))
        await store.flushed(hurry=False)
        assert trio.current_time() - start == pytest.approx(5.0)


@pytest.mark.trio
async def test_a_full_batch_is_written_without_waiting(state: Path, autojump_clock: Any) -> None:
    settings = HistorySettings(flush_interval=1000.0, batch_size=10, prune_interval=1e9)
    async with open_history(state, settings) as store:
        start = trio.current_time()
        for i in range(10):
            store.record(req(i))
        await store.flushed(hurry=False)
        assert trio.current_time() - start < 1000.0
        assert store.status().written == 10


@pytest.mark.trio
async def test_waiting_records_are_written_on_the_way_out(state: Path) -> None:
    settings = HistorySettings(flush_interval=3600, batch_size=10_000)
    async with open_history(state, settings) as store:
        for i in range(5):
            store.record(req(i))
    async with open_history(state) as store:
        assert len(await store.activity(ActivityQuery())) == 5
    store.record(req(6))  # after close: dropped and counted, never raised
    assert store.status().dropped == 1


# ----- nothing touches the disk on the event loop -------------------------------------


@pytest.mark.trio
async def test_every_database_call_runs_off_the_loop(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[tuple[str, int]] = []

    def spy(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            threads.append((name, threading.get_ident()))
            return original(*args, **kwargs)

        return call

    for name in ("write", "prune", "next_request_id", "activity", "history", "stats",
                 "load_times", "request", "close"):  # fmt: skip
        monkeypatch.setattr(Database, name, spy(name, getattr(Database, name)))
    for name in ("open_writer", "open_reader"):
        original = getattr(Database, name).__func__
        monkeypatch.setattr(
            Database, name, classmethod(spy(name, lambda cls, p, o=original: o(cls, p)))
        )
    loop_thread = threading.get_ident()
    async with open_history(state) as store:
        store.record(req(1))
        await store.flushed()
        await store.activity(ActivityQuery())
        await store.history(HistoryQuery())
        await store.stats(0)
        await store.load_times("chat")
        await store.request(1)
    called = {name for name, _ in threads}
    assert called == {"open_writer", "open_reader", "write", "prune", "next_request_id",
                      "activity", "history", "stats", "load_times", "request", "close"}  # fmt: skip
    assert all(ident != loop_thread for _, ident in threads)


@pytest.fixture
def stalled_disk(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Make the first batch write hang until released: (entered, release)."""
    entered, release = threading.Event(), threading.Event()
    original = Database.write

    def write(self: Database, records: Any) -> None:
        entered.set()
        if not release.wait(WAIT):
            raise AssertionError("the stalled write was never released")
        original(self, records)

    monkeypatch.setattr(Database, "write", write)
    yield entered, release
    release.set()


@pytest.mark.trio
async def test_a_stalled_disk_never_stalls_the_loop_and_a_full_queue_drops_and_counts(
    state: Path,
    stalled_disk: tuple[threading.Event, threading.Event],
    caplog: pytest.LogCaptureFixture,
) -> None:
    entered, release = stalled_disk
    settings = HistorySettings(max_pending=1000, batch_size=10, flush_interval=0.001)
    async with open_history(state, settings) as store:
        store.record(req(0))
        with trio.fail_after(WAIT):
            await trio.to_thread.run_sync(entered.wait)  # the writer is stuck in its write
        for i in range(1, 50_001):
            store.record(req(i))  # returns at once, full or not
            if i % 1000 == 0:
                await trio.lowlevel.checkpoint()
        status = store.status()
        assert (status.pending, status.dropped, status.written) == (1000, 49_000, 0)
        assert len(warnings_of(caplog)) == 1 and "dropping new ones" in warnings_of(caplog)[0]
        release.set()
        with trio.fail_after(WAIT):
            await store.flushed()
        status = store.status()
        assert (status.pending, status.dropped, status.written) == (0, 49_000, 1001)
        assert len(await store.activity(ActivityQuery(limit=5000))) == 1001
    assert len(warnings_of(caplog)) == 1


@pytest.mark.trio
async def test_recording_50000_requests_costs_microseconds_and_keeps_the_loop_moving(
    state: Path,
) -> None:
    costs: list[float] = []
    gaps: list[float] = []
    done = False

    async def watch_the_loop() -> None:
        while not done:
            before = time.perf_counter()
            await trio.lowlevel.checkpoint()
            gaps.append(time.perf_counter() - before)

    records = [req(i) for i in range(50_000)]
    async with open_history(state) as store, trio.open_nursery() as nursery:
        nursery.start_soon(watch_the_loop)
        for i, record in enumerate(records):
            before = time.perf_counter()
            store.record(record)
            costs.append(time.perf_counter() - before)
            if i % 50 == 0:
                await trio.lowlevel.checkpoint()
        with trio.fail_after(WAIT):
            await store.flushed()
        done = True
        status = store.status()
    assert status.written + status.dropped == 50_000 and status.written > 0
    # Bounds far above what this takes, so a loaded machine passes, yet far
    # below what a write on the loop would cost (a batch takes milliseconds).
    assert statistics.median(costs) < 5e-6
    assert sorted(gaps)[int(len(gaps) * 0.99)] < 0.05


# ----- storage that fails -----------------------------------------------------------


def _drop_file_permission_override() -> None:
    """In the child, before exec: root loses the right to ignore file modes."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_without_write_access(state_dir: Path, records: int) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.history.readonly_child", str(state_dir),
         str(records)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        preexec_fn=_drop_file_permission_override,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_read_only_state_directory_drops_counts_and_logs_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o555)
    out = run_without_write_access(state, 10)
    status = out["status"]
    assert (status["available"], status["written"], status["dropped"]) == (False, 0, 10)
    assert "cannot open" in status["error"] and str(state) in status["error"]
    assert out["answered"] is None  # no history to read: an error, not an empty list
    assert len(out["logs"]) == 1 and out["logs"][0].startswith("WARNING history: cannot open")
    assert list(state.iterdir()) == []


def test_a_state_directory_that_cannot_be_created_is_no_error(tmp_path: Path) -> None:
    parent = tmp_path / "locked"
    parent.mkdir(mode=0o555)
    out = run_without_write_access(parent / "swapd", 3)
    assert (out["status"]["available"], out["status"]["dropped"]) == (False, 3)
    assert len(out["logs"]) == 1 and "Permission denied" in out["logs"][0]


def test_the_history_of_a_read_only_state_directory_can_still_be_read(tmp_path: Path) -> None:
    state = tmp_path / "state"

    async def earlier_run() -> None:
        async with open_history(state) as store:
            store.record(req(1))
            store.record(req(2))

    trio.run(earlier_run)
    for path in state.iterdir():
        path.chmod(0o444)
    state.chmod(0o555)
    out = run_without_write_access(state, 4)
    assert (out["status"]["available"], out["status"]["dropped"]) == (False, 4)
    assert out["answered"] == 2


@pytest.fixture
def small_disk(monkeypatch: pytest.MonkeyPatch) -> list[Database]:
    """Writers get a file that cannot grow (SQLite's "database or disk is full")."""
    opened: list[Database] = []
    original = Database.open_writer.__func__  # type: ignore[attr-defined]

    def open_writer(cls: type[Database], path: Path) -> Database:
        db = original(cls, path)
        pages = db.conn.execute("PRAGMA page_count").fetchone()[0]
        db.conn.execute(f"PRAGMA max_page_count = {pages + 1}")
        opened.append(db)
        return db

    monkeypatch.setattr(Database, "open_writer", classmethod(open_writer))
    return opened


@pytest.mark.trio
async def test_a_full_disk_drops_counts_logs_once_and_recovers(
    state: Path, small_disk: list[Database], caplog: pytest.LogCaptureFixture
) -> None:
    async with open_history(state, HistorySettings(batch_size=200)) as store:
        for batch in range(3):
            for i in range(200):
                store.record(req(batch * 1000 + i, reason="x" * 200))
            await store.flushed()  # never raises
        status = store.status()
        assert (status.written, status.dropped, status.available) == (0, 600, True)
        assert status.error is not None and "full" in status.error
        assert len(warnings_of(caplog)) == 1
        small_disk[0].conn.execute("PRAGMA max_page_count = 1000000")  # space again
        store.record(req(1))
        await store.flushed()
        assert (store.status().written, store.status().error) == (1, None)
        assert [r.id for r in await store.activity(ActivityQuery())] == [1]
    assert len(warnings_of(caplog)) == 2 and "again" in warnings_of(caplog)[1]


@pytest.fixture
def newer_file(state: Path) -> Path:
    state.mkdir()
    path = state / "history.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    return path


@pytest.mark.trio
async def test_a_file_from_a_newer_swapd_is_left_alone(
    state: Path, newer_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = await trio.Path(newer_file).read_bytes()
    async with open_history(state) as store:
        store.record(req(1))
        await store.flushed()
        assert not store.status().available and store.status().dropped == 1
        assert "newer" in (store.status().error or "")
    assert await trio.Path(newer_file).read_bytes() == before
    assert len(warnings_of(caplog)) == 1


@pytest.mark.trio
async def test_the_writer_opens_the_file_once_it_can(
    tmp_path: Path, autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.write_text("a file where the directory should be")
    settings = HistorySettings(reopen_interval=60.0)
    async with open_history(state, settings) as store:
        with pytest.raises(HistoryUnavailable):
            await store.activity(ActivityQuery())
        store.record(req(1))
        await store.flushed()
        assert store.status().dropped == 1
        state.unlink()
        store.record(req(2))
        await store.flushed()  # too soon to try again
        assert store.status().dropped == 2
        await trio.sleep(61)
        store.record(req(3))
        await store.flushed()
        status = store.status()
        assert (status.available, status.written, status.dropped, status.error) == (
            True, 1, 2, None,
        )  # fmt: skip
        assert [r.id for r in await store.activity(ActivityQuery())] == [3]
    assert len(warnings_of(caplog)) == 2


# ----- retention ------------------------------------------------------------------


@pytest.mark.trio
async def test_retention_at_open_and_then_periodically(state: Path, mock_clock: Any) -> None:
    # The clock moves only when told: a jump while a question is being read
    # would let the next pass delete rows under the reader.
    wall = [time.time()]
    settings = HistorySettings(retention_days=7, prune_interval=600)
    async with open_history(state, settings, clock=lambda: wall[0]) as store:
        store.record(req(1, wall[0] - 8 * DAY))  # already too old: goes at the next pass
        store.record(req(2, wall[0] - 6 * DAY))
        await store.flushed()
        assert [r.id for r in await store.activity(ActivityQuery())] == [2, 1]
        wall[0] += 2 * DAY  # now record 1 is 10 days old, record 2 eight
        mock_clock.jump(601)
        await store.flushed(hurry=False)  # the pass now due, run by the writer on its own
        assert store.status().pruned == 2
        assert await store.activity(ActivityQuery()) == []


@pytest.mark.trio
async def test_old_rows_go_when_the_store_opens(state: Path) -> None:
    now = time.time()
    async with open_history(state, HistorySettings(retention_days=0)) as store:
        store.record(req(1, now - 30 * DAY))
        store.record(req(2, now))
    async with open_history(state, HistorySettings(retention_days=7)) as store:
        assert [r.id for r in await store.activity(ActivityQuery())] == [2]
        assert store.status().pruned == 1


@pytest.mark.trio
async def test_new_retention_applies_at_the_next_flush(state: Path) -> None:
    now = time.time()
    async with open_history(state, HistorySettings(max_requests=0, prune_interval=3600)) as store:
        for i in range(10):
            store.record(req(i, now - 10 + i))
        await store.flushed()
        store.update_settings(HistorySettings(max_requests=3, prune_interval=3600))
        store.record(req(10, now))
        await store.flushed()
        assert [r.id for r in await store.activity(ActivityQuery())] == [10, 9, 8]
