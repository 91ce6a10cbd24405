"""`swapd simulate`: the table, the promised JSON shape, load time sources, errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from swapd.cli import main
from swapd.config import load_config_text
from swapd.config.history_check import read_books
from swapd.history.database import Database
from swapd.history.paths import database_path
from swapd.history.records import RequestRecord, SwapRecord
from swapd.history.runs import RunRow, insert_runs
from swapd.router.budget_books import Books, BooksData
from swapd.router.footprints import Learned
from swapd.simulate.cli import parse_since
from swapd.simulate.compare import resolve_load_times, resolve_wake_times
from swapd.simulate.engine import simulate
from swapd.simulate.history_source import request_records, trace_from_records
from swapd.simulate.report import LoadTime
from swapd.simulate.trace import TraceRequest, write_trace
from tests.unit.simulate.test_engine import GROUP, MATRIX_AB, SLEEPY, abcabc, models_yaml

SUMMARY_KEYS = {
    "requests",
    "loads",
    "load_seconds",
    "wait_p50",
    "wait_p95",
    "wait_max",
    "over_max_wait",
    "failures",
    "peak_queue",
}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "group.yaml").write_text(GROUP)
    (tmp_path / "matrix.yaml").write_text(
        MATRIX_AB.replace("  A:\n", "  A:\n    aliases: [alpha]\n", 1)
    )
    write_trace(tmp_path / "abc.jsonl", abcabc())
    return tmp_path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["simulate", *argv, "--json"]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_json_has_the_promised_shape(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new, old = str(files / "matrix.yaml"), str(files / "group.yaml")
    out = run_json(
        capsys,
        "--config", new, "--against", old, "--trace", str(files / "abc.jsonl"),
        "--load-time", "alpha=5", "--state-dir", str(files / "state"),
    )  # fmt: skip
    assert {"configs", "load_times"} <= out.keys()
    configs = out["configs"]
    assert isinstance(configs, list)
    assert [c["config"] for c in configs] == [new, old]
    for c in configs:
        assert SUMMARY_KEYS <= c["totals"].keys()
        assert list(c["models"]) == ["A", "B", "C"]
        for summary in c["models"].values():
            assert SUMMARY_KEYS <= summary.keys()
            assert all(isinstance(summary[k], int) for k in ("requests", "loads", "failures"))
            assert all(isinstance(summary[k], float) for k in ("wait_p50", "load_seconds"))
    matrix, group = configs
    assert matrix["totals"]["loads"] == group["totals"]["loads"] == 3
    assert matrix["totals"]["load_seconds"] == 7.0
    assert matrix["models"]["C"]["wait_max"] == pytest.approx(7.8)
    assert group["models"]["C"]["wait_max"] == pytest.approx(10.8)
    assert out["load_times"] == {
        "A": {"seconds": 5.0, "source": "flag"},
        "B": {"seconds": 1.0, "source": "default"},
        "C": {"seconds": 1.0, "source": "default"},
    }
    diff = out["diff"]
    assert isinstance(diff, dict)
    assert diff["C"]["wait_max"] == pytest.approx(-3.0)


def test_the_table(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "simulate",
            "--config", str(files / "matrix.yaml"),
            "--against", str(files / "group.yaml"),
            "--trace", str(files / "abc.jsonl"),
            "--load-time", "A=5",
            "--state-dir", str(files / "state"),
        ]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "6 requests replayed" in out
    assert "matrix.yaml (matrix router, maxWait 30s)" in out
    assert "group.yaml (group router, maxWait 30s)" in out
    assert "matrix.yaml minus " in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model"))
    assert lines[header].split() == [
        "model", "requests", "loads", "load", "s", "p50", "s", "p95", "s", "max", "s",
        ">maxWait", "failed", "peak", "q",
    ]  # fmt: skip
    row_c = ["C", "2", "1", "1.00", "7.65", "7.79", "7.80", "0", "0", "2"]
    assert lines[header + 3].split() == row_c
    assert "  A  5s     flag" in out


def test_unknown_names_and_refusals_are_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "c.yaml").write_text(models_yaml("A", extra={"A": "    concurrencyLimit: 1\n"}))
    write_trace(
        tmp_path / "t.jsonl",
        [
            TraceRequest(t=0, model="A", service=1),
            TraceRequest(t=0, model="A", service=1),
            TraceRequest(t=0.5, model="nope", service=1),
        ],
    )
    out = run_json(
        capsys, "--config", str(tmp_path / "c.yaml"), "--trace", str(tmp_path / "t.jsonl"),
        "--state-dir", str(tmp_path),
    )  # fmt: skip
    (config,) = out["configs"]  # type: ignore[misc]
    assert config["totals"]["failures"] == 2
    assert config["totals"]["failure_kinds"] == {"not_found": 1, "too_many": 1}
    assert config["models"]["nope"]["failures"] == 1


def test_a_bad_trace_line_is_reported_with_file_and_line(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = files / "bad.jsonl"
    bad.write_text('{"t": 0, "model": "A", "service": 1}\n{"t": 1, "model": "A"}\n')
    argv = ["simulate", "--config", str(files / "group.yaml"), "--trace", str(bad)]
    assert main(argv) == 2
    assert f"{bad}:2: Object missing required field `service`" in capsys.readouterr().err


def test_a_bad_config_is_reported(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (files / "broken.yaml").write_text("models:\n  A: {}\n")
    argv = ["simulate", "--config", str(files / "broken.yaml"), "--trace", "x.jsonl"]
    assert main(argv) == 2
    assert "broken.yaml:2:" in capsys.readouterr().err


def test_a_load_time_for_no_model_is_refused(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", "--config", str(files / "group.yaml"), "--trace"]
    argv += [str(files / "abc.jsonl"), "--load-time", "Z=3", "--state-dir", str(files)]
    assert main(argv) == 2
    assert "--load-time Z=3: no model of the config is 'Z'" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["A", "A=", "=3", "A=-1", "A=nan", "A=x"])
def test_malformed_load_times_are_usage_errors(files: Path, flag: str) -> None:
    argv = ["simulate", "--config", str(files / "group.yaml"), "--trace", "t", "--load-time"]
    with pytest.raises(SystemExit) as caught:
        main([*argv, flag])
    assert caught.value.code == 2


def test_history_without_a_history_file(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--config", str(files / "group.yaml"), "--history"]
    assert main([*argv, "--state-dir", str(files / "none")]) == 2
    assert "--history: no history at" in capsys.readouterr().err


def request(id: int, start: float, model: str, **times: float | None) -> RequestRecord:
    return RequestRecord(
        id=id,
        start=start,
        client=None,
        requested=model,
        model=model,
        route="/v1/chat/completions",
        stream=False,
        outcome="done",
        status=200,
        **times,  # type: ignore[arg-type]
    )


def swap(id: int, target: str, load_s: float, result: str = "ok") -> SwapRecord:
    return SwapRecord(
        swap_id=id,
        start=1000.0 + id,
        target=target,
        evicted=(),
        why="request",
        set=None,
        cost=0,
        load_s=load_s,
        result=result,  # type: ignore[arg-type]
    )


def test_history_gives_the_trace_and_the_load_times(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = files / "state"
    state.mkdir()
    db = Database.open_writer(database_path(state))
    now = time.time()
    db.write(
        [
            request(1, now - 100, "A", queued_s=None, load_wait_s=2.0, duration_s=3.0),
            request(2, now - 99.5, "B", queued_s=0.5, load_wait_s=None, duration_s=2.0),
            request(3, now - 7200, "B", duration_s=1.0),  # outside --since 1h
            swap(1, "A", 2.0),
            swap(2, "A", 4.0),
            swap(3, "A", 3.0),
            swap(4, "A", 60.0, "failed"),
        ]
    )
    db.close()
    out = run_json(
        capsys,
        "--config", str(files / "group.yaml"), "--history", "--since", "1h",
        "--state-dir", str(state),
    )  # fmt: skip
    assert out["load_times"]["A"] == {"seconds": 3.0, "source": "history"}  # type: ignore[index]
    assert out["load_times"]["B"] == {"seconds": 1.0, "source": "default"}  # type: ignore[index]
    (config,) = out["configs"]  # type: ignore[misc]
    assert config["totals"]["requests"] == 2
    # A loads 3 s (from 0); B arrives at 0.5 and waits for A's 1 s of service, then loads.
    assert config["models"]["A"]["wait_max"] == pytest.approx(3.0)
    assert config["models"]["B"]["wait_max"] == pytest.approx(4.5)


def test_records_become_trace_requests() -> None:
    records = [
        request(2, 105.0, "B", queued_s=0.5, load_wait_s=1.0, duration_s=4.0),
        request(1, 100.0, "A", duration_s=2.0),
        request(3, 106.0, "A", duration_s=None),
    ]
    peer = RequestRecord(
        id=4, start=101.0, client=None, requested="p/x", model="x", route="/v1/x",
        stream=True, outcome="done", status=200, peer="p", duration_s=1.0,
    )  # fmt: skip
    assert trace_from_records([*records, peer]) == [
        TraceRequest(t=0.0, model="A", service=2.0),
        TraceRequest(t=5.0, model="B", service=2.5),
        TraceRequest(t=6.0, model="A", service=0.0),
    ]


def test_load_times_flag_over_history_over_default() -> None:
    group = load_config_text(GROUP.replace("  A:\n", "  A:\n    aliases: [alpha]\n", 1))
    other = load_config_text(models_yaml("A", "D"))
    times = resolve_load_times([group, other], [("alpha", 7.0)], {"A": 2.0, "B": 3.0, "D": 4.0})
    assert times == {
        "A": LoadTime(7.0, "flag"),
        "B": LoadTime(3.0, "history"),
        "C": LoadTime(1.0, "default"),
        "D": LoadTime(4.0, "history"),
    }


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("24h", 86400.0)]
)
def test_since_durations(text: str, seconds: float) -> None:
    assert parse_since(text) == seconds


def test_a_bad_since_is_a_usage_error(files: Path) -> None:
    argv = ["simulate", "--config", str(files / "group.yaml"), "--history", "--since", "soon"]
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2


def test_since_without_history_is_refused(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--config", str(files / "group.yaml"), "--trace", "t.jsonl"]
    assert main([*argv, "--since", "1h"]) == 2
    assert "--since reads the history" in capsys.readouterr().err


README = Path(__file__).resolve().parents[3] / "README.md"


def test_the_readme_example_prints_what_the_readme_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = README.read_text()
    start = text.index("$ swapd simulate --config matrix.yaml")
    block = text[start : text.index("```", start)]
    shown = block.split("\n", 2)[2]  # after the command's two lines
    routing = text[text.rindex("```yaml\nrouting:", 0, start) + len("```yaml\n") :]
    routing = routing[: routing.index("```")]
    (tmp_path / "group.yaml").write_text(GROUP)
    (tmp_path / "matrix.yaml").write_text(GROUP + routing)
    write_trace(
        tmp_path / "abc.jsonl",
        [TraceRequest(t=i, model=m, service=2, stream=True) for i, m in enumerate("ABCABC")],
    )
    argv = ["simulate", "--config", "matrix.yaml", "--against", "group.yaml"]
    argv += ["--trace", "abc.jsonl", "--state-dir", str(tmp_path / "none")]
    argv += ["--load-time", "A=10", "--load-time", "B=10", "--load-time", "C=10"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        assert main(argv) == 0
    assert capsys.readouterr().out == shown


def test_wakes_are_counted_apart_from_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "c.yaml").write_text(models_yaml("A", "B", extra=SLEEPY))
    items = [TraceRequest(t=0, model="A", service=1), TraceRequest(t=20, model="A", service=1)]
    write_trace(tmp_path / "t.jsonl", items)
    argv = ["--config", str(tmp_path / "c.yaml"), "--trace", str(tmp_path / "t.jsonl")]
    argv += ["--state-dir", str(tmp_path), "--load-time", "A=3"]
    out = run_json(capsys, *argv, "--wake-time", "A=0.5")
    assert out["wake_times"] == {"A": {"seconds": 0.5, "source": "flag"}}
    (config,) = out["configs"]  # type: ignore[misc]
    assert (config["totals"]["loads"], config["totals"]["wakes"]) == (1, 1)
    assert config["models"]["A"]["wake_seconds"] == 0.5
    assert main(["simulate", *argv]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[3].split()[-1] == "wakes"
    assert "wake times:\n  A  1s  default" in table


def test_seconds_are_floats_even_when_nothing_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "c.yaml").write_text(models_yaml("A"))
    write_trace(tmp_path / "t.jsonl", [TraceRequest(t=0, model="nobody", service=1)])
    out = run_json(
        capsys, "--config", str(tmp_path / "c.yaml"), "--trace", str(tmp_path / "t.jsonl"),
        "--state-dir", str(tmp_path),
    )  # fmt: skip
    (config,) = out["configs"]  # type: ignore[misc]
    for key in ("load_seconds", "wait_p50", "wait_p95", "wait_max", "wake_seconds"):
        assert isinstance(config["totals"][key], float), key


BUDGET = """
resources:
  capacity: {ram: 10GiB}
  learn: true
