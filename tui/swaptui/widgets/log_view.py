"""The log pane: renders only the lines on screen, whatever the buffer holds.

In the manner of toolong's `LogLines`: the widget is a `ScrollView` with a
virtual height of one row per matching line, and `render_line(y)` formats the
one line at that row on demand (with a small cache). New lines are taken
from the shared `LogBuffer` in batches on the app's repaint tick, so 10k
lines arriving in a burst cost one filter pass and one repaint, not 10k
widget updates.

- follow: stay at the bottom as lines arrive; scrolling up stops following,
  `End` (or `f`) resumes.
- pause: freeze the view; lines keep arriving in the buffer and are counted,
  and appear on resume.
- filter: one source (a model or the proxy log) and/or a substring, whose
  matches are highlighted.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterable
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollTo, ScrollUp
from textual.strip import Strip
from textual.widget import Widget

from swaptui.state import PROXY_SOURCE, LogBuffer, LogFilter, LogLine

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
SOURCE_WIDTH = 12
TIME_STYLE = Style(dim=True)
PROXY_STYLE = Style(color="cyan")
SOURCE_STYLE = Style(color="blue", bold=True)
MATCH_STYLE = Style(reverse=True, color="yellow")


def clean(text: str) -> str:
    """Drop ANSI escapes and control characters, expand tabs: one terminal row per line."""
    # Escapes first: they take no columns, so they must not shift the tab stops.
    return _CONTROL.sub("", _ANSI.sub("", text).expandtabs(4))


def format_clock(when: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(when))


def line_segments(line: LogLine, search: str, show_source: bool) -> list[Segment]:
    """The segments of one row: time, source (when several are shown), text with matches marked."""
    segments = [Segment(format_clock(line.time) + " ", TIME_STYLE)]
    if show_source:
        name = line.source[:SOURCE_WIDTH].ljust(SOURCE_WIDTH)
        style = PROXY_STYLE if line.source == PROXY_SOURCE else SOURCE_STYLE
        segments.append(Segment(name + " ", style))
    text = clean(line.text)
    if not search:
        segments.append(Segment(text))
        return segments
    folded, needle = text.casefold(), search.casefold()
    start = 0
    while (hit := folded.find(needle, start)) >= 0:
        if hit > start:
            segments.append(Segment(text[start:hit]))
        segments.append(Segment(text[hit : hit + len(needle)], MATCH_STYLE))
        start = hit + len(needle)
    if start < len(text):
        segments.append(Segment(text[start:]))
    return segments


class LogView(ScrollView, can_focus=True):
    """The visible window onto the matching lines of a `LogBuffer`."""

    DEFAULT_CSS = """
    LogView {
        background: $surface;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "follow", "Follow"),
        Binding("p", "pause", "Pause"),
        Binding("j", "scroll_down", "Down", show=False),
        Binding("k", "scroll_up", "Up", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
    ]

    follow: reactive[bool] = reactive(True)
    paused: reactive[bool] = reactive(False)

    def __init__(self, buffer: LogBuffer, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.buffer = buffer
        self.filter = LogFilter()
        self._lines: deque[LogLine] = deque(maxlen=buffer.max_lines)
        self._seen = 0
        self._width = 0
        self._cache: LRUCache[tuple[int, int], Strip] = LRUCache(1024)
        self._programmatic_scroll = False

    # -- data --------------------------------------------------------------

    @property
    def line_count(self) -> int:
        return len(self._lines)

    @property
    def pending(self) -> int:
        """Lines that arrived while paused and are not shown yet."""
        return max(0, self.buffer.appended - self._seen)

    def visible_lines(self) -> list[LogLine]:
        """The lines currently on screen (for tests and the status bar)."""
        top = self.scroll_offset.y
        return [self._lines[i] for i in range(top, min(top + self.size.height, len(self._lines)))]

    def sync(self) -> None:
        """Take the lines added to the buffer since the last sync (unless paused)."""
        if self.paused:
            return
        new = self.buffer.since(self._seen)
        self._seen = self.buffer.appended
        if not new:
            return
        matched = [line for line in new if self.filter.matches(line)]
        if not matched:
            return
        dropped = max(0, len(self._lines) + len(matched) - self.buffer.max_lines)
        self._lines.extend(matched)
        self._grow_width(matched)
        self._update_virtual_size()
        if self.follow:
            self._scroll_to_end()
        elif dropped:
            # Old lines fell off the top: keep the same lines under the reader's eyes.
            self._scroll_to_y(max(0, self.scroll_offset.y - dropped))
        self.refresh()

    def set_filter(self, log_filter: LogFilter) -> None:
        """Show only lines matching `log_filter`, re-reading the whole buffer."""
        self.filter = log_filter
        if not self.paused:
            self._seen = self.buffer.appended
        lines = [line for line in self.buffer.since(0) if line.seq < self._seen]
        self._lines = deque(
            (line for line in lines if log_filter.matches(line)), maxlen=self.buffer.max_lines
        )
        self._width = 0
        self._grow_width(self._lines)
        self._cache.clear()
        self._update_virtual_size()
        if self.follow:
            self._scroll_to_end()
        self.refresh()

    def _grow_width(self, lines: Iterable[LogLine]) -> None:
        prefix = 9 + (SOURCE_WIDTH + 1 if self.filter.source is None else 0)
        widest = max((len(line.text) for line in lines), default=0)
        self._width = max(self._width, prefix + widest)

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self._width, len(self._lines))

    def _scroll_to_end(self) -> None:
        # Deferred until after the next refresh: the new virtual size must be laid out
        # first, or the scroll is clamped to the old end (or to 0 while hidden).
        self.scroll_end(animate=False, x_axis=False)

    def _scroll_to_y(self, y: int) -> None:
        self._programmatic_scroll = True
        try:
            self.scroll_to(y=y, animate=False, immediate=True)
        finally:
            self._programmatic_scroll = False

    # -- rendering -----------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        if y == 0 and self.follow and scroll_y < self.max_scroll_y:
            # Following, yet painted above the end: a scroll to the end was taken before
            # a layout that moved the end (a pane shown, a burst laid out over several
            # refreshes). Go there again, once this paint is done.
            self.call_after_refresh(self._follow_after_layout)
        index = scroll_y + y
        width = self.scrollable_content_region.width
        if index >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        line = self._lines[index]
        key = (line.seq, hash((self.filter.text, self.filter.source is None)))
        strip = self._cache.get(key)
        if strip is None:
            segments = line_segments(line, self.filter.text, self.filter.source is None)
            strip = Strip(segments)
            self._cache[key] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style).apply_style(
            self.rich_style
        )

    # -- follow and pause ----------------------------------------------------

    def on_show(self) -> None:
        # Lines that arrived while the pane was hidden could not be scrolled to then.
        # The pane may be laid out over more than one refresh after it is shown, and
        # a scroll taken before its final size is clamped: scroll again after that.
        if self.follow:
            self._scroll_to_end()
            self.call_after_refresh(self._follow_after_layout)

    def _follow_after_layout(self) -> None:
        if self.follow:
            self._scroll_to_end()

    def on_resize(self) -> None:
        if self.follow:
            self._scroll_to_end()

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if not self._programmatic_scroll and round(new) >= self.max_scroll_y:
            self.follow = True  # back at the bottom: follow again

    # Only the reader's own scrolling stops following. Scroll positions also
    # change through layout (a pane shown, resized, a burst laid out over
    # several refreshes); deriving "follow" from those left a following view
    # stuck above the newest lines.

    def _stop_following(self) -> None:
        # The scroll itself may land after a refresh: decide on the intent.
        if self.max_scroll_y > 0:
            self.follow = False

    def action_scroll_up(self) -> None:
        super().action_scroll_up()
        self._stop_following()

    def action_page_up(self) -> None:
        super().action_page_up()
        self._stop_following()

    def action_scroll_home(self) -> None:
        super().action_scroll_home()
        self._stop_following()

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        super()._on_mouse_scroll_up(event)
        self._stop_following()

    def _on_scroll_up(self, event: ScrollUp) -> None:
        super()._on_scroll_up(event)
        self._stop_following()

    def _on_scroll_to(self, message: ScrollTo) -> None:
        super()._on_scroll_to(message)
        if message.y is not None and round(message.y) < self.max_scroll_y:
            self.follow = False

    def action_follow(self) -> None:
        self.follow = True
        self.paused = False
        self.sync()
        self._scroll_to_end()

    def action_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self.sync()

    def action_scroll_end(self) -> None:
        self.action_follow()


