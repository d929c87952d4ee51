"""The backtester over real bundled bars: when and at what price orders fill, what the
strategy may see, how risk and a failing strategy are handled, and the metrics' inputs."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar

import pandas as pd
import pytest

from core.backtest import Backtest, BacktestError, BacktestSpec, run_backtest
from core.clock import ExchangeCalendar
from core.config_trading import PaperSettings, RiskSettings
from core.indicators import Indicator
from core.model import NS_PER_SECOND, Bar, Side
from core.strategies.base import SizedParams, Strategy, StrategyParams
from core.strategies.builtin import DonchianBreakout, MaCross
from core.strategies.series import FutureBarError
from data.bundle import BundledDailyBars

CALENDAR = ExchangeCalendar()
NO_COSTS = PaperSettings(commission="none", slippage_bps=Decimal(0))


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    with BundledDailyBars() as bundle:
        return {symbol: bundle.load(symbol) for symbol in ("AAPL", "MSFT", "XOM", "JPM")}


def spec_for(strategy: str, symbols: Sequence[str], start: date = date(2016, 1, 4),
             end: date = date(2017, 12, 29), **extra: Any) -> BacktestSpec:
    return BacktestSpec(strategy, {}, tuple(symbols), start, end, **extra)


def session_of(ts_ns: int) -> date:
    return CALENDAR.session_date(ts_ns)


def test_market_orders_fill_at_the_next_sessions_open_plus_slippage(
        frames: dict[str, pd.DataFrame]) -> None:
    paper = PaperSettings(slippage_bps=Decimal(5))
    result = run_backtest(MaCross, MaCross.Params(quantity=100),
                          {"AAPL": frames["AAPL"]}, spec_for("ma_cross", ["AAPL"]), paper=paper)
    assert len(result.fills) >= 10
    bars = frames["AAPL"]
    days = [d.date() for d in bars.index]
    orders = {o.client_order_id: o for o in result.orders}
    for fill in result.fills:
        order = orders[fill.client_order_id]
        placed_on = session_of(order.ts_ns)
        _opens, closes = CALENDAR.open_close_ns(placed_on)
        assert order.ts_ns == closes  # the bar completed at the closing bell
        next_day = days[days.index(placed_on) + 1]
        assert fill.ts_ns == CALENDAR.open_close_ns(next_day)[0]
        open_price = Decimal(str(bars.loc[str(next_day), "open"]))
        slip = open_price * Decimal(5) / Decimal(10_000)
        expected = open_price + slip if fill.side == Side.BUY else open_price - slip
        assert fill.price == expected.quantize(Decimal("0.01"))
        assert fill.commission == Decimal("1.00")  # per share, at the minimum


def test_fill_at_close_fills_on_the_bar_itself(frames: dict[str, pd.DataFrame]) -> None:
    spec = spec_for("ma_cross", ["AAPL"], fill_at="close")
    result = run_backtest(MaCross, MaCross.Params(quantity=100), {"AAPL": frames["AAPL"]},
                          spec, paper=NO_COSTS)
    bars = frames["AAPL"]
    assert result.fills
    for fill in result.fills:
        day = session_of(fill.ts_ns)
        assert fill.ts_ns == CALENDAR.open_close_ns(day)[1] - NS_PER_SECOND
        assert fill.price == Decimal(str(bars.loc[str(day), "close"]))


def test_trades_alternate_and_the_equity_curve_adds_up(frames: dict[str, pd.DataFrame]) -> None:
    result = run_backtest(MaCross, MaCross.Params(quantity=100), {"AAPL": frames["AAPL"]},
                          spec_for("ma_cross", ["AAPL"]), paper=NO_COSTS)
    sides = [f.side for f in result.fills]
    assert sides[0] == Side.BUY
    assert all(a != b for a, b in itertools.pairwise(sides))
    assert len(result.days) == len(result.equity) == result.bars
    closed_pnl = sum((t.pnl for t in result.trips), Decimal(0))
    held = result.open_positions.get("AAPL", Decimal(0))
    last_close = float(frames["AAPL"].loc[str(result.days[-1]), "close"])
    cash = result.equity[-1] - float(held) * last_close
    open_cost = sum(float(f.price * f.quantity) for f in result.fills[len(result.trips) * 2:])
    assert cash == pytest.approx(100_000 + float(closed_pnl) - open_cost)
    assert result.metrics.trades == len(result.trips)
    assert result.metrics.end_equity == pytest.approx(result.equity[-1])


def test_several_symbols_share_one_portfolio(frames: dict[str, pd.DataFrame]) -> None:
    symbols = ["AAPL", "MSFT", "XOM", "JPM"]
    result = run_backtest(MaCross, MaCross.Params(quantity=50), frames,
                          spec_for("ma_cross", symbols), paper=NO_COSTS)
    traded = {f.symbol for f in result.fills}
    assert traded == set(symbols)
    assert result.bars == sum(
        len(frames[s].loc["2016-01-04":"2017-12-29"]) for s in symbols)  # type: ignore[misc]
    ids = [o.client_order_id for o in result.orders]
    assert ids == sorted(ids, key=lambda i: int(i.rsplit("-", 1)[1]))
    assert len(set(ids)) == len(ids)


class Recorder(Strategy[StrategyParams]):
    """Reads what it may, and tries what it may not."""

    name = "recorder"
    title = "records what it sees"
    Params = StrategyParams
    seen: ClassVar[list[tuple[date, float, float]]] = []
    future_refused: ClassVar[list[bool]] = []

    def indicators(self) -> Sequence[Indicator]:
        return (Indicator("sma", 3),)

    def on_bar(self, bar: Bar) -> None:
        ctx = self.ctx
        assert ctx.close(bar.symbol) == bar.close
        Recorder.seen.append((CALENDAR.session_date(bar.ts_ns), bar.close,
                              ctx.value(bar.symbol, Indicator("sma", 3))))
        try:
            ctx.close(bar.symbol, -1)
        except FutureBarError:
            Recorder.future_refused.append(True)


def test_a_strategy_sees_each_bar_once_in_order_and_nothing_later(
        frames: dict[str, pd.DataFrame]) -> None:
    Recorder.seen.clear()
    Recorder.future_refused.clear()
    spec = spec_for("recorder", ["AAPL"], date(2017, 3, 1), date(2017, 3, 31))
    run_backtest(Recorder, StrategyParams(), {"AAPL": frames["AAPL"]}, spec)
    march = frames["AAPL"].loc["2017-03-01":"2017-03-31"]  # type: ignore[misc]
    assert [d for d, _, _ in Recorder.seen] == [d.date() for d in march.index]
    assert [c for _, c, _ in Recorder.seen] == march["close"].tolist()
    closes = frames["AAPL"]["close"]
    for day, _, sma in Recorder.seen:
        upto = closes.loc[:str(day)]
        assert sma == pytest.approx(upto.iloc[-3:].mean(), abs=1e-9)  # warm from history
    assert len(Recorder.future_refused) == len(Recorder.seen)


class Exploder(Strategy[SizedParams]):
    name = "exploder"
    title = "buys, then raises"
    Params = SizedParams

    def indicators(self) -> Sequence[Indicator]:
        return ()

    def on_bar(self, bar: Bar) -> None:
        if self.ctx.bars_seen(bar.symbol) > 300 and not self.ctx.position(bar.symbol):
            self.ctx.buy(bar.symbol, 10, reason="first")
        if self.ctx.position(bar.symbol) > 0:
            raise RuntimeError("boom")


def test_a_strategy_that_raises_stops_the_run_with_its_error(
        frames: dict[str, pd.DataFrame]) -> None:
    result = run_backtest(Exploder, SizedParams(), {"AAPL": frames["AAPL"]},
                          spec_for("exploder", ["AAPL"]))
    assert "exploder#bt raised in on_bar: RuntimeError: boom" in result.failure
    assert len(result.fills) == 1
    assert result.days[-1] < date(2017, 12, 29)


class Greedy(Strategy[SizedParams]):
    name = "greedy"
    title = "asks for too much"
    Params = SizedParams

    def indicators(self) -> Sequence[Indicator]:
        return ()

    def on_bar(self, bar: Bar) -> None:
        if not self.ctx.open_orders(bar.symbol) and not self.ctx.position(bar.symbol):
            self.ctx.buy(bar.symbol, 20_000, reason="all in")


def test_risk_judges_every_strategy_order(frames: dict[str, pd.DataFrame]) -> None:
    risk = RiskSettings(max_order_quantity=Decimal(10_000))
    result = run_backtest(Greedy, SizedParams(), {"AAPL": frames["AAPL"]},
                          spec_for("greedy", ["AAPL"], date(2016, 1, 4), date(2016, 1, 29)),
                          risk=risk)
    assert not result.fills
    assert result.refusals
    assert "20000 shares is over" in result.refusals[0]


def test_the_donchian_stop_only_ever_rises(frames: dict[str, pd.DataFrame]) -> None:
    result = run_backtest(DonchianBreakout, DonchianBreakout.Params(quantity=100),
                          {"MSFT": frames["MSFT"]}, spec_for("donchian_breakout", ["MSFT"]))
    stops = [o for o in result.orders if o.order_type == "stop"]
    assert stops
    entries = [f for f in result.fills if f.side == Side.BUY]
    assert entries
    # Within one position, each replacement stop is higher than the one it replaced.
    by_position: list[list[Decimal]] = []
    entry_times = [f.ts_ns for f in entries]
    for order in stops:
        index = sum(1 for t in entry_times if t <= order.ts_ns)
        while len(by_position) < index:
            by_position.append([])
        assert order.stop_price is not None
        by_position[index - 1].append(order.stop_price)
    for levels in by_position:
        assert levels == sorted(levels)


def test_bad_specs_are_refused_with_a_reason(frames: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(BacktestError, match="before the start"):
        Backtest(MaCross, MaCross.Params(), {"AAPL": frames["AAPL"]},
                 spec_for("ma_cross", ["AAPL"], date(2017, 1, 1), date(2016, 1, 1)))
    with pytest.raises(BacktestError, match="no bars for ZZZZ"):
        Backtest(MaCross, MaCross.Params(), {"AAPL": frames["AAPL"]},
                 spec_for("ma_cross", ["ZZZZ"]))
    with pytest.raises(BacktestError, match="no bars between"):
        Backtest(MaCross, MaCross.Params(), {"AAPL": frames["AAPL"]},
                 spec_for("ma_cross", ["AAPL"], date(2021, 1, 1), date(2021, 6, 1))).run()
