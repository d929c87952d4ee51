"""A scan kept current through a session: today's bars update one row, never the history.

`LiveScan` evaluates the scan once over the completed sessions (`core.scanner`), then
keeps every node's array with one more row: today. Each update (a new or changed bar
for some symbols: a quote moves today's forming bar, the close completes it) writes
those symbols' bar into that row and steps every node one row from the row before, in
the order the nodes were computed (children first):

- elementwise nodes (fields, arithmetic, comparisons, and/or/not, `[n]`, crosses) read
  today's row and yesterday's of their operands;
- window functions (sma, avg, highest, lowest, the Bollinger bands, stoch,
  pct_change) read their window's last rows of their input;
- the recursive ones (ema, rsi, macd, macd_signal, atr, adx) step from yesterday's
  state with pandas' own recurrence (`scan_indicators.ewm_step`): their value, or for
  RSI and ADX the smoothed averages and sums kept beside it.

A symbol with no bar today keeps yesterday's values in today's row: it is scanned as of
its last close (`Hit.as_of` says so). A symbol whose history is too short for a
recursive state to exist yesterday, but long enough with today's bar, is recomputed
whole, alone: the only case where history is read again. The tests check every preset
and a broad set of expressions against a full evaluation of history plus today's bar.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import cast

import numpy as np

from core import scan_indicators as ind
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
    Scan,
)
from core.scan_universe import BAR_FIELDS, UniverseBars, day_number, number_day
from core.scanner import (
    BoolArray,
    Evaluator,
    FloatArray,
    ScanResult,
    Values,
    compare,
)

# A bar as the live scan takes it: open, high, low, close, volume.
BarValues = tuple[float, float, float, float, float]


class LiveScan:
    """One scan over one universe, current as of the bars given to `update`."""

    def __init__(self, scan: Scan, history: UniverseBars, session: date) -> None:
        """`history` holds the completed sessions (before `session`, today): at least
        one bar of one symbol."""
        if not history.symbols or not len(history.close):
            raise ValueError("a live scan needs some history")
        self.scan = scan
        self.session = session
        cold = Evaluator(history)
        cold.prepare(scan)
        rows, width = history.close.shape
        self.row = rows  # today's row
        self.columns = {symbol: column for column, symbol in enumerate(history.symbols)}
        self.history_lengths = history.lengths.copy()
        self.history_last_days = history.last_days.copy()
        self.last_session = int(history.last_days.max(initial=-1))
        opens, highs, lows, closes, volumes = (_grown(history.field(name))
                                               for name in BAR_FIELDS)
        days = np.vstack([history.day_numbers, history.day_numbers[-1:]])
        self.bars = UniverseBars(list(history.symbols), opens, highs, lows, closes, volumes,
                                 days, history.lengths.copy())
        self.evaluator = Evaluator(self.bars)
        self.evaluator.cache = {key: _extended(value) for key, value in cold.cache.items()}
        self.evaluator.nodes = dict(cold.nodes)
        # Yesterday's hidden states: fixed for the session, every update steps from them.
        self.states = {key: tuple(array[-1].copy() for array in arrays)
                       for key, arrays in cold.states.items()}
        self.today = np.zeros(width, dtype=bool)
        # A symbol whose recursive states exist yesterday: it has the scan's lookback.
        self.steady = self.history_lengths >= scan.lookback
        self._carry()

    # ------------------------------------------------------------------ updates

    def update(self, bars: Mapping[str, BarValues]) -> ScanResult:
        """Today's bars for some symbols (any not in the universe are ignored); the
        others keep what they had. Returns the scan's result as of now."""
        row = self.row
        today_day = day_number(self.session)
        for symbol, values in bars.items():
            column = self.columns.get(symbol)
            if column is None:
                continue
            for name, value in zip(BAR_FIELDS, values, strict=True):
                self.bars.field(name)[row, column] = float(value)
            self.bars.day_numbers[row, column] = today_day
            if not self.today[column]:
                self.today[column] = True
                self.bars.lengths[column] = self.history_lengths[column] + 1
        self._step()
        return self.result()

    def result(self) -> ScanResult:
        """The scan as of now: on today's bar for the symbols that have one, on their
        last close for those that do not yet (if that close is the last session's)."""
        needed = self.scan.lookback
        current = self.today | (self.history_last_days == self.last_session)
        eligible = current & (self.bars.lengths >= needed)
        skipped: dict[str, str] = {}
        for column in np.flatnonzero(~eligible).tolist():
            symbol = self.bars.symbols[column]
            if not current[column]:
                last = int(self.history_last_days[column])
                skipped[symbol] = (f"no bar since {number_day(last)}" if last >= 0
                                   else "no history")
            else:
                skipped[symbol] = (f"{self.bars.lengths[column]} bars of history, the scan "
                                   f"needs {needed}")
        day = day_number(self.session) if self.today.any() else self.last_session
        return self.evaluator.result(self.scan, (day, eligible, skipped))

    def _step(self) -> None:
        evaluator, row = self.evaluator, self.row
        for key, node in evaluator.nodes.items():
            value = evaluator.cache[key]
            if isinstance(value, np.ndarray):
                value[row] = _step(node, key, evaluator, self.states, row)
        self._carry()
        self._recompute_young()

    def _carry(self) -> None:
        """Symbols with no bar today keep yesterday's bar and values in today's row."""
        row = self.row
        resting = ~self.today
        if not resting.any():
            return
        for name in BAR_FIELDS:
            array = self.bars.field(name)
            array[row, resting] = array[row - 1, resting]
        self.bars.day_numbers[row, resting] = self.bars.day_numbers[row - 1, resting]
        for value in self.evaluator.cache.values():
            if isinstance(value, np.ndarray):
                value[row, resting] = value[row - 1, resting]

    def _recompute_young(self) -> None:
        """Symbols that reach the scan's lookback only with today's bar: their
        recursive states did not exist yesterday, so they are evaluated whole."""
        young = np.flatnonzero(self.today & ~self.steady
                               & (self.history_lengths + 1 >= self.scan.lookback))
        if not len(young):
            return
        bars = self.bars
        histories = []
        for column in young.tolist():
            count = int(bars.lengths[column])
            values = np.column_stack([bars.field(name)[-count:, column] for name in BAR_FIELDS])
            histories.append((bars.day_numbers[-count:, column].copy(), values))
        alone = Evaluator(UniverseBars.from_arrays([bars.symbols[c] for c in young], histories))
        alone.prepare(self.scan)
        for key, value in self.evaluator.cache.items():
            if isinstance(value, np.ndarray):
                fresh = alone.value(self.evaluator.nodes[key])
                if isinstance(fresh, np.ndarray):
                    value[self.row, young] = fresh[-1]


