"""The two-line header.

First line: the connection (and, when down, why; once back, when it came
back), then the daemon's version, uptime, listen address and config path.
Second line: what the daemon is doing now: models running, requests in
flight and queued, requests/s, and the memory and GPU memory the models'
processes hold (as the daemon's meters last sampled them).
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from swapctl.render import duration, size
from swaptui.state import DashboardState, Summary
from swaptui.widgets.log_view import format_clock

RECONNECTED_SHOWN = 300.0
"""Seconds the header keeps saying when the link came back."""


def short_path(path: str, limit: int = 32) -> str:
    """A path that fits the header: whole if short, else its last two components."""
    if len(path) <= limit:
        return path
    parts = path.rstrip("/").split("/")
    return "…/" + "/".join(parts[-2:])


def header_text(state: DashboardState) -> Text:
    conn = state.connection
    now = state.clock()
    text = Text(no_wrap=True, overflow="ellipsis")
    if conn.status == "connected":
        text.append("● connected", style="bold green")
        back = conn.reconnected_at
        if back is not None and now - back < RECONNECTED_SHOWN:
            text.append(
                f" (reconnected {format_clock(back)} after {duration(conn.down_for)})",
                style="green",
            )
    elif conn.status == "connecting":
        text.append("◌ connecting", style="bold yellow")
    else:
        text.append("✖ disconnected", style="bold red")
        if conn.retry_at is not None:
            wait = max(0.0, conn.retry_at - now)
            text.append(f" (retry {duration(wait)}, #{conn.attempts})", style="red")
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
        fields.append(("up", duration(uptime)))
    if daemon.listen:
        fields.append(("", " ".join(daemon.listen)))
    if daemon.config_path:
        fields.append(("", short_path(daemon.config_path)))
    if state.events_missed:
        fields.append(("missed", str(state.events_missed)))
    _fields(text, fields)
    return text


def summary_text(summary: Summary) -> Text:
    """What runs and what waits, across every model."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{summary.running}/{summary.models}", style="bold")
    text.append(" running", style="dim")
    fields: list[tuple[str, str]] = [
        ("in flight", str(summary.in_flight)),
        ("queued", str(summary.queued)),
        ("req/s", f"{summary.requests_per_second:.1f}"),
    ]
    if summary.memory_bytes is not None:
        fields.append(("mem", size(summary.memory_bytes)))
    if summary.gpu_bytes is not None:
        fields.append(("gpu", size(summary.gpu_bytes)))
    for label, value in fields:
        text.append(" │ ", style="dim")
        if label == "req/s":
            text.append(value, style="bold")
            text.append(" req/s", style="dim")
        else:
            text.append(f"{label} ", style="dim")
            text.append(value, style="bold")
    return text


def _fields(text: Text, fields: list[tuple[str, str]]) -> None:
    for label, value in fields:
        text.append(" │ ", style="dim")
        if label:
            text.append(f"{label} ", style="dim")
        text.append(value)


class DaemonHeader(Widget):
    DEFAULT_CSS = """
    DaemonHeader {
        dock: top;
        height: 2;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        background: $panel;
        color: $foreground;
    }
    """

    def __init__(self, state: DashboardState, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = state

    def render(self) -> Text:
        return Text("\n", no_wrap=True).join(
            [header_text(self.state), summary_text(self.state.summary())]
        )
