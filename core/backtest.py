"""The backtester: strategy classes, unchanged, over historical daily bars.

A `SimClock` walks the sessions. Each session plays every symbol's bar as the prints of
`core.bar_path` through the live components: the market state, the paper venue (its
fill rules, slippage and commissions), the risk engine and the order state machine
(core/sim_desk.py). The strategy is driven by the same `StrategyRunner` as live, so it
gets its bar when the bar completes, sees nothing later, and its orders fill at the
next session's open (`fill_at="next_open"`, the default) or at the bar's own close
(`fill_at="close"`). Several symbols share one portfolio.

Speed: a symbol with no order resting at the venue does not need its prints (nothing
could fill): its market state is set to the session's end directly, which is what the
prints would have left. Portfolio marks and the equity curve use float mirrors; the
risk engine's daily loss and drawdown limits are checked at each close in Decimal only
when the float estimate comes near them.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import pandas as pd

from core.bar_path import POINTS, point_events, point_prices, point_times
from core.brokers.base import BrokerContext
from core.brokers.paper import PaperVenue
from core.bus import Bus
from core.clock import ExchangeCalendar, SimClock
from core.config_trading import PaperSettings, RiskSettings
from core.market import MarketState
from core.metrics import Metrics, RoundTrip, compute_metrics, round_trips
from core.model import NS_PER_SECOND, Bar, Fill, Instrument
from core.orders import Order
from core.sim_desk import SimDesk
from core.strategies.base import Strategy, StrategyMode, StrategyParams
from core.strategies.runner import CancelIntent, PlaceIntent, Signal, StrategyRunner

FillAt = Literal["next_open", "close"]
FILL_AT: tuple[FillAt, ...] = ("next_open", "close")
PROGRESS_EVERY_DAYS = 21


class BacktestError(ValueError):
    """A backtest that cannot run as asked (no data, bad dates): a sentence for the
    trader."""


@dataclass(frozen=True, slots=True)
class BacktestSpec:
    strategy: str
    params: Mapping[str, Any]
    symbols: tuple[str, ...]
    start: date
    end: date
    cash: Decimal = Decimal(100_000)
    fill_at: FillAt = "next_open"

    def describe(self) -> str:
        shown = ", ".join(self.symbols[:6]) + (f" +{len(self.symbols) - 6}"
                                                if len(self.symbols) > 6 else "")
        return f"{self.strategy} on {shown}, {self.start} to {self.end}"


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order as the backtest left it."""

    client_order_id: str
    ts_ns: int
    symbol: str
    side: str
    quantity: Decimal
    order_type: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: str
    filled: Decimal
    reason: str

    @classmethod
    def of(cls, order: Order) -> OrderRecord:
        request = order.request
        return cls(order.client_order_id, order.created_ns, request.symbol,
                   request.side.value, request.quantity, request.order_type.value,
                   request.limit_price, request.stop_price, order.status.value,
                   order.filled_quantity, order.reason)


@dataclass(slots=True)
class BacktestResult:
    spec: BacktestSpec
    metrics: Metrics
    days: list[date]
    equity: list[float]
    trips: list[RoundTrip]
    orders: list[OrderRecord]
    fills: list[Fill]
    signals: list[Signal]
    refusals: list[str]
    failure: str = ""
    bars: int = 0
    elapsed_s: float = 0.0
    open_positions: dict[str, Decimal] = field(default_factory=dict)

    @property
    def bars_per_second(self) -> float:
        return self.bars / self.elapsed_s if self.elapsed_s > 0 else math.inf


Progress = Callable[[int, int], None]  # (sessions done, sessions in all)


EPOCH = date(1970, 1, 1)
_BOUNDS: dict[tuple[int, int], tuple[int, int, int]] = {}


def _day_number(day: date) -> int:
    return (day - EPOCH).days


def _day(number: int) -> date:
    return date.fromordinal(EPOCH.toordinal() + number)


def _session_bounds(calendar: ExchangeCalendar, day_number: int) -> tuple[int, int, int]:
    """Local midnight, the open and the close of a session (epoch ns) by its day number
    (days since 1970-01-01); remembered, as runs (a parameter grid) ask for the same
    sessions again and again."""
    key = (id(calendar.zone), day_number)
    bounds = _BOUNDS.get(key)
    if bounds is None:
        day = _day(day_number)
        midnight = int(datetime(day.year, day.month, day.day,
                                tzinfo=calendar.zone).timestamp())
        opens, closes = calendar.open_close_ns(day)
        bounds = _BOUNDS[key] = (midnight * NS_PER_SECOND, opens, closes)
    return bounds


