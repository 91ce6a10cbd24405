"""swapctl's readable output: pure functions of payloads."""

from __future__ import annotations

import time

import pytest

from swapctl import protocol as p
from swapctl import render


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.25, "250ms"),
        (1.0, "1.0s"),
        (42.4, "42s"),
        (59.94, "1m00s"),
        (3599.7, "1h00m"),
        (61, "1m01s"),
        (3600 + 180, "1h03m"),
        (86400 * 3 + 3600 * 4, "3d04h"),
    ],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert render.duration(seconds) == text


def test_table_aligns_and_trims() -> None:
    assert render.table(["A", "BB"], [("xyz", ""), ("1", "2")]) == "A    BB\nxyz\n1    2\n"


def test_models_table() -> None:
    rows = [
        p.ModelInfo(
            id="llama",
            state="ready",
            pid=42,
            port=5800,
            ttl=60,
            ttl_left=12.5,
            last_load_seconds=0.4,
            sets=["s1"],
            in_flight=2,
            queued=1,
            meters=p.Meters(cpu_percent=250.0, ram=3 << 29),
        ),
        p.ModelInfo(id="qwen", state="stopped", groups=["g"], waiting=4),
        p.ModelInfo(
            id="bad",
            state="failed",
            starts=3,
            failures=2,
            last_failure="exited with code 3 while serving",
            last_failure_at=time.time() - 125,
        ),
    ]
    lines = render.models(rows).splitlines()
    assert lines[0].split() == [
        "MODEL",
        "STATE",
        "PID",
        "PORT",
        "INFLIGHT",
        "WAITING",
        "QUEUED",
        "TTL",
        "LEFT",
        "LAST",
        "LOAD",
        "CPU",
        "MEM",
        "GPU",
        "MEMBER",
        "OF",
    ]
    assert lines[1].split() == [
        "llama", "ready", "42", "5800", "2", "0", "1", "13s", "400ms", "250%", "1.5G", "-", "s1",
    ]  # fmt: skip
    assert lines[2].split() == [
        "qwen", "stopped", "-", "-", "0", "4", "0", "never", "-", "-", "-", "-", "g",
    ]  # fmt: skip
    assert lines[3].split()[:2] == ["bad", "failed"]
    assert (
        lines[4]
        == "bad: failed 2m05s ago: exited with code 3 while serving (2 failures in 3 starts)"
    )


