"""`swapd config check|show|schema`: validate, display and describe config files.

Exit codes: 0 ok, 2 invalid config (every problem on stderr, one per line).
Warnings (a config that loads but probably does not do what was meant) go to
stderr as `warning: file:line:col: ...` lines and leave the exit code at 0.
FILE defaults to `$SWAPD_CONFIG`, else `/etc/swapd/config.yaml`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any, TextIO

import msgspec

from swapd.config import (
    Config,
    ConfigError,
    ConfigProblem,
    LoadedConfig,
    default_config_path,
    load_config,
)
from swapd.config.schema import json_schema
from swapd.config.sizes import format_size


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("config", help="check, show or describe a config file")
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    check = sub.add_parser("check", help="validate a config file and summarise it")
    check.add_argument(
        "file", nargs="?", help="config file (default: $SWAPD_CONFIG or /etc/swapd/config.yaml)"
    )
    check.add_argument(
        "--with-history",
        action="store_true",
        help="also warn where a declared footprint is below what swapd measured",
    )
    check.add_argument(
        "--state-dir",
        help="where the history is (default: as swapd finds it: $STATE_DIRECTORY, "
        "$XDG_STATE_HOME/swapd, ~/.local/state/swapd)",
    )
    check.set_defaults(func=cmd_check)

    show = sub.add_parser("show", help="print the effective config (macros expanded, argv)")
    show.add_argument(
        "file", nargs="?", help="config file (default: $SWAPD_CONFIG or /etc/swapd/config.yaml)"
    )
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=cmd_show)

    schema = sub.add_parser("schema", help="print the JSON Schema of the config file")
    schema.set_defaults(func=cmd_schema)


def _load(file: str | None) -> LoadedConfig | None:
    try:
        loaded = load_config(file or default_config_path())
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None
    for warning in loaded.warnings:
        print(warning_text(warning), file=sys.stderr)
    return loaded


def warning_text(problem: ConfigProblem) -> str:
    """A warning as printed: `warning: file:line:col: key.path: message`."""
    return f"warning: {problem}"


def cmd_check(args: argparse.Namespace) -> int:
    loaded = _load(args.file)
    if loaded is None:
        return 2
    print(summary(loaded))
    if args.with_history:
        _check_history(loaded, args.state_dir)
    return 0


def _check_history(loaded: LoadedConfig, state_dir: str | None) -> None:
    """Warnings (stderr) where a declaration is below what the history says was measured."""
    from swapd.config.history_check import below_measured, located, read_books
    from swapd.history.database import HistoryUnavailable
    from swapd.history.paths import database_path, resolve_state_dir

    path = database_path(resolve_state_dir(state_dir))
    try:
        books = read_books(path)
    except HistoryUnavailable as exc:
        print(f"warning: --with-history: {exc}", file=sys.stderr)
        return
    for problem in located(loaded, below_measured(loaded, books)):
        print(warning_text(problem), file=sys.stderr)


def cmd_show(args: argparse.Namespace) -> int:
    loaded = _load(args.file)
    if loaded is None:
        return 2
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(loaded.config)).decode() + "\n")
    else:
        write_text(loaded, sys.stdout)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return 0


def schema_text() -> str:
    """What `swapd config schema` prints, and what `config/schema.json` holds."""
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


def summary(loaded: LoadedConfig) -> str:
    """A one-screen overview: models with their ports, the routing mode, groups or sets."""
    config = loaded.config
    lines = [f"{loaded.path}: ok", f"models: {len(config.models)}"]
    width = max((len(m) for m in config.models), default=0)
    for model_id, model in config.models.items():
        port = f"port {model.port}" if model.port is not None else model.proxy
        extra = f"  aliases: {', '.join(model.aliases)}" if model.aliases else ""
        lines.append(f"  {model_id:<{width}}  {port}{extra}")
    lines.append(f"routing: {loaded.router_use}")
    if loaded.router_use == "group":
        for name, group in loaded.groups.items():
            flags = " ".join(
                f"{k}={'true' if v else 'false'}"
                for k, v in (
                    ("swap", group.swap),
                    ("exclusive", group.exclusive),
                    ("persistent", group.persistent),
                )
            )
            lines.append(f"  {name} ({flags}): {', '.join(group.members) or '-'}")
    elif config.routing.matrix is not None:
        for name, dsl in config.routing.matrix.sets.items():
            lines.append(f"  {name}: {dsl}")
    elif loaded.router_use == "budget":
        costs = config.routing.budget.costs
        shown = (
            costs if isinstance(costs, str) else ", ".join(f"{m}={c:g}" for m, c in costs.items())
        )
        lines.append(f"  costs: {shown or 'uniform'}")
    lines.extend(_resources_summary(config))
    if config.peers:
        lines.append(f"peers: {', '.join(config.peers)}")
    return "\n".join(lines)


def _resources_summary(config: Config) -> list[str]:
    """The capacity, then each model's declared footprint (and its devices)."""
    res = config.resources
    if res is None:
        return []

    def size(resource: str, amount: int) -> str:
        return format_size(amount, unit=resource in res.sized)

    capacity = ", ".join(f"{k} {size(k, v)}" for k, v in res.capacity.items())
    lines = [f"resources: {capacity}" + (" (learn from measurements)" if res.learn else "")]
    width = max((len(m) for m in config.models), default=0)
    for model_id, m in config.models.items():
        unit_of = {
            k: (m.devices[0] if k not in res.capacity and m.devices else k) for k in m.resources
        }
        parts = [f"{k} {size(unit_of[k], v)}" for k, v in m.resources.items()]
        if m.resources_asleep:
            asleep = [f"{k} {size(unit_of.get(k, k), v)}" for k, v in m.resources_asleep.items()]
            parts.append("asleep " + ", ".join(asleep))
        if m.devices:
            parts.append(f"on {' | '.join(m.devices)}")
        lines.append(f"  {model_id:<{width}}  {', '.join(parts) or 'nothing declared'}")
    return lines


def write_text(loaded: LoadedConfig, out: TextIO) -> None:
    """Human-readable effective config: per model its argv, proxy and resolved settings."""
    config = loaded.config
    for model_id, m in config.models.items():
        out.write(f"{model_id}:\n")
        out.write(f"  argv: {shlex.join(m.argv)}\n")
        if m.stop_argv is not None:
            out.write(f"  stop: {shlex.join(m.stop_argv)}\n")
        out.write(f"  proxy: {m.proxy}\n")
        out.write(f"  checkEndpoint: {m.check_endpoint}\n")
        out.write(
            f"  ttl: {m.ttl}  unloadTimeout: {m.unload_timeout}"
            f"  concurrencyLimit: {m.concurrency_limit}\n"
        )
        if m.aliases:
            out.write(f"  aliases: {', '.join(m.aliases)}\n")
        if m.env:
            out.write(f"  env: {' '.join(f'{k}={v}' for k, v in m.env.items())}\n")
        if m.metadata:
            out.write(f"  metadata: {json.dumps(m.metadata)}\n")
    out.write(summary(loaded).split("\n", 1)[1] + "\n")
