"""Choose which running models to evict so a target can start (pure, symbolic).

Contract of `solve(program, target, running)`:

1. `target` already running: evict nothing. The reported set is the first set
   (in evaluation order) with a combination holding every running model, and
   the combination is the first such one in expansion order; with no such
   set, `set` is None and the combination is the running models.
2. `target` in no set: it runs alone. `set` is None, every running model is
   evicted, and `cost` is their summed evict cost (llama-swap reports 0 here;
   the real cost is more useful to the router and to `explain`).
3. Otherwise, among all combinations containing the target, minimise the
   cost: the summed evict cost (default 1) of the running models outside the
   combination. Ties go to the set first in evaluation order, then to the
   combination first in left-to-right expansion order: exactly what a brute
   force walk over the full expansion returns when it keeps the first
   candidate with a strictly smaller cost. `evict` keeps `running` order;
   a running model that no set contains is always evicted.

Evaluation order is the compiler's: a depth-first post-order over the set
definitions in file order, references before their users.

The tie rule within a set is llama-swap v790's (first expanded combination).
Latest llama-swap's frontier moves a superset state to the end of its list and
can pick a different, equally cheap combination (docs/compat.md, Swap
matrix): for `t & (a | c | (a & b)) & b`, running a, b, c,
target t, we keep [a, b, t] and evict c where latest keeps [b, c, t] and
evicts a. We keep v790's rule because a user can read it off the expanded
matrix (`swapd matrix expand`).

How it stays symbolic, and why it equals brute force. Only the *relevant*
models (target and running) matter; a combination is seen through its *mask*,
the bitmask of the relevant models it contains. `weight(mask)` sums the evict
costs of the running models in it, so cost = total running cost - weight,
and weight only grows with the mask.

- `maximal(E)`: the masks of E's combinations that no other mask of E
  strictly contains. Every mask of E lies under one of them, and they are
  computed bottom-up without expanding: a leaf has its own mask, OR keeps the
  maximal masks of its children's, AND the maximal pairwise unions (an AND
  mask is a union of one mask per child, and a union is largest when its
  parts are). A node that mentions no relevant model has the single mask 0.
- The cheapest cost of a set S is total - max weight(M) over M in
  maximal(S) that contain the target: any combination with the target lies
  under such an M, which weighs at least as much. Scanning the sets in order
  and keeping the first strictly cheaper one gives brute force's set.
- Within that set brute force returns the first combination, in expansion
  order, whose mask satisfies `accept(m) = target in m and weight(m) >= best`.
  `accept` is upward closed (a larger mask still satisfies it), and the first
  combination satisfying an upward-closed test is found by descent: a leaf
  is tested directly; an OR takes its first child that has any satisfying
  combination (some maximal mask of the child passes) and descends into it;
  an AND is ordered lexicographically, first child most significant, so it
  takes the first combination of its first child that can still be completed
  (some maximal mask of the remaining children, united with it, passes: again
  an upward-closed test), then the second child given the first, and so on;
  a reference descends into its set. A node mentioning no relevant model
  contributes its first combination, fixed at compile time.

Cost: the maximal-mask lists are bounded by the antichains of relevant masks,
not by the number of combinations: ten groups of ten alternatives (10^10
combinations) with six models running take about 0.1 ms (bench/bench_solver.py).
The maximal masks of each node are memoised per query, so a set referenced
many times is evaluated once, and the descent memoises per (node, test), so
it walks only the chosen branch. The worst case is inherent to the problem
(choosing one alternative per group to keep the most valuable running models
is a maximum-coverage problem): antichains grow with the number of *running*
models that are alternatives of one another, e.g. `t & (x0|y0) & ... & (xN|yN)`
with all of them running gives 2^N masks. Comparing a mask only with larger
ones keeps that linear in the masks: N = 12 (24 models running) takes about
25 ms, N = 14 about 0.1 s (it was 1.6 s and 31 s with all-pairs comparison).

With a capacity (`keep`), only what fits counts: a combination keeps the
running models in it that can stay beside the target, the subset `keep`
chooses (the one whose evict costs weigh most, so the eviction is the
cheapest), and the others are evicted too. Everything above holds with
`weight(mask)` replaced by the weight of `keep`'s subset of the mask's
running models: it still only grows with the mask (a larger mask offers
more to keep), so the maximal masks and the descent give brute force's
answer over the combinations, each kept to what fits. Each distinct mask
asks `keep` once and pays `KEEP_PRICE` from the budget.

A query runs inside the router's run loop, so it has a budget: the masks
its joins may produce (`MASK_BUDGET`, about a tenth of a second of work).
A query over budget, which takes dozens of running models that are
alternatives of one another, falls back to a safe answer, marked
`exhaustive=False`: the target runs alone (every running model is evicted),
or, when it already runs, nothing changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from swapd.matrix.nodes import AllOf, AnyOf, CompiledSet, Leaf, Node, Program, SetRef

Accept = Callable[[int], bool]
#: With a capacity: given the running models a combination holds (in `running` order),
#: the ones that may stay beside the target, keeping the most evict cost. The caller
#: makes sure the target fits alone.
Keep = Callable[[tuple[str, ...]], tuple[str, ...]]

MASK_BUDGET = 1 << 16  # masks the joins of one query may produce
KEEP_PRICE = 64  # what one call of `keep` costs, in masks


class _OverBudget(Exception):
    """The query would cost more than its budget."""


@dataclass(frozen=True, slots=True)
class Solution:
    """The eviction decision for one `(target, running)` query.

    `combination` is the chosen combination's full model list (models that
    are not running included), sorted; `evict` keeps the order of `running`.
    """

    target: str
    set: str | None
    combination: tuple[str, ...]
    evict: tuple[str, ...]
    cost: int
    exhaustive: bool = True  # False: over MASK_BUDGET, the safe fallback answer

    def as_dict(self) -> dict[str, Any]:
        """The `swapd matrix solve --json` shape (`exhaustive` only when it is false)."""
        out: dict[str, Any] = {
            "target": self.target,
            "set": self.set,
            "combination": list(self.combination),
            "evict": list(self.evict),
            "cost": self.cost,
        }
        if not self.exhaustive:
            out["exhaustive"] = False
        return out


def solve(
    program: Program,
    target: str,
    running: Sequence[str],
    budget: int = MASK_BUDGET,
    keep: Keep | None = None,
) -> Solution:
    """Decide what to evict so `target` can run (see the module docstring)."""
    running = list(dict.fromkeys(running))
    try:
        return _solve(program, target, running, budget, keep)
    except _OverBudget:
        if target in running:
            return Solution(target, None, tuple(sorted(running)), (), 0, exhaustive=False)
        evict = tuple(running)
        total = sum(program.cost_of(model) for model in running)
        return Solution(target, None, (target,), evict, total, exhaustive=False)


def _solve(
    program: Program, target: str, running: list[str], budget: int, keep: Keep | None
) -> Solution:
    if target in running:
        found = _containing(program, running, budget)
        if found is None:
            return Solution(target, None, tuple(sorted(running)), (), 0)
        chosen, combination = found
        return Solution(target, chosen.name, combination, (), 0)

    target_bit = program.bits.get(target, 0)
    total = sum(program.cost_of(model) for model in running)
    candidates = [s for s in program.sets if s.root.support & target_bit]
    if not candidates:
        return Solution(target, None, (target,), tuple(running), total)

    relevant = target_bit
    weights: list[tuple[int, int]] = []
    for model in running:
        bit = program.bits.get(model, 0)
        if bit:
            relevant |= bit
            weights.append((bit, program.cost_of(model)))

    weights_of: dict[int, int] = {}
    kept_of: dict[int, tuple[str, ...]] = {}
    query = _Query(relevant, budget)

    def weight(mask: int) -> int:
        value = weights_of.get(mask)
        if value is not None:
            return value
        if keep is None:
            value = sum(cost for bit, cost in weights if mask & bit)
        else:
            query.pay(KEEP_PRICE)
            held = tuple(m for m in running if program.bits.get(m, 0) & mask)
            kept = kept_of[mask] = keep(held)
            value = sum(program.cost_of(m) for m in kept)
        weights_of[mask] = value
        return value

    needed = 0
    for candidate in candidates:
        needed |= candidate.needs
    best: tuple[int, CompiledSet] | None = None
    for compiled in program.sets:
        if not needed >> compiled.index & 1:
            continue
        maxima = query.maximal(compiled.root)  # referenced sets first: shallow recursion
        if not compiled.root.support & target_bit:
            continue
        kept = max(weight(mask) for mask in maxima if mask & target_bit)
        if best is None or total - kept < best[0]:
            best = (total - kept, compiled)
            if kept == total:
                break
    if best is None:  # unreachable: `candidates` is not empty
        raise AssertionError(f"no set contains {target!r}")

    cost, chosen = best
    least = total - cost

    def accept(mask: int) -> bool:
        return bool(mask & target_bit) and weight(mask) >= least

    found_first = query.first(chosen.root, accept)
    if found_first is None and keep is not None:
        raise _OverBudget  # `keep` cut its own search short and broke monotony: play safe
    if found_first is None:  # unreachable: the set's maximal masks pass `accept`
        raise AssertionError(f"set {chosen.name!r} lost its best combination")
    mask, members = found_first
    if keep is None:
        evict = tuple(model for model in running if model not in members)
    else:
        weight(mask)
        stays = set(kept_of[mask])
        evict = tuple(model for model in running if model not in stays)
    return Solution(target, chosen.name, tuple(sorted(members)), evict, cost)


def _containing(
    program: Program, models: Sequence[str], budget: float
) -> tuple[CompiledSet, tuple[str, ...]] | None:
    wanted = 0
    for model in models:
        bit = program.bits.get(model, 0)
        if not bit:
            return None
        wanted |= bit

    def accept(mask: int) -> bool:
        return mask & wanted == wanted

    query = _Query(wanted, budget)
    for compiled in program.sets:
        if any(accept(mask) for mask in query.maximal(compiled.root)):
            found = query.first(compiled.root, accept)
            if found is not None:
                return compiled, tuple(sorted(found[1]))
    return None


class _Query:
    """Per-query evaluation over the relevant models' bits."""

    def __init__(self, relevant: int, budget: float = math.inf) -> None:
        self.relevant = relevant
        self.budget = budget
        self._maxima: dict[Node, list[int]] = {}

    def pay(self, masks: int) -> None:
        """Take `masks` from the budget; over it, the query is abandoned."""
        self.budget -= masks
        if self.budget < 0:
            raise _OverBudget

    def join(self, left: list[int], right: list[int]) -> list[int]:
        """`_join`, paid for: the pairs it unites come out of the budget."""
        self.pay(len(left) * len(right))
        return _join(left, right)

    def maximal(self, node: Node) -> list[int]:
        """The maximal masks of `node`'s combinations."""
        if not node.support & self.relevant:
            return [0]
        if isinstance(node, Leaf):
            return [node.bit]
        cached = self._maxima.get(node)
        if cached is not None:
            return cached
        if isinstance(node, SetRef):
            result = self.maximal(node.target)
        elif isinstance(node, AnyOf):
            masks: set[int] = set()
            for child in node.children:
                if isinstance(child, Leaf):  # inlined: most children of a big OR are leaves
                    masks.add(child.bit & self.relevant)
                else:
                    masks.update(self.maximal(child))
            self.pay(len(masks))
            result = _maximal_of(masks)
        elif isinstance(node, AllOf):
            result = [0]
            for child in node.children:
                if child.support & self.relevant:
                    result = self.join(result, self.maximal(child))
        else:
            raise TypeError(f"unknown node {node!r}")
        self._maxima[node] = result
        return result

    def first(self, node: Node, accept: Accept) -> tuple[int, frozenset[str]] | None:
        """The first combination of `node` (expansion order) whose mask passes the
        upward-closed test `accept`, as (mask, models); None if there is none."""
        return _Descent(self, accept).first(node, (0,))


