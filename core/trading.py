"""The trading desk: the one path from a command to a broker, and the book of what came
back.

place -> checks of the request -> risk -> the journal's intent, committed -> the broker.
The broker reports on the loop (`on_broker_event`): each change is applied to the
order, the fill to the portfolio, and both are appended to the journal. Nothing reaches
a broker any other way; the kill switch and close-position orders pass risk too, held
to shrinking a position.

On start the desk rebuilds orders, fills and positions from the journal, then settles
the orders the journal holds as in flight by asking the broker by client order id: an
order the broker never received is marked rejected, never sent again.

The desk publishes every order event and fill on the bus (strategies and notifications
subscribe there) and keeps sequence numbers so consumers can pull only what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from core.account_watch import AccountWatch
from core.brokers.base import (
    Broker,
    BrokerError,
    BrokerEvent,
    BrokerInDoubt,
    describe,
)
from core.bus import Bus
from core.clock import ExchangeCalendar
from core.config import Settings
from core.desk_views import DeskViews, order_price
from core.journal import Journal
from core.market import MarketState
from core.model import (
    Fill,
    Instrument,
    LogLevel,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Side,
    Trade,
    TradingState,
)
from core.order_checks import bracket_legs, checked_request
from core.orders import ClientOrderIds, IllegalTransition, Order, OrderError, OrderEvent
from core.portfolio import ZERO, Portfolio
from core.reconcile import Reconciler, fills_since, rebased
from core.risk import OpenOrder, RiskDecision, RiskEngine
from core.state import (
    CommandError,
)
from core.store import Store, StoreError

log = logging.getLogger(__name__)


S = OrderStatus
TRADING_STATE_KEY = "risk.trading_state"


@dataclass(frozen=True, slots=True)
class KillReport:
    canceled: int
    flattening: list[str]  # client order ids of the closing orders
    problems: list[str]


class TradingDesk(DeskViews):
    def __init__(
        self,
        settings: Settings,
        store: Store,
        market: MarketState,
        broker: Broker,
        *,
        bus: Bus,
        now_ns: Callable[[], int],
        calendar: ExchangeCalendar,
        ensure_symbol: Callable[[str], Awaitable[Instrument | None]],
        log_line: Callable[[LogLevel, str, str], None],
    ) -> None:
        self.settings = settings
        self.store = store
        self.market = market
        self.broker = broker
        self.bus = bus
        self.now_ns = now_ns
        self.calendar = calendar
        self.journal = Journal(store)
        self.ensure_symbol = ensure_symbol
        self.log_line = log_line
        self.risk = RiskEngine(settings.risk)
        self.portfolio = Portfolio.start(ZERO)
        self.orders: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self.ids = ClientOrderIds(settings.trading.order_id_prefix, 1)
        self.order_seq = 0
        # Client order id -> the change number of its last change, in that order (an
        # order moves to the end when it changes), so a pull reads only the tail.
        self._order_seqs: dict[str, int] = {}
        self.open_orders: dict[str, Order] = {}
        self.watch = AccountWatch(self)
        self._tasks: list[asyncio.Task[Any]] = []
        self._unsubscribe: Callable[[], None] | None = None
        self.illegal_transitions = 0
        self._in_flight: list[Order] = []

    # ------------------------------------------------------------------ lifecycle

    async def load(self) -> None:
        """Rebuild from the journal (before the feed starts: the symbols in use must be
        tracked)."""
        state = await self.journal.load()
        self.orders = state.orders
        self.fills = state.fills
        self.ids.next_sequence = state.next_sequence
        for order in self.orders.values():
            self._touched(order)
        self._in_flight = state.in_flight()

    def symbols_in_use(self) -> list[str]:
        """Symbols with an open order or a position: the feed must keep serving them."""
        symbols = {o.symbol for o in self.open_orders.values()}
        symbols.update(p.symbol for p in self.portfolio.positions.values() if p.quantity)
        symbols.update(f.symbol for f in self.fills)  # positions before the portfolio loads
        return sorted(symbols)

    async def start(self) -> None:
        await self.broker.start(self.on_broker_event)
        account = await self.broker.account()
        starting_cash = account.starting_cash
        self.portfolio = Portfolio.start(ZERO if starting_cash is None else starting_cash)
        for fill in self.fills:
            self.portfolio.apply_fill(fill)
        snapshot = await self.broker.snapshot(list(self.orders.values()), fills_since(self))
        reconciler = None if snapshot is None else Reconciler(self, snapshot)
        if reconciler is not None:
            await reconciler.orders_and_fills()
        await self._reconcile(self._in_flight)
        self._in_flight = []
        if reconciler is not None:
            await reconciler.positions()
            if summary := reconciler.summary():
                self.log_line(LogLevel.WARNING, "reconcile", summary)
        if starting_cash is None:
            # A real account: its cash, not a starting figure, is what the book must show.
            self.portfolio = rebased(self.portfolio, account.cash, self.fills)
        for symbol, state in self.market.states.items():
            if state.last == state.last:
                self.portfolio.mark(symbol, state.last)
        await self._restore_trading_state()
        await self.watch.begin(account.buying_power)
        self._unsubscribe = self.bus.subscribe(Trade, self._on_trade)
        self._tasks = [asyncio.create_task(self.watch.run(), name="account-watch")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        with contextlib.suppress(Exception):
            await self.watch.save_snapshot()
        await self.broker.stop()

    async def _reconcile(self, in_flight: Sequence[Order]) -> None:
        for order in in_flight:
            try:
                known = await self.broker.lookup(order.client_order_id)
            except BrokerError as err:
                self.log_line(LogLevel.ERROR, "orders",
                              f"{order.client_order_id}: the {self.broker.name} broker could "
                              f"not be asked about it: {err}")
                continue
            now = self.now_ns()
            if known is None:
                self._apply(order, S.REJECTED, now,
                            f"never reached the {self.broker.name} venue (the engine stopped "
                            "before sending it); not sent again")
                continue
            if known.venue_order_id:
                order.venue_order_id = known.venue_order_id
            for fill in known.fills:
                self._on_fill(fill)
            if known.status != order.status and known.status != S.PARTIALLY_FILLED and (
                    known.status != S.FILLED):
                self._apply(order, known.status, now, known.reason or "settled on restart")
        if in_flight:
            self.log_line(LogLevel.INFO, "orders",
                          f"settled {len(in_flight)} in-flight orders with the "
                          f"{self.broker.name} broker")

    # ------------------------------------------------------------------ commands

    async def place(self, request: OrderRequest, *, flatten: bool = False,
                    issued: Callable[[Order], None] | None = None) -> Order:
        """Check, journal and send an order; returns it once the intent is durable and
        the broker has it. Raises CommandError with the reason when it is refused.
        `issued` learns the order as soon as it has its id, before any report about it
        (a strategy's fills can come back before this returns)."""
        request = await self._checked(request)
        legs_requests = bracket_legs(request)
        decision = self.risk.check(request, self.book(request.symbol), flatten=flatten,
                                   extra_orders=len(legs_requests))
        self._audit_decision(request, decision, flatten=flatten)
        if not decision.accepted:
            self.log_line(LogLevel.WARNING, "risk", f"refused {_phrase(request)}: "
                          f"{decision.reason}")
            raise CommandError(f"risk refused the order: {decision.reason}")
        self.risk.record_sent()
        now = self.now_ns()
        coid, sequence = self.ids.issue(now)
        order = Order(coid, request, now)
        intents = [(order, sequence)]
        legs: list[Order] = []
        for leg_request in legs_requests:
            leg_id, leg_sequence = self.ids.issue(now)
            leg = Order(leg_id, leg_request, now, parent_id=coid, oco_group=coid)
            legs.append(leg)
            intents.append((leg, leg_sequence))
        # Registered before the await, so a check that runs meanwhile counts it.
        for pending, _ in intents:
            self.orders[pending.client_order_id] = pending
            self._touched(pending)
        if issued is not None:
            issued(order)
        try:
            await self.journal.record_intents(intents, self.broker.name)
        except (StoreError, OSError, ValueError) as err:
            for pending, _ in intents:
                self.orders.pop(pending.client_order_id, None)
                self.open_orders.pop(pending.client_order_id, None)
            raise CommandError(f"the order was not sent: the journal could not record it "
                               f"({err})") from err
        await self._send(order, legs)
        return order

    async def _send(self, order: Order, legs: Sequence[Order]) -> None:
        try:
            await self.broker.submit(order, legs)
        except BrokerInDoubt as err:
            # Not rejected: the venue may have it. The broker settles it by lookup.
            self.log_line(LogLevel.WARNING, "orders", f"{describe(order)}: {err}")
        except BrokerError as err:
            now = self.now_ns()
            for sent in (order, *legs):
                if sent.status == S.PENDING_NEW:
                    self._apply(sent, S.REJECTED, now, str(err))
            raise CommandError(f"the {self.broker.name} broker refused the order: {err}") \
                from err

    async def cancel(self, client_order_id: str) -> None:
        order = self._open_order(client_order_id)
        if order.status in (S.PENDING_CANCEL, S.PENDING_REPLACE):
            raise CommandError(f"{client_order_id} is already "
                               f"{order.status.value.replace('_', ' ')}")
        self._apply(order, S.PENDING_CANCEL, self.now_ns(), "")
        self.store.audit("order", f"cancel {client_order_id}", {"order": client_order_id})
        try:
            await self.broker.cancel(client_order_id)
        except BrokerError as err:
            back = S.ACCEPTED if order.filled_quantity == 0 else S.PARTIALLY_FILLED
            if _still(order, S.PENDING_CANCEL):
                self._apply(order, back, self.now_ns(), f"cancel failed: {err}")
            raise CommandError(f"the cancel did not go through: {err}") from err

    async def replace(self, client_order_id: str, *, quantity: Decimal | None = None,
                      limit_price: Decimal | None = None,
                      stop_price: Decimal | None = None) -> Order:
        """Replace an open order's quantity (what is left to fill) or prices."""
        old = self._open_order(client_order_id)
        if old.status in (S.PENDING_CANCEL, S.PENDING_REPLACE):
            raise CommandError(f"{client_order_id} is {old.status.value.replace('_', ' ')}: "
                               "wait for the venue's answer")
        if "replace" not in self.broker.capabilities:
            raise CommandError(f"the {self.broker.name} broker cannot replace orders")
        request = replace(
            old.request,
            quantity=quantity if quantity is not None else old.remaining,
            limit_price=limit_price if limit_price is not None else old.request.limit_price,
            stop_price=stop_price if stop_price is not None else old.request.stop_price,
            take_profit=None, stop_loss=None)
        if request == replace(old.request, quantity=old.remaining, take_profit=None,
                              stop_loss=None):
            raise CommandError("nothing to change: the order already reads so")
        request = await self._checked(request)
        if old.parent_id:
            # A bracket leg only ever closes what its entry opened (the venue holds it
            # to that), so moving it is judged as closing, in any trading state.
            decision = RiskDecision(True, "", "bracket leg")
        else:
            replacing = OpenOrder(old.symbol, old.side, old.remaining, order_price(old))
            decision = self.risk.check(request, self.book(request.symbol), replacing=replacing)
        self._audit_decision(request, decision, replaces=client_order_id)
        if not decision.accepted:
            raise CommandError(f"risk refused the change: {decision.reason}")
        now = self.now_ns()
        coid, sequence = self.ids.issue(now)
        new = Order(coid, request, now, parent_id=old.parent_id, oco_group=old.oco_group,
                    replaces=client_order_id)
        self.orders[coid] = new
        self._touched(new)
        try:
            await self.journal.record_intent(new, sequence, self.broker.name)
        except (StoreError, OSError, ValueError) as err:
            self.orders.pop(coid, None)
            self.open_orders.pop(coid, None)
            raise CommandError(f"the change was not sent: the journal could not record it "
                               f"({err})") from err
        if old.is_open and old.can_become(S.PENDING_REPLACE):
            self._apply(old, S.PENDING_REPLACE, now, "")
        try:
            await self.broker.replace(client_order_id, new)
        except BrokerError as err:
            self._apply(new, S.REJECTED, self.now_ns(), str(err))
            if _still(old, S.PENDING_REPLACE):
                back = S.ACCEPTED if old.filled_quantity == 0 else S.PARTIALLY_FILLED
                self._apply(old, back, self.now_ns(), f"replace failed: {err}")
            raise CommandError(f"the change did not go through: {err}") from err
        return new

    async def cancel_all(self, symbol: str | None = None) -> int:
        """Cancel every open order (of one symbol); returns how many were asked."""
        asked = 0
        for order in list(self.open_orders.values()):
            if not order.is_open or order.status == S.PENDING_CANCEL:
                continue
            if symbol is not None and order.symbol != symbol:
                continue
            with contextlib.suppress(CommandError):
                await self.cancel(order.client_order_id)
                asked += 1
        return asked

    async def close_position(self, symbol: str) -> Order:
        """Cancel the symbol's open orders (bracket legs would reopen it), then close the
        position at the market."""
        quantity = self.portfolio.position(symbol)
        if quantity == 0:
            raise CommandError(f"there is no {symbol} position to close")
        await self.cancel_all(symbol)
        request = OrderRequest(symbol, Side.SELL if quantity > 0 else Side.BUY, abs(quantity),
                               strategy="close")
        return await self.place(request, flatten=True)

    async def kill(self) -> KillReport:
        """The kill switch: halt, cancel every open order, close every position."""
        self.set_trading_state(TradingState.HALTED, "kill switch")
        report = await self._flatten("kill switch")
        self.bus.publish(report)  # the notifier's kill_switch
        return report

    async def flatten(self) -> KillReport:
        """Cancel every open order and close every position at the market, leaving the
        trading state as it is (`tapedeck flatten`)."""
        return await self._flatten("flatten")

    async def _flatten(self, why: str) -> KillReport:
        canceled = await self.cancel_all()
        flattening: list[str] = []
        problems: list[str] = []
        for position in list(self.portfolio.positions.values()):
            if position.quantity == 0:
                continue
            request = OrderRequest(position.symbol,
                                   Side.SELL if position.quantity > 0 else Side.BUY,
                                   abs(position.quantity), strategy=why)
            try:
                order = await self.place(request, flatten=True)
            except CommandError as err:
                problems.append(f"{position.symbol}: {err}")
                continue
            flattening.append(order.client_order_id)
        message = f"{why}: {canceled} orders canceled, {len(flattening)} positions closing"
        if why == "kill switch":
            message = message.replace(": ", ": halted, ", 1)
        if problems:
            message += "; could not close " + "; ".join(problems)
        self.log_line(LogLevel.WARNING if problems else LogLevel.INFO, "risk", message)
        self.store.audit(why, message, {"canceled": canceled, "closing": flattening})
        return KillReport(canceled, flattening, problems)

    def set_trading_state(self, state: TradingState, reason: str) -> None:
        """The trader's (or the kill switch's) choice: it outlives a restart."""
        change = self.risk.set_state(state, reason or "set by the trader")
        if change is None:
            return
        self.watch.state_changed(change)
        self.store.submit(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (TRADING_STATE_KEY, json.dumps({"state": state.value,
                                            "reason": self.risk.state_reason})),
        ).add_done_callback(_log_journal_failure)

    async def _restore_trading_state(self) -> None:
        saved = await self.store.get_setting(TRADING_STATE_KEY)
        if not isinstance(saved, dict) or saved.get("state") not in set(TradingState):
            return
        state = TradingState(saved["state"])
        if state != TradingState.ACTIVE:
            self.risk.set_state(state, str(saved.get("reason") or "set by the trader"))
            self.log_line(LogLevel.WARNING, "risk", f"trading is {state.value} "
                          f"({self.risk.state_reason}), as it was left")

    # ------------------------------------------------------------------ checks

    async def _checked(self, request: OrderRequest) -> OrderRequest:
        return await checked_request(request, self.broker, self.ensure_symbol)

    def precheck(self, request: OrderRequest) -> RiskDecision:
        """What risk would say, without sending or counting anything (the ticket)."""
        problems = request.problems()
        if problems:
            return RiskDecision(False, "; ".join(problems), "request")
        return self.risk.check(request, self.book(request.symbol),
                               extra_orders=len(bracket_legs(request)))

    def _audit_decision(self, request: OrderRequest, decision: RiskDecision, *,
                        flatten: bool = False, replaces: str = "") -> None:
        verdict = "accepted" if decision.accepted else "refused"
        message = f"{verdict} {_phrase(request)}"
        if decision.reason:
            message += f": {decision.reason}"
        data = {"check": decision.check, "notional": str(decision.notional),
                "state": self.risk.state.value, "flatten": flatten}
        if replaces:
            data["replaces"] = replaces
        self.store.audit("risk", message, data, ts_ns=self.now_ns())

    def _open_order(self, client_order_id: str) -> Order:
        order = self.orders.get(client_order_id)
        if order is None:
            raise CommandError(f"there is no order {client_order_id}")
        if not order.is_open:
            raise CommandError(f"{client_order_id} is already {order.status.value}")
        return order

    # ------------------------------------------------------------------ broker reports

    def on_broker_event(self, event: BrokerEvent) -> None:
        if isinstance(event, Fill):
            self._on_fill(event)
        else:
            self._on_update(event)

    def _on_update(self, update: OrderUpdate) -> None:
        order = self.orders.get(update.client_order_id)
        if order is None:
            self.log_line(LogLevel.ERROR, "orders", f"the {self.broker.name} broker reported "
                          f"{update.status.value} for an unknown order {update.client_order_id}")
            return
        if update.venue_order_id:
            order.venue_order_id = update.venue_order_id
        if update.status == order.status and not update.reason:
            return
        self._apply(order, update.status, update.ts_ns, update.reason, update.venue_order_id)
        if update.status == S.REJECTED:
            self.log_line(LogLevel.WARNING, "orders",
                          f"{describe(order)} rejected: {update.reason}")
        elif update.status == S.EXPIRED:
            self.log_line(LogLevel.INFO, "orders", f"{describe(order)} expired")

    def _apply(self, order: Order, status: OrderStatus, ts_ns: int, reason: str,
               venue_order_id: str = "") -> None:
        try:
            event = order.transition(status, ts_ns, reason)
        except IllegalTransition as err:
            self._illegal(err)
            return
        self._record(event, venue_order_id)
        self._touched(order)
        self.bus.publish(event)

    def _illegal(self, err: OrderError) -> None:
        self.illegal_transitions += 1
        self.log_line(LogLevel.ERROR, "orders", str(err))
        self.store.audit("illegal transition", str(err))

    def _record(self, event: OrderEvent, venue_order_id: str = "") -> None:
        try:
            self.journal.record_event(event, venue_order_id).add_done_callback(
                _log_journal_failure)
        except StoreError as err:
            log.error("order event not journaled: %s", err)

    def _on_fill(self, fill: Fill) -> None:
        order = self.orders.get(fill.client_order_id)
        if order is None:
            self.log_line(LogLevel.ERROR, "orders", f"fill {fill.fill_id} for an unknown "
                          f"order {fill.client_order_id}")
            return
        try:
            event = order.apply_fill(fill)
        except OrderError as err:
            self._illegal(err)
            return
        if event is None:
            return  # reported before
        self.portfolio.apply_fill(fill)
        state = self.market.states.get(fill.symbol)
        if state is not None and state.last == state.last:
            self.portfolio.mark(fill.symbol, state.last)
        self.fills.append(fill)
        try:
            self.journal.record_fill(fill, event).add_done_callback(_log_journal_failure)
        except StoreError as err:
            log.error("fill not journaled: %s", err)
        self._touched(order)
        self.bus.publish(event)
        self.bus.publish(fill)
        self.log_line(LogLevel.INFO, "fills",
                      f"{fill.side.value} {fill.quantity.normalize():f} {fill.symbol} @ "
                      f"{fill.price} ({order.client_order_id}, "
                      f"{order.filled_quantity.normalize():f}/"
                      f"{order.quantity.normalize():f})")

    def _touched(self, order: Order) -> None:
        self.order_seq += 1
        client_order_id = order.client_order_id
        self._order_seqs.pop(client_order_id, None)
        self._order_seqs[client_order_id] = self.order_seq
        if order.is_open:
            self.open_orders[client_order_id] = order
        else:
            self.open_orders.pop(client_order_id, None)

    def _on_trade(self, trade: Trade) -> None:
        self.portfolio.mark(trade.symbol, trade.price)

def _still(order: Order, status: OrderStatus) -> bool:
    """The order's status now (after an await, when a report may have moved it)."""
    return order.status == status


def _phrase(request: OrderRequest) -> str:
    return describe(Order("", request, 0))


def _log_journal_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and (err := future.exception()) is not None:
        log.error("the order journal could not record a change: %s", err)
