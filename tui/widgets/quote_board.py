"""The quote board: a Line-API widget with a per-row render cache.

DataTable re-renders every visible row on any cell update; this board re-renders only
the rows whose quote changed (`refresh_line`), and builds a row's `Strip` once per change
of its data, width, cursor, flash or theme.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from core.model import Bar
from core.state import QuoteRow
from tui import format as fmt
from tui.widgets.row_list import scroll_row_into_view


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    width: int
    priority: int  # lower survives longer when the board is narrow
    right: bool = True
    sort_key: Callable[[QuoteRow], float | str] | None = None


def _nan_last(value: float) -> float:
    return -math.inf if math.isnan(value) else value


COLUMNS: tuple[Column, ...] = (
    Column("symbol", "Symbol", 7, 0, right=False, sort_key=lambda r: r.symbol),
    Column("last", "Last", 10, 0, sort_key=lambda r: _nan_last(r.last)),
    Column("change", "Chg", 8, 1, sort_key=lambda r: _nan_last(r.change)),
    Column("pct_change", "%Chg", 8, 0, sort_key=lambda r: _nan_last(r.pct_change)),
    Column("bid", "Bid", 10, 2, sort_key=lambda r: _nan_last(r.bid)),
    Column("ask", "Ask", 10, 2, sort_key=lambda r: _nan_last(r.ask)),
    Column("volume", "Volume", 8, 1, sort_key=lambda r: _nan_last(r.volume)),
    Column("range", "Day range", 16, 3, sort_key=lambda r: _nan_last(r.day_high - r.day_low)),
    Column("spark", "Session", 0, 4, right=False),
)
SPARK_MIN_WIDTH = 8
SORTABLE = tuple(c.key for c in COLUMNS if c.sort_key is not None)


class QuoteBoard(ScrollView, can_focus=True):
    """Rows of quotes for one watchlist, a fixed header, a cursor row."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="board.up"),
        Binding("down,j", "cursor(1)", "Down", show=False, id="board.down"),
        Binding("pageup", "cursor(-10)", "Page up", show=False, id="board.page_up"),
        Binding("pagedown", "cursor(10)", "Page down", show=False, id="board.page_down"),
        Binding("home", "cursor_to(0)", "First", show=False, id="board.first"),
        Binding("end", "cursor_to(-1)", "Last", show=False, id="board.last"),
        Binding("o", "cycle_sort", "Sort", id="board.sort"),
        Binding("O", "reverse_sort", "Reverse sort", show=False, id="board.sort_reverse"),
    ]

    COMPONENT_CLASSES = {
        "quote-board--header",
        "quote-board--sorted",
        "quote-board--up",
        "quote-board--down",
        "quote-board--bid",
        "quote-board--ask",
        "quote-board--flash-up",
        "quote-board--flash-down",
        "quote-board--stale",
        "quote-board--cursor",
        "quote-board--muted",
        "quote-board--symbol",
    }

    cursor = reactive(0, init=False)

    class Selected(Message):
        """The cursor moved to another symbol."""

        def __init__(self, symbol: str | None) -> None:
            super().__init__()
            self.symbol = symbol

    class SortChanged(Message):
        def __init__(self, column: str | None, reverse: bool) -> None:
            super().__init__()
            self.column = column
            self.reverse = reverse

    def __init__(self, *, flash_ms: int = 600, id: str | None = None) -> None:
        super().__init__(id=id)
        self.flash_s = flash_ms / 1000
        self.rows: dict[str, QuoteRow] = {}
        self.sparks: dict[str, list[float]] = {}
        self._symbols: list[str] = []  # the watchlist's own order
        self._order: list[str] = []  # as displayed (sorted or not)
        self._index: dict[str, int] = {}
        self.sort_column: str | None = None
        self.sort_reverse = True
        self._flash_until: dict[str, float] = {}
        self._cache: dict[str, tuple[tuple[object, ...], Strip]] = {}
        self._styles: dict[str, Style] | None = None
        self._combined: dict[tuple[str, ...], Style] = {}
        self._spark_cache: dict[str, tuple[tuple[int, int], str]] = {}
        self._columns: list[tuple[Column, int]] = []
        self._layout_width = -1
        # Monotonic time each symbol's newest quote was received: the benchmark's
        # tick-to-screen probe compares it with the time the row was drawn.
        self.received_at: dict[str, float] = {}
        self.render_probe: Callable[[str, float], None] | None = None

    # ------------------------------------------------------------------ data in

    @property
    def symbols(self) -> list[str]:
        return list(self._order)

    @property
    def selected_symbol(self) -> str | None:
        if 0 <= self.cursor < len(self._order):
            return self._order[self.cursor]
        return None

    def set_symbols(self, symbols: Sequence[str], keep: str | None = None) -> None:
        """Show a watchlist; keep the cursor on `keep` (or the current symbol)."""
        keep = keep or self.selected_symbol
        self._symbols = list(symbols)
        self._reorder()
        if keep in self._index:
            self.cursor = self._index[keep]
        else:
            self.cursor = min(self.cursor, max(0, len(self._order) - 1))
        self.virtual_size = Size(self.size.width, len(self._order) + 1)
        self._cache.clear()
        self.refresh()
        self.post_message(self.Selected(self.selected_symbol))

    def update_rows(self, rows: Iterable[QuoteRow]) -> None:
        """New quotes: redraw only the visible rows that changed."""
        now = time.monotonic()
        changed = []
        for row in rows:
            previous = self.rows.get(row.symbol)
            self.rows[row.symbol] = row
            self.received_at[row.symbol] = now
            if previous is not None and row.tick_seq != previous.tick_seq and row.tick:
                self._flash_until[row.symbol] = now + self.flash_s
            if row.symbol in self._index:
                changed.append(row.symbol)
        if not changed:
            return
        if self.sort_column is not None and self._reorder():
            self.refresh()
            return
        self._refresh_symbols(changed)

    def add_bars(self, bars: Iterable[Bar]) -> None:
        """Completed (or in-progress) minute bars feed the session sparkline."""
        touched = set()
        for bar in bars:
            closes = self.sparks.setdefault(bar.symbol, [])
            closes.append(bar.close)
            touched.add(bar.symbol)
        self._refresh_symbols(touched)

    def set_session_bars(self, bars: dict[str, list[Bar]]) -> None:
        self.sparks = {symbol: [b.close for b in series] for symbol, series in bars.items()}
        self._spark_cache.clear()
        self._cache.clear()
        self.refresh()

    def expire_flashes(self) -> None:
        now = time.monotonic()
        expired = [s for s, until in self._flash_until.items() if until <= now]
        for symbol in expired:
            del self._flash_until[symbol]
        self._refresh_symbols(expired)

    def theme_changed(self) -> None:
        self._styles = None
        self._combined.clear()
        self._cache.clear()
        self.refresh()

    def _refresh_symbols(self, symbols: Iterable[str]) -> None:
        """Redraw the rows of `symbols` that are on screen. Called with every symbol of a
        pull (hundreds), so the visible window is computed once, and a mostly changed
        screen is refreshed as one region instead of a line at a time."""
        top = self.scroll_offset.y
        visible_rows = self.size.height - 1  # below the header
        lines = []
        index_of = self._index
        for symbol in symbols:
            index = index_of.get(symbol)
            if index is not None and 0 <= index - top < visible_rows:
                lines.append(index - top + 1)
        if len(lines) * 2 > visible_rows:
            self.refresh()
        else:
            for y in lines:
                self.refresh_line(y)

    def _reorder(self) -> bool:
        """Recompute the displayed order; True if it changed."""
        order = list(self._symbols)
        column = next((c for c in COLUMNS if c.key == self.sort_column), None)
        if column is not None and column.sort_key is not None:
            key = column.sort_key
            present = [s for s in order if s in self.rows]
            absent = [s for s in order if s not in self.rows]
            present.sort(key=lambda s: key(self.rows[s]), reverse=self.sort_reverse)
            order = present + absent
        if order == self._order:
            return False
        selected = self.selected_symbol
        self._order = order
        self._index = {symbol: i for i, symbol in enumerate(order)}
        if selected in self._index and self.is_mounted:
            self.set_reactive(QuoteBoard.cursor, self._index[selected])
        return True

    # ------------------------------------------------------------------ actions

    def action_cursor(self, delta: int) -> None:
        if self._order:
            self.cursor = max(0, min(len(self._order) - 1, self.cursor + delta))

    def action_cursor_to(self, index: int) -> None:
        if self._order:
            self.cursor = index % len(self._order)

    def action_cycle_sort(self) -> None:
        keys: list[str | None] = [None, *SORTABLE]
        self.sort_by(keys[(keys.index(self.sort_column) + 1) % len(keys)])

    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._apply_sort()

    def sort_by(self, column: str | None, reverse: bool | None = None) -> None:
        if column is not None and column not in SORTABLE:
            raise ValueError(f"cannot sort by {column!r}")
        self.sort_column = column
        if reverse is not None:
            self.sort_reverse = reverse
        self._apply_sort()

    def _apply_sort(self) -> None:
        self._reorder()
        self._cache.clear()
        self.refresh()
        self.post_message(self.SortChanged(self.sort_column, self.sort_reverse))

    def watch_cursor(self, old: int, new: int) -> None:
        for index in (old, new):
            y = index + 1 - self.scroll_offset.y
            if 1 <= y < self.size.height:
                self.refresh_line(y)
        self._scroll_cursor_into_view()
        self.post_message(self.Selected(self.selected_symbol))

    def _scroll_cursor_into_view(self) -> None:
        scroll_row_into_view(self, self.cursor)

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:
            column = self._column_at(event.x)
            if column is not None and column.sort_key is not None:
                if self.sort_column == column.key:
                    self.action_reverse_sort()
                else:
                    self.sort_by(column.key)
            return
        index = event.y - 1 + self.scroll_offset.y
        if 0 <= index < len(self._order):
            self.cursor = index

    def _column_at(self, x: int) -> Column | None:
        position = 0
        for column, width in self._columns:
            if position <= x < position + width + 1:
                return column
            position += width + 1
        return None

    # ------------------------------------------------------------------ rendering

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, len(self._order) + 1)
        self._cache.clear()

    def _layout(self, width: int) -> list[tuple[Column, int]]:
        if width == self._layout_width:
            return self._columns
        columns = [c for c in COLUMNS if c.key != "spark"]
        # Drop the least important columns until the rest fit.
        while sum(c.width + 1 for c in columns) > width and len(columns) > 2:
            columns.remove(max(columns, key=lambda c: (c.priority, COLUMNS.index(c))))
        fixed = [(c, c.width) for c in columns]
        spare = width - sum(w + 1 for _, w in fixed)
        if spare >= SPARK_MIN_WIDTH:
            spark = next(c for c in COLUMNS if c.key == "spark")
            fixed.append((spark, spare))
        self._columns = fixed
        self._layout_width = width
        return fixed

    def _style(self, *names: str) -> Style:
        """The rich style of component classes layered left to right ("base" is the
        widget's own). Rows are drawn hundreds of times a second and Style addition is
        not free, so every combination is built once per theme."""
        combined = self._combined.get(names)
        if combined is not None:
            return combined
        if self._styles is None:
            self._styles = {
                component.removeprefix("quote-board--"): self.get_component_rich_style(component)
                for component in self.COMPONENT_CLASSES
            }
            self._styles["base"] = self.rich_style
        combined = Style.chain(*(self._styles[name] for name in names))
        self._combined[names] = combined
        return combined

    def _sparkline(self, symbol: str, width: int) -> str:
        """The session sparkline, rebuilt only when a bar is added or the width changes."""
        closes = self.sparks.get(symbol)
        if not closes:
            return ""
        key = (len(closes), width)
        cached = self._spark_cache.get(symbol)
        if cached is not None and cached[0] == key:
            return cached[1]
        line = fmt.sparkline(closes, width)
        self._spark_cache[symbol] = (key, line)
        return line

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        columns = self._layout(width)
        if y == 0:
            return self._render_header(columns, width)
        index = y - 1 + self.scroll_offset.y
        if index >= len(self._order):
            return Strip.blank(width, self._style("base"))
        symbol = self._order[index]
        row = self.rows.get(symbol)
        flash = self._flash_until.get(symbol, 0.0) > time.monotonic()
        spark = self.sparks.get(symbol)
        key = (row, width, index == self.cursor, flash, len(spark) if spark else 0,
               self.has_focus)
        cached = self._cache.get(symbol)
        if cached is not None and cached[0] == key:
            strip = cached[1]
        else:
            strip = self._render_row(symbol, row, columns, width, index == self.cursor, flash)
            self._cache[symbol] = (key, strip)
        if self.render_probe is not None and symbol in self.received_at:
            self.render_probe(symbol, self.received_at[symbol])
        return strip

    def _render_header(self, columns: list[tuple[Column, int]], width: int) -> Strip:
        header = self._style("header")
        sorted_style = self._style("header", "sorted")
        segments = []
        for column, col_width in columns:
            title = column.title
            style = header
            if column.key == self.sort_column:
                title = f"{title}{'↓' if self.sort_reverse else '↑'}"
                style = sorted_style
            text = title.rjust(col_width) if column.right else title.ljust(col_width)
            segments.append(Segment(text[:col_width] + " ", style))
        return Strip(segments).adjust_cell_length(width, header)

    def _render_row(
        self,
        symbol: str,
        row: QuoteRow | None,
        columns: list[tuple[Column, int]],
        width: int,
        is_cursor: bool,
        flash: bool,
    ) -> Strip:
        base: tuple[str, ...] = ("base", "cursor") if is_cursor else ("base",)
        direction = 0
        if row is not None and not math.isnan(row.change):
            direction = 1 if row.change > 0 else -1 if row.change < 0 else 0
        trend = "up" if direction > 0 else "down" if direction < 0 else "muted"
        stale: tuple[str, ...] = ("stale",) if row is not None and row.stale else ()
        gap = Segment(" ", self._style(*base))
        segments = []
        used = 0
        for column, col_width in columns:
            used += col_width + 1
            key = column.key
            if key == "spark":
                text = self._sparkline(symbol, col_width)
                style = (*base, trend)
            elif row is None:
                text = symbol if key == "symbol" else "loading" if key == "last" else ""
                style = (*base, "muted")
            else:
                text, style = self._cell(key, row, base, trend, flash)
                if key != "symbol":
                    style = (*style, *stale)
            cell = text.rjust(col_width) if column.right else text.ljust(col_width)
            segments.append(Segment(cell[:col_width], self._style(*style)))
            segments.append(gap)
        # Every cell is padded to its width in single-cell glyphs, so the row's length is
        # known: padding it here spares Strip measuring each segment again.
        if used < width:
            segments.append(Segment(" " * (width - used), self._style(*base)))
        elif used > width:
            return Strip(segments).adjust_cell_length(width, self._style(*base))
        return Strip(segments, width)

    @staticmethod
    def _cell(
        key: str, row: QuoteRow, base: tuple[str, ...], trend: str, flash: bool
    ) -> tuple[str, tuple[str, ...]]:
        """A cell's text and the names of its styles."""
        if key == "symbol":
            marker = " ⚠" if row.stale else "*" if row.source == "sim" else ""
            return row.symbol + marker, (*base, "symbol", "stale") if row.stale else (
                *base, "symbol")
        if key == "last":
            if flash and row.tick:
                return fmt.price(row.last), (
                    *base, trend, "flash-up" if row.tick > 0 else "flash-down")
            return fmt.price(row.last), (*base, trend)
        if key == "change":
            return fmt.signed(row.change), (*base, trend)
        if key == "pct_change":
            return fmt.percent(row.pct_change), (*base, trend)
        if key == "bid":
            return fmt.price(row.bid), (*base, "bid")
        if key == "ask":
            return fmt.price(row.ask), (*base, "ask")
        if key == "volume":
            return fmt.volume(row.volume), base
        if key == "range":
            return fmt.day_range(row.day_low, row.day_high), (*base, "muted")
        return "", base
