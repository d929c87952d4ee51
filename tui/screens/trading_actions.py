"""The workstation's trading keys and the blotter's requests: the order ticket (b/s),
cancel, change and close from the blotter, cancel-all and the kill switch (each
destructive one confirmed first, saying what it will do), and the trading state.

A base of `WorkstationScreen`, kept apart for size; it only talks to the engine
through the client and reports every refusal with the engine's reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual import on
from textual.binding import Binding
from textual.screen import Screen

from core.client import CommandError, EngineClient
from core.model import OrderRequest, Side, TradingState
from tui.screens.order_ticket import OrderChange, OrderTicket, ReplaceTicket, TicketDefaults
from tui.screens.prompt import Confirm
from tui.widgets.blotter import Blotter
from tui.widgets.quote_board import QuoteBoard

TRADING_BINDINGS = [
    Binding("b", "order_ticket('buy')", "Buy", id="order.buy"),
    Binding("s", "order_ticket('sell')", "Sell", id="order.sell"),
    Binding("C", "cancel_all", "Cancel all orders", show=False, id="order.cancel_all"),
    Binding("ctrl+k", "kill_switch", "Kill switch", id="risk.kill"),
]


class TradingActions(Screen[None]):
    client: EngineClient
    pull: Callable[[], Awaitable[None]]  # the workstation's: take the engine's changes now

    def scanner_symbol(self) -> str | None:
        return None  # the workstation's: the scanner's selected hit while it is shown

    def action_order_ticket(self, side: str) -> None:
        board = self.query_one(QuoteBoard)
        symbol = self.scanner_symbol() or board.selected_symbol
        if symbol is None:
            self.notify("select a symbol on the quote board first", severity="warning")
            return
        defaults = TicketDefaults(symbol, Side(side), board.rows.get(symbol))

        async def send(request: OrderRequest | None) -> None:
            if request is not None:
                await self.place_order(request)

        self.app.push_screen(OrderTicket(self.client, defaults), send)

    async def place_order(self, request: OrderRequest) -> None:
        try:
            order = await self.client.place_order(request)
        except CommandError as error:
            self.notify(str(error), title="Order refused", severity="error", timeout=8)
            return
        message = (f"{order.side.value} {order.quantity.normalize():f} {order.symbol}: "
                   f"{order.status.value.replace('_', ' ')}")
        if order.reason and order.status.value == "rejected":
            self.notify(f"{message}: {order.reason}", title="Order rejected",
                        severity="error", timeout=8)
        else:
            self.notify(message, title=order.client_order_id)
        await self.pull()

    @on(Blotter.CancelRequested)
    async def cancel_order(self, event: Blotter.CancelRequested) -> None:
        order = event.order
        if not order.is_open:
            self.notify(f"{order.client_order_id} is {order.status.value}: nothing to cancel",
                        severity="warning")
            return
        try:
            await self.client.cancel_order(order.client_order_id)
        except CommandError as error:
            self.notify(str(error), severity="error")
            return
        await self.pull()

    @on(Blotter.EditRequested)
    def edit_order(self, event: Blotter.EditRequested) -> None:
        order = event.order
        if not order.is_open:
            self.notify(f"{order.client_order_id} is {order.status.value}: it cannot change",
                        severity="warning")
            return

        async def change(result: OrderChange | None) -> None:
            if result is None or result == OrderChange(None, None, None):
                return
            try:
                new = await self.client.replace_order(
                    order.client_order_id, quantity=result.quantity,
                    limit_price=result.limit_price, stop_price=result.stop_price)
            except CommandError as error:
                self.notify(str(error), title="Change refused", severity="error", timeout=8)
                return
            self.notify(f"{order.client_order_id} replaced by {new.client_order_id}")
            await self.pull()

        self.app.push_screen(ReplaceTicket(order), change)

    @on(Blotter.CloseRequested)
    def close_position(self, event: Blotter.CloseRequested) -> None:
        position = event.position
        side = "sell" if position.quantity > 0 else "buy"
        open_orders = sum(1 for o in self.query_one(Blotter).orders.values()
                          if o.is_open and o.symbol == position.symbol)
        question = (f"Close {position.symbol}: {side} {abs(position.quantity).normalize():f} "
                    "at the market")
        if open_orders:
            question += f", after canceling its {open_orders} open orders"

        async def close(confirmed: bool | None) -> None:
            if not confirmed:
                return
            try:
                order = await self.client.close_position(position.symbol)
            except CommandError as error:
                self.notify(str(error), title="Close refused", severity="error", timeout=8)
                return
            self.notify(f"closing {position.symbol}: {order.client_order_id} "
                        f"{order.status.value.replace('_', ' ')}")
            await self.pull()

        self.app.push_screen(Confirm(question + "?", "Close"), close)

    def action_cancel_all(self) -> None:
        open_orders = [o for o in self.query_one(Blotter).orders.values() if o.is_open]
        if not open_orders:
            self.notify("no open orders", severity="information")
            return

        async def cancel_all(confirmed: bool | None) -> None:
            if not confirmed:
                return
            try:
                asked = await self.client.cancel_all_orders()
            except CommandError as error:
                self.notify(str(error), severity="error")
                return
            self.notify(f"canceling {asked} orders")
            await self.pull()

        self.app.push_screen(Confirm(f"Cancel all {len(open_orders)} open orders?",
                                     "Cancel all"), cancel_all)

    def action_kill_switch(self) -> None:
        blotter = self.query_one(Blotter)
        open_orders = sum(1 for o in blotter.orders.values() if o.is_open)
        positions = len(blotter.positions)
        question = (f"KILL SWITCH: cancel {open_orders} open orders, close {positions} "
                    "positions at the market, and halt trading (no new orders until you "
                    "set it active again)?")

        async def kill(confirmed: bool | None) -> None:
            if not confirmed:
                return
            try:
                report = await self.client.kill_switch()
            except CommandError as error:
                self.notify(str(error), severity="error")
                return
            message = (f"halted; {report.canceled} orders canceled, "
                       f"{len(report.flattening)} positions closing")
            if report.problems:
                self.notify(message + "; " + "; ".join(report.problems),
                            title="Kill switch", severity="error", timeout=15)
            else:
                self.notify(message, title="Kill switch", severity="warning", timeout=8)
            await self.pull()

        self.app.push_screen(Confirm(question, "Kill"), kill)

    async def set_trading_state(self, state: TradingState) -> None:
        try:
            await self.client.set_trading_state(state, "set by the trader")
        except CommandError as error:
            self.notify(str(error), severity="error")
            return
        self.notify(f"trading {state.value}", severity="warning"
                    if state != TradingState.ACTIVE else "information")
        await self.pull()

    def run_set_trading_state(self, state: TradingState) -> None:
        self.run_worker(self.set_trading_state(state), exit_on_error=False)
