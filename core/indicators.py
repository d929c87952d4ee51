"""Technical indicators: computed with `ta` over a history in one go (`batch`), and bar by
bar as new bars arrive (`incremental`), giving the same values.

A chart draws the batch values over the loaded history, then a strategy or live chart
keeps going from the next bar with an incremental state machine; the two must agree to
1e-9 at every bar, or a signal would appear on the chart that the strategy never saw. The
incremental classes therefore reproduce `ta`'s formulas as written, quirks included:

- RSI treats the first bar's missing change as 0 (not as missing), so it has a value from
  bar `window`, not `window + 1`, and it is 100 wherever the average loss is exactly 0.
- ATR leaves 0 (not NaN) before its first value; `batch` turns those into NaN. Its first
  value is the plain mean of the first `window` true ranges, the first of which is
  high - low because there is no previous close; Wilder's smoothing follows.
- EMA and RSI are pandas' `ewm(adjust=False, min_periods=window)`, which starts from the
  first bar's value, not from a seed average.
- Bollinger bands use the population standard deviation (ddof=0).

Rolling sums and extremes are recomputed from the window's values at each bar rather
than kept as running totals, so a long-running session cannot drift away from the batch
values. The Bollinger deviation is the exception: pandas keeps it as a running sum whose
rounding residue shows in the values (see `_RollingVariance`), so it is copied step for
step instead. Every indicator's value at a bar depends on that bar and earlier ones only.

Bars are assumed finite (the bundle and the feeds clean them); a NaN bar is not skipped.
"""

from __future__ import annotations

import math
import numbers
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from ta.momentum import RSIIndicator
from ta.trend import EMAIndicator, SMAIndicator
from ta.volatility import AverageTrueRange, BollingerBands, DonchianChannel

INDICATOR_KINDS: tuple[str, ...] = (
    "sma",
    "ema",
    "rsi",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "atr",
    "donchian_upper",
    "donchian_lower",
)
SOURCES: tuple[str, ...] = ("open", "high", "low", "close", "volume")
DEFAULT_SOURCE = "close"
DEFAULT_DEVIATIONS = 2.0

# Kinds computed from one chosen column; the others read high, low and close together.
SOURCED_KINDS = frozenset({"sma", "ema", "rsi", "bb_upper", "bb_middle", "bb_lower"})
BOLLINGER_KINDS = frozenset({"bb_upper", "bb_middle", "bb_lower"})
# A 1-bar RSI is only ever 0 or 100 and a 1-bar ATR is just the true range: accepting
# them would hide a typo.
MINIMUM_WINDOW = {"rsi": 2, "atr": 2}

NAN = math.nan
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Indicator:
    """One indicator with its parameters; hashable, so it can key a dict of values.

    `source` is the column for sma, ema, rsi and bb_*; atr and donchian_* read high, low
    and close and ignore it. `deviations` is the Bollinger band width in standard
    deviations and is ignored by the other kinds. An ignored parameter is reset to its
    default, so two indicators that compute the same thing compare equal and share a key.
    """

    kind: str
    window: int
    source: str = DEFAULT_SOURCE
    deviations: float = DEFAULT_DEVIATIONS

    def __post_init__(self) -> None:
        if self.kind not in INDICATOR_KINDS:
            raise ValueError(
                f"unknown indicator {self.kind!r}: choose one of {', '.join(INDICATOR_KINDS)}"
            )
        minimum = MINIMUM_WINDOW.get(self.kind, 1)
        # numbers.Integral and Real take numpy scalars too; bool is an int only to Python.
        if isinstance(self.window, bool) or not isinstance(self.window, numbers.Integral):
            raise ValueError(
                f"{self.kind} needs a whole number of bars as its window, not {self.window!r}"
            )
        if self.window < minimum:
            raise ValueError(
                f"{self.kind} needs a window of at least {minimum} "
                f"{'bar' if minimum == 1 else 'bars'}, not {self.window}"
            )
        if self.source not in SOURCES:
            raise ValueError(
                f"unknown source {self.source!r} for {self.kind}: "
                f"choose one of {', '.join(SOURCES)}"
            )
        if isinstance(self.deviations, bool) or not isinstance(self.deviations, numbers.Real):
            raise ValueError(
                f"the Bollinger band width needs a number of standard deviations, "
                f"not {self.deviations!r}"
            )
        if not math.isfinite(self.deviations) or self.deviations <= 0:
            raise ValueError(
                f"the Bollinger band width must be a positive number of standard deviations, "
                f"not {self.deviations}"
            )
        # Frozen: normalising has to go around the dataclass's own __setattr__.
        object.__setattr__(self, "window", int(self.window))
        if self.kind not in SOURCED_KINDS:
            object.__setattr__(self, "source", DEFAULT_SOURCE)
        deviations = float(self.deviations) if self.kind in BOLLINGER_KINDS else DEFAULT_DEVIATIONS
        object.__setattr__(self, "deviations", deviations)

    @property
    def key(self) -> str:
        """Canonical text, e.g. "sma(close,20)", "bb_upper(close,20,2)", "atr(14)";
        `parse_indicator` reads it back."""
        if self.kind in BOLLINGER_KINDS:
            return f"{self.kind}({self.source},{self.window},{_number_text(self.deviations)})"
        if self.kind in SOURCED_KINDS:
            return f"{self.kind}({self.source},{self.window})"
        return f"{self.kind}({self.window})"

    @property
    def lookback(self) -> int:
        """How many bars it takes to get the first value: the first `lookback - 1` values
        are NaN. Every kind's first value lands on bar `window` (RSI too, see above)."""
        return self.window

    def __str__(self) -> str:
        return self.key


