"""Per-symbol market state and the immutable views of it that leave the engine.

`SymbolState` is mutated on the hot path, in place, by plain attribute writes.
`QuoteRow` is what a consumer (the UI, an attached client) receives: made only when a
consumer pulls, at most once per symbol per pull, so its cost follows the screen's
refresh rate, not the tick rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from core.model import (
    NS_PER_SECOND,
    TERMINAL_STATUSES,
    Bar,
    FeedState,
    Fill,
    Instrument,
    LogEvent,
    MarketPhase,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TradingState,
)
from core.risk import LimitUse

if TYPE_CHECKING:
    from core.scan_service import ScanView

MINUTE_NS = 60 * NS_PER_SECOND
NAN = math.nan
ZERO = Decimal(0)


class CommandError(Exception):
    """A command the engine refused; the message is for the trader."""


class SymbolState:
    """Everything the engine knows about one symbol's market today."""

    __slots__ = (
        "ask",
        "ask_size",
        "bar_close",
        "bar_high",
        "bar_low",
        "bar_open",
        "bar_start_ns",
        "bar_volume",
        "bid",
        "bid_size",
        "day_high",
        "day_low",
        "day_open",
        "instrument",
        "last",
        "last_size",
        "minute_bars",
        "prev_close",
        "seq",
        "session_start_ns",
        "stale",
        "symbol",
        "tick",
        "tick_seq",
        "ts_ns",
        "volume",
        "wall_updated",
    )

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.bid = NAN
        self.ask = NAN
        self.bid_size = 0.0
        self.ask_size = 0.0
        self.last = NAN
        self.last_size = 0.0
        self.prev_close = NAN
        self.day_open = NAN
        self.day_high = NAN
        self.day_low = NAN
        self.volume = 0.0
        self.ts_ns = 0
        # +1 / -1: direction of the last trade that changed the price; 0 before any.
        self.tick = 0
        # The change-set sequence of the last price tick (the UI flashes on it).
        self.tick_seq = 0
        self.seq = 0
        self.stale = False
        self.wall_updated = 0.0
        self.session_start_ns = 0
        self.minute_bars: list[Bar] = []
        self.bar_start_ns = -1
        self.bar_open = NAN
        self.bar_high = NAN
        self.bar_low = NAN
        self.bar_close = NAN
        self.bar_volume = 0.0

    def start_session(self, session_start_ns: int) -> None:
        """A new trading day: yesterday's last becomes the reference close."""
        if not math.isnan(self.last):
            self.prev_close = self.last
        self.session_start_ns = session_start_ns
        self.day_open = NAN
        self.day_high = NAN
        self.day_low = NAN
        self.volume = 0.0
        self.minute_bars = []
        self.bar_start_ns = -1

    def building_bar(self) -> Bar | None:
        if self.bar_start_ns < 0:
            return None
        return Bar(self.symbol, self.bar_start_ns, 60, self.bar_open, self.bar_high,
                   self.bar_low, self.bar_close, self.bar_volume)

    def row(self) -> QuoteRow:
        change = self.last - self.prev_close
        return QuoteRow(
            symbol=self.symbol,
            source=self.instrument.source,
            last=self.last,
            change=change,
            pct_change=(change / self.prev_close * 100.0) if self.prev_close else NAN,
            bid=self.bid,
            ask=self.ask,
            bid_size=self.bid_size,
            ask_size=self.ask_size,
            volume=self.volume,
            day_open=self.day_open,
            day_high=self.day_high,
            day_low=self.day_low,
            prev_close=self.prev_close,
            tick=self.tick,
            tick_seq=self.tick_seq,
            stale=self.stale,
            ts_ns=self.ts_ns,
            seq=self.seq,
        )


class QuoteRow(NamedTuple):
    """One symbol's market as a consumer sees it. NaN means not known yet."""

    symbol: str
    source: str
    last: float
    change: float
    pct_change: float
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    volume: float
    day_open: float
    day_high: float
    day_low: float
    prev_close: float
    tick: int
    tick_seq: int
    stale: bool
    ts_ns: int
    seq: int


@dataclass(frozen=True, slots=True)
class FeedChange:
    """The feed went down (anything but live) or came back (published on the bus when
    its state changes between live and not)."""

    ts_ns: int  # wall clock
    feed: str
    state: FeedState
    message: str

    @property
    def up(self) -> bool:
        return self.state == FeedState.LIVE


