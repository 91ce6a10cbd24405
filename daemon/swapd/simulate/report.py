"""What a simulation says: per config and per model figures, their difference, a table.

The `--json` shape is a promise (docs/trace.md): `configs` (NEW first, then
OLD), each with `config`, `totals` and `models` (every one a `Summary`), and
`load_times` with each model's seconds and where they came from. Keys may be
added, never removed or renamed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import msgspec

from swapctl import protocol as p
from swapctl.render import simulation as render_simulation
from swapd.history.stats import percentile
from swapd.simulate.engine import SimResult

LoadTimeSource = Literal["flag", "history", "default"]


class LoadTime(msgspec.Struct, frozen=True):
    seconds: float
    source: LoadTimeSource


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """One model's (or all models') figures; times in seconds."""

    requests: int
    loads: int
    load_seconds: float
    wait_p50: float
    """Wait is queue plus load: from arrival to the grant, for the requests granted."""
    wait_p95: float
    wait_max: float
    over_max_wait: int
    """Requests granted after waiting longer than the config's `maxWait` (0: none counted)."""
    failures: int
    """Requests refused or failed: unknown model, too many requests, cannot load."""
    peak_queue: int
    """The most requests admitted and not yet granted at once."""
    failure_kinds: dict[str, int] = {}
    wakes: int = 0
    """Wakes from sleep (`sleepAfter`): swaps to a sleeping model, not counted in `loads`."""
    wake_seconds: float = 0.0


class ConfigReport(msgspec.Struct, frozen=True, kw_only=True):
    config: str
    router: str
    max_wait: float
    totals: Summary
    models: dict[str, Summary]


class Report(msgspec.Struct, frozen=True, kw_only=True):
    configs: list[ConfigReport]
    load_times: dict[str, LoadTime]
    requests: int
    """Requests in the trace."""
    diff: dict[str, dict[str, float]] | None = None
    wake_times: dict[str, LoadTime] = {}
    """Per model that can sleep: how long a wake takes, and where that came from."""
    """With two configs: NEW minus OLD, per model and under "total", for each figure."""


def summarize(result: SimResult) -> tuple[Summary, dict[str, Summary]]:
    """Totals and per model figures of one run; a model appears once it had a request
    or a load, in config order, then names that are no model of the config."""
    waits: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    failed: dict[str, dict[str, int]] = {}
    for r in result.requests:
        counts[r.model] = counts.get(r.model, 0) + 1
        if r.granted is not None:
            waits.setdefault(r.model, []).append(r.granted - r.arrival)
        elif r.failure is not None:
            kinds = failed.setdefault(r.model, {})
            kinds[r.failure] = kinds.get(r.failure, 0) + 1
    loads: dict[str, int] = {}
    load_seconds: dict[str, float] = {}
    wakes: dict[str, int] = {}
    wake_seconds: dict[str, float] = {}
    for load in result.loads:
        count, seconds = (wakes, wake_seconds) if load.wake else (loads, load_seconds)
        count[load.model] = count.get(load.model, 0) + 1
        seconds[load.model] = seconds.get(load.model, 0.0) + load.seconds
    names = [m for m in result.models if m in counts or m in loads or m in wakes]
    names += sorted(m for m in counts if m not in result.models)
    per_model = {
        m: _summary(
            requests=counts.get(m, 0),
            loads=loads.get(m, 0),
            load_seconds=load_seconds.get(m, 0.0),
            waits=waits.get(m, []),
            max_wait=result.max_wait,
            failures=failed.get(m, {}),
            peak=result.peak_queue.get(m, 0),
            wakes=wakes.get(m, 0),
            wake_seconds=wake_seconds.get(m, 0.0),
        )
        for m in names
    }
    every_failure: dict[str, int] = {}
    for kinds in failed.values():
        for kind, n in kinds.items():
            every_failure[kind] = every_failure.get(kind, 0) + n
    totals = _summary(
        requests=len(result.requests),
        loads=sum(loads.values()),
        load_seconds=sum(load_seconds.values(), 0.0),
        waits=[w for ws in waits.values() for w in ws],
        max_wait=result.max_wait,
        failures=every_failure,
        peak=result.peak_queue_total,
        wakes=sum(wakes.values()),
        wake_seconds=sum(wake_seconds.values(), 0.0),
    )
    return totals, per_model


