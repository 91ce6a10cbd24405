"""The symbolic solver against brute force over the full expansion.

Random small matrices (trees over a few models, vars that may shadow a
model, `+ref`s to sets defined before or after, evict costs keyed by model or
var, running sets with a model in no set) must give exactly the brute-force
answer: same cost, same set (the first in evaluation order among the
cheapest), same combination (the first in left-to-right expansion order).
The brute force below shares nothing with the package but the parser.
"""

from __future__ import annotations

import itertools
import math
import random
import re

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from swapd.matrix import Matrix, Solution, compile_matrix
from swapd.matrix.parser import And, Expr, Ident, Or, Ref, parse

MODELS = ["a", "b", "c", "d", "e"]
LONER = "z"  # a configured model that no set can mention
ALL_MODELS = [*MODELS, LONER]
VAR_NAMES = ["x", "y", "b"]  # "b" shadows the model b
MAX_COMBINATIONS = 400


def trees(atoms: list[str]) -> st.SearchStrategy:
    """An atom, or `(op, [kids])` with op "&" or "|"."""
    return st.recursive(
        st.sampled_from(atoms),
        lambda kids: st.tuples(st.sampled_from("&|"), st.lists(kids, min_size=2, max_size=3)),
        max_leaves=8,
    )


def expansion_size(tree, sizes: dict[str, int]) -> int:
    if isinstance(tree, str):
        return sizes[tree[1:]] if tree.startswith("+") else 1
    op, kids = tree
    counts = [expansion_size(kid, sizes) for kid in kids]
    return sum(counts) if op == "|" else math.prod(counts)


def render(tree, rng: random.Random, parent: str | None = None) -> str:
    """DSL text for `tree`: varied spacing, parentheses where needed and at random."""
    if isinstance(tree, str):
        return tree
    op, kids = tree
    sep = rng.choice([f" {op} ", op, f"  {op}\t"])
    text = sep.join(render(kid, rng, op) for kid in kids)
    if (parent == "&" and op == "|") or (parent is not None and rng.random() < 0.3):
        text = f"({text})"
    return text


@st.composite
def matrices(draw):
    count = draw(st.integers(1, 4))
    rng = draw(st.randoms(use_true_random=False))
    names = [f"s{i}" for i in range(count)]
    rank = draw(st.permutations(range(count)))  # a set refers only to sets of lower rank
    vars = draw(st.dictionaries(st.sampled_from(VAR_NAMES), st.sampled_from(MODELS), max_size=3))
    sets = []
    sizes: dict[str, int] = {}
    for i in sorted(range(count), key=rank.__getitem__):
        refs = [f"+{names[j]}" for j in range(count) if rank[j] < rank[i]]
        tree = draw(trees([*MODELS, *vars, *refs]))
        sizes[names[i]] = expansion_size(tree, sizes)
        sets.append((names[i], render(tree, rng)))
    assume(sum(sizes.values()) <= MAX_COMBINATIONS)  # keep the brute force cheap
    sets.sort(key=lambda item: names.index(item[0]))  # back to definition order
    costs: dict[str, int] = {}
    for model in draw(st.lists(st.sampled_from(ALL_MODELS), unique=True, max_size=4)):
        keys = [key for key, value in vars.items() if value == model]
        if model not in vars:  # otherwise the name means the var
            keys.append(model)
        if keys:
            costs[draw(st.sampled_from(keys))] = draw(st.integers(1, 4))
    return sets, vars, costs


def resolved_costs(vars: dict[str, str], costs: dict[str, int]) -> dict[str, int]:
    return {vars.get(key, key): cost for key, cost in costs.items()}


def naive_expand(expr: Expr, vars: dict[str, str], done: dict[str, list[frozenset[str]]]):
    if isinstance(expr, Ident):
        return [frozenset([vars.get(expr.name, expr.name)])]
    if isinstance(expr, Ref):
        return done[expr.name]
    parts = [naive_expand(child, vars, done) for child in expr.children]
    if isinstance(expr, Or):
        return [combo for part in parts for combo in part]
    assert isinstance(expr, And)
    return [frozenset().union(*pick) for pick in itertools.product(*parts)]


def naive_order(sets: list[tuple[str, str]]) -> list[str]:
    text = dict(sets)
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for ref in dict.fromkeys(re.findall(r"\+([\w.-]+)", text[name])):
            visit(ref)
        order.append(name)

    for name, _ in sets:
        visit(name)
    return order


