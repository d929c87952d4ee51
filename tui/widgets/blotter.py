"""The blotter: orders, fills and positions, as three tabs.

Orders and fills change when something happens (a few times a second at most), so each
is a DataTable redrawn only then. Positions are re-marked on every pull, so their cells
are updated in place, and only the cells whose text changed.

The blotter never commands the engine: `c`, `e` and `x` post messages the workstation
turns into commands (and confirmations).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from decimal import Decimal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, TabbedContent, TabPane

from core.model import Fill, OrderStatus, OrderType, Side
from core.state import OrderView, PositionView
from tui import format as fmt

# Fixed widths: a column sized by its content would jump as statuses pass through.
# What a trader scans first fits the 70 cells of the wide layout's blotter: the rest
# (average price, reason) is a scroll to the right.
ORDER_WIDTHS = {"Time": 8, "Id": 4, "Sym": 5, "Side": 4, "Filled": 11, "Order": 16,
                "Status": 9, "Avg": 9, "Reason": 60}
FILL_WIDTHS = {"Time": 8, "Sym": 6, "Side": 4, "Qty": 7, "Price": 10, "Comm": 8, "Order": 6}
POSITION_WIDTHS = {"Sym": 6, "Qty": 9, "Avg cost": 11, "Last": 10, "Value": 12,
                   "Unreal": 11, "Real": 11}
ORDER_COLUMNS = tuple(ORDER_WIDTHS)
FILL_COLUMNS = tuple(FILL_WIDTHS)
POSITION_COLUMNS = tuple(POSITION_WIDTHS)
SHOWN_ORDERS = 300
SHOWN_FILLS = 300


def quantity(value: Decimal) -> str:
    return f"{value.normalize():,f}"


def money(value: Decimal | None) -> str:
    return fmt.DASH if value is None else f"{value:,.2f}"


def signed_money(value: Decimal) -> str:
    return f"{value:+,.2f}"


def short_id(client_order_id: str) -> str:
    """td-20190314-000042 -> 42: the sequence is unique for the database's life."""
    tail = client_order_id.rsplit("-", 1)[-1]
    return tail.lstrip("0") or "0"


TYPE_SHORT = {OrderType.MARKET: "mkt", OrderType.LIMIT: "lmt", OrderType.STOP: "stp",
              OrderType.STOP_LIMIT: "stp", OrderType.TRAILING_STOP: "trail"}
STATUS_SHORT = {
    OrderStatus.PENDING_NEW: "new", OrderStatus.ACCEPTED: "working",
    OrderStatus.PARTIALLY_FILLED: "partial", OrderStatus.FILLED: "filled",
    OrderStatus.CANCELED: "canceled", OrderStatus.REJECTED: "rejected",
    OrderStatus.EXPIRED: "expired", OrderStatus.PENDING_CANCEL: "canceling",
    OrderStatus.PENDING_REPLACE: "replacing", OrderStatus.REPLACED: "replaced",
}


def order_terms(order: OrderView) -> str:
    """'lmt 113.33 day', 'stp 98.00/97.50 gtc', 'trail 2% day', '↳stp 97.00' (a leg)."""
    if order.limit_price is not None and order.stop_price is not None:
        price = f" {order.stop_price}/{order.limit_price}"
    elif order.limit_price is not None:
        price = f" {order.limit_price}"
    elif order.stop_price is not None:
        price = f" {order.stop_price}"
    elif order.trail:
        price = f" {order.trail}"
    else:
        price = ""
    leg = "↳" if order.parent_id else ""  # a bracket leg
    return f"{leg}{TYPE_SHORT[order.order_type]}{price} {order.time_in_force.value}"


