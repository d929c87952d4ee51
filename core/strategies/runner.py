"""A strategy instance at work: its context, its own book, and the guard around it.

`StrategyRunner` is the one driver of a strategy, used by the live host
(core/strategies/host.py) and by the backtester (core/backtest.py) alike, so a backtest
runs the very code the engine runs. The runner calls the handlers; what the strategy
asks for collects in `outbox` as intents, which the owner sends through risk (live:
the trading desk; backtest: the simulated desk) and reports back with `order_placed`,
`order_ended` and `on_fill`.

A handler that raises switches the instance off: the runner keeps the error and the
traceback (`failure`) for the owner to log and show; nothing propagates.
"""

from __future__ import annotations

import itertools
import math
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from core.indicators import Indicator
from core.model import (
    Bar,
    Fill,
    Instrument,
    OrderRequest,
    OrderType,
    Quote,
    Side,
    TimeInForce,
    by_fields,
)
from core.orders import Order
from core.portfolio import ZERO, Portfolio
from core.strategies.base import Strategy, StrategyMode, StrategyParams, overrides_on_quote
from core.strategies.series import Line, SymbolSeries

NAN = math.nan
_new_tuple = tuple.__new__  # a Bar without the NamedTuple's Python-level __new__
# Enum members as module constants in the per-order paths: on Python 3.11 every
# attribute read on an enum class goes through EnumType.__getattr__.
_BUY, _SELL, _DAY = Side.BUY, Side.SELL, TimeInForce.DAY
_MARKET, _LIMIT, _STOP = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP
_STOP_LIMIT = OrderType.STOP_LIMIT
_TRADING_MODES = frozenset(mode for mode in StrategyMode if mode.trades)


# The intents, signals and working orders are made once per order: their `__init__` is
# written out to be native when compiled, with `Final` fields for `frozen=True` (see
# `core.model`'s docstring).


@dataclass(slots=True, unsafe_hash=True)
class PlaceIntent:
    ref: Final[str]  # the instance's own name for the order until the desk issues its id
    request: Final[OrderRequest]
    reason: Final[str]

    def __init__(self, ref: str, request: OrderRequest, reason: str) -> None:
        self.ref = ref
        self.request = request
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return by_fields(self)


@dataclass(frozen=True, slots=True)
class CancelIntent:
    ref: str


@dataclass(slots=True, unsafe_hash=True)
class Signal:
    instance: Final[str]
    ts_ns: Final[int]
    symbol: Final[str]
    side: Final[Side]
    reason: Final[str]
    acted: Final[bool]  # an order went with it (PAPER, LIVE) or not (OBSERVE, a signal)

    def __init__(self, instance: str, ts_ns: int, symbol: str, side: Side, reason: str,
                 acted: bool) -> None:
        self.instance = instance
        self.ts_ns = ts_ns
        self.symbol = symbol
        self.side = side
        self.reason = reason
        self.acted = acted

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return by_fields(self)


Intent = PlaceIntent | CancelIntent | Signal


@dataclass(slots=True)
class WorkingOrder:
    """One of the instance's orders that may still fill."""

    ref: str
    request: OrderRequest
    client_order_id: str  # once the desk has issued it
    filled: Decimal

    def __init__(self, ref: str, request: OrderRequest, client_order_id: str = "",
                 filled: Decimal = ZERO) -> None:
        self.ref = ref
        self.request = request
        self.client_order_id = client_order_id
        self.filled = filled

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return by_fields(self)

    @property
    def signed_remaining(self) -> Decimal:
        remaining = self.request.quantity - self.filled
        return remaining if self.request.side == _BUY else -remaining


@dataclass(slots=True)
class Failure:
    message: str
    traceback: str


@dataclass(slots=True)
class InstanceBook:
    """The instance's own positions and P&L, from its own fills."""

    portfolio: Portfolio = field(default_factory=lambda: Portfolio.start(ZERO))
    working: dict[str, WorkingOrder] = field(default_factory=dict)  # by ref
    by_order_id: dict[str, str] = field(default_factory=dict)  # client order id -> ref
    signals: list[Signal] = field(default_factory=list)

    def position(self, symbol: str) -> Decimal:
        return self.portfolio.position(symbol)

    def working_quantity(self, symbol: str) -> Decimal:
        return sum((o.signed_remaining for o in self.working.values()
                    if o.request.symbol == symbol), ZERO)


