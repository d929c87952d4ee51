"""Reconciliation at start with a venue the engine does not own (Alpaca).

The journal says what we sent and what came back; the venue says what is true. At start
the desk brings the two together, in the order trusted engines use (orders, then fills,
then positions):
1. orders at the venue the journal never knew (placed on the broker's website or by
   another program: an order of ours always has its intent journaled first) are
   adopted, marked external (their strategy column reads "external"), so that risk
   counts them and the trader sees them;
2. fills since the last one recorded are applied, each once (a fill's id is the venue's);
3. after the in-flight orders are settled (by client order id, as for every venue),
   positions are compared; a difference left over (a position opened elsewhere) is
   adopted as an external fill at the venue's average price.
Every adoption and difference is written to the audit log and shown in the log pane.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from core.brokers.base import VenueOrder, VenueSnapshot, describe
from core.model import (
    NS_PER_SECOND,
    Fill,
    LogLevel,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from core.orders import Order
from core.portfolio import ZERO, Portfolio

if TYPE_CHECKING:
    from core.trading import TradingDesk

S = OrderStatus
EXTERNAL = "external"
FILL_LOOKBACK_NS = 24 * 3600 * NS_PER_SECOND  # with no fill recorded: the last day


def fills_since(desk: TradingDesk) -> int:
    """Where the venue's fills should be read from: the last fill the journal has, or
    the oldest open order if older (a fill of it may be missing), else a day back."""
    venue = desk.broker.name
    candidates = [fill.ts_ns for fill in desk.fills if fill.venue == venue][-1:]
    candidates += [order.created_ns for order in desk.orders.values() if order.is_open]
    if not candidates:
        return desk.now_ns() - FILL_LOOKBACK_NS
    return min(candidates)


class Reconciler:
    def __init__(self, desk: TradingDesk, snapshot: VenueSnapshot) -> None:
        self.desk = desk
        self.snapshot = snapshot
        self.adopted: list[str] = []
        self.differences: list[str] = []

    async def orders_and_fills(self) -> None:
        desk = self.desk
        by_venue_id = {order.venue_order_id: order for order in desk.orders.values()
                       if order.venue_order_id}
        venue_orders = [*self.snapshot.open_orders, *self.snapshot.other_orders]
        for venue in venue_orders:
            if venue.client_order_id in desk.orders or venue.venue_order_id in by_venue_id:
                continue
            await self._adopt(venue)
        for fill in sorted(self.snapshot.fills, key=lambda fill: fill.ts_ns):
            desk.on_broker_event(fill)
        # An adopted order that is over (canceled after a part filled) ends as the venue
        # says, after its fills.
        for venue in venue_orders:
            order = desk.orders.get(venue.client_order_id)
            if (order is not None and order.request.strategy == EXTERNAL
                    and venue.status in (S.CANCELED, S.EXPIRED, S.REJECTED, S.REPLACED)
                    and order.is_open):
                desk._apply(order, venue.status, desk.now_ns(), "as the venue has it")

    async def _adopt(self, venue: VenueOrder) -> None:
        desk = self.desk
        request = venue.request
        if request.strategy != EXTERNAL:
            request = OrderRequest(request.symbol, request.side, request.quantity,
                                   request.order_type, request.time_in_force,
                                   limit_price=request.limit_price,
                                   stop_price=request.stop_price,
                                   trail_amount=request.trail_amount,
                                   trail_percent=request.trail_percent, strategy=EXTERNAL)
        order = Order(venue.client_order_id, request, venue.created_ns or desk.now_ns(),
                      venue_order_id=venue.venue_order_id)
        await self._record(order)
        if order.can_become(S.ACCEPTED):
            desk._apply(order, S.ACCEPTED, desk.now_ns(), f"adopted from {desk.broker.name}",
                        venue.venue_order_id)
        message = (f"adopted {describe(order)} ({order.client_order_id}), an order the "
                   f"journal did not know, from {desk.broker.name}: marked external")
        self.adopted.append(order.client_order_id)
        desk.log_line(LogLevel.WARNING, "reconcile", message)
        desk.store.audit("reconcile", message, {"order": order.client_order_id,
                                                "venue_order_id": venue.venue_order_id})

    async def _record(self, order: Order) -> None:
        desk = self.desk
        # The id is the venue's, but the row still takes a sequence number of ours.
        _, sequence = desk.ids.issue(order.created_ns)
        desk.orders[order.client_order_id] = order
        desk._touched(order)
        await desk.journal.record_intent(order, sequence, desk.broker.name)

    async def positions(self) -> None:
        """Compare positions; adopt what the venue holds beyond the journal."""
        desk = self.desk
        venue = self.snapshot.positions
        ours = {symbol: position.quantity
                for symbol, position in desk.portfolio.positions.items() if position.quantity}
        for symbol in sorted(set(venue) | set(ours)):
            held, average = venue.get(symbol, (ZERO, ZERO))
            recorded = ours.get(symbol, ZERO)
            difference = held - recorded
            if difference == 0:
                continue
            price = average if average > 0 else desk.portfolio.positions[symbol].average_cost
            message = (f"{symbol}: {desk.broker.name} holds {held.normalize():f}, the journal "
                       f"{recorded.normalize():f}; adopted the difference as external at "
                       f"{price}")
            self.differences.append(message)
            desk.log_line(LogLevel.WARNING, "reconcile", message)
            desk.store.audit("reconcile", message,
                             {"symbol": symbol, "venue": str(held), "journal": str(recorded)})
            await self._adjust(symbol, difference, price)

    async def _adjust(self, symbol: str, difference: Decimal, price: Decimal) -> None:
        desk = self.desk
        now = desk.now_ns()
        side = Side.BUY if difference > 0 else Side.SELL
        quantity = abs(difference)
        coid = f"ext-{symbol}-{desk.ids.next_sequence:06d}"
        order = Order(coid, OrderRequest(symbol, side, quantity, OrderType.MARKET,
                                         TimeInForce.DAY, strategy=EXTERNAL), now)
        await self._record(order)
        desk.on_broker_event(Fill(f"reconcile:{coid}", coid, symbol, side, quantity, price,
                                  ZERO, now, desk.broker.name))

    def summary(self) -> str:
        if not self.adopted and not self.differences:
            return ""
        return (f"reconciled with {self.desk.broker.name}: {len(self.adopted)} external "
                f"orders adopted, {len(self.differences)} position differences")


def rebased(portfolio: Portfolio, cash: Decimal, fills: list[Fill]) -> Portfolio:
    """The book rebuilt so that its cash after `fills` is the venue's `cash` (a real
    account's history starts before the journal's)."""
    start = cash - (portfolio.cash - portfolio.starting_cash)
    book = Portfolio.start(start)
    for fill in fills:
        book.apply_fill(fill)
    return book
