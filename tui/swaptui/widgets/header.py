"""The one-line header: connection state first (and, when down, why), then the
daemon's version, uptime, listen address and config path."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from swapctl.render import duration as format_duration
from swaptui.state import DashboardState


def short_path(path: str, limit: int = 32) -> str:
    """A path that fits the header: whole if short, else its last two components."""
    if len(path) <= limit:
        return path
    parts = path.rstrip("/").split("/")
    return "…/" + "/".join(parts[-2:])


def header_text(state: DashboardState) -> Text:
    conn = state.connection
    text = Text(no_wrap=True, overflow="ellipsis")
    if conn.status == "connected":
        text.append("● connected", style="bold green")
    elif conn.status == "connecting":
        text.append("◌ connecting", style="bold yellow")
    else:
        text.append("✖ disconnected", style="bold red")
        if conn.retry_at is not None:
            wait = max(0.0, conn.retry_at - state.clock())
            text.append(f" (retry {format_duration(wait)}, #{conn.attempts})", style="red")
        if conn.detail:
            # Why it is down matters more than anything we knew about the daemon.
            text.append(": ", style="red")
            text.append(conn.detail, style="red")
    daemon = state.daemon
    fields: list[tuple[str, str]] = []
    if daemon.version:
        fields.append(("swapd", daemon.version))
    uptime = state.uptime()
    if uptime is not None and conn.status == "connected":
        fields.append(("up", format_duration(uptime)))
    if daemon.listen:
        fields.append(("", " ".join(daemon.listen)))
    if daemon.config_path:
        fields.append(("", short_path(daemon.config_path)))
    if state.events_missed:
        fields.append(("missed", str(state.events_missed)))
    for label, value in fields:
        text.append(" │ ", style="dim")
        if label:
            text.append(f"{label} ", style="dim")
        text.append(value)
    return text


class DaemonHeader(Widget):
    DEFAULT_CSS = """
    DaemonHeader {
        dock: top;
        height: 1;
        background: $panel;
        color: $foreground;
    }
    """

    def __init__(self, state: DashboardState, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = state

    def render(self) -> Text:
        return header_text(self.state)
