"""The matrix swap planner: `swapd.matrix.Matrix.solve` behind the `Swapper` protocol.

The solver is pure and symbolic; this adapter only reshapes its `Solution`
and logs the decision once per real swap (never per query). The last
solve is cached because the scheduler asks again, with the same arguments,
right before `on_swap_start`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from swapd.router.swapper import NO_USAGE, Eviction, Usage

log = logging.getLogger(__name__)


class SolutionLike(Protocol):
    @property
    def target(self) -> str: ...
    @property
    def set(self) -> str | None: ...
    @property
    def combination(self) -> tuple[str, ...]: ...
    @property
    def evict(self) -> tuple[str, ...]: ...
    @property
    def cost(self) -> int: ...
    @property
    def exhaustive(self) -> bool: ...


class MatrixLike(Protocol):
    def solve(
        self,
        target: str,
        running: Sequence[str],
        keep: Callable[[tuple[str, ...]], tuple[str, ...]] | None = None,
    ) -> SolutionLike: ...

    def dsl(self, set_name: str) -> str: ...


class BudgetLike(Protocol):
    """With a capacity: the models a combination may keep beside a target, and why a
    target can never run (empty when it can)."""

    def keep_for(self, target: str) -> Callable[[tuple[str, ...]], tuple[str, ...]]: ...

    def refusal(self, target: str) -> str: ...


class MatrixSwapper:
    """With `budget` (a capacity), a combination keeps only the running models that fit
    beside the target, and a target that cannot fit even alone is refused."""

    def __init__(self, matrix: MatrixLike, budget: BudgetLike | None = None) -> None:
        self.matrix = matrix
        self.budget = budget
        self._last: tuple[tuple[str, tuple[str, ...]], SolutionLike] | None = None

    def _solve(self, target: str, running: Sequence[str]) -> SolutionLike:
        key = (target, tuple(running))
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        keep = self.budget.keep_for(target) if self.budget is not None else None
        solution = self.matrix.solve(target, list(running), keep)
        self._last = (key, solution)
        return solution

    def eviction_for(
        self, target: str, running: Sequence[str], usage: Usage = NO_USAGE
    ) -> Eviction:
        if self.budget is not None:
            refused = self.budget.refusal(target)
            if refused:
                return Eviction(refuse=refused)
        s = self._solve(target, running)
        return Eviction(evict=tuple(s.evict), set=s.set or None, cost=s.cost)

    def on_swap_start(self, target: str, running: Sequence[str], usage: Usage = NO_USAGE) -> None:
        s = self._solve(target, running)
        if not s.exhaustive:
            log.warning(
                "matrix: model=%s: choosing among %d running models went over the solver's "
                "budget; it starts alone (every running model is stopped)",
                target,
                len(running),
            )
        dsl = self._dsl(s.set)
        if s.evict:
            log.info(
                'matrix: model=%s set=%s dsl="%s" evict=%s target=%s cost=%d',
                target,
                s.set or "",
                dsl,
                list(s.evict),
                list(s.combination),
                s.cost,
            )
        elif not running:
            log.info("matrix: model=%s starting (no models running)", target)
        else:
            log.debug(
                'matrix: model=%s fits beside running models in set=%s dsl="%s"',
                target,
                s.set or "",
                dsl,
            )

    def _dsl(self, set_name: str | None) -> str:
        if not set_name:
            return ""
        try:
            return self.matrix.dsl(set_name)
        except (KeyError, AttributeError):
            return ""
