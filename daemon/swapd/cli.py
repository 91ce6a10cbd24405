"""The `swapd` command line: each subsystem registers its own subcommands.

A module listed in `COMMAND_MODULES` exposes `register(subparsers)`, which adds
its subcommands and sets `func` on each parser; `func(args) -> int` is the exit
code. Exit codes: 0 ok, 1 runtime failure, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from swapd import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "swapd.config.cli",
    "swapd.matrix.cli",
    "swapd_demo.env",
    "swapd.docs_gen",
    "swapd.serve_cli",
    "swapd.simulate.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swapd", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"swapd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    return int(func(args))
