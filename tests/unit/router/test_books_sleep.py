"""Asleep footprints and wake times in the books: recorded per run, kept as plain data (so
across restarts), and read by the footprint table the planner and `swapctl models` use."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as hs

from swapd.history.database import Database
from swapd.history.runs import RunHistory, RunRow, books_data, read_rows, row_of
from swapd.process.meter import RunReport
from swapd.router.budget_books import LOADS_KEPT, RUNS_KEPT, Books, BooksData
from swapd.router.footprints import Budgeting, FootprintTable, Learned, ModelResources

GIB = 1 << 30


def test_asleep_peaks_and_wakes_round_trip_through_data() -> None:
    books = Books()
    books.record_run("a", {"ram": 8 * GIB, "vram": 20 * GIB}, {"ram": 7 * GIB, "vram": GIB})
    books.record_run("a", {"ram": 8 * GIB}, {})  # a run that never slept
    books.record_wake("a", 1.5)
    books.record_wake("a", 0.5)
    again = Books(books.data())
    assert again.asleep.measured("a") == {"ram": 7 * GIB, "vram": GIB}
    assert again.costs.median_wake("a") == 1.0
    assert again.data() == books.data()


@given(
    hs.lists(hs.floats(min_value=0, max_value=1e4, allow_nan=False), max_size=30),
    hs.lists(hs.integers(min_value=0, max_value=1 << 40), max_size=20),
)
def test_the_books_keep_the_last_wakes_and_asleep_runs(
    wakes: list[float], peaks: list[int]
) -> None:
    books = Books()
    for seconds in wakes:
        books.record_wake("a", seconds)
    for peak in peaks:
        books.record_run("a", {"ram": peak + 1}, {"ram": peak})
    data = books.data()
    assert data.wakes.get("a", []) == wakes[-LOADS_KEPT:]
    assert data.asleep.get("a", {}).get("ram", []) == peaks[-RUNS_KEPT:]
    assert Books(data).data() == data


def test_rows_give_the_last_wakes_across_runs_oldest_first() -> None:
    rows = [
        RunRow("a", float(i), 1.0, 100, None, asleep_ram=10 + i, wakes=(float(i), float(i) + 0.5))
        for i in range(8)
    ]
    rows.append(RunRow("b", 9.0, 1.0, 5, None))  # never slept
    data = books_data(rows)
    assert data.wakes["a"] == [w for i in range(8) for w in (float(i), i + 0.5)][-LOADS_KEPT:]
    assert data.asleep["a"] == {"ram": [10 + i for i in range(8 - RUNS_KEPT, 8)]}
    assert "b" not in data.wakes and "b" not in data.asleep


@pytest.mark.trio
async def test_a_run_row_carries_the_wakes_of_that_run_and_a_restart_reads_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "history.sqlite3"
    books = Books()
    history = RunHistory(books, path)
    async with trio.open_nursery() as nursery:
        await nursery.start(history.run)
        history.record_wake("a", 0.75)
        history.record_wake("a", 0.25)
        history.record_wake("b", 9.0)
        assert books.costs.median_wake("a") == 0.5  # in the books at once
        history.run_ended(RunReport("a", 1.0, 2.0, {"ram": 300}, {"ram": 100}))
        history.run_ended(RunReport("a", 5.0, 2.0, {"ram": 300}))  # the next run: no wakes
        with trio.fail_after(10):
            await history.flushed()
        nursery.cancel_scope.cancel()
    assert books.asleep.measured("a") == {"ram": 100}
    db = Database.open_writer(path)
    try:
        rows = read_rows(db.conn)
    finally:
        db.close()
    assert [(r.model, r.wakes, r.asleep_ram) for r in rows] == [
        ("a", (0.75, 0.25), 100),
        ("a", (), None),
    ]

    again = Books()
    history = RunHistory(again, path)
    async with trio.open_nursery() as nursery:
        await nursery.start(history.run)
        nursery.cancel_scope.cancel()
    assert again.costs.median_wake("a") == 0.5
    assert again.asleep.measured("a") == {"ram": 100}
    assert again.costs.median_wake("b") is None  # b's run has not ended: not written


def test_row_of_keeps_the_asleep_peaks_and_the_last_wakes() -> None:
    report = RunReport("a", 1.0, 2.0, {"ram": 300, "vram": 50}, {"ram": 100, "vram": 0})
    row = row_of(report, [float(i) for i in range(20)])
    assert (row.asleep_ram, row.asleep_vram) == (100, 0)
    assert row.wakes == tuple(float(i) for i in range(20 - LOADS_KEPT, 20))
    assert row_of(RunReport("b", 1.0, None, {"ram": 3})).asleep_ram is None


def table(books: Books, live_asleep: dict[str, int] | None = None) -> FootprintTable:
    learned = Learned(books=books, live_asleep=lambda m: (live_asleep or {}) if m == "a" else {})
    return FootprintTable(
        Budgeting(capacity={"ram": 64 * GIB, "vram": 24 * GIB}),
        {
            "a": ModelResources(
                declared={"ram": 8 * GIB, "vram": 20 * GIB}, sleeps=True, asleep={"ram": GIB}
            )
        },
        learned,
    )


def test_the_asleep_footprint_is_learnt_from_past_runs_not_only_the_live_one() -> None:
    books = Books(BooksData(asleep={"a": {"ram": [6 * GIB], "vram": [GIB]}}))
    t = table(books)
    assert t.asleep_measured("a") == {"ram": 6 * GIB, "vram": GIB}
    # Planned asleep: the measured peaks with the margin, above the declared 1 GiB.
    assert t.asleep_planned("a") == {"ram": -(-6 * GIB * 11 // 10), "vram": -(-GIB * 11 // 10)}
    # The run in progress counts too, where it is higher.
    t = table(books, {"ram": 7 * GIB})
    assert t.asleep_measured("a") == {"ram": 7 * GIB, "vram": GIB}
    # Nothing learnt: the declared amount, and vram released.
    assert table(Books()).asleep_planned("a") == {"ram": GIB}
