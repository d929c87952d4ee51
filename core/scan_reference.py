"""The scanner's reference: a scan evaluated symbol by symbol, each on its own daily
bars, with `ta` and plain pandas, the way a trader would write it by hand.

It exists to be compared with, not to be fast: tests/core/test_scan_presets.py and
bench/scan.py check that `core.scanner` (vectorised, every symbol at once) gives the
same hits, in the same order, with the same 'since' dates, values and ranks, and skips
the same symbols. So every node is computed the obvious way, without the scanner's
arrays or its kernels: `sma` is `ta.trend.SMAIndicator(series, n).sma_indicator()`,
`x[n]` is `x.shift(n)`, `and` is `&`; a comparison with a missing value is false (`!=`
included), and `not` negates elementwise.

`ReferenceCache` keeps each symbol's bars through a date and the node values computed
on them, so several scans of the same frames on the same date (the presets) compute
`sma(close, 200)` once per symbol.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeAlias, cast

import numpy as np
import pandas as pd
from ta.momentum import RSIIndicator, StochasticOscillator
from ta.trend import MACD, ADXIndicator, EMAIndicator, SMAIndicator
from ta.volatility import AverageTrueRange, BollingerBands

from core.scan_syntax import (
    Ago,
    Arithmetic,
    Call,
    Comparison,
    Field,
    Logical,
    Negative,
    Node,
    Not,
    Number,
    Scan,
)
from core.scanner import condition_terms

Column: TypeAlias = "pd.Series[Any]"  # one value per bar of the symbol: float or bool
Value: TypeAlias = "Column | float"
BAR_FIELDS = ["open", "high", "low", "close", "volume"]

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}
_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
}


@dataclass(frozen=True, slots=True)
class ReferenceHit:
    """What `core.scanner.Hit` says of a matching symbol."""

    symbol: str
    since: date  # the first bar of its current run of matches
    values: dict[str, float]  # the terms behind the conditions (`condition_terms`)
    rank: float  # the ranking value (NaN without a ranking clause)


@dataclass(slots=True)
class ReferenceResult:
    """What `core.scanner.ScanResult` holds, computed symbol by symbol."""

    scan: Scan
    day: date | None  # the date scanned (None: no symbol has a bar through it)
    hits: list[ReferenceHit]  # ranked as the scanner ranks, cut at the scan's limit
    terms: list[str]
    scanned: int
    skipped: dict[str, str] = field(default_factory=dict)
    matched: int = 0  # before the limit


class SymbolEvaluator:
    """One symbol's daily bars (oldest first) and every node of a scan over them, as a
    pandas Series with one value per bar (a float for a constant), each text once."""

    def __init__(self, bars: pd.DataFrame) -> None:
        self.dates = pd.DatetimeIndex(bars.index)
        self.bars = bars.reset_index(drop=True)  # positions, as ta's loops index them
        self.cache: dict[str, Value] = {}

    def value(self, node: Node) -> Value:
        key = node.render()
        if key not in self.cache:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")  # ta's divisions by zero: NaN, inf, as numpy
                self.cache[key] = self._compute(node)
        return self.cache[key]

    def series(self, node: Node) -> Column:
        """The node's value at every bar (a constant repeated)."""
        value = self.value(node)
        if isinstance(value, pd.Series):
            return value
        return pd.Series(np.full(len(self.bars), value), index=self.bars.index)

    def _compute(self, node: Node) -> Value:
        if isinstance(node, Number):
            return float(node.value)
        if isinstance(node, Field):
            return self._field(node.name)
        if isinstance(node, Ago):
            inner = self.series(node.operand)
            if inner.dtype == bool:  # before the first bar a condition did not hold
                return inner.shift(node.bars, fill_value=False)
            return inner.shift(node.bars)
        if isinstance(node, Negative):
            return -self.value(node.operand)
        if isinstance(node, Arithmetic):
            left, right = self.value(node.left), self.value(node.right)
            if not isinstance(left, pd.Series) and not isinstance(right, pd.Series):
                left = np.float64(left)  # numpy's division: 1 / 0 is inf, not an exception
            result: Value = _ARITHMETIC[node.operator](left, right)
            return result if isinstance(result, pd.Series) else float(result)
        if isinstance(node, Comparison):
            return self._compare(node.operator, self.value(node.left), self.value(node.right))
        if isinstance(node, Logical):
            left_bool, right_bool = self.series(node.left), self.series(node.right)
            return left_bool & right_bool if node.operator == "and" else left_bool | right_bool
        if isinstance(node, Not):
            return ~self.series(node.operand)
        return self._call(node)

    def _compare(self, name: str, left: Value, right: Value) -> Column:
        result = _COMPARE[name](self._broadcast(left), right)
        if name == "!=":  # NaN != x is true in IEEE arithmetic; a missing value matches nothing
            result = result & _present(left) & _present(right)
        return self._broadcast(result)

    def _broadcast(self, value: Any) -> Column:
        if isinstance(value, pd.Series):
            return value
        return pd.Series(np.full(len(self.bars), value), index=self.bars.index)

    def _field(self, name: str) -> Column:
        bars = self.bars
        if name in BAR_FIELDS:
            return bars[name]
        if name == "vwap":  # daily bars keep no prints: the day's typical price
            return (bars["high"] + bars["low"] + bars["close"]) / 3.0
        if name == "change":
            return bars["close"].diff()
        return bars["close"].pct_change() * 100

    def _call(self, node: Call) -> Value:
        name, parameters = node.name, node.parameters
        high, low, close = self.bars["high"], self.bars["low"], self.bars["close"]
        if name in ("crosses_above", "crosses_below"):
            a, b = self.value(node.series[0]), self.value(node.series[1])
            above = name == "crosses_above"
            now = self._compare(">" if above else "<", a, b)
            before = self._compare("<=" if above else ">=", _shifted(a), _shifted(b))
            return now & before
        window = int(parameters[0]) if parameters else 0
        if name == "atr":
            return _ta(AverageTrueRange(high, low, close, window).average_true_range())
        if name == "adx":
            return _ta(ADXIndicator(high, low, close, window).adx())
        if name == "stoch":
            return _ta(StochasticOscillator(high, low, close, window).stoch())
        source = self.series(node.series[0])
        if name in ("sma", "avg"):
            return _ta(SMAIndicator(source, window).sma_indicator())
        if name == "ema":
            return _ta(EMAIndicator(source, window).ema_indicator())
        if name == "rsi":
            return _ta(RSIIndicator(source, window).rsi())
        if name == "highest":
            return source.rolling(window, min_periods=window).max()
        if name == "lowest":
            return source.rolling(window, min_periods=window).min()
        if name == "pct_change":
            return (source / source.shift(window) - 1) * 100
        if name in ("macd", "macd_signal"):
            signal = int(parameters[2]) if name == "macd_signal" else 9
            lines = MACD(source, window_slow=int(parameters[1]), window_fast=window,
                         window_sign=signal)
            return _ta(lines.macd() if name == "macd" else lines.macd_signal())
        bands = BollingerBands(source, window, parameters[1])
        if name == "bbands_upper":
            return _ta(bands.bollinger_hband())
        if name == "bbands_lower":
            return _ta(bands.bollinger_lband())
        return _ta(bands.bollinger_wband())


