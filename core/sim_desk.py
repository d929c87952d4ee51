"""The backtest's trading desk: the live desk's path without the journal and the awaits.

request checks -> risk -> client order id -> the paper venue, synchronously; the
venue's reports update the orders (the same state machine), the portfolio and the
strategy runners. Ids, risk decisions, fill rules and commissions are the live ones, so
a backtest's orders and fills are those the engine would have made
(tests/core/test_strategy_parity.py).

Risk is judged as live with one exception: the order rate limit is off, because it
guards a live connection, not a market (a universe's orders at one close are not a
runaway loop).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from core.brokers.base import BrokerEvent
from core.brokers.paper import PaperVenue
from core.bus import Bus
from core.clock import SimClock
from core.config_trading import RiskSettings
from core.desk_views import DeskViews, risk_open_orders
from core.market import MarketState
from core.model import (
    NS_PER_SECOND,
    Fill,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Side,
    Trade,
)
from core.order_checks import check_request
from core.orders import ClientOrderIds, IllegalTransition, Order, OrderError
from core.portfolio import ZERO
from core.risk import RiskBook, RiskEngine
from core.state import CommandError

FillListener = Callable[[Order, Fill], None]
EndListener = Callable[[Order], None]
_BUY = Side.BUY  # a module constant: an enum class read is slow on Python 3.11


class SimDesk(DeskViews):
    def __init__(self, venue: PaperVenue, market: MarketState, bus: Bus, clock: SimClock,
                 risk: RiskSettings, *, order_id_prefix: str = "td") -> None:
        self.broker = venue
        self.venue = venue
        self.market = market
        self.clock = clock
        self.risk = RiskEngine(risk.model_copy(update={"rate_limit_orders": 0}),
                               clock=lambda: clock.now_ns() / NS_PER_SECOND)
        # The venue's account is the engine's in a backtest (the same starting cash and
        # every fill, nothing else): one book, which the venue updates on each fill.
        self.portfolio = venue.portfolio
        self.orders: dict[str, Order] = {}
        self.open_orders: dict[str, Order] = {}
        self._order_seqs: dict[str, int] = {}
        self.fills: list[Fill] = []
        self.refusals: list[str] = []
        self.ids = ClientOrderIds(order_id_prefix, 1)
        self.illegal: list[str] = []
        # Float mirrors of cash and positions: the equity curve is read every bar.
        self.cash = float(self.portfolio.cash)
        self.held: dict[str, float] = {}
        # The Decimal of each symbol's latest price (repr, as `as_decimal`), kept while
        # the price stays: a universe's book reprices every position for every order.
        self._decimals: dict[str, tuple[float, Decimal]] = {}
        # Counts the fills and marks this desk applies; with the market's sequence it
        # says when the positions' part of `book` must be worked out again.
        self._changes = 0
        self._book_key = (-1, -1)
        self._book_positions: dict[str, Decimal] = {}
        self._book_prices: dict[str, Decimal] = {}
        self._book_value = ZERO
        self.on_fill: FillListener = lambda order, fill: None
        self.on_end: EndListener = lambda order: None
        bus.subscribe(Trade, self._mark)
        venue.attach(self._on_event)

    def place(self, request: OrderRequest, issued: Callable[[Order], None]) -> Order | None:
        """Check, judge and send; None (with the reason kept in `refusals`) when the
        checks or risk refuse it."""
        state = self.market.states.get(request.symbol)
        try:
            request = check_request(request, self.venue,
                                    state.instrument if state is not None else None)
        except CommandError as err:
            self.refusals.append(f"{request.symbol}: {err}")
            return None
        decision = self.risk.check(request, self.book(request.symbol))
        if not decision.accepted:
            self.refusals.append(f"{request.symbol}: {decision.reason}")
            return None
        self.risk.record_sent()
        now = self.clock.now_ns()
        client_order_id, _ = self.ids.issue(now)
        order = Order(client_order_id, request, now)
        self.orders[client_order_id] = order
        self.open_orders[client_order_id] = order
        issued(order)
        self.venue.submit_now(order)
        return order

    def cancel(self, client_order_id: str) -> None:
        order = self.open_orders.get(client_order_id)
        if order is None or not order.can_become(OrderStatus.PENDING_CANCEL):
            return
        self._apply(order, OrderStatus.PENDING_CANCEL, "")
        self.venue.cancel_now(client_order_id)

    # ------------------------------------------------------------------ reports

    def _on_event(self, event: BrokerEvent) -> None:
        if isinstance(event, Fill):
            self._on_fill(event)
        else:
            self._on_update(event)

    def _on_update(self, update: OrderUpdate) -> None:
        order = self.orders.get(update.client_order_id)
        if order is None or (update.status == order.status and not update.reason):
            return
        self._apply(order, update.status, update.reason)

    def _apply(self, order: Order, status: OrderStatus, reason: str) -> None:
        try:
            order.transition(status, self.clock.now_ns(), reason)
        except IllegalTransition as err:
            self.illegal.append(str(err))
            return
        if not order.is_open:
            self.open_orders.pop(order.client_order_id, None)
            self.on_end(order)

    def _on_fill(self, fill: Fill) -> None:
        order = self.orders.get(fill.client_order_id)
        if order is None:
            return
        try:
            event = order.apply_fill(fill)
        except OrderError as err:
            self.illegal.append(str(err))
            return
        if event is None:
            return
        state = self.market.states.get(fill.symbol)
        if state is not None:
            self.portfolio.mark(fill.symbol, state.last)
        self._changes += 1
        self.fills.append(fill)
        quantity, price = float(fill.quantity), float(fill.price)
        signed = quantity if fill.side == _BUY else -quantity
        self.cash -= signed * price + float(fill.commission)
        held = self.held.get(fill.symbol, 0.0) + signed
        if abs(held) < 1e-9:
            self.held.pop(fill.symbol, None)
        else:
            self.held[fill.symbol] = held
        if not order.is_open:
            self.open_orders.pop(order.client_order_id, None)
        self.on_fill(order, fill)
        if not order.is_open:
            self.on_end(order)

    def _mark(self, trade: Trade) -> None:
        self.portfolio.mark(trade.symbol, trade.price)
        self._changes += 1

    def mark(self, symbol: str, price: float) -> None:
        """Mark a position to a price the market state was set to directly (a backtest
        settling a symbol without its prints)."""
        self.portfolio.mark(symbol, price)
        self._changes += 1

    def book(self, also: str = "") -> RiskBook:
        """The account as risk sees it now, equal to `DeskViews.book`: the same
        positions, prices and open orders, and the equity and day's P&L of
        `Portfolio.summary` (not the rest of the summary, which risk does not read).

        The part that costs one step per position (their prices and values) is kept
        until a fill, a mark or a market event changes it: a universe sends many orders
        at one close, each judged against the same positions."""
        portfolio = self.portfolio
        states = self.market.states
        key = (self.market.seq, self._changes)
        if key != self._book_key:
            self._book_key = key
            self._book_positions, self._book_prices, self._book_value = self._positions_book()
        prices = dict(self._book_prices)
        open_orders = risk_open_orders(self.open_orders.values())
        extra = [also] if also else []
        extra += [order.symbol for order in open_orders]
        for symbol in extra:
            if symbol not in prices:
                state = states.get(symbol)
                if state is not None and state.last == state.last:
                    prices[symbol] = self._decimal(symbol, state.last)
        equity = portfolio.cash + self._book_value
        start = portfolio.day_start_equity
        day_pnl = equity - (start if start is not None else portfolio.starting_cash)
        return RiskBook(self._book_positions, prices, tuple(open_orders), equity, day_pnl)

    def _positions_book(self) -> tuple[dict[str, Decimal], dict[str, Decimal], Decimal]:
        """The held quantities, the prices of every symbol with a position (even a
        closed one, as `DeskViews.book` has them) and the positions' value
        (`Portfolio.summary`'s sum, in its order)."""
        decimal = self._decimal
        states = self.market.states
        positions: dict[str, Decimal] = {}
        prices: dict[str, Decimal] = {}
        values = []
        for position in self.portfolio.positions.values():
            symbol = position.symbol
            state = states.get(symbol)
            if state is not None and state.last == state.last:
                prices[symbol] = decimal(symbol, state.last)
            quantity = position.quantity
            if not quantity:
                values.append(ZERO)
                continue
            positions[symbol] = quantity
            # Position.market_value: at the last mark, or at cost before the first.
            last = position.last_price
            values.append(quantity * (position.average_cost if last != last
                                      else decimal(symbol, last)))
        return positions, prices, sum(values, ZERO)

    def _decimal(self, symbol: str, price: float) -> Decimal:
        """`as_decimal(price)`, remembered per symbol until its price moves."""
        known = self._decimals.get(symbol)
        if known is not None and known[0] == price:
            return known[1]
        value = Decimal(repr(price))
        self._decimals[symbol] = (price, value)
        return value

    def equity_at(self, closes: dict[str, float]) -> float:
        return self.cash + sum(quantity * closes[symbol]
                               for symbol, quantity in self.held.items())

    def equity(self) -> Decimal:
        return self.portfolio.equity()
