"""What a new user hit, each pinned by a Pilot test on the in-memory daemon: keys act on
what the view shows, filters and sorting say what they hide, one row per swap, vi keys,
the greyed-out screen while the link is down, and an 80x24 terminal."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from swapctl import protocol as p
from swaptui.screens.detail import DetailScreen
from swaptui.screens.unload import UnloadScreen
from swaptui.widgets.log_view import LogView
from tests.tui.fakes import (
    T0,
    FakeSource,
    FixedClock,
    make_app,
    rows_of,
    sample_models,
    screen_text,
    settle,
)

pytestmark = pytest.mark.anyio

WAIT = 10.0


async def started(pilot, source: FakeSource) -> None:  # type: ignore[no-untyped-def]
    await asyncio.wait_for(source.ready.wait(), WAIT)
    await settle(pilot)


async def acted(source: FakeSource) -> None:
    await asyncio.wait_for(source.acted.wait(), WAIT)
    source.acted.clear()


def footer(app) -> str:  # type: ignore[no-untyped-def]
    return screen_text(app).splitlines()[-1]


def table_models(app) -> list[str]:  # type: ignore[no-untyped-def]
    """The model IDs of the models table, top to bottom."""
    names = {"embed", "llama-8b", "qwen-72b", "qwen-coder", "whisper"}
    firsts = [row.split()[0] for row in rows_of(screen_text(app)) if row.strip()]
    return [name for name in firsts if name in names]


async def test_l_and_u_act_on_what_the_current_view_shows_and_the_footer_names_it() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        assert "l Load embed" in footer(app) and "u Unload embed" in footer(app)
        # The Logs view shows llama-8b's log (all, proxy, embed, llama-8b): u is about it,
        # not about embed selected in the Models view, and it is serving: it asks first.
        await pilot.press("2", "m", "m", "m")
        await settle(pilot)
        assert app.log_view.filter.source == "llama-8b"
        assert "u Unload llama-8b" in footer(app)
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(app.screen, UnloadScreen)
        assert "llama-8b is serving 2 requests in flight" in screen_text(app)
        await pilot.press("enter")
        await acted(source)
        assert source.actions[-1] == ("unload", ["llama-8b"])
        # All sources at once show no one model: nothing to act on, and nothing is sent.
        await pilot.press("m", "m", "m", "m")
        await settle(pilot)
        assert app.log_view.filter.source is None
        assert "l Load -" in footer(app)
        await pilot.press("l")
        await settle(pilot)
        assert [a for a in source.actions if a[0] == "load"] == []
        # The Swaps view: the selected row's target (newest first: whisper, qwen-coder).
        await pilot.press("3")
        await settle(pilot)
        assert "l Load whisper" in footer(app)
        await pilot.press("j")
        await settle(pilot)
        assert "l Load qwen-coder" in footer(app)
        await pilot.press("l")
        await acted(source)
        assert source.actions[-1] == ("load", "qwen-coder")
        # The Matrix view: the model it explains, the Models view's selection.
        await pilot.press("4")
        await settle(pilot)
        assert "u Unload embed" in footer(app)


async def test_the_active_filter_is_shown_in_every_view_with_no_match_when_empty() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        await pilot.press("slash", "q", "w", "e", "n", "enter")
        await settle(pilot)
        assert "filter qwen  2 shown" in screen_text(app)
        # Typing after / replaces the filter.
        await pilot.press("slash", "q", "x", "enter")
        await settle(pilot)
        assert "filter qx  no match" in screen_text(app)
        # Nothing shown: nothing for l and u to act on.
        assert "l Load -" in footer(app)
        for view in ("2", "3", "4"):
            await pilot.press(view, "slash", "z", "z", "z", "enter")
            await settle(pilot)
            assert "filter zzz  no match" in screen_text(app), view
        # Each view keeps its own filter, and says so when shown again.
        await pilot.press("1")
        await settle(pilot)
        assert "filter qx  no match" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot)
        assert "filter" not in screen_text(app).splitlines()[-2]
        await pilot.press("3", "escape", "slash", "l", "l", "enter")
        await settle(pilot)
        assert "filter ll  1 shown" in screen_text(app)


async def test_pause_and_follow_show_their_state_at_once() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        await pilot.press("2")
        await settle(pilot)
        assert "▼ following" in screen_text(app)
        # No log line arrives and no repaint tick runs: the key alone must show.
        await pilot.press("p")
        await pilot.pause()
        assert "⏸ paused (+0 new)" in screen_text(app)
        await pilot.press("f")
        await pilot.pause()
        assert "▼ following" in screen_text(app)
        await pilot.press("g")
        await pilot.pause()
        assert "scrolled (End to follow)" in screen_text(app) or not app.log_view.max_scroll_y


async def test_one_row_per_swap_and_enter_opens_its_detail() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(pilot, source)
        source.emit(
            p.DecisionMade(
                time=T0 - 5,
                decision=p.Decision(
                    time=T0 - 5,
                    model="qwen-coder",
                    action="swap",
                    why="not running; set code is the cheapest",
                    evict=["llama-8b"],
                    set="code",
                    cost=2,
                    swap=7,
                    input="request",
                    running=["embed", "llama-8b"],
                ),
            ),
            p.SwapStarted(
                time=T0 - 5, target="qwen-coder", evict=["llama-8b"], set="code", cost=2, swap=7
            ),
            p.DecisionMade(
                time=T0 - 4,
                decision=p.Decision(
                    time=T0 - 4, model="qwen-coder", action="queue", why="loading", swap=7
                ),
            ),
            p.SwapFinished(time=T0 - 3, target="qwen-coder", duration=2.0, swap=7),
        )
        await pilot.press("3")
        await settle(pilot)
        swaps = [row for row in rows_of(screen_text(app)) if " qwen-coder swap " in f" {row} "]
        assert len(swaps) == 1
        assert swaps[0].startswith("22:13:15 qwen-coder swap llama-8b 2.0s code 2 ok not running")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        text = screen_text(app)
        for expected in (
            "swap #7",
            "evicted       llama-8b",
            "load time     2.0s",
            "result        ok",
            "running then  embed, llama-8b",
            "queue qwen-coder  loading",
        ):
            assert expected in text, expected
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, DetailScreen)


async def test_vi_keys_and_home_end_move_the_cursor() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        for key, model in (
            ("j", "llama-8b"),
            ("j", "qwen-72b"),
            ("k", "llama-8b"),
            ("G", "whisper"),
            ("g", "embed"),
            ("end", "whisper"),
            ("home", "embed"),
        ):
            await pilot.press(key)
            assert app.selected_model == model, key
        await pilot.press("3", "G")
        assert app.timeline.cursor_row == app.timeline.row_count - 1
        await pilot.press("g")
        assert app.timeline.cursor_row == 0
        # The log: g to the top stops following, G resumes it.
        source.emit(
            p.LogLines(time=T0, source="llama-8b", text="".join(f"l {i}\n" for i in range(100)))
        )
        await pilot.press("2")
        await settle(pilot)
        view = app.query_one(LogView)
        await pilot.press("g")
        await settle(pilot)
        assert not view.follow and view.scroll_offset.y == 0
        await pilot.press("G")
        await settle(pilot)
        assert view.follow and view.visible_lines()[-1].text == "l 99"
        await pilot.press("k")
        await settle(pilot)
        assert not view.follow


async def test_columns_sort_and_the_order_is_shown() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        assert table_models(app) == ["embed", "llama-8b", "qwen-72b", "qwen-coder", "whisper"]
        await pilot.press("o", "o")  # Model, then State
        await settle(pilot)
        assert "sorted by State ▲" in screen_text(app)
        assert table_models(app) == ["qwen-72b", "embed", "llama-8b", "qwen-coder", "whisper"]
        await pilot.press("O")
        await settle(pilot)
        assert "sorted by State ▼" in screen_text(app)
        assert table_models(app) == ["qwen-coder", "whisper", "embed", "llama-8b", "qwen-72b"]
        # Load time, longest first: the models never loaded stay last either way.
        await pilot.press(*"ooooooo")
        await settle(pilot)
        assert "sorted by Load ▼" in screen_text(app)
        assert table_models(app)[:3] == ["whisper", "llama-8b", "embed"]
        # The cursor stays on the model it was on.
        assert app.selected_model == "embed"


async def test_the_screen_greys_out_while_disconnected_and_says_when_it_is_back() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(100, 24), notifications=True) as pilot:
        await started(pilot, source)
        assert not app.tabs.has_class("-offline")
        app.state.set_connection("disconnected", "no daemon at /run/swapd/control.sock", 1.0)
        await settle(pilot)
        assert app.tabs.has_class("-offline")
        clock = app.state.clock
        assert isinstance(clock, FixedClock)
        clock.now += 12
        app.state.set_connection("connecting")
        await settle(pilot)
        assert app.tabs.has_class("-offline")
        app.state.set_connection("connected")
        await settle(pilot)
        assert not app.tabs.has_class("-offline")
        header = screen_text(app).splitlines()[0]
        assert header.startswith("● connected (reconnected 22:13:32 after 12s) │ swapd")
        assert "reconnected to fake" in screen_text(app)


@pytest.mark.parametrize("view", ["1", "2", "3", "4"])
async def test_every_view_is_usable_at_80x24(view: str) -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        await pilot.press(view)
        await settle(pilot)
        lines = screen_text(app).splitlines()
        assert lines[0].startswith("● connected │ swapd 0.1.0 │ up 3h02m")
        assert "1 Models  2 Logs  3 Swaps  4 Matrix" in lines[2]
        # Quitting, help and the keys on the view's model are always on the footer.
        for key in ("q Quit", "? Help", "l Load", "u Unload", "/ Filter"):
            assert key in lines[-1], (key, lines[-1])


async def test_the_header_sums_up_what_runs_and_what_waits() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        assert (
            screen_text(app)
            .splitlines()[1]
            .startswith("2/5 running │ in flight 2 │ queued 4 │ 0.0 req/s")
        )
        source.emit(
            *(
                p.RequestEvent(time=T0, model="llama-8b", phase="done", request=str(i))
                for i in range(3)
            )
        )
        await settle(pilot)
        assert "│ 0.3 req/s" in screen_text(app).splitlines()[1]
        # Memory and GPU once the daemon's meters report them, summed over the models.
        gib = 1 << 30
        meters = {
            "llama-8b": p.Meters(cpu_percent=80, ram=5 * gib, vram=gib),
            "embed": p.Meters(cpu_percent=2, ram=gib),
        }
        source.reply_models(
            [msgspec.structs.replace(m, meters=meters.get(m.id)) for m in sample_models()]
        )
        await settle(pilot)
        assert screen_text(app).splitlines()[1].rstrip().endswith("req/s │ mem 6.0G │ gpu 1.0G")
        await pilot.press("j", "d")
        await settle(pilot)
        text = screen_text(app)
        for expected in ("cpu         80%", "memory      5.0G", "gpu memory  1.0G"):
            assert expected in text, expected


async def test_d_opens_the_live_detail_of_the_views_model() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(100, 40)) as pilot:
        await started(pilot, source)
        await pilot.press("j", "d")  # llama-8b
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        text = screen_text(app)
        for expected in (
            "model llama-8b",
            "command     llama-server --port 5801 -m llama-8b.gguf",
            "env         CUDA_VISIBLE_DEVICES=0",
            "proxy       http://127.0.0.1:5801",
            "aliases     gpt-4o-mini",
            "ttl         5m00s",
            "requests    2 in flight, 0 queued, 0 waiting",
            "22:03:20    loaded, evicting qwen-coder  3.4s",
            "memory and CPU: not measured (no process)",
        ):
            assert expected in text, expected
        # Live: a crash and a finished request show while it is open.
        source.emit(
            p.RequestEvent(
                time=T0 - 2,
                model="llama-8b",
                phase="finished",
                request="41",
                record=p.RequestRecord(
                    id=41,
                    start=T0 - 2,
                    model="llama-8b",
                    route="/v1/completions",
                    status=200,
                    duration_s=0.8,
                    tokens_per_s=52.0,
                ),
            ),
            p.StateChanged(
                time=T0 - 1,
                model="llama-8b",
                old="ready",
                new="failed",
                reason="exited with code 3",
            ),
        )
        await settle(pilot)
        text = screen_text(app)
        assert "state       failed for 1.0s: exited with code 3" in text
        assert "22:13:18    200 done  800ms  52.0 tok/s  #41 /v1/completions" in text
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, DetailScreen)
        # The Swaps view's model is the selected row's target.
        await pilot.press("3", "d")
        await settle(pilot)
        assert "model whisper" in screen_text(app)


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param(("j",), id="models"),
        pytest.param(("2", "m", "m", "m"), id="logs"),
        pytest.param(("3", "j", "j"), id="swaps"),
        pytest.param(("j", "4"), id="matrix"),
        pytest.param(("5",), id="activity"),
    ],
)
async def test_unloading_a_serving_model_asks_first_from_every_view(keys: tuple[str, ...]) -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, source)
        await pilot.press(*keys)
        await settle(pilot)
        assert app.view_target() == "llama-8b"  # 2 requests in flight
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(app.screen, UnloadScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert not [a for a in source.actions if a[0].startswith("unload")]
