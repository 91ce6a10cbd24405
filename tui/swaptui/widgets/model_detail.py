"""The detail pane of one model (`d`): what it runs, how it is doing, what it did.

Rendered from the state alone, so it stays live while open: the effective
command line, proxy, aliases and TTL; its state, why and since when; how it
last ended; its counts; memory and CPU when the daemon reports them; its
latest requests and swaps.
"""

from __future__ import annotations

import shlex

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from swapctl.render import duration, size
from swaptui.state import DashboardState, ModelRow
from swaptui.widgets.activity import status_cell
from swaptui.widgets.log_view import format_clock
from swaptui.widgets.models_table import usage_text
from swaptui.widgets.palette import state_style
from swaptui.widgets.timeline import result_text


def _grid() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True, min_width=10)
    table.add_column()
    return table


def _section(title: str) -> Text:
    return Text(f"\n{title}", style="bold")


def model_detail(state: DashboardState, model: str) -> RenderableType:
    row = state.models.get(model)
    if row is None:
        return Text(f"{model}: not in the daemon's config (any more)", style="dim")
    now = state.clock()
    return Group(
        _identity(row),
        _section("now"),
        _now(row, now),
        _resources(row),
        _section("recent requests"),
        _requests(state, model),
        _section("recent swaps"),
        _swaps(state, model),
    )


def _identity(row: ModelRow) -> Table:
    table = _grid()
    title = Text(row.id, style="bold")
    if row.name and row.name != row.id:
        title.append(f"  {row.name}")
    table.add_row("model", title)
    if row.description:
        table.add_row("", row.description)
    table.add_row("command", shlex.join(row.argv) if row.argv else "-")
    env = Text()
    for i, (key, value) in enumerate(row.env):
        if i:
            env.append("\n")
        env.append(key, style="bold")
        env.append(f"={value}")
    table.add_row("env", env if row.env else Text("(none set by the config)", style="dim"))
    table.add_row("proxy", row.proxy or "-")
    table.add_row("aliases", ", ".join(row.aliases) or "-")
    table.add_row("sets", ", ".join(row.memberships) or "-")
    table.add_row("ttl", duration(row.ttl) if row.ttl > 0 else "never unloads when idle")
    return table


def _now(row: ModelRow, now: float) -> Table:
    table = _grid()
    state = Text(row.state, style=state_style(row.state))
    if row.state_since is not None:
        state.append(f" for {duration(max(0.0, now - row.state_since))}", style="dim")
    if row.state_reason:
        state.append(f": {row.state_reason}")
    table.add_row("state", state)
    table.add_row("pid / port", f"{row.pid or '-'} / {row.port or '-'}")
    table.add_row(
        "requests", f"{row.in_flight} in flight, {row.queued} queued, {row.waiting} waiting"
    )
    ttl_left = row.ttl_left(now)
    if ttl_left is not None:
        table.add_row("ttl left", duration(ttl_left))
    table.add_row("last load", duration(row.last_load_seconds))
    table.add_row("starts", f"{row.starts} ({row.failures} failed)")
    if row.last_exit_code is not None:
        table.add_row("last exit", str(row.last_exit_code))
    if row.last_failure:
        when = "" if row.last_failure_at is None else f"{duration(now - row.last_failure_at)} ago: "
        table.add_row("last error", Text(when + row.last_failure, style="red"))
    return table


def _resources(row: ModelRow) -> RenderableType:
    """CPU and memory of the model's process tree as last sampled, and its footprints."""
    usage = usage_text(row)
    if row.meters is None and usage is None:
        return Text("\nmemory and CPU: not measured (no process)", style="dim")
    table = _grid()
    m = row.meters
    if m is not None:
        table.add_row("cpu", f"{m.cpu_percent:.0f}%")
        table.add_row("memory", size(m.ram))
        table.add_row("gpu memory", size(m.vram) if m.vram is not None else "- (no NVML)")
        if m.processes > 1:
            table.add_row("processes", str(m.processes))
    if row.footprint is not None and usage is not None:
        table.add_row("footprint", usage)
    return Group(_section("resources"), table)


def _requests(state: DashboardState, model: str) -> RenderableType:
    records = state.model_records(model)
    if records:
        table = _grid()
        for r in records:
            line = status_cell(r)
            line.append(f" {r.outcome}  {duration(r.duration_s)}")
            if r.tokens_per_s is not None:
                line.append(f"  {r.tokens_per_s:.1f} tok/s")
            line.append(f"  #{r.id} {r.route}", style="dim")
            table.add_row(format_clock(r.start), line)
        return table
    events = state.model_requests(model)
    if not events:
        return Text("none seen since swaptui connected", style="dim")
    table = _grid()
    for e in events:
        line = Text(e.phase, style="green" if e.phase == "done" else "red")
        if e.status is not None:
            line.append(f" {e.status}")
        if e.duration is not None:
            line.append(f" in {duration(e.duration)}")
        if e.request:
            line.append(f"  #{e.request}", style="dim")
        if e.detail:
            line.append(f"  {e.detail}")
        table.add_row(format_clock(e.time), line)
    return table


def _swaps(state: DashboardState, model: str) -> RenderableType:
    swaps = state.model_swaps(model)
    if not swaps:
        return Text("none in the timeline", style="dim")
    table = _grid()
    for e in swaps:
        if e.target == model:
            line = Text("loaded", style="bold")
            if e.evicted:
                line.append(f", evicting {', '.join(e.evicted)}")
        else:
            line = Text(f"evicted for {e.target}", style="bold")
        line.append(f"  {duration(e.duration)}  ")
        line.append_text(result_text(e))
        if e.why:
            line.append(f"  {e.why}", style="dim")
        table.add_row(format_clock(e.time), line)
    return table