def brute_force(sets, vars, costs, target: str, running: list[str]) -> Solution:
    running = list(dict.fromkeys(running))
    cost_of = resolved_costs(vars, costs)
    done: dict[str, list[frozenset[str]]] = {}
    order = naive_order(sets)
    for name in order:
        done[name] = naive_expand(parse(dict(sets)[name]), vars, done)
    if target in running:
        for name in order:
            for combo in done[name]:
                if set(running) <= combo:
                    return Solution(target, name, tuple(sorted(combo)), (), 0)
        return Solution(target, None, tuple(sorted(running)), (), 0)
    best: tuple[int, str, frozenset[str]] | None = None
    for name in order:
        for combo in done[name]:
            if target not in combo:
                continue
            cost = sum(cost_of.get(r, 1) for r in running if r not in combo)
            if best is None or cost < best[0]:
                best = (cost, name, combo)
    if best is None:
        return Solution(
            target, None, (target,), tuple(running), sum(cost_of.get(r, 1) for r in running)
        )
    cost, name, combo = best
    evict = tuple(r for r in running if r not in combo)
    return Solution(target, name, tuple(sorted(combo)), evict, cost)


def build(sets, vars, costs) -> Matrix:
    return compile_matrix(sets, vars, costs, ALL_MODELS)


queries = st.tuples(st.sampled_from(ALL_MODELS), st.lists(st.sampled_from(ALL_MODELS), max_size=5))


@settings(max_examples=150)
@given(matrices(), st.lists(queries, min_size=1, max_size=4))
def test_solver_equals_brute_force(block, qs):
    sets, vars, costs = block
    matrix = build(sets, vars, costs)
    for target, running in qs:
        assert matrix.solve(target, running) == brute_force(sets, vars, costs, target, running)


@settings(max_examples=100)
@given(matrices())
def test_expand_equals_naive_expansion(block):
    sets, vars, costs = block
    matrix = build(sets, vars, costs)
    done: dict[str, list[frozenset[str]]] = {}
    for name in naive_order(sets):
        done[name] = naive_expand(parse(dict(sets)[name]), vars, done)
    expansion = matrix.expand(limit=None)
    assert list(expansion.sets) == [name for name, _ in sets]
    assert expansion.sets == {name: [sorted(c) for c in done[name]] for name, _ in sets}
    assert matrix.set_order == tuple(naive_order(sets))


@settings(max_examples=100)
@given(
    st.lists(st.integers(0, 9), min_size=1, max_size=9).map(sorted),
    st.integers(0, 9),
    st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), unique=True, max_size=8),
    st.dictionaries(st.tuples(st.integers(0, 9), st.integers(0, 9)), st.integers(1, 5)),
)
def test_big_grid_matches_closed_form(_unused, target_group, running_cells, raw_costs):
    """10 groups of 10: keep, per other group, its costliest running model
    (first on ties); the target's group keeps only the target."""
    models = [f"m{g}_{a}" for g in range(10) for a in range(10)]
    dsl = " & ".join("(" + " | ".join(f"m{g}_{a}" for a in range(10)) + ")" for g in range(10))
    costs = {f"m{g}_{a}": c for (g, a), c in raw_costs.items()}
    matrix = compile_matrix([("grid", dsl)], {}, costs, models)
    target = f"m{target_group}_5"
    running = [f"m{g}_{a}" for g, a in running_cells if f"m{g}_{a}" != target]
    keep = {target_group: 5}
    for g in range(10):
        if g == target_group:
            continue
        here = [a for a in range(10) if f"m{g}_{a}" in running]
        if here:
            keep[g] = max(here, key=lambda a: (costs.get(f"m{g}_{a}", 1), -a))
    combination = tuple(sorted(f"m{g}_{keep.get(g, 0)}" for g in range(10)))
    evict = tuple(m for m in running if m not in combination)
    result = matrix.solve(target, running)
    assert result == Solution(
        target, "grid", combination, evict, sum(costs.get(m, 1) for m in evict)
    )


def as_ast(tree) -> Expr:
    """The generated tree as the parser's nodes, same-operator chains flattened."""
    if isinstance(tree, str):
        return Ref(tree[1:]) if tree.startswith("+") else Ident(tree)
    op, kids = tree
    return flatten((And if op == "&" else Or)(tuple(as_ast(kid) for kid in kids)))


def flatten(expr: Expr) -> Expr:
    if isinstance(expr, Ident | Ref):
        return expr
    kind = type(expr)
    children: list[Expr] = []
    for child in map(flatten, expr.children):
        children.extend(child.children if isinstance(child, kind) else [child])
    return kind(tuple(children))


@st.composite
def rendered_trees(draw):
    tree = draw(trees([*MODELS, "x", "+s1", "+other.set"]))
    return tree, render(tree, draw(st.randoms(use_true_random=False)))


@settings(max_examples=100)
@given(rendered_trees())
def test_parse_inverts_render(case):
    tree, text = case
    assert flatten(parse(text)) == as_ast(tree)
