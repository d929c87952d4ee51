"""The scanner's indicators over a whole universe at once: each function takes float64
arrays of shape (bars, symbols), symbols as columns, and returns one of the same shape.

Columns are right-aligned histories: a symbol listed later than the others has NaN
rows before its first bar, never after. Every function gives, column by column, what
`ta` gives on that symbol's own bars (tests/core/test_scan_indicators.py checks it to
1e-9 on the bundled data), quirks included:

- RSI counts the first bar's missing change as 0, and is 100 where the average loss is 0.
- ATR and ADX are 0, not NaN, before their first value (the scanner never reads those
  rows: a symbol needs the scan's lookback in bars to be scanned at all).
- ADX is `ta`'s: its smoothed sums start from bars 1 to n, skip bar n + 1, and its
  first value is at bar 2n.

The rolling and exponential ones run through pandas on the whole frame (the kernels
`ta` calls, one call for every symbol); the recursive ATR and ADX step bar by bar with
numpy across the columns that start on the same row.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

_kernels: Any
try:  # pandas' own window kernels, the ones DataFrame.rolling and .ewm call per column
    _kernels = importlib.import_module("pandas._libs.window.aggregations")
except ImportError:  # pragma: no cover - a pandas that moved them: the public path
    _kernels = None

FloatArray = npt.NDArray[np.float64]
NAN = np.nan


class _Kernels:
    """pandas' Cython window kernels called once over every column end to end, with
    each window bounded by its column: the very arithmetic `ta` gets through
    DataFrame.rolling and .ewm (so the values are equal, not close), without pandas'
    Python-level loop over columns, which costs more than the arithmetic on a universe.
    These are pandas internals: if a pandas release changes them, the first failing call
    switches every later one to the public per-column path."""

    available = _kernels is not None

    @classmethod
    def rolling(cls, kind: str, values: FloatArray, window: int) -> FloatArray | None:
        if not cls.available:
            return None
        rows, columns = values.shape
        flat = np.ascontiguousarray(values.T).ravel()
        start, end = _window_bounds(rows, columns, window)
        try:
            function: Any = getattr(_kernels, f"roll_{'var' if kind == 'std' else kind}")
            if kind == "std":
                result = np.sqrt(function(flat, start, end, window, 0))
            else:
                result = function(flat, start, end, window)
        except (AttributeError, TypeError, ValueError):  # pragma: no cover - see above
            cls.available = False
            return None
        return np.asarray(result, dtype=np.float64).reshape(columns, rows).T

    @classmethod
    def ewm(cls, values: FloatArray, centre_of_mass: float, min_periods: int) -> FloatArray | None:
        if not cls.available:
            return None
        rows, columns = values.shape
        flat = np.ascontiguousarray(values.T).ravel()
        start = np.arange(columns, dtype=np.int64) * rows
        try:
            result = _kernels.ewm(flat, start, start + rows, min_periods, centre_of_mass,
                                  False, False, None, True)
        except (AttributeError, TypeError, ValueError):  # pragma: no cover - see above
            cls.available = False
            return None
        return np.asarray(result, dtype=np.float64).reshape(columns, rows).T


@functools.lru_cache(maxsize=32)
def _window_bounds(rows: int, columns: int, window: int
                   ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Each position's window in the columns laid end to end: at most `window` values,
    never reaching into the column before."""
    end = np.arange(1, rows * columns + 1, dtype=np.int64)
    column_start = np.repeat(np.arange(columns, dtype=np.int64) * rows, rows)
    start = np.maximum(end - window, column_start)
    start.flags.writeable = False
    end.flags.writeable = False
    return start, end


def _frame(values: FloatArray) -> pd.DataFrame:
    return pd.DataFrame(values, copy=False)


def _rolling(kind: str, values: FloatArray, window: int) -> FloatArray:
    fast = _Kernels.rolling(kind, values, window)
    if fast is not None:
        return fast
    rolling = _frame(values).rolling(window, min_periods=window)
    if kind == "std":
        return rolling.std(ddof=0).to_numpy(copy=True)
    result: FloatArray = getattr(rolling, kind)().to_numpy(copy=True)
    return result


def _ewm(values: FloatArray, centre_of_mass: float, min_periods: int) -> FloatArray:
    """pandas' `ewm(com=..., min_periods=..., adjust=False).mean()`, per column."""
    fast = _Kernels.ewm(values, centre_of_mass, min_periods)
    if fast is not None:
        return fast
    return _frame(values).ewm(com=centre_of_mass, min_periods=min_periods,
                              adjust=False).mean().to_numpy(copy=True)


def sma(values: FloatArray, window: int) -> FloatArray:
    return _rolling("mean", values, window)


