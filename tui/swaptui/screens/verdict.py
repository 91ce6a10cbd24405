"""The daemon's verdict on a reload: what changed (and the new config's
warnings), or every config problem with its file:line:column, exactly as the
daemon reported them."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from swaptui.state import Verdict


def verdict_text(verdict: Verdict) -> Text:
    text = Text()
    if verdict.ok:
        text.append("✔ ", style="bold green")
    else:
        text.append("✖ ", style="bold red")
    text.append(verdict.message or ("ok" if verdict.ok else "failed"))
    for problem in verdict.problems:
        text.append("\n  ")
        text.append(problem, style="red")
    for warning in verdict.warnings:
        text.append("\n  ")
        text.append("warning: ", style="bold yellow")
        text.append(warning, style="yellow")
    return text


class VerdictScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,q", "dismiss", "Close")]
    DEFAULT_CSS = """
    VerdictScreen {
        align: center middle;
    }
    VerdictScreen > VerticalScroll {
        width: 90%;
        height: auto;
        max-height: 90%;
        border: round $primary;
        background: $panel;
        padding: 0 1;
    }
    VerdictScreen.-failed > VerticalScroll {
        border: round $error;
    }
    """

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(classes="" if verdict.ok else "-failed")
        self.verdict = verdict

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = f"{self.verdict.action}"
            scroll.border_subtitle = "esc to close"
            yield Static(verdict_text(self.verdict))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
