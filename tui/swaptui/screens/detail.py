"""A full-screen detail (a model, a swap, a request): rendered from the state and
re-rendered on the app's repaint tick, so it stays live while open."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.console import RenderableType
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static


class DetailScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,enter", "dismiss", "Close"),
        Binding("j", "scroll('down')", "Down", show=False),
        Binding("k", "scroll('up')", "Up", show=False),
        Binding("g", "scroll('home')", "Top", show=False),
        Binding("G", "scroll('end')", "Bottom", show=False),
    ]
    DEFAULT_CSS = """
    DetailScreen {
        align: center middle;
    }
    DetailScreen > VerticalScroll {
        width: 100%;
        height: 1fr;
        border: round $primary;
        background: $panel;
        padding: 0 1;
    }
    """

    def __init__(
        self, title: str, render: Callable[[], RenderableType], *, model: str | None = None
    ) -> None:
        super().__init__()
        self.model = model
        """The model this detail is about: `l` and `u` act on it while it is open."""
        self.title_text = title
        self.render_body = render
        self.body = Static(id="detail-body")

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = self.title_text
            yield self.body
        yield Footer()

    def on_mount(self) -> None:
        self.update()

    def update(self) -> None:
        """Render again from the state (the app calls this as the state changes)."""
        self.body.update(self.render_body())

    def action_scroll(self, where: str) -> None:
        box = self.query_one(VerticalScroll)
        match where:
            case "down":
                box.scroll_down(animate=False)
            case "up":
                box.scroll_up(animate=False)
            case "home":
                box.scroll_home(animate=False)
            case _:
                box.scroll_end(animate=False)