class ReferenceCache:
    """Each symbol's bars through a date, with the node values computed on them, kept
    for later scans of the same frames: keyed by symbol and date only."""

    def __init__(self) -> None:
        self.evaluators: dict[tuple[str, date], SymbolEvaluator] = {}

    def evaluator(self, symbol: str, frame: pd.DataFrame, through: date) -> SymbolEvaluator:
        key = (symbol, through)
        known = self.evaluators.get(key)
        if known is None:
            days = np.asarray(frame.index.values).astype("datetime64[D]")
            kept = frame.loc[days <= np.datetime64(through), BAR_FIELDS].astype(np.float64)
            known = self.evaluators[key] = SymbolEvaluator(kept)
        return known


def reference_scan(scan: Scan, frames: Mapping[str, pd.DataFrame], through: date,
                   cache: ReferenceCache | None = None) -> ReferenceResult:
    """`scan` over `frames` (symbol -> daily bars with a DatetimeIndex, oldest first) on
    the latest date any of them has through `through`, one symbol at a time."""
    cache = cache if cache is not None else ReferenceCache()
    evaluators = {symbol: cache.evaluator(symbol, frame, through)
                  for symbol, frame in frames.items()}
    terms = condition_terms(scan.condition)
    last_dates = [e.dates[-1].date() for e in evaluators.values() if len(e.dates)]
    if not last_dates:
        return ReferenceResult(scan, None, [], [text for text, _ in terms], 0)
    day = max(last_dates)
    needed = scan.lookback
    skipped: dict[str, str] = {}
    hits: list[ReferenceHit] = []
    scanned = 0
    for symbol, evaluator in evaluators.items():
        if not len(evaluator.dates) or evaluator.dates[-1].date() != day:
            skipped[symbol] = "no bar on the scan's date"
            continue
        if len(evaluator.dates) < needed:
            skipped[symbol] = (f"{len(evaluator.dates)} bars of history, the scan needs "
                               f"{needed}")
            continue
        scanned += 1
        matches = evaluator.series(scan.condition).to_numpy(dtype=bool)
        if not matches[-1]:
            continue
        misses = np.flatnonzero(~matches)  # the run of matches ending at the last bar
        since = evaluator.dates[int(misses[-1]) + 1 if len(misses) else 0].date()
        values = {text: _last(evaluator.value(node)) for text, node in terms}
        rank = _last(evaluator.value(scan.sort_by)) if scan.sort_by is not None else math.nan
        hits.append(ReferenceHit(symbol, since, values, rank))
    if scan.sort_by is None:
        hits.sort(key=lambda hit: hit.symbol)
    else:
        # A missing rank goes last whichever the direction; ties go by symbol.
        ranked = sorted((h for h in hits if not math.isnan(h.rank)),
                        key=lambda h: (-h.rank if scan.descending else h.rank, h.symbol))
        hits = ranked + sorted((h for h in hits if math.isnan(h.rank)),
                               key=lambda h: h.symbol)
    matched = len(hits)
    if scan.limit is not None:
        hits = hits[:scan.limit]
    return ReferenceResult(scan, day, hits, [text for text, _ in terms], scanned, skipped,
                           matched)


def _ta(result: Any) -> Column:
    return cast(Column, result)  # ta is untyped: its indicators are Series


def _shifted(value: Value) -> Value:
    return value.shift(1) if isinstance(value, pd.Series) else value


def _present(value: Value) -> Any:
    return value.notna() if isinstance(value, pd.Series) else not math.isnan(value)


def _last(value: Value) -> float:
    return float(value.iloc[-1]) if isinstance(value, pd.Series) else float(value)