class StrategyContext:
    """What a strategy acts through. Orders, cancels and signals become intents; reads
    come from the instance's book and the series up to the current bar."""

    def __init__(self, runner: StrategyRunner) -> None:
        self._runner = runner

    # ------------------------------------------------------------------ reads

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._runner.symbols

    @property
    def mode(self) -> StrategyMode:
        return self._runner.mode

    def now_ns(self) -> int:
        return self._runner.now_ns()

    def position(self, symbol: str) -> Decimal:
        """This instance's position (not the account's)."""
        return self._runner.book.position(symbol)

    def working(self, symbol: str) -> Decimal:
        """Signed quantity of this instance's orders that may still fill."""
        return self._runner.book.working_quantity(symbol)

    def open_orders(self, symbol: str | None = None) -> list[str]:
        return [o.ref for o in self._runner.book.working.values()
                if symbol is None or o.request.symbol == symbol]

    def bar(self, symbol: str, ago: int = 0) -> Bar | None:
        series = self._runner.series[symbol]
        index = series.index(ago)
        return series.bar_at(index) if index >= 0 else None

    def close(self, symbol: str, ago: int = 0) -> float:
        series = self._runner.series[symbol]
        index = series.index(ago)
        return series.close[index] if index >= 0 else NAN

    def value(self, symbol: str, indicator: Indicator, ago: int = 0) -> float:
        return self._runner.series[symbol].value(indicator, ago)

    def line(self, symbol: str, what: Indicator | str) -> Line:
        """A series to read on every bar: an indicator, or "open", "high", "low",
        "close", "volume"."""
        return self._runner.series[symbol].line(what)

    def bars_seen(self, symbol: str) -> int:
        return len(self._runner.series[symbol])

    def equity(self) -> Decimal:
        """The account's equity (all strategies and the trader's own trades)."""
        return self._runner.account_equity()

    # ------------------------------------------------------------------ acts

    def buy(self, symbol: str, quantity: Decimal | int, *, limit: Decimal | float | None = None,
            stop: Decimal | float | None = None, tif: TimeInForce = TimeInForce.DAY,
            reason: str = "") -> str | None:
        """A buy order (market; limit and/or stop when given); its ref, or None when
        nothing was sent (OBSERVE mode: a signal instead)."""
        return self._order(symbol, Side.BUY, Decimal(quantity), limit, stop, tif, reason)

    def sell(self, symbol: str, quantity: Decimal | int, *, limit: Decimal | float | None = None,
             stop: Decimal | float | None = None, tif: TimeInForce = TimeInForce.DAY,
             reason: str = "") -> str | None:
        return self._order(symbol, Side.SELL, Decimal(quantity), limit, stop, tif, reason)

    def target_position(self, symbol: str, quantity: Decimal | int, reason: str = ""
                        ) -> str | None:
        """Trade toward holding `quantity` (negative: short), counting what this
        instance holds and what its open orders would still add; a market order for
        the difference, or nothing when there is none."""
        target = Decimal(quantity)
        delta = target - self.position(symbol) - self.working(symbol)
        if delta == 0:
            return None
        side = _BUY if delta > 0 else _SELL
        return self._order(symbol, side, abs(delta), None, None, _DAY, reason)

    def cancel(self, ref: str) -> None:
        if ref in self._runner.book.working:
            self._runner.outbox.append(CancelIntent(ref))

    def cancel_all(self, symbol: str | None = None) -> None:
        for ref in self.open_orders(symbol):
            self.cancel(ref)

    def signal(self, symbol: str, side: Side, reason: str) -> None:
        """Say what the strategy sees without trading: shown, logged and notified."""
        self._runner.emit_signal(symbol, side, reason, acted=False)

    def log(self, message: str) -> None:
        self._runner.log(message)

    def _order(self, symbol: str, side: Side, quantity: Decimal,
               limit_price: Decimal | float | None, stop_price: Decimal | float | None,
               tif: TimeInForce, reason: str) -> str | None:
        runner = self._runner
        if symbol not in runner.series:
            raise ValueError(f"{symbol} is not one of this instance's symbols")
        if quantity <= 0:
            return None
        # Prices a strategy computes (an ATR stop) land on the instrument's tick here.
        limit = None if limit_price is None else runner.round_price(symbol, limit_price)
        stop = None if stop_price is None else runner.round_price(symbol, stop_price)
        kind = _MARKET
        if limit is not None and stop is not None:
            kind = _STOP_LIMIT
        elif limit is not None:
            kind = _LIMIT
        elif stop is not None:
            kind = _STOP
        # An order with a reason is a signal too (shown, counted, notified); one
        # without (a protective stop moved) is not.
        if runner.mode not in _TRADING_MODES:
            if reason:
                runner.emit_signal(symbol, side, reason, acted=False)
            return None
        request = OrderRequest(symbol, side, quantity, kind, tif,
                               limit_price=limit, stop_price=stop, strategy=runner.instance_id)
        ref = f"{runner.instance_id}/{next(runner.refs)}"
        runner.book.working[ref] = WorkingOrder(ref, request)
        if reason:  # first, so the log reads signal, then what became of the order
            runner.emit_signal(symbol, side, reason, acted=True)
        runner.outbox.append(PlaceIntent(ref, request, reason))
        return ref


