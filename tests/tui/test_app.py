"""Pilot tests of the dashboard on an in-memory daemon: views, keys, filters, bursts."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest

from swapctl import protocol as p
from swaptui.screens.confirm import ConfirmScreen
from swaptui.screens.help import HelpScreen
from swaptui.screens.unload import UnloadScreen
from swaptui.screens.verdict import VerdictScreen
from swaptui.state import Verdict
from swaptui.widgets.log_view import LogView
from swaptui.widgets.models_table import ModelsTable
from tests.tui.fakes import (
    FAILURE,
    T0,
    FakeSource,
    make_app,
    rows_of,
    sample_models,
    screen_text,
    settle,
    until,
)

pytestmark = pytest.mark.anyio

WAIT = 10.0


async def started(pilot, source: FakeSource) -> None:  # type: ignore[no-untyped-def]
    await asyncio.wait_for(source.ready.wait(), WAIT)
    await settle(pilot)


async def acted(source: FakeSource) -> None:
    await asyncio.wait_for(source.acted.wait(), WAIT)
    source.acted.clear()


async def test_models_view_shows_every_model_with_its_state_and_the_legend() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        text = screen_text(app)
        assert "● connected │ swapd 0.1.0 │ up 3h02m │ 127.0.0.1:8080" in text
        rows = rows_of(text)
        # Every column fits in 80 columns, the last one included.
        assert "Model State PID Port Busy Wait Queue TTL Load Group/sets" in rows
        assert "embed ready 41240 5802 - - - - 420ms chat,code" in rows
        assert "llama-8b ready 41234 5801 2 - - 4m05s 3.4s chat" in rows
        assert "qwen-coder stopped - 5803 - - 3 (10m00s) - code" in rows
        assert "whisper stopped - 5804 - 1 - - 13s audio" in rows
        assert "states: ● stopped  ● starting  ● ready  ● stopping  ● failed  ● shutdown" in text
        assert "q Quit" in text


async def test_events_update_rows_in_place() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        source.emit(
            p.StateChanged(time=T0, model="qwen-coder", old="stopped", new="starting"),
            p.QueueChanged(time=T0, queued={"whisper": 2}, waiting={"qwen-coder": 5}),
        )
        await settle(pilot)
        rows = rows_of(screen_text(app))
        assert "qwen-coder starting - 5803 - 5 - (10m00s) - code" in rows
        assert "whisper stopped - 5804 - - 2 - 13s audio" in rows
        # The queue says who waits; what is in flight comes with the models reply.
        assert "llama-8b ready 41234 5801 2 - - 4m05s 3.4s chat" in rows


async def test_switching_views_with_number_keys() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        await pilot.press("2")
        await settle(pilot)
        assert app.current_view == "logs"
        text = screen_text(app)
        assert "22:03:24 llama-8b     main: server is listening on http://127.0.0.1:5801" in text
        assert "▼ following" in text
        await pilot.press("3")
        await settle(pilot)
        text = screen_text(app)
        assert app.current_view == "swaps"
        assert "llama-8b    swap    qwen-coder  3.4s  chat   3" in text
        # The routine "serve" decision shows only on request.
        assert "llama-8b    serve" not in text and "1 routine (grant, serve) hidden" in text
        await pilot.press("a")
        await settle(pilot)
        assert "llama-8b    serve" in screen_text(app)
        await pilot.press("4")
        await settle(pilot)
        text = screen_text(app)
        assert "chat" in text and "llama-8b & embed  ◀ running" in text
        assert "... 22 more" in text
        # The matrix view asked the daemon to explain the selected model.
        assert ("explain", "embed") in source.actions
        assert "embed (ready): serve" in text
        await pilot.press("1")
        await settle(pilot)
        assert app.current_view == "models"


async def test_selecting_a_model_and_loading_it_reaches_the_daemon() -> None:
    source = FakeSource(verdicts={"load": Verdict("load", True, "qwen-coder ready in 2.0s")})
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        # Rows are sorted: embed, llama-8b, qwen-72b, qwen-coder, whisper.
        await pilot.press("down", "down", "down")
        assert app.query_one(ModelsTable).selected_model == "qwen-coder"
        assert app.selected_model == "qwen-coder"
        await pilot.press("l")
        await acted(source)
        assert source.actions[-1] == ("load", "qwen-coder")
        await pilot.press("u")
        await acted(source)
        assert source.actions[-1] == ("unload", ["qwen-coder"])
        # The matrix view explains the selected model.
        await pilot.press("4")
        await settle(pilot)
        assert "qwen-coder (stopped): swap" in screen_text(app)
        assert "evicts llama-8b" in screen_text(app)


async def test_a_failed_model_says_how_and_when_under_the_table() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(pilot, source)
        assert app.selected_model == "embed" and not app.model_note.display
        await pilot.press("down", "down")  # qwen-72b: crashed twice in five starts
        await settle(pilot)
        note = f"qwen-72b: failed 2m05s ago: {FAILURE} (2 failures in 5 starts)"
        assert note in screen_text(app)
        # llama-8b crashes while serving: its row and the note follow the event.
        await pilot.press("up")
        source.emit(
            p.StateChanged(
                time=T0 - 4,
                model="llama-8b",
                old="ready",
                new="failed",
                reason="exited with code 3 while serving",
            )
        )
        await settle(pilot)
        text = screen_text(app)
        assert "llama-8b failed - 5801 - - - (5m00s) 3.4s chat" in rows_of(text)
        assert "llama-8b: failed 4.0s ago: exited with code 3 while serving" in text
        # The models reply the event prompts brings the daemon's counts.
        models = [
            msgspec.structs.replace(
                m,
                state="failed",
                pid=None,
                starts=3,
                failures=1,
                last_failure="exited with code 3 while serving",
                last_failure_at=T0 - 4,
            )
            if m.id == "llama-8b"
            else m
            for m in sample_models()
        ]
        source.reply_models(models)
        await settle(pilot)
        assert (
            "llama-8b: failed 4.0s ago: exited with code 3 while serving (1 failure in 3 starts)"
            in screen_text(app)
        )
        # A model that never failed has no note.
        await pilot.press("up")
        await settle(pilot)
        assert not app.model_note.display
        assert "failed 4.0s ago" not in screen_text(app)


async def test_unloading_a_busy_model_asks_whether_to_wait_or_cut() -> None:
    cut = Verdict(
        "unload",
        True,
        "unloaded llama-8b",
        warnings=("cut 2 requests in flight: their clients got an error",),
    )
    source = FakeSource(verdicts={"unload --now": cut})
    app = make_app(source)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await started(pilot, source)
        await pilot.press("down", "u")  # llama-8b, 2 requests in flight
        await settle(pilot)
        assert isinstance(app.screen, UnloadScreen)
        text = screen_text(app)
        assert "llama-8b is serving 2 requests in flight. Unload it:" in text
        assert "enter  wait for them to finish (at most its unloadTimeout)" in text
        assert "cut them now: their clients get an error" in text
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, UnloadScreen)
        assert source.actions == []
        # Enter: the default unload, which waits for them.
        await pilot.press("u", "enter")
        await acted(source)
        assert source.actions == [("unload", ["llama-8b"])]
        # c: cut them now; the verdict says how many were cut.
        await pilot.press("u", "c")
        await acted(source)
        assert source.actions[-1] == ("unload --now", ["llama-8b"])
        await until(pilot, lambda: app.state.verdict == cut, "the verdict")
        await until(pilot, lambda: "cut 2 requests in flight" in screen_text(app), "its toast")


async def test_unload_all_asks_first() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        await pilot.press("U")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "Running now: embed, llama-8b" in screen_text(app)
        await pilot.press("n")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert source.actions == []
        await pilot.press("U", "y")
        await acted(source)
        assert source.actions == [("unload", None)]


async def test_reload_shows_the_daemons_verdict_with_locations() -> None:
    problems = (
        'config.yaml:12:5: models.llama.ttl: expected int >= -1, got "soon"',
        "config.yaml:30:3: matrix.sets.big: unknown model 'nope'",
    )
    verdict = Verdict("reload", False, "config_invalid: 2 problems", problems)
    source = FakeSource(verdicts={"reload": verdict})
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        await pilot.press("r")
        await acted(source)
        await pilot.pause()
        await settle(pilot)
        assert isinstance(app.screen, VerdictScreen)
        text = screen_text(app)
        assert "config_invalid: 2 problems" in text
        assert 'config.yaml:12:5: models.llama.ttl: expected int >= -1, got "soon"' in text
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, VerdictScreen)


async def test_a_reload_verdict_shows_the_configs_warnings() -> None:
    verdict = Verdict(
        "reload",
        True,
        "/etc/swapd/config.yaml: reloaded (changed: llama-8b (cmd, env))",
        warnings=("config.yaml:40:3: models.lonely: in no set: it runs alone",),
    )
    source = FakeSource(verdicts={"reload": verdict})
    app = make_app(source)
    async with app.run_test(size=(100, 24)) as pilot:
        await started(pilot, source)
        await pilot.press("r")
        await acted(source)
        await until(pilot, lambda: isinstance(app.screen, VerdictScreen), "the verdict")
        text = screen_text(app)
        assert "✔ /etc/swapd/config.yaml: reloaded (changed: llama-8b (cmd, env))" in text
        assert "warning: config.yaml:40:3: models.lonely: in no set: it runs alone" in text


async def test_a_source_that_raises_becomes_a_verdict_not_a_crash() -> None:
    class Broken(FakeSource):
        async def load(self, model: str) -> Verdict:
            self.acted.set()
            raise RuntimeError("socket on fire")

    source = Broken()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        await pilot.press("l")
        await acted(source)
        await pilot.pause()
        assert app.state.verdict is not None
        assert app.state.verdict.message == "RuntimeError: socket on fire"
        assert app.is_running


async def test_filter_narrows_the_current_view_and_escape_clears_it() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        await pilot.press("slash", "q", "w", "e", "n", "enter")
        await settle(pilot)
        models = [line.split()[0] for line in screen_text(app).splitlines()[4:9] if line.strip()]
        assert models == ["qwen-72b", "qwen-coder"]
        await pilot.press("escape")
        await settle(pilot)
        assert "whisper" in screen_text(app)
        # In the logs the filter is a search whose matches stay highlighted.
        await pilot.press("2", "slash", "s", "l", "o", "t", "enter")
        await settle(pilot)
        view = app.query_one(LogView)
        assert [line.text for line in view.visible_lines()] == [
            "srv  update_slots: all slots are idle",
            "slot launch_slot_: id  0 | task 12",
            "slot release: id  0 | task 12 | error: none",
        ]
        assert "search slot" in screen_text(app)


async def test_log_sources_pause_and_follow() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        await pilot.press("2")
        view = app.query_one(LogView)
        await pilot.press("m")  # all -> proxy
        assert view.filter.source == "proxy"
        assert {line.source for line in view.visible_lines()} == {"proxy"}
        await pilot.press("m")  # proxy -> the first model
        assert view.filter.source == "embed"
        await pilot.press("1", "down", "2", "s")  # the selected model's log
        assert view.filter.source == "llama-8b"
        await pilot.press("1", "up", "enter")  # enter on a model opens its log
        assert app.current_view == "logs"
        assert view.filter.source == "embed"
        await pilot.press("1", "down", "enter")
        assert len(view.visible_lines()) == 4
        await pilot.press("p")
        assert view.paused
        source.emit(p.LogLines(time=T0, source="llama-8b", text="while paused\n"))
        await settle(pilot)
        assert view.line_count == 4
        assert "paused (+1 new)" in screen_text(app)
        await pilot.press("p")
        await settle(pilot)
        assert view.line_count == 5
        assert view.visible_lines()[-1].text == "while paused"


async def test_help_screen_lists_keys_and_the_state_legend() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        assert "reload the daemon's config and show its verdict" in text
        rows = [line.strip("│ ").split() for line in text.splitlines()]
        assert ["starting", "spawned,", "probing", "health", "→", "ready,", "stopped"] in rows
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, HelpScreen)


async def test_disconnected_header_says_why_and_when_it_retries() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(120, 24)) as pilot:
        await started(pilot, source)
        app.state.set_connection("disconnected", "no daemon at /run/swapd/control.sock", 4.0)
        await settle(pilot)
        header = screen_text(app).splitlines()[0]
        assert header.startswith(
            "✖ disconnected (retry 4.0s, #1): no daemon at /run/swapd/control.sock │ swapd 0.1.0"
        )
        assert "up " not in header


async def test_a_burst_of_10k_log_lines_keeps_the_app_responsive() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        await pilot.press("2")
        await settle(pilot)
        flushes = app.flushes
        began = time.monotonic()
        # 10k lines in 100 chunks, as a chatty llama-server delivers them, with the event
        # loop free between chunks so key presses interleave with the flood.
        for chunk in range(100):
            source.emit(
                p.LogLines(
                    time=T0,
                    source="llama-8b",
                    text="".join(f"token {chunk * 100 + i} generated\n" for i in range(100)),
                )
            )
            if chunk == 50:
                await pilot.press("p")
                await pilot.press("p")
            await asyncio.sleep(0)
        await settle(pilot)
        elapsed = time.monotonic() - began
        view = app.query_one(LogView)
        assert view.line_count == 8 + 10_000
        assert view.visible_lines()[-1].text == "token 9999 generated"
        # Repaints were coalesced: far fewer than the 100 chunks, let alone 10k lines.
        assert app.flushes - flushes < 100
        # Generous on a loaded 2-core machine; a per-line repaint takes tens of seconds.
        assert elapsed < 5.0
        # And a key still answers at once.
        began = time.monotonic()
        await pilot.press("1")
        await settle(pilot)
        assert app.current_view == "models"
        assert time.monotonic() - began < 2.0


async def test_lines_that_arrive_while_the_log_is_hidden_are_followed_when_shown() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        assert app.current_view == "models"
        text = "".join(f"hidden {i}\n" for i in range(200))
        source.emit(p.LogLines(time=T0, source="llama-8b", text=text))
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        assert app.query_one(LogView).visible_lines()[-1].text == "hidden 199"


async def test_only_the_readers_scrolling_stops_following() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        await pilot.press("2")
        view = app.query_one(LogView)
        view.focus()
        source.emit(
            p.LogLines(time=T0, source="llama-8b", text="".join(f"a {i}\n" for i in range(200)))
        )
        await settle(pilot)
        assert view.follow and view.visible_lines()[-1].text == "a 199"
        await pilot.press("pageup")
        await settle(pilot)
        assert not view.follow
        source.emit(p.LogLines(time=T0, source="llama-8b", text="b\n"))
        await settle(pilot)
        assert view.visible_lines()[-1].text != "b"  # the reader's place is kept
        await pilot.press("end")
        await settle(pilot)
        assert view.follow and view.visible_lines()[-1].text == "b"
