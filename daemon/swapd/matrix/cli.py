"""`swapd matrix expand|solve`: look at a config's swap matrix from the shell.

    swapd matrix expand [FILE] [--json] [--limit N]
    swapd matrix solve  [FILE] --want MODEL --running A,B,... [--json]

FILE is loaded with `swapd.config.load_config` (default: `$SWAPD_CONFIG`,
else `/etc/swapd/config.yaml`) and must use the matrix router. `--want` and
`--running` take model IDs or aliases; aliases are resolved to model IDs
first, as the router does for requests. Exit codes: 0 ok, 2 invalid config,
group-mode config or unknown model (message on stderr).

The rendering functions are pure and take a `Matrix`, so they are tested
without files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

from swapd.matrix.compiler import Matrix
from swapd.matrix.expand import DEFAULT_LIMIT, Expansion
from swapd.matrix.solver import Solution

_FILE_HELP = "config file (default: $SWAPD_CONFIG or /etc/swapd/config.yaml)"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("matrix", help="expand or query a config's swap matrix")
    sub = parser.add_subparsers(dest="matrix_command", metavar="ACTION", required=True)

    expand = sub.add_parser("expand", help="list each set's combinations (bounded)")
    expand.add_argument("file", nargs="?", help=_FILE_HELP)
    expand.add_argument("--json", action="store_true", help="print JSON")
    expand.add_argument(
        "--limit",
        type=_limit,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"at most N combinations per set (default {DEFAULT_LIMIT})",
    )
    expand.set_defaults(func=cmd_expand)

    solve = sub.add_parser("solve", help="what would be evicted to start a model")
    solve.add_argument("file", nargs="?", help=_FILE_HELP)
    solve.add_argument("--want", required=True, metavar="MODEL", help="the model to start")
    solve.add_argument(
        "--running",
        default="",
        metavar="A,B,...",
        help="comma-separated models already running (default: none)",
    )
    solve.add_argument("--json", action="store_true", help="print JSON")
    solve.set_defaults(func=cmd_solve)


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def cmd_expand(args: argparse.Namespace) -> int:
    loaded = _load(args.file)
    if loaded is None:
        return 2
    _, matrix = loaded
    expansion = matrix.expand(args.limit)
    print(
        expansion_json(expansion) if args.json else render_expansion(matrix, expansion, args.limit)
    )
    return 0


def cmd_solve(args: argparse.Namespace) -> int:
    loaded = _load(args.file)
    if loaded is None:
        return 2
    resolve, matrix = loaded
    try:
        target = resolve_model(resolve, args.want)
        running = [resolve_model(resolve, name) for name in split_running(args.running)]
    except ValueError as exc:
        print(f"swapd matrix solve: {exc}", file=sys.stderr)
        return 2
    solution = matrix.solve(target, running)
    print(solution_json(solution) if args.json else render_solution(solution))
    return 0


def _load(file: str | None) -> tuple[Callable[[str], str | None], Matrix] | None:
    """The config's name resolver and matrix, or None after explaining why not."""
    from swapd.config import ConfigError, default_config_path, load_config

    path = file or default_config_path()
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None
    if loaded.matrix is None:
        print(
            f"{path}: this config uses the group router, not a swap matrix "
            "(set routing.router.use: matrix and routing.router.settings.matrix)",
            file=sys.stderr,
        )
        return None
    return loaded.resolve, loaded.matrix


def split_running(text: str) -> list[str]:
    """`"a, b,,c"` -> `["a", "b", "c"]`."""
    return [name.strip() for name in text.split(",") if name.strip()]


def resolve_model(resolve: Callable[[str], str | None], name: str) -> str:
    """A model ID or alias -> model ID; ValueError for an unknown name."""
    model = resolve(name)
    if model is None:
        raise ValueError(f"unknown model {json.dumps(name)}")
    return model


def expansion_json(expansion: Expansion) -> str:
    return json.dumps(expansion.as_dict(), ensure_ascii=False)


def solution_json(solution: Solution) -> str:
    return json.dumps(solution.as_dict(), ensure_ascii=False)


def render_expansion(matrix: Matrix, expansion: Expansion, limit: int | None) -> str:
    """One block per set: its name and expression, then one combination a line."""
    lines: list[str] = []
    for name, combinations in expansion.sets.items():
        lines.append(f"{name}: {matrix.dsl(name).strip()}")
        lines.extend(f"  {_join(combo)}" for combo in combinations)
    if expansion.truncated:
        lines.append(f"(some sets have more than {limit} combinations; raise --limit to see them)")
    return "\n".join(lines)


def render_solution(solution: Solution) -> str:
    rows = [
        ("target", solution.target),
        ("set", "(none)" if solution.set is None else solution.set),
        ("combination", _join(solution.combination)),
        ("evict", _join(solution.evict) or "nothing"),
        ("cost", str(solution.cost)),
    ]
    if not solution.exhaustive:
        rows.append(("note", "over the solver's budget: the target runs alone"))
    return "\n".join(f"{key + ':':<13}{value}" for key, value in rows)


def _join(models: Iterable[str]) -> str:
    return ", ".join(models)
