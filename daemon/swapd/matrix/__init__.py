"""The swap-matrix DSL: which models may run together, and what to evict.

`compile_matrix(sets, vars, evict_costs, models)` validates a matrix block
(docs/compat.md, Swap matrix) and returns a `Matrix`; `Matrix.solve(target, running)`
picks the cheapest eviction symbolically (`swapd.matrix.solver` documents the
contract and the tie rule); `Matrix.expand(limit)` lists combinations for
display. Everything here is pure: no I/O, no clocks, no globals.
"""

from swapd.matrix.compiler import Matrix, compile_matrix
from swapd.matrix.errors import MatrixError, MatrixProblem
from swapd.matrix.expand import Expansion
from swapd.matrix.solver import Solution

__all__ = [
    "Expansion",
    "Matrix",
    "MatrixError",
    "MatrixProblem",
    "Solution",
    "compile_matrix",
]