def _grown(values: FloatArray) -> FloatArray:
    return cast(FloatArray, _extended(values))


def _extended(value: Values) -> Values:
    """An array with one more row (today's, filled by the first update); a number as is."""
    if not isinstance(value, np.ndarray):
        return value
    rows, width = value.shape
    grown = np.empty((rows + 1, width), dtype=value.dtype)
    grown[:rows] = value
    grown[rows] = False if value.dtype == np.bool_ else np.nan
    return grown


def _floats(values: object) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def _step(node: Node, key: str, evaluator: Evaluator,
          states: Mapping[str, tuple[FloatArray, ...]], row: int) -> FloatArray | BoolArray:
    """Node `node`'s value at `row`, every column, from its operands (already at `row`)
    and its own value or state at the row before."""
    bars = evaluator.bars
    own = cast(FloatArray, evaluator.cache[key])

    def at(operand: Node, back: int = 0) -> FloatArray | float:
        value = evaluator.value(operand)
        if not isinstance(value, np.ndarray):
            return value
        if row - back < 0:
            return np.full(value.shape[1], False if value.dtype == np.bool_ else np.nan)
        return cast(FloatArray, value[row - back])

    if isinstance(node, Field):
        close, before = bars.close[row], bars.close[row - 1]
        if node.name in BAR_FIELDS:
            return _floats(bars.field(node.name)[row])
        if node.name == "vwap":
            return _floats((bars.high[row] + bars.low[row] + bars.close[row]) / 3.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return _floats(close - before if node.name == "change"
                           else (close / before - 1.0) * 100.0)
    if isinstance(node, Ago):
        return np.asarray(at(node.operand, node.bars))
    if isinstance(node, Negative):
        return np.negative(at(node.operand))
    if isinstance(node, Arithmetic):
        left, right = at(node.left), at(node.right)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            operations = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}
            return np.asarray(operations[node.operator](left, right), dtype=np.float64)
    if isinstance(node, Comparison):
        return compare(node.operator, at(node.left), at(node.right))
    if isinstance(node, Logical):
        left_bool, right_bool = cast(BoolArray, at(node.left)), cast(BoolArray, at(node.right))
        return left_bool & right_bool if node.operator == "and" else left_bool | right_bool
    if isinstance(node, Not):
        return np.asarray(~cast(BoolArray, at(node.operand)) & ~np.isnan(bars.close[row]))
    assert isinstance(node, Call)  # the tree has no other node
    return _step_call(node, key, evaluator, states, row, own)


