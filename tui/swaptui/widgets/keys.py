"""Keys every table shares: vi-style moves, Home/End to the first/last row, sorting."""

from __future__ import annotations

from textual.binding import Binding, BindingType

TABLE_KEYS: list[BindingType] = [
    Binding("j", "cursor_down", "Down", show=False),
    Binding("k", "cursor_up", "Up", show=False),
    Binding("g,home", "scroll_top", "First", show=False),
    Binding("G,end", "scroll_bottom", "Last", show=False),
]
"""For a row-cursor DataTable: its own Home/End move across columns, which a row
cursor has none of."""
