"""Risk: the pre-trade checks every order passes, the trading state, and the limits'
utilisation for the risk panel.

`RiskEngine.check(request, book)` is synchronous and pure apart from the rate limiter:
it reads a `RiskBook` (positions, prices, open orders and the account, as the trading
desk sees them at that instant) and returns a `RiskDecision` whose reason names the
limit, the value and the number it was held to. A limit set to 0 is off.

Positions are judged with their open orders, at worst: a symbol's exposure is the
larger of its position plus every open buy and its position less every open sell, so
a stream of orders that each look small cannot build past a limit while they rest.

The trading state: ACTIVE; REDUCING (only orders that shrink an existing position);
HALTED (no new orders; cancels still work). The trader sets it, the kill switch sets
HALTED, and a breached daily loss or drawdown moves it automatically (never to a
milder state). A new session clears what the limits set, not what the trader set.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from core.config_trading import RiskSettings
from core.model import OrderRequest, Side, TradingState

ZERO = Decimal(0)
SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
# Enum members as module constants where every order reads them: on Python 3.11 each
# attribute read on an enum class goes through EnumType.__getattr__.
BUY = Side.BUY
HALTED, REDUCING = TradingState.HALTED, TradingState.REDUCING


# OpenOrder, RiskBook and RiskDecision are built for every order judged: named tuples,
# which build several times faster than frozen dataclasses and are as immutable.


class OpenOrder(NamedTuple):
    """An open order as risk counts it: what is left of it, and its price."""

    symbol: str
    side: Side
    remaining: Decimal
    price: Decimal | None  # its limit or stop, or None (a market order: the last price)


class RiskBook(NamedTuple):
    """The account at the instant of a check."""

    positions: Mapping[str, Decimal]  # signed quantity by symbol
    prices: Mapping[str, Decimal]  # last trade by symbol (missing: not known yet)
    open_orders: Sequence[OpenOrder] = ()
    equity: Decimal = ZERO
    day_pnl: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class LimitUse:
    """One limit and how much of it is used; `limit` 0 means the limit is off."""

    name: str
    used: Decimal
    limit: Decimal
    money: bool = True

    @property
    def share(self) -> float:
        return float(self.used / self.limit) if self.limit > 0 else 0.0


class RiskDecision(NamedTuple):
    accepted: bool
    reason: str  # for a refusal, the sentence the trader reads; "" when accepted
    check: str = ""  # which check refused it
    notional: Decimal = ZERO  # the order's value at its price


@dataclass(frozen=True, slots=True)
class StateChange:
    old: TradingState
    new: TradingState
    reason: str
    automatic: bool


class _Exposure:
    """The quantities a symbol's open orders would buy and sell. (A plain class: its
    `__init__` is native when compiled, as a dataclass's is not.)"""

    def __init__(self) -> None:
        self.buys = ZERO
        self.sells = ZERO


_NO_EXPOSURE = _Exposure()  # read only: a symbol with no open orders


def reduces(request: OrderRequest, position: Decimal) -> bool:
    """The order only shrinks an existing position (never through zero)."""
    if position == 0 or request.quantity <= 0:
        return False
    opposite = (request.side == Side.SELL) == (position > 0)
    return opposite and request.quantity <= abs(position)


def money(value: Decimal) -> str:
    return f"${value:,.2f}"


def count(value: Decimal) -> str:
    return f"{value.normalize():f}"