@dataclass(frozen=True, slots=True)
class Watchlist:
    name: str
    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EngineStatus:
    feed_name: str
    feed_state: FeedState
    feed_message: str
    delayed: bool
    market_ns: int
    phase: MarketPhase
    stale_symbols: int
    replay: str  # "" unless the feed is a replay: position and speed
    paused: bool
    database: str
    # How the screen reaches the engine: "" in the same process; attached to a daemon,
    # "daemon pid N", or why not and when it tries again ("disconnected: ...").
    link: str = ""
    link_down: bool = False
    # The feed's own word on its condition (rate-limited, polling), "" when fine.
    feed_note: str = ""
    # "" on paper; trading real money, the account ("Alpaca LIVE account 123"): the
    # status bar never lets the trader forget.
    live_account: str = ""


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order as a consumer sees it."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    time_in_force: TimeInForce
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail: str  # "1.50" or "2%" for a trailing stop, else ""
    status: OrderStatus
    filled_quantity: Decimal
    average_price: Decimal | None
    created_ns: int
    updated_ns: int
    reason: str
    parent_id: str = ""
    replaces: str = ""
    strategy: str = ""

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity


@dataclass(frozen=True, slots=True)
class PositionView:
    symbol: str
    quantity: Decimal
    average_cost: Decimal
    last_price: Decimal | None
    market_value: Decimal
    unrealized: Decimal
    realized: Decimal


@dataclass(frozen=True, slots=True)
class AccountView:
    cash: Decimal
    equity: Decimal
    buying_power: Decimal
    day_pnl: Decimal
    realized: Decimal
    unrealized: Decimal
    gross_exposure: Decimal
    net_exposure: Decimal
    commissions: Decimal
    starting_cash: Decimal
    broker: str


@dataclass(frozen=True, slots=True)
class RiskView:
    state: TradingState
    reason: str
    automatic: bool
    limits: tuple[LimitUse, ...]


@dataclass(frozen=True, slots=True)
class StrategyView:
    """One strategy instance as the strategies pane shows it."""

    id: str  # e.g. "ma_cross-1"
    strategy: str  # the registry name
    title: str
    mode: str  # a core.strategies.base.StrategyMode value
    symbols: tuple[str, ...]
    params: dict[str, Any]
    positions: dict[str, Decimal]  # this instance's own, non-zero
    day_pnl: Decimal
    total_pnl: Decimal
    signals_today: int
    last_signal: str  # "BUY AAPL: fast SMA crossed above slow", "" before the first
    last_signal_ns: int
    open_orders: int
    error: str = ""  # why it was switched off (a handler raised), "" when healthy
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class StrategyInfo:
    """A strategy class the engine can run: what the pickers and the parameter editor
    need (`schema` is the Params model's JSON schema, so it crosses a socket)."""

    name: str
    title: str
    description: str
    defaults: dict[str, Any]
    schema: dict[str, Any]
    origin: str


@dataclass(slots=True)
class ChangeCursor:
    """How far one consumer has read the engine's changes."""

    quote_seq: int = 0
    bar_seq: int = 0
    log_seq: int = 0
    watchlist_version: int = -1
    order_seq: int = 0
    fill_count: int = 0
    scan_version: int = -1


@dataclass(frozen=True, slots=True)
class EngineDelta:
    """What changed since a consumer's last pull.

    `bars` are minute bars completed since then, oldest first; `resync` means the
    consumer fell too far behind for a delta and must take a fresh snapshot.
    """

    rows: Sequence[QuoteRow]
    bars: Sequence[Bar]
    building: Sequence[Bar]
    logs: Sequence[LogEvent]
    status: EngineStatus
    watchlists: Sequence[Watchlist] | None
    resync: bool = False
    orders: Sequence[OrderView] = ()  # orders that changed, in order of change
    fills: Sequence[Fill] = ()  # new fills, oldest first
    positions: Sequence[PositionView] = ()  # every open position, marked now
    account: AccountView | None = None
    risk: RiskView | None = None
    strategies: Sequence[StrategyView] = ()  # every instance, marked now
    scan: ScanView | None = None  # the scanner, when it changed


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    rows: dict[str, QuoteRow]
    session_bars: dict[str, list[Bar]]
    logs: list[LogEvent]
    status: EngineStatus
    watchlists: list[Watchlist]
    cursor: ChangeCursor = field(default_factory=ChangeCursor)
    orders: list[OrderView] = field(default_factory=list)  # every order of the journal
    fills: list[Fill] = field(default_factory=list)
    positions: list[PositionView] = field(default_factory=list)
    account: AccountView | None = None
    risk: RiskView | None = None
    strategies: list[StrategyView] = field(default_factory=list)
    scan: ScanView | None = None
