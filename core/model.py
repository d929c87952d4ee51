"""Value types and events shared by every layer.

Market data (Quote, Trade, Bar) is float64 and carries its timestamp as integer
nanoseconds since the Unix epoch in UTC: these objects are made hundreds of thousands of
times a second on the hot path, and an int is both unambiguous about its zone and far
cheaper than a datetime. `utc_datetime()` turns one into an aware datetime at the edge.
They are NamedTuples because a tuple is the cheapest immutable object Python builds.

Money (prices of orders, fills, cash, P&L) is `decimal.Decimal`, rounded to the
instrument's tick or lot at the boundary (see `Instrument.round_price`).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import NamedTuple

NS_PER_SECOND = 1_000_000_000

# A US equity ticker: 1-5 letters, optionally a class suffix (BRK.B, BF-B).
SYMBOL_PATTERN = re.compile(r"^[A-Z]{1,5}([.-][A-Z]{1,2})?$")


def normalize_symbol(text: str) -> str:
    """Upper-case and strip a user-typed symbol; does not validate it."""
    return text.strip().upper()


def is_well_formed_symbol(symbol: str) -> bool:
    return SYMBOL_PATTERN.match(symbol) is not None


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
        return (value / self.tick_size).quantize(Decimal(1), ROUND_HALF_EVEN) * self.tick_size

    def round_quantity(self, quantity: Decimal | float | str) -> Decimal:
        value = quantity if isinstance(quantity, Decimal) else Decimal(str(quantity))
        return (value / self.lot_size).quantize(Decimal(1), ROUND_HALF_EVEN) * self.lot_size


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
