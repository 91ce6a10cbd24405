"""Unloading a model that is serving: wait for its requests, cut them, or cancel.

An unload waits for the requests in flight to finish (at most the model's
unloadTimeout) before it stops the process; cutting them stops it at once and
their clients get an error. Which one is the operator's call, so `u` asks when
the model is busy. The default (enter) is the one that loses nothing.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

UnloadChoice = Literal["wait", "now"]
"""wait: the default unload; now: `unload --now`. None (the screen's result) cancels."""


def unload_question(model: str, in_flight: int) -> Text:
    requests = f"{in_flight} request{'s' if in_flight != 1 else ''}"
    text = Text()
    text.append(model, style="bold")
    text.append(f" is serving {requests} in flight. Unload it:")
    return text


def unload_keys() -> Text:
    text = Text()
    for i, (key, what) in enumerate(
        (
            ("enter", "wait for them to finish (at most its unloadTimeout)"),
            ("c", "cut them now: their clients get an error"),
            ("esc", "cancel"),
        )
    ):
        if i:
            text.append("\n")
        text.append(f"{key:>5}", style="bold")
        text.append(f"  {what}")
    return text


class UnloadScreen(ModalScreen[UnloadChoice | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,w", "answer('wait')", "Wait for them"),
        Binding("c", "answer('now')", "Cut them now"),
        Binding("escape,n", "cancel", "Cancel"),
    ]
    DEFAULT_CSS = """
    UnloadScreen {
        align: center middle;
    }
    UnloadScreen > Vertical {
        width: 72;
        max-width: 100%;
        height: auto;
        border: round $warning;
        background: $panel;
        padding: 0 1;
    }
    UnloadScreen .keys {
        margin-top: 1;
    }
    """

    def __init__(self, model: str, in_flight: int) -> None:
        super().__init__()
        self.model = model
        self.in_flight = in_flight

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = f"unload {self.model}"
            yield Static(unload_question(self.model, self.in_flight))
            yield Static(unload_keys(), classes="keys")

    def action_answer(self, choice: UnloadChoice) -> None:
        self.dismiss(choice)

    def action_cancel(self) -> None:
        self.dismiss(None)
