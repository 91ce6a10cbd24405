"""The pure rendering functions behind each widget, and the CLI and backoff policy."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console, RenderableType

from swapctl import protocol as p
from swaptui.cli import parse_args
from swaptui.connection import (
    Backoff,
    Target,
    error_verdict,
    make_target,
    reload_result_verdict,
    unload_verdict,
)
from swaptui.screens.help import help_renderable
from swaptui.screens.unload import unload_question
from swaptui.screens.verdict import verdict_text
from swaptui.state import DashboardState, LegendEntry, LogLine, TimelineEntry, Verdict
from swaptui.widgets.header import header_text, short_path
from swaptui.widgets.log_view import clean, line_segments
from swaptui.widgets.matrix_view import explain_renderable, matrix_renderable
from swaptui.widgets.models_table import legend_text, model_note, model_rows
from swaptui.widgets.palette import STATE_STYLES, state_style
from swaptui.widgets.timeline import entry_detail, timeline_rows
from swaptui.widgets.timeline import status_text as timeline_status
from tests.tui.fakes import DAEMON, FAILURE, T0, FixedClock, sample_matrix, sample_models


def text_of(renderable: RenderableType, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def cells_text(cells: tuple[object, ...]) -> list[str]:
    return [str(cell) for cell in cells]


# -- header -------------------------------------------------------------------


def test_header_when_connected_and_when_down() -> None:
    state = DashboardState(clock=FixedClock())
    assert header_text(state).plain == "◌ connecting"
    state.apply_welcome(p.Welcome(protocol=1, daemon=DAEMON))
    state.apply_status(p.Status(daemon=DAEMON, uptime=61, models=0, states={}, running=[]))
    state.set_connection("connected")
    assert header_text(state).plain == (
        "● connected │ swapd 0.1.0 │ up 1m01s │ 127.0.0.1:8080 │ /etc/swapd/config.yaml"
    )
    state.apply_lagged(3)
    assert header_text(state).plain.endswith("│ missed 3")
    state.set_connection("disconnected", "connection refused", retry_in=1.5)
    assert header_text(state).plain.startswith(
        "✖ disconnected (retry 1.5s, #1): connection refused │ swapd 0.1.0 │ 127.0.0.1:8080"
    )


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/etc/swapd/config.yaml", "/etc/swapd/config.yaml"),
        ("/tmp/swaptui_scratch/demo/some/demo.yaml", "…/some/demo.yaml"),
        ("relative.yaml", "relative.yaml"),
    ],
)
def test_short_path(path: str, shown: str) -> None:
    assert short_path(path) == shown


# -- models -----------------------------------------------------------------


def test_model_rows_are_sorted_filtered_and_formatted() -> None:
    state = DashboardState(clock=FixedClock())
    state.apply_models(sample_models())
    rows = model_rows(state)
    assert [key for key, _ in rows] == ["embed", "llama-8b", "qwen-72b", "qwen-coder", "whisper"]
    assert cells_text(rows[1][1]) == [
        "llama-8b",
        "ready",
        "41234",
        "5801",
        "2",
        "-",
        "-",
        "4m05s",
        "3.4s",
        "chat",
    ]
    assert cells_text(rows[4][1])[4:7] == ["-", "1", "-"]  # whisper: one request waits
    assert [key for key, _ in model_rows(state, "QWEN")] == ["qwen-72b", "qwen-coder"]
    assert model_rows(state, "nothing") == []


def test_failed_has_a_colour_of_its_own() -> None:
    failed = state_style("failed")
    assert failed == STATE_STYLES["failed"]
    assert all(failed != style for state, style in STATE_STYLES.items() if state != "failed")
    assert failed.bgcolor is not None  # a badge: it stands out of a column of states


def test_the_note_says_how_and_when_the_selected_model_failed() -> None:
    state = DashboardState(clock=FixedClock())
    state.apply_models(sample_models())
    note = model_note(state.models["qwen-72b"], T0)
    assert note is not None
    assert note.plain == f"qwen-72b: failed 2m05s ago: {FAILURE} (2 failures in 5 starts)"
    assert note.style == "bold red"
    # Never failed: no note at all.
    assert model_note(state.models["embed"], T0) is None
    assert model_note(None, T0) is None
    # Running again after a crash: the history stays in view, quietly.
    state.apply_event(p.StateChanged(time=T0, model="qwen-72b", old="failed", new="starting"))
    note = model_note(state.models["qwen-72b"], T0 + 3600)
    assert note is not None and note.style == "dim"
    assert note.plain.startswith("qwen-72b: failed 1h02m ago: killed by SIGSEGV")
    # A failure the daemon reported in an event, before its counts arrive.
    state.apply_event(
        p.StateChanged(time=T0 - 1, model="embed", old="ready", new="failed", reason="x")
    )
    note = model_note(state.models["embed"], T0)
    assert note is not None and note.plain == "embed: failed 1.0s ago: x (0 failures in 0 starts)"


def test_legend_names_every_state_in_the_daemons_order() -> None:
    legend = (LegendEntry("stopped"), LegendEntry("ready"), LegendEntry("hibernating"))
    assert legend_text(legend).plain == "states: ● stopped  ● ready  ● hibernating"


# -- logs -----------------------------------------------------------------------


def test_clean_strips_ansi_and_control_characters() -> None:
    assert clean("\x1b[31merror\x1b[0m:\tboom\x07\r") == "error:  boom"


def test_line_segments_mark_every_match_case_insensitively() -> None:
    line = LogLine(0, T0, "llama-8b", "Slot 0 slot 1")
    segments = line_segments(line, "slot", show_source=True)
    assert "".join(s.text for s in segments) == "22:13:20 llama-8b     Slot 0 slot 1"
    marked = [s.text for s in segments if s.style is not None and s.style.reverse]
    assert marked == ["Slot", "slot"]
    assert "".join(s.text for s in line_segments(line, "", show_source=False)) == (
        "22:13:20 Slot 0 slot 1"
    )


@given(st.text(max_size=30), st.text(min_size=1, max_size=3))
def test_line_segments_keep_the_text_whole(text: str, needle: str) -> None:
    line = LogLine(0, T0, "m", text)
    joined = "".join(s.text for s in line_segments(line, needle, show_source=False))
    assert joined == "22:13:20 " + clean(text)


# -- timeline -----------------------------------------------------------------------


def test_timeline_rows_newest_first_with_filter_on_target_and_evicted() -> None:
    entries = [
        TimelineEntry(T0, "swap", "a", "swap", ("b",), "collision", 2.5, "s", 3, "ok"),
        TimelineEntry(T0 + 1, "decision", "c", "queue", why="busy"),
        TimelineEntry(T0 + 2, "swap", "d", "swap"),
    ]
    shown, hidden = timeline_rows(entries)
    rows = [cells for _, cells in shown]
    assert hidden == 0
    assert [row[1] for row in rows] == ["d", "c", "a"]
    assert cells_text(rows[2]) == [
        "22:13:20",
        "a",
        "swap",
        "b",
        "2.5s",
        "s",
        "3",
        "ok",
        "collision",
    ]
    assert cells_text(rows[0])[7] == "loading…"
    assert [entry.target for entry, _ in timeline_rows(entries, "B")[0]] == ["a"]


def test_a_swap_detail_shows_its_kv_figures_and_what_failed() -> None:
    kv = (
        p.KvRecord(model="b", action="save", slots=3, bytes=12 << 20, seconds=0.41),
        p.KvRecord(
            model="a", action="restore", slots=0, bytes=0, seconds=0.08, errors=["slot 0: 500"]
        ),
    )
    entry = TimelineEntry(T0, "swap", "a", "swap", ("b",), outcome="ok", swap_id=4, kv=kv)
    text = text_of(entry_detail(entry))
    assert "kv cache   saved 3 slots 12.0MiB in 410ms; restored 0 in 80ms (1 error)" in text
    assert "a restore: slot 0: 500" in text
    assert "kv cache" not in text_of(entry_detail(TimelineEntry(T0, "swap", "a", "swap")))


def test_timeline_rows_are_ordered_by_time_not_arrival() -> None:
    """A decisions reply followed by subscription history arrives out of order."""
    entries = [
        TimelineEntry(T0 + 1, "decision", "b", "swap"),
        TimelineEntry(T0 + 3, "decision", "c", "swap"),
        TimelineEntry(T0 + 2, "swap", "b", "swap", outcome="ok"),  # history, late
        TimelineEntry(T0, "swap", "a", "swap", outcome="ok"),  # history, late
    ]
    rows = [cells for _, cells in timeline_rows(entries)[0]]
    assert [(row[1], cells_text(row)[0]) for row in rows] == [
        ("c", "22:13:23"),
        ("b", "22:13:22"),
        ("b", "22:13:21"),
        ("a", "22:13:20"),
    ]


def test_routine_decisions_are_hidden_unless_asked() -> None:
    entries = [
        TimelineEntry(T0, "decision", "a", "serve"),
        TimelineEntry(T0 + 1, "decision", "a", "grant"),
        TimelineEntry(T0 + 2, "decision", "b", "queue"),
        TimelineEntry(T0 + 3, "swap", "b", "swap"),
    ]
    shown, hidden = timeline_rows(entries, show_routine=False)
    rows = [cells for _, cells in shown]
    assert ([row[2].plain for row in rows], hidden) == (["swap", "queue"], 2)  # type: ignore[union-attr]
    rows, hidden = timeline_rows(entries, show_routine=True)
    assert (len(rows), hidden) == (4, 0)
    assert timeline_status(2, 2, False).plain == (
        "2 entries  2 routine (grant, serve) hidden  a: show all  enter: detail"
    )


# -- matrix and explain ----------------------------------------------------------------


def test_matrix_sets_are_bounded_with_a_more_row_and_running_marked() -> None:
    text = text_of(matrix_renderable(sample_matrix(), ["embed", "llama-8b"], rows_per_set=3))
    assert "running: embed + llama-8b  (set chat)" in text
    assert "llama-8b & embed  ◀ running" in text
    assert "tiny-02 & embed" in text
    assert "tiny-03" not in text
    assert "... 27 more" in text


def test_matrix_counts_what_the_daemon_left_out() -> None:
    view = p.MatrixView(
        router="matrix",
        sets=[p.MatrixSet(name="huge", combinations=[["a"], ["b"]], truncated=True, more=5000)],
    )
    assert "... 5001 more" in text_of(matrix_renderable(view, [], rows_per_set=1))
    unknown = p.MatrixView(
        router="matrix", sets=[p.MatrixSet(name="huge", combinations=[["a"]], truncated=True)]
    )
    assert "... more" in text_of(matrix_renderable(unknown, []))


def test_matrix_filter_keeps_combinations_naming_the_model() -> None:
    text = text_of(matrix_renderable(sample_matrix(), [], filter_text="whisper"))
    assert "qwen-coder & whisper" in text
    assert "qwen-coder & embed" not in text
    assert "tiny" not in text
    assert "no set matches 'zzz'" in text_of(
        matrix_renderable(sample_matrix(), [], filter_text="zzz")
    )


def test_groups_show_their_flags_and_running_members() -> None:
    view = p.MatrixView(
        router="group",
        groups=[
            p.GroupInfo(name="big", members=["a", "b"], swap=True, exclusive=True),
            p.GroupInfo(name="always", members=["e"], swap=False, exclusive=False, persistent=True),
        ],
    )
    lines = text_of(matrix_renderable(view, ["e"])).splitlines()
    assert lines[0].split() == ["Group", "swap", "excl", "pers", "Members"]
    assert lines[1].split() == ["big", "yes", "yes", "no", "a,", "b"]
    assert lines[2].split() == ["always", "no", "no", "yes", "e"]
    # The filter matches group names and members.
    assert [
        line.split()[0]
        for line in text_of(matrix_renderable(view, [], filter_text="e")).splitlines()[1:]
    ] == ["always"]
    assert [
        line.split()[0]
        for line in text_of(matrix_renderable(view, [], filter_text="bi")).splitlines()[1:]
    ] == ["big"]


def test_explain_says_what_a_load_would_do() -> None:
    explanation = p.Explanation(
        model="q",
        action="swap",
        why="cheapest set",
        resolved="qwen",
        state="stopped",
        evict=["a", "b"],
        set="code",
        cost=3,
        queue_position=2,
    )
    assert text_of(explain_renderable("q", explanation)).splitlines() == [
        "q → qwen (stopped): swap",
        "  evicts a, b",
        "  set code  cost 3",
        "  queue position 2",
        "  why: cheapest set",
    ]
    assert "asking the daemon" in text_of(explain_renderable("q", None))
    assert "select a model" in text_of(explain_renderable(None, None))


# -- screens -----------------------------------------------------------------------


def test_help_lists_every_key_and_the_legend() -> None:
    text = text_of(help_renderable((LegendEntry("ready", "serving", ("stopping",)),)))
    for key in ("1 … 5", "l ", "u ", "U ", "r ", "/ ", "? ", "q "):
        assert key in text
    assert any(line.split() == ["ready", "serving", "→", "stopping"] for line in text.splitlines())


def test_verdict_text_lists_problems() -> None:
    verdict = Verdict("reload", False, "config_invalid: bad", ("c.yaml:1:2: x: y",))
    assert verdict_text(verdict).plain == "✖ config_invalid: bad\n  c.yaml:1:2: x: y"
    assert verdict_text(Verdict("load", True)).plain == "✔ ok"


def test_verdict_text_lists_warnings_after_what_happened() -> None:
    verdict = Verdict("reload", True, "c.yaml: reloaded", warnings=("c.yaml:9:3: m: in no set",))
    assert verdict_text(verdict).plain == (
        "✔ c.yaml: reloaded\n  warning: c.yaml:9:3: m: in no set"
    )


def test_a_reload_verdict_names_what_changed_and_carries_the_warnings() -> None:
    result = p.ReloadResult(
        path="/etc/swapd/config.yaml",
        added=["new"],
        changed=["chat", "code"],
        changes={"chat": ["cmd", "env"], "code": ["port"]},
        unchanged=["embed"],
        warnings=[
            p.Problem(
                message="in no set: it runs alone and evicts everything",
                file="config.yaml",
                line=40,
                column=3,
                path="models.lonely",
            )
        ],
    )
    verdict = reload_result_verdict(result)
    assert verdict.ok
    assert verdict.message == (
        "/etc/swapd/config.yaml: reloaded (added: new; changed: chat (cmd, env), code (port))"
    )
    assert verdict.warnings == (
        "config.yaml:40:3: models.lonely: in no set: it runs alone and evicts everything",
    )
    assert reload_result_verdict(p.ReloadResult(path="c.yaml")).warnings == ()


def test_an_unload_verdict_says_how_many_requests_were_cut() -> None:
    quiet = unload_verdict(p.UnloadReply(models=["chat"]), now=False)
    assert (quiet.ok, quiet.message, quiet.warnings) == (True, "unloaded chat", ())
    cut = unload_verdict(p.UnloadReply(models=["chat"], cut=2), now=True)
    assert cut.message == "unloaded chat"
    assert cut.warnings == ("cut 2 requests in flight: their clients got an error",)
    late = unload_verdict(p.UnloadReply(models=["chat"], cut=1), now=False)
    assert late.warnings == (
        "cut 1 request in flight (still running at the unloadTimeout): their clients got an error",
    )
    assert unload_verdict(p.UnloadReply(models=[]), now=False).message == "unloaded nothing"


def test_the_unload_question_names_the_requests_in_flight() -> None:
    assert unload_question("chat", 2).plain == "chat is serving 2 requests in flight. Unload it:"
    assert unload_question("chat", 1).plain == "chat is serving 1 request in flight. Unload it:"


def test_error_verdict_formats_problems_and_the_log_tail() -> None:
    error = p.Error(
        code="config_invalid",
        message="2 problems",
        problems=[
            p.Problem(message="bad", file="c.yaml", line=3, column=7, path="models.a"),
            p.Problem(message="no file"),
        ],
        log_tail="line 1\nline 2\n",
    )
    verdict = error_verdict("reload", error)
    assert verdict.message == "config_invalid: 2 problems"
    assert verdict.problems == (
        "c.yaml:3:7: models.a: bad",
        "no file",
        "log tail:",
        "line 1",
        "line 2",
    )


# -- connection policy and CLI -----------------------------------------------------------


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(initial=0.5, factor=2, maximum=3)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3, 3]
    backoff.reset()
    assert backoff.next() == 0.5


def test_cli_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWAPD_SOCKET", "/run/other/control.sock")
    args = parse_args([])
    assert make_target(args.socket, args.ssh, args.remote_socket) == Target(
        socket=Path("/run/other/control.sock")
    )
    args = parse_args(["--socket", "/tmp/x.sock"])
    assert make_target(args.socket, args.ssh, args.remote_socket).socket == Path("/tmp/x.sock")
    args = parse_args(["--ssh", "gpu", "--remote-socket", "/run/swapd/control.sock"])
    target = make_target(args.socket, args.ssh, args.remote_socket)
    assert (target.ssh_host, target.remote_socket, target.describe()) == (
        "gpu",
        "/run/swapd/control.sock",
        "ssh gpu",
    )


@pytest.mark.parametrize("argv", [["--ssh", "gpu", "--socket", "/x"], ["--remote-socket", "/x"]])
def test_cli_rejects_contradictions(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert "swaptui: error:" in capsys.readouterr().err


def test_the_model_note_shows_meters_and_footprints() -> None:
    state = DashboardState(clock=lambda: 1000.0)
    gib = 1 << 30
    state.apply_models(
        [
            p.ModelInfo(
                id="coder",
                state="ready",
                meters=p.Meters(cpu_percent=12.4, ram=3 * gib),
                footprint=p.Footprint(
                    declared={"ram": 2 * gib},
                    measured={"ram": 3 * gib},
                    planned={"ram": 3 * gib + gib // 10},
                    blind=["vram"],
                ),
            ),
            p.ModelInfo(id="plain", state="stopped"),
        ]
    )
    note = model_note(state.models["coder"], 1000.0)
    assert note is not None
    assert note.plain == (
        "cpu 12% mem 3.0G gpu -  ram: declared 2.0G measured 3.0G planned 3.1G  "
        "vram: blind (counted 0)"
    )
    assert model_note(state.models["plain"], 1000.0) is None


def test_a_swap_row_and_detail_name_what_it_slept_and_a_wake() -> None:
    slept = TimelineEntry(T0, "swap", "b", "swap", outcome="ok", swap_id=3, slept=("a",))
    woke = TimelineEntry(
        T0 + 1, "swap", "a", "swap", ("c",), outcome="ok", swap_id=4, slept=("b",), wake=True
    )
    shown, _ = timeline_rows([slept, woke])
    rows = [cells_text(cells) for _, cells in shown]
    assert rows[0][1:4] == ["a", "wake", "c; sleep b"]
    assert rows[1][1:4] == ["b", "swap", "sleep a"]
    # The filter finds a swap by a model it put to sleep.
    assert [e.swap_id for e, _ in timeline_rows([slept, woke], "a")[0]] == [4, 3]
    assert [e.swap_id for e, _ in timeline_rows([slept, woke], "c")[0]] == [4]
    text = text_of(entry_detail(woke))
    assert "swap #4 (wake: the target was asleep)" in text
    assert "slept      b" in text
    plain = text_of(entry_detail(TimelineEntry(T0, "swap", "a", "swap", swap_id=5)))
    assert "slept" not in plain and "wake" not in plain