def _number_text(value: float) -> str:
    # repr reads back to the same float; whole numbers drop the ".0" to keep keys short.
    return str(int(value)) if value.is_integer() else repr(value)


_CALL = re.compile(r"\s*([A-Za-z_]+)\s*\((.*)\)\s*", re.DOTALL)
_WHOLE_NUMBER = re.compile(r"\d+")
_DECIMAL_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_indicator(text: str) -> Indicator:
    """The indicator a key names, e.g. "sma(close, 20)" or " BB_UPPER( close,20,2.5 ) ".

    Spaces and letter case are forgiven; anything else malformed raises ValueError."""
    match = _CALL.fullmatch(text)
    if match is None:
        raise ValueError(
            f"cannot read {text!r} as an indicator: write it like sma(close,20) or atr(14)"
        )
    kind = match.group(1).lower()
    arguments = [part.strip() for part in match.group(2).split(",")]
    if kind not in INDICATOR_KINDS:
        raise ValueError(
            f"unknown indicator {kind!r} in {text!r}: choose one of {', '.join(INDICATOR_KINDS)}"
        )
    expected: tuple[str, ...]
    if kind in BOLLINGER_KINDS:
        expected, example = ("source", "window", "deviations"), f"{kind}(close,20,2)"
    elif kind in SOURCED_KINDS:
        expected, example = ("source", "window"), f"{kind}(close,20)"
    else:
        expected, example = ("window",), f"{kind}(14)"
    if len(arguments) != len(expected):
        raise ValueError(
            f"{kind} takes {len(expected)} {'argument' if len(expected) == 1 else 'arguments'} "
            f"({', '.join(expected)}), e.g. {example}; got {text.strip()!r}"
        )
    named = dict(zip(expected, arguments, strict=True))
    window_text = named["window"]
    if not _WHOLE_NUMBER.fullmatch(window_text):
        raise ValueError(
            f"the window of {kind} must be a whole number of bars, not {window_text!r}"
        )
    window = int(window_text)
    source = named.get("source", DEFAULT_SOURCE).lower()
    deviations = DEFAULT_DEVIATIONS
    if "deviations" in named:
        deviations_text = named["deviations"]
        if not _DECIMAL_NUMBER.fullmatch(deviations_text):
            raise ValueError(
                f"the deviations of {kind} must be a positive number, not {deviations_text!r}"
            )
        deviations = float(deviations_text)
    return Indicator(kind, window, source, deviations)


# ---------------------------------------------------------------------------------------
# Batch