class _Descent:
    """One search for a first accepted combination.

    Every test met while descending has the form "some offset o in O makes
    `accept(mask | o)` true" (an AND turns the test on one child into a test
    on the next with offsets prefix | completion | o), so a test is the tuple
    of its maximal offsets, and `(node, offsets)` results are memoised: a set
    referenced many times along the chosen branch is searched once per test.
    """

    def __init__(self, query: _Query, accept: Accept) -> None:
        self.query = query
        self.accept = accept
        self.relevant = query.relevant
        self._memo: dict[tuple[Node, tuple[int, ...]], tuple[int, frozenset[str]] | None] = {}

    def passes(self, mask: int, offsets: tuple[int, ...]) -> bool:
        accept = self.accept
        return any(accept(mask | offset) for offset in offsets)

    def first(self, node: Node, offsets: tuple[int, ...]) -> tuple[int, frozenset[str]] | None:
        if not node.support & self.relevant:
            return (0, node.first) if self.passes(0, offsets) else None
        if isinstance(node, Leaf):
            return (node.bit, node.first) if self.passes(node.bit, offsets) else None
        if isinstance(node, SetRef):
            return self.first(node.target, offsets)
        key = (node, offsets)
        if key in self._memo:
            return self._memo[key]
        if isinstance(node, AnyOf):
            found = self._first_of_any(node, offsets)
        elif isinstance(node, AllOf):
            found = self._first_of_all(node, offsets)
        else:
            raise TypeError(f"unknown node {node!r}")
        self._memo[key] = found
        return found

    def _first_of_any(
        self, node: AnyOf, offsets: tuple[int, ...]
    ) -> tuple[int, frozenset[str]] | None:
        for child in node.children:
            if isinstance(child, Leaf):  # inlined: most children of a big OR are leaves
                mask = child.bit & self.relevant
                if self.passes(mask, offsets):
                    return mask, child.first
            elif any(self.passes(mask, offsets) for mask in self.query.maximal(child)):
                return self.first(child, offsets)
        return None

    def _first_of_all(
        self, node: AllOf, offsets: tuple[int, ...]
    ) -> tuple[int, frozenset[str]] | None:
        models: set[str] = set()
        parts: list[Node] = []
        for child in node.children:
            if child.support & self.relevant:
                parts.append(child)
            else:
                models |= child.first  # one combination, all with an empty mask
        # rest[k]: the maximal masks of parts[k:], joined; rest[len] = [0].
        rest: list[list[int]] = [[0]]
        for part in reversed(parts):
            rest.append(self.query.join(self.query.maximal(part), rest[-1]))
        rest.reverse()

        chosen = 0
        for k, part in enumerate(parts):
            # The k-th choice must leave some completion of parts[k+1:] accepted.
            self.query.pay(len(rest[k + 1]) * len(offsets))
            shifted = _maximal_of(chosen | r | o for r in rest[k + 1] for o in offsets)
            found = self.first(part, tuple(sorted(shifted)))
            if found is None:
                return None
            chosen |= found[0]
            models |= found[1]
        return (chosen, frozenset(models)) if self.passes(chosen, offsets) else None


def _join(left: list[int], right: list[int]) -> list[int]:
    """The maximal masks of one-from-each unions of two maximal-mask lists."""
    if len(right) == 1:
        only = right[0]
        return _maximal_of(mask | only for mask in left)
    return _maximal_of(mask | other for mask in left for other in right)


def _maximal_of(masks: Iterable[int]) -> list[int]:
    """The masks that no other given mask strictly contains (largest first).

    A mask can only be strictly contained in one with more bits, so each is
    compared with the kept masks of larger bit counts only: masks of one
    size, the antichains that products of alternatives produce, cost no
    comparison among themselves.
    """
    kept: list[int] = []
    larger = 0  # kept[:larger] have more bits than the masks now being looked at
    size = -1
    for mask in sorted(set(masks), key=int.bit_count, reverse=True):
        bits = mask.bit_count()
        if bits != size:
            size, larger = bits, len(kept)
        for index in range(larger):
            if mask | kept[index] == kept[index]:
                break
        else:
            kept.append(mask)
    return kept
