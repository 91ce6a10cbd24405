"""Configs against a trace: the inputs from the history and the report of the runs.

Shared by `swapd simulate` and the daemon's `simulate` control request, so
both compute the same thing: load times from the flags, else the history,
else the default; the books (footprints and load times of model runs) the
budgets plan with; each config run through `simulate`, NEW first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from swapd.config import LoadedConfig
from swapd.config.history_check import read_books
from swapd.history.database import HistoryUnavailable
from swapd.router.budget_books import Books
from swapd.router.footprints import Learned
from swapd.simulate.engine import DEFAULT_LOAD_TIME, simulate
from swapd.simulate.history_source import (
    measured_load_time,
    open_history_file,
    request_records,
    trace_from_records,
)
from swapd.simulate.report import LoadTime, Report, build_report, config_report
from swapd.simulate.trace import TraceRequest


class UsageError(Exception):
    """A flag or input that cannot be used; the message says why."""


def resolve_load_times(
    configs: Sequence[LoadedConfig],
    flags: Sequence[tuple[str, float]],
    measured: Mapping[str, float],
) -> dict[str, LoadTime]:
    """Every model ID of the configs: its `--load-time` (by ID or alias of any
    config), else its measured load time, else the default."""
    flagged: dict[str, float] = {}
    for name, seconds in flags:
        if not math.isfinite(seconds) or seconds < 0:
            raise UsageError(f"--load-time {name}={seconds}: SECONDS must be >= 0")
        ids = {cfg.resolve(name) for cfg in configs} - {None}
        if not ids:
            raise UsageError(f"--load-time {name}={seconds:g}: no model of the config is {name!r}")
        for model in ids:
            assert model is not None
            flagged[model] = seconds
    out: dict[str, LoadTime] = {}
    for cfg in configs:
        for model in cfg.models:
            if model in out:
                continue
            if model in flagged:
                out[model] = LoadTime(flagged[model], "flag")
            elif model in measured:
                out[model] = LoadTime(measured[model], "history")
            else:
                out[model] = LoadTime(DEFAULT_LOAD_TIME, "default")
    return out


def resolve_wake_times(
    configs: Sequence[LoadedConfig],
    flags: Sequence[tuple[str, float]],
    books: Books | None = None,
) -> dict[str, LoadTime]:
    """Every model that can sleep (`sleep` set in a config): its `--wake-time`, else the
    median of its measured wakes (the history's model runs, `books`), else 1 s."""
    flagged: dict[str, float] = {}
    for name, seconds in flags:
        ids = {cfg.resolve(name) for cfg in configs} - {None}
        if not ids:
            raise UsageError(f"--wake-time {name}={seconds:g}: no model of the config is {name!r}")
        flagged.update(dict.fromkeys((m for m in ids if m is not None), seconds))
    out: dict[str, LoadTime] = {}
    for cfg in configs:
        for model, m in cfg.models.items():
            if m.sleep is None or model in out:
                continue
            given = flagged.get(model)
            woke = books.costs.median_wake(model) if books is not None else None
            if given is not None:
                out[model] = LoadTime(given, "flag")
            elif woke is not None:
                out[model] = LoadTime(woke, "history")
            else:
                out[model] = LoadTime(DEFAULT_LOAD_TIME, "default")
    return out


def history_inputs(
    path: Path,
    models: Sequence[str],
    *,
    trace: bool,
    since: float | None = None,
    limit: int | None = None,
) -> tuple[list[TraceRequest] | None, dict[str, float], Books | None]:
    """From the history file at `path`: the trace of the requests since `since`
    (Unix seconds; with `trace`; with `limit`, only the latest that many), the
    measured load times of `models`, and the books. Raises HistoryUnavailable
    when there is no history file."""
    db = open_history_file(path)
    try:
        measured = {m: t for m in models if (t := measured_load_time(db, m)) is not None}
        requests = None
        if trace:
            requests = trace_from_records(request_records(db, since, limit))
    finally:
        db.close()
    try:
        books: Books | None = read_books(path)
    except HistoryUnavailable:
        books = None
    if books is not None:
        for m in models:
            ran = books.costs.median_load(m)
            if m not in measured and ran is not None:
                measured[m] = ran
    return requests, measured, books


def compare(
    configs: Sequence[tuple[str, LoadedConfig]],
    trace: Sequence[TraceRequest],
    load_times: Mapping[str, LoadTime],
    wake_times: Mapping[str, LoadTime],
    books: Books | None,
) -> Report:
    """Each named config run on `trace`, in order (NEW, then OLD), and their difference."""
    seconds = {m: lt.seconds for m, lt in load_times.items()}
    wakes = {m: lt.seconds for m, lt in wake_times.items()}
    reports = [
        config_report(
            name,
            cfg.router_use,
            simulate(
                cfg,
                trace,
                seconds,
                wake_times=wakes,
                learned=None if books is None else Learned(books),
            ),
        )
        for name, cfg in configs
    ]
    return build_report(reports, load_times, len(trace), wake_times)
