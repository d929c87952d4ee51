"""The bundled universe for the scanner: adjusted for splits and dividends as of a day
(raw prices on that day, so they meet the replay's live ones), and the replay's
`daily_universe` never reaching past its clock."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.scan_universe import day_number
from data.bundle import BundledDailyBars
from data.replay import ReplayFeed
from data.universe import universe_bars


@pytest.fixture(scope="module")
def bundle() -> BundledDailyBars:
    return BundledDailyBars()


def test_prices_on_the_as_of_day_are_the_raw_ones(bundle: BundledDailyBars) -> None:
    day = date(2017, 6, 1)
    bars = universe_bars(bundle, ["AAPL", "XOM", "NFLX"], through=day)
    for column, symbol in enumerate(bars.symbols):
        raw = bundle.load(symbol).loc[pd.Timestamp(day)]
        assert bars.day_numbers[-1, column] == day_number(day)
        assert bars.close[-1, column] == pytest.approx(raw["close"], rel=1e-12)
        assert bars.volume[-1, column] == pytest.approx(raw["volume"], rel=1e-12)


def test_history_moves_as_the_adjusted_close_moves(bundle: BundledDailyBars) -> None:
    # The bundle's closes are split-adjusted already; adj_close also takes out dividends:
    # a scan must not see an ex-dividend day's drop as a fall.
    day = date(2016, 12, 30)
    raw = bundle.load("XOM")
    raw = raw[raw.index <= pd.Timestamp(day)]
    bars = universe_bars(bundle, ["XOM"], through=day)
    closes = bars.close[-len(raw):, 0]
    np.testing.assert_allclose(closes[1:] / closes[:-1],
                               (raw["adj_close"].to_numpy()[1:] / raw["adj_close"].to_numpy()[:-1]),
                               rtol=1e-12)
    factor = raw["adj_close"] / raw["close"]
    assert factor.iloc[0] < 0.95 * factor.iloc[-1]  # dividends were paid meanwhile
    # Money traded is unchanged by the adjustment.
    np.testing.assert_allclose(closes * bars.volume[-len(raw):, 0],
                               (raw["close"] * raw["volume"]).to_numpy(), rtol=1e-9)


def test_unknown_symbols_are_left_out(bundle: BundledDailyBars) -> None:
    bars = universe_bars(bundle, ["AAPL", "NOPE"], through=date(2016, 1, 4))
    assert bars.symbols == ["AAPL"]


async def test_the_replay_serves_completed_sessions_only(bundle: BundledDailyBars) -> None:
    feed = ReplayFeed(start=date(2019, 3, 14), day_seconds=60, overnight_seconds=1,
                      steps_per_day=390, seed=1, paused=True, bundle=bundle)
    feed.start_at(time(11, 0))
    bars, session = await feed.daily_universe(["AAPL", "IBM"])
    assert session == date(2019, 3, 14)
    assert bars.last_days.max() == day_number(date(2019, 3, 13))
    feed.start_at(time(16, 30))  # after the bell: today's bars are complete
    bars, session = await feed.daily_universe(None)
    assert session == date(2019, 3, 15)
    assert bars.last_days.max() == day_number(date(2019, 3, 14))
    assert len(bars.symbols) == len(feed.universe_symbols()) > 400


def test_the_whole_universe_is_loaded_once_and_cached_for_the_next_time(
        tmp_path: Path) -> None:
    bundle = BundledDailyBars(cache_dir=tmp_path)
    symbols = bundle.symbols()
    assert not bundle.cache_file.exists()
    universe_bars(bundle, symbols, through=date(2016, 1, 4))
    assert bundle.cache_file.exists()  # a whole universe writes the disk cache
    again = BundledDailyBars(cache_dir=tmp_path)
    first = universe_bars(bundle, ["AAPL", "XOM"], through=date(2016, 1, 4))
    second = universe_bars(again, ["AAPL", "XOM"], through=date(2016, 1, 4))
    np.testing.assert_array_equal(first.close, second.close)