def status_text(view: LogView, sources: list[str]) -> Text:
    """The line above the log: what is shown, and whether it follows or is paused."""
    f = view.filter
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("source ", style="dim")
    text.append(f.source or "all", style="bold")
    if f.text:
        text.append("  search ", style="dim")
        text.append(f.text, style=MATCH_STYLE)
    text.append(f"  {view.line_count:,} lines", style="dim")
    if view.paused:
        text.append(f"  ⏸ paused (+{view.pending:,} new)", style="bold yellow")
    elif view.follow:
        text.append("  ▼ following", style="green")
    else:
        text.append("  scrolled (End to follow)", style="yellow")
    if len(sources) > 1:
        text.append(f"  m: {len(sources) + 1} sources", style="dim")
    return text


class LogStatus(Widget):
    DEFAULT_CSS = """
    LogStatus {
        height: 1;
        background: $boost;
    }
    """

    def __init__(self, view: LogView, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = view

    def on_mount(self) -> None:
        # `p` and `f` must show their new state at once, not on the next log line.
        self.watch(self.view, "paused", self._changed, init=False)
        self.watch(self.view, "follow", self._changed, init=False)

    def _changed(self) -> None:
        self.refresh()

    def render(self) -> Text:
        return status_text(self.view, self.view.buffer.sources())
