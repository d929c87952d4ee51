"""What the trading desk shows its consumers (the UI, an attached client): orders,
positions, the account and the risk limits as immutable views, and the book risk
judges an order against. A base of `TradingDesk`, kept apart for size."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING

from core.orders import Order
from core.portfolio import as_decimal
from core.risk import OpenOrder, RiskBook
from core.state import AccountView, OrderView, PositionView, RiskView

if TYPE_CHECKING:
    from core.account_watch import AccountWatch
    from core.brokers.base import Broker
    from core.market import MarketState
    from core.model import Fill
    from core.portfolio import Portfolio
    from core.risk import RiskEngine

SNAPSHOT_ORDERS = 500  # orders (besides the open ones) a fresh consumer receives


class DeskViews:
    orders: dict[str, Order]
    fills: list[Fill]
    portfolio: Portfolio
    risk: RiskEngine
    broker: Broker
    market: MarketState
    watch: AccountWatch
    open_orders: dict[str, Order]
    _order_seqs: dict[str, int]

    def book(self, also: str = "") -> RiskBook:
        """The account as risk sees it now (with the price of `also`, an order's
        symbol)."""
        prices: dict[str, Decimal] = {}
        symbols = {p.symbol for p in self.portfolio.positions.values()}
        if also:
            symbols.add(also)
        open_orders = risk_open_orders(self.open_orders.values())
        symbols.update(order.symbol for order in open_orders)
        for symbol in symbols:
            state = self.market.states.get(symbol)
            if state is not None and state.last == state.last:
                prices[symbol] = as_decimal(state.last)
        positions = {p.symbol: p.quantity for p in self.portfolio.positions.values()
                     if p.quantity}
        summary = self.portfolio.summary()
        return RiskBook(positions, prices, tuple(open_orders), summary.equity,
                        summary.day_pnl)

    def orders_since(self, seq: int) -> list[OrderView]:
        """Orders changed after change number `seq`, oldest change first."""
        changed = []
        for client_order_id, changed_at in reversed(self._order_seqs.items()):
            if changed_at <= seq:
                break
            changed.append(client_order_id)
        changed.reverse()
        return [order_view(self.orders[c]) for c in changed if c in self.orders]

    def recent_orders(self) -> list[OrderView]:
        orders = list(self.orders.values())
        recent = orders[-SNAPSHOT_ORDERS:]
        older_open = [o for o in orders[:-SNAPSHOT_ORDERS] if o.is_open]
        return [order_view(o) for o in (*older_open, *recent)]

    def positions(self) -> list[PositionView]:
        views = []
        for position in self.portfolio.positions.values():
            if position.quantity == 0:
                continue
            last = None if position.last_price != position.last_price else as_decimal(
                position.last_price)
            views.append(PositionView(position.symbol, position.quantity,
                                      position.average_cost, last, position.market_value(),
                                      position.unrealized(), position.realized))
        return views

    def account(self) -> AccountView:
        summary = self.portfolio.summary()
        return AccountView(summary.cash, summary.equity, self.watch.buying_power, summary.day_pnl,
                           summary.realized, summary.unrealized, summary.gross_exposure,
                           summary.net_exposure, summary.commissions,
                           self.portfolio.starting_cash, self.broker.name)

    def risk_view(self) -> RiskView:
        return RiskView(self.risk.state, self.risk.state_reason, self.risk.state_automatic,
                        tuple(self.risk.utilisation(self.book())))




def order_view(order: Order) -> OrderView:
    request = order.request
    trail = ""
    if request.trail_amount is not None:
        trail = f"{request.trail_amount}"
    elif request.trail_percent is not None:
        trail = f"{request.trail_percent.normalize():f}%"
    return OrderView(order.client_order_id, request.symbol, request.side, request.quantity,
                     request.order_type, request.time_in_force, request.limit_price,
                     request.stop_price, trail, order.status, order.filled_quantity,
                     order.average_price, order.created_ns, order.updated_ns, order.reason,
                     order.parent_id, order.replaces, request.strategy)




def risk_open_orders(orders: Iterable[Order]) -> list[OpenOrder]:
    """The open orders risk counts (a bracket's legs only close what their entry opens,
    so they are left out)."""
    return [OpenOrder(order.symbol, order.side, order.remaining, order_price(order))
            for order in orders if not order.parent_id]


def order_price(order: Order) -> Decimal | None:
    """The price risk counts an open order at: its limit, else its stop (None: market)."""
    return order.request.limit_price or order.request.stop_price
