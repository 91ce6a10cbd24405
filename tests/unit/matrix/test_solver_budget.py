"""The solver's budget: a query that would take too long inside the run loop falls back safely."""

from __future__ import annotations

from swapd.matrix import compile_matrix
from swapd.matrix.cli import render_solution
from swapd.matrix.solver import MASK_BUDGET, solve


def pairs(groups: int):
    """`t & (x0 | y0) & ... & (xN | yN)`: 2^N equally good choices with every x and y running."""
    models = [f"{c}{i}" for i in range(groups) for c in "xy"]
    dsl = "t & " + " & ".join(f"(x{i} | y{i})" for i in range(groups))
    return compile_matrix([("pairs", dsl)], {}, {"x0": 3}, [*models, "t"]), models


def test_within_the_budget_the_answer_is_exact() -> None:
    matrix, running = pairs(10)
    solution = matrix.solve("t", running)
    assert solution.exhaustive
    assert solution.set == "pairs"
    assert solution.cost == 10  # one of each pair, and x0 (cost 3) is kept
    assert "x0" not in solution.evict and len(solution.evict) == 10


def test_over_the_budget_the_target_runs_alone() -> None:
    matrix, running = pairs(16)
    solution = matrix.solve("t", running)
    assert not solution.exhaustive
    assert solution.set is None
    assert solution.combination == ("t",)
    assert solution.evict == tuple(running)
    assert solution.cost == len(running) + 2  # x0 costs 3
    assert solution.as_dict()["exhaustive"] is False


def test_over_the_budget_a_running_target_changes_nothing() -> None:
    matrix, running = pairs(16)
    solution = matrix.solve("t", [*running, "t"])
    assert not solution.exhaustive
    assert solution.evict == () and solution.cost == 0


def test_the_budget_counts_work_not_time() -> None:
    """The same query is exact or not by its size alone: no clock decides."""
    matrix, running = pairs(10)
    program = matrix._program
    assert solve(program, "t", running, budget=MASK_BUDGET).exhaustive
    tight = solve(program, "t", running, budget=100)
    assert not tight.exhaustive and tight.evict == tuple(running)
    assert "exhaustive" not in solve(program, "t", running).as_dict()


def test_the_text_of_a_fallback_says_so() -> None:
    matrix, running = pairs(16)
    assert "over the solver's budget" in render_solution(matrix.solve("t", running))
    assert "note:" not in render_solution(pairs(2)[0].solve("t", ["x0", "y0"]))
