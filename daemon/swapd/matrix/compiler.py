"""Compile a matrix block (vars, evict_costs, sets) into a `Matrix`.

Validation follows latest llama-swap (docs/compat.md, Swap matrix): vars are
optional, a DSL identifier is a var first and a model ID otherwise (a var
shadows a model of the same name), model aliases are never accepted. Checks
run in llama-swap's order (sets, vars, evict costs, then each set in file
order: parse, then its identifiers and references left to right, then
cycles), but every problem is collected instead of stopping at the first.

Two additions to llama-swap's checks, both about inputs it handled silently:
two evict_costs keys naming the same model (Go kept whichever its map
iteration met last) and a set name given twice (impossible from YAML, but
the function also takes programmatic input).

Set order (the tie-break order) is a depth-first post-order over the
definitions in file order, visiting each set's references in order of first
appearance, so referenced sets come before their users even when defined
later. Latest llama-swap loses file order when it re-encodes the YAML (it
sorts the set names); we keep file order, which is its documented intent.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence

from swapd.matrix import expand as _expand
from swapd.matrix import solver as _solver
from swapd.matrix.errors import MatrixError, MatrixProblem, go_quote
from swapd.matrix.nodes import AllOf, AnyOf, CompiledSet, Leaf, Node, Program, SetRef
from swapd.matrix.parser import And, DslSyntaxError, Expr, Ident, Or, Ref, parse, refs_of

_VAR_KEY = re.compile(r"[a-zA-Z0-9.-]{1,32}")


class Matrix:
    """A compiled swap matrix: pure, immutable, safe to share between tasks."""

    def __init__(
        self,
        program: Program,
        file_order: tuple[str, ...],
        dsl: Mapping[str, str],
        vars: Mapping[str, str],
    ) -> None:
        self._program = program
        self._by_name = {s.name: s for s in program.sets}
        self._dsl = dict(dsl)
        self.vars: Mapping[str, str] = dict(vars)
        self.set_names: tuple[str, ...] = file_order
        """Set names in file (definition) order."""
        self.set_order: tuple[str, ...] = tuple(s.name for s in program.sets)
        """Set names in evaluation order: the tie-break order of `solve`."""
        self.evict_costs: Mapping[str, int] = dict(program.costs)
        """Explicit evict costs by model ID; other models cost 1."""
        self.models: frozenset[str] = frozenset(program.bits)
        """Every model some set can contain."""

    def __repr__(self) -> str:
        return f"Matrix(sets={list(self.set_names)!r})"

    def dsl(self, set_name: str) -> str:
        """The set's expression as written (for logs and display)."""
        return self._dsl[set_name]

    def sets_of(self, model: str) -> tuple[str, ...]:
        """The sets (file order) with at least one combination containing `model`."""
        bit = self._program.bits.get(model, 0)
        return tuple(name for name in self.set_names if self._by_name[name].root.support & bit)

    def cost_of(self, model: str) -> int:
        """What evicting `model` costs (1 unless evict_costs says otherwise)."""
        return self._program.cost_of(model)

    def solve(
        self, target: str, running: Sequence[str], keep: _solver.Keep | None = None
    ) -> _solver.Solution:
        """Which running models to evict so `target` can run; see `swapd.matrix.solver`
        (`keep`: with a capacity, which running models may stay beside the target)."""
        return _solver.solve(self._program, target, running, keep=keep)

    def expand(self, limit: int | None = _expand.DEFAULT_LIMIT) -> _expand.Expansion:
        """Up to `limit` combinations per set, sets in file order; display only."""
        return _expand.expand(
            [self._by_name[name] for name in self.set_names],
            limit,
            evaluation_order=self._program.sets,
        )


def compile_matrix(
    sets: Sequence[tuple[str, str]],
    vars: Mapping[str, str],
    evict_costs: Mapping[str, int],
    models: Collection[str],
) -> Matrix:
    """Validate and compile a matrix block, or raise `MatrixError` with every problem.

    `sets` is `(name, dsl)` in file order; `models` are the configured model IDs.
    """
    problems: list[MatrixProblem] = []
    model_ids = frozenset(models)

    if not sets:
        problems.append(MatrixProblem(("sets",), "matrix must define at least one set"))
    _check_vars(vars, model_ids, problems)
    costs = _resolve_costs(evict_costs, vars, model_ids, problems)

    names = [name for name, _ in sets]
    defined = set(names)
    parsed: dict[str, Expr] = {}
    dsl_of: dict[str, str] = {}
    seen: set[str] = set()
    for name, text in sets:
        path = ("sets", name)
        if name in seen:
            problems.append(MatrixProblem(path, f"set {go_quote(name)} is defined more than once"))
            continue
        seen.add(name)
        dsl_of[name] = text
        try:
            expr = parse(text)
        except DslSyntaxError as exc:
            problems.append(MatrixProblem(path, f"set {go_quote(name)}: {exc}"))
            continue
        before = len(problems)
        _check_names(name, expr, vars, model_ids, defined, problems)
        if len(problems) == before:
            parsed[name] = expr

    deps = {name: [r for r in refs_of(expr) if r in defined] for name, expr in parsed.items()}
    order, cyclic = _post_order(names, deps)
    problems.extend(
        MatrixProblem(("sets", name), f"circular reference detected involving set {go_quote(name)}")
        for name in cyclic
    )
    if problems:
        raise MatrixError(problems)

    return _link(order, parsed, dsl_of, tuple(dict.fromkeys(names)), vars, costs)


