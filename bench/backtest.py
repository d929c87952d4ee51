"""Backtester throughput: daily bars per second for the built-in `ma_cross` strategy.

The strategy is `core.strategies.builtin.MaCross` (SMA 10 over SMA 30, long only, a
fixed 100 shares), run as `tapedeck backtest` runs it: `core.backtest.Backtest` built
from the bars and run, i.e. the StrategyRunner, the paper venue (no commission, no
slippage, fills at the next session's open), the risk engine and the order state
machine. The bars are the bundled ones, split- and dividend-adjusted, from
`data.history.load_history` for 2015-03-02..2019-12-31 (with the warm-up sessions
before the start that it adds), loaded untimed.

In the same run, the same rules in the two references, each written the way its own
documentation writes a crossover, fed the same frames (every row, warm-up included)
and told to trade only from the same session on:

  backtesting.py  (PyPI `backtesting`, 0.6.x) `Backtest(frame, Strategy, cash=...,
                  commission=0, trade_on_close=False)`: market orders fill at the next
                  bar's open; SMAs by `Strategy.I` over a pandas rolling mean.
  backtrader      `Cerebro(stdstats=False)`, `PandasData`, `bt.ind.SMA` and
                  `bt.ind.CrossOver`; market orders fill at the next bar's open.

Workloads, with each engine's time covering all of its own work for the run (ours:
building the `Backtest`, the run, the metrics; backtesting.py: `Backtest(...)` and
`run()`, which computes its statistics; backtrader: the Cerebro, the feed, `run()`):

  one symbol   AAPL, `--reps` repetitions, the three engines interleaved so machine noise
               hits them alike;
  ten symbols  ten symbols one after another (one single-symbol run each), the three
               engines interleaved, `--ten-reps` repetitions;
  universe     ours only: every symbol the bundle has, in one portfolio (one run),
               `--universe-reps` repetitions.

Bars per second counts the rows of the frames given to the engine (the same for every
engine), over the wall time of the call (`time.perf_counter`, garbage collected before
each). `trades` checks that the fills are the same: entry and exit sessions, sides and
prices, ours against each reference, per symbol. Our paper venue fills on the cent tick
(the adjusted opens are not on it), so the references' prices are rounded the way the
venue rounds (half even, to 0.01) before comparing; the largest unrounded difference is
reported as well.

`native` says whether the engine ran compiled (`make native`, which `make bench` runs
first) or as pure Python (`TAPEDECK_NATIVE=0`).

Prints one JSON object on stdout. Never asserts on timing. Needs the `bench` extra
(`pip install -e '.[bench]'`, which `make bench` does) for backtesting.py.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import backtesting  # type: ignore[import-untyped]
import backtrader as bt  # type: ignore[import-untyped]
import numpy as np
import pandas as pd
from _workload import HostMeter, emit
from backtesting import Backtest as PyBacktest
from backtesting import Strategy as PyStrategy

from core.backtest import Backtest, BacktestResult, BacktestSpec
from core.clock import ExchangeCalendar
from core.config_trading import PaperSettings, RiskSettings
from core.native import is_compiled
from core.strategies.builtin import MaCross
from data.bundle import BundledDailyBars
from data.history import load_history

START, END = date(2015, 3, 2), date(2019, 12, 31)
FAST, SLOW, SIZE = 10, 30, 100
ONE = "AAPL"
TEN = ("AAPL", "MSFT", "XOM", "JPM", "KO", "PFE", "WMT", "INTC", "CSCO", "T")
CASH = 1_000_000
# A universe at 100 shares a name holds far more than the default risk limits allow
# (200,000 gross): wide limits, and the cash to match, so every signal trades there.
UNIVERSE_CASH = 1_000_000_000
WIDE_RISK = RiskSettings(
    max_order_quantity=Decimal(1_000_000), max_order_notional=Decimal(10**9),
    max_position_notional=Decimal(10**9), max_gross_exposure=Decimal(10**12),
    max_open_orders=100_000, max_daily_loss=Decimal(10**12), max_drawdown=Decimal(10**12))
PAPER = PaperSettings(commission="none", slippage_bps=Decimal(0))
TICK = Decimal("0.01")
CALENDAR = ExchangeCalendar()
TARGET_OVER_BACKTESTING_PY = 4.0
TARGET_OVER_BACKTRADER = 20.0

Fill = tuple[date, str, float]  # session, "buy"/"sell", price


# ---------------------------------------------------------------------- ours

def ours(frames: dict[str, pd.DataFrame], symbols: Sequence[str], *, cash: int = CASH,
         risk: RiskSettings | None = None) -> BacktestResult:
    """One run over `symbols` in one portfolio, as `tapedeck backtest` makes it."""
    spec = BacktestSpec("ma_cross", {}, tuple(symbols), START, END, cash=Decimal(cash))
    params = MaCross.Params(fast=FAST, slow=SLOW, quantity=SIZE)
    return Backtest(MaCross, params, {s: frames[s] for s in symbols}, spec, paper=PAPER,
                    risk=risk).run()


def our_fills(result: BacktestResult) -> dict[str, list[Fill]]:
    if result.failure or result.refusals:
        raise SystemExit(f"ours: {result.failure or result.refusals[:3]}")
    fills: dict[str, list[Fill]] = {symbol: [] for symbol in result.spec.symbols}
    for fill in result.fills:
        fills[fill.symbol].append((CALENDAR.session_date(fill.ts_ns), fill.side.value,
                                   float(fill.price)))
    return fills


# ---------------------------------------------------------------------- backtesting.py

def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """The SMA of backtesting.py's own examples (`backtesting.test.SMA`)."""
    return pd.Series(values).rolling(window).mean().to_numpy()


