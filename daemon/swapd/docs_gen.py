"""`swapd docs`: documents generated from the code, so they cannot drift from it.

`docs/lifecycle.md` is rendered from the process lifecycle table that the
supervisor itself consults; a test keeps the committed file equal to it.
"""

from __future__ import annotations

import argparse

from swapd.process.states import render_legend, render_table

LIFECYCLE_INTRO = """\
# Model process lifecycle

Each model's server is owned by one supervisor task. Its state changes only
through the transitions below; anything else is a bug and raises. This page
is generated from `swapd/process/states.py` by `swapd docs lifecycle`.
"""


def lifecycle_markdown() -> str:
    legend = "\n".join(
        f"- `{line.split()[0]}`: {line.split(maxsplit=1)[1]}"
        for line in render_legend().splitlines()
    )
    return f"{LIFECYCLE_INTRO}\n## States\n\n{legend}\n\n## Transitions\n\n{render_table()}\n"


def _run(args: argparse.Namespace) -> int:
    print(lifecycle_markdown(), end="")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("docs", help="print a document generated from the code")
    parser.add_argument("name", choices=["lifecycle"])
    parser.set_defaults(func=_run)
