"""Per-model figures over a window of history, and the percentile they use.

A request counts as an error when it failed, was cut short by swapd, or got
an HTTP status of 400 or more; a client that left is not the model's error.
Percentiles interpolate linearly between the two nearest ranks (as numpy's
default and llama-swap's activity statistics do), so p50 of [1, 2] is 1.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec


class ModelStats(msgspec.Struct, frozen=True, kw_only=True):
    """One model over the window; a figure with no data is None."""

    model: str
    requests: int = 0
    errors: int = 0
    ttfb_p50_s: float | None = None
    ttfb_p95_s: float | None = None
    duration_p50_s: float | None = None
    duration_p95_s: float | None = None
    tokens_per_s_p50: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    loads: int = 0
    """Swaps that started this model (whatever their result); wakes are counted apart."""
    load_p50_s: float | None = None
    """Median load time of its successful starts."""
    load_failures: int = 0
    crashes: int = 0
    """Its processes that ended on their own (`ExitRecord.failed`)."""
    sleeps: int = 0
    """Swaps that put this model to sleep to make room."""
    wakes: int = 0
    """Swaps that woke this model (whatever their result)."""
    wake_p50_s: float | None = None
    """Median time of its successful wakes."""
    wake_failures: int = 0


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    """Every model with activity in [since, until), sorted by model."""

    since: float
    until: float
    models: list[ModelStats]


#: The SQL that marks a request row as an error (see the module docstring).
ERROR_SQL = "(outcome IN ('failed', 'aborted') OR status >= 400)"


def rank(count: int, p: float) -> tuple[int, float]:
    """For the p-th percentile (0..1) of `count` sorted values: (index of the lower
    neighbour, weight of the upper one)."""
    if count <= 0:
        raise ValueError("no values")
    position = p * (count - 1)
    lower = math.floor(position)
    return lower, position - lower


def between(lower: float, upper: float | None, weight: float) -> float:
    """The value `weight` of the way from `lower` to `upper` (None: no upper neighbour)."""
    if upper is None or weight == 0:
        return lower
    return lower + (upper - lower) * weight


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0..1) of `values` (any order); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    index, weight = rank(len(ordered), p)
    upper = ordered[index + 1] if index + 1 < len(ordered) else None
    return between(ordered[index], upper, weight)