class _Columns:
    """The bars' columns as float Series on a fresh RangeIndex, each converted once.

    `ta` aligns series on their index and slices some with integers (ATR's seed does
    `series[0:window]`): on a RangeIndex neither can depend on the caller's labels, such
    as repeated timestamps or an integer index that does not start at 0."""

    def __init__(self, bars: pd.DataFrame) -> None:
        self._bars = bars
        self._series: dict[str, pd.Series[float]] = {}
        self._shared: dict[tuple[object, ...], Any] = {}

    def __getitem__(self, name: str) -> pd.Series[float]:
        series = self._series.get(name)
        if series is None:
            try:
                column = self._bars[name]
            except KeyError:
                raise ValueError(f"the bars have no {name!r} column") from None
            series = pd.Series(np.asarray(column, dtype=np.float64))
            self._series[name] = series
        return series

    def shared(self, key: tuple[object, ...], make: Callable[[], Any]) -> Any:
        """One `ta` object per parameter set: the three Bollinger bands share their rolling
        mean and deviation, the two Donchian bands their channel."""
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]


def _ta_values(indicator: Indicator, columns: _Columns) -> Any:
    kind, window = indicator.kind, indicator.window
    if kind == "sma":
        return SMAIndicator(columns[indicator.source], window=window).sma_indicator()
    if kind == "ema":
        return EMAIndicator(columns[indicator.source], window=window).ema_indicator()
    if kind == "rsi":
        return RSIIndicator(columns[indicator.source], window=window).rsi()
    if kind in BOLLINGER_KINDS:
        bands = columns.shared(
            ("bb", indicator.source, window, indicator.deviations),
            lambda: BollingerBands(
                columns[indicator.source], window=window, window_dev=indicator.deviations
            ),
        )
        if kind == "bb_upper":
            return bands.bollinger_hband()
        if kind == "bb_middle":
            return bands.bollinger_mavg()
        return bands.bollinger_lband()
    if kind == "atr":
        return AverageTrueRange(
            columns["high"], columns["low"], columns["close"], window=window
        ).average_true_range()
    channel = columns.shared(
        ("donchian", window),
        lambda: DonchianChannel(
            columns["high"], columns["low"], columns["close"], window=window, offset=0
        ),
    )
    if kind == "donchian_upper":
        return channel.donchian_channel_hband()
    return channel.donchian_channel_lband()


def _batch(indicator: Indicator, columns: _Columns, length: int) -> FloatArray:
    # Short histories never reach `ta`: its ATR indexes past the end of a series shorter
    # than the window. Every kind is NaN throughout such a series anyway.
    if length < indicator.lookback:
        for name in _columns_read(indicator):
            columns[name]  # still report a missing column, whatever the length
        return np.full(length, NAN)
    values = np.array(_ta_values(indicator, columns), dtype=np.float64)
    if indicator.kind == "atr":
        # `ta` fills ATR's warm-up with 0, which reads as "no volatility" on a chart.
        values[: indicator.lookback - 1] = NAN
    return values


def _columns_read(indicator: Indicator) -> tuple[str, ...]:
    if indicator.kind in SOURCED_KINDS:
        return (indicator.source,)
    return ("high", "low", "close")


def batch(indicator: Indicator, bars: pd.DataFrame) -> FloatArray:
    """The indicator over every bar, as float64 of len(bars): NaN until it has enough
    bars (`indicator.lookback`). `bars` has float columns open, high, low, close and
    volume, on any index; the values are positional."""
    return _batch(indicator, _Columns(bars), len(bars))


def batch_many(indicators: Sequence[Indicator], bars: pd.DataFrame) -> dict[Indicator, FloatArray]:
    """Several indicators over the same bars, converting each column once and sharing
    the work of related ones (the three Bollinger bands of one window)."""
    columns = _Columns(bars)
    return {indicator: _batch(indicator, columns, len(bars)) for indicator in indicators}


# ---------------------------------------------------------------------------------------
# Incremental


class IncrementalIndicator(Protocol):
    """The state of one indicator as bars arrive, oldest first."""

    indicator: Indicator

    def update(self, open: float, high: float, low: float, close: float, volume: float) -> float:
        """Take the next bar and return the indicator's value at it (NaN in warm-up)."""
        ...


def _pick(source: str, open: float, high: float, low: float, close: float, volume: float) -> float:
    if source == "close":
        return close
    if source == "open":
        return open
    if source == "high":
        return high
    if source == "low":
        return low
    return volume


