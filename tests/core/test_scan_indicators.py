"""The scanner's universe-wide indicators equal `ta` run on each symbol alone, to 1e-9,
on the bundled data: symbols with full histories, ones listed late (a short history
under NaN rows) and ones delisted early."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from ta.momentum import RSIIndicator, StochasticOscillator
from ta.trend import MACD, ADXIndicator, EMAIndicator, SMAIndicator
from ta.volatility import AverageTrueRange, BollingerBands, DonchianChannel

from core import scan_indicators as ind
from core.scan_universe import UniverseBars
from data.bundle import BundledDailyBars

# Full histories, late listings (FOX, COL, SCG) and early delistings (AET, ESRX).
SYMBOLS = ["AAPL", "XOM", "FOX", "COL", "SCG", "AET", "ESRX", "NFLX"]


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    with BundledDailyBars() as bundle:
        return {symbol: bundle.load(symbol) for symbol in SYMBOLS}


@pytest.fixture(scope="module")
def universe(frames: dict[str, pd.DataFrame]) -> UniverseBars:
    return UniverseBars.from_frames(frames)


Reference = Callable[[pd.DataFrame], pd.Series]
Ours = Callable[[UniverseBars], np.ndarray]

CASES: list[tuple[str, Ours, Reference]] = [
    ("sma 20", lambda u: ind.sma(u.close, 20),
     lambda f: SMAIndicator(f["close"], 20).sma_indicator()),
    ("sma volume 50", lambda u: ind.sma(u.volume, 50),
     lambda f: SMAIndicator(f["volume"], 50).sma_indicator()),
    ("ema 12", lambda u: ind.ema(u.close, 12),
     lambda f: EMAIndicator(f["close"], 12).ema_indicator()),
    ("rsi 14", lambda u: ind.rsi(u.close, 14), lambda f: RSIIndicator(f["close"], 14).rsi()),
    ("rsi 2", lambda u: ind.rsi(u.close, 2), lambda f: RSIIndicator(f["close"], 2).rsi()),
    ("macd", lambda u: ind.macd(u.close, 12, 26),
     lambda f: MACD(f["close"], 26, 12, 9).macd()),
    ("macd signal", lambda u: ind.macd_signal(u.close, 12, 26, 9),
     lambda f: MACD(f["close"], 26, 12, 9).macd_signal()),
    ("bb upper", lambda u: ind.bollinger(u.close, 20, 2.0)[0],
     lambda f: BollingerBands(f["close"], 20, 2.0).bollinger_hband()),
    ("bb lower", lambda u: ind.bollinger(u.close, 20, 2.5)[1],
     lambda f: BollingerBands(f["close"], 20, 2.5).bollinger_lband()),
    ("bb width", lambda u: ind.bollinger(u.close, 20, 2.0)[2],
     lambda f: BollingerBands(f["close"], 20, 2.0).bollinger_wband()),
    ("stoch", lambda u: ind.stochastic(u.high, u.low, u.close, 14),
     lambda f: StochasticOscillator(f["high"], f["low"], f["close"], 14).stoch()),
    ("highest", lambda u: ind.highest(u.high, 20),
     lambda f: DonchianChannel(f["high"], f["low"], f["close"], 20).donchian_channel_hband()),
    ("lowest", lambda u: ind.lowest(u.low, 20),
     lambda f: DonchianChannel(f["high"], f["low"], f["close"], 20).donchian_channel_lband()),
    # ATR and ADX: ta's rows before the first value are 0, compared as they are.
    ("atr 14", lambda u: ind.atr(u.high, u.low, u.close, 14),
     lambda f: AverageTrueRange(f["high"], f["low"], f["close"], 14).average_true_range()),
    ("adx 14", lambda u: ind.adx(u.high, u.low, u.close, 14),
     lambda f: ADXIndicator(f["high"], f["low"], f["close"], 14).adx()),
    ("adx 5", lambda u: ind.adx(u.high, u.low, u.close, 5),
     lambda f: ADXIndicator(f["high"], f["low"], f["close"], 5).adx()),
]


@pytest.mark.parametrize(("name", "ours", "reference"), CASES, ids=[c[0] for c in CASES])
def test_each_column_equals_ta_on_that_symbol_alone(
        name: str, ours: Ours, reference: Reference,
        frames: dict[str, pd.DataFrame], universe: UniverseBars) -> None:
    values = ours(universe)
    assert values.shape == universe.close.shape
    for column, symbol in enumerate(universe.symbols):
        frame = frames[symbol].reset_index(drop=True)
        count = len(frame)
        if name.startswith("adx") and count <= 2 * int(name.split()[1]):
            continue  # ta's ADX fails on a history this short; the scanner skips it
        expected = np.asarray(reference(frame), dtype=np.float64)
        got = values[len(values) - count:, column]
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9,
                                   equal_nan=True, err_msg=f"{name} of {symbol}")
        # Above the history there is nothing: NaN, never a value.
        assert np.isnan(values[:len(values) - count, column]).all()


def test_percent_change_and_bars_ago(universe: UniverseBars) -> None:
    close = universe.close
    changed = ind.pct_change(close, 5)
    np.testing.assert_allclose(changed[10:], (close[10:] / close[5:-5] - 1) * 100)
    assert np.isnan(ind.ago(close, 3)[:3]).all()
    np.testing.assert_array_equal(ind.ago(close, 3)[3:], close[:-3])
    assert np.isnan(ind.ago(close, 10_000)).all()


def test_a_history_shorter_than_the_window_is_all_missing_or_zero() -> None:
    days = np.arange(5, dtype=np.int64)
    bars = np.column_stack([np.linspace(10, 14, 5)] * 4 + [np.full(5, 1e6)])
    short = UniverseBars.from_arrays(["NEW"], [(days, bars)])
    assert np.isnan(ind.sma(short.close, 20)).all()
    assert (ind.atr(short.high, short.low, short.close, 14) == 0).all()
    assert (ind.adx(short.high, short.low, short.close, 14) == 0).all()


@pytest.mark.parametrize(("name", "ours", "reference"), CASES, ids=[c[0] for c in CASES])
def test_the_public_pandas_path_gives_the_same_values(
        name: str, ours: Ours, reference: Reference, universe: UniverseBars,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The path taken when pandas' window kernels are not where this pandas keeps them.
    fast = ours(universe)
    monkeypatch.setattr(ind._Kernels, "available", False)
    np.testing.assert_allclose(ours(universe), fast, rtol=1e-12, atol=1e-9, equal_nan=True)