def _summary(
    *,
    requests: int,
    loads: int,
    load_seconds: float,
    waits: list[float],
    max_wait: float,
    failures: Mapping[str, int],
    peak: int,
    wakes: int = 0,
    wake_seconds: float = 0.0,
) -> Summary:
    return Summary(
        requests=requests,
        loads=loads,
        load_seconds=load_seconds,
        wait_p50=percentile(waits, 0.5) or 0.0,
        wait_p95=percentile(waits, 0.95) or 0.0,
        wait_max=max(waits, default=0.0),
        over_max_wait=sum(1 for w in waits if w > max_wait) if max_wait > 0 else 0,
        failures=sum(failures.values()),
        peak_queue=peak,
        failure_kinds=dict(sorted(failures.items())),
        wakes=wakes,
        wake_seconds=wake_seconds,
    )


def config_report(name: str, router: str, result: SimResult) -> ConfigReport:
    totals, models = summarize(result)
    return ConfigReport(
        config=name, router=router, max_wait=result.max_wait, totals=totals, models=models
    )


FIGURES: tuple[str, ...] = (
    "requests",
    "loads",
    "load_seconds",
    "wait_p50",
    "wait_p95",
    "wait_max",
    "over_max_wait",
    "failures",
    "peak_queue",
    "wakes",
)


def _figures(s: Summary) -> dict[str, float]:
    return {
        "requests": s.requests,
        "loads": s.loads,
        "load_seconds": s.load_seconds,
        "wait_p50": s.wait_p50,
        "wait_p95": s.wait_p95,
        "wait_max": s.wait_max,
        "over_max_wait": s.over_max_wait,
        "failures": s.failures,
        "peak_queue": s.peak_queue,
        "wakes": s.wakes,
    }


_NOTHING = Summary(
    requests=0,
    loads=0,
    load_seconds=0.0,
    wait_p50=0.0,
    wait_p95=0.0,
    wait_max=0.0,
    over_max_wait=0,
    failures=0,
    peak_queue=0,
)


def difference(new: ConfigReport, old: ConfigReport) -> dict[str, dict[str, float]]:
    """NEW minus OLD for every figure, per model (either side's) and under "total"."""
    names = list(new.models) + [m for m in old.models if m not in new.models]
    out: dict[str, dict[str, float]] = {}
    for name in names:
        a = _figures(new.models.get(name, _NOTHING))
        b = _figures(old.models.get(name, _NOTHING))
        out[name] = {k: a[k] - b[k] for k in FIGURES}
    a, b = _figures(new.totals), _figures(old.totals)
    out["total"] = {k: a[k] - b[k] for k in FIGURES}
    return out


def build_report(
    configs: Sequence[ConfigReport],
    load_times: Mapping[str, LoadTime],
    requests: int,
    wake_times: Mapping[str, LoadTime] | None = None,
) -> Report:
    diff = difference(configs[0], configs[1]) if len(configs) > 1 else None
    return Report(
        configs=list(configs),
        load_times=dict(load_times),
        requests=requests,
        diff=diff,
        wake_times=dict(wake_times or {}),
    )


def to_json(report: Report) -> bytes:
    return msgspec.json.encode(report)


# ------------------------------------------------------------------ the table


def as_payload(report: Report) -> p.Simulation:
    """The report in the control protocol's shape (the very keys `--json` prints)."""
    return msgspec.convert(msgspec.to_builtins(report), p.Simulation)


def render(report: Report) -> str:
    """The table `swapd simulate` prints: swapctl's, so both print the same."""
    return render_simulation(as_payload(report))