def test_footprints_and_capacity_in_use() -> None:
    gib = 1 << 30
    rows = [
        p.ModelInfo(
            id="coder",
            state="ready",
            footprint=p.Footprint(
                declared={"ram": 2 * gib},
                measured={"ram": 3 * gib},
                planned={"ram": 3 * gib + gib // 10},
                blind=["vram"],
            ),
        ),
        p.ModelInfo(id="plain", state="stopped"),
    ]
    capacity = [
        p.CapacityUse(resource="ram", used=3 * gib, capacity=12 * gib),
        p.CapacityUse(resource="vram", used=0, capacity=24 * gib),
    ]
    text = render.models(rows, capacity)
    after = text.split("\n\n", 1)[1].splitlines()
    assert after[0].split() == ["MODEL", "RESOURCE", "DECLARED", "MEASURED", "PLANNED"]
    assert after[1].split() == ["coder", "ram", "2.0G", "3.0G", "3.1G"]
    assert after[2].split() == ["coder", "vram", "-", "-", "0B", "(blind)"]
    assert after[3] == "capacity in use: ram 3.0G of 12.0G (25%), vram 0B of 24.0G (0%)"
    assert render.models(rows[1:]).count("\n") == 2  # no footprints, no capacity: no section


def test_a_model_that_can_sleep_shows_its_planned_asleep_footprint() -> None:
    gib = 1 << 30
    rows = [
        p.ModelInfo(
            id="v",
            state="asleep",
            footprint=p.Footprint(
                declared={"vram": 8 * gib},
                planned={"vram": 8 * gib},
                asleep={"vram": gib},
            ),
        )
    ]
    capacity = [p.CapacityUse(resource="vram", used=gib, capacity=10 * gib)]
    after = render.models(rows, capacity).split("\n\n", 1)[1].splitlines()
    assert after[1].split() == ["v", "vram", "8.0G", "-", "8.0G", "(asleep", "1.0G)"]
    assert after[2] == "capacity in use: vram 1.0G of 10.0G (10%)"


def test_explain_and_decisions_show_what_is_put_to_sleep() -> None:
    x = p.Explanation(model="B", action="swap", evict=[], sleep=["A"], cost=0)
    assert "evict    -\nsleep    A\n" in render.explanation(x)
    d = p.Decision(time=0.0, model="B", action="swap", evict=[], sleep=["A"])
    assert "- (sleep A)" in render.decisions([d])


def test_host_line() -> None:
    assert render.host_line(None) == "-"
    host = p.HostMeters(
        cpu_percent=12.4,
        mem_used=6 << 30,
        mem_total=32 << 30,
        gpus=[p.GpuMemory(index=0, name="X", used=3 << 30, total=24 << 30)],
    )
    assert render.host_line(host) == "cpu 12%, memory 6.0G of 32.0G, gpu0 3.0G of 24.0G"


def test_failure_note_counts_in_words() -> None:
    once = p.ModelInfo(id="m", state="failed", starts=1, failures=1, last_failure="x")
    assert render.failure_note(once) == "m: failed: x (1 failure in 1 start)"


def test_error_with_problems_and_log_tail() -> None:
    error = p.Error(
        code="load_failed",
        message="x exited",
        log_tail="a\nb\n",
        problems=[p.Problem(message="bad", file="c.yaml", line=1, column=2, path="k")],
    )
    assert render.error(error) == (
        "swapctl: load_failed: x exited\n  c.yaml:1:2: k: bad\n  last log lines:\n    a\n    b\n"
    )


def test_matrix_marks_the_running_set_and_combination() -> None:
    view = p.MatrixView(
        router="matrix",
        sets=[
            p.MatrixSet(name="ab", dsl="a & b", combinations=[["a", "b"]]),
            p.MatrixSet(name="big", dsl="x | y | z", combinations=[["x"]], truncated=True, more=2),
        ],
        running=["a"],
        running_set="ab",
        groups=[p.GroupInfo(name="g", members=["a"], swap=False, exclusive=True, persistent=True)],
    )
    assert render.matrix(view).splitlines() == [
        "router: matrix",
        "running: a (set ab)",
        "* set ab: a & b",
        "    > a & b",
        "  set big: x | y | z",
        "      x",
        "      ... 2 more",
        "  group g [exclusive, persistent]: a",
    ]


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (
            p.StateChanged(time=0, model="a", old="stopped", new="starting"),
            "a: stopped -> starting",
        ),
        (
            p.SwapStarted(time=0, target="b", evict=["a"], set="s", cost=3, why="collision"),
            "swap to b evict=a set=s cost=3 why=collision",
        ),
        (
            p.SwapFinished(time=0, target="b", ok=False, duration=1.5, error="exited"),
            "swap to b failed: exited in 1.5s",
        ),
        (
            p.RequestEvent(time=0, model="a", phase="done", status=200, duration=0.1),
            "a: done 200 in 100ms",
        ),
        (p.QueueChanged(time=0, order=["a", "b"]), "queue: a b"),
        (p.LogLines(time=0, source="a", text="hello\n"), "[a] hello"),
        (p.ConfigReloaded(time=0, ok=True, path="c.yaml"), "config c.yaml: reloaded"),
    ],
)
def test_event_lines(data: p.EventData, text: str) -> None:
    line = render.event(p.Event(subscription=1, topic=data.topic, data=data))
    assert line.endswith(f" {text}\n") and line.count("\n") == 1


def test_lagged_line() -> None:
    assert render.event(p.Lagged(subscription=1, missed=4)) == "-- lagged: 4 events missed --\n"


def test_kv_saves_and_restores_in_decisions_and_swap_events() -> None:
    saved = p.KvRecord(model="a", action="save", slots=1, bytes=6917572, seconds=0.012)
    failed = p.KvRecord(
        model="b", action="restore", slots=0, bytes=0, seconds=0.5, errors=["timed out after 0.5s"]
    )
    assert render.kv_note([]) == ""
    assert render.kv_note([saved, failed]) == (
        "; kv: a saved 1 slot (6.6MiB, 12ms), b restored 0 slots (0B, 500ms) [timed out after 0.5s]"
    )
    row = p.Decision(time=0.0, model="b", action="swap_done", why="ready", kv=[saved])
    assert "ready; kv: a saved 1 slot (6.6MiB, 12ms)" in render.decisions([row])


