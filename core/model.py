"""Value types and events shared by every layer.

Market data (Quote, Trade, Bar) is float64 and carries its timestamp as integer
nanoseconds since the Unix epoch in UTC: these objects are made hundreds of thousands of
times a second on the hot path, and an int is both unambiguous about its zone and far
cheaper than a datetime. `utc_datetime()` turns one into an aware datetime at the edge.
They are NamedTuples because a tuple is the cheapest immutable object Python builds.

Money (prices of orders, fills, cash, P&L) is `decimal.Decimal`, rounded to the
instrument's tick or lot at the boundary (see `Instrument.round_price`). An order
request and a fill are immutable dataclasses; the order itself, which changes state, is
`core.orders.Order`.

Dataclasses made once per order or fill write their `__init__` out, with `Final` fields
instead of `frozen=True`. Compiled (`make native`), a generated `__init__` stays
interpreted, and a frozen one sets each field through `object.__setattr__`: about a
microsecond an instance, a tenth of a backtest's time. Written out, it is a native
constructor (twenty times faster); `Final` keeps the fields read-only (checked by mypy,
and enforced at run time when compiled), `unsafe_hash` gives the hash `frozen` gave, and
`__reduce__` (`by_fields`) lets pickle and copy call that `__init__`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final, NamedTuple

NS_PER_SECOND = 1_000_000_000

# A US equity ticker: 1-5 letters, optionally a class suffix (BRK.B, BF-B).
SYMBOL_PATTERN = re.compile(r"^[A-Z]{1,5}([.-][A-Z]{1,2})?$")


def normalize_symbol(text: str) -> str:
    """Upper-case and strip a user-typed symbol; does not validate it."""
    return text.strip().upper()


def is_well_formed_symbol(symbol: str) -> bool:
    return SYMBOL_PATTERN.match(symbol) is not None


def by_fields(instance: Any) -> tuple[type, tuple[Any, ...]]:
    """`__reduce__` for a dataclass with a hand-written `__init__` that takes every field
    in order: pickle and copy rebuild the instance through that `__init__`."""
    return type(instance), tuple([getattr(instance, one.name) for one in fields(instance)])


def utc_datetime(ts_ns: int) -> datetime:
    """An aware UTC datetime from epoch nanoseconds."""
    return datetime.fromtimestamp(ts_ns / NS_PER_SECOND, tz=UTC)


def to_ns(moment: datetime) -> int:
    """Epoch nanoseconds of an aware datetime (naive datetimes are refused)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: timestamps must be timezone-aware")
    return int(moment.timestamp() * NS_PER_SECOND)