class Blotter(Widget, can_focus=False):
    BINDINGS = [
        Binding("c", "cancel_order", "Cancel order", id="blotter.cancel"),
        Binding("e", "edit_order", "Edit order", id="blotter.edit"),
        Binding("x", "close_position", "Close position", id="blotter.close"),
        # Inside the blotter, [ and ] step through its tabs (on the board: watchlists).
        Binding("right_square_bracket", "cycle_tab(1)", "Next tab", show=False,
                id="blotter.next_tab"),
        Binding("left_square_bracket", "cycle_tab(-1)", "Previous tab", show=False,
                id="blotter.previous_tab"),
    ]

    @dataclass
    class CancelRequested(Message):
        order: OrderView

    @dataclass
    class EditRequested(Message):
        order: OrderView

    @dataclass
    class CloseRequested(Message):
        position: PositionView

    def __init__(self, zone: tzinfo, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.zone = zone
        self.orders: dict[str, OrderView] = {}
        self.fills: list[Fill] = []
        self.positions: dict[str, PositionView] = {}
        self._position_cells: dict[str, tuple[str, ...]] = {}

    def compose(self) -> ComposeResult:
        with TabbedContent(id="blotter-tabs"):
            with TabPane("Orders", id="tab-orders"):
                yield DataTable(id="orders-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Fills", id="tab-fills"):
                yield DataTable(id="fills-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Positions", id="tab-positions"):
                yield DataTable(id="positions-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        for table_id, widths in (("#orders-table", ORDER_WIDTHS),
                                 ("#fills-table", FILL_WIDTHS),
                                 ("#positions-table", POSITION_WIDTHS)):
            table = self.query_one(table_id, DataTable)
            for column, width in widths.items():
                table.add_column(column, key=column, width=width)

    # ------------------------------------------------------------------ updates

    def set_book(self, orders: Iterable[OrderView], fills: Sequence[Fill],
                 positions: Sequence[PositionView]) -> None:
        self.orders = {}
        self.fills = []
        self.update_orders(orders)
        self.add_fills(fills)
        self.update_positions(positions)

    def update_orders(self, orders: Iterable[OrderView]) -> None:
        changed = list(orders)
        if not changed:
            return
        new_rows = any(order.client_order_id not in self.orders for order in changed)
        for order in changed:
            self.orders[order.client_order_id] = order
        table = self.query_one("#orders-table", DataTable)
        if new_rows:
            self._rebuild(table, [self._order_row(o) for o in self._newest_orders()])
            return
        for order in changed:
            for column, value in zip(ORDER_COLUMNS, self._order_row(order)[1], strict=True):
                table.update_cell(order.client_order_id, column, value)

    def _newest_orders(self) -> list[OrderView]:
        orders = sorted(self.orders.values(), key=lambda o: (o.created_ns, o.client_order_id),
                        reverse=True)
        return orders[:SHOWN_ORDERS]

    def add_fills(self, fills: Sequence[Fill]) -> None:
        if not fills:
            return
        self.fills = [*self.fills, *fills][-SHOWN_FILLS:]
        table = self.query_one("#fills-table", DataTable)
        self._rebuild(table, [self._fill_row(f) for f in reversed(self.fills)])

    def update_positions(self, positions: Sequence[PositionView]) -> None:
        table = self.query_one("#positions-table", DataTable)
        current = {p.symbol: p for p in positions}
        rows = {p.symbol: self._position_row(p) for p in positions}
        cells = {symbol: tuple(str(c) for c in row[1]) for symbol, row in rows.items()}
        self.positions = current
        if set(cells) != set(self._position_cells):
            self._rebuild(table, [rows[s] for s in sorted(rows)])
        else:
            for symbol, texts in cells.items():
                if texts == self._position_cells.get(symbol):
                    continue
                for column, value in zip(POSITION_COLUMNS, rows[symbol][1], strict=True):
                    table.update_cell(symbol, column, value)
        self._position_cells = cells

    @staticmethod
    def _rebuild(table: DataTable[Text | str], rows: list[tuple[str, tuple[Text | str, ...]]]
                 ) -> None:
        selected = None
        if table.row_count and table.cursor_row >= 0:
            try:
                selected = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            except Exception:  # the cursor sat past the last row
                selected = None
        table.clear()
        for key, cells in rows:
            table.add_row(*cells, key=key)
        if selected is not None:
            keys = [key for key, _ in rows]
            if selected in keys:
                table.move_cursor(row=keys.index(selected), animate=False)

    # ------------------------------------------------------------------ rows

    def _colour(self, name: str) -> str:
        return self.app.theme_variables.get(name, "")

    def _side(self, side: Side) -> Text:
        return Text(side.value.upper(), style=self._colour("bid" if side == Side.BUY else "ask"))

    def _status(self, order: OrderView) -> Text:
        colour = {
            OrderStatus.FILLED: "up", OrderStatus.REJECTED: "down",
            OrderStatus.PARTIALLY_FILLED: "accent", OrderStatus.CANCELED: "stale",
            OrderStatus.EXPIRED: "stale", OrderStatus.REPLACED: "stale",
        }.get(order.status, "foreground")
        return Text(STATUS_SHORT[order.status], style=self._colour(colour))

    def _order_row(self, order: OrderView) -> tuple[str, tuple[Text | str, ...]]:
        reason = order.reason if order.status in (OrderStatus.REJECTED, OrderStatus.EXPIRED,
                                                  OrderStatus.CANCELED) else ""
        return order.client_order_id, (
            fmt.clock_time(order.created_ns, self.zone).strftime("%H:%M:%S"),
            short_id(order.client_order_id),
            Text(order.symbol, style="bold"),
            self._side(order.side),
            f"{quantity(order.filled_quantity)}/{quantity(order.quantity)}",
            order_terms(order),
            self._status(order),
            money(order.average_price.quantize(Decimal("0.01"))
                  if order.average_price is not None else None),
            Text(reason, style=self._colour("down") if order.status == OrderStatus.REJECTED
                 else ""),
        )

    def _fill_row(self, fill: Fill) -> tuple[str, tuple[Text | str, ...]]:
        return f"{fill.venue}:{fill.fill_id}", (
            fmt.clock_time(fill.ts_ns, self.zone).strftime("%H:%M:%S"),
            Text(fill.symbol, style="bold"),
            self._side(fill.side),
            quantity(fill.quantity),
            str(fill.price),
            money(fill.commission),
            short_id(fill.client_order_id),
        )

    def _pnl(self, value: Decimal) -> Text:
        colour = "up" if value > 0 else "down" if value < 0 else "foreground"
        return Text(signed_money(value), style=self._colour(colour))

    def _position_row(self, position: PositionView) -> tuple[str, tuple[Text | str, ...]]:
        side = "up" if position.quantity > 0 else "down"
        return position.symbol, (
            Text(position.symbol, style="bold"),
            Text(f"{position.quantity:+,f}", style=self._colour(side)),
            money(position.average_cost.quantize(Decimal("0.0001"))),
            money(position.last_price),
            money(position.market_value),
            self._pnl(position.unrealized),
            self._pnl(position.realized),
        )

    # ------------------------------------------------------------------ selection

    @property
    def active_tab(self) -> str:
        return self.query_one(TabbedContent).active.removeprefix("tab-")

    def show_tab(self, name: str) -> None:
        self.query_one(TabbedContent).active = f"tab-{name}"

    def action_cycle_tab(self, step: int) -> None:
        names = ["orders", "fills", "positions"]
        self.show_tab(names[(names.index(self.active_tab) + step) % len(names)])

    def focus_table(self) -> None:
        self.query_one(f"#{self.active_tab}-table", DataTable).focus()

    def _selected_key(self, table_id: str) -> str | None:
        table = self.query_one(table_id, DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:
            return None
        return key

    @property
    def selected_order(self) -> OrderView | None:
        key = self._selected_key("#orders-table")
        return self.orders.get(key) if key is not None else None

    @property
    def selected_position(self) -> PositionView | None:
        key = self._selected_key("#positions-table")
        return self.positions.get(key) if key is not None else None

    def action_cancel_order(self) -> None:
        order = self.selected_order
        if self.active_tab != "orders" or order is None:
            self.notify("select an order in the Orders tab to cancel it", severity="warning")
            return
        self.post_message(self.CancelRequested(order))

    def action_edit_order(self) -> None:
        order = self.selected_order
        if self.active_tab != "orders" or order is None:
            self.notify("select an order in the Orders tab to change it", severity="warning")
            return
        self.post_message(self.EditRequested(order))

    def action_close_position(self) -> None:
        position = self.selected_position
        if self.active_tab != "positions" or position is None:
            self.notify("select a position in the Positions tab to close it",
                        severity="warning")
            return
        self.post_message(self.CloseRequested(position))

    @on(TabbedContent.TabActivated)
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        event.stop()
        if self.has_focus_within:  # keep the keys working on the tab just picked
            self.call_after_refresh(self.focus_table)
