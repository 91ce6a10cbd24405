"""Run the benchmarks: `python -m bench [NAME ...] [--json FILE]`.

Every `bench/bench_*.py` module is found by name, so a new benchmark only has
to exist and expose `main(argv) -> dict` (printing its own table). NAME picks
modules (`solver` or `bench_solver`); the default is all of them, in name
order. A benchmark that raises is reported and the others still run; the exit
status is then 1. `--json FILE` writes `{module: figures}` for collection.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PREFIX = "bench_"


def discover() -> list[str]:
    """The benchmark module names, sorted."""
    here = [str(Path(__file__).parent)]
    return sorted(m.name for m in pkgutil.iter_modules(here) if m.name.startswith(PREFIX))


def select(available: Sequence[str], names: Sequence[str]) -> list[str]:
    if not names:
        return list(available)
    chosen = []
    for name in names:
        module = name if name.startswith(PREFIX) else PREFIX + name
        if module not in available:
            raise ValueError(f"unknown benchmark {name!r} (have: {', '.join(available)})")
        chosen.append(module)
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    args = parser.parse_args(argv)

    figures: dict[str, Any] = {}
    failed = False
    try:
        chosen = select(discover(), args.names)
    except ValueError as exc:
        parser.error(str(exc))
    for name in chosen:
        print(f"== {name}", flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            figures[name] = module.main([])
        except Exception:
            failed = True
            traceback.print_exc()
            print(f"{name}: FAILED", file=sys.stderr)
        print(flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
