"""The swaps view: a timeline of swaps and router decisions, newest first.

Per-request decisions (serve, grant) are hidden unless the reader asks (`a`):
under steady traffic they would push every swap out of the bounded timeline.

The timeline is bounded (the state keeps the last few hundred entries), so
the table is rebuilt from it on a repaint tick; a swap finishing updates its
row's load time and result in place in the state, and the rebuild shows it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from swapctl.render import duration as format_duration
from swaptui.state import TimelineEntry
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


ROUTINE_ACTIONS = frozenset({"serve", "grant"})
"""Per-request decisions that would bury the swaps under steady traffic: hidden unless asked."""


def timeline_rows(
    entries: Iterable[TimelineEntry], filter_text: str = "", *, show_routine: bool = True
) -> tuple[list[Cells], int]:
    """Newest first, and how many routine decisions were hidden.

    Entries arrive from the decisions reply and from subscription history,
    which interleave out of order, so they are ordered by their time here
    (entries of the same instant: the later arrival first, as before).
    The filter keeps entries whose target or evicted models contain it.
    """
    needle = filter_text.casefold()
    rows = []
    hidden = 0
    for entry in reversed(sorted(entries, key=lambda e: e.time)):
        names = (entry.target, *entry.evicted)
        if needle and not any(needle in name.casefold() for name in names):
            continue
        if not show_routine and entry.kind == "decision" and entry.action in ROUTINE_ACTIONS:
            hidden += 1
            continue
        rows.append(entry_cells(entry))
    return rows, hidden


def status_text(shown: int, hidden: int, show_routine: bool) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{shown} entries", style="dim")
    if hidden:
        text.append(
            f"  {hidden} routine ({', '.join(sorted(ROUTINE_ACTIONS))}) hidden", style="dim"
        )
    text.append("  a: ", style="dim")
    text.append("hide routine" if show_routine else "show all", style="bold")
    return text


class TimelineTable(DataTable[str | Text]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("a", "toggle_routine", "All decisions")]

    class RoutineToggled(Message):
        """The reader asked to show or hide routine decisions."""

    show_routine = False

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self._shown: list[Cells] = []

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def action_toggle_routine(self) -> None:
        self.show_routine = not self.show_routine
        self.post_message(self.RoutineToggled())

    def show(self, rows: list[Cells]) -> None:
        if rows == self._shown:
            return
        self.clear()
        self.add_rows(rows)
        self._shown = rows
