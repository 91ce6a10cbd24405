"""The solver with a capacity (`keep`) against brute force over the full expansion.

Each combination keeps only the running models it holds that `keep` lets
stay; the cheapest such combination wins, ties to the first set in
evaluation order, then the first combination. `keep` here is itself a brute
force: the heaviest subset (by evict cost) whose footprints fit one
resource, first in a fixed order on ties.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from swapd.matrix import Solution
from swapd.matrix.parser import parse
from swapd.matrix.solver import Keep
from tests.unit.matrix.test_properties import (
    ALL_MODELS,
    build,
    matrices,
    naive_expand,
    naive_order,
    resolved_costs,
)


def keeper(sizes: dict[str, int], room: int, cost_of: dict[str, int]) -> Keep:
    def keep(held: tuple[str, ...]) -> tuple[str, ...]:
        best: tuple[int, tuple[str, ...]] | None = None
        for size in range(len(held), -1, -1):
            for subset in itertools.combinations(held, size):
                if sum(sizes[m] for m in subset) > room:
                    continue
                weight = sum(cost_of.get(m, 1) for m in subset)
                if best is None or weight > best[0]:
                    best = (weight, subset)
        assert best is not None  # the empty subset always fits
        return best[1]

    return keep


def brute_force(sets, vars, costs, target: str, running: list[str], keep: Keep) -> Solution:
    running = list(dict.fromkeys(running))
    cost_of = resolved_costs(vars, costs)
    done: dict[str, list[frozenset[str]]] = {}
    order = naive_order(sets)
    for name in order:
        done[name] = naive_expand(parse(dict(sets)[name]), vars, done)
    total = sum(cost_of.get(r, 1) for r in running)
    best: tuple[int, str, frozenset[str], tuple[str, ...]] | None = None
    for name in order:
        for combo in done[name]:
            if target not in combo:
                continue
            kept = keep(tuple(r for r in running if r in combo))
            cost = total - sum(cost_of.get(r, 1) for r in kept)
            if best is None or cost < best[0]:
                best = (cost, name, combo, kept)
    if best is None:
        return Solution(target, None, (target,), tuple(running), total)
    cost, name, combo, kept = best
    evict = tuple(r for r in running if r not in kept)
    return Solution(target, name, tuple(sorted(combo)), evict, cost)


@settings(max_examples=150)
@given(
    matrices(),
    st.dictionaries(st.sampled_from(ALL_MODELS), st.integers(0, 6)),
    st.integers(0, 12),
    st.lists(
        st.tuples(st.sampled_from(ALL_MODELS), st.lists(st.sampled_from(ALL_MODELS), max_size=5)),
        min_size=1,
        max_size=3,
    ),
)
def test_only_what_fits_is_kept_and_the_answer_is_brute_forces(block, sizes, room, qs) -> None:
    sets, vars, costs = block
    matrix = build(sets, vars, costs)
    footprints = {m: sizes.get(m, 3) for m in ALL_MODELS}
    keep = keeper(footprints, room, resolved_costs(vars, costs))
    for target, running in qs:
        if target in running:
            continue  # unchanged: a running target evicts nothing
        got = matrix.solve(target, running, keep=keep)
        assert got == brute_force(sets, vars, costs, target, running, keep)
        staying = [m for m in dict.fromkeys(running) if m not in got.evict]
        if got.set is not None:
            assert sum(footprints[m] for m in staying) <= room


def test_a_grid_keeps_what_fits_beside_the_target() -> None:
    """(a|b) & (c|d) & t, all running, room for two of a, c, d beside t."""
    from swapd.matrix import compile_matrix

    matrix = compile_matrix([("s", "(a|b) & (c|d) & t")], {}, {"a": 3, "c": 2}, list("abcdt"))
    sizes = dict.fromkeys("abcd", 1)
    keep = keeper(sizes, 1, {"a": 3, "c": 2})
    got = matrix.solve("t", ["a", "b", "c", "d"], keep=keep)
    assert got.evict == ("b", "c", "d") and got.cost == 4, "only a (the costliest) stays"
    assert matrix.solve("t", ["a", "b", "c", "d"]).evict == ("b", "d")
