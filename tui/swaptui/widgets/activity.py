"""The Activity view: the finished requests, newest first, one row each.

Rows come from the daemon's request records (the `activity` reply, then one
record per finished request on the `request` topic). `/` filters by model
(the served model, or the name the client asked for), `e` cycles the outcome
shown, Enter opens the whole record and its capture when the daemon kept one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from swapctl import protocol as p
from swapctl.render import duration
from swaptui.widgets.keys import TABLE_KEYS
from swaptui.widgets.log_view import format_clock
from swaptui.widgets.sorting import SortOrder, SortValue, sort_rows

COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("time", "Time", 8),
    ("model", "Model", None),
    ("status", "Status", 8),
    ("queue", "Queue", 6),
    ("load", "Load", 6),
    ("ttfb", "TTFB", 6),
    ("duration", "Dur", 6),
    ("tokens", "Tokens", 9),
    ("tps", "Tok/s", 6),
)
"""Key, label, width (None: as wide as the content): all fit in 80 columns."""
COLUMN_KEYS: tuple[str, ...] = tuple(key for key, _, _ in COLUMNS)
LABELS: dict[str, str] = {key: label for key, label, _ in COLUMNS}

MAX_ROWS = 200
"""Rows the table holds (the first of the filtered, sorted records): a DataTable is
rebuilt whole, and the daemon keeps the rest (`swapctl activity`)."""

OUTCOME_CYCLE: tuple[p.Outcome | None, ...] = (None, *p.OUTCOMES)
"""What `e` steps through: every outcome, then each one alone."""

Cells = tuple[str | Text, ...]


def record_name(record: p.RequestRecord) -> str:
    """The model that served it, else what the client asked for; a peer's is marked."""
    name = record.model or record.requested or "?"
    return f"{name}@{record.peer}" if record.peer else name


def status_cell(record: p.RequestRecord) -> Text:
    """The HTTP status in the outcome's colour; the outcome itself when it says more."""
    code = "-" if record.status is None else str(record.status)
    if record.outcome == "done":
        bad = record.status is not None and record.status >= 400
        return Text(code, style="red" if bad else "green")
    short = {"client_gone": "gone", "aborted": "cut", "failed": "fail"}[record.outcome]
    return Text(f"{short} {code}" if record.status is not None else short, style="red")


def tokens_cell(record: p.RequestRecord) -> str:
    if record.prompt_tokens is None and record.completion_tokens is None:
        return "-"
    prompt = "?" if record.prompt_tokens is None else str(record.prompt_tokens)
    completion = "?" if record.completion_tokens is None else str(record.completion_tokens)
    return f"{prompt}/{completion}"


def record_cells(record: p.RequestRecord) -> Cells:
    return (
        format_clock(record.start),
        record_name(record),
        status_cell(record),
        duration(record.queued_s),
        duration(record.load_wait_s),
        duration(record.ttfb_s),
        duration(record.duration_s),
        tokens_cell(record),
        "-" if record.tokens_per_s is None else f"{record.tokens_per_s:.1f}",
    )


def record_sort_values(record: p.RequestRecord) -> tuple[SortValue, ...]:
    return (
        record.start,
        record_name(record),
        record.status,
        record.queued_s,
        record.load_wait_s,
        record.ttfb_s,
        record.duration_s,
        record.completion_tokens,
        record.tokens_per_s,
    )


def record_matches(record: p.RequestRecord, needle: str, outcome: p.Outcome | None) -> bool:
    if outcome is not None and record.outcome != outcome:
        return False
    if not needle:
        return True
    names = (record.model or "", record.requested or "", record.peer or "")
    return any(needle in name.casefold() for name in names)


def activity_rows(
    records: Iterable[p.RequestRecord],
    filter_text: str = "",
    outcome: p.Outcome | None = None,
    order: SortOrder | None = None,
    limit: int = MAX_ROWS,
) -> tuple[list[tuple[p.RequestRecord, Cells]], int]:
    """The rows shown: newest first (the records come so), filtered, sorted, the first
    `limit`; and how many records matched."""
    needle = filter_text.casefold()
    kept = [r for r in records if record_matches(r, needle, outcome)]
    if order is not None:
        kept = sort_rows(kept, COLUMN_KEYS, record_sort_values, order)
    return [(r, record_cells(r)) for r in kept[:limit]], len(kept)


