"""The budget planner's benchmark runs, reports its figures, and is found by `python -m bench`."""

from __future__ import annotations

from bench import __main__ as bench_main
from bench import bench_budget


def test_figures_and_table() -> None:
    figures = bench_budget.run(queries=10)
    row = figures["rows"]["thirty_on_four"]
    assert row["queries"] == 10 and row["running"] == 30
    assert row["exhaustive"] == 10 and row["mean_evicted"] > 0
    assert 0 < row["p50_us"] <= row["p99_us"]
    assert figures["goal_us"] == 1000.0 and isinstance(figures["meets_goal"], bool)
    swapper = figures["rows"]["swapper"]
    assert swapper["exhaustive"] == 10 and swapper["mean_evicted"] == row["mean_evicted"]
    sleepers = figures["rows"]["sleepers"]
    assert sleepers["exhaustive"] == 10 and sleepers["mean_evicted"] > 0
    assert isinstance(figures["sleepers_meet_goal"], bool)
    text = bench_budget.table(figures)
    assert "30 running, 4 GPUs + ram" in text and "30 running on 1 GPU" in text
    assert "30 on 4 GPUs, BudgetSwapper" in text and "half can sleep" in text


def test_discovered_by_the_runner() -> None:
    assert "bench_budget" in bench_main.discover()
