"""The swaptui application: views over one `DashboardState`.

The source (the daemon connection, or a test fake) writes into the state and
calls `changed()`. The app never repaints per event: `changed()` arms one
short timer, and when it fires `flush()` takes the dirty areas and updates
only those widgets. Actions (load, unload, reload, explain) run as workers so
the UI never waits on the daemon, and their verdicts are shown, not raised.

`l` and `u` act on the model the current view shows (the Models row, the
Logs source, the Swaps row's target, the explained model), named in the
footer, never on a selection made elsewhere.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

from rich.console import RenderableType
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static, TabbedContent, TabPane

from swapctl import protocol as p
from swaptui import state as areas
from swaptui.screens.confirm import ConfirmScreen
from swaptui.screens.detail import DetailScreen
from swaptui.screens.help import HelpScreen
from swaptui.screens.unload import UnloadChoice, UnloadScreen
from swaptui.screens.verdict import VerdictScreen
from swaptui.source import Source
from swaptui.state import PROXY_SOURCE, DashboardState, LogFilter, Verdict
from swaptui.widgets import activity, models_table, timeline
from swaptui.widgets.activity import ActivityTable, activity_rows, next_outcome, record_detail
from swaptui.widgets.footer import TargetFooter
from swaptui.widgets.header import DaemonHeader
from swaptui.widgets.log_view import LogStatus, LogView
from swaptui.widgets.matrix_view import explain_renderable, matrix_matches, matrix_renderable
from swaptui.widgets.model_detail import model_detail
from swaptui.widgets.models_table import ModelsTable, legend_text, model_note, model_rows
from swaptui.widgets.sorting import SortOrder
from swaptui.widgets.timeline import TimelineTable, entry_detail, timeline_rows
from swaptui.widgets.timeline import status_text as timeline_status

VIEWS: tuple[str, ...] = ("models", "logs", "swaps", "matrix", "activity")
SORTABLE: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "models": (models_table.COLUMN_KEYS, models_table.LABELS),
    "swaps": (timeline.COLUMN_KEYS, timeline.LABELS),
    "activity": (activity.COLUMN_KEYS, activity.LABELS),
}
"""The views whose table sorts by column: its column keys and labels."""
ACTIVITY_REPAINT = 0.5
"""Seconds between rebuilds of the activity table while requests keep finishing."""


def filter_bar_text(
    filter_text: str,
    shown: int | None,
    sort: str,
    offline: bool,
    outcome: str | None = None,
) -> Text | None:
    """The line above the footer: the current view's filters (and "no match" when they
    hide everything), its sort order. None when there is nothing to say."""
    if not filter_text and not sort and not outcome:
        return None
    text = Text(no_wrap=True, overflow="ellipsis")
    if filter_text or outcome:
        if filter_text:
            text.append("filter ", style="dim")
            text.append(filter_text, style="bold reverse")
        if outcome:
            text.append("  outcome " if filter_text else "outcome ", style="dim")
            text.append(outcome, style="bold reverse")
        if shown == 0:
            text.append("  no match", style="bold yellow")
        elif shown is not None:
            text.append(f"  {shown} shown", style="dim")
        text.append("  esc: clear" if filter_text else "  e: next", style="dim")
    if sort:
        if filter_text or outcome:
            text.append("  │  ", style="dim")
        text.append("sorted by ", style="dim")
        text.append(sort, style="bold")
        text.append("  o: next  O: flip", style="dim")
    if offline:
        text.stylize("dim")
    return text


class SwapTUI(App[None]):
    """The dashboard. `source` feeds `state`; the widgets render from `state`."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "swaptui"
    ENABLE_COMMAND_PALETTE = False
    AUTO_FOCUS = "#models-table"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "view('models')", "Models", show=False),
        Binding("2", "view('logs')", "Logs", show=False),
        Binding("3", "view('swaps')", "Swaps", show=False),
        Binding("4", "view('matrix')", "Matrix", show=False),
        Binding("5", "view('activity')", "Activity", show=False),
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("l", "load", "Load"),
        Binding("u", "unload", "Unload"),
        Binding("d", "detail", "Detail", show=False),
        Binding("U", "unload_all", "Unload all", show=False),
        Binding("r", "reload", "Reload", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("o", "sort", "Sort", show=False),
        Binding("O", "sort_flip", "Flip sort", show=False),
        Binding("m", "next_source", "Source", show=False),
        Binding("s", "selected_source", "Model log", show=False),
        Binding("escape", "clear_filter", "Clear", show=False),
    ]

    def __init__(
        self,
        source: Source,
        state: DashboardState | None = None,
        *,
        refresh_interval: float = 0.05,
        tick_interval: float = 1.0,
    ) -> None:
        super().__init__()
        self.source = source
        self.state = state or DashboardState()
        self.state.connection.target = source.describe()
        self.refresh_interval = refresh_interval
        self.tick_interval = tick_interval
        self.filters: dict[str, str] = dict.fromkeys(VIEWS, "")
        self.sorts: dict[str, SortOrder] = {view: SortOrder() for view in SORTABLE}
        self.shown: dict[str, int | None] = dict.fromkeys(VIEWS, None)
        """How many rows (lines, sets) each view shows under its filter."""
        self.selected_model: str | None = None
        """The Models view's selection (also the model the Matrix view explains)."""
        self.flushes = 0
        self._flush_timer: Timer | None = None
        self._target: str | None = None
        self._reconnected_at: float | None = None
        self._activity_stale = True
        self._activity_shown = -ACTIVITY_REPAINT
        self._activity_timer: Timer | None = None
        self.activity_rebuilds = 0
        # Held directly: queries go to the active screen, which may be a modal one.
        self.header = DaemonHeader(self.state, id="header")
        self.models_table = ModelsTable(id="models-table")
        self.model_note = Static(id="model-note")
        self.legend = Static(id="legend")
        self.log_view = LogView(self.state.logs, id="log-view")
        self.log_status = LogStatus(self.log_view, id="log-status")
        self.timeline = TimelineTable(id="timeline")
        self.timeline_status = Static(id="timeline-status")
        self.matrix_sets = Static(id="matrix-sets")
        self.explain = Static(id="explain")
        self.activity_table = ActivityTable(id="activity-table")
        self.activity_status = Static(id="activity-status")
        self.outcome: p.Outcome | None = None
        """The Activity view's outcome filter (None: every outcome)."""
        self.tabs = TabbedContent(initial="models", id="views")
        self.filter_bar = Static(id="filter-bar")
        self.filter_box = Input(placeholder="filter…", id="filter")
        self.footer = TargetFooter(self.view_target, id="footer")

    # -- layout ---------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self.header
        with self.tabs:
            with TabPane("1 Models", id="models"):
                yield self.models_table
                yield self.model_note
                yield self.legend
            with TabPane("2 Logs", id="logs"):
                yield self.log_status
                yield self.log_view
            with TabPane("3 Swaps", id="swaps"):
                yield self.timeline_status
                yield self.timeline
            with TabPane("4 Matrix", id="matrix"):
                with VerticalScroll(id="matrix-scroll"):
                    yield self.matrix_sets
                yield self.explain
            with TabPane("5 Activity", id="activity"):
                yield self.activity_status
                yield self.activity_table
        yield self.filter_bar
        yield self.filter_box
        yield self.footer

    def on_mount(self) -> None:
        self.filter_box.display = False
        self.filter_bar.display = False
        self.state.touch(*areas.AREAS)
        self.flush()
        self.set_interval(self.tick_interval, self._tick)
        self.run_worker(
            self.source.run(self.state, self.changed),
            name="source",
            group="source",
            exit_on_error=False,
        )

    # -- repainting -----------------------------------------------------------

    def changed(self) -> None:
        """The state changed: repaint soon, once, however many times this is called."""
        if self._flush_timer is None:
            self._flush_timer = self.set_timer(self.refresh_interval, self.flush)

    def _tick(self) -> None:
        # Countdowns (uptime, TTL, retry) move without any event.
        self.state.touch(areas.HEADER, areas.MODELS)
        self.flush()

    def flush(self) -> None:
        """Repaint the areas that changed since the last flush."""
        self._flush_timer = None
        dirty = self.state.take_dirty()
        if not dirty:
            return
        self.flushes += 1
        if areas.HEADER in dirty or areas.MODELS in dirty:
            self.header.refresh()  # its summary line sums the models up
        if areas.HEADER in dirty:
            self._show_connection()
        if areas.MODELS in dirty:
            self._show_models()
        if areas.LOGS in dirty:
            self.log_view.sync()
            self.shown["logs"] = self.log_view.line_count
            self.log_status.refresh()
        if areas.TIMELINE in dirty:
            self._show_timeline()
        if areas.MATRIX in dirty:
            self._show_matrix()
        if areas.EXPLAIN in dirty or areas.MATRIX in dirty:
            self._show_explain()
        if areas.ACTIVITY in dirty:
            # Rebuilt only while on screen: a busy daemon finishes many requests a second.
            if self.current_view == "activity":
                self._show_activity()
            else:
                self._activity_stale = True
        self._show_filter_bar()
        self._update_target()
        detail = self._open_detail()
        if detail is not None:
            detail.update()

    def _show_connection(self) -> None:
        """Grey the views out while the data is not live; say when it is again."""
        conn = self.state.connection
        self.tabs.set_class(not self.state.online, "-offline")
        back = conn.reconnected_at
        if back is not None and back != self._reconnected_at:
            self._reconnected_at = back
            self.notify(f"reconnected to {conn.target}", timeout=4)

    def _show_models(self) -> None:
        table = self.models_table
        rows = model_rows(self.state, self.filters["models"], self.sorts["models"])
        self.shown["models"] = len(rows)
        table.show(rows)
        self.legend.update(legend_text(self.state.legend))
        if self.selected_model is None or self.selected_model not in self.state.models:
            # Gone (a reload removed it): the selection moves to a row that exists.
            self.selected_model = table.selected_model
            self.state.touch(areas.EXPLAIN)
            if self.current_view == "matrix":
                self._ask_explain()
        self._show_model_note()

    def _show_model_note(self) -> None:
        """How the selected model last failed, if it did; nothing (no line) otherwise."""
        model = self.models_table.selected_model
        note = model_note(self.state.models.get(model) if model else None, self.state.clock())
        self.model_note.display = note is not None
        if note is not None:
            self.model_note.update(note)

    def _show_timeline(self) -> None:
        show_routine = self.timeline.show_routine
        rows, hidden = timeline_rows(
            self.state.timeline,
            self.filters["swaps"],
            show_routine=show_routine,
            order=self.sorts["swaps"],
        )
        self.shown["swaps"] = len(rows)
        self.timeline.show(rows)
        self.timeline_status.update(timeline_status(len(rows), hidden, show_routine))

    @on(TimelineTable.RoutineToggled)
    def _routine_toggled(self) -> None:
        self._show_timeline()
        self._show_filter_bar()

    def _show_matrix(self) -> None:
        needle = self.filters["matrix"]
        self.shown["matrix"] = matrix_matches(self.state.routing, needle)
        self.matrix_sets.update(
            matrix_renderable(self.state.routing, self.state.running(), filter_text=needle)
        )

    def _show_activity(self) -> None:
        """Rebuild the activity table now, or (shown less than ACTIVITY_REPAINT ago) once,
        when that much time has passed: a busy daemon finishes many requests a second."""
        wait = self._activity_shown + ACTIVITY_REPAINT - time.monotonic()
        if wait > 0:
            if self._activity_timer is None:
                self._activity_timer = self.set_timer(wait, self._show_activity_now)
            return
        self._show_activity_now()

    def _show_activity_now(self) -> None:
        self._activity_timer = None
        self._activity_stale = False
        self._activity_shown = time.monotonic()
        self.activity_rebuilds += 1
        records = self.state.activity()
        rows, matched = activity_rows(
            records, self.filters["activity"], self.outcome, self.sorts["activity"]
        )
        self.shown["activity"] = matched
        self.activity_table.show(rows)
        self.activity_status.update(
            activity.status_text(matched, len(records), self.outcome, self.state.activity_note)
        )
        self._show_filter_bar()
        self._update_target()

    @on(ActivityTable.OutcomeCycled)
    def _outcome_cycled(self) -> None:
        self.outcome = next_outcome(self.outcome)
        self._show_activity_now()

    @on(DataTable.RowSelected, "#activity-table")
    def _record_chosen(self) -> None:
        """Enter on a request: its whole record, and its capture once fetched."""
        record = self.activity_table.selected_record
        if record is None:
            return
        state = self.state
        model = record.model if record.model in state.models else None
        self.push_screen(
            DetailScreen(
                f"request #{record.id}",
                lambda: record_detail(record, state.captures.get(record.id)),
                model=model,
            )
        )
        if not isinstance(state.captures.get(record.id), p.Capture):
            self._capture(record.id)

    @work(group="capture", exclusive=True, exit_on_error=False)
    async def _capture(self, request_id: int) -> None:
        await self.source.capture(request_id)

    def _show_explain(self) -> None:
        model = self.selected_model
        explanation = self.state.explain.get(model) if model else None
        self.explain.update(explain_renderable(model, explanation))

    def _show_filter_bar(self) -> None:
        view = self.current_view
        sort = ""
        if view in SORTABLE:
            sort = self.sorts[view].describe(SORTABLE[view][1])
        text = filter_bar_text(
            self.filters.get(view, ""),
            self.shown.get(view),
            sort,
            not self.state.online,
            self.outcome if view == "activity" else None,
        )
        self.filter_bar.display = text is not None
        if text is not None:
            self.filter_bar.update(text)

    # -- views and selection --------------------------------------------------

    @property
    def current_view(self) -> str:
        return self.tabs.active or "models"

    def action_view(self, view: str) -> None:
        self.tabs.active = view

    @on(TabbedContent.TabActivated)
    def _view_changed(self, event: TabbedContent.TabActivated) -> None:
        self._focus_view()
        if event.pane.id == "matrix":
            self._ask_explain()
        if event.pane.id == "activity" and self._activity_stale:
            self._show_activity_now()
        self._show_filter_bar()
        self._update_target()

    @on(DataTable.RowHighlighted, "#models-table")
    def _model_highlighted(self, event: DataTable.RowHighlighted) -> None:
        model = event.row_key.value
        if model and model != self.selected_model:
            self.selected_model = model
            self._show_model_note()
            self.state.touch(areas.EXPLAIN)
            self.changed()
        self._update_target()

    @on(DataTable.RowHighlighted, "#timeline")
    @on(DataTable.RowHighlighted, "#activity-table")
    def _row_highlighted(self) -> None:
        self._update_target()

    @on(DataTable.RowSelected, "#models-table")
    def _model_chosen(self, event: DataTable.RowSelected) -> None:
        """Enter on a model: its log."""
        model = event.row_key.value
        if model:
            self.selected_model = model
            self.action_view("logs")
            self.show_log_source(model)

    @on(DataTable.RowSelected, "#timeline")
    def _swap_chosen(self) -> None:
        """Enter on a swap: everything known about it."""
        entry = self.timeline.selected_entry
        if entry is None:
            return
        state = self.state

        def render() -> RenderableType:
            related = state.swap_decisions(entry.swap_id) if entry.swap_id is not None else []
            current = next(
                (e for e in state.timeline if e.swap_id is not None and e.swap_id == entry.swap_id),
                entry,
            )
            return entry_detail(current, related)

        self.push_screen(DetailScreen(f"{entry.action} {entry.target}", render))

    def _ask_explain(self) -> None:
        if self.selected_model is not None:
            self._explain(self.selected_model)

    @work(group="explain", exclusive=True, exit_on_error=False)
    async def _explain(self, model: str) -> None:
        await self.source.explain(model)

    def view_target(self) -> str | None:
        """The model the current view shows, which `l`, `u` and `d` act on."""
        detail = self._open_detail()
        if detail is not None:
            return detail.model
        view = self.current_view
        if view == "models":
            return self.models_table.selected_model
        if view == "logs":
            source = self.log_view.filter.source
            return source if source is not None and source in self.state.models else None
        if view == "swaps":
            entry = self.timeline.selected_entry
            return entry.target if entry is not None else None
        if view == "activity":
            record = self.activity_table.selected_record
            model = record.model if record is not None else None
            return model if model is not None and model in self.state.models else None
        return self.selected_model

    def action_detail(self) -> None:
        """The detail pane of the view's model (live while open)."""
        model = self.view_target()
        if model is None:
            self.notify(f"no model in the {self.current_view} view", severity="warning")
            return
        state = self.state
        self.push_screen(
            DetailScreen(f"model {model}", lambda: model_detail(state, model), model=model)
        )

    def _open_detail(self) -> DetailScreen | None:
        """The detail screen on top, if one is (none at all while the app shuts down)."""
        stack = self.screen_stack
        top = stack[-1] if stack else None
        return top if isinstance(top, DetailScreen) else None

    def _update_target(self) -> None:
        target = self.view_target()
        if target != self._target:
            self._target = target
            self.refresh_bindings()

    # -- actions on the daemon -------------------------------------------------

    def action_load(self) -> None:
        model = self.view_target()
        if model is None:
            self.notify(f"no model in the {self.current_view} view", severity="warning")
            return
        self.notify(f"loading {model}…")
        self._act("load", model)

    def action_unload(self) -> None:
        """Unload the view's model; if it is serving, ask whether to wait or cut first."""
        model = self.view_target()
        if model is None:
            self.notify(f"no model in the {self.current_view} view", severity="warning")
            return
        row = self.state.models.get(model)
        in_flight = row.in_flight if row is not None else 0
        if not in_flight:
            self._act("unload", model)
            return

        def answered(choice: UnloadChoice | None) -> None:
            if choice == "wait":
                self.notify(f"unloading {model} once its requests in flight are done…")
                self._act("unload", model)
            elif choice == "now":
                self._act("unload", model, now=True)

        self.push_screen(UnloadScreen(model, in_flight), answered)

    def action_unload_all(self) -> None:
        running = self.state.running()
        question = (
            f"Unload every model? Running now: {', '.join(running)}."
            if running
            else "Unload every model? (none is running)"
        )

        def answered(yes: bool | None) -> None:
            if yes:
                self._act("unload_all", None)

        self.push_screen(ConfirmScreen(question), answered)

    def action_reload(self) -> None:
        self.notify("reloading the config…")
        self._act("reload", None)

    @work(group="actions", exit_on_error=False)
    async def _act(self, action: str, model: str | None, *, now: bool = False) -> None:
        verdict = await self._call(action, model, now=now)
        self.state.set_verdict(verdict)
        if action == "reload":
            self.push_screen(VerdictScreen(verdict))
        else:
            calm = verdict.ok and not verdict.warnings
            self.notify(
                "\n".join((verdict.message or action, *verdict.warnings)),
                severity="error" if not verdict.ok else "information" if calm else "warning",
                timeout=4 if calm else 10,
            )
        if action in ("load", "unload", "unload_all") and self.current_view == "matrix":
            self._ask_explain()

    async def _call(self, action: str, model: str | None, *, now: bool = False) -> Verdict:
        try:
            if action == "load" and model is not None:
                return await self.source.load(model)
            if action == "unload" and model is not None:
                return await self.source.unload([model], now=now)
            if action == "unload_all":
                return await self.source.unload(None)
            return await self.source.reload()
        except Exception as exc:  # a source must not raise, but never let it kill the UI
            return Verdict(action=action, ok=False, message=f"{type(exc).__name__}: {exc}")

    # -- sorting --------------------------------------------------------------

    def action_sort(self) -> None:
        view = self.current_view
        if view in SORTABLE:
            self._set_sort(view, self.sorts[view].cycle(SORTABLE[view][0]))

    def action_sort_flip(self) -> None:
        view = self.current_view
        if view in SORTABLE:
            self._set_sort(view, self.sorts[view].flipped())

    @on(DataTable.HeaderSelected)
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        view = self.current_view
        if view in SORTABLE and event.column_key.value is not None:
            self._set_sort(view, self.sorts[view].by(event.column_key.value))

    def _set_sort(self, view: str, order: SortOrder) -> None:
        self.sorts[view] = order
        if view == "activity":
            self._show_activity_now()  # the reader's own action: at once
            return
        self.state.touch(areas.MODELS if view == "models" else areas.TIMELINE)
        self.flush()

    # -- filtering ------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.filter_box
        view = self.current_view
        box.placeholder = "search the log…" if view == "logs" else f"filter {view}…"
        box.value = self.filters[view]
        box.cursor_position = len(box.value)
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._apply_filter(self.current_view, event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self._close_filter()

    def action_clear_filter(self) -> None:
        box = self.filter_box
        if box.display:
            box.value = ""
            self._close_filter()
        elif self.filters[self.current_view]:
            self._apply_filter(self.current_view, "")

    def _close_filter(self) -> None:
        self.filter_box.display = False
        self._focus_view()

    def _focus_view(self) -> None:
        """Keys go to the current view's main widget (the matrix view has none)."""
        focus = {
            "models": self.models_table,
            "logs": self.log_view,
            "swaps": self.timeline,
            "activity": self.activity_table,
        }.get(self.current_view)
        if focus is not None:
            focus.focus()

    def _apply_filter(self, view: str, text: str) -> None:
        self.filters[view] = text
        if view == "logs":
            log = self.log_view
            log.set_filter(LogFilter(source=log.filter.source, text=text))
            self.shown["logs"] = log.line_count
            self.log_status.refresh()
            self._show_filter_bar()
            return
        if view == "activity":
            self._show_activity_now()
            self._show_filter_bar()
            return
        self.state.touch({"models": areas.MODELS, "swaps": areas.TIMELINE}.get(view, areas.MATRIX))
        self.flush()
        self._show_filter_bar()

    # -- log sources ----------------------------------------------------------

    def log_sources(self) -> list[str | None]:
        """All (None), the proxy log, then every model's log."""
        models = sorted(set(self.state.models) | set(self.state.logs.sources()) - {PROXY_SOURCE})
        return [None, PROXY_SOURCE, *models]

    def show_log_source(self, source: str | None) -> None:
        log = self.log_view
        log.set_filter(LogFilter(source=source, text=log.filter.text))
        self.shown["logs"] = log.line_count
        self.log_status.refresh()
        self._show_filter_bar()
        self._update_target()

    def action_next_source(self) -> None:
        if self.current_view != "logs":
            return
        sources = self.log_sources()
        current = self.log_view.filter.source
        index = sources.index(current) if current in sources else 0
        self.show_log_source(sources[(index + 1) % len(sources)])

    def action_selected_source(self) -> None:
        if self.current_view == "logs" and self.selected_model is not None:
            self.show_log_source(self.selected_model)

    # -- help -----------------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.state.legend))