def ema(values: FloatArray, window: int) -> FloatArray:
    return _ewm(values, (window - 1) / 2.0, window)  # span n is a centre of mass (n - 1) / 2


def highest(values: FloatArray, window: int) -> FloatArray:
    return _rolling("max", values, window)


def lowest(values: FloatArray, window: int) -> FloatArray:
    return _rolling("min", values, window)


def rsi(close: FloatArray, window: int, present: npt.NDArray[np.bool_] | None = None
        ) -> FloatArray:
    return rsi_value(*rsi_averages(close, window, present))


def rsi_averages(close: FloatArray, window: int,
                 present: npt.NDArray[np.bool_] | None = None) -> tuple[FloatArray, FloatArray]:
    """The smoothed gains and losses RSI is the ratio of (the state a live update steps).
    `present` marks each symbol's bars (default: where `close` is a number); for an RSI
    of a derived series (`rsi(sma(close, 5), 14)`) it is the symbol's own bars."""
    change = np.full_like(close, NAN)
    change[1:] = close[1:] - close[:-1]
    missing = np.isnan(close) if present is None else ~present
    # `ta` turns a missing change into 0 (a comparison with NaN is false): the first
    # bar's, and a derived series' before its first value. The rows before a symbol's
    # first bar stay missing, so its averages start there.
    up = np.where(change > 0, change, 0.0)
    down = np.where(change < 0, -change, 0.0)
    up[missing] = NAN
    down[missing] = NAN
    mean_up = _ewm(up, window - 1.0, window)  # alpha 1/n is a centre of mass n - 1
    mean_down = _ewm(down, window - 1.0, window)
    return mean_up, mean_down


