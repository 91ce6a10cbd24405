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
from collections.abc import Sequence
from pathlib import Path

from swapd.config import ConfigError, LoadedConfig, load_config
from swapd.history.database import HistoryUnavailable
from swapd.history.paths import database_path, resolve_state_dir
from swapd.router.budget_books import Books
from swapd.simulate.compare import (
    UsageError,
    compare,
    history_inputs,
    resolve_load_times,
    resolve_wake_times,
)
from swapd.simulate.report import render, to_json
from swapd.simulate.trace import TraceError, TraceRequest, read_trace

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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


def _load(path: str) -> LoadedConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _history(
    args: argparse.Namespace, models: Sequence[str]
) -> tuple[list[TraceRequest] | None, dict[str, float], Books | None]:
    """The trace (with `--history`), the measured load times and the books, from the
    history file. Without `--history`, a missing history file only means nothing measured."""
    path = database_path(resolve_state_dir(args.state_dir))
    since = None if args.since is None else time.time() - args.since
    try:
        return history_inputs(path, models, trace=args.history, since=since)
    except HistoryUnavailable as exc:
        if args.history:
            raise UsageError(f"--history: {exc}") from None
        return None, {}, None


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
        wake_times = resolve_wake_times(configs, args.wake_time, books)
    except (UsageError, TraceError) as exc:
        print(f"swapd simulate: {exc}", file=sys.stderr)
        return 2
    named = list(zip([args.config, args.against], configs, strict=False))
    report = compare(named, trace, load_times, wake_times, books)
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