@dataclass(slots=True)
class RiskEngine:
    settings: RiskSettings
    clock: Callable[[], float] = time.monotonic  # for the rate limit (wall seconds)
    state: TradingState = TradingState.ACTIVE
    state_reason: str = ""
    state_automatic: bool = False
    # What the trader (or the kill switch) last set: a new session goes back to it.
    chosen_state: TradingState = TradingState.ACTIVE
    chosen_reason: str = ""
    day_high: Decimal | None = None
    _sent: deque[float] = field(default_factory=deque)

    # ------------------------------------------------------------------ checks

    def check(self, request: OrderRequest, book: RiskBook, *, flatten: bool = False,
              extra_orders: int = 0, replacing: OpenOrder | None = None) -> RiskDecision:
        """Judge one order. `flatten`: the kill switch or a close-position order, held
        only to shrinking a position. `extra_orders`: bracket legs that come with it.
        `replacing`: the open order this one would replace (not counted twice)."""
        symbol = request.symbol
        position = book.positions.get(symbol, ZERO)
        if flatten:
            if reduces(request, position):
                return RiskDecision(True, "", notional=self._notional(request, book))
            return self._refuse("reduce-only", f"{symbol}: the order does not reduce the "
                                f"position of {count(position)}")
        state = self.state
        if state == HALTED:
            return self._refuse("trading state", f"trading is halted ({self.state_reason}): "
                                "no new orders; cancels still work")
        if state == REDUCING and not reduces(request, position):
            return self._refuse("trading state",
                                f"trading is reducing only ({self.state_reason}): this order "
                                f"would not shrink the {symbol} position of {count(position)}")
        limits = self.settings
        if limits.allow_symbols and symbol not in limits.allow_symbols:
            return self._refuse("symbols", f"{symbol} is not in the risk allow list")
        if symbol in limits.deny_symbols:
            return self._refuse("symbols", f"{symbol} is in the risk deny list")
        if limits.max_order_quantity and request.quantity > limits.max_order_quantity:
            return self._refuse("order quantity", f"{count(request.quantity)} shares is over "
                                f"the order limit of {count(limits.max_order_quantity)}")
        last = book.prices.get(symbol)
        if last is None or last <= 0:
            return self._refuse("price", f"no last trade for {symbol} yet: the order's "
                                "value cannot be checked")
        limit_price = request.limit_price
        if limits.price_collar_pct and limit_price is not None:
            away = abs(limit_price - last) / last * 100
            if away > limits.price_collar_pct:
                return self._refuse(
                    "price collar",
                    f"the limit {limit_price} is {away:.1f}% from the last trade {last} "
                    f"(collar {limits.price_collar_pct.normalize():f}%)")
        notional = self._notional(request, book)
        if limits.max_order_notional and notional > limits.max_order_notional:
            return self._refuse("order notional", f"the order's value {money(notional)} is "
                                f"over the limit of {money(limits.max_order_notional)}")
        exposures = self._exposures(book, replacing)
        mine = exposures.get(symbol)
        if mine is None:
            mine = exposures[symbol] = _Exposure()
        if request.side == BUY:
            mine.buys += request.quantity
        else:
            mine.sells += request.quantity
        worst = max(abs(position + mine.buys), abs(position - mine.sells)) * last
        if limits.max_position_notional and worst > limits.max_position_notional:
            return self._refuse(
                "position notional",
                f"{symbol} would reach {money(worst)} with its open orders, over the "
                f"position limit of {money(limits.max_position_notional)}")
        if limits.max_gross_exposure:
            gross = self._gross(book, exposures)
            if gross > limits.max_gross_exposure:
                return self._refuse(
                    "gross exposure",
                    f"gross exposure would reach {money(gross)} with open orders, over the "
                    f"limit of {money(limits.max_gross_exposure)}")
        open_count = len(book.open_orders) - (1 if replacing is not None else 0)
        if limits.max_open_orders and open_count + 1 + extra_orders > limits.max_open_orders:
            return self._refuse("open orders", f"{open_count} orders are open; "
                                f"{1 + extra_orders} more would pass the limit of "
                                f"{limits.max_open_orders}")
        if limits.rate_limit_orders:
            now = self.clock()
            self._forget_before(now - limits.rate_limit_interval_s)
            if len(self._sent) >= limits.rate_limit_orders:
                return self._refuse(
                    "order rate",
                    f"{len(self._sent)} orders in the last "
                    f"{limits.rate_limit_interval_s:g} s: the limit is "
                    f"{limits.rate_limit_orders}")
        return RiskDecision(True, "", notional=notional)

    def record_sent(self) -> None:
        """An accepted order went out: it counts against the rate limit."""
        self._sent.append(self.clock())

    def _forget_before(self, cutoff: float) -> None:
        sent = self._sent
        while sent and sent[0] <= cutoff:
            sent.popleft()

    @staticmethod
    def _refuse(check: str, reason: str) -> RiskDecision:
        return RiskDecision(False, reason, check)

    @staticmethod
    def _notional(request: OrderRequest, book: RiskBook) -> Decimal:
        price = request.limit_price or request.stop_price or book.prices.get(request.symbol)
        return request.quantity * price if price is not None else ZERO

    @staticmethod
    def _exposures(book: RiskBook, replacing: OpenOrder | None) -> dict[str, _Exposure]:
        exposures: dict[str, _Exposure] = {}
        skipped = replacing is None
        for order in book.open_orders:
            if not skipped and order == replacing:
                skipped = True
                continue
            exposure = exposures.setdefault(order.symbol, _Exposure())
            if order.side == BUY:
                exposure.buys += order.remaining
            else:
                exposure.sells += order.remaining
        return exposures

    @staticmethod
    def _worst(position: Decimal, exposure: _Exposure) -> Decimal:
        return max(abs(position + exposure.buys), abs(position - exposure.sells))

    def _gross(self, book: RiskBook, exposures: Mapping[str, _Exposure]) -> Decimal:
        total = ZERO
        prices, positions = book.prices, book.positions
        for symbol, position in positions.items():
            price = prices.get(symbol)
            if price is not None:
                exposure = exposures.get(symbol, _NO_EXPOSURE)
                total += max(abs(position + exposure.buys),
                             abs(position - exposure.sells)) * price
        for symbol, exposure in exposures.items():
            if symbol not in positions:
                price = prices.get(symbol)
                if price is not None:
                    total += max(exposure.buys, exposure.sells) * price
        return total

    # ------------------------------------------------------------------ state

    def set_state(self, state: TradingState, reason: str, *,
                  automatic: bool = False) -> StateChange | None:
        """Change the trading state; None when nothing changed. An automatic change
        never makes the state milder."""
        if automatic and SEVERITY[state] <= SEVERITY[self.state]:
            return None
        if state == self.state and reason == self.state_reason:
            return None
        change = StateChange(self.state, state, reason, automatic)
        self.state = state
        self.state_reason = reason if state != TradingState.ACTIVE else ""
        self.state_automatic = automatic
        if not automatic:
            self.chosen_state, self.chosen_reason = state, self.state_reason
        return change

    def observe(self, equity: Decimal, day_pnl: Decimal) -> StateChange | None:
        """The account moved: apply the daily-loss and drawdown limits."""
        limits = self.settings
        if self.day_high is None or equity > self.day_high:
            self.day_high = equity
        breached: list[tuple[TradingState, str]] = []
        if limits.max_daily_loss and -day_pnl >= limits.max_daily_loss:
            breached.append((TradingState(limits.on_daily_loss),
                             f"day's loss {money(-day_pnl)} reached the limit of "
                             f"{money(limits.max_daily_loss)}"))
        drawdown = self.day_high - equity
        if limits.max_drawdown and drawdown >= limits.max_drawdown:
            breached.append((TradingState(limits.on_drawdown),
                             f"equity fell {money(drawdown)} from the day's high of "
                             f"{money(self.day_high)} (limit {money(limits.max_drawdown)})"))
        if not breached:
            return None
        # Both at once: the harsher state, at once (the daily loss's on a tie).
        state, reason = max(breached, key=lambda item: SEVERITY[item[0]])
        return self.set_state(state, reason, automatic=True)

    def begin_day(self, equity: Decimal) -> StateChange | None:
        """A new session: the day's high starts again, and a state the limits set is
        lifted, back to what the trader (or the kill switch) last chose."""
        self.day_high = equity
        if self.state_automatic and self.state != self.chosen_state:
            change = StateChange(self.state, self.chosen_state,
                                 "a new session began" + (f" ({self.chosen_reason})"
                                                          if self.chosen_reason else ""),
                                 automatic=True)
            self.state, self.state_reason = self.chosen_state, self.chosen_reason
            self.state_automatic = False
            return change
        if self.state_automatic:
            self.state_automatic = False
        return None

    # ------------------------------------------------------------------ the panel

    def utilisation(self, book: RiskBook) -> list[LimitUse]:
        limits = self.settings
        exposures = self._exposures(book, None)
        largest = ZERO
        for symbol in {*book.positions, *exposures}:  # open orders alone make a position
            price = book.prices.get(symbol)
            if price is not None:
                largest = max(largest, self._worst(book.positions.get(symbol, ZERO),
                                                   exposures.get(symbol) or _Exposure()) * price)
        now = self.clock()
        self._forget_before(now - limits.rate_limit_interval_s)
        drawdown = (self.day_high - book.equity) if self.day_high is not None else ZERO
        return [
            LimitUse("day loss", max(ZERO, -book.day_pnl), limits.max_daily_loss),
            LimitUse("drawdown", max(ZERO, drawdown), limits.max_drawdown),
            LimitUse("gross exposure", self._gross(book, exposures),
                     limits.max_gross_exposure),
            LimitUse("largest position", largest, limits.max_position_notional),
            LimitUse("open orders", Decimal(len(book.open_orders)),
                     Decimal(limits.max_open_orders), money=False),
            LimitUse("order rate", Decimal(len(self._sent)),
                     Decimal(limits.rate_limit_orders), money=False),
        ]
