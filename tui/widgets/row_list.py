"""Helpers shared by the Line-API lists (the quote board, the strategies list): one
header line, then one line per row."""

from __future__ import annotations

from textual.scroll_view import ScrollView


def scroll_row_into_view(view: ScrollView, row: int) -> None:
    """Scroll `view` the least that shows `row` under its header line."""
    visible_rows = max(1, view.size.height - 1)
    top = view.scroll_offset.y
    if row < top:
        view.scroll_to(y=row, animate=False)
    elif row >= top + visible_rows:
        view.scroll_to(y=row - visible_rows + 1, animate=False)
