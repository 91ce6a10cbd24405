"""The simulator's benchmark runs, reports its figures, and is found by `python -m bench`."""

from __future__ import annotations

import itertools

from bench import __main__ as bench_main
from bench import bench_simulate


def test_the_day_trace_is_a_day_of_sessions() -> None:
    trace = bench_simulate.day_trace(2000, seed=1)
    assert len(trace) == 2000
    assert all(a.t <= b.t for a, b in itertools.pairwise(trace))
    assert {r.model for r in trace} <= set(bench_simulate.MODELS)
    assert bench_simulate.DAY * 0.5 < trace[-1].t < bench_simulate.DAY * 1.5


def test_figures_and_table() -> None:
    figures = bench_simulate.run(2000, seed=1)
    assert figures["requests"] == 2000 and figures["read_s"] > 0
    for name in bench_simulate.CONFIGS:
        assert figures[name]["replay_s"] > 0 and figures[name]["loads"] > 0
    text = bench_simulate.table(figures)
    assert "2000 requests" in text and "slowest read + replay" in text


def test_discovered_by_the_runner() -> None:
    assert "bench_simulate" in bench_main.discover()
