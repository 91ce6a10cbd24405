"""`swapd config check --with-history`: declarations below what swapd measured.

A model's declared footprint is what the budget plans with when nothing is
measured, and a floor when something is. A declaration below the highest
peak of its recent runs (read from the history file) means the config
under-states it: with `learn: false` the budget would over-commit the
machine. Each such resource is a warning at the key that declares it.
"""

from __future__ import annotations

from pathlib import Path

from swapd.config import LoadedConfig
from swapd.config.errors import ConfigProblem, Issue, format_path
from swapd.config.loader import parse_text
from swapd.config.sizes import format_size
from swapd.history.database import Database, HistoryUnavailable
from swapd.history.runs import books_data, read_rows
from swapd.router.budget_books import RUNS_KEPT, Books
from swapd.router.build import footprint_table
from swapd.router.footprints import Learned


def read_books(path: Path) -> Books:
    """The books the history file at `path` holds; HistoryUnavailable when it cannot
    be read (or holds no model runs yet)."""
    db = Database.open_reader(path)
    try:
        rows = read_rows(db.conn)
    except Exception as exc:  # sqlite3.Error: a file from before model runs were kept
        raise HistoryUnavailable(f"no model runs in {path}: {exc}") from None
    finally:
        db.close()
    return Books(books_data(rows))


def below_measured(loaded: LoadedConfig, books: Books) -> list[Issue]:
    """One issue per declared resource that is below its measured peak."""
    table = footprint_table(loaded, Learned(books))
    if table is None:
        return []
    issues: list[Issue] = []
    for model_id, m in loaded.models.items():
        measured = table.measured(model_id)
        for resource, declared in m.resources.items():
            peak = measured.get(resource)
            if peak is None or peak <= declared:
                continue
            unit = (
                resource in table.budgeting.sized or resource in ("ram", "vram") or bool(m.devices)
            )
            issues.append(
                Issue(
                    ("models", model_id, "resources", resource),
                    f"declared {format_size(declared, unit=unit)}, but its last runs took up "
                    f"to {format_size(peak, unit=unit)} (the highest of its last {RUNS_KEPT} "
                    "runs)",
                )
            )
    return issues


def located(loaded: LoadedConfig, issues: list[Issue]) -> list[ConfigProblem]:
    """`issues` with the line and column of their key in the config file."""
    try:
        text = loaded.path.read_text(encoding="utf-8")
    except OSError:
        text = ""
    doc, _ = parse_text(text, None)
    problems = []
    for issue in issues:
        line, column = doc.locate(issue.path) if doc.parsed else (0, 0)
        problems.append(
            ConfigProblem(str(loaded.path), line, column, format_path(issue.path), issue.message)
        )
    return problems
