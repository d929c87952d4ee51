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
prints would have left, and only when something next reads the market (an order, a
fill, a risk check, the strategy asking for the equity), so a run with few orders does
not write every symbol's state every day. For the same reason a symbol's prints stop as
soon as it has nothing left working (a market order filled at the open). Portfolio marks
and the equity curve use float mirrors; the risk engine's daily loss and drawdown limits
are checked at each close in Decimal only when the float estimate comes near them.
"""

from __future__ import annotations

import bisect
import gc
import math
import time
from collections.abc import Container, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar, final

import numpy as np
import pandas as pd

# What a run is asked and gives back (core/backtest_result.py), imported from here too.
from core.backtest_result import (
    FILL_AT,
    BacktestError,
    BacktestResult,
    BacktestSpec,
    FillAt,
    OrderRecord,
    Progress,
)
from core.bar_path import POINTS, path_prices, point_events, point_times
from core.brokers.base import BrokerContext
from core.brokers.paper import PaperVenue
from core.bus import Bus
from core.clock import ExchangeCalendar, SimClock
from core.config_trading import PaperSettings, RiskSettings
from core.market import MarketState
from core.metrics import compute_metrics, round_trips
from core.model import NS_PER_SECOND, Fill, Instrument
from core.orders import Order
from core.sim_desk import SimDesk
from core.state import SymbolState
from core.strategies.base import Strategy, StrategyMode, StrategyParams
from core.strategies.runner import CancelIntent, PlaceIntent, Signal, StrategyRunner
from core.strategies.series import SymbolSeries

__all__ = ["FILL_AT", "Backtest", "BacktestError", "BacktestResult", "BacktestSpec",
           "FillAt", "OrderRecord", "Progress", "SessionCalendar", "run_backtest"]

PROGRESS_EVERY_DAYS = 21

EPOCH = date(1970, 1, 1)
Bounds = tuple[int, int, int]  # a session's local midnight, open and close (epoch ns)
_BOUNDS: dict[int, dict[int, Bounds]] = {}  # by id(calendar.zone), then day number


def _pause_gc() -> bool:
    """Pause the cyclic garbage collector for a build or a run; returns whether it was
    on. A run's objects (bars, orders, fills) form no cycles, so reference counting
    frees them all; the collector would only walk the whole process's heap (pandas,
    the UI) every few hundred allocations, which cost about a tenth of a run."""
    collecting = gc.isenabled()
    gc.disable()
    return collecting


def _resume_gc(collecting: bool) -> None:
    if collecting:
        gc.enable()


def _day_number(day: date) -> int:
    return (day - EPOCH).days


def _day(number: int) -> date:
    return date.fromordinal(EPOCH.toordinal() + number)


def _session_bounds(calendar: ExchangeCalendar, day_numbers: Sequence[int]) -> list[Bounds]:
    """Local midnight, the open and the close of sessions (epoch ns) by their day
    numbers (days since 1970-01-01); remembered, as runs (a parameter grid) ask for the
    same sessions again and again."""
    known = _BOUNDS.setdefault(id(calendar.zone), {})
    for number in day_numbers:
        if number not in known:
            day = _day(number)
            # Regular hours even for a day the calendar has no session on (a bar on a
            # holiday in the data still needs a time).
            opens, closes = calendar.open_close_ns(day)
            known[number] = (calendar.day_bounds(day)[0], opens, closes)
    return list(map(known.__getitem__, day_numbers))


@final  # its memory is shared by every instance: a subclass with other hours would
# read this class's answers.
class SessionCalendar(ExchangeCalendar):
    """The exchange calendar with the answers it computes remembered (by every
    instance: they depend on the date alone). A backtest asks the same few questions
    about each session again and again (the paper venue on every order and on the first
    quote of every day it has one working), and so do the runs of a parameter grid."""

    _open_close: ClassVar[dict[date, tuple[int, int]]] = {}
    _next: ClassVar[dict[date, date]] = {}
    _dates: ClassVar[dict[int, date]] = {}
    _is_session: ClassVar[dict[date, bool]] = {}
    _day_bounds: ClassVar[dict[date, tuple[int, int, int, int]]] = {}

    def open_close_ns(self, day: date) -> tuple[int, int]:
        known = self._open_close.get(day)
        if known is None:
            known = self._open_close[day] = super().open_close_ns(day)
        return known

    def next_session(self, after: date) -> date:
        known = self._next.get(after)
        if known is None:
            known = self._next[after] = super().next_session(after)
        return known

    def is_session(self, day: date) -> bool:
        known = self._is_session.get(day)
        if known is None:
            known = self._is_session[day] = super().is_session(day)
        return known

    def day_bounds(self, day: date) -> tuple[int, int, int, int]:
        known = self._day_bounds.get(day)
        if known is None:
            known = self._day_bounds[day] = super().day_bounds(day)
        return known

    def session_date(self, ts_ns: int) -> date:
        known = self._dates.get(ts_ns)
        if known is None:
            known = self._dates[ts_ns] = super().session_date(ts_ns)
        return known


def _frame_dates(frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(frame.index.values).astype("datetime64[D]")


class _Symbol:
    """One symbol of a run: its series, its market state, the row of its next bar, and
    how far behind its market state is. A symbol's market state (and portfolio mark)
    is brought to its latest bar only when something reads the market (an order, a
    fill, a risk check, the strategy asking for the equity): rows `first` to `row`
    are then settled at once."""

    __slots__ = ("bounds", "close", "closes", "first", "next", "row", "series", "state",
                 "symbol")

    def __init__(self, symbol: str, series: SymbolSeries, state: SymbolState,
                 bounds: list[Bounds], first_row: int) -> None:
        self.symbol = symbol
        self.series = series
        self.state = state
        self.bounds = bounds  # by row
        self.next = first_row  # the row of its next bar (its rows come one per session)
        self.closes = series.close
        self.close = math.nan  # its latest close played
        self.first = -1  # the first row not settled yet; -1 when up to date
        self.row = -1


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
        collecting = _pause_gc()
        try:
            self._build(strategy_class, params, bars, spec, paper, risk, order_id_prefix,
                        calendar)
        finally:
            _resume_gc(collecting)

    def _build(self, strategy_class: type[Strategy[Any]], params: StrategyParams,
               bars: Mapping[str, pd.DataFrame], spec: BacktestSpec,
               paper: PaperSettings | None, risk: RiskSettings | None, order_id_prefix: str,
               calendar: ExchangeCalendar | None) -> None:
        if spec.fill_at not in FILL_AT:
            raise BacktestError(f"fill_at must be one of {', '.join(FILL_AT)}")
        if spec.end < spec.start:
            raise BacktestError(f"the end {spec.end} is before the start {spec.start}")
        missing = [s for s in spec.symbols if s not in bars or bars[s].empty]
        if missing:
            raise BacktestError(f"no bars for {', '.join(missing)}")
        self.spec = spec
        self.calendar = calendar or SessionCalendar()
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
            StrategyMode.PAPER, now_ns=self.clock.now_ns, account_equity=self._account_equity,
            round_price=lambda symbol, price: self.market.states[symbol].instrument.round_price(
                price))
        # The strategy is the only one trading: its book is the account's (a fill it is
        # told of is already counted there, and counted once).
        self.runner.book.portfolio = self.desk.portfolio
        # The sessions to play, each with the symbols that have a bar in it, built
        # once: the day loop then touches only what trades that day.
        first_day, last_day = _day_number(spec.start), _day_number(spec.end)
        self._first_row: dict[str, int] = {}
        played: list[tuple[_Symbol, list[int]]] = []
        for symbol in spec.symbols:
            frame = bars[symbol]
            numbers = _frame_dates(frame).astype(np.int64).tolist()
            bounds = _session_bounds(self.calendar, numbers)
            series = self.runner.series[symbol]
            series.load(frame, [b[1] for b in bounds])
            first = self._first_row[symbol] = bisect.bisect_left(numbers, first_day)
            stop = bisect.bisect_right(numbers, last_day, first)
            one = _Symbol(symbol, series, self.market.states[symbol], bounds, first)
            played.append((one, numbers[first:stop]))
        if all(numbers == played[0][1] for _, numbers in played):
            # Every symbol trades every session (one symbol always does): one tuple.
            self._sessions = played[0][1]
            members = tuple(one for one, _ in played)
            self._days = [members] * len(self._sessions)
            first_played = played[0][0]
            self._bounds = first_played.bounds[
                first_played.next:first_played.next + len(self._sessions)]
        else:
            by_day: dict[int, list[_Symbol]] = {}
            for one, numbers in played:
                for number in numbers:
                    day = by_day.get(number)
                    if day is None:
                        by_day[number] = [one]
                    else:
                        day.append(one)
            self._sessions = sorted(by_day)
            # Sessions with the same symbols share one tuple (most do): fewer objects.
            shared: dict[tuple[_Symbol, ...], tuple[_Symbol, ...]] = {}
            self._days = [shared.setdefault(members, members)
                          for members in (tuple(by_day[number]) for number in self._sessions)]
            self._bounds = _session_bounds(self.calendar, self._sessions)
        self._by_symbol = {one.symbol: one for one, _ in played}
        self._behind: dict[str, _Symbol] = {}  # the symbols with rows to settle
        self.signals: list[Signal] = []

    # ------------------------------------------------------------------ the run

    def run(self, progress: Progress | None = None) -> BacktestResult:
        collecting = _pause_gc()
        try:
            return self._run(progress)
        finally:
            _resume_gc(collecting)

    def _run(self, progress: Progress | None) -> BacktestResult:
        started = time.perf_counter()
        spec = self.spec
        runner = self.runner
        sessions = self._sessions
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
        by_symbol = self._by_symbol
        # The bars complete at the bell, or a second before it to fill at the close.
        early = NS_PER_SECOND if spec.fill_at == "close" else 0
        venue, desk, clock = self.venue, self.desk, self.clock
        risk, portfolio = desk.risk, desk.portfolio
        held = desk.held  # the float mirror of positions, updated in place by fills
        advance, behind, set_now = runner.advance, self._behind, clock.set_ns
        working = venue.working_symbols()  # a live view
        wants_quotes = runner.wants_quotes
        near = self._risk_near()
        bars_done = 0
        total = len(sessions)
        day_start_equity = float(spec.cash)
        for number, ((_, opens, closes_ns), today) in enumerate(
                zip(self._bounds, self._days, strict=True)):
            if risk.state_automatic:
                # A new session lifts a state the limits set (begin_day does nothing
                # else a backtest needs, so it is skipped otherwise).
                self._flush()
                risk.begin_day(portfolio.equity())
            played: Container[str] = ()
            if working or wants_quotes:
                # The prints, for symbols whose orders could fill on them. Only their
                # prints are read until an order or the equity is asked for (which
                # settles all).
                printed = today if wants_quotes else [
                    one for one in today if one.symbol in working]
                if printed:
                    self._flush(printed)
                    played = self._play(printed, opens, closes_ns)
            # The rest is settled when something next reads the market (_flush).
            for one in today:
                row = one.next
                one.next = row + 1
                one.close = one.closes[row]
                if one.first < 0 and one.symbol not in played:
                    one.first = row
                    behind[one.symbol] = one
                one.row = row
            set_now(closes_ns - early)
            for one in today:
                advance(one.series)
            bars_done += len(today)
            if runner.outbox:
                self._dispatch()
            if runner.failure is not None:
                break
            # As SimDesk.equity_at: cash plus the positions at today's closes.
            if held:
                value = 0.0  # a plain loop: a comprehension is a call of its own on 3.11
                for symbol, quantity in held.items():
                    value += quantity * by_symbol[symbol].close
                equity = desk.cash + value
                invested.append(True)
            else:
                equity = desk.cash
                invested.append(False)
            equity_curve.append(equity)
            if day_start_equity - equity >= near:
                self._observe_risk(equity, day_start_equity)
            day_start_equity = equity
            if progress is not None and (number % PROGRESS_EVERY_DAYS == 0 or number == total - 1):
                progress(number + 1, total)
        runner.stop()
        self._dispatch()
        self._flush()
        trips = round_trips(desk.fills)
        day_array = np.asarray(sessions[:len(equity_curve)], dtype="datetime64[D]")
        metrics = compute_metrics(day_array, np.asarray(equity_curve, dtype=np.float64),
                                  np.asarray(invested, dtype=bool), trips)
        failure = runner.failure.message if runner.failure is not None else ""
        open_positions = {p.symbol: p.quantity for p in desk.portfolio.positions.values()
                          if p.quantity}
        session_days: list[date] = day_array.tolist()
        return BacktestResult(
            spec, metrics, session_days, equity_curve, trips,
            [OrderRecord.of(order) for order in desk.orders.values()], list(desk.fills),
            self.signals, list(desk.refusals), failure, bars_done,
            time.perf_counter() - started, open_positions)

    def _play(self, printed: Sequence[_Symbol], opens: int, closes_ns: int) -> Container[str]:
        """Feed the session's prints of these symbols through the market, the venue and
        the strategy, point by point (what a fill asks for goes out before the next).

        Once none of them has an order left that could fill (a market order filled at
        the open), the remaining prints could change nothing but the market state, and
        they are skipped: the symbols are then settled like those not printed. Returns
        the symbols whose prints all went through (their market state is the day's)."""
        clock, market, runner = self.clock, self.market, self.runner
        working = self.venue.working_symbols()
        paths = []
        for one in printed:
            series, row = one.series, one.next
            paths.append((one.symbol, path_prices(series.open[row], series.high[row],
                                                  series.low[row], series.close[row]),
                          series.volume[row] / POINTS))
        for point, ts in enumerate(point_times(opens, closes_ns)):
            clock.set_ns(ts)
            events: list[Any] = []
            for symbol, prices, size in paths:
                events.extend(point_events(symbol, ts, prices[point], size))
            market.ingest(events)
            if runner.wants_quotes:
                for event in events[1::2]:
                    runner.on_quote(event)
            if runner.outbox:
                self._dispatch()
            if point < POINTS - 1 and not runner.wants_quotes and not any(
                    symbol in working for symbol, _, _ in paths):
                return ()
        return {symbol for symbol, _, _ in paths}

    def _flush(self, only: Sequence[_Symbol] = ()) -> None:
        """Bring every symbol's market state and portfolio mark to its latest
        bar (or only those of `only`'s symbols): as settling it at each of its sessions
        would have left them."""
        behind = self._behind
        if not behind:
            return
        if only:
            for one in only:
                if behind.pop(one.symbol, None) is not None:
                    self._settle(one)
            return
        for one in behind.values():
            self._settle(one)
        behind.clear()

    def _settle(self, one: _Symbol) -> None:
        """The close as bid, ask and last, the day's range and volume, and the close
        before it as the reference (each session settled was a new one)."""
        row, first, state, series = one.row, one.first, one.state, one.series
        midnight, _, closes_ns = one.bounds[row]
        if state.session_start_ns != midnight:
            if state.session_start_ns != one.bounds[first][0] and state.last == state.last:
                state.prev_close = state.last
            closes = series.close
            for earlier in range(row - 1, first - 1, -1):
                close = closes[earlier]
                if close == close:
                    state.prev_close = close
                    break
            state.session_start_ns = midnight
        close, volume = series.close[row], series.volume[row]
        size = volume / POINTS
        state.bid = state.ask = state.last = close
        state.bid_size = state.ask_size = state.last_size = size
        state.day_open, state.day_high, state.day_low = (
            series.open[row], series.high[row], series.low[row])
        state.volume = volume
        state.ts_ns = closes_ns - NS_PER_SECOND  # the close print
        self.desk.mark(one.symbol, close)
        one.first = -1

    def _account_equity(self) -> Decimal:
        """The account's equity for the strategy (`ctx.equity()`), marked to the latest
        closes."""
        self._flush()
        return self.desk.equity()

    # ------------------------------------------------------------------ orders

    def _dispatch(self) -> None:
        """Send what the strategy asked for, in order, until it asks for nothing more
        (a fill on arrival may make it ask again)."""
        runner, desk = self.runner, self.desk
        if runner.outbox:
            self._flush()  # risk and the venue read the market
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

    def _risk_near(self) -> float:
        """The fall in equity over a day from which the daily loss or the drawdown
        limit could trip: 90% of the nearer one (inf when both are off). Below it the
        Decimal check at the close is skipped, as it cannot trip."""
        limits = self.desk.risk.settings
        return min((0.9 * float(limit) for limit in (limits.max_daily_loss, limits.max_drawdown)
                    if limit), default=math.inf)

    def _observe_risk(self, equity: float, day_start: float) -> None:
        """The daily loss and drawdown limits at the close, in Decimal (the float
        estimate came within 10% of one)."""
        self._flush()
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
