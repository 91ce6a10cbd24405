"""The models table: one row per model, updated in place from the state.

Rows are computed by the pure `model_rows` (tested without Textual); the
widget only diffs them against what it shows, touching changed cells, so a
storm of queue events costs a few cell updates per repaint tick.

Columns are one space apart (each cell carries a leading space, the table adds
no padding), so all of them fit in 80 columns.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from swapctl import protocol as p
from swapctl.render import duration as format_duration
from swapctl.render import failure_note, size
from swaptui.state import DashboardState, LegendEntry, ModelRow
from swaptui.widgets.palette import state_style

COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("model", "Model", None),
    ("state", "State", 8),
    ("pid", "PID", 7),
    ("port", "Port", 5),
    ("in_flight", "Busy", 4),
    ("waiting", "Wait", 4),
    ("queued", "Queue", 5),
    ("ttl", "TTL", 8),
    ("load", "Load", 6),
    ("sets", "Group/sets", None),
)
"""Key, label and width (None: as wide as the content). Fixed widths keep the columns
still while states and countdowns change, and cannot lag behind a new, wider value.
Busy: requests in flight; Wait: waiting for its load; Queue: behind another swap or
a busy model."""

Cells = tuple[str | Text, ...]


def model_cells(row: ModelRow, now: float) -> Cells:
    ttl_left = row.ttl_left(now)
    if ttl_left is not None:
        ttl = format_duration(ttl_left)
    elif row.ttl > 0:
        ttl = f"({format_duration(row.ttl)})"
    else:
        ttl = "-"
    return (
        row.id,
        Text(row.state, style=state_style(row.state)),
        "-" if row.pid is None else str(row.pid),
        "-" if row.port is None else str(row.port),
        str(row.in_flight) if row.in_flight else "-",
        str(row.waiting) if row.waiting else "-",
        str(row.queued) if row.queued else "-",
        ttl,
        format_duration(row.last_load_seconds),
        ",".join(row.memberships) or "-",
    )


def model_rows(state: DashboardState, filter_text: str = "") -> list[tuple[str, Cells]]:
    """The visible rows, sorted by model ID, keeping those whose ID contains the filter."""
    needle = filter_text.casefold()
    now = state.clock()
    return [
        (model, model_cells(row, now))
        for model, row in sorted(state.models.items())
        if needle in model.casefold()
    ]


def model_note(row: ModelRow | None, now: float) -> Text | None:
    """The lines under the table for the selected model: how and when it last failed,
    and what it takes (its meters, its footprints)."""
    if row is None:
        return None
    lines = [t for t in (failure_text(row, now), usage_text(row)) if t is not None]
    if len(lines) < 2:
        return lines[0] if lines else None
    return Text("\n").join(lines)


def usage_text(row: ModelRow) -> Text | None:
    """`cpu 12% mem 3.1G gpu -  ram: declared 2.0G measured 3.0G planned 3.3G`, dim."""
    parts = []
    if row.meters is not None:
        m = row.meters
        parts.append(f"cpu {m.cpu_percent:.0f}% mem {size(m.ram)} gpu {size(m.vram)}")
    f = row.footprint
    if f is not None:
        for r in dict.fromkeys([*f.declared, *f.measured, *f.planned, *f.blind]):
            shown = [
                f"{label} {size(values[r])}"
                for label, values in (
                    ("declared", f.declared),
                    ("measured", f.measured),
                    ("planned", f.planned),
                )
                if r in values
            ]
            parts.append(f"{r}: " + (" ".join(shown) if shown else "blind (counted 0)"))
    return Text("  ".join(parts), style="dim") if parts else None


def failure_text(row: ModelRow, now: float) -> Text | None:
    """How and when it last failed, with its counts; in the failed colour while it is
    failed, dim once it ran again."""
    if row.state != "failed" and not row.failures and not row.last_failure:
        return None
    info = p.ModelInfo(
        id=row.id,
        state=row.state,
        starts=row.starts,
        failures=row.failures,
        last_failure=row.last_failure,
        last_failure_at=row.last_failure_at,
    )
    note = failure_note(info, now)
    if row.state == "failed":
        return Text(note, style="bold red")
    return Text(note, style="dim")


def legend_text(legend: tuple[LegendEntry, ...]) -> Text:
    """One line naming every state in the daemon's table, in its colour."""
    text = Text("states: ", style="dim", no_wrap=True, overflow="ellipsis")
    for i, entry in enumerate(legend):
        if i:
            text.append("  ")
        text.append("● " + entry.name, style=state_style(entry.name))
    return text


class ModelsTable(DataTable[str | Text]):
    """The models table; the app reads `selected_model` for l/u/explain."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, cell_padding=0)
        self._shown: list[tuple[str, Cells]] = []

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(_spaced(label), key=key, width=None if width is None else width + 1)

    @property
    def selected_model(self) -> str | None:
        if not self._shown or self.cursor_row < 0:
            return None
        try:
            return self._shown[self.cursor_row][0]
        except IndexError:
            return None

    def show(self, rows: list[tuple[str, Cells]]) -> None:
        """Make the table show `rows`: cell updates when the row set is unchanged."""
        if [key for key, _ in rows] == [key for key, _ in self._shown]:
            for (key, cells), (_, old) in zip(rows, self._shown, strict=True):
                if cells == old:
                    continue
                for (column, _, _), value, before in zip(COLUMNS, cells, old, strict=True):
                    if value != before:
                        try:
                            self.update_cell(key, column, _spaced(value), update_width=True)
                        except (CellDoesNotExist, RowDoesNotExist):
                            pass
            self._shown = rows
            return
        selected = self.selected_model
        self.clear()
        self.add_rows_with_keys(rows)
        self._shown = rows
        keys = [key for key, _ in rows]
        if selected in keys:
            self.move_cursor(row=keys.index(selected), animate=False)

    def add_rows_with_keys(self, rows: list[tuple[str, Cells]]) -> None:
        for key, cells in rows:
            self.add_row(*map(_spaced, cells), key=key)

    def select(self, model: str) -> bool:
        keys = [key for key, _ in self._shown]
        if model not in keys:
            return False
        self.move_cursor(row=keys.index(model), animate=False)
        return True


def _spaced(cell: str | Text) -> str | Text:
    """The cell with the one space that separates it from the column to its left."""
    if isinstance(cell, Text):
        return Text.assemble(" ", cell)
    return " " + cell
