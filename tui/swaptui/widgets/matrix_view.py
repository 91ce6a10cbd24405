"""The matrix view: the swap policy the daemon runs, and one model's explanation.

For a matrix config: each named set with its expansion, as the daemon
bounded it plus our own display bound, with a "... N more" row; the running
combination is highlighted. For a group config: each group with its swap,
exclusive and persistent flags. Below: what loading the selected model would
do, as the daemon's `explain` answered it.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from swapctl import protocol as p
from swaptui.widgets.palette import state_style

DEFAULT_ROWS_PER_SET = 8


def _flag(value: bool) -> Text:
    return Text("yes", style="green") if value else Text("no", style="dim")


def matrix_renderable(
    view: p.MatrixView | None,
    running: list[str],
    *,
    filter_text: str = "",
    rows_per_set: int = DEFAULT_ROWS_PER_SET,
) -> RenderableType:
    """The sets (or groups) as a table; combinations beyond the bound become "... N more"."""
    if view is None:
        return Text("waiting for the daemon's swap policy…", style="dim")
    if view.router == "group":
        return groups_renderable(view, running, filter_text=filter_text)
    table = Table(expand=True, box=None, show_edge=False, pad_edge=False)
    table.add_column("Set", style="bold", no_wrap=True)
    table.add_column("Combination")
    needle = filter_text.casefold()
    running_set = set(running)
    shown_sets = 0
    for s in view.sets:
        combos = [c for c in s.combinations if not needle or any(needle in m.casefold() for m in c)]
        if needle and not combos and needle not in s.name.casefold():
            continue
        shown_sets += 1
        more = len(combos) - rows_per_set
        if not needle:
            more += s.more or 0
        for i, combo in enumerate(combos[:rows_per_set]):
            label = s.name if i == 0 else ""
            is_running = bool(combo) and set(combo) == running_set
            table.add_row(
                Text(
                    label, style="bold reverse" if is_running and s.name == view.running_set else ""
                ),
                _combination(combo, running_set, is_running),
            )
        if not combos:
            table.add_row(s.name, Text(s.dsl or "(empty)", style="dim"))
        if more > 0 or (s.truncated and not needle):
            count = f"{more}" if more > 0 else "more"
            table.add_row("", Text(f"... {count} more", style="dim italic"))
    if not shown_sets:
        return Text(f"no set matches {filter_text!r}", style="dim")
    title = Text("running: ", style="dim")
    title.append(" + ".join(running) or "nothing", style="bold green" if running else "dim")
    if view.running_set:
        title.append(f"  (set {view.running_set})", style="dim")
    return Group(title, table)


def matrix_matches(view: p.MatrixView | None, filter_text: str) -> int | None:
    """How many sets (or groups) the filter keeps, as the view shows them."""
    if view is None:
        return None
    needle = filter_text.casefold()
    if view.router == "group":
        return sum(
            1
            for g in view.groups
            if needle in g.name.casefold() or any(needle in m.casefold() for m in g.members)
        )
    return sum(
        1
        for s in view.sets
        if needle in s.name.casefold()
        or any(any(needle in m.casefold() for m in c) for c in s.combinations)
    )


def _combination(combo: list[str], running: set[str], is_running: bool) -> Text:
    text = Text()
    for i, model in enumerate(combo):
        if i:
            text.append(" & ", style="dim")
        text.append(model, style="bold green" if model in running else "")
    if is_running:
        text.append("  ◀ running", style="bold green")
    return text


def groups_renderable(view: p.MatrixView, running: list[str], *, filter_text: str = "") -> Table:
    table = Table(expand=True, box=None, show_edge=False, pad_edge=False)
    table.add_column("Group", style="bold", no_wrap=True)
    table.add_column("swap")
    table.add_column("excl")
    table.add_column("pers")
    table.add_column("Members")
    needle = filter_text.casefold()
    for g in view.groups:
        if (
            needle
            and needle not in g.name.casefold()
            and not any(needle in m.casefold() for m in g.members)
        ):
            continue
        members = Text()
        for i, model in enumerate(g.members):
            if i:
                members.append(", ", style="dim")
            members.append(model, style="bold green" if model in running else "")
        table.add_row(g.name, _flag(g.swap), _flag(g.exclusive), _flag(g.persistent), members)
    return table


def explain_renderable(model: str | None, explanation: p.Explanation | None) -> RenderableType:
    """The answer to "what if a request for this model came now?"."""
    if model is None:
        return Text("select a model (Models view) to see what loading it would do", style="dim")
    if explanation is None:
        return Text(f"{model}: asking the daemon…", style="dim")
    e = explanation
    if e.action == "none":
        return Text(f"{e.model}: nothing to explain ({e.why})", style="dim")
    text = Text()
    text.append(e.model, style="bold")
    if e.resolved and e.resolved != e.model:
        text.append(f" → {e.resolved}")
    if e.state:
        text.append(" (")
        text.append(e.state, style=state_style(e.state))
        text.append(")")
    text.append(": ")
    text.append(e.action, style="bold cyan")
    if e.evict:
        text.append("\n  evicts ", style="dim")
        text.append(", ".join(e.evict), style="bold red")
    elif e.action == "swap":
        text.append("\n  evicts nothing", style="dim")
    if e.set:
        text.append("\n  set ", style="dim")
        text.append(e.set)
    if e.cost is not None:
        text.append("  cost ", style="dim")
        text.append(str(e.cost))
    if e.queue_position is not None:
        text.append(f"\n  queue position {e.queue_position}", style="yellow")
    if e.why:
        text.append("\n  why: ", style="dim")
        text.append(e.why)
    return text