class StrategyRunner:
    def __init__(
        self,
        instance_id: str,
        strategy_class: type[Strategy[Any]],
        params: StrategyParams,
        symbols: Sequence[str],
        mode: StrategyMode,
        *,
        now_ns: Callable[[], int],
        account_equity: Callable[[], Decimal],
        log: Callable[[str], None] = lambda message: None,
        round_price: Callable[[str, Decimal | float], Decimal] = (
            lambda symbol, price: Instrument(symbol).round_price(price)),
    ) -> None:
        self.instance_id = instance_id
        self.strategy_class = strategy_class
        self.params = params
        self.symbols = tuple(symbols)
        self.mode = mode
        self.now_ns = now_ns
        self.account_equity = account_equity
        self._log = log
        self.round_price = round_price
        self.book = InstanceBook()
        self.outbox: list[Intent] = []
        self.refs = itertools.count(1)
        self.failure: Failure | None = None
        self.context = StrategyContext(self)
        self.strategy: Strategy[Any] = strategy_class(params, self.context)
        self.indicators: tuple[Indicator, ...] = tuple(self.strategy.indicators())
        interval_s = 60 if strategy_class.interval == "1m" else 86_400
        self.series: dict[str, SymbolSeries] = {
            symbol: SymbolSeries(symbol, self.indicators, interval_s) for symbol in self.symbols}
        self.wants_quotes = overrides_on_quote(strategy_class)
        self._on_bar = self.strategy.on_bar
        # Most strategies leave on_fill alone: a fill then costs no handler call.
        self._on_fill: Callable[[Fill], None] | None = (
            self.strategy.on_fill if strategy_class.on_fill is not Strategy.on_fill else None)
        self.bars_seen = 0

    @property
    def active(self) -> bool:
        return self.mode != StrategyMode.OFF and self.failure is None

    def log(self, message: str) -> None:
        self._log(f"{self.instance_id}: {message}")

    def emit_signal(self, symbol: str, side: Side, reason: str, *, acted: bool) -> None:
        signal = Signal(self.instance_id, self.now_ns(), symbol, side, reason, acted)
        self.book.signals.append(signal)
        self.outbox.append(signal)

    # ------------------------------------------------------------------ the handlers

    def start(self) -> bool:
        return self._guard("on_start", self.strategy.on_start)

    def stop(self) -> None:
        if self.failure is None:
            self._guard("on_stop", self.strategy.on_stop)

    def on_bar(self, bar: Bar) -> bool:
        """A completed bar of one of the symbols (live): append it, then the handler.
        A bar the series has already (a feed repeating yesterday's bar as context) is
        ignored; while OFF the series still grows, so switching on needs no warm-up."""
        series = self.series.get(bar.symbol)
        if series is None or (series.ts_ns and bar.ts_ns <= series.ts_ns[-1]):
            return True
        series.append(bar)
        self.bars_seen += 1
        if not self.active:
            return True
        return self._guard("on_bar", self.strategy.on_bar, bar)

    def warm(self, bar: Bar) -> None:
        """A bar of history before the instance starts: the series only."""
        series = self.series.get(bar.symbol)
        if series is not None and not (series.ts_ns and bar.ts_ns <= series.ts_ns[-1]):
            series.append(bar)

    def advance(self, series: SymbolSeries) -> bool:
        """The next bar of a loaded series (a backtest). The guard is written out: this
        runs once per bar of every symbol."""
        index = series.cursor = series.cursor + 1
        self.bars_seen += 1
        if self.failure is not None:
            return False
        try:
            self._on_bar(_new_tuple(Bar, (series.symbol, series.ts_ns[index],
                                          series.interval_s, series.open[index],
                                          series.high[index], series.low[index],
                                          series.close[index], series.volume[index])))
        except Exception as err:
            self._fail("on_bar", err)
            return False
        return True

    def on_quote(self, quote: Quote) -> bool:
        if not self.wants_quotes or not self.active or quote.symbol not in self.series:
            return True
        return self._guard("on_quote", self.strategy.on_quote, quote)

    def _guard(self, handler: str, call: Callable[..., None], *args: Any) -> bool:
        if self.failure is not None:
            return False
        try:
            call(*args)
        except Exception as err:
            self._fail(handler, err)
            return False
        return True

    def _fail(self, handler: str, err: Exception) -> None:
        """Switch off after a handler raised (called from its `except`, so the
        traceback is the handler's)."""
        self.failure = Failure(f"{self.instance_id} raised in {handler}: "
                               f"{type(err).__name__}: {err}", traceback.format_exc())
        # What it asked for in the handler that failed is not sent.
        for intent in self.outbox:
            if isinstance(intent, PlaceIntent):
                self.book.working.pop(intent.ref, None)
        self.outbox = [i for i in self.outbox if isinstance(i, Signal)]

    # ------------------------------------------------------------------ reports

    def drain(self) -> list[Intent]:
        intents, self.outbox = self.outbox, []
        return intents

    def order_placed(self, ref: str, client_order_id: str) -> None:
        order = self.book.working.get(ref)
        if order is not None:
            order.client_order_id = client_order_id
            self.book.by_order_id[client_order_id] = ref

    def order_ended(self, ref_or_order_id: str) -> None:
        """The order will not fill any more (filled, canceled, rejected, expired)."""
        ref = self.book.by_order_id.get(ref_or_order_id, ref_or_order_id)
        self.book.working.pop(ref, None)

    def on_fill(self, fill: Fill) -> bool:
        book = self.book
        ref = book.by_order_id.get(fill.client_order_id)
        if ref is None:
            return True
        book.portfolio.apply_fill(fill)
        order = book.working.get(ref)
        if order is not None:
            order.filled += fill.quantity
            if order.filled >= order.request.quantity:
                book.working.pop(ref, None)
        if self._on_fill is None:
            return self.failure is None
        return self._guard("on_fill", self._on_fill, fill)

    def restore(self, orders: Sequence[Order], fills: Sequence[Fill]) -> None:
        """Rebuild the book after a restart from the journal: the instance's fills make
        its positions; its open orders are working again (their client order id serves
        as their ref)."""
        book = self.book
        for order in orders:
            book.by_order_id[order.client_order_id] = order.client_order_id
            if order.is_open:
                book.working[order.client_order_id] = WorkingOrder(
                    order.client_order_id, order.request, order.client_order_id,
                    order.filled_quantity)
        for fill in fills:
            if fill.client_order_id in book.by_order_id:
                book.portfolio.apply_fill(fill)

    def mark(self, prices: Mapping[str, float]) -> None:
        for symbol, price in prices.items():
            self.book.portfolio.mark(symbol, price)
