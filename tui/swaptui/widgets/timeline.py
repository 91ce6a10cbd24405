"""The swaps view: one row per swap, and the router's other decisions, newest first.

A swap's decision, start and end merge into one row in the state (by swap
id); a wake (a swap whose target was asleep) shows `wake` as its action, the
models a swap put to sleep follow its evicted ones (`sleep a`); Enter on a row
opens its detail (what it evicted or put to sleep and why, its cost, its
load time, how it ended, the KV-cache slots it saved and restored, and the
decisions taken about it).

Per-request decisions (serve, grant) are hidden unless the reader asks (`a`):
under steady traffic they would push every swap out of the bounded timeline.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from swapctl import protocol as p
from swapctl.render import duration, kv_summary
from swaptui.state import TimelineEntry
from swaptui.widgets.keys import TABLE_KEYS
from swaptui.widgets.log_view import format_clock
from swaptui.widgets.sorting import SortOrder, SortValue, sort_rows

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
COLUMN_KEYS: tuple[str, ...] = tuple(key for key, _ in COLUMNS)
LABELS: dict[str, str] = dict(COLUMNS)

Cells = tuple[str | Text, ...]


def result_text(entry: TimelineEntry) -> Text:
    if entry.outcome == "ok":
        result = Text("ok", style="green")
    elif entry.outcome:
        result = Text(entry.outcome, style="red")
    elif entry.kind == "swap":
        result = Text("loading…", style="yellow")
    else:
        result = Text("")
    return result


def made_room(entry: TimelineEntry) -> str:
    """The evicted models, then those put to sleep: `c; sleep a`."""
    parts = [",".join(entry.evicted)] if entry.evicted else []
    if entry.slept:
        parts.append("sleep " + ",".join(entry.slept))
    return "; ".join(parts)


def entry_cells(entry: TimelineEntry) -> Cells:
    action = Text(
        "wake" if entry.wake else entry.action, style="bold" if entry.kind == "swap" else ""
    )
    return (
        format_clock(entry.time),
        entry.target,
        action,
        made_room(entry) or "-",
        duration(entry.duration),
        entry.set or "-",
        "-" if entry.cost is None else str(entry.cost),
        result_text(entry),
        entry.why or "-",
    )


def entry_sort_values(entry: TimelineEntry) -> tuple[SortValue, ...]:
    return (
        entry.time,
        entry.target,
        entry.action,
        made_room(entry) or None,
        entry.duration,
        entry.set,
        entry.cost,
        entry.outcome or None,
        entry.why or None,
    )


ROUTINE_ACTIONS = frozenset({"serve", "grant"})
"""Per-request decisions that would bury the swaps under steady traffic: hidden unless asked."""


def timeline_rows(
    entries: Iterable[TimelineEntry],
    filter_text: str = "",
    *,
    show_routine: bool = True,
    order: SortOrder | None = None,
) -> tuple[list[tuple[TimelineEntry, Cells]], int]:
    """Newest first, and how many routine decisions were hidden.

    Entries arrive from the decisions reply and from subscription history,
    which interleave out of order, so they are ordered by their time here
    (entries of the same instant: the later arrival first, as before).
    The filter keeps entries whose target, evicted or slept models contain it.
    """
    needle = filter_text.casefold()
    kept = []
    hidden = 0
    for entry in reversed(sorted(entries, key=lambda e: e.time)):
        names = (entry.target, *entry.evicted, *entry.slept)
        if needle and not any(needle in name.casefold() for name in names):
            continue
        if not show_routine and entry.kind == "decision" and entry.action in ROUTINE_ACTIONS:
            hidden += 1
            continue
        kept.append(entry)
    if order is not None:
        kept = sort_rows(kept, COLUMN_KEYS, entry_sort_values, order)
    return [(entry, entry_cells(entry)) for entry in kept], hidden


def status_text(shown: int, hidden: int, show_routine: bool) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{shown} entries", style="dim")
    if hidden:
        text.append(
            f"  {hidden} routine ({', '.join(sorted(ROUTINE_ACTIONS))}) hidden", style="dim"
        )
    text.append("  a: ", style="dim")
    text.append("hide routine" if show_routine else "show all", style="bold")
    text.append("  enter: detail", style="dim")
    return text


def entry_detail(entry: TimelineEntry, related: Iterable[p.Decision] = ()) -> RenderableType:
    """Everything known about one swap (or decision), for the detail screen."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column()
    title = "swap" if entry.kind == "swap" else f"decision {entry.action}"
    if entry.swap_id is not None:
        title += f" #{entry.swap_id}"
    if entry.wake:
        title += " (wake: the target was asleep)"
    table.add_row("what", Text(title, style="bold"))
    table.add_row("when", format_clock(entry.time))
    table.add_row("target", entry.target)
    table.add_row("evicted", ", ".join(entry.evicted) or "nothing")
    if entry.slept:
        table.add_row("slept", ", ".join(entry.slept))
    table.add_row("why", entry.why or "-")
    if entry.set is not None:
        table.add_row("set", entry.set)
    if entry.cost is not None:
        table.add_row("cost", str(entry.cost))
    if entry.kind == "swap" or entry.duration is not None:
        table.add_row("load time", duration(entry.duration))
    if entry.kind == "swap":
        table.add_row("result", result_text(entry))
    if entry.kv:
        table.add_row("kv cache", kv_summary(entry.kv).removeprefix("kv: "))
        for k in entry.kv:
            for error in k.errors:
                table.add_row("", Text(f"{k.model} {k.action}: {error}", style="red"))
    d = entry.decision
    if d is not None:
        if d.input:
            table.add_row("decided on", d.input)
        if d.running:
            table.add_row("running then", ", ".join(d.running))
        if d.queue_length:
            table.add_row("queue then", str(d.queue_length))
        if d.request:
            table.add_row("request", d.request)
    if entry.log_tail:
        table.add_row("log tail", Text(entry.log_tail.rstrip(), style="red"))
    others = [x for x in related if x is not d]
    if others:
        table.add_row("", "")
        table.add_row(Text("decisions", style="bold"), Text("about this swap", style="dim"))
        for x in sorted(others, key=lambda x: x.time):
            line = Text(f"{x.action} {x.model}", style="bold")
            if x.why:
                line.append(f"  {x.why}", style="")
            table.add_row(format_clock(x.time), line)
    return table


class TimelineTable(DataTable[str | Text]):
    BINDINGS: ClassVar[list[BindingType]] = [
        *TABLE_KEYS,
        Binding("a", "toggle_routine", "All"),
    ]

    class RoutineToggled(Message):
        """The reader asked to show or hide routine decisions."""

    show_routine = False

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self._shown: list[Cells] = []
        self.entries: list[TimelineEntry] = []

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def action_toggle_routine(self) -> None:
        self.show_routine = not self.show_routine
        self.post_message(self.RoutineToggled())

    @property
    def selected_entry(self) -> TimelineEntry | None:
        if 0 <= self.cursor_row < len(self.entries):
            return self.entries[self.cursor_row]
        return None

    def show(self, rows: list[tuple[TimelineEntry, Cells]]) -> None:
        self.entries = [entry for entry, _ in rows]
        cells = [c for _, c in rows]
        if cells == self._shown:
            return
        row = self.cursor_row
        self.clear()
        self.add_rows(cells)
        self._shown = cells
        if cells:
            self.move_cursor(row=min(max(row, 0), len(cells) - 1), animate=False)
