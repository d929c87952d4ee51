"""Scans over the bundled universe equal the same conditions computed symbol by symbol
with `ta`, on several dates; ranking, limits, 'since' dates and skipped symbols."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from ta.momentum import RSIIndicator
from ta.trend import SMAIndicator
from ta.volatility import BollingerBands

from core.scan_universe import UniverseBars
from core.scanner import scan_text
from data.bundle import BundledDailyBars

DATES = [date(2016, 6, 1), date(2017, 9, 1), date(2019, 6, 3)]


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    with BundledDailyBars() as bundle:
        return {symbol: bundle.load(symbol) for symbol in bundle.symbols()[:120]}


def _history(frame: pd.DataFrame, through: date) -> pd.DataFrame | None:
    """The symbol's bars up to `through`, or None when it has no bar that day."""
    cut = frame[frame.index.date <= through].reset_index(drop=True)
    if cut.empty or frame.index[len(cut) - 1].date() != through:
        return None
    return cut


def _reference(frames: dict[str, pd.DataFrame], through: date, lookback: int,
               condition: object) -> set[str]:
    hits = set()
    for symbol, frame in frames.items():
        bars = _history(frame, through)
        if bars is None or len(bars) < lookback:
            continue
        if condition(bars):  # type: ignore[operator]
            hits.add(symbol)
    return hits


def _oversold_uptrend(bars: pd.DataFrame) -> bool:
    rsi = RSIIndicator(bars["close"], 14).rsi().iloc[-1]
    sma = SMAIndicator(bars["close"], 200).sma_indicator().iloc[-1]
    return bool(rsi < 45 and bars["close"].iloc[-1] > sma)


def _squeeze_with_volume(bars: pd.DataFrame) -> bool:
    width = BollingerBands(bars["close"], 20, 2.0).bollinger_wband()
    volume = SMAIndicator(bars["volume"], 20).sma_indicator()
    return bool(width.iloc[-1] < 8 and bars["volume"].iloc[-1] > 1.2 * volume.iloc[-1])


@pytest.mark.parametrize("through", DATES, ids=str)
@pytest.mark.parametrize(("text", "lookback", "condition"), [
    ("rsi(14) < 45 and close > sma(close, 200)", 200, _oversold_uptrend),
    ("bbands_width(close, 20, 2) < 8 and volume > 1.2 * avg(volume, 20)", 20,
     _squeeze_with_volume),
], ids=["oversold uptrend", "squeeze with volume"])
def test_hits_equal_a_per_symbol_computation_with_ta(
        frames: dict[str, pd.DataFrame], through: date, text: str, lookback: int,
        condition: object) -> None:
    universe = UniverseBars.from_frames(frames, through=through)
    result = scan_text(text, universe)
    assert result.day == through
    expected = _reference(frames, through, lookback, condition)
    assert {hit.symbol for hit in result.hits} == expected
    assert expected, "a date where nothing matches would prove little"


def test_ranking_limit_and_values_behind_each_condition(frames: dict[str, pd.DataFrame]) -> None:
    universe = UniverseBars.from_frames(frames, through=DATES[1])
    result = scan_text("rsi(14) < 50 sort by rsi(14) asc limit 5", universe)
    ranks = [hit.rank for hit in result.hits]
    assert len(ranks) == 5 < result.matched
    assert ranks == sorted(ranks)
    assert result.terms == ["rsi(close, 14)"]
    for hit in result.hits:
        assert hit.values["rsi(close, 14)"] == hit.rank
    descending = scan_text("rsi(14) < 50 sort by rsi(14) desc", universe)
    assert [h.rank for h in descending.hits] == sorted((h.rank for h in descending.hits),
                                                       reverse=True)
    assert descending.matched == result.matched


def test_since_is_the_first_bar_of_the_current_run(frames: dict[str, pd.DataFrame]) -> None:
    universe = UniverseBars.from_frames(frames, through=DATES[2])
    result = scan_text("close > sma(close, 50)", universe)
    hit = result.hits[0]
    frame = frames[hit.symbol]
    bars = frame[frame.index.date <= DATES[2]]
    above = (bars["close"] > SMAIndicator(bars["close"], 50).sma_indicator()).to_numpy()
    misses = np.flatnonzero(~above)
    assert hit.since == bars.index[misses[-1] + 1].date()


def test_symbols_without_a_bar_or_enough_history_are_skipped_with_the_reason() -> None:
    days = np.arange(17_000, 17_300, dtype=np.int64)
    rising = np.column_stack([np.linspace(10, 40, 300)] * 4 + [np.full(300, 1e6)])
    universe = UniverseBars.from_arrays(
        ["OLD", "NEW", "GONE"],
        [(days, rising), (days[-30:], rising[-30:]), (days[:-5], rising[:-5])])
    result = scan_text("close > sma(close, 50)", universe)
    assert [hit.symbol for hit in result.hits] == ["OLD"]
    assert result.skipped == {"NEW": "30 bars of history, the scan needs 50",
                              "GONE": "no bar on the scan's date"}
    assert result.scanned == 1


def test_a_missing_value_matches_nothing_not_even_a_difference() -> None:
    days = np.arange(17_000, 17_010, dtype=np.int64)
    flat = np.column_stack([np.full(10, 5.0)] * 4 + [np.full(10, 1e6)])
    universe = UniverseBars.from_arrays(["FLAT"], [(days, flat)])
    # ta's stochastic divides by a range of 0: NaN, which must not count as "!= 50".
    assert scan_text("stoch(5) != 50", universe).hits == []
    assert scan_text("not (stoch(5) == 50)", universe).hits[0].symbol == "FLAT"
