"""The solver benchmark runs, reports its figures, and is found by `python -m bench`."""

from __future__ import annotations

import pytest

from bench import __main__ as bench_main
from bench import bench_solver


def test_figures_and_table():
    figures = bench_solver.run(queries=20)
    row = figures["rows"]["grid_10x10"]
    assert row["queries"] == 20
    assert row["running"] == 6
    assert 0 < row["p50_us"] <= row["p99_us"]
    assert row["cpu_p50_us"] <= row["cpu_p99_us"]
    assert figures["goal_us"] == 1000.0
    assert isinstance(figures["meets_goal"], bool)
    text = bench_solver.table(figures)
    assert "10 groups x 10, 6 running" in text
    assert "spec example, 2 running" in text


def test_discovered_by_the_runner():
    assert "bench_solver" in bench_main.discover()
    assert bench_main.select(["bench_a", "bench_solver"], ["solver"]) == ["bench_solver"]
    assert bench_main.select(["bench_a"], []) == ["bench_a"]
    with pytest.raises(ValueError, match="unknown benchmark 'nope'"):
        bench_main.select(["bench_a"], ["nope"])


def test_runner_rejects_unknown_names(capsys):
    with pytest.raises(SystemExit) as info:
        bench_main.main(["no-such-bench"])
    assert info.value.code == 2
    assert "unknown benchmark 'no-such-bench'" in capsys.readouterr().err


def test_runner_runs_and_collects_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        bench_solver, "main", lambda argv: bench_solver.run(queries=10) | {"argv": argv}
    )
    out = tmp_path / "figures.json"
    assert bench_main.main(["solver", "--json", str(out)]) == 0
    assert '"bench_solver"' in out.read_text()
    assert '"argv": []' in out.read_text()
    assert "== bench_solver" in capsys.readouterr().out