def test_kv_figures_in_the_history() -> None:
    save = p.KvRecord(model="a", action="save", slots=3, bytes=12 << 20, seconds=0.41)
    restore = p.KvRecord(model="b", action="restore", slots=3, bytes=12 << 20, seconds=0.08)
    swap = p.SwapRecord(
        swap_id=7, start=0.0, target="b", evicted=["a"], load_s=1.5, kv=[save, restore]
    )
    what = render.history_row(swap)[2]
    assert what.endswith("; kv: saved 3 slots 12.0MiB in 410ms; restored 3 in 80ms")
    exit_ = p.ExitRecord(time=0.0, model="a", pid=9, exit_code=0, reason="ttl", kv=save)
    assert render.history_row(exit_)[2].endswith(": ttl; kv: saved 3 slots 12.0MiB in 410ms")
    # Without figures (none made, or an older record), nothing is added.
    assert "kv" not in render.history_row(p.SwapRecord(swap_id=8, start=0.0, target="b"))[2]
    assert "kv" not in render.history_row(p.ExitRecord(time=0.0, model="a", pid=9))[2]


def test_kv_summary_names_several_saves_and_counts_trouble() -> None:
    a = p.KvRecord(model="a", action="save", slots=1, bytes=2048, seconds=0.01)
    c = p.KvRecord(
        model="c", action="save", slots=0, bytes=0, seconds=30.0, timed_out=True,
        errors=["timed out after 30s"],
    )  # fmt: skip
    bad = p.KvRecord(model="b", action="restore", slots=0, bytes=0, seconds=0.2, errors=["x", "y"])
    assert render.kv_summary([]) == ""
    assert render.kv_summary([a, c, bad]) == (
        "kv: saved a 1 slot 2.0KiB in 10ms, c 0 slots 0B in 30s (timed out);"
        " restored 0 in 200ms (2 errors)"
    )


def test_the_history_names_what_a_swap_slept_and_a_wake() -> None:
    slept = p.SwapRecord(swap_id=3, start=0.0, target="b", slept=["a"], load_s=1.5)
    assert render.history_row(slept)[2] == "#3 to b: ok in 1.5s, slept a"
    woke = p.SwapRecord(
        swap_id=4, start=0.0, target="a", evicted=["c"], slept=["b"], load_s=0.25, wake=True
    )
    assert render.history_row(woke)[2] == "#4 woke a: ok in 250ms, evicted c, slept b"


def test_the_asleep_measured_footprint_and_the_wake_median() -> None:
    gib = 1 << 30
    rows = [
        p.ModelInfo(
            id="v",
            state="stopped",
            footprint=p.Footprint(
                declared={"vram": 8 * gib},
                measured={"vram": 7 * gib},
                planned={"vram": 8 * gib},
                asleep={"vram": gib},
                asleep_measured={"vram": gib // 2},
                wake_s=1.25,
            ),
        ),
        p.ModelInfo(id="w", state="stopped", footprint=p.Footprint(planned={"vram": gib})),
    ]
    capacity = [p.CapacityUse(resource="vram", used=0, capacity=10 * gib)]
    after = render.models(rows, capacity).split("\n\n", 1)[1].splitlines()
    assert after[1].split() == [
        "v", "vram", "8.0G", "7.0G", "(asleep", "512.0M)", "8.0G", "(asleep", "1.0G)",
    ]  # fmt: skip
    assert "measured wakes (median): v 1.2s" in after


def test_stats_show_sleeps_and_wakes_only_when_there_were_some() -> None:
    quiet = p.Stats(since=0.0, until=1.0, models=[p.ModelStats(model="a", loads=2)])
    assert "WAKES" not in render.stats(quiet)
    busy = p.Stats(
        since=0.0,
        until=1.0,
        models=[
            p.ModelStats(model="a", sleeps=2, wakes=2, wake_p50_s=0.5, wake_failures=1),
            p.ModelStats(model="b", loads=1),
        ],
    )
    lines = render.stats(busy).splitlines()
    assert lines[1].endswith("SLEEPS  WAKES  WAKE P50  WAKE FAIL")
    assert lines[2].split()[-4:] == ["2", "2", "500ms", "1"]
    assert lines[3].split()[-4:] == ["0", "0", "-", "0"]
