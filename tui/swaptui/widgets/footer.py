"""The footer, naming what `l` and `u` would act on ("u Unload embed").

The keys act on what the current view shows, which changes as the reader
moves; the app calls `refresh_bindings()` when it does and the footer is
composed again with the new names.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

TARGETED = frozenset({"load", "unload"})


class TargetFooter(Footer):
    def __init__(self, target: Callable[[], str | None], *, id: str | None = None) -> None:
        super().__init__(id=id, show_command_palette=False)
        self.target = target

    def compose(self) -> ComposeResult:
        target = self.target()
        for widget in super().compose():
            if isinstance(widget, FooterKey) and widget.action in TARGETED:
                widget.description = f"{widget.description} {target or '-'}"
            yield widget