def status_text(
    matched: int, total: int, outcome: p.Outcome | None, note: str, limit: int = MAX_ROWS
) -> Text:
    """The line above the table: how many, which outcome, the keys."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if note:
        text.append(note, style="yellow")
        return text
    text.append(f"{matched} of {total} requests", style="dim")
    if matched > limit:
        text.append(f" (first {limit} shown)", style="yellow")
    text.append("  outcome ", style="dim")
    text.append(outcome or "all", style="bold")
    text.append("  e: next outcome  enter: record", style="dim")
    return text


def _grid() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True, min_width=10)
    table.add_column()
    return table


def record_detail(record: p.RequestRecord, capture: p.Capture | str | None) -> RenderableType:
    """The whole record, then its capture (or why there is none)."""
    table = _grid()
    table.add_row("request", Text(f"#{record.id}", style="bold"))
    table.add_row("start", format_clock(record.start))
    table.add_row("client", record.client or "-")
    table.add_row("requested", record.requested or "-")
    table.add_row("model", record.model or "-")
    if record.peer:
        table.add_row("peer", record.peer)
    table.add_row("route", record.route or "-")
    table.add_row("stream", "yes" if record.stream else "no")
    outcome = status_cell(record)
    outcome.append(f"  {record.outcome}", style="bold")
    if record.reason:
        outcome.append(f": {record.reason}")
    table.add_row("outcome", outcome)
    table.add_row("queued", duration(record.queued_s))
    wait = duration(record.load_wait_s)
    if record.swap_id is not None:
        wait += f" (swap #{record.swap_id})"
    table.add_row("load wait", wait)
    table.add_row("ttfb", duration(record.ttfb_s))
    table.add_row("duration", duration(record.duration_s))
    table.add_row("tokens", f"{tokens_cell(record)} (prompt/completion)")
    tps = "-" if record.tokens_per_s is None else f"{record.tokens_per_s:.1f}"
    table.add_row("tokens/s", tps)
    return Group(table, Text("\ncapture", style="bold"), capture_renderable(capture))


def capture_renderable(capture: p.Capture | str | None) -> RenderableType:
    if capture is None:
        return Text("asking the daemon…", style="dim")
    if isinstance(capture, str):
        return Text(capture, style="dim")
    table = _grid()
    table.add_row("path", capture.req_path)
    for label, headers, body in (
        ("request", capture.req_headers, capture.req_body),
        ("response", capture.resp_headers, capture.resp_body),
    ):
        for name, value in sorted((headers or {}).items()):
            table.add_row(f"{label} hdr", f"{name}: {value}")
        table.add_row(f"{label} body", body_text(body))
    if capture.truncated:
        table.add_row("", Text("(cut: longer than the capture buffer keeps)", style="yellow"))
    return table


MAX_BODY_CHARS = 20_000
"""A body shown in the detail is cut here: the screen is for reading, not for export."""


def body_text(body: bytes | None) -> Text:
    """A body as text: JSON pretty-printed, other UTF-8 as is, binary as its size."""
    if body is None:
        return Text("-", style="dim")
    try:
        decoded = body.decode()
    except UnicodeDecodeError:
        return Text(f"({len(body)} bytes, not UTF-8)", style="dim")
    try:
        decoded = json.dumps(json.loads(decoded), indent=2, ensure_ascii=False)
    except ValueError:
        pass
    if len(decoded) > MAX_BODY_CHARS:
        return Text(decoded[:MAX_BODY_CHARS] + f"\n… ({len(decoded):,} characters)")
    return Text(decoded)


class ActivityTable(DataTable[str | Text]):
    """The records table; the app reads `selected_record`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *TABLE_KEYS,
        Binding("e", "next_outcome", "Outcome"),
    ]

    class OutcomeCycled(Message):
        """The reader asked for the next outcome filter."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", cell_padding=0)
        self.records: list[p.RequestRecord] = []
        self._shown: list[Cells] = []

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(" " + label, key=key, width=None if width is None else width + 1)

    def action_next_outcome(self) -> None:
        self.post_message(self.OutcomeCycled())

    @property
    def selected_record(self) -> p.RequestRecord | None:
        if 0 <= self.cursor_row < len(self.records):
            return self.records[self.cursor_row]
        return None

    def show(self, rows: Sequence[tuple[p.RequestRecord, Cells]]) -> None:
        """Show `rows`, keeping the cursor on the record it was on (new rows come on top)."""
        cells = [c for _, c in rows]
        selected = self.selected_record
        self.records = [r for r, _ in rows]
        if cells == self._shown:
            return
        self.clear()
        for row in cells:
            self.add_row(*(_spaced(c) for c in row))
        self._shown = cells
        if not cells:
            return
        index = 0
        if selected is not None:
            ids = [r.id for r in self.records]
            index = ids.index(selected.id) if selected.id in ids else 0
        self.move_cursor(row=index, animate=False)


def next_outcome(outcome: p.Outcome | None) -> p.Outcome | None:
    index = OUTCOME_CYCLE.index(outcome)
    return OUTCOME_CYCLE[(index + 1) % len(OUTCOME_CYCLE)]


def _spaced(cell: str | Text) -> str | Text:
    if isinstance(cell, Text):
        return Text.assemble(" ", cell)
    return " " + cell
