"""The strategies pane: one row per strategy instance, and a detail line for the row
under the cursor.

Each row: the instance id, its mode (a word, styled per mode: LIVE in reverse so it
cannot be missed), its symbols, its own position, its P&L today (signed), the signals
it gave today and the last one with its time. An instance that failed is marked ⚠ and
shows ERROR and the error; its traceback is one key away (the workstation's).

The list is a Line-API widget, like the quote board: a row is redrawn only when its
view, the width, the cursor or the theme changed. The cursor follows the instance id,
so it stays on the same instance as rows come and go.

The pane never commands the engine: the workstation reads `selected` and acts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo

from rich.style import Style
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from core.state import StrategyView
from tui import format as fmt
from tui.strategy_format import (
    ERROR_MARK,
    MODE_LABELS,
    describe_params,
    error_text,
    money,
    position_summary,
    position_trend,
    shares,
    short_error,
    short_id,
    signal_time,
    symbols_summary,
    trend,
)
from tui.widgets.row_list import scroll_row_into_view


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    width: int  # 0: the rest of the row
    priority: int  # lower survives longer when the pane is narrow
    right: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("id", "Instance", 13, 0),
    Column("mode", "Mode", 7, 0),
    Column("symbols", "Symbols", 9, 1),
    Column("position", "Position", 8, 1, right=True),
    Column("day", "Day P&L", 10, 0, right=True),
    Column("total", "Total P&L", 10, 3, right=True),
    Column("signals", "Sig", 3, 2, right=True),
    Column("orders", "Ord", 3, 3, right=True),
    Column("last", "Last signal", 0, 0),
)
LAST_MIN_WIDTH = 11
LAST_COMFORT_WIDTH = 36  # the extra columns (total P&L, orders) only leave this much
EXTRA_PRIORITY = 3
TIMED_SIGNAL_WIDTH = 20  # narrower, the signal's time is in the detail line only

# (text, component class names) pieces of one cell
Pieces = list[tuple[str, tuple[str, ...]]]


# ---------------------------------------------------------------------- the list


class StrategyList(ScrollView, can_focus=True):
    """Rows of strategy instances, a fixed header, a cursor that follows the id."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False, id="strategies.up"),
        Binding("down,j", "cursor(1)", "Down", show=False, id="strategies.down"),
        Binding("pageup", "cursor(-10)", "Page up", show=False, id="strategies.page_up"),
        Binding("pagedown", "cursor(10)", "Page down", show=False,
                id="strategies.page_down"),
        Binding("home", "cursor_to(0)", "First", show=False, id="strategies.first"),
        Binding("end", "cursor_to(-1)", "Last", show=False, id="strategies.last"),
    ]

    COMPONENT_CLASSES = {
        "strategies--header",
        "strategies--cursor",
        "strategies--id",
        "strategies--muted",
        "strategies--up",
        "strategies--down",
        "strategies--bid",
        "strategies--ask",
        "strategies--off",
        "strategies--observe",
        "strategies--paper",
        "strategies--live",
        "strategies--error",
    }

    cursor = reactive(0, init=False)

    @dataclass
    class Selected(Message):
        """The cursor moved to another instance (or the instance under it changed)."""

        view: StrategyView | None

    def __init__(self, zone: tzinfo, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.zone = zone
        self.views: list[StrategyView] = []
        self._index: dict[str, int] = {}
        self._cache: dict[str, tuple[tuple[object, ...], Strip]] = {}
        self._columns: list[tuple[Column, int]] = []
        self._layout_width = -1

    # ------------------------------------------------------------------ data in

    @property
    def selected(self) -> StrategyView | None:
        if 0 <= self.cursor < len(self.views):
            return self.views[self.cursor]
        return None

    def set_views(self, views: Sequence[StrategyView]) -> None:
        """The engine's instances now: redraw the rows that changed; the cursor stays on
        the instance it was on (or near where a removed one was)."""
        views = list(views)
        old = self.views
        if views == old:
            return
        before = self.selected
        self.views = views
        self._index = {view.id: i for i, view in enumerate(views)}
        if [v.id for v in views] != [v.id for v in old]:
            keep = self._index.get(before.id) if before is not None else None
            cursor = keep if keep is not None else min(self.cursor, max(0, len(views) - 1))
            self.set_reactive(StrategyList.cursor, cursor)
            self.virtual_size = Size(self.size.width, len(views) + 1)
            self._scroll_cursor_into_view()
            self.refresh()
        else:
            for index, (was, now) in enumerate(zip(old, views, strict=True)):
                if was != now:
                    self._refresh_row(index)
        if self.selected != before:
            self.post_message(self.Selected(self.selected))

    def select(self, instance_id: str) -> None:
        if instance_id in self._index:
            self.cursor = self._index[instance_id]

    def _refresh_row(self, index: int) -> None:
        y = index + 1 - self.scroll_offset.y
        if 1 <= y < self.size.height:
            self.refresh_line(y)

    # ------------------------------------------------------------------ cursor

    def action_cursor(self, delta: int) -> None:
        if self.views:
            self.cursor = max(0, min(len(self.views) - 1, self.cursor + delta))

    def action_cursor_to(self, index: int) -> None:
        if self.views:
            self.cursor = index % len(self.views)

    def watch_cursor(self, old: int, new: int) -> None:
        self._refresh_row(old)
        self._refresh_row(new)
        self._scroll_cursor_into_view()
        self.post_message(self.Selected(self.selected))

    def _scroll_cursor_into_view(self) -> None:
        scroll_row_into_view(self, self.cursor)

    def on_click(self, event: events.Click) -> None:
        index = event.y - 1 + self.scroll_offset.y
        if event.y >= 1 and 0 <= index < len(self.views):
            self.cursor = index

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # ------------------------------------------------------------------ rendering

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, len(self.views) + 1)
        self._cache.clear()

    def _layout(self, width: int) -> list[tuple[Column, int]]:
        if width == self._layout_width:
            return self._columns
        fixed = [c for c in COLUMNS if c.width]

        def spare() -> int:
            return width - sum(c.width + 1 for c in fixed)

        def least(columns: list[Column]) -> Column:
            return max(columns, key=lambda c: (c.priority, COLUMNS.index(c)))

        # Drop the least important columns until the rest leave room for the signal;
        # the extras only when the signal still has room to be read.
        while spare() < LAST_MIN_WIDTH and len(fixed) > 2:
            fixed.remove(least(fixed))
        extras = [c for c in fixed if c.priority >= EXTRA_PRIORITY]
        while extras and spare() < LAST_COMFORT_WIDTH:
            extras.remove(dropped := least(extras))
            fixed.remove(dropped)
        last = COLUMNS[-1]
        self._columns = [(c, c.width) for c in COLUMNS if c in fixed] + [(last, max(0, spare()))]
        self._layout_width = width
        return self._columns

    def _style(self, *names: str) -> Style:
        style = self.rich_style
        for name in names:
            if name != "base":
                style = style + self.get_component_rich_style(f"strategies--{name}")
        return style

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        columns = self._layout(width)
        if y == 0:
            return self._render_header(columns, width)
        index = y - 1 + self.scroll_offset.y
        if index >= len(self.views):
            return Strip.blank(width, self._style("base"))
        view = self.views[index]
        is_cursor = index == self.cursor
        key = (view, width, is_cursor, self.has_focus, self.app.theme)
        cached = self._cache.get(view.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        strip = self._render_row(view, columns, width, is_cursor)
        self._cache[view.id] = (key, strip)
        return strip

    def _render_header(self, columns: list[tuple[Column, int]], width: int) -> Strip:
        header = self._style("header")
        text = Text(style=header, no_wrap=True, end="")
        for column, col_width in columns:
            title = column.title[:col_width]
            text.append(title.rjust(col_width) if column.right else title.ljust(col_width))
            text.append(" ")
        return Strip(text.render(self.app.console)).adjust_cell_length(width, header)

    def _render_row(self, view: StrategyView, columns: list[tuple[Column, int]], width: int,
                    is_cursor: bool) -> Strip:
        base: tuple[str, ...] = ("cursor",) if is_cursor else ()
        base_style = self._style(*base)
        row = Text(style=base_style, no_wrap=True, end="")
        for column, col_width in columns:
            cell = Text(no_wrap=True, overflow="ellipsis", end="")
            for piece, names in self._cell(column.key, view, col_width):
                cell.append(piece, self._style(*base, *names))
            cell.truncate(col_width, overflow="ellipsis")
            if column.right:
                cell.align("right", col_width)
            else:
                cell.pad_right(col_width - cell.cell_len)
            row.append_text(cell)
            row.append(" ")
        return Strip(row.render(self.app.console)).adjust_cell_length(width, base_style)

    def _cell(self, key: str, view: StrategyView, width: int) -> Pieces:
        if key == "id":
            if view.error:
                return [(f"{ERROR_MARK} {short_id(view.id, width - 2)}", ("id", "error"))]
            return [(short_id(view.id, width), ("id",))]
        if key == "mode":
            return [(MODE_LABELS.get(view.mode, view.mode.upper()), (view.mode,))]
        if key == "symbols":
            return [(symbols_summary(view.symbols, width), ())]
        if key == "position":
            return [(position_summary(view), (position_trend(view),))]
        if key == "day":
            return [(money(view.day_pnl), (trend(view.day_pnl),))]
        if key == "total":
            return [(money(view.total_pnl), (trend(view.total_pnl),))]
        if key == "signals":
            return [(str(view.signals_today), () if view.signals_today else ("muted",))]
        if key == "orders":
            return [(str(view.open_orders), () if view.open_orders else ("muted",))]
        if key == "last":
            return self._last_signal(view, width)
        return []

    def _last_signal(self, view: StrategyView, width: int) -> Pieces:
        if view.error:
            return [("ERROR ", ("error",)), (short_error(view), ("error",))]
        if not view.last_signal:
            return [(fmt.DASH, ("muted",))]
        pieces: Pieces = []
        when = signal_time(view, self.zone) if width >= TIMED_SIGNAL_WIDTH else ""
        if when:
            pieces.append((when + " ", ("muted",)))
        side, space, rest = view.last_signal.partition(" ")
        side_style = {"BUY": "bid", "SELL": "ask"}.get(side)
        if side_style is None:
            pieces.append((view.last_signal, ()))
        else:
            pieces.append((side, (side_style,)))
            pieces.append((space + rest, ()))
        return pieces


# ---------------------------------------------------------------------- the pane


class StrategiesPane(Vertical):
    """The list and, under it, the detail of the selected instance."""

    def __init__(self, zone: tzinfo, *, empty_hint: str = "", id: str | None = None) -> None:
        super().__init__(id=id)
        self.zone = zone
        self.empty_hint = empty_hint or "No strategy instances."
        self._detail_key: tuple[object, ...] | None = None

    def compose(self) -> ComposeResult:
        yield StrategyList(self.zone, id="strategy-list")
        yield Static("", id="strategy-detail")

    def on_mount(self) -> None:
        self._update_title()
        self._update_detail()

    @property
    def strategy_list(self) -> StrategyList:
        return self.query_one(StrategyList)

    @property
    def views(self) -> list[StrategyView]:
        return self.strategy_list.views

    @property
    def selected(self) -> StrategyView | None:
        return self.strategy_list.selected

    def set_strategies(self, views: Sequence[StrategyView]) -> None:
        self.strategy_list.set_views(views)
        self._update_title()
        self._update_detail()

    def select(self, instance_id: str) -> None:
        self.strategy_list.select(instance_id)

    def focus_list(self) -> None:
        self.strategy_list.focus()

    def _update_title(self) -> None:
        views = self.views
        title = "Strategies"
        if views:
            on = sum(1 for v in views if v.mode != "off")
            title += f" ({len(views)}, {on} on)"
            live = sum(1 for v in views if v.mode == "live")
            if live:
                title += f" · {live} LIVE"
            failed = sum(1 for v in views if v.error)
            if failed:
                title += f" · {ERROR_MARK} {failed} failed"
        if title != self.border_title:
            self.border_title = title

    @on(StrategyList.Selected)
    def _selected(self, event: StrategyList.Selected) -> None:
        event.stop()
        self._update_detail()

    def _update_detail(self) -> None:
        view = self.selected
        key = (view, self.app.theme, self.empty_hint)
        if key == self._detail_key:
            return
        self._detail_key = key
        self.query_one("#strategy-detail", Static).update(self._detail(view))

    def _colour(self, name: str) -> str:
        return self.app.theme_variables.get(name, "")

    def _detail(self, view: StrategyView | None) -> Text:
        """Who it is; its last signal (or its error); its P&L and book; its parameters.
        The wide layout shows the first two lines, the 80x24 tab all four."""
        muted = self._colour("secondary")
        if view is None:
            return Text(self.empty_hint, style=muted)
        who = Text()
        who.append(view.id, style="bold")
        who.append(f" {view.title}", style=muted)
        who.append(f" · {', '.join(view.symbols)}")
        what = Text()
        if view.error:
            what.append(f"{ERROR_MARK} ERROR ", style=f"bold {self._colour('error')}")
            what.append(error_text(view), style=self._colour("error"))
            what.append("  (enter: traceback)", style=muted)
        elif view.last_signal:
            what.append("Last signal ", style=muted)
            what.append(f"{signal_time(view, self.zone)} {view.last_signal}")
        else:
            what.append("No signal yet", style=muted)
        book = Text()
        book.append("Total P&L ", style=muted)
        book.append(money(view.total_pnl), style=self._colour(
            {"up": "up", "down": "down"}.get(trend(view.total_pnl), "secondary")))
        book.append(f" · {view.open_orders} working orders", style=muted)
        if view.positions:
            book.append(" · " + ", ".join(f"{s} {shares(q)}" for s, q in view.positions.items()))
        params = Text(f"Parameters {describe_params(view.params) or 'none'}", style=muted)
        return Text("\n").join([who, what, book, params])