class PyCross(PyStrategy):  # type: ignore[misc]
    warmup = 0  # rows before START: history only, as ours sees it

    def init(self) -> None:
        self.fast = self.I(rolling_mean, self.data.Close, FAST)
        self.slow = self.I(rolling_mean, self.data.Close, SLOW)

    def next(self) -> None:
        if len(self.data) <= self.warmup:
            return
        fast, slow = self.fast, self.slow
        # MaCross's test, written out (backtesting.lib.crossover asks fast[-2] < slow[-2]).
        if fast[-1] > slow[-1] and fast[-2] <= slow[-2]:
            if not self.position:
                self.buy(size=SIZE)
        elif fast[-1] < slow[-1] and fast[-2] >= slow[-2] and self.position:
            self.position.close()


def backtesting_py(frame: pd.DataFrame, warmup: int) -> pd.Series:
    """`Backtest.run()`'s statistics (with `_trades` and `_strategy`)."""
    data = frame.rename(columns=str.capitalize)
    strategy = type("PyCrossRun", (PyCross,), {"warmup": warmup})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some trades remain open": as ours leaves them
        stats: pd.Series = PyBacktest(data, strategy, cash=CASH, commission=0.0,
                                      trade_on_close=False).run()
    return stats


def backtesting_py_fills(stats: pd.Series) -> list[Fill]:
    fills: list[Fill] = []
    trades = stats["_trades"]
    for row in trades.itertuples():
        fills.append((row.EntryTime.date(), "buy", float(row.EntryPrice)))
        fills.append((row.ExitTime.date(), "sell", float(row.ExitPrice)))
    for trade in stats["_strategy"].trades:  # still open at the end
        fills.append((trade.entry_time.date(), "buy", float(trade.entry_price)))
    return sorted(fills)


# ---------------------------------------------------------------------- backtrader

class TraderCross(bt.Strategy):  # type: ignore[misc]
    """As tests/core/test_backtest_reference.py writes it, the warm-up by row count."""

    params = (("warmup", 0),)

    def __init__(self) -> None:
        fast = bt.ind.SMA(self.data.close, period=FAST)
        slow = bt.ind.SMA(self.data.close, period=SLOW)
        self.cross = bt.ind.CrossOver(fast, slow)
        self.fills: list[Fill] = []

    def notify_order(self, order: Any) -> None:
        if order.status == order.Completed:
            self.fills.append((bt.num2date(order.executed.dt).date(),
                               "buy" if order.isbuy() else "sell", order.executed.price))

    def next(self) -> None:
        if len(self.data) <= self.p.warmup:
            return
        if not self.position and self.cross[0] > 0:
            self.buy(size=SIZE)
        elif self.position and self.cross[0] < 0:
            self.close()