class _ExponentialMean:
    """pandas' `ewm(com=..., adjust=False, min_periods=...).mean()`, step for step.

    pandas turns span or alpha into a centre of mass and that back into alpha, and divides
    by the weights' sum even though it is 1 without adjustment: doing the same keeps the
    last bits equal to the batch values."""

    __slots__ = ("_alpha", "_decay", "_mean", "_min_periods", "_observations")

    def __init__(self, centre_of_mass: float, min_periods: int) -> None:
        self._alpha = 1.0 / (1.0 + centre_of_mass)
        self._decay = 1.0 - self._alpha
        self._min_periods = min_periods
        self._observations = 0
        self._mean = NAN

    def update(self, value: float) -> float:
        self._observations += 1
        if self._observations == 1:
            self._mean = value
        elif value != self._mean:
            self._mean = (self._decay * self._mean + self._alpha * value) / (
                self._decay + self._alpha
            )
        return self._mean if self._observations >= self._min_periods else NAN


class _SimpleMovingAverage:
    def __init__(self, indicator: Indicator) -> None:
        self.indicator = indicator
        self._window: deque[float] = deque(maxlen=indicator.window)

    def update(self, open: float, high: float, low: float, close: float, volume: float) -> float:
        self._window.append(_pick(self.indicator.source, open, high, low, close, volume))
        if len(self._window) < self.indicator.window:
            return NAN
        return math.fsum(self._window) / self.indicator.window


class _ExponentialMovingAverage:
    def __init__(self, indicator: Indicator) -> None:
        self.indicator = indicator
        # `ta` passes span=window; pandas' centre of mass for a span.
        self._mean = _ExponentialMean((indicator.window - 1) / 2, indicator.window)

    def update(self, open: float, high: float, low: float, close: float, volume: float) -> float:
        return self._mean.update(_pick(self.indicator.source, open, high, low, close, volume))


class _RelativeStrengthIndex:
    def __init__(self, indicator: Indicator) -> None:
        self.indicator = indicator
        self._previous = NAN
        # `ta` passes alpha=1/window (Wilder's smoothing); pandas' centre of mass for it.
        alpha = 1 / indicator.window
        self._gains = _ExponentialMean((1 - alpha) / alpha, indicator.window)
        self._losses = _ExponentialMean((1 - alpha) / alpha, indicator.window)

    def update(self, open: float, high: float, low: float, close: float, volume: float) -> float:
        value = _pick(self.indicator.source, open, high, low, close, volume)
        # The first bar has no change; `ta` counts it as a change of 0, not as missing.
        change = value - self._previous if not math.isnan(self._previous) else 0.0
        self._previous = value
        gain = self._gains.update(change if change > 0 else 0.0)
        loss = self._losses.update(-change if change < 0 else 0.0)
        if math.isnan(loss):
            return NAN
        if loss == 0:
            return 100.0
        return 100 - 100 / (1 + gain / loss)


class _RollingVariance:
    """pandas' `rolling(window).var(ddof=0)` for a window that slides one bar at a time,
    operation for operation (pandas/_libs/window/aggregations.pyx, `roll_var`).

    The one place that does not recompute its window each bar, on purpose: pandas keeps a
    running Welford sum of squared deviations, and when a large value leaves the window
    its rounding residue stays behind (ARNC's 20-day volume deviation reads 0.69 over a
    run of zero-volume days, not 0). A two-pass deviation would be more accurate but
    would disagree with `batch` by that residue; copying the steps, including the
    recompute pandas triggers when one step shrinks the sum below 1000 eps of what it was,
    gives the batch values bit for bit. (Checked on x86-64 wheels; a build that fuses the
    multiply-add in the sum's update would differ in the last bits, and so in the residue.)
    """

    __slots__ = (
        "_compensation_add",
        "_compensation_remove",
        "_mean",
        "_observations",
        "_squared_deviations",
        "_unstable",
    )

    # pandas' InvCondTol: eps * 1e3, a sum that loses all but ~3 significant digits.
    ILL_CONDITIONED = np.finfo(np.float64).eps * 1e3

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._observations = 0.0
        self._mean = 0.0
        self._squared_deviations = 0.0
        self._compensation_add = 0.0
        self._compensation_remove = 0.0
        self._unstable = False

    def _add(self, value: float) -> None:
        previous_sum = self._squared_deviations
        self._observations += 1
        previous_mean = self._mean - self._compensation_add
        y = value - self._compensation_add
        t = y - self._mean
        self._compensation_add = t + self._mean - y
        self._mean = self._mean + t / self._observations
        self._squared_deviations += (value - previous_mean) * (value - self._mean)
        if previous_sum * self.ILL_CONDITIONED > self._squared_deviations:
            self._unstable = True

    def _remove(self, value: float) -> None:
        previous_sum = self._squared_deviations
        self._observations -= 1
        if not self._observations:
            self._mean = 0.0
            self._squared_deviations = 0.0
            self._unstable = False
            return
        previous_mean = self._mean - self._compensation_remove
        y = value - self._compensation_remove
        t = y - self._mean
        self._compensation_remove = t + self._mean - y
        self._mean = self._mean - t / self._observations
        self._squared_deviations -= (value - previous_mean) * (value - self._mean)
        if previous_sum * self.ILL_CONDITIONED > self._squared_deviations:
            self._unstable = True

    def update(self, window: deque[float], leaving: float | None) -> float:
        """The variance of `window` (whose newest value has just been appended), given
        the value that slid out of it, if any."""
        size = window.maxlen
        # pandas recomputes on its first bar and whenever the window holds a single bar
        # (nothing carries over from the previous window).
        if self._observations == 0 or size == 1:
            self._unstable = True
        else:
            if leaving is not None:
                self._remove(leaving)
            self._add(window[-1])
        if self._unstable:
            self._reset()
            for value in window:
                self._add(value)
            self._unstable = False
        return self._squared_deviations / self._observations


