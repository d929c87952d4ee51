from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from core.clock import ExchangeCalendar
from data.bundle import COLUMNS
from data.synthetic import EPOCH, SyntheticDailyBars

START = date(2016, 1, 1)
END = date(2019, 12, 31)


def test_schema_matches_the_bundle() -> None:
    bars = SyntheticDailyBars().load("AAPL", START, END)
    assert list(bars.columns) == list(COLUMNS)
    assert all(dtype == np.float64 for dtype in bars.dtypes)
    assert isinstance(bars.index, pd.DatetimeIndex)
    assert bars.index.name == "date"
    assert bars.index.tz is None
    assert bars.index.dtype == np.dtype("datetime64[ns]")
    assert bars.index.is_unique
    assert bars.index.is_monotonic_increasing


def test_index_is_the_calendars_sessions() -> None:
    calendar = ExchangeCalendar()
    bars = SyntheticDailyBars(calendar=calendar).load("XYZ", START, END)
    assert [d.date() for d in bars.index] == calendar.sessions(START, END)
    assert pd.Timestamp("2018-12-05") not in bars.index  # a day of mourning
    assert pd.Timestamp("2019-07-04") not in bars.index


def test_same_seed_same_bars_other_seed_other_bars() -> None:
    first = SyntheticDailyBars(seed=7).load("AAPL", START, END)
    again = SyntheticDailyBars(seed=7).load("AAPL", START, END)
    other = SyntheticDailyBars(seed=8).load("AAPL", START, END)
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["close"], other["close"])
    msft = SyntheticDailyBars(seed=7).load("MSFT", START, END)
    assert not np.allclose(first["close"], msft["close"])


def test_a_bar_does_not_depend_on_the_range_or_on_other_symbols() -> None:
    whole = SyntheticDailyBars(seed=3).load("NVDA", EPOCH, END)
    sources = SyntheticDailyBars(seed=3)
    sources.load("AMD", EPOCH, date(2025, 6, 30))  # other symbols first, a later end
    part = sources.load("NVDA", date(2017, 3, 1), date(2017, 3, 31))
    pd.testing.assert_frame_equal(part, whole.loc["2017-03-01":"2017-03-31"])
    assert len(part) == 23  # March 2017 has 23 weekdays and no holiday


def test_extending_the_range_keeps_earlier_bars() -> None:
    bars = SyntheticDailyBars()
    early = bars.load("KO", date(2016, 1, 1), date(2016, 6, 30))
    later = bars.load("KO", date(2016, 1, 1), date(2021, 6, 30))
    pd.testing.assert_frame_equal(early, later.loc[:"2016-06-30"])


def test_bars_are_consistent() -> None:
    generator = SyntheticDailyBars(seed=11)
    for symbol in ["AAPL", "MSFT", "GME", "BRK.B", "A", "ZZZZZ"]:
        bars = generator.load(symbol, EPOCH, date(2025, 12, 31))
        open_, high, low, close, adj_close, volume = bars.to_numpy().T
        assert (low > 0).all(), symbol
        assert (low <= np.minimum(open_, close)).all(), symbol
        assert (high >= np.maximum(open_, close)).all(), symbol
        assert (adj_close == close).all(), symbol
        assert (volume >= 1).all(), symbol
        assert (volume == np.round(volume)).all(), symbol
        assert np.isfinite(bars.to_numpy()).all(), symbol
        for column in (open_, high, low, close):
            assert np.allclose(column * 100, np.round(column * 100)), symbol


def test_prices_look_like_stocks() -> None:
    generator = SyntheticDailyBars()
    for symbol in ["AAPL", "XOM", "T", "NFLX"]:
        bars = generator.load(symbol, EPOCH, END)
        returns = np.diff(np.log(bars["close"].to_numpy()))
        annual_volatility = returns.std() * np.sqrt(252)
        assert 0.1 < annual_volatility < 1.0, symbol
        assert 5.0 < bars["close"].iloc[0] < 600.0, symbol
        day_range = ((bars["high"] - bars["low"]) / bars["close"]).median()
        assert 0.003 < day_range < 0.08, symbol


def test_symbols_share_a_market_factor() -> None:
    generator = SyntheticDailyBars(seed=5)
    first = np.diff(np.log(generator.load("AAPL", EPOCH, END)["close"].to_numpy()))
    second = np.diff(np.log(generator.load("XOM", EPOCH, END)["close"].to_numpy()))
    assert np.corrcoef(first, second)[0, 1] > 0.1


def test_range_before_the_epoch_is_refused() -> None:
    with pytest.raises(ValueError, match="2015-01-02"):
        SyntheticDailyBars().load("AAPL", date(2014, 1, 1), END)


def test_empty_range_gives_an_empty_frame() -> None:
    bars = SyntheticDailyBars().load("AAPL", END, START)
    assert bars.empty
    assert list(bars.columns) == list(COLUMNS)
    weekend = SyntheticDailyBars().load("AAPL", date(2019, 6, 1), date(2019, 6, 2))
    assert weekend.empty


def test_the_frame_cache_is_bounded_and_a_regenerated_frame_is_identical() -> None:
    from data.synthetic import FRAME_CACHE_SIZE

    bars = SyntheticDailyBars(seed=5)
    first = bars.load("QQQA", START, END).copy()
    names = [f"Z{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(FRAME_CACHE_SIZE + 5)]
    for name in names:
        bars.load(name, START, END)
    assert len(bars._frames) == FRAME_CACHE_SIZE
    assert "QQQA" not in bars._frames  # the least recently used went first
    pd.testing.assert_frame_equal(bars.load("QQQA", START, END), first)
