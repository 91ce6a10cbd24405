"""The Activity view: finished requests live, filtered by model and outcome, sorted, and
each record (with its capture) on Enter."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from swapctl import protocol as p
from swaptui.screens.detail import DetailScreen
from swaptui.state import DashboardState
from tests.tui.fakes import (
    T0,
    FakeSource,
    FixedClock,
    make_app,
    rows_of,
    sample_records,
    screen_text,
    settle,
    until,
)

pytestmark = pytest.mark.anyio


async def started(pilot, source: FakeSource) -> None:  # type: ignore[no-untyped-def]
    await asyncio.wait_for(source.ready.wait(), 10)
    await settle(pilot)


def activity_rows_on_screen(app) -> list[str]:  # type: ignore[no-untyped-def]
    return [row for row in rows_of(screen_text(app)) if row[:2].isdigit() and row[2] == ":"]


async def test_the_activity_view_lists_finished_requests_newest_first() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        await pilot.press("5")
        await settle(pilot)
        text = screen_text(app)
        assert "Time Model Status Queue Load TTFB Dur Tokens Tok/s" in rows_of(text)
        assert activity_rows_on_screen(app) == [
            "22:12:50 llama-8b gone 200 0ms - 90ms 1.4s 31/12 -",
            "22:11:10 qwen-72b fail 502 200ms 12s - 12s - -",
            "22:10:00 embed 200 0ms - 12ms 15ms 9/? -",
            "22:09:20 llama-8b 200 0ms 3.4s 3.6s 5.2s 24/180 113.2",
        ]
        assert "4 of 4 requests  outcome all" in text
        assert "q Quit" in text.splitlines()[-1]
        # A request finishing now comes on top, live; the cursor stays on its record.
        await pilot.press("j")
        assert app.activity_table.selected_record is not None
        assert app.activity_table.selected_record.id == 103
        new = msgspec.structs.replace(sample_records()[1], id=105, start=T0 - 1, duration_s=0.5)
        source.emit(
            p.RequestEvent(time=T0, model="embed", phase="finished", request="105", record=new)
        )
        top = "22:13:19 embed 200 0ms - 12ms 500ms 9/? -"
        await until(pilot, lambda: activity_rows_on_screen(app)[0] == top, "the new row on top")
        assert app.activity_table.selected_record.id == 103
        # l and u act on the model of the selected record.
        assert "u Unload qwen-72b" in screen_text(app).splitlines()[-1]


async def test_activity_filters_by_model_and_outcome_and_sorts() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        await pilot.press("5", "slash", "l", "l", "a", "enter")
        await settle(pilot)
        assert [row.split()[1] for row in activity_rows_on_screen(app)] == [
            "llama-8b",
            "llama-8b",
        ]
        assert "filter lla  2 shown" in screen_text(app)
        await pilot.press("e")  # done only
        await settle(pilot)
        assert [row.split()[0] for row in activity_rows_on_screen(app)] == ["22:09:20"]
        assert "filter lla  outcome done  1 shown" in screen_text(app)
        await pilot.press("e", "e")  # aborted
        await settle(pilot)
        assert activity_rows_on_screen(app) == []
        assert "outcome aborted  no match" in screen_text(app)
        await pilot.press("escape", "e")  # failed, any model
        await settle(pilot)
        assert [row.split()[1] for row in activity_rows_on_screen(app)] == ["qwen-72b"]
        await pilot.press("e")  # back to every outcome
        await settle(pilot)
        assert len(activity_rows_on_screen(app)) == 4
        # Sorted by duration, longest first.
        await pilot.press(*"oooooooO")
        await settle(pilot)
        assert "sorted by Dur ▼" in screen_text(app)
        durations = [row.split()[-3] for row in activity_rows_on_screen(app)]
        assert durations == ["12s", "5.2s", "1.4s", "15ms"]


async def test_enter_opens_the_record_and_its_capture() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(100, 50)) as pilot:
        await started(pilot, source)
        await pilot.press("5", "G", "enter")  # the oldest: request 101, captured
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        await until(pilot, lambda: 101 in app.state.captures, "the capture")
        assert ("capture", 101) in source.actions
        text = screen_text(app)
        for expected in (
            "request #101",
            "requested   gpt-4o-mini",
            "model       llama-8b",
            "client      127.0.0.1:50412",
            "route       /v1/chat/completions",
            "stream      yes",
            "outcome     200  done",
            "load wait   3.4s (swap #3)",
            "tokens      24/180 (prompt/completion)",
            "tokens/s    113.2",
            "request hdr    authorization: [REDACTED]",
            '"model": "gpt-4o-mini",',
            "response body  data: [DONE]",
        ):
            assert expected in text, expected
        await pilot.press("escape", "g", "j", "enter")  # request 103: failed, no capture
        await settle(pilot)
        text = screen_text(app)
        assert "outcome     fail 502  failed: qwen-72b exited with code -11 while starting" in text
        assert "none kept" in text


async def test_a_daemon_without_records_says_so() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        app.state.records.clear()
        app.state.activity_unavailable("this swapd speaks protocol 1: it keeps no request records")
        await pilot.press("5")
        await settle(pilot)
        assert "this swapd speaks protocol 1: it keeps no request records" in screen_text(app)


def test_records_are_kept_once_each_newest_first_and_bounded() -> None:
    state = DashboardState(clock=FixedClock(), max_activity=3)
    records = sample_records()
    state.apply_activity(reversed(records[:2]))  # a reply: newest first
    state.add_record(records[1])  # the topic's copy of one of them
    assert [r.id for r in state.activity()] == [102, 101]
    for record in records[2:]:
        state.add_record(record)
    assert [r.id for r in state.activity()] == [104, 103, 102]
    assert [r.id for r in state.model_records("llama-8b")] == [104]
    state.apply_capture(103, "none kept")
    assert state.captures == {103: "none kept"}


async def test_a_burst_of_finished_requests_rebuilds_the_table_a_few_times_only() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        await pilot.press("5")
        await settle(pilot)
        before = app.activity_rebuilds
        base = sample_records()[1]
        for i in range(300):
            record = msgspec.structs.replace(base, id=1000 + i, start=T0 + i / 1000)
            source.emit(p.RequestEvent(time=T0, model="embed", phase="finished", record=record))
            app.flush()
            await asyncio.sleep(0)
        await until(
            pilot, lambda: "304 of 304 requests (first 200 shown)" in screen_text(app), "all"
        )
        # Coalesced: a rebuild per repaint period, not per request.
        assert app.activity_rebuilds - before <= 5
