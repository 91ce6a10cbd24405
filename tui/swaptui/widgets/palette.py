"""Colours of process states, shared by the models table, legend and matrix view."""

from __future__ import annotations

from rich.style import Style

STATE_STYLES: dict[str, Style] = {
    "stopped": Style(dim=True),
    "starting": Style(color="yellow", bold=True),
    "ready": Style(color="green", bold=True),
    "stopping": Style(color="magenta"),
    "failed": Style(color="bright_white", bgcolor="red", bold=True),
    "shutdown": Style(color="red"),
    "asleep": Style(color="blue"),
}
"""Known states get a colour; a state a newer daemon adds is shown plain. A model that
ended on its own (`failed`) is the one thing an operator must not miss: it is a badge."""


def state_style(state: str) -> Style:
    return STATE_STYLES.get(state, Style())
