"""Model runs in the history file: written off the loop, read back into the books."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio

from swapd.history.runs import KEEP_ROWS, RunHistory, RunRow, books_data, insert_runs, read_rows
from swapd.history.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from swapd.process.meter import RunReport
from swapd.router.budget_books import RUNS_KEPT, Books


def test_books_from_rows_keep_the_last_runs_and_loads() -> None:
    rows = [RunRow("a", float(i), float(i), 100 + i, None) for i in range(8)]
    rows.append(RunRow("b", 9.0, None, None, 7))
    data = books_data(rows)
    assert data.peaks["a"] == {"ram": [100 + i for i in range(8 - RUNS_KEPT, 8)]}
    assert data.peaks["b"] == {"vram": [7]}
    assert "b" not in data.loads
    books = Books(data)
    assert books.footprints.measured("a") == {"ram": 107}
    assert books.costs.median_load("a") == 3.5  # every load kept: 0..7


def test_a_version_1_file_gains_the_table_and_rows_are_pruned(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "h.sqlite3", isolation_level=None)
    migrate(conn, MIGRATIONS[:1])
    assert migrate(conn) == (1, SCHEMA_VERSION)
    insert_runs(conn, [RunRow("a", float(i), 1.0, i, None) for i in range(KEEP_ROWS + 5)])
    rows = read_rows(conn)
    assert len(rows) == KEEP_ROWS and rows[0].peak_ram == 5


@pytest.mark.trio
async def test_runs_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    books = Books()
    history = RunHistory(books, path)
    async with trio.open_nursery() as nursery:
        await nursery.start(history.run)
        history.loaded("a", 2.0)
        history.run_ended(RunReport("a", 1.0, 2.0, {"ram": 300, "vram": 50}))
        with trio.fail_after(10):
            await history.flushed()
        nursery.cancel_scope.cancel()
    assert history.written == 1 and books.footprints.measured("a") == {"ram": 300, "vram": 50}

    again = Books()
    again.record_run("b", {"ram": 1})  # learnt before the file opened: kept too
    history = RunHistory(again, path)
    async with trio.open_nursery() as nursery:
        await nursery.start(history.run)
        nursery.cancel_scope.cancel()
    assert again.footprints.measured("a") == {"ram": 300, "vram": 50}
    assert again.footprints.measured("b") == {"ram": 1}
    assert again.costs.median_load("a") == 2.0


@pytest.mark.trio
async def test_without_a_usable_file_the_books_live_in_memory(tmp_path: Path) -> None:
    books = Books()
    history = RunHistory(books, tmp_path / "missing-dir" / "h.sqlite3")
    async with trio.open_nursery() as nursery:
        await nursery.start(history.run)
        history.run_ended(RunReport("a", 1.0, None, {"ram": 5}))
        nursery.cancel_scope.cancel()
    assert history.error is not None and books.footprints.measured("a") == {"ram": 5}