def rsi_value(mean_up: FloatArray, mean_down: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        strength = mean_up / mean_down
        result: FloatArray = np.where(mean_down == 0, 100.0, 100.0 - 100.0 / (1.0 + strength))
    return result


def ewm_step(previous: FloatArray, value: FloatArray, centre_of_mass: float) -> FloatArray:
    """One more row of `ewm(com=..., adjust=False).mean()` from the row before, written
    as pandas' kernel writes it (its weights, its order of operations, and its keeping
    the previous value when the new one equals it or is missing)."""
    alpha = 1.0 / (1.0 + centre_of_mass)
    old_weight = 1.0 - alpha
    with np.errstate(invalid="ignore"):
        stepped = (old_weight * previous + alpha * value) / (old_weight + alpha)
        result: FloatArray = np.where(np.isnan(value) | (previous == value), previous, stepped)
    return result


def macd(close: FloatArray, fast: int, slow: int) -> FloatArray:
    return ema(close, fast) - ema(close, slow)


def macd_signal(close: FloatArray, fast: int, slow: int, signal: int) -> FloatArray:
    return ema(macd(close, fast, slow), signal)


def bollinger(close: FloatArray, window: int, deviations: float
              ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The upper band, the lower band and the width (% of the middle band)."""
    middle = _rolling("mean", close, window)
    spread = _rolling("std", close, window)
    upper = middle + deviations * spread
    lower = middle - deviations * spread
    with np.errstate(divide="ignore", invalid="ignore"):
        width = (upper - lower) / middle * 100
    return upper, lower, width


def stochastic(high: FloatArray, low: FloatArray, close: FloatArray, window: int) -> FloatArray:
    """%K: where the close sits in the range of the last `window` bars, in percent."""
    floor = lowest(low, window)
    ceiling = highest(high, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100 * (close - floor) / (ceiling - floor)


def pct_change(values: FloatArray, bars: int) -> FloatArray:
    before = ago(values, bars)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (values / before - 1.0) * 100.0


def ago(values: FloatArray, bars: int) -> FloatArray:
    """Each value `bars` rows later: row t holds row t - bars (NaN at the top)."""
    if bars == 0:
        return values
    shifted = np.full_like(values, NAN)
    if bars < len(values):
        shifted[bars:] = values[:-bars]
    return shifted


# ---------------------------------------------------------------------------------------
# The Wilder-smoothed ones. `ta` loops over the bars; the same recursions are pandas'
# exponential means (alpha 1/n, no adjustment) started from the seed `ta` starts from,
# each column at its own age, so all the columns go through in one call.


def _ages(close: FloatArray) -> npt.NDArray[np.int64]:
    """Each row's position in its column's history (0 at the first bar; negative above)."""
    present = ~np.isnan(close)
    starts = np.where(present.any(axis=0), present.argmax(axis=0), len(close))
    return np.arange(len(close), dtype=np.int64)[:, None] - starts[None, :]


def _seeds(values: FloatArray, ages: npt.NDArray[np.int64], first: int, window: int
           ) -> FloatArray:
    """Per column, the mean of `values` at ages first to first + window - 1 (NaN for a
    history too short): one row, not a rolling mean over every row."""
    rows = len(values)
    starts = (rows - 1) - ages[-1]  # the row of each column's first bar
    picks = starts[None, :] + first + np.arange(window)[:, None]
    valid = picks[-1] < rows
    taken = np.take_along_axis(values, np.minimum(picks, rows - 1), axis=0)
    seeds: FloatArray = np.where(valid, taken.mean(axis=0), NAN)
    return seeds


def _smoothed(values: FloatArray, ages: npt.NDArray[np.int64], seed_age: int, first: int,
              window: int) -> FloatArray:
    """From the seed row (age `seed_age`) on: the mean of the `window` values from age
    `first` there, then `(previous * (n - 1) + value) / n`. NaN above the seed row."""
    seeds = _seeds(values, ages, first, window)
    start = np.where(ages > seed_age, values, NAN)
    seed_rows = (len(values) - 1) - ages[-1] + seed_age
    present = seed_rows < len(values)
    start[seed_rows[present], np.flatnonzero(present)] = seeds[present]
    return _ewm(start, window - 1.0, 0)


def atr(high: FloatArray, low: FloatArray, close: FloatArray, window: int) -> FloatArray:
    ranges = true_range(high, low, ago(close, 1))
    ages = _ages(close)
    # The first value is the plain mean of the first n true ranges.
    out = _smoothed(ranges, ages, window - 1, 0, window)
    out[(ages >= 0) & (ages < window - 1)] = 0.0
    return out


def true_range(high: FloatArray, low: FloatArray, previous_close: FloatArray) -> FloatArray:
    with np.errstate(invalid="ignore"):
        # pandas' max(axis=1) skips the missing previous close of the first bar.
        result: FloatArray = np.fmax(high - low, np.fmax(np.abs(high - previous_close),
                                                         np.abs(low - previous_close)))
    return result


def adx(high: FloatArray, low: FloatArray, close: FloatArray, window: int) -> FloatArray:
    return adx_parts(high, low, close, window)[0]


def adx_parts(high: FloatArray, low: FloatArray, close: FloatArray, window: int
              ) -> tuple[FloatArray, tuple[FloatArray, FloatArray, FloatArray]]:
    """`ta.trend.ADXIndicator(...).adx()`: the range and the directional movements are
    summed over bars 1 to n (bar 0 has no previous close), then Wilder-smoothed as
    sums; their ratios give the directional index, whose first value is the mean of n
    and which is smoothed in turn. 0 before bar 2n - 1, as in `ta`. With the ADX come
    the three smoothed sums (the state a live update steps)."""
    movement, positive, negative = directional_movement(high, low, ago(high, 1), ago(low, 1),
                                                        ago(close, 1))
    ages = _ages(close)
    positive[ages < 1] = NAN
    negative[ages < 1] = NAN
    # ta's smoothed sum, S = S - S / n + x from the sum of bars 1 to n, is n times an
    # exponential mean with alpha 1/n from their mean: n cancels in the ratios.
    ranges, plus_sums, minus_sums = (_smoothed(series, ages, window, 1, window)
                                     for series in (movement, positive, negative))
    directional = directional_index(ranges, plus_sums, minus_sums)
    directional[ages < window] = NAN
    first = 2 * window - 1
    out = _smoothed(directional, ages, first, window, window)
    out[(ages >= 0) & (ages < first)] = 0.0
    return out, (ranges, plus_sums, minus_sums)


def directional_movement(high: FloatArray, low: FloatArray, previous_high: FloatArray,
                         previous_low: FloatArray, previous_close: FloatArray
                         ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The true range and the positive and negative directional movements (any shape:
    whole arrays, or one row against the row before)."""
    with np.errstate(invalid="ignore"):
        movement = np.maximum(high, previous_close) - np.minimum(low, previous_close)
        up = high - previous_high
        down = previous_low - low
        positive = np.where((up > down) & (up > 0), up, 0.0)
        negative = np.where((down > up) & (down > 0), down, 0.0)
    return movement, positive, negative


def directional_index(ranges: FloatArray, plus_sums: FloatArray, minus_sums: FloatArray
                      ) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        plus = np.where(ranges != 0, 100 * (plus_sums / ranges), 0.0)
        minus = np.where(ranges != 0, 100 * (minus_sums / ranges), 0.0)
        total = plus + minus
        result: FloatArray = np.where(total != 0, 100 * np.abs((plus - minus) / total), 0.0)
    return result