def backtrader(frame: pd.DataFrame, warmup: int) -> list[Fill]:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.addstrategy(TraderCross, warmup=warmup)
    cerebro.broker.setcash(CASH)
    (strategy,) = cerebro.run()
    fills: list[Fill] = strategy.fills
    return fills


# ---------------------------------------------------------------------- checks

def on_tick(price: float) -> float:
    return float(Decimal(str(price)).quantize(TICK, ROUND_HALF_EVEN))


def compare(ours_fills: dict[str, list[Fill]], theirs: dict[str, list[Fill]]
            ) -> dict[str, Any]:
    mismatches: list[str] = []
    largest = 0.0
    count = 0
    for symbol, mine in ours_fills.items():
        other = theirs[symbol]
        count += len(mine)
        if [(d, s) for d, s, _ in mine] != [(d, s) for d, s, _ in other]:
            mismatches.append(f"{symbol}: sessions or sides differ (ours {len(mine)} fills, "
                              f"theirs {len(other)})")
            continue
        for (day, side, a), (_, _, b) in zip(mine, other, strict=True):
            largest = max(largest, abs(a - b))
            if a != on_tick(b):
                mismatches.append(f"{symbol} {day} {side}: ours {a}, theirs {b}")
    return {"identical_trades": not mismatches, "fills_compared": count,
            "max_price_difference_unrounded": round(largest, 6),
            "mismatches": mismatches[:10]}


# ---------------------------------------------------------------------- timing

def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    value = call()
    return time.perf_counter() - t0, value


def rates(times: list[float], bars: int) -> dict[str, float]:
    best, median = min(times), statistics.median(times)
    return {"best_bars_per_s": round(bars / best), "median_bars_per_s": round(bars / median),
            "best_s": round(best, 4), "median_s": round(median, 4),
            "repetitions": len(times)}


def ratios(mine: dict[str, float], other: dict[str, float]) -> dict[str, float]:
    return {"best": round(mine["best_bars_per_s"] / other["best_bars_per_s"], 2),
            "median": round(mine["median_bars_per_s"] / other["median_bars_per_s"], 2)}


def head_to_head(frames: dict[str, pd.DataFrame], warmups: dict[str, int],
                 symbols: Sequence[str], reps: int) -> dict[str, Any]:
    """The three engines interleaved over `symbols`, one single-symbol run each."""
    times: dict[str, list[float]] = {"ours": [], "backtesting_py": [], "backtrader": []}
    fills: dict[str, dict[str, list[Fill]]] = {}
    for _ in range(reps):
        seconds, results = timed(lambda: [ours(frames, (s,)) for s in symbols])
        times["ours"].append(seconds)
        fills["ours"] = {s: our_fills(r)[s] for s, r in zip(symbols, results, strict=True)}
        seconds, stats = timed(lambda: [backtesting_py(frames[s], warmups[s]) for s in symbols])
        times["backtesting_py"].append(seconds)
        fills["backtesting_py"] = {s: backtesting_py_fills(x)
                                   for s, x in zip(symbols, stats, strict=True)}
        seconds, got = timed(lambda: {s: backtrader(frames[s], warmups[s]) for s in symbols})
        times["backtrader"].append(seconds)
        fills["backtrader"] = got
    bars = sum(len(frames[s]) for s in symbols)
    measured = {name: rates(values, bars) for name, values in times.items()}
    return {
        "symbols": list(symbols),
        "bars": bars,
        **measured,
        "ratio_ours_over_backtesting_py": ratios(measured["ours"], measured["backtesting_py"]),
        "ratio_ours_over_backtrader": ratios(measured["ours"], measured["backtrader"]),
        "trades": {"backtesting_py": compare(fills["ours"], fills["backtesting_py"]),
                   "backtrader": compare(fills["ours"], fills["backtrader"])},
        "fills_ours": sum(len(f) for f in fills["ours"].values()),
    }


