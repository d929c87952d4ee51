"""The paper venue: a simulated broker that fills orders against the live quote stream.

How it fills (each rule is a test in tests/core/test_paper.py):
- An order arrives after `latency_ms`. A marketable one fills at once against the
  current quote, taking at most `volume_share` of the displayed size on its side.
- A market order, or a stop once triggered, fills at the far side (the ask to buy, the
  bid to sell) moved `slippage_bps` against the trader. A limit order fills when the
  quote crosses it, at the far side, never worse than its limit.
- Stops trigger on the last trade: a buy stop at or above its stop price, a sell stop
  at or below. A price that gaps through the stop fills at the market, not at the stop.
  A trailing stop's stop follows the best trade since it arrived.
- Each later quote lets a resting order take at most `volume_share` of the volume
  traded since the previous quote: a large order fills in parts.
- Fills happen only in the regular session. Day orders expire at the session's close
  (an order that arrives after the close works the next session); IOC orders cancel
  whatever they could not fill on arrival.
- Bracket legs wait for their entry: each can fill at most what the entry has filled
  and the other leg has not closed, so they never open a position of their own; when
  the position they protect is closed or the entry ended unfilled, the rest cancel.

Buying power: a cash account buys with its cash less what its open buy orders hold
and cannot sell short; a margin account may hold `margin_multiplier` times its equity
in gross exposure. An order beyond it is rejected with the numbers in the reason.

The venue keeps its own books (tables paper_orders, paper_fills, paper_account) so
its resting orders survive a restart, and writes each change before reporting it: the
store commits in submission order, so the venue never knows less than the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from core.brokers.base import (
    Broker,
    BrokerAccount,
    BrokerContext,
    BrokerError,
    Report,
    VenueOrderState,
)
from core.config import Settings
from core.config_trading import PaperSettings
from core.journal import request_from_json, request_to_json
from core.model import (
    TERMINAL_STATUSES,
    Fill,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Quote,
    Side,
    TimeInForce,
    Trade,
    by_fields,
)
from core.orders import Order
from core.portfolio import ZERO, Portfolio, as_decimal

log = logging.getLogger(__name__)

# Enum members as module constants: on Python 3.11 every attribute read on an enum
# class goes through EnumType.__getattr__, and the venue reads them on every event.
ACCEPTED, CANCELED, EXPIRED = OrderStatus.ACCEPTED, OrderStatus.CANCELED, OrderStatus.EXPIRED
FILLED, PARTIALLY_FILLED = OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED
PENDING_REPLACE, REJECTED = OrderStatus.PENDING_REPLACE, OrderStatus.REJECTED
REPLACED = OrderStatus.REPLACED
BUY, SELL = Side.BUY, Side.SELL
DAY, IOC = TimeInForce.DAY, TimeInForce.IOC
STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP})
EXPIRY_CHECK_S = 0.5
STARTING_CASH_KEY = "starting_cash"
BPS = Decimal(10_000)


@dataclass(slots=True)
class PaperOrder:
    """The venue's own record of an order. (Its `__init__` is written out to be native
    when compiled: see `core.model`'s docstring.)"""

    client_order_id: str
    venue_order_id: str
    request: OrderRequest
    received_ns: int
    status: OrderStatus
    filled: Decimal
    fills: int  # how many fills so far: the next fill's id is venue id + count
    parent_id: str  # a bracket leg's entry
    legs: tuple[str, ...]  # a bracket entry's legs
    triggered: bool  # a stop whose stop price was reached
    extreme: float  # a trailing stop: the best trade since it arrived
    expires_ns: int  # day orders: the close of their session; 0 never
    volume_mark: float  # the symbol's day volume at the last chance to fill
    volume_session: int  # ... and the session that volume belongs to

    def __init__(self, client_order_id: str, venue_order_id: str, request: OrderRequest,
                 received_ns: int, status: OrderStatus = ACCEPTED, filled: Decimal = ZERO,
                 fills: int = 0, parent_id: str = "", legs: tuple[str, ...] = (),
                 triggered: bool = False, extreme: float = math.nan, expires_ns: int = 0,
                 volume_mark: float = -1.0, volume_session: int = 0) -> None:
        self.client_order_id = client_order_id
        self.venue_order_id = venue_order_id
        self.request = request
        self.received_ns = received_ns
        self.status = status
        self.filled = filled
        self.fills = fills
        self.parent_id = parent_id
        self.legs = legs
        self.triggered = triggered
        self.extreme = extreme
        self.expires_ns = expires_ns
        self.volume_mark = volume_mark
        self.volume_session = volume_session

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return by_fields(self)

    @property
    def remaining(self) -> Decimal:
        return self.request.quantity - self.filled

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL_STATUSES

    def state_json(self) -> str:
        return json.dumps({
            "venue_order_id": self.venue_order_id, "request": request_to_json(self.request),
            "received": self.received_ns, "status": self.status.value,
            "filled": str(self.filled), "fills": self.fills, "parent_id": self.parent_id,
            "legs": list(self.legs), "triggered": self.triggered,
            "extreme": None if math.isnan(self.extreme) else self.extreme,
            "expires": self.expires_ns, "volume_mark": self.volume_mark,
            "volume_session": self.volume_session,
        })

    @classmethod
    def from_json(cls, client_order_id: str, text: str) -> PaperOrder:
        data: dict[str, Any] = json.loads(text)
        extreme = data.get("extreme")
        return cls(
            client_order_id, data["venue_order_id"], request_from_json(data["request"]),
            int(data["received"]), OrderStatus(data["status"]), Decimal(data["filled"]),
            int(data["fills"]), data["parent_id"], tuple(data["legs"]),
            bool(data["triggered"]), math.nan if extreme is None else float(extreme),
            int(data["expires"]), float(data["volume_mark"]), int(data["volume_session"]),
        )


