"""The swaptui application: four views over one `DashboardState`.

The source (the daemon connection, or a test fake) writes into the state and
calls `changed()`. The app never repaints per event: `changed()` arms one
short timer, and when it fires `flush()` takes the dirty areas and updates
only those widgets. Actions (load, unload, reload, explain) run as workers so
the UI never waits on the daemon, and their verdicts are shown, not raised.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static, TabbedContent, TabPane

from swaptui import state as areas
from swaptui.screens.confirm import ConfirmScreen
from swaptui.screens.help import HelpScreen
from swaptui.screens.unload import UnloadChoice, UnloadScreen
from swaptui.screens.verdict import VerdictScreen
from swaptui.source import Source
from swaptui.state import PROXY_SOURCE, DashboardState, LogFilter, Verdict
from swaptui.widgets.header import DaemonHeader
from swaptui.widgets.log_view import LogStatus, LogView
from swaptui.widgets.matrix_view import explain_renderable, matrix_renderable
from swaptui.widgets.models_table import ModelsTable, legend_text, model_note, model_rows
from swaptui.widgets.timeline import TimelineTable, timeline_rows
from swaptui.widgets.timeline import status_text as timeline_status

VIEWS: tuple[str, ...] = ("models", "logs", "swaps", "matrix")


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
        Binding("l", "load", "Load"),
        Binding("u", "unload", "Unload"),
        Binding("U", "unload_all", "Unload all"),
        Binding("r", "reload", "Reload"),
        Binding("slash", "filter", "Filter"),
        Binding("m", "next_source", "Source", show=False),
        Binding("s", "selected_source", "Model log", show=False),
        Binding("escape", "clear_filter", "Clear", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
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
        self.selected_model: str | None = None
        self.flushes = 0
        self._flush_timer: Timer | None = None
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
        self.tabs = TabbedContent(initial="models", id="views")
        self.filter_box = Input(placeholder="filter…", id="filter")

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
        yield self.filter_box
        yield Footer()

    def on_mount(self) -> None:
        self.filter_box.display = False
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
        if areas.HEADER in dirty:
            self.header.refresh()
        if areas.MODELS in dirty:
            self._show_models()
        if areas.LOGS in dirty:
            view = self.log_view
            view.sync()
            self.log_status.refresh()
        if areas.TIMELINE in dirty:
            self._show_timeline()
        if areas.MATRIX in dirty:
            self._show_matrix()
        if areas.EXPLAIN in dirty or areas.MATRIX in dirty:
            self._show_explain()

    def _show_models(self) -> None:
        table = self.models_table
        table.show(model_rows(self.state, self.filters["models"]))
        self.legend.update(legend_text(self.state.legend))
        if self.selected_model is None:
            self.selected_model = table.selected_model
        self._show_model_note()

    def _show_model_note(self) -> None:
        """How the selected model last failed, if it did; nothing (no line) otherwise."""
        model = self.selected_model
        note = model_note(self.state.models.get(model) if model else None, self.state.clock())
        self.model_note.display = note is not None
        if note is not None:
            self.model_note.update(note)

    def _show_timeline(self) -> None:
        show_routine = self.timeline.show_routine
        rows, hidden = timeline_rows(
            self.state.timeline, self.filters["swaps"], show_routine=show_routine
        )
        self.timeline.show(rows)
        self.timeline_status.update(timeline_status(len(rows), hidden, show_routine))

    @on(TimelineTable.RoutineToggled)
    def _routine_toggled(self) -> None:
        self._show_timeline()

    def _show_matrix(self) -> None:
        self.matrix_sets.update(
            matrix_renderable(
                self.state.routing, self.state.running(), filter_text=self.filters["matrix"]
            )
        )

    def _show_explain(self) -> None:
        model = self.selected_model
        explanation = self.state.explain.get(model) if model else None
        self.explain.update(explain_renderable(model, explanation))

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

    @on(DataTable.RowHighlighted, "#models-table")
    def _model_highlighted(self, event: DataTable.RowHighlighted) -> None:
        model = event.row_key.value
        if model and model != self.selected_model:
            self.selected_model = model
            self._show_model_note()
            self.state.touch(areas.EXPLAIN)
            self.changed()

    @on(DataTable.RowSelected, "#models-table")
    def _model_chosen(self, event: DataTable.RowSelected) -> None:
        """Enter on a model: its log."""
        model = event.row_key.value
        if model:
            self.selected_model = model
            self.action_view("logs")
            self.show_log_source(model)

    def _ask_explain(self) -> None:
        if self.selected_model is not None:
            self._explain(self.selected_model)

    @work(group="explain", exclusive=True, exit_on_error=False)
    async def _explain(self, model: str) -> None:
        await self.source.explain(model)

    # -- actions on the daemon -------------------------------------------------

    def action_load(self) -> None:
        if self.selected_model is None:
            self.notify("no model selected", severity="warning")
            return
        self.notify(f"loading {self.selected_model}…")
        self._act("load", self.selected_model)

    def action_unload(self) -> None:
        """Unload the selected model; if it is serving, ask whether to wait or cut first."""
        model = self.selected_model
        if model is None:
            self.notify("no model selected", severity="warning")
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

    # -- filtering ------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.filter_box
        view = self.current_view
        box.placeholder = "search the log…" if view == "logs" else f"filter {view}…"
        box.value = self.filters[view]
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
        }.get(self.current_view)
        if focus is not None:
            focus.focus()

    def _apply_filter(self, view: str, text: str) -> None:
        self.filters[view] = text
        if view == "logs":
            log = self.log_view
            log.set_filter(LogFilter(source=log.filter.source, text=text))
            self.log_status.refresh()
            return
        self.state.touch({"models": areas.MODELS, "swaps": areas.TIMELINE}.get(view, areas.MATRIX))
        self.flush()

    # -- log sources ----------------------------------------------------------

    def log_sources(self) -> list[str | None]:
        """All (None), the proxy log, then every model's log."""
        models = sorted(set(self.state.models) | set(self.state.logs.sources()) - {PROXY_SOURCE})
        return [None, PROXY_SOURCE, *models]

    def show_log_source(self, source: str | None) -> None:
        log = self.log_view
        log.set_filter(LogFilter(source=source, text=log.filter.text))
        self.log_status.refresh()

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