def _step_call(node: Call, key: str, evaluator: Evaluator,
               states: Mapping[str, tuple[FloatArray, ...]], row: int,
               own: FloatArray) -> FloatArray | BoolArray:
    bars = evaluator.bars
    name, parameters = node.name, node.parameters
    window = int(parameters[0]) if parameters else 0

    def series(index: int = 0) -> FloatArray:
        value = evaluator.value(node.series[index])
        if isinstance(value, np.ndarray):
            return cast(FloatArray, value)
        return np.full(bars.close.shape, float(value))

    def last(values: FloatArray, count: int) -> FloatArray:
        """The last `count` rows through `row` (NaN rows when history is shorter)."""
        if count > row + 1:
            return np.full((count, values.shape[1]), np.nan)
        return values[row + 1 - count:row + 1]

    if name in ("crosses_above", "crosses_below"):
        a, b = series(0), series(1)
        if name == "crosses_above":
            return compare(">", a[row], b[row]) & compare("<=", a[row - 1], b[row - 1])
        return compare("<", a[row], b[row]) & compare(">=", a[row - 1], b[row - 1])
    if name in ("atr", "adx"):
        high, low = bars.high[row], bars.low[row]
        high_before, low_before, close_before = (bars.high[row - 1], bars.low[row - 1],
                                                 bars.close[row - 1])
        if name == "atr":
            return ind.ewm_step(own[row - 1], ind.true_range(high, low, close_before),
                                window - 1.0)
        movement, positive, negative = ind.directional_movement(
            high, low, high_before, low_before, close_before)
        ranges, plus_sums, minus_sums = (
            ind.ewm_step(state, value, window - 1.0)
            for state, value in zip(states[key], (movement, positive, negative), strict=True))
        directional = ind.directional_index(ranges, plus_sums, minus_sums)
        return ind.ewm_step(own[row - 1], directional, window - 1.0)
    if name == "stoch":
        floor = np.min(last(bars.low, window), axis=0)
        ceiling = np.max(last(bars.high, window), axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(100 * (bars.close[row] - floor) / (ceiling - floor))
    source = series()
    if name in ("sma", "avg"):
        return _floats(np.mean(last(source, window), axis=0))
    if name == "highest":
        return _floats(np.max(last(source, window), axis=0))
    if name == "lowest":
        return _floats(np.min(last(source, window), axis=0))
    if name == "pct_change":
        before = source[row - window] if row >= window else np.full(source.shape[1], np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray((source[row] / before - 1.0) * 100.0)
    if name == "ema":
        return ind.ewm_step(own[row - 1], source[row], (window - 1) / 2.0)
    if name == "rsi":
        change = source[row] - source[row - 1]
        with np.errstate(invalid="ignore"):
            up = np.where(change > 0, change, 0.0)
            down = np.where(change < 0, -change, 0.0)
        mean_up, mean_down = states[key]
        return ind.rsi_value(ind.ewm_step(mean_up, up, window - 1.0),
                             ind.ewm_step(mean_down, down, window - 1.0))
    if name == "macd":
        fast, slow = (cast(FloatArray, evaluator.value(Call("ema", node.series, (one,),
                                                            node.column)))
                      for one in parameters[:2])
        return np.asarray(fast[row] - slow[row])
    if name == "macd_signal":
        line = cast(FloatArray, evaluator.value(Call("macd", node.series, parameters[:2],
                                                     node.column)))
        return ind.ewm_step(own[row - 1], line[row], (int(parameters[2]) - 1) / 2.0)
    # The Bollinger bands: the mean and the population deviation of the window.
    values = last(source, window)
    middle = np.mean(values, axis=0)
    spread = np.std(values, axis=0)
    upper = middle + parameters[1] * spread
    lower = middle - parameters[1] * spread
    if name == "bbands_upper":
        return _floats(upper)
    if name == "bbands_lower":
        return _floats(lower)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray((upper - lower) / middle * 100)
