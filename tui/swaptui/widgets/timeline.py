"""The swaps view: a timeline of swaps and router decisions, newest first.

The timeline is bounded (the state keeps the last few hundred entries), so
the table is rebuilt from it on a repaint tick; a swap finishing updates its
row's load time and result in place in the state, and the rebuild shows it.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widgets import DataTable

from swaptui.state import TimelineEntry, format_duration
from swaptui.widgets.log_view import format_clock

COLUMNS: tuple[tuple[str, str], ...] = (
    ("time", "Time"),
    ("target", "Target"),
    ("action", "Action"),
    ("evicted", "Evicted"),
    ("load", "Load"),
    ("set", "Set"),
    ("cost", "Cost"),
    ("result", "Result"),
    ("why", "Why"),
)

Cells = tuple[str | Text, ...]


def entry_cells(entry: TimelineEntry) -> Cells:
    if entry.outcome == "ok":
        result = Text("ok", style="green")
    elif entry.outcome:
        result = Text(entry.outcome, style="red")
    elif entry.kind == "swap":
        result = Text("loading…", style="yellow")
    else:
        result = Text("")
    action = Text(entry.action, style="bold" if entry.kind == "swap" else "")
    return (
        format_clock(entry.time),
        entry.target,
        action,
        ",".join(entry.evicted) or "-",
        format_duration(entry.duration) if entry.duration is not None else "-",
        entry.set or "-",
        "-" if entry.cost is None else str(entry.cost),
        result,
        entry.why or "-",
    )


def timeline_rows(entries: Iterable[TimelineEntry], filter_text: str = "") -> list[Cells]:
    """Newest first; the filter keeps entries whose target or evicted models contain it."""
    needle = filter_text.casefold()
    rows = []
    for entry in reversed(list(entries)):
        names = (entry.target, *entry.evicted)
        if needle and not any(needle in name.casefold() for name in names):
            continue
        rows.append(entry_cells(entry))
    return rows


class TimelineTable(DataTable[str | Text]):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self._shown: list[Cells] = []

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, rows: list[Cells]) -> None:
        if rows == self._shown:
            return
        self.clear()
        self.add_rows(rows)
        self._shown = rows
