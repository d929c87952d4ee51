"""The market scanner: a parsed scan (`core.scan_language`) evaluated over a whole
universe at once (`core.scan_universe`), symbols as columns.

Every node of the tree becomes an array of shape (bars, symbols). Nodes are computed
once per canonical text, so `sma(close, 200)` written in two conditions, or in a
condition and the ranking, is computed once. A symbol is scanned only when it has a bar
on the scan's date and at least the scan's lookback in bars; a comparison with a missing
value is false (never a match by accident).

The result is the matching symbols at the last row, each with the date it started
matching (the first bar of its current run of matches), the values behind every
condition, and its ranking value; sorted by the ranking clause and cut at its limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import cast

import numpy as np
import numpy.typing as npt

from core import scan_indicators as ind
from core.scan_language import parse
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
    walk,
)
from core.scan_universe import UniverseBars, number_day

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Values = FloatArray | BoolArray | float


@dataclass(frozen=True, slots=True)
class Hit:
    symbol: str
    since: date  # the first bar of its current run of matches
    values: dict[str, float]  # the terms behind the conditions, by their text
    rank: float  # the ranking value (NaN without a ranking clause)
    as_of: date  # the date of the bar the values are from (a live scan: today or the last close)


@dataclass(slots=True)
class ScanResult:
    scan: Scan
    day: date | None  # the date scanned (None: an empty universe)
    hits: list[Hit]
    terms: list[str]  # the texts of `Hit.values`, in the order the scan names them
    scanned: int  # symbols evaluated
    skipped: dict[str, str] = field(default_factory=dict)  # symbol -> why not scanned
    matched: int = 0  # before the limit


def scan_text(text: str, bars: UniverseBars) -> ScanResult:
    return run_scan(parse(text), bars)


def run_scan(scan: Scan, bars: UniverseBars) -> ScanResult:
    evaluator = Evaluator(bars)
    return evaluator.result(scan)


class Evaluator:
    """Computes nodes over one universe's bars, each canonical text once."""

    def __init__(self, bars: UniverseBars) -> None:
        self.bars = bars
        self.cache: dict[str, Values] = {}
        self.nodes: dict[str, Node] = {}  # by text, children before their parents
        # The hidden state of the recursive indicators that is not their own value:
        # RSI's smoothed gains and losses, ADX's smoothed sums (a live update steps them).
        self.states: dict[str, tuple[FloatArray, ...]] = {}
        self.bands: dict[tuple[str, int, float], tuple[FloatArray, FloatArray, FloatArray]] = {}
        self._present: BoolArray | None = None

    # ------------------------------------------------------------------ the result

    def prepare(self, scan: Scan) -> None:
        """Compute every node the scan's result reads."""
        self.boolean(scan.condition)
        for _, node in condition_terms(scan.condition):
            self.value(node)
        if scan.sort_by is not None:
            self.value(scan.sort_by)

    def eligibility(self, needed: int) -> tuple[int, BoolArray, dict[str, str]]:
        """The day scanned, the symbols scanned on it, and why the others are not: a
        symbol needs a bar on the latest date and `needed` bars of history."""
        bars = self.bars
        last_days = bars.last_days
        scan_day = int(last_days.max())
        eligible = np.ones(len(bars.symbols), dtype=bool)
        skipped: dict[str, str] = {}
        for column, symbol in enumerate(bars.symbols):
            if last_days[column] != scan_day:
                eligible[column] = False
                skipped[symbol] = "no bar on the scan's date"
            elif bars.lengths[column] < needed:
                eligible[column] = False
                skipped[symbol] = f"{bars.lengths[column]} bars of history, the scan needs {needed}"
        return scan_day, eligible, skipped

    def result(self, scan: Scan,
               eligibility: tuple[int, BoolArray, dict[str, str]] | None = None) -> ScanResult:
        """The hits at the last row; `eligibility` (the day scanned, the symbols
        scanned, why the others are not) defaults to `self.eligibility(...)`."""
        bars = self.bars
        if not bars.symbols or not len(bars.day_numbers):
            return ScanResult(scan, None, [], [], 0)
        scan_day, eligible, skipped = eligibility or self.eligibility(scan.lookback)
        matches = self.boolean(scan.condition)
        last = matches[-1] & eligible
        columns = np.flatnonzero(last)
        terms = condition_terms(scan.condition)
        term_values = {text: self.numeric(node) for text, node in terms}
        ranks = self.numeric(scan.sort_by) if scan.sort_by is not None else None
        hits: list[Hit] = []
        for column in columns.tolist():
            run = matches[:, column]
            misses = np.flatnonzero(~run)
            start = int(misses[-1]) + 1 if len(misses) else len(run) - int(bars.lengths[column])
            since = number_day(int(bars.day_numbers[start, column]))
            values = {text: _last(array, column) for text, array in term_values.items()}
            rank = _last(ranks, column) if ranks is not None else math.nan
            as_of = number_day(int(bars.day_numbers[-1, column]))
            hits.append(Hit(bars.symbols[column], since, values, rank, as_of))
        if scan.sort_by is not None:
            # NaN ranks go last whichever the direction; ties keep the symbol order.
            sign = -1.0 if scan.descending else 1.0
            hits.sort(key=lambda hit: (math.isnan(hit.rank), sign * hit.rank
                                       if not math.isnan(hit.rank) else 0.0, hit.symbol))
        else:
            hits.sort(key=lambda hit: hit.symbol)
        matched = len(hits)
        if scan.limit is not None:
            hits = hits[:scan.limit]
        return ScanResult(scan, number_day(scan_day), hits, [text for text, _ in terms],
                          int(eligible.sum()), skipped, matched)

    # ------------------------------------------------------------------ nodes

    def value(self, node: Node) -> Values:
        key = node.render()
        known = self.cache.get(key)
        if known is None:
            known = self.cache[key] = self._compute(node)
            self.nodes[key] = node
        return known

    def numeric(self, node: Node) -> FloatArray | float:
        value = self.value(node)
        if isinstance(value, np.ndarray) and value.dtype == np.bool_:
            raise TypeError(f"{node.render()} is a condition, not a value")
        return cast(FloatArray | float, value)

    def boolean(self, node: Node) -> BoolArray:
        value = self.value(node)
        if not isinstance(value, np.ndarray) or value.dtype != np.bool_:
            raise TypeError(f"{node.render()} is a value, not a condition")
        return cast(BoolArray, value)

    def _compute(self, node: Node) -> Values:
        bars = self.bars
        if isinstance(node, Number):
            return node.value
        if isinstance(node, Field):
            return self._field(node.name)
        if isinstance(node, Ago):
            inner = self.value(node.operand)
            if isinstance(inner, np.ndarray) and inner.dtype == np.bool_:
                shifted = np.zeros_like(inner)
                if node.bars < len(inner):
                    shifted[node.bars:] = inner[:len(inner) - node.bars]
                return shifted
            return ind.ago(_array(inner, bars), node.bars)
        if isinstance(node, Negative):
            return np.negative(self.numeric(node.operand))
        if isinstance(node, Arithmetic):
            left, right = self.numeric(node.left), self.numeric(node.right)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                if node.operator == "+":
                    return np.add(left, right)
                if node.operator == "-":
                    return np.subtract(left, right)
                if node.operator == "*":
                    return np.multiply(left, right)
                return np.divide(left, right)
        if isinstance(node, Comparison):
            return self._conditions(compare(node.operator, self.numeric(node.left),
                                            self.numeric(node.right)))
        if isinstance(node, Logical):
            left_bool, right_bool = self.boolean(node.left), self.boolean(node.right)
            return left_bool & right_bool if node.operator == "and" else left_bool | right_bool
        if isinstance(node, Not):
            # Never true above a symbol's first bar: shifted down by `[n]`, it would be.
            return ~self.boolean(node.operand) & self.present
        return self._call(node)

    @property
    def present(self) -> BoolArray:
        """Where each symbol has a bar (its history, not the rows above it)."""
        if self._present is None:
            self._present = ~np.isnan(self.bars.close)
        return self._present

    def _conditions(self, value: BoolArray) -> BoolArray:
        """A condition of constants alone (`1 < 2`) as one value per symbol and bar."""
        if value.shape == self.bars.close.shape:
            return value
        return np.broadcast_to(value, self.bars.close.shape).copy()

    def _field(self, name: str) -> FloatArray:
        bars = self.bars
        if name in ("open", "high", "low", "close", "volume"):
            return bars.field(name)
        if name == "vwap":
            # Daily history keeps no prints: the day's typical price stands in for them.
            return (bars.high + bars.low + bars.close) / 3.0
        if name == "change":
            return bars.close - ind.ago(bars.close, 1)
        return ind.pct_change(bars.close, 1)

    def _call(self, node: Call) -> Values:
        bars = self.bars
        name, parameters = node.name, node.parameters
        if name in ("crosses_above", "crosses_below"):
            a = self.numeric(node.series[0])
            b = self.numeric(node.series[1])
            a_before, b_before = _before(a), _before(b)
            if name == "crosses_above":
                crossed = compare(">", a, b) & compare("<=", a_before, b_before)
            else:
                crossed = compare("<", a, b) & compare(">=", a_before, b_before)
            return self._conditions(crossed)
        window = int(parameters[0]) if parameters else 0
        if name == "atr":
            return ind.atr(bars.high, bars.low, bars.close, window)
        if name == "adx":
            value, sums = ind.adx_parts(bars.high, bars.low, bars.close, window)
            self.states[node.render()] = sums
            return value
        if name == "stoch":
            return ind.stochastic(bars.high, bars.low, bars.close, window)
        source = _array(self.numeric(node.series[0]), bars)
        if name == "rsi":
            averages = ind.rsi_averages(source, window, self.present)
            self.states[node.render()] = averages
            return ind.rsi_value(*averages)
        windowed = _ONE_WINDOW.get(name)
        if windowed is not None:
            return windowed(source, window)
        if name == "macd":
            # Its two averages are nodes of their own: shared with an ema(...) beside it.
            fast, slow = (self.numeric(Call("ema", node.series, (one,), node.column))
                          for one in parameters[:2])
            return np.subtract(fast, slow)
        if name == "macd_signal":
            # The MACD line it smooths is a node of its own: shared with a macd(...) beside it.
            line = self.numeric(Call("macd", node.series, parameters[:2], node.column))
            return ind.ema(_array(line, bars), int(parameters[2]))
        # The three bands of one source and window are computed together, once.
        key = (node.series[0].render(), window, parameters[1])
        bands = self.bands.get(key)
        if bands is None:
            bands = self.bands[key] = ind.bollinger(source, window, parameters[1])
        upper, lower, width = bands
        return {"bbands_upper": upper, "bbands_lower": lower, "bbands_width": width}[name]


