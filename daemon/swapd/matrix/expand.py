"""Bounded expansion of a matrix, for display only (the solver never expands).

Combinations come lazily, in left-to-right expansion order (OR: child after
child; AND: the first child varies slowest), so asking for the first N costs
work proportional to N, however many combinations a set denotes. Each
combination is reported as its sorted, de-duplicated model IDs; the same
combination reached twice (`a | a`) is listed twice, as llama-swap v790 did,
so the list stays the literal expansion the tie rule refers to.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
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


def iter_combinations(node: Node) -> Iterator[frozenset[str]]:
    """Every combination of `node`, in expansion order (unbounded: use islice)."""
    if isinstance(node, Leaf):
        yield node.first
    elif isinstance(node, SetRef):
        yield from iter_combinations(node.target)
    elif isinstance(node, AnyOf):
        for child in node.children:
            yield from iter_combinations(child)
    elif isinstance(node, AllOf):
        yield from _product(node.children)
    else:
        raise TypeError(f"unknown node {node!r}")


def _product(children: tuple[Node, ...]) -> Iterator[frozenset[str]]:
    """Lexicographic product with set union, as an odometer (no recursion per child)."""
    last = len(children) - 1
    iterators: list[Iterator[frozenset[str]]] = [iter_combinations(children[0])]
    unions: list[frozenset[str]] = []  # unions[k]: the choices at depths 0..k, united
    while iterators:
        depth = len(iterators) - 1
        item = next(iterators[depth], None)
        if item is None:
            iterators.pop()
            continue
        del unions[depth:]
        unions.append(unions[depth - 1] | item if depth else item)
        if depth == last:
            yield unions[depth]
        else:
            iterators.append(iter_combinations(children[depth + 1]))


def expand(sets: Iterable[CompiledSet], limit: int | None = DEFAULT_LIMIT) -> Expansion:
    """Up to `limit` combinations per set (None: no bound), for display.

    `sets` is given in the order the caller wants to show them (file order
    for `Matrix.expand`). `truncated` is True when any set had more.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    result: dict[str, list[list[str]]] = {}
    truncated = False
    for compiled in sets:
        combos = iter_combinations(compiled.root)
        if limit is not None:
            combos = islice(combos, limit + 1)
        listed = [sorted(combo) for combo in combos]
        if limit is not None and len(listed) > limit:
            truncated = True
            del listed[limit:]
        result[compiled.name] = listed
    return Expansion(result, truncated)
