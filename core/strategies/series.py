"""A symbol's bars and indicator values as a strategy sees them: up to the current bar.

Live, each completed bar is appended and every indicator is updated incrementally. In a
backtest the whole history is loaded at once, with the indicators computed in batch,
and a cursor moves bar by bar. Either way a read is `values[cursor - ago]`: a strategy
cannot see a bar, or a value computed with a bar, later than the current one (the
batch and incremental values are equal: tests/core/test_indicators.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.indicators import IncrementalIndicator, Indicator, batch_many, incremental
from core.model import Bar

NAN = math.nan
_new_tuple = tuple.__new__
FIELDS = ("open", "high", "low", "close", "volume")


class FutureBarError(ValueError):
    """A strategy asked for a bar after the current one."""


class SymbolSeries:
    __slots__ = ("_incremental", "close", "cursor", "high", "interval_s", "low", "open",
                 "symbol", "ts_ns", "values", "volume")

    def __init__(self, symbol: str, indicators: Sequence[Indicator],
                 interval_s: int = 86_400) -> None:
        self.symbol = symbol
        self.interval_s = interval_s
        self.ts_ns: list[int] = []
        self.open: list[float] = []
        self.high: list[float] = []
        self.low: list[float] = []
        self.close: list[float] = []
        self.volume: list[float] = []
        self.values: dict[Indicator, list[float]] = {ind: [] for ind in indicators}
        self._incremental: list[tuple[IncrementalIndicator, list[float]]] = [
            (incremental(ind), self.values[ind]) for ind in self.values]
        self.cursor = -1  # index of the current bar; -1 before the first

    def __len__(self) -> int:
        return self.cursor + 1

    # ------------------------------------------------------------------ live

    def append(self, bar: Bar) -> None:
        """A new bar completed: it becomes the current one."""
        o, h, lo, c, v = bar.open, bar.high, bar.low, bar.close, bar.volume
        self.ts_ns.append(bar.ts_ns)
        self.open.append(o)
        self.high.append(h)
        self.low.append(lo)
        self.close.append(c)
        self.volume.append(v)
        for indicator, values in self._incremental:
            values.append(indicator.update(o, h, lo, c, v))
        self.cursor = len(self.close) - 1

    # ------------------------------------------------------------------ backtest

    def load(self, bars: pd.DataFrame, ts_ns: np.ndarray | Sequence[int]) -> None:
        """The whole history at once (a backtest): indicators in batch, the cursor
        before the first bar. `bars` has float columns open, high, low, close, volume."""
        self.ts_ns = ts_ns.tolist() if isinstance(ts_ns, np.ndarray) else list(ts_ns)
        if tuple(bars.columns) == FIELDS:
            # The frame as one array: a pandas call per column costs more than the data.
            columns = bars.to_numpy(dtype=float).T.tolist()
        else:
            columns = [bars[name].to_numpy(dtype=float).tolist() for name in FIELDS]
        self.open, self.high, self.low, self.close, self.volume = columns
        computed = batch_many(list(self.values), bars)
        for indicator in self.values:
            self.values[indicator] = computed[indicator].tolist()
        self._incremental = []
        self.cursor = -1

    def bar_at(self, index: int) -> Bar:
        # tuple.__new__ builds the same Bar without the NamedTuple's Python-level
        # __new__: a backtest makes one Bar for every bar of every symbol.
        return _new_tuple(Bar, (self.symbol, self.ts_ns[index], self.interval_s,
                                self.open[index], self.high[index], self.low[index],
                                self.close[index], self.volume[index]))

    # ------------------------------------------------------------------ reads

    def index(self, ago: int) -> int:
        """The list index of the bar `ago` bars before the current one (-1: none)."""
        if ago < 0:
            raise FutureBarError(f"{self.symbol}: {ago} bars ago is in the future; a "
                                 "strategy sees only the current bar and earlier ones")
        index = self.cursor - ago
        return index if index >= 0 else -1

    def value(self, indicator: Indicator, ago: int = 0) -> float:
        index = self.index(ago)
        if index < 0:
            return NAN
        try:
            return self.values[indicator][index]
        except KeyError:
            raise KeyError(f"{indicator.key} is not among the strategy's indicators for "
                           f"{self.symbol}: declare it in indicators()") from None

    def line(self, indicator: Indicator | str) -> Line:
        if isinstance(indicator, str):
            values = self.close if indicator == "close" else getattr(self, indicator)
        else:
            values = self.values[indicator]
        return Line(self, values)


class Line:
    """One series read relative to the current bar: `line[0]` now, `line[1]` one bar
    before (NaN before the first bar). Cheap enough to read on every bar."""

    __slots__ = ("_series", "_values")

    def __init__(self, series: SymbolSeries, values: list[float]) -> None:
        self._series = series
        self._values = values

    def __getitem__(self, ago: int) -> float:
        if ago < 0:
            self._series.index(ago)  # raises
        index = self._series.cursor - ago
        return self._values[index] if index >= 0 else NAN

    def __len__(self) -> int:
        return self._series.cursor + 1

    def now_and_before(self) -> tuple[float, float]:
        """`(line[0], line[1])` in one call: what a crossover compares on every bar."""
        index = self._series.cursor
        values = self._values
        if index >= 1:
            return values[index], values[index - 1]
        return (values[0] if index == 0 else NAN), NAN