# The functions of one series and a window, by name.
_ONE_WINDOW: dict[str, Callable[[FloatArray, int], FloatArray]] = {
    "sma": ind.sma, "avg": ind.sma, "ema": ind.ema,
    "highest": ind.highest, "lowest": ind.lowest, "pct_change": ind.pct_change,
}


def condition_terms(condition: Node) -> list[tuple[str, Node]]:
    """The values a condition compares, by text, in the order the scan names them:
    what a results table shows beside each hit. Constants are left out."""
    seen: dict[str, Node] = {}
    for node in walk(condition):
        operands: tuple[Node, ...] = ()
        if isinstance(node, Comparison):
            operands = (node.left, node.right)
        elif isinstance(node, Call) and node.kind == "boolean":
            operands = node.series
        for operand in operands:
            if not isinstance(operand, Number):
                seen.setdefault(operand.render(), operand)
    return list(seen.items())


def compare(operator: str, left: FloatArray | float, right: FloatArray | float) -> BoolArray:
    with np.errstate(invalid="ignore"):
        if operator == "<":
            result = np.less(left, right)
        elif operator == "<=":
            result = np.less_equal(left, right)
        elif operator == ">":
            result = np.greater(left, right)
        elif operator == ">=":
            result = np.greater_equal(left, right)
        elif operator == "==":
            result = np.equal(left, right)
        else:
            # NaN != anything is true in IEEE arithmetic: a missing value matches nothing.
            result = np.not_equal(left, right) & ~(np.isnan(left) | np.isnan(right))
    return np.asarray(result, dtype=np.bool_)


def _before(value: FloatArray | float) -> FloatArray | float:
    return value if not isinstance(value, np.ndarray) else ind.ago(value, 1)


def _array(value: Values, bars: UniverseBars) -> FloatArray:
    if isinstance(value, np.ndarray):
        return value.astype(np.float64, copy=False)
    return np.full(bars.close.shape, float(value))


def _last(value: FloatArray | float, column: int) -> float:
    if isinstance(value, np.ndarray):
        return float(value[-1, column])
    return float(value)