class PaperVenue(Broker):
    name = "paper"
    capabilities = frozenset({"stop", "stop_limit", "trailing_stop", "bracket", "replace"})

    def __init__(self, settings: PaperSettings, context: BrokerContext) -> None:
        self.settings = settings
        self.market = context.market
        self.bus = context.bus
        self.now_ns = context.now_ns
        self.calendar = context.calendar
        self.store = context.store
        self.portfolio = Portfolio.start(settings.starting_cash)
        self.orders: dict[str, PaperOrder] = {}
        self._working: dict[str, list[PaperOrder]] = {}  # open orders by symbol
        self._fills: dict[str, list[Fill]] = {}  # by client order id
        self._report: Report | None = None
        self._next_venue_id = 1
        self._unsubscribe: list[Any] = []
        self._expiry_task: asyncio.Task[None] | None = None
        self._session = (0, 0, 0, 0)  # day start, open, close, day end (ns) of the last event
        self._expiries = (0, 0, 0, 0)  # day start, day end, its close, the next session's
        self._slippage = settings.slippage_bps / BPS
        self._buy_slip, self._sell_slip = 1 + self._slippage, 1 - self._slippage

    @classmethod
    def from_settings(cls, settings: Settings, context: BrokerContext) -> PaperVenue:
        return cls(settings.paper, context)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, report: Report) -> None:
        self._report = report
        await self._load()
        self._unsubscribe = [self.bus.subscribe(Quote, self._on_quote),
                             self.bus.subscribe(Trade, self._on_trade)]
        self._expiry_task = asyncio.create_task(self._expire_periodically(),
                                                name="paper-expiry")

    def attach(self, report: Report) -> None:
        """Start without books (a backtest): fresh cash, no database, no expiry task
        (the backtest's quotes expire day orders)."""
        self._report = report
        self._unsubscribe = [self.bus.subscribe(Quote, self._on_quote),
                             self.bus.subscribe(Trade, self._on_trade)]

    def working_symbols(self) -> Collection[str]:
        """Symbols with an order that may still fill (a backtest feeds them every
        point of a bar's path, and skips the rest)."""
        return self._working.keys()

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        if self._expiry_task is not None:
            self._expiry_task.cancel()
            with contextlib.suppress(BaseException):
                await self._expiry_task
            self._expiry_task = None
        self._report = None

    async def _load(self) -> None:
        if self.store is None:
            return
        row = await self.store.fetchone("SELECT value FROM paper_account WHERE key = ?",
                                        (STARTING_CASH_KEY,))
        if row is None:
            # A new account: its cash is fixed now, so a later change to the setting
            # cannot rewrite the history of this one.
            await self.store.execute("INSERT INTO paper_account (key, value) VALUES (?, ?)",
                                     (STARTING_CASH_KEY, str(self.settings.starting_cash)))
            starting = self.settings.starting_cash
        else:
            starting = Decimal(row["value"])
        self.portfolio = Portfolio.start(starting)
        for row in await self.store.fetchall(
            "SELECT client_order_id, state FROM paper_orders ORDER BY rowid"
        ):
            order = PaperOrder.from_json(row["client_order_id"], row["state"])
            self.orders[order.client_order_id] = order
            if order.is_open:
                self._working.setdefault(order.request.symbol, []).append(order)
        self._next_venue_id = len(self.orders) + 1
        for row in await self.store.fetchall(
            "SELECT fill_id, client_order_id, symbol, side, quantity, price, commission, ts "
            "FROM paper_fills ORDER BY ts, rowid"
        ):
            fill = Fill(row["fill_id"], row["client_order_id"], row["symbol"],
                        Side(row["side"]), Decimal(row["quantity"]), Decimal(row["price"]),
                        Decimal(row["commission"]), int(row["ts"]), self.name)
            self._fills.setdefault(fill.client_order_id, []).append(fill)
            self.portfolio.apply_fill(fill)

    async def _expire_periodically(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_CHECK_S)
            self.expire_due(self.now_ns())

    # ------------------------------------------------------------------ commands

    async def submit(self, order: Order, legs: Sequence[Order] = ()) -> None:
        self.submit_now(order, legs, latency=True)

    def submit_now(self, order: Order, legs: Sequence[Order] = (), *,
                   latency: bool = False) -> None:
        """Submit without awaiting (a backtest: no latency, the reports come back
        before this returns)."""
        for known in (order, *legs):
            if known.client_order_id in self.orders:
                raise BrokerError(f"the paper venue already has an order "
                                  f"{known.client_order_id}: ids are never reused")
        if latency:
            self._after_latency(self._arrive, order, tuple(legs))
        else:
            self._arrive(order, tuple(legs))

    async def cancel(self, client_order_id: str) -> None:
        self._after_latency(self._cancel, client_order_id)

    def cancel_now(self, client_order_id: str) -> None:
        self._cancel(client_order_id)

    async def replace(self, client_order_id: str, new: Order) -> None:
        if new.client_order_id in self.orders:
            raise BrokerError(f"the paper venue already has an order {new.client_order_id}")
        self._after_latency(self._replace, client_order_id, new)

    async def lookup(self, client_order_id: str) -> VenueOrderState | None:
        order = self.orders.get(client_order_id)
        if order is None:
            return None
        return VenueOrderState(client_order_id, order.status, order.filled,
                               order.venue_order_id, "",
                               tuple(self._fills.get(client_order_id, ())))

    async def account(self) -> BrokerAccount:
        cash = self.portfolio.cash
        equity, gross = self._equity_and_gross()
        if self.settings.account == "cash":
            power = cash - self._reserved(cash_account=True)
        else:
            power = (equity * self.settings.margin_multiplier - gross
                     - self._reserved(cash_account=False))
        return BrokerAccount(self.portfolio.starting_cash, cash, equity, max(power, ZERO),
                             self.settings.account)

    def _after_latency(self, action: Any, *args: Any) -> None:
        delay = self.settings.latency_ms / 1000
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, action, *args)
        else:
            action(*args)

    # ------------------------------------------------------------------ arrival

    def _arrive(self, order: Order, legs: tuple[Order, ...]) -> None:
        now = self.now_ns()
        entry = self._record(order, now, legs=tuple(leg.client_order_id for leg in legs))
        problem = self._refusal(entry)
        if problem:
            entry.status = REJECTED
            self._persist(entry, insert=True)
            self._emit(OrderUpdate(entry.client_order_id, REJECTED, now, problem,
                                   entry.venue_order_id))
            for leg in legs:
                rejected = self._record(leg, now, parent_id=entry.client_order_id)
                rejected.status = REJECTED
                self._persist(rejected, insert=True)
                self._emit(OrderUpdate(leg.client_order_id, REJECTED, now,
                                       "the bracket's entry was rejected",
                                       rejected.venue_order_id))
            return
        self._accept(entry, now)
        for leg in legs:
            self._accept(self._record(leg, now, parent_id=entry.client_order_id), now)
        self._first_look(entry, now)

    def _record(self, order: Order, now: int, *, legs: tuple[str, ...] = (),
                parent_id: str = "") -> PaperOrder:
        paper = PaperOrder(order.client_order_id, f"paper-{self._next_venue_id:08d}",
                           order.request, now, parent_id=parent_id or order.parent_id,
                           legs=legs, expires_ns=self._expiry(order.request, now))
        self._next_venue_id += 1
        self.orders[paper.client_order_id] = paper
        return paper

    def _accept(self, order: PaperOrder, now: int) -> None:
        state = self.market.states.get(order.request.symbol)
        if state is not None:
            order.volume_mark, order.volume_session = state.volume, state.session_start_ns
        self._working.setdefault(order.request.symbol, []).append(order)
        self._persist(order, insert=True)
        reason = "held until its entry fills" if order.parent_id and (
            self._fillable(order) <= 0) else ""
        self._emit(OrderUpdate(order.client_order_id, ACCEPTED, now, reason,
                               order.venue_order_id))

    def _expiry(self, request: OrderRequest, now: int) -> int:
        if request.time_in_force != DAY:
            return 0
        # The close it expires at, worked out once per calendar day (a universe's
        # orders arrive by the hundred at one close).
        day_start, day_end, close, next_close = self._expiries
        if not day_start <= now < day_end:
            calendar = self.calendar
            day = calendar.session_date(now)
            day_start, _, close, day_end = calendar.day_bounds(day)  # close 0: no session
            next_close = calendar.day_bounds(calendar.next_session(day))[2]
            self._expiries = (day_start, day_end, close, next_close)
        return close if now < close else next_close

    def _refusal(self, order: PaperOrder) -> str:
        """Why the venue will not take the order ('' when it will)."""
        request = order.request
        if request.symbol not in self.market.states:
            return f"the paper venue has no market for {request.symbol}"
        if request.quantity <= 0:
            return "the quantity must be positive"
        return self._buying_power_problem(request)

    def _first_look(self, order: PaperOrder, now: int) -> None:
        """A new order meets the current quote: fill what is marketable at once."""
        state = self.market.states.get(order.request.symbol)
        if state is not None and self._in_session(now):
            buying = order.request.side == BUY
            displayed = state.ask_size if buying else state.bid_size
            self._try_fill(order, state.bid, state.ask, displayed, now)
        if order.request.time_in_force == IOC and order.is_open:
            self._close(order, CANCELED, now,
                        f"immediate-or-cancel: {order.filled.normalize():f} of "
                        f"{order.request.quantity.normalize():f} filled on arrival")

    # ------------------------------------------------------------------ cancel, replace

    def _cancel(self, client_order_id: str) -> None:
        now = self.now_ns()
        order = self.orders.get(client_order_id)
        if order is None:
            # The engine asked to cancel an order that never arrived: nothing works it.
            self._emit(OrderUpdate(client_order_id, CANCELED, now,
                                   "the paper venue never received it"))
            return
        if not order.is_open:
            return  # it filled or ended first: that report already went out
        self._close(order, CANCELED, now, "canceled")

    def _replace(self, client_order_id: str, new: Order) -> None:
        now = self.now_ns()
        old = self.orders.get(client_order_id)
        replacement = self._record(new, now, parent_id=old.parent_id if old else "")
        problem = ""
        if old is None or not old.is_open:
            problem = "the order it replaces is no longer open"
        elif old.legs and any(self.orders[leg].is_open for leg in old.legs
                              if leg in self.orders):
            problem = "a bracket's entry cannot be changed: cancel it and place a new bracket"
        else:
            # Its own reservation is released for the check: the new order takes its place.
            old.status = PENDING_REPLACE
            problem = self._refusal(replacement)
            old.status = ACCEPTED if old.filled == 0 else PARTIALLY_FILLED
        if problem:
            replacement.status = REJECTED
            self._persist(replacement, insert=True)
            self._emit(OrderUpdate(new.client_order_id, REJECTED, now, problem,
                                   replacement.venue_order_id))
            if old is not None and old.is_open:
                self._emit(OrderUpdate(old.client_order_id, old.status, now,
                                       f"replace refused: {problem}"))
            return
        assert old is not None
        self._close(old, REPLACED, now, f"replaced by {new.client_order_id}")
        if old.parent_id and old.parent_id in self.orders:
            entry = self.orders[old.parent_id]
            entry.legs = tuple(new.client_order_id if leg == old.client_order_id else leg
                               for leg in entry.legs)
            self._persist(entry)
        self._accept(replacement, now)
        self._first_look(replacement, now)

    def _close(self, order: PaperOrder, status: OrderStatus, now: int, reason: str) -> None:
        order.status = status
        working = self._working.get(order.request.symbol)
        if working is not None and order in working:
            working.remove(order)
            if not working:
                del self._working[order.request.symbol]
        self._persist(order)
        self._emit(OrderUpdate(order.client_order_id, status, now, reason,
                               order.venue_order_id))
        self._settle_bracket(order, now)

    def expire_due(self, now: int) -> None:
        """Expire day orders whose session has closed."""
        for working in list(self._working.values()):
            for order in list(working):
                if order.expires_ns and now >= order.expires_ns and order.is_open:
                    self._close(order, EXPIRED, now, "a day order expires at the close")

    # ------------------------------------------------------------------ the hot path

    def _on_trade(self, trade: Trade) -> None:
        working = self._working.get(trade.symbol)
        if working is None:
            return
        price = trade.price
        for order in working:
            if order.request.order_type in STOP_TYPES and not order.triggered:
                self._watch_stop(order, price)

    def _on_quote(self, quote: Quote) -> None:
        working = self._working.get(quote.symbol)
        if working is None:
            return
        ts = quote.ts_ns
        if not self._in_session(ts):
            return
        state = self.market.states.get(quote.symbol)
        if state is None:
            return
        volume, session = state.volume, state.session_start_ns
        for order in list(working):
            if order.expires_ns and ts >= order.expires_ns:
                self._close(order, EXPIRED, ts, "a day order expires at the close")
                continue
            mark = order.volume_mark
            same_session = order.volume_session == session and mark >= 0
            traded = volume - mark if same_session else volume
            order.volume_mark, order.volume_session = volume, session
            if traded > 0:
                self._try_fill(order, quote.bid, quote.ask, traded, ts)

    def _watch_stop(self, order: PaperOrder, price: float) -> None:
        if self._fillable(order) <= 0:
            return  # a bracket leg with nothing to protect yet does not trigger
        request = order.request
        buying = request.side == BUY
        if request.order_type == OrderType.TRAILING_STOP:
            extreme = order.extreme
            if extreme != extreme or (price < extreme if buying else price > extreme):
                order.extreme = extreme = price
            stop = self._trail_stop(request, extreme)
        else:
            assert request.stop_price is not None
            stop = float(request.stop_price)
        if price >= stop if buying else price <= stop:
            order.triggered = True
            self._persist(order)

    @staticmethod
    def _trail_stop(request: OrderRequest, extreme: float) -> float:
        buying = request.side == BUY
        if request.trail_amount is not None:
            trail = float(request.trail_amount)
            return extreme + trail if buying else extreme - trail
        assert request.trail_percent is not None
        share = float(request.trail_percent) / 100
        return extreme * (1 + share) if buying else extreme * (1 - share)

    def _try_fill(self, order: PaperOrder, bid: float, ask: float, liquidity: float,
                  ts: int) -> None:
        price = self._fill_price(order, bid, ask)
        if price is None:
            return
        state = self.market.states[order.request.symbol]
        lot = state.instrument.lot_size
        cap = (Decimal(repr(liquidity * self.settings.volume_share)) / lot).to_integral_value(
            ROUND_DOWN) * lot
        quantity = min(self._fillable(order), cap)
        if quantity > 0:
            self._fill(order, quantity, state.instrument.round_price(price), ts)

    def _fill_price(self, order: PaperOrder, bid: float, ask: float) -> Decimal | None:
        """The price a fill would get now, or None when the order is not marketable."""
        request = order.request
        buying = request.side == BUY
        far = ask if buying else bid
        if far != far or far <= 0:
            return None
        kind = request.order_type
        if kind in STOP_TYPES and not order.triggered:
            return None
        far_price = as_decimal(far)
        if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            limit = request.limit_price
            assert limit is not None
            if far_price > limit if buying else far_price < limit:
                return None
            return far_price
        slip = far_price * self._slippage
        return far_price + slip if buying else far_price - slip

    def _fillable(self, order: PaperOrder) -> Decimal:
        """How much may fill now: the rest of the order, or for a bracket leg, what its
        entry has filled that neither leg has closed yet."""
        if not order.parent_id:
            return order.remaining
        entry = self.orders.get(order.parent_id)
        if entry is None:
            return ZERO
        closed = sum((self.orders[leg].filled for leg in entry.legs if leg in self.orders),
                     ZERO)
        return min(order.remaining, entry.filled - closed)

    def _fill(self, order: PaperOrder, quantity: Decimal, price: Decimal, ts: int) -> None:
        order.fills += 1
        order.filled += quantity
        request = order.request
        fill = Fill(f"{order.venue_order_id}-{order.fills}", order.client_order_id,
                    request.symbol, request.side, quantity, price,
                    self._commission(quantity, price), ts, self.name)
        self._fills.setdefault(order.client_order_id, []).append(fill)
        self.portfolio.apply_fill(fill)
        done = order.filled >= request.quantity
        if done:
            order.status = FILLED
            working = self._working.get(request.symbol)
            if working is not None and order in working:
                working.remove(order)
                if not working:
                    del self._working[request.symbol]
        else:
            order.status = PARTIALLY_FILLED
        # The venue's books first, then the report: the store commits in order.
        if self.store is not None:
            self._save_fill(order, fill)
        self._emit(fill)
        self._settle_bracket(order, ts)

    def _save_fill(self, order: PaperOrder, fill: Fill) -> None:
        assert self.store is not None
        self.store.submit_many([
            self._state_statement(order),
            ("INSERT INTO paper_fills (fill_id, client_order_id, symbol, side, quantity, "
             "price, commission, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
             (fill.fill_id, fill.client_order_id, fill.symbol, fill.side.value,
              str(fill.quantity), str(fill.price), str(fill.commission), fill.ts_ns)),
        ]).add_done_callback(_log_write_failure)

    def _commission(self, quantity: Decimal, price: Decimal) -> Decimal:
        model = self.settings.commission
        if model == "per_share":
            return max(self.settings.commission_minimum,
                       quantity * self.settings.commission_per_share).quantize(Decimal("0.01"))
        if model == "percent":
            return (quantity * price * self.settings.commission_percent / 100).quantize(
                Decimal("0.01"))
        return ZERO

    def _settle_bracket(self, order: PaperOrder, now: int) -> None:
        """After a leg or an entry moved: cancel the legs that have nothing left to
        protect (the one-cancels-other rule, with partial fills)."""
        entry = self.orders.get(order.parent_id) if order.parent_id else order
        if entry is None or not entry.legs:
            return
        legs = [self.orders[leg] for leg in entry.legs if leg in self.orders]
        closed = sum((leg.filled for leg in legs), ZERO)
        if entry.is_open or closed < entry.filled:
            return
        reason = ("the entry ended unfilled" if entry.filled == 0
                  else "the position it protected is closed")
        for leg in legs:
            if leg.is_open:
                self._close(leg, CANCELED, now, reason)

    # ------------------------------------------------------------------ sessions

    def _in_session(self, ts: int) -> bool:
        day_start, opens, closes, day_end = self._session
        if not day_start <= ts < day_end:
            self._session = self.calendar.day_bounds(self.calendar.session_date(ts))
            day_start, opens, closes, day_end = self._session
        return opens <= ts < closes

    # ------------------------------------------------------------------ buying power

    def _price_estimate(self, request: OrderRequest) -> Decimal | None:
        if request.limit_price is not None:
            return request.limit_price  # the most a buy pays, the least a sell takes
        state = self.market.states.get(request.symbol)
        buying = request.side == BUY
        market = math.nan
        if state is not None:
            market = state.ask if buying else state.bid
            if market != market:
                market = state.last
        stop = request.stop_price
        if not (market == market and market > 0):
            return stop
        estimate = as_decimal(market) * (self._buy_slip if buying else self._sell_slip)
        if stop is None:
            return estimate
        return max(stop, estimate) if buying else min(stop, estimate)

    def _reserved(self, *, cash_account: bool) -> Decimal:
        """What open orders (not bracket legs, which only close) hold of the buying
        power: buys in a cash account, everything in a margin account."""
        total = ZERO
        if not self._working:
            return total
        for orders in self._working.values():
            for order in orders:
                if order.parent_id or order.status == PENDING_REPLACE:
                    continue
                if cash_account and order.request.side != BUY:
                    continue
                price = self._price_estimate(order.request)
                if price is not None:
                    total += order.remaining * price
        return total

    def _equity_and_gross(self) -> tuple[Decimal, Decimal]:
        """Cash plus the positions' value, and their gross value, at the last trades
        (at cost before a first trade), in one pass: every order asks for both."""
        net = gross = ZERO
        states = self.market.states
        for position in self.portfolio.positions.values():
            quantity = position.quantity
            if not quantity:
                continue
            state = states.get(position.symbol)
            price = (position.average_cost if state is None or state.last != state.last
                     else as_decimal(state.last))
            value = quantity * price
            net += value
            gross += abs(value)
        return self.portfolio.cash + net, gross

    def _buying_power_problem(self, request: OrderRequest) -> str:
        price = self._price_estimate(request)
        if price is None:
            return ""  # no price yet: it rests until a quote, and is checked by risk
        held = self.portfolio.position(request.symbol)
        quantity = request.quantity
        if self.settings.account == "cash":
            if request.side == SELL:
                offered = sum((o.remaining for o in self._working.get(request.symbol, ())
                               if o.request.side == SELL and not o.parent_id
                               and o.status != PENDING_REPLACE), ZERO)
                if quantity > held - offered:
                    return (f"a cash account cannot sell short: you hold "
                            f"{held.normalize():f} {request.symbol}"
                            + (f" ({offered.normalize():f} already offered)" if offered else "")
                            + f" and this order sells {quantity.normalize():f}")
                return ""
            needed = quantity * price
            cash = self.portfolio.cash
            reserved = self._reserved(cash_account=True)
            if needed > cash - reserved:
                return (f"insufficient buying power: the order needs ${needed:,.2f}, "
                        f"${max(cash - reserved, ZERO):,.2f} is available (cash ${cash:,.2f}"
                        f" less ${reserved:,.2f} held for open buy orders)")
            return ""
        signed_held = held if request.side == BUY else -held
        increasing = quantity if signed_held >= 0 else max(ZERO, quantity + signed_held)
        needed = increasing * price
        if needed == 0:
            return ""
        equity, gross = self._equity_and_gross()
        reserved = self._reserved(cash_account=False)
        multiplier = self.settings.margin_multiplier
        available = equity * multiplier - gross - reserved
        if needed > available:
            return (f"insufficient buying power: the order needs ${needed:,.2f}, "
                    f"${max(available, ZERO):,.2f} is available (equity ${equity:,.2f} x "
                    f"{multiplier.normalize():f} less ${gross:,.2f} held in positions and "
                    f"${reserved:,.2f} in open orders)")
        return ""

    # ------------------------------------------------------------------ books

    def _state_statement(self, order: PaperOrder) -> tuple[str, tuple[Any, ...]]:
        return ("UPDATE paper_orders SET state = ? WHERE client_order_id = ?",
                (order.state_json(), order.client_order_id))

    def _persist(self, order: PaperOrder, *, insert: bool = False) -> None:
        if self.store is None:
            return
        if insert:
            # A plain INSERT: the same client order id twice is an error, never a merge.
            statement: tuple[str, tuple[Any, ...]] = (
                "INSERT INTO paper_orders (client_order_id, venue_order_id, symbol, received,"
                " state) VALUES (?, ?, ?, ?, ?)",
                (order.client_order_id, order.venue_order_id, order.request.symbol,
                 order.received_ns, order.state_json()))
        else:
            statement = self._state_statement(order)
        self.store.submit_many([statement]).add_done_callback(_log_write_failure)

    def _emit(self, event: OrderUpdate | Fill) -> None:
        if self._report is not None:
            self._report(event)


def _log_write_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and (err := future.exception()) is not None:
        log.error("the paper venue could not save its books: %s", err)
