"""`swapd simulate`: replay a trace through a config (and another one) and compare.

    swapd simulate --config NEW.yaml [--against OLD.yaml]
                   (--trace FILE | --history [--since 24h] [--state-dir D])
                   [--load-time MODEL=SECONDS ...] [--wake-time MODEL=SECONDS ...] [--json]

Exit codes: 0 ok, 2 a config, trace, history or flag that cannot be used.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from swapd.config import ConfigError, LoadedConfig, load_config
from swapd.config.history_check import read_books
from swapd.history.database import HistoryUnavailable
from swapd.history.paths import database_path, resolve_state_dir
from swapd.router.budget_books import Books
from swapd.router.footprints import Learned
from swapd.simulate.engine import DEFAULT_LOAD_TIME, simulate
from swapd.simulate.history_source import (
    measured_load_time,
    open_history_file,
    request_records,
    trace_from_records,
)
from swapd.simulate.report import LoadTime, build_report, config_report, render, to_json
from swapd.simulate.trace import TraceError, TraceRequest, read_trace

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class UsageError(Exception):
    """A flag or input that cannot be used; the message says why."""


def parse_since(text: str) -> float:
    """`90s`, `15m`, `24h`, `7d` (or plain seconds) -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if m is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 15m, 24h, 7d)")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def parse_load_time(text: str) -> tuple[str, float]:
    """`MODEL=SECONDS` -> (MODEL, SECONDS)."""
    name, sep, value = text.rpartition("=")
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not sep or not name or not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"expected MODEL=SECONDS with SECONDS >= 0, got {text!r}")
    return name, seconds


def resolve_load_times(
    configs: Sequence[LoadedConfig],
    flags: Sequence[tuple[str, float]],
    measured: Mapping[str, float],
) -> dict[str, LoadTime]:
    """Every model ID of the configs: its `--load-time` (by ID or alias of any
    config), else its measured load time, else the default."""
    flagged: dict[str, float] = {}
    for name, seconds in flags:
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
    configs: Sequence[LoadedConfig], flags: Sequence[tuple[str, float]]
) -> dict[str, LoadTime]:
    """Every model that can sleep (`sleep` set in a config): its `--wake-time`, else 1 s."""
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
            out[model] = (
                LoadTime(DEFAULT_LOAD_TIME, "default") if given is None else LoadTime(given, "flag")
            )
    return out


def _load(path: str) -> LoadedConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _history(
    args: argparse.Namespace, models: Sequence[str]
) -> tuple[list[TraceRequest] | None, dict[str, float], Books | None]:
    """The trace (with `--history`), the measured load times and the books (the
    footprints and load times of the model runs budgets plan with), from the history
    file. Without `--history`, a missing history file only means nothing measured."""
    path = database_path(resolve_state_dir(args.state_dir))
    try:
        db = open_history_file(path)
    except HistoryUnavailable as exc:
        if args.history:
            raise UsageError(f"--history: {exc}") from None
        return None, {}, None
    try:
        measured = {m: t for m in models if (t := measured_load_time(db, m)) is not None}
        trace = None
        if args.history:
            since = None if args.since is None else time.time() - args.since
            trace = trace_from_records(request_records(db, since))
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
    return trace, measured, books


def run(args: argparse.Namespace) -> int:
    try:
        if args.since is not None and not args.history:
            raise UsageError("--since reads the history: give it with --history")
        configs = [_load(args.config)]
        if args.against:
            configs.append(_load(args.against))
        models = list(dict.fromkeys(m for cfg in configs for m in cfg.models))
        trace, measured, books = _history(args, models)
        if args.trace is not None:
            trace = read_trace(args.trace)
        assert trace is not None
        load_times = resolve_load_times(configs, args.load_time, measured)
        wake_times = resolve_wake_times(configs, args.wake_time)
    except (UsageError, TraceError) as exc:
        print(f"swapd simulate: {exc}", file=sys.stderr)
        return 2
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
        for name, cfg in zip([args.config, args.against], configs, strict=False)
    ]
    report = build_report(reports, load_times, len(trace), wake_times)
    if args.json:
        sys.stdout.buffer.write(to_json(report) + b"\n")
    else:
        sys.stdout.write(render(report))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="NEW.yaml", help="the config to try")
    parser.add_argument(
        "--against", metavar="OLD.yaml", help="a config to compare it with (e.g. the one in use)"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--trace", type=Path, metavar="FILE", help="a trace (JSON Lines)")
    source.add_argument("--history", action="store_true", help="the requests in swapd's history")
    parser.add_argument(
        "--since",
        type=parse_since,
        metavar="DURATION",
        help="with --history: only this recent a window (90s, 15m, 24h, 7d)",
    )
    parser.add_argument(
        "--state-dir", metavar="D", help="where swapd keeps its history (default: as swapd)"
    )
    parser.add_argument(
        "--load-time",
        type=parse_load_time,
        action="append",
        default=[],
        metavar="MODEL=SECONDS",
        help="a model's load time (else measured in the history, else 1 s); repeatable",
    )
    parser.add_argument(
        "--wake-time",
        type=parse_load_time,
        action="append",
        default=[],
        metavar="MODEL=SECONDS",
        help="how long a sleeping model (sleepAfter) takes to wake (else 1 s); repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "simulate",
        help="replay recorded traffic through a config and compare it with another",
        description=__doc__.splitlines()[0],
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
