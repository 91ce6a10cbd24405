"""The `?` screen: every key, and the process-state legend from the daemon's table."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from swaptui.state import LegendEntry
from swaptui.widgets.palette import state_style

KEYS: tuple[tuple[str, str], ...] = (
    ("1 2 3 4", "views: models, logs, swaps, matrix"),
    ("↑ ↓", "select a model (models view)"),
    ("enter", "the selected model's log"),
    ("l / u", "load / unload the selected model (serving: wait or cut?)"),
    ("U", "unload every model (asks first)"),
    ("r", "reload the daemon's config and show its verdict"),
    ("/", "filter the current view (logs: search); esc clears"),
    ("m / s", "logs: next source (all, proxy, models) / selected model"),
    ("f / p", "logs: follow the tail (also End) / pause and resume"),
    ("a", "swaps: show or hide routine decisions (serve, grant)"),
    ("?", "this help"),
    ("q", "quit"),
)


def help_renderable(legend: tuple[LegendEntry, ...]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, expand=True)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for key, what in KEYS:
        table.add_row(key, what)
    if legend:
        table.add_row("", "")
        table.add_row(
            Text("states", style="bold"), Text("from the daemon's transition table", style="dim")
        )
        for entry in legend:
            line = Text(entry.description)
            if entry.next:
                line.append(f"  → {', '.join(entry.next)}", style="dim")
            table.add_row(Text(entry.name, style=state_style(entry.name)), line)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close"),
    ]
    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $primary;
        background: $panel;
        padding: 0 1;
    }
    """

    def __init__(self, legend: tuple[LegendEntry, ...]) -> None:
        super().__init__()
        self.legend = legend

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "swaptui keys"
            yield Static(help_renderable(self.legend))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