class AssetClass(enum.StrEnum):
    EQUITY = "equity"


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(enum.StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


class TimeInForce(enum.StrEnum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"


class OrderStatus(enum.StrEnum):
    PENDING_NEW = "pending_new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    REPLACED = "replaced"


class TradingState(enum.StrEnum):
    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class FeedState(enum.StrEnum):
    """Connection state of a market-data feed, as the status bar shows it."""

    STARTING = "starting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    FINISHED = "finished"  # a replay that reached the end of its data


class MarketPhase(enum.StrEnum):
    PRE = "pre-market"
    OPEN = "open"
    POST = "after-hours"
    CLOSED = "closed"


class LogLevel(enum.IntEnum):
    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40


_ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable symbol and the increments its prices and quantities move in."""

    symbol: str
    name: str = ""
    asset_class: AssetClass = AssetClass.EQUITY
    exchange: str = "US"
    currency: str = "USD"
    tick_size: Decimal = Decimal("0.01")
    lot_size: Decimal = Decimal("1")
    source: str = ""  # which data provider knows it: "replay", "sim", ...

    def round_price(self, price: Decimal | float | str) -> Decimal:
        value = price if isinstance(price, Decimal) else Decimal(str(price))
        return (value / self.tick_size).quantize(_ONE, ROUND_HALF_EVEN) * self.tick_size

    def round_quantity(self, quantity: Decimal | float | str) -> Decimal:
        value = quantity if isinstance(quantity, Decimal) else Decimal(str(quantity))
        return (value / self.lot_size).quantize(_ONE, ROUND_HALF_EVEN) * self.lot_size


class Quote(NamedTuple):
    """Top of book."""

    symbol: str
    ts_ns: int
    bid: float
    ask: float
    bid_size: float
    ask_size: float


class Trade(NamedTuple):
    """A last sale."""

    symbol: str
    ts_ns: int
    price: float
    size: float


class Bar(NamedTuple):
    """An OHLCV bar; `ts_ns` is the bar's start, `interval_s` its length in seconds."""

    symbol: str
    ts_ns: int
    interval_s: int
    open: float
    high: float
    low: float
    close: float
    volume: float


MarketEvent = Quote | Trade | Bar


@dataclass(frozen=True, slots=True)
class LogEvent:
    """Something the trader should read in the log pane (and, later, be notified of)."""

    ts_ns: int
    level: LogLevel
    source: str
    message: str


TERMINAL_STATUSES = frozenset({
    OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED,
    OrderStatus.REPLACED,
})


# Enum members as module constants in the per-order paths: on Python 3.11 every
# attribute read on an enum class goes through EnumType.__getattr__.
_MARKET, _LIMIT, _STOP = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP
_STOP_LIMIT, _TRAILING_STOP = OrderType.STOP_LIMIT, OrderType.TRAILING_STOP
_IOC, _BUY = TimeInForce.IOC, Side.BUY


@dataclass(slots=True, unsafe_hash=True)
class OrderRequest:
    """What the trader (or a strategy) asks for. Prices and quantities are Decimal,
    already rounded to the instrument's tick and lot.

    A bracket is an entry with `take_profit` and/or `stop_loss` set: when the entry
    fills, a limit order at `take_profit` and a stop order at `stop_loss` close the
    position, and whichever fills first cancels the other.
    """

    symbol: Final[str]
    side: Final[Side]
    quantity: Final[Decimal]
    order_type: Final[OrderType]
    time_in_force: Final[TimeInForce]
    limit_price: Final[Decimal | None]
    stop_price: Final[Decimal | None]
    trail_amount: Final[Decimal | None]  # trailing stop: distance in price ...
    trail_percent: Final[Decimal | None]  # ... or in percent of the best price since
    take_profit: Final[Decimal | None]
    stop_loss: Final[Decimal | None]
    strategy: Final[str]  # the strategy instance that sent it; "" for the trader

    def __init__(self, symbol: str, side: Side, quantity: Decimal,
                 order_type: OrderType = OrderType.MARKET,
                 time_in_force: TimeInForce = TimeInForce.DAY,
                 limit_price: Decimal | None = None, stop_price: Decimal | None = None,
                 trail_amount: Decimal | None = None, trail_percent: Decimal | None = None,
                 take_profit: Decimal | None = None, stop_loss: Decimal | None = None,
                 strategy: str = "") -> None:
        self.symbol = symbol
        self.side = side
        self.quantity = quantity
        self.order_type = order_type
        self.time_in_force = time_in_force
        self.limit_price = limit_price
        self.stop_price = stop_price
        self.trail_amount = trail_amount
        self.trail_percent = trail_percent
        self.take_profit = take_profit
        self.stop_loss = stop_loss
        self.strategy = strategy

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return by_fields(self)

    @property
    def is_bracket(self) -> bool:
        return self.take_profit is not None or self.stop_loss is not None

    def problems(self) -> list[str]:
        """Everything wrong with the request on its own terms (no market, no account):
        empty when it is well formed. Each item is a sentence for the trader."""
        found = []
        if self.quantity <= 0:
            found.append(f"quantity must be positive, not {self.quantity}")
        kind = self.order_type
        needs_limit = kind in (_LIMIT, _STOP_LIMIT)
        needs_stop = kind in (_STOP, _STOP_LIMIT)
        if needs_limit and self.limit_price is None:
            found.append(f"a {kind.value.replace('_', '-')} order needs a limit price")
        if not needs_limit and self.limit_price is not None:
            found.append(f"a {kind.value.replace('_', '-')} order takes no limit price")
        if needs_stop and self.stop_price is None:
            found.append(f"a {kind.value.replace('_', '-')} order needs a stop price")
        if not needs_stop and self.stop_price is not None:
            found.append(f"a {kind.value.replace('_', '-')} order takes no stop price")
        if (self.limit_price is not None or self.stop_price is not None
                or self.take_profit is not None or self.stop_loss is not None):
            for name, price in (("limit price", self.limit_price),
                                ("stop price", self.stop_price),
                                ("take-profit", self.take_profit),
                                ("stop-loss", self.stop_loss)):
                if price is not None and price <= 0:
                    found.append(f"the {name} must be positive, not {price}")
        trails = [] if self.trail_amount is None and self.trail_percent is None else [
            t for t in (self.trail_amount, self.trail_percent) if t is not None]
        if kind == _TRAILING_STOP:
            if len(trails) != 1:
                found.append("a trailing stop needs a trail amount or a trail percent (one)")
            elif trails[0] <= 0:
                found.append(f"the trail must be positive, not {trails[0]}")
            elif self.trail_percent is not None and self.trail_percent >= 100:
                found.append(f"a trail of {self.trail_percent}% would never trigger")
        elif trails:
            found.append("only a trailing stop takes a trail")
        if self.time_in_force == _IOC and kind not in (_MARKET,
                                                                  _LIMIT):
            found.append("immediate-or-cancel applies to market and limit orders only")
        if self.is_bracket:
            found += self._bracket_problems()
        return found

    def _bracket_problems(self) -> list[str]:
        if self.order_type not in (_MARKET, _LIMIT):
            return ["a bracket's entry must be a market or limit order"]
        if self.time_in_force == _IOC:
            return ["a bracket cannot be immediate-or-cancel"]
        profit, loss = self.take_profit, self.stop_loss
        entry = self.limit_price
        buying = self.side == _BUY
        found = []
        if profit is not None and loss is not None and (profit <= loss if buying
                                                         else profit >= loss):
            found.append(f"the take-profit ({profit}) must be {'above' if buying else 'below'}"
                         f" the stop-loss ({loss})")
        if entry is not None:
            if profit is not None and (profit <= entry if buying else profit >= entry):
                found.append(f"the take-profit ({profit}) must be {'above' if buying else 'below'}"
                             f" the entry ({entry})")
            if loss is not None and (loss >= entry if buying else loss <= entry):
                found.append(f"the stop-loss ({loss}) must be {'below' if buying else 'above'}"
                             f" the entry ({entry})")
        return found


@dataclass(slots=True, unsafe_hash=True)
class Fill:
    """An execution. `fill_id` is the venue's own id: a fill reported twice (a
    reconnect, a replayed stream) is recognised by it and counted once."""

    fill_id: Final[str]
    client_order_id: Final[str]
    symbol: Final[str]
    side: Final[Side]
    quantity: Final[Decimal]
    price: Final[Decimal]
    commission: Final[Decimal]
    ts_ns: Final[int]
    venue: Final[str]

    def __init__(self, fill_id: str, client_order_id: str, symbol: str, side: Side,
                 quantity: Decimal, price: Decimal, commission: Decimal, ts_ns: int,
                 venue: str = "") -> None:
        self.fill_id = fill_id
        self.client_order_id = client_order_id
        self.symbol = symbol
        self.side = side
        self.quantity = quantity
        self.price = price
        self.commission = commission
        self.ts_ns = ts_ns
        self.venue = venue

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return by_fields(self)

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side == _BUY else -self.quantity


@dataclass(slots=True, unsafe_hash=True)
class OrderUpdate:
    """A venue changed an order's state (anything but a fill).

    A refused cancel or replace is reported as the state the order went back to
    (accepted or partially filled) with the refusal as `reason`.
    """

    client_order_id: Final[str]
    status: Final[OrderStatus]
    ts_ns: Final[int]
    reason: Final[str]
    venue_order_id: Final[str]

    def __init__(self, client_order_id: str, status: OrderStatus, ts_ns: int,
                 reason: str = "", venue_order_id: str = "") -> None:
        self.client_order_id = client_order_id
        self.status = status
        self.ts_ns = ts_ns
        self.reason = reason
        self.venue_order_id = venue_order_id

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return by_fields(self)
