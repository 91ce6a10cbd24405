"""The dashboard's state model: protocol messages in, what the views render out. No Textual."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapctl import protocol as p
from swapctl.render import duration
from swaptui.state import (
    HEADER,
    LOGS,
    MATRIX,
    MODELS,
    NOTE_SOURCE,
    TIMELINE,
    VERDICT,
    DashboardState,
    LogBuffer,
    LogFilter,
    LogLine,
    describe_changes,
    reload_verdict,
)
from tests.tui.fakes import DAEMON, LEGEND, T0, FixedClock, sample_decisions, sample_models


def make_state(**kwargs: object) -> tuple[DashboardState, FixedClock]:
    clock = FixedClock()
    return DashboardState(clock=clock, **kwargs), clock  # type: ignore[arg-type]


# -- log buffer ---------------------------------------------------------------


def test_log_chunks_are_split_into_lines_and_partial_tails_wait_for_their_newline() -> None:
    buf = LogBuffer(100)
    buf.add("m", "one\ntw", 1.0)
    assert [line.text for line in buf.lines] == ["one"]
    buf.add("other", "x\n", 2.0)
    buf.add("m", "o\r\nthree\n", 3.0)
    assert [(line.source, line.text) for line in buf.lines] == [
        ("m", "one"),
        ("other", "x"),
        ("m", "two"),
        ("m", "three"),
    ]
    assert [line.seq for line in buf.lines] == [0, 1, 2, 3]


def test_flush_emits_a_held_back_tail() -> None:
    buf = LogBuffer(10)
    buf.add("m", "no newline", 1.0)
    assert not buf.lines
    buf.flush("m", 2.0)
    assert [line.text for line in buf.lines] == ["no newline"]
    buf.flush("m", 3.0)
    assert len(buf.lines) == 1


def test_log_buffer_is_bounded_and_since_survives_drops() -> None:
    buf = LogBuffer(3)
    for i in range(5):
        buf.add("m", f"{i}\n", float(i))
    assert [line.text for line in buf.lines] == ["2", "3", "4"]
    assert buf.appended == 5
    assert [line.text for line in buf.since(0)] == ["2", "3", "4"]
    assert [line.text for line in buf.since(4)] == ["4"]
    assert buf.since(5) == []
    assert buf.sources() == ["m"]


def test_log_buffer_rejects_a_zero_bound() -> None:
    with pytest.raises(ValueError):
        LogBuffer(0)


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "proxy"]), st.text(alphabet="xy\n", max_size=12)),
        max_size=40,
    ),
    st.integers(1, 20),
)
def test_log_buffer_keeps_the_newest_complete_lines_in_order(
    chunks: list[tuple[str, str]], bound: int
) -> None:
    buf = LogBuffer(bound)
    expected: list[tuple[str, str]] = []
    pending: dict[str, str] = {}
    for source, text in chunks:
        buf.add(source, text, 0.0)
        joined = pending.pop(source, "") + text
        *complete, tail = joined.split("\n")
        expected += [(source, line) for line in complete]
        if tail:
            pending[source] = tail
    assert [(line.source, line.text) for line in buf.lines] == expected[-bound:]
    seqs = [line.seq for line in buf.lines]
    assert seqs == list(range(buf.appended - len(seqs), buf.appended))


@given(st.text(max_size=20), st.text(max_size=5), st.sampled_from([None, "a", "b"]))
def test_log_filter_is_a_case_insensitive_substring_and_source_match(
    text: str, needle: str, source: str | None
) -> None:
    line = LogLine(0, 0.0, "a", text)
    f = LogFilter(source=source, text=needle)
    assert f.matches(line) == (
        (source is None or source == "a") and needle.casefold() in text.casefold()
    )


# -- daemon, models, events -----------------------------------------------------


def test_status_sets_daemon_uptime_legend_and_marks_header() -> None:
    state, clock = make_state()
    state.apply_welcome(p.Welcome(protocol=1, daemon=DAEMON))
    state.apply_status(
        p.Status(daemon=DAEMON, uptime=100.0, models=0, states={}, running=[], legend=LEGEND)
    )
    assert state.take_dirty() >= {HEADER, MODELS}
    assert state.daemon.version == "0.1.0"
    assert state.daemon.protocol == 1
    assert state.daemon.listen == ("127.0.0.1:8080",)
    assert [entry.name for entry in state.legend] == [
        "stopped",
        "starting",
        "ready",
        "stopping",
        "failed",
        "shutdown",
    ]
    assert state.uptime() == 100.0
    clock.now += 5
    assert state.uptime() == 105.0


def test_models_reply_replaces_rows_and_ttl_counts_down_locally() -> None:
    state, clock = make_state()
    state.apply_models(sample_models())
    row = state.models["llama-8b"]
    assert (row.pid, row.port, row.in_flight, row.memberships) == (41234, 5801, 2, ("chat",))
    assert row.ttl_left(clock()) == 245
    clock.now += 45
    assert row.ttl_left(clock()) == 200
    clock.now += 1000
    assert row.ttl_left(clock()) == 0
    assert state.models["qwen-coder"].ttl_left(clock()) is None
    state.apply_models([p.ModelInfo(id="only", state="stopped", groups=["g"])])
    assert list(state.models) == ["only"]
    assert state.models["only"].memberships == ("g",)


def test_state_change_clears_pid_and_ttl_when_stopped_and_starts_ttl_when_ready() -> None:
    state, clock = make_state()
    state.apply_models(sample_models())
    state.take_dirty()
    state.apply_event(p.StateChanged(time=T0, model="llama-8b", old="ready", new="stopping"))
    assert state.models["llama-8b"].pid == 41234
    state.apply_event(p.StateChanged(time=T0, model="llama-8b", old="stopping", new="stopped"))
    row = state.models["llama-8b"]
    assert (row.state, row.pid, row.ttl_deadline, row.in_flight) == ("stopped", None, None, 0)
    assert state.take_dirty() == {MODELS, MATRIX}
    state.apply_event(p.StateChanged(time=T0, model="qwen-coder", old="starting", new="ready"))
    assert state.models["qwen-coder"].ttl_left(clock()) == 600
    # A model we never heard of (added by a reload) gets a row.
    state.apply_event(p.StateChanged(time=T0, model="new", old="stopped", new="starting"))
    assert state.models["new"].state == "starting"
    assert state.running() == ["embed", "new", "qwen-coder"]


def test_queue_event_sets_who_waits_and_requests_restart_the_ttl() -> None:
    state, clock = make_state()
    state.apply_models(sample_models())
    assert state.models["whisper"].waiting == 1
    state.apply_event(
        p.QueueChanged(
            time=T0,
            queued={"whisper": 4},
            waiting={"qwen-coder": 2},
            in_flight={"embed": 1},
            order=["whisper"] * 4,
        )
    )
    counts = {m: (r.in_flight, r.waiting, r.queued) for m, r in state.models.items()}
    assert counts["whisper"] == (0, 0, 4)
    assert counts["qwen-coder"] == (0, 2, 0)
    # What is in flight comes with the models reply, not with the queue's changes.
    assert counts["embed"] == (0, 0, 0)
    assert counts["llama-8b"] == (2, 0, 0)
    assert state.take_dirty() == {MODELS}
    clock.now += 100
    state.apply_event(p.RequestEvent(time=T0, model="llama-8b", phase="done"))
    assert state.models["llama-8b"].ttl_left(clock()) == 300


def test_models_reply_carries_who_waits_and_how_each_model_last_failed() -> None:
    state, _ = make_state()
    state.apply_models(sample_models())
    row = state.models["qwen-72b"]
    assert (row.state, row.starts, row.failures) == ("failed", 5, 2)
    assert row.last_failure == "killed by SIGSEGV (segmentation fault: ...) while serving"
    assert row.last_failure_at == T0 - 125
    assert (state.models["whisper"].waiting, state.models["qwen-coder"].queued) == (1, 3)
    assert (state.models["embed"].failures, state.models["embed"].last_failure) == (0, None)


def test_a_model_that_fails_loses_its_process_and_says_how() -> None:
    state, _ = make_state()
    state.apply_models(sample_models())
    state.take_dirty()
    state.apply_event(
        p.StateChanged(
            time=T0 - 3,
            model="llama-8b",
            old="ready",
            new="failed",
            reason="exited with code 3 while serving",
        )
    )
    row = state.models["llama-8b"]
    assert (row.state, row.pid, row.ttl_deadline, row.in_flight) == ("failed", None, None, 0)
    assert (row.last_failure, row.last_failure_at) == ("exited with code 3 while serving", T0 - 3)
    # Counting is the daemon's: the counts arrive with the models reply the event prompts.
    assert (row.starts, row.failures) == (0, 0)
    assert state.take_dirty() == {MODELS, MATRIX}
    assert "llama-8b" not in state.running()
    # Started again: still the last failure on record, until the daemon says otherwise.
    state.apply_event(p.StateChanged(time=T0, model="llama-8b", old="failed", new="starting"))
    assert state.models["llama-8b"].last_failure == "exited with code 3 while serving"


def test_log_events_and_lag_notes() -> None:
    state, _ = make_state()
    state.apply_event(p.LogLines(time=T0, source="m", text="a\nb\n"))
    state.apply_lagged(7)
    assert state.events_missed == 7
    assert [(line.source, line.text) for line in state.logs.lines] == [
        ("m", "a"),
        ("m", "b"),
        (NOTE_SOURCE, "--- swaptui fell behind: the daemon dropped 7 events ---"),
    ]
    assert state.take_dirty() >= {LOGS, HEADER}
    state.apply_logs(p.LogText(source="proxy", text="backlog without newline"))
    assert state.logs.lines[-1].text == "backlog without newline"


def test_swap_start_then_finish_completes_one_row() -> None:
    state, _ = make_state()
    state.apply_event(
        p.SwapStarted(time=T0, target="a", evict=["b"], set="s", cost=2, why="collision")
    )
    state.apply_event(p.SwapFinished(time=T0 + 3, target="a", ok=True, duration=3.0))
    assert len(state.timeline) == 1
    entry = state.timeline[0]
    assert (entry.evicted, entry.set, entry.cost, entry.duration, entry.outcome) == (
        ("b",),
        "s",
        2,
        3.0,
        "ok",
    )
    # A finish whose start we missed is recorded whole, with its error.
    state.apply_event(p.SwapFinished(time=T0 + 9, target="c", ok=False, error="exit 1"))
    assert state.timeline[-1].target == "c"
    assert state.timeline[-1].outcome == "exit 1"
    assert TIMELINE in state.take_dirty()


def test_timeline_is_bounded_and_decisions_reply_replaces_it_in_time_order() -> None:
    state, _ = make_state(max_timeline=3)
    for i in range(5):
        state.apply_event(
            p.DecisionMade(time=T0 + i, decision=p.Decision(time=T0 + i, model=f"m{i}", action="x"))
        )
    assert [e.target for e in state.timeline] == ["m2", "m3", "m4"]
    state.apply_decisions(list(reversed(sample_decisions())))
    assert [e.time for e in state.timeline] == sorted(e.time for e in state.timeline)
    assert len(state.timeline) == 3


def test_a_decision_seen_twice_is_kept_once() -> None:
    state, _ = make_state(max_timeline=2)
    decision = p.Decision(time=T0, model="a", action="swap")
    state.apply_decisions([decision])
    state.apply_event(p.DecisionMade(time=T0, decision=decision))
    assert len(state.timeline) == 1
    # Once it has scrolled out of the bounded timeline it is forgotten.
    for i in range(2):
        state.apply_event(
            p.DecisionMade(
                time=T0 + 1 + i, decision=p.Decision(time=T0 + 1 + i, model="b", action="x")
            )
        )
    state.apply_event(p.DecisionMade(time=T0, decision=decision))
    assert [e.target for e in state.timeline] == ["b", "a"]


def test_reload_events_become_verdicts_with_located_problems() -> None:
    state, _ = make_state()
    state.apply_event(
        p.ConfigReloaded(
            time=T0,
            ok=False,
            path="config.yaml",
            problems=[
                p.Problem(
                    message='expected int >= -1, got "soon"',
                    file="config.yaml",
                    line=12,
                    column=5,
                    path="models.llama.ttl",
                )
            ],
        )
    )
    assert VERDICT in state.take_dirty()
    assert state.verdict is not None
    assert not state.verdict.ok
    assert state.verdict.problems == (
        'config.yaml:12:5: models.llama.ttl: expected int >= -1, got "soon"',
    )
    ok = reload_verdict(p.ConfigReloaded(time=T0, ok=True, path="c.yaml", added=["x"]))
    assert ok.ok
    assert ok.message == "c.yaml: reloaded (added: x)"
    assert describe_changes(p.ReloadResult(path="c.yaml")) == "c.yaml: reloaded, no changes"


def test_unknown_event_kinds_are_ignored() -> None:
    state, _ = make_state()
    state.apply_event(p.OtherEvent(time=T0, event_topic="misc", name="x"))
    assert state.take_dirty() == set()


def test_connection_attempts_count_consecutive_failures() -> None:
    state, clock = make_state()
    state.set_connection("disconnected", "gone", retry_in=2)
    state.set_connection("connecting")
    state.set_connection("disconnected", "gone", retry_in=4)
    assert state.connection.attempts == 2
    assert state.connection.retry_at == clock() + 4
    state.set_connection("connected")
    state.set_connection("disconnected", "again")
    assert state.connection.attempts == 1


# -- formatting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.0, "0ms"),
        (0.4204, "420ms"),
        (0.9999, "1.0s"),
        (3.44, "3.4s"),
        (9.96, "10s"),
        (59.4, "59s"),
        (59.9, "1m00s"),
        (185, "3m05s"),
        (7380, "2h03m"),
        (3 * 86400 + 4 * 3600, "3d04h"),
    ],
)
def test_one_duration_format(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


@given(st.floats(min_value=0, max_value=99 * 86400))
def test_a_duration_fits_a_narrow_column(seconds: float) -> None:
    assert len(duration(seconds)) <= 6


# -- one row per swap -------------------------------------------------------------


def _swap_events(swap: int | None) -> list[p.EventPayload]:
    decision = p.Decision(time=T0, model="b", action="swap", why="not running", swap=swap)
    return [
        p.DecisionMade(time=T0, decision=decision),
        p.SwapStarted(time=T0 + 0.1, target="b", evict=["a"], swap=swap),
        p.SwapFinished(time=T0 + 2, target="b", duration=1.9, swap=swap),
    ]


@pytest.mark.parametrize("order", [(0, 1, 2), (1, 0, 2), (1, 2, 0), (2, 1, 0), (2, 0, 1)])
def test_a_swaps_decision_start_and_end_are_one_entry_in_any_order(
    order: tuple[int, int, int],
) -> None:
    state, _ = make_state()
    events = _swap_events(4)
    for i in order:
        state.apply_event(events[i])
    assert len(state.timeline) == 1
    entry = state.timeline[0]
    assert (entry.kind, entry.target, entry.evicted, entry.why) == (
        "swap",
        "b",
        ("a",),
        "not running",
    )
    assert (entry.duration, entry.outcome, entry.swap_id, entry.time) == (1.9, "ok", 4, T0)
    # The decision is remembered: the same decision again (a decisions reply) adds nothing.
    state.apply_event(events[0])
    assert len(state.timeline) == 1


def test_swaps_without_ids_still_merge_start_and_end_by_target() -> None:
    state, _ = make_state()
    for event in _swap_events(None)[1:]:
        state.apply_event(event)
    assert [(e.kind, e.outcome) for e in state.timeline] == [("swap", "ok")]


def test_decisions_about_a_swap_are_found_by_its_id() -> None:
    state, _ = make_state()
    for event in _swap_events(9):
        state.apply_event(event)
    queued = p.Decision(time=T0 + 1, model="b", action="queue", swap=9)
    state.apply_event(p.DecisionMade(time=T0 + 1, decision=queued))
    assert [d.action for d in state.swap_decisions(9)] == ["swap", "queue"]


# -- the header's summary and the link -----------------------------------------------


def test_summary_counts_running_in_flight_queued_and_finished_requests_per_second() -> None:
    state, clock = make_state()
    state.apply_models(sample_models())
    for i in range(5):
        state.apply_event(p.RequestEvent(time=T0, model="llama-8b", phase="done", request=str(i)))
    state.apply_event(p.RequestEvent(time=T0, model="llama-8b", phase="granted", request="x"))
    summary = state.summary()
    assert (summary.running, summary.models, summary.in_flight, summary.queued) == (2, 5, 2, 4)
    assert summary.requests_per_second == 0.5
    assert summary.memory_bytes is None and summary.gpu_bytes is None
    clock.now += 11
    assert state.summary().requests_per_second == 0.0


def test_a_reconnection_is_remembered_with_how_long_the_link_was_down() -> None:
    state, clock = make_state()
    state.set_connection("connecting")
    state.set_connection("connected")
    assert state.connection.reconnected_at is None  # the first connection is no reconnection
    state.set_connection("disconnected", "gone", retry_in=1)
    clock.now += 5
    state.set_connection("connecting")
    state.set_connection("disconnected", "gone", retry_in=2)
    clock.now += 3
    state.set_connection("connected")
    assert (state.connection.reconnected_at, state.connection.down_for) == (T0 + 8, 8)
    assert state.logs.lines[-1].text == "--- reconnected after 8.0s down ---"


def test_a_finished_swap_keeps_its_kv_figures() -> None:
    state, _ = make_state()
    kv = [
        p.KvRecord(model="b", action="save", slots=3, bytes=12 << 20, seconds=0.41),
        p.KvRecord(model="a", action="restore", slots=3, bytes=12 << 20, seconds=0.08),
    ]
    state.apply_event(p.SwapStarted(time=T0, target="a", evict=["b"], swap=4))
    state.apply_event(p.SwapFinished(time=T0 + 1, target="a", duration=1.0, swap=4, kv=kv))
    state.apply_event(p.SwapFinished(time=T0 + 9, target="c", swap=5, kv=kv[:1]))  # joined late
    assert [e.kv for e in state.timeline] == [tuple(kv), tuple(kv[:1])]


def test_a_swap_that_sleeps_and_one_that_wakes() -> None:
    state, _ = make_state()
    state.apply_event(p.SwapStarted(time=T0, target="b", sleep=["a"], swap=1))
    state.apply_event(p.SwapFinished(time=T0 + 1, target="b", ok=True, duration=1.0, swap=1))
    state.apply_event(p.SwapStarted(time=T0 + 2, target="a", evict=["b"], wake=True, swap=2))
    first, second = state.timeline
    assert (first.slept, first.wake, first.outcome) == (("a",), False, "ok")
    assert (second.evicted, second.slept, second.wake) == (("b",), (), True)
    # A swap that put `a` to sleep is one of a's swaps.
    assert [e.swap_id for e in state.model_swaps("a")] == [2, 1]
