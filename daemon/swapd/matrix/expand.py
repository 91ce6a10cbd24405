"""Bounded expansion of a matrix, for display only (the solver never expands).

Combinations are listed in left-to-right expansion order (OR: child after
child; AND: the first child varies slowest), and asking for the first N costs
work proportional to N per node, however many combinations a set denotes. Each
combination is reported as its sorted, de-duplicated model IDs; the same
combination reached twice (`a | a`) is listed twice, as llama-swap v790 did,
so the list stays the literal expansion the tie rule refers to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice, product
from typing import Any

from swapd.matrix.nodes import AllOf, AnyOf, CompiledSet, Leaf, Node, SetRef

DEFAULT_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Expansion:
    """Each set's combinations (sets in file order) and whether any set was cut short."""

    sets: dict[str, list[list[str]]] = field(default_factory=dict)
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The `swapd matrix expand --json` shape."""
        return {"sets": self.sets, "truncated": self.truncated}


def expand(
    shown: Iterable[CompiledSet],
    limit: int | None = DEFAULT_LIMIT,
    *,
    evaluation_order: Iterable[CompiledSet] = (),
) -> Expansion:
    """Up to `limit` combinations per set (None: no bound), for display.

    `shown` is in the order the caller wants to show the sets (file order for
    `Matrix.expand`); `truncated` is True when any of them had more. Passing
    `evaluation_order` (references first) fills the per-call memo bottom-up,
    so long reference chains never recurse deeply.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    wanted = None if limit is None else limit + 1  # one more, to know if there are more
    memo: dict[Node, list[frozenset[str]]] = {}
    for compiled in evaluation_order:
        first_combinations(compiled.root, wanted, memo)
    result: dict[str, list[list[str]]] = {}
    truncated = False
    for compiled in shown:
        combos = first_combinations(compiled.root, wanted, memo)
        if limit is not None and len(combos) > limit:
            truncated = True
            combos = combos[:limit]
        result[compiled.name] = [sorted(combo) for combo in combos]
    return Expansion(result, truncated)


def first_combinations(
    node: Node, count: int | None, memo: dict[Node, list[frozenset[str]]]
) -> list[frozenset[str]]:
    """The first `count` combinations of `node` (all if None), in expansion order.

    The first N combinations of an OR or AND only ever use the first N of each
    child (an AND's N-th tuple has no component past index N), so each node
    keeps at most N, memoised: the work is about N per node even when the
    node denotes 10^10 combinations or a reference is used many times.
    """
    cached = memo.get(node)
    if cached is not None:
        return cached
    if isinstance(node, Leaf):
        result = [node.first]
    elif isinstance(node, SetRef):
        result = first_combinations(node.target, count, memo)
    elif isinstance(node, AnyOf):
        result = []
        for child in node.children:
            result.extend(first_combinations(child, count, memo))
            if count is not None and len(result) >= count:
                del result[count:]
                break
    elif isinstance(node, AllOf):
        parts = [first_combinations(child, count, memo) for child in node.children]
        result = [frozenset().union(*pick) for pick in islice(product(*parts), count)]
    else:
        raise TypeError(f"unknown node {node!r}")
    memo[node] = result
    return result