models:
  a: {cmd: "fake --port ${PORT}", resources: {ram: 4GiB}}
  b: {cmd: "fake --port ${PORT}", resources: {ram: 4GiB}}
routing:
  router:
    use: budget
    settings:
      budget: {costs: uniform}
"""


def test_model_runs_give_load_times_and_what_budgets_plan_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "budget.yaml").write_text(BUDGET)
    write_trace(
        tmp_path / "t.jsonl",
        [TraceRequest(t=0, model="a", service=1), TraceRequest(t=10, model="b", service=1)],
    )
    argv = ["--config", str(tmp_path / "budget.yaml"), "--trace", str(tmp_path / "t.jsonl")]
    # No history: both fit as declared (8 of 10 GiB), b loads beside a.
    out = run_json(capsys, *argv, "--state-dir", str(tmp_path / "none"))
    (config,) = out["configs"]  # type: ignore[misc]
    assert config["models"]["b"]["wait_max"] == 1.0
    # Runs of a measured at 7 GiB (planned 7.7): b no longer fits beside it.
    state = tmp_path / "state"
    state.mkdir()
    db = Database.open_writer(database_path(state))
    gib = 1 << 30
    insert_runs(
        db.conn,
        [RunRow("a", 1.0 + i, load_s, 7 * gib, None) for i, load_s in enumerate((2.0, 4.0, 3.0))],
    )
    db.write([swap(1, "b", 5.0)])
    db.close()
    out = run_json(capsys, *argv, "--state-dir", str(state))
    assert out["load_times"] == {
        "a": {"seconds": 3.0, "source": "history"},
        "b": {"seconds": 5.0, "source": "history"},
    }
    (config,) = out["configs"]  # type: ignore[misc]
    assert (config["totals"]["loads"], config["totals"]["failures"]) == (2, 0)
    loaded = load_config_text(BUDGET)
    items = [TraceRequest(t=0, model="a", service=1), TraceRequest(t=10, model="b", service=1)]
    books = read_books(database_path(state))
    result = simulate(loaded, items, {}, learned=Learned(books))
    assert [(ld.model, ld.evicted) for ld in result.loads] == [("a", ()), ("b", ("a",))]
    plain = simulate(loaded, items, {})
    assert [(ld.model, ld.evicted) for ld in plain.loads] == [("a", ()), ("b", ())]


def test_the_latest_requests_of_a_window_leave_out_peers_and_unnamed(tmp_path: Path) -> None:
    db = Database.open_writer(tmp_path / "history.sqlite3")
    peer = RequestRecord(
        id=9, start=104.0, client=None, requested="p/x", model="x", route="/v1/x",
        stream=True, outcome="done", status=200, peer="p", duration_s=1.0,
    )  # fmt: skip
    unnamed = RequestRecord(
        id=10, start=104.5, client=None, requested=None, model=None, route="/v1/x",
        stream=False, outcome="failed", status=400,
    )  # fmt: skip
    db.write([request(i, 100.0 + i, "AB"[i % 2], duration_s=1.0) for i in range(6)])
    db.write([peer, unnamed])
    try:
        assert [r.id for r in request_records(db, None)] == [0, 1, 2, 3, 4, 5]
        assert [r.id for r in request_records(db, 102.0)] == [2, 3, 4, 5]
        # The bound counts only what the trace holds: the peer and the unnamed are not in it.
        assert [r.id for r in request_records(db, 101.0, limit=3)] == [3, 4, 5]
    finally:
        db.close()


def test_wake_times_come_from_the_flag_else_the_measured_wakes_else_the_default() -> None:
    loaded = load_config_text(
        """
models:
  A:
    cmd: fake --port ${PORT}
    sleep: {endpoint: /sleep}
    wake: {endpoint: /wake_up}
  C:
    cmd: fake --port ${PORT}
    sleep: {endpoint: /sleep}
    wake: {endpoint: /wake_up}
  B:
    cmd: fake --port ${PORT}
"""
    )
    books = Books(BooksData(wakes={"A": [0.25, 0.75], "C": [4.0]}))
    times = resolve_wake_times([loaded], [("C", 2.0)], books)
    assert times == {
        "A": LoadTime(0.5, "history"),
        "C": LoadTime(2.0, "flag"),
    }
    assert resolve_wake_times([loaded], [], None)["A"] == LoadTime(1.0, "default")