def run(reps: int, ten_reps: int, universe_reps: int) -> dict[str, Any]:
    with BundledDailyBars() as bundle:
        universe = list(bundle.symbols())
        history = load_history(universe, START, END, adjusted=True, bundle=bundle)
    frames = history.bars
    warmups = {s: int((f.index < pd.Timestamp(START)).sum()) for s, f in frames.items()}
    # Warm-up: each engine's first run (imports done) pays for what it keeps: ours, the
    # session bounds and calendar answers that later runs (a parameter grid, the
    # repetitions here) reuse. Reported as `first_run_s`, not counted in the rates.
    first = {
        "ours": timed(lambda: ours(frames, (ONE,)))[0],
        "backtesting_py": timed(lambda: backtesting_py(frames[ONE], warmups[ONE]))[0],
        "backtrader": timed(lambda: backtrader(frames[ONE], warmups[ONE]))[0],
    }

    one = head_to_head(frames, warmups, (ONE,), reps)
    one["first_run_s"] = {name: round(seconds, 4) for name, seconds in first.items()}
    ten = head_to_head(frames, warmups, TEN, ten_reps) if ten_reps > 0 else None
    universe_times: list[float] = []
    universe_fills = 0
    for _ in range(universe_reps):
        seconds, result = timed(lambda: ours(frames, universe, cash=UNIVERSE_CASH,
                                             risk=WIDE_RISK))
        universe_times.append(seconds)
        our_fills(result)  # stops the benchmark on a failure or a refused order
        universe_fills = len(result.fills)
    universe_bars = sum(len(f) for f in frames.values())
    played = sum(int(((f.index >= pd.Timestamp(START)) & (f.index <= pd.Timestamp(END))).sum())
                 for f in frames.values())

    over_py = one["ratio_ours_over_backtesting_py"]
    over_bt = one["ratio_ours_over_backtrader"]
    return {
        "name": "backtest",
        "description": "daily bars/s of the backtester (ma_cross SMA 10/30, long only, 100 "
                       "shares, next-open fills, no costs) against backtesting.py and "
                       "backtrader on the same frames in the same run",
        "period": [str(START), str(END)],
        "one_symbol": one,
        "ten_symbols": ten,
        "universe": {
            "symbols": len(universe),
            "bars": universe_bars,
            "bars_played": played,
            "fills": universe_fills,
            "cash": UNIVERSE_CASH,
            "risk": "wide limits (every signal trades)",
            "ours": rates(universe_times, universe_bars) if universe_times else None,
            "what": "every bundled symbol in one portfolio, one run",
        },
        "target": {
            "ours_over_backtesting_py_min": TARGET_OVER_BACKTESTING_PY,
            "ours_over_backtrader_min": TARGET_OVER_BACKTRADER,
            "backtesting_py_best_meets": over_py["best"] >= TARGET_OVER_BACKTESTING_PY,
            "backtesting_py_median_meets": over_py["median"] >= TARGET_OVER_BACKTESTING_PY,
            "backtrader_best_meets": over_bt["best"] >= TARGET_OVER_BACKTRADER,
            "backtrader_median_meets": over_bt["median"] >= TARGET_OVER_BACKTRADER,
            "on": "one symbol",
        },
        "versions": {"backtesting_py": backtesting.__version__,
                     "backtrader": bt.__version__,
                     "pandas": pd.__version__, "numpy": np.__version__},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "timer": "time.perf_counter"},
        # Whether the engine ran compiled (`make native`) or as pure Python.
        "native": is_compiled("core.backtest"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15, help="one-symbol repetitions")
    parser.add_argument("--ten-reps", type=int, default=3,
                        help="ten-symbol repetitions (0: skip)")
    parser.add_argument("--universe-reps", type=int, default=2,
                        help="universe repetitions, about 20 s each (0: skip)")
    args = parser.parse_args()
    host = HostMeter()
    t0 = time.perf_counter()
    result = run(args.reps, args.ten_reps, args.universe_reps)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    host.report(result)
    emit(result)


if __name__ == "__main__":
    main()
