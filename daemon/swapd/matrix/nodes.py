"""The compiled form of a matrix: expression nodes linked into a DAG.

Identifiers are already resolved to model IDs and `+ref`s point at the root
node of the referenced set, so a set used twice is one shared subtree. Each
node carries two facts computed once at compile time:

- `support`: a bitmask (over `Program.bits`) of every model the node can
  mention; a query skips any node whose support misses every relevant model;
- `first`: the models of the node's first combination in left-to-right
  expansion order, which is all the solver needs from a node that mentions
  no relevant model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class Node:
    """Base of the compiled nodes."""

    __slots__ = ("first", "support")

    support: int
    first: frozenset[str]


class Leaf(Node):
    __slots__ = ("bit", "model")

    def __init__(self, model: str, bit: int) -> None:
        self.model = model
        self.bit = bit
        self.support = bit
        self.first = frozenset((model,))


class AnyOf(Node):
    """OR: the children's combinations, child after child."""

    __slots__ = ("children",)

    def __init__(self, children: tuple[Node, ...]) -> None:
        self.children = children
        support = 0
        for child in children:
            support |= child.support
        self.support = support
        self.first = children[0].first


class AllOf(Node):
    """AND: one combination of each child, united; the first child varies slowest."""

    __slots__ = ("children",)

    def __init__(self, children: tuple[Node, ...]) -> None:
        self.children = children
        support = 0
        first: frozenset[str] = frozenset()
        for child in children:
            support |= child.support
            first |= child.first
        self.support = support
        self.first = first


class SetRef(Node):
    """`+name`: the referenced set's root (compiled before any set using it)."""

    __slots__ = ("name", "target")

    def __init__(self, name: str, target: Node) -> None:
        self.name = name
        self.target = target
        self.support = target.support
        self.first = target.first


@dataclass(frozen=True, slots=True)
class CompiledSet:
    """One set: `index` is its place in evaluation order; `needs` is a bitmask
    over those indexes of the set itself and every set it reaches by `+ref`."""

    name: str
    dsl: str
    root: Node
    index: int
    needs: int


@dataclass(frozen=True, slots=True)
class Program:
    """What the solver and the expander work on.

    `sets` is in evaluation order (references before their users); `bits`
    gives each model mentioned by any set its own bit; `costs` holds every
    explicit evict cost by model ID (unlisted models cost 1).
    """

    sets: tuple[CompiledSet, ...]
    bits: Mapping[str, int]
    costs: Mapping[str, int]

    def cost_of(self, model: str) -> int:
        return self.costs.get(model, 1)