def _frame_dates(frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(frame.index.values).astype("datetime64[D]")


class Backtest:
    """One run. Build it, then `run()`; not reusable."""

    def __init__(
        self,
        strategy_class: type[Strategy[Any]],
        params: StrategyParams,
        bars: Mapping[str, pd.DataFrame],
        spec: BacktestSpec,
        *,
        paper: PaperSettings | None = None,
        risk: RiskSettings | None = None,
        order_id_prefix: str = "td",
        calendar: ExchangeCalendar | None = None,
    ) -> None:
        if spec.fill_at not in FILL_AT:
            raise BacktestError(f"fill_at must be one of {', '.join(FILL_AT)}")
        if spec.end < spec.start:
            raise BacktestError(f"the end {spec.end} is before the start {spec.start}")
        missing = [s for s in spec.symbols if s not in bars or bars[s].empty]
        if missing:
            raise BacktestError(f"no bars for {', '.join(missing)}")
        self.spec = spec
        self.calendar = calendar or ExchangeCalendar()
        self.clock = SimClock()
        self.bus = Bus()
        self.market = MarketState(self.bus, self.calendar)
        paper_settings = (paper or PaperSettings()).model_copy(
            update={"starting_cash": spec.cash, "latency_ms": 0.0})
        context = BrokerContext(self.market, self.bus, self.clock.now_ns, self.calendar, None)
        self.venue = PaperVenue(paper_settings, context)
        for symbol in spec.symbols:
            self.market.track(Instrument(symbol, source="backtest"))
        self.desk = SimDesk(self.venue, self.market, self.bus, self.clock,
                            risk or RiskSettings(), order_id_prefix=order_id_prefix)
        self.desk.on_fill = self._on_fill
        self.desk.on_end = self._on_end
        self.runner = StrategyRunner(
            f"{strategy_class.name}#bt", strategy_class, params, spec.symbols,
            StrategyMode.PAPER, now_ns=self.clock.now_ns, account_equity=self.desk.equity,
            round_price=lambda symbol, price: self.market.states[symbol].instrument.round_price(
                price))
        # The sessions to play, each with the symbols that have a bar in it (and the
        # bar's row), built once: the day loop then touches only what trades that day.
        first_day, last_day = _day_number(spec.start), _day_number(spec.end)
        self._by_day: dict[int, list[tuple[str, int]]] = {}
        self._first_row: dict[str, int] = {}
        for symbol in spec.symbols:
            frame = bars[symbol]
            numbers = _frame_dates(frame).astype(np.int64).tolist()
            ts = [_session_bounds(self.calendar, n)[1] for n in numbers]
            self.runner.series[symbol].load(frame, np.asarray(ts, dtype=np.int64))
            self._first_row[symbol] = bisect.bisect_left(numbers, first_day)
            for row in range(self._first_row[symbol], len(numbers)):
                if numbers[row] > last_day:
                    break
                self._by_day.setdefault(numbers[row], []).append((symbol, row))
        self.signals: list[Signal] = []

    # ------------------------------------------------------------------ the run

    def run(self, progress: Progress | None = None) -> BacktestResult:
        started = time.perf_counter()
        spec = self.spec
        runner = self.runner
        sessions = sorted(self._by_day)
        if not sessions:
            raise BacktestError(f"no bars between {spec.start} and {spec.end} for "
                                f"{', '.join(spec.symbols)}")
        # Warm-up: the bars before the start are history the strategy sees, not trades.
        for symbol, series in runner.series.items():
            series.cursor = self._first_row[symbol] - 1
        runner.start()
        self._dispatch()
        equity_curve: list[float] = []
        invested: list[bool] = []
        days: list[int] = []
        closes: dict[str, float] = {}
        states = self.market.states
        fill_at_close = spec.fill_at == "close"
        venue, desk, clock = self.venue, self.desk, self.clock
        bars_done = 0
        total = len(sessions)
        day_start_equity = float(spec.cash)
        by_day = self._by_day
        for number, day_number in enumerate(sessions):
            midnight, opens, closes_ns = _session_bounds(self.calendar, day_number)
            today = by_day[day_number]
            self._begin_day(day_start_equity)
            # The prints, for symbols whose orders could fill on them.
            working = venue.working_symbols()
            printed = [(s, r) for s, r in today if s in working or runner.wants_quotes]
            if printed:
                self._play(printed, opens, closes_ns)
            for symbol, row in today:
                series = runner.series[symbol]
                close = series.close[row]
                closes[symbol] = close
                if not printed or (symbol, row) not in printed:
                    self._settle(states[symbol], series.open[row], series.high[row],
                                 series.low[row], close, series.volume[row], midnight,
                                 closes_ns - NS_PER_SECOND)
                    desk.portfolio.mark(symbol, close)
            # The bars complete: at the bell, or a second before it to fill at the close.
            clock.set_ns(closes_ns - NS_PER_SECOND if fill_at_close else closes_ns)
            for symbol, _ in today:
                runner.advance(runner.series[symbol])
            bars_done += len(today)
            self._dispatch()
            if runner.failure is not None:
                break
            equity = desk.equity_at(closes)
            days.append(day_number)
            equity_curve.append(equity)
            invested.append(bool(desk.held))
            self._observe_risk(equity, day_start_equity)
            day_start_equity = equity
            if progress is not None and (number % PROGRESS_EVERY_DAYS == 0 or number == total - 1):
                progress(number + 1, total)
        runner.stop()
        self._dispatch()
        trips = round_trips(desk.fills)
        session_days = [_day(number) for number in days]
        metrics = compute_metrics(session_days, np.asarray(equity_curve, dtype=np.float64),
                                  np.asarray(invested, dtype=bool), trips)
        failure = runner.failure.message if runner.failure is not None else ""
        held = {p.symbol: p.quantity for p in desk.portfolio.positions.values() if p.quantity}
        return BacktestResult(
            spec, metrics, session_days, equity_curve, trips,
            [OrderRecord.of(order) for order in desk.orders.values()], list(desk.fills),
            self.signals, list(desk.refusals), failure, bars_done,
            time.perf_counter() - started, held)

    def _play(self, printed: Sequence[tuple[str, int]], opens: int, closes_ns: int) -> None:
        """Feed the session's prints of these symbols through the market, the venue and
        the strategy, point by point (what a fill asks for goes out before the next)."""
        series = self.runner.series
        paths = []
        for symbol, row in printed:
            s = series[symbol]
            bar = Bar(symbol, opens, 86_400, s.open[row], s.high[row], s.low[row],
                      s.close[row], s.volume[row])
            paths.append((symbol, point_prices(bar), bar.volume / POINTS))
        for point, ts in enumerate(point_times(opens, closes_ns)):
            self.clock.set_ns(ts)
            events: list[Any] = []
            for symbol, prices, size in paths:
                events.extend(point_events(symbol, ts, prices[point], size))
            self.market.ingest(events)
            if self.runner.wants_quotes:
                for event in events[1::2]:
                    self.runner.on_quote(event)
            self._dispatch()

    @staticmethod
    def _settle(state: Any, o: float, h: float, lo: float, c: float, v: float,
                midnight: int, close_print_ns: int) -> None:
        """A symbol's market state as the session's prints would have left it."""
        if state.session_start_ns != midnight:
            if state.last == state.last:
                state.prev_close = state.last
            state.session_start_ns = midnight
        size = v / POINTS
        state.bid = state.ask = state.last = c
        state.bid_size = state.ask_size = state.last_size = size
        state.day_open, state.day_high, state.day_low = o, h, lo
        state.volume = v
        state.ts_ns = close_print_ns

    # ------------------------------------------------------------------ orders

    def _dispatch(self) -> None:
        """Send what the strategy asked for, in order, until it asks for nothing more
        (a fill on arrival may make it ask again)."""
        runner, desk = self.runner, self.desk
        while runner.outbox:
            for intent in runner.drain():
                if isinstance(intent, PlaceIntent):
                    ref = intent.ref
                    order = desk.place(intent.request,
                                       lambda o, ref=ref: runner.order_placed(  # type: ignore[misc]
                                           ref, o.client_order_id))
                    if order is None:
                        runner.order_ended(ref)
                elif isinstance(intent, CancelIntent):
                    working = runner.book.working.get(intent.ref)
                    if working is not None and working.client_order_id:
                        desk.cancel(working.client_order_id)
                else:
                    self.signals.append(intent)

    def _on_fill(self, order: Order, fill: Fill) -> None:
        self.runner.on_fill(fill)

    def _on_end(self, order: Order) -> None:
        self.runner.order_ended(order.client_order_id)

    # ------------------------------------------------------------------ risk

    def _begin_day(self, equity: float) -> None:
        """A new session lifts a state the limits set (the only thing begin_day does
        that a backtest needs every day is cheap to skip otherwise)."""
        risk = self.desk.risk
        if risk.state_automatic:
            risk.begin_day(self.desk.portfolio.equity())

    def _observe_risk(self, equity: float, day_start: float) -> None:
        """The daily loss and drawdown limits at the close, in Decimal when the float
        estimate comes within 10% of one (the rest of the time they cannot trip)."""
        limits = self.desk.risk.settings
        loss = day_start - equity
        near = (limits.max_daily_loss and loss >= 0.9 * float(limits.max_daily_loss)) or (
            limits.max_drawdown and loss >= 0.9 * float(limits.max_drawdown))
        if not near:
            return
        # Daily bars: the day's high is the larger of its start and its close.
        portfolio, risk = self.desk.portfolio, self.desk.risk
        portfolio.day_start_equity = Decimal(repr(day_start)).quantize(Decimal("0.01"))
        summary = portfolio.summary()
        risk.day_high = max(portfolio.day_start_equity, summary.equity)
        risk.observe(summary.equity, summary.day_pnl)


def run_backtest(strategy_class: type[Strategy[Any]], params: StrategyParams,
                 bars: Mapping[str, pd.DataFrame], spec: BacktestSpec, *,
                 paper: PaperSettings | None = None, risk: RiskSettings | None = None,
                 progress: Progress | None = None) -> BacktestResult:
    return Backtest(strategy_class, params, bars, spec, paper=paper, risk=risk).run(progress)


def utc_date(ts_ns: int) -> date:
    return datetime.fromtimestamp(ts_ns / NS_PER_SECOND, tz=UTC).date()