class _BollingerBand:
    def __init__(self, indicator: Indicator) -> None:
        self.indicator = indicator
        self._window: deque[float] = deque(maxlen=indicator.window)
        self._variance = _RollingVariance()
        # Which band: the sign of its deviations, or 0 for the middle.
        self._side = {"bb_upper": 1.0, "bb_middle": 0.0, "bb_lower": -1.0}[indicator.kind]

    def update(self, open: float, high: float, low: float, close: float, volume: float) -> float:
        size = self.indicator.window
        leaving = self._window[0] if len(self._window) == size else None
        self._window.append(_pick(self.indicator.source, open, high, low, close, volume))
        variance = self._variance.update(self._window, leaving)
        if len(self._window) < size:
            return NAN
        mean = math.fsum(self._window) / size
        if self._side == 0.0:
            return mean
        # pandas' zsqrt: a variance pushed below 0 by rounding is a deviation of 0.
        deviation = math.sqrt(variance) if variance > 0 else 0.0
        return mean + self._side * self.indicator.deviations * deviation


class _AverageTrueRange:
    def __init__(self, indicator: Indicator) -> None:
        self.indicator = indicator
        self._previous_close = NAN
        self._first_ranges: list[float] = []
        self._average = NAN

    def update(self, open: float, high: float, low: float, close: float, volume: float) -> float:
        true_range = high - low
        if not math.isnan(self._previous_close):
            true_range = max(
                true_range, abs(high - self._previous_close), abs(low - self._previous_close)
            )
        self._previous_close = close
        window = self.indicator.window
        if len(self._first_ranges) < window:
            self._first_ranges.append(true_range)
            if len(self._first_ranges) == window:
                self._average = math.fsum(self._first_ranges) / window
            return self._average
        # Wilder's smoothing, in `ta`'s order of operations.
        self._average = (self._average * (window - 1) + true_range) / float(window)
        return self._average


class _DonchianBand:
    def __init__(self, indicator: Indicator) -> None:
        self.indicator = indicator
        self._upper = indicator.kind == "donchian_upper"
        self._window: deque[float] = deque(maxlen=indicator.window)

    def update(self, open: float, high: float, low: float, close: float, volume: float) -> float:
        self._window.append(high if self._upper else low)
        if len(self._window) < self.indicator.window:
            return NAN
        return max(self._window) if self._upper else min(self._window)


_INCREMENTAL: dict[str, Callable[[Indicator], IncrementalIndicator]] = {
    "sma": _SimpleMovingAverage,
    "ema": _ExponentialMovingAverage,
    "rsi": _RelativeStrengthIndex,
    "bb_upper": _BollingerBand,
    "bb_middle": _BollingerBand,
    "bb_lower": _BollingerBand,
    "atr": _AverageTrueRange,
    "donchian_upper": _DonchianBand,
    "donchian_lower": _DonchianBand,
}


def incremental(indicator: Indicator) -> IncrementalIndicator:
    """A fresh state machine for the indicator, to be fed bars oldest first; its value at
    each bar equals `batch`'s at the same position."""
    return _INCREMENTAL[indicator.kind](indicator)