def _check_vars(
    vars: Mapping[str, str], models: frozenset[str], problems: list[MatrixProblem]
) -> None:
    for key, value in vars.items():
        path = ("vars", key)
        if not _VAR_KEY.fullmatch(key):
            problems.append(
                MatrixProblem(
                    path,
                    f"var key {go_quote(key)} must contain only alphanumeric, '-' or '.' "
                    "characters and be 1-32 characters long",
                )
            )
        if value not in models:
            problems.append(
                MatrixProblem(
                    path, f"var key {go_quote(key)} references unknown model {go_quote(value)}"
                )
            )


def _resolve_costs(
    evict_costs: Mapping[str, int],
    vars: Mapping[str, str],
    models: frozenset[str],
    problems: list[MatrixProblem],
) -> dict[str, int]:
    """Costs by model ID; a key is a var first, else a model ID."""
    costs: dict[str, int] = {}
    source: dict[str, str] = {}
    for key, cost in evict_costs.items():
        path = ("evict_costs", key)
        if isinstance(cost, bool) or not isinstance(cost, int) or cost <= 0:
            problems.append(
                MatrixProblem(
                    path, f"evict_cost for {go_quote(key)} must be a positive integer, got {cost}"
                )
            )
            continue
        model = vars.get(key, key)
        if key not in vars and key not in models:
            problems.append(
                MatrixProblem(path, f"evict_costs: unknown var or model {go_quote(key)}")
            )
            continue
        if model in source:
            problems.append(
                MatrixProblem(
                    path,
                    f"evict_costs: {go_quote(source[model])} and {go_quote(key)} "
                    f"both resolve to model {go_quote(model)}",
                )
            )
            continue
        source[model] = key
        costs[model] = cost
    return costs


def _check_names(
    set_name: str,
    expr: Expr,
    vars: Mapping[str, str],
    models: frozenset[str],
    defined: set[str],
    problems: list[MatrixProblem],
) -> None:
    """Pre-order, left to right: unknown identifiers and undefined references,
    each reported once per set."""
    path = ("sets", set_name)
    reported: set[tuple[type, str]] = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, And | Or):
            stack.extend(reversed(node.children))
            continue
        key = (type(node), node.name)
        if key in reported:
            continue
        if isinstance(node, Ident) and node.name not in vars and node.name not in models:
            reported.add(key)
            problems.append(
                MatrixProblem(
                    path,
                    f"set {go_quote(set_name)}: unknown var or model {go_quote(node.name)}",
                )
            )
        elif isinstance(node, Ref) and node.name not in defined:
            reported.add(key)
            problems.append(
                MatrixProblem(
                    path,
                    f"set {go_quote(set_name)} references undefined set {go_quote(node.name)}",
                )
            )


def _post_order(names: Sequence[str], deps: Mapping[str, list[str]]) -> tuple[list[str], list[str]]:
    """Depth-first post-order over `names`, references first; also the sets at
    which a cycle closes (llama-swap names the set it meets again)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    order: list[str] = []
    cyclic: list[str] = []
    for root in names:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(deps.get(root, ())))]
        while stack:
            name, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                stack.pop()
                state[name] = 2
                order.append(name)
            elif state.get(child) == 1:
                if child not in cyclic:
                    cyclic.append(child)
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(deps.get(child, ()))))
    return order, cyclic


def _link(
    order: list[str],
    parsed: Mapping[str, Expr],
    dsl_of: Mapping[str, str],
    file_order: tuple[str, ...],
    vars: Mapping[str, str],
    costs: dict[str, int],
) -> Matrix:
    """Build the node DAG in evaluation order, so every `+ref` target exists."""
    bits: dict[str, int] = {}
    roots: dict[str, Node] = {}
    index_of = {name: i for i, name in enumerate(order)}
    compiled: list[CompiledSet] = []

    def build(expr: Expr) -> Node:
        if isinstance(expr, Ident):
            model = vars.get(expr.name, expr.name)
            bit = bits.setdefault(model, 1 << len(bits))
            return Leaf(model, bit)
        if isinstance(expr, Ref):
            return SetRef(expr.name, roots[expr.name])
        children = tuple(build(child) for child in expr.children)
        return AllOf(children) if isinstance(expr, And) else AnyOf(children)

    needs: dict[str, int] = {}
    for name in order:
        expr = parsed[name]
        roots[name] = build(expr)
        need = 1 << index_of[name]
        for ref in refs_of(expr):
            need |= needs[ref]
        needs[name] = need
        compiled.append(CompiledSet(name, dsl_of[name], roots[name], index_of[name], need))

    program = Program(tuple(compiled), bits, costs)
    return Matrix(program, file_order, dsl_of, vars)
