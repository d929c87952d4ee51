"""Indicators: the incremental state machines agree with the `ta` batch values at every
bar of real and random histories, batch values never look ahead, and indicator text
round-trips."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ta.momentum import RSIIndicator
from ta.trend import EMAIndicator, SMAIndicator
from ta.volatility import AverageTrueRange, BollingerBands, DonchianChannel

from core.indicators import (
    INDICATOR_KINDS,
    SOURCED_KINDS,
    Indicator,
    batch,
    batch_many,
    incremental,
    parse_indicator,
)
from data.bundle import BundledDailyBars

FloatArray = npt.NDArray[np.float64]
BAR_COLUMNS = ["open", "high", "low", "close", "volume"]
TOLERANCE = 1e-9

# Large caps, the highest-priced names (AMZN, GOOGL: rounding scales with price), ARNC
# (runs of zero-volume days), and SNI (2 bars), CSRA (17) and SCG (69), whose histories
# are shorter than most or some of the windows.
SYMBOLS = [
    "AAPL", "MSFT", "JPM", "XOM", "CVX", "AMZN", "GOOGL", "ARNC", "NVDA", "KO", "GE", "NFLX",
    "SNI", "CSRA", "SCG",
]
REAL_DATA_INDICATORS = [
    parse_indicator(text)
    for text in (
        "sma(close,10)", "sma(close,50)", "sma(close,200)", "sma(volume,20)",
        "ema(close,12)", "ema(close,26)", "ema(high,1)",
        "rsi(close,2)", "rsi(close,14)", "rsi(open,30)",
        "bb_upper(close,20,2)", "bb_middle(close,20,2)", "bb_lower(close,20,2)",
        "bb_upper(close,10,1.5)", "bb_lower(close,10,1.5)", "bb_upper(volume,20,2)",
        "atr(14)", "atr(2)",
        "donchian_upper(20)", "donchian_lower(20)", "donchian_upper(55)", "donchian_lower(55)",
    )
]


@pytest.fixture(scope="module")
def frames() -> Iterator[dict[str, pd.DataFrame]]:
    with BundledDailyBars() as bundle:
        yield bundle.load_many(SYMBOLS)


def run_incremental(indicator: Indicator, rows: Sequence[Sequence[float]]) -> FloatArray:
    state = incremental(indicator)
    return np.array([state.update(*row) for row in rows], dtype=np.float64).reshape(len(rows))


def bar_rows(bars: pd.DataFrame) -> list[list[float]]:
    rows: list[list[float]] = bars[BAR_COLUMNS].to_numpy(dtype=np.float64).tolist()
    return rows


def assert_same_values(
    indicator: Indicator, expected: FloatArray, actual: FloatArray, tolerance: FloatArray | float
) -> None:
    where = f"{indicator.key} over {len(expected)} bars"
    assert actual.shape == expected.shape, where
    missing = np.isnan(expected)
    mismatched = np.flatnonzero(missing != np.isnan(actual))
    assert mismatched.size == 0, f"{where}: NaN differs at bars {mismatched[:10].tolist()}"
    error = np.where(missing, 0.0, np.abs(actual - expected))
    off = np.flatnonzero(error > tolerance)
    assert off.size == 0, (
        f"{where}: {off.size} bars off, first at {off[0]}: "
        f"batch {expected[off[0]]!r}, incremental {actual[off[0]]!r}"
    )


# ---------------------------------------------------------------------------------------
# Incremental equals batch on real data


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_incremental_matches_batch_on_bundled_bars(
    frames: dict[str, pd.DataFrame], symbol: str
) -> None:
    bars = frames[symbol]
    rows = bar_rows(bars)
    for indicator in REAL_DATA_INDICATORS:
        expected = batch(indicator, bars)
        assert_same_values(indicator, expected, run_incremental(indicator, rows), TOLERANCE)
        # Warm-up is exactly `lookback - 1` bars, and nothing after it is missing.
        warm_up = min(indicator.lookback - 1, len(bars))
        assert np.isnan(expected[:warm_up]).all(), indicator.key
        assert not np.isnan(expected[warm_up:]).any(), indicator.key


def test_the_bollinger_deviation_keeps_pandas_rounding_residue(
    frames: dict[str, pd.DataFrame],
) -> None:
    # After a 5.4M-share day leaves ARNC's 20-day window, pandas' running variance is
    # left with a residue over the following zero-volume days instead of 0. The
    # incremental band copies pandas' steps, so it shows the same residue, bit for bit.
    bars = frames["ARNC"]
    volume = bars["volume"].to_numpy()
    quiet = next(
        i for i in range(20, len(volume)) if not volume[i - 19 : i + 1].any() and volume[i - 20]
    )
    indicator = parse_indicator("bb_upper(volume,20,2)")
    expected = batch(indicator, bars)
    actual = run_incremental(indicator, bar_rows(bars))
    assert expected[quiet] == actual[quiet]
    assert_same_values(indicator, expected, actual, 0.0)


# ---------------------------------------------------------------------------------------
# No lookahead


ONE_OF_EACH_KIND = [
    parse_indicator(text)
    for text in (
        "sma(close,20)", "ema(close,12)", "rsi(close,14)", "bb_upper(close,20,2)",
        "bb_middle(close,20,2)", "bb_lower(close,20,2)", "atr(14)", "donchian_upper(20)",
        "donchian_lower(20)",
    )
]


@pytest.mark.parametrize("symbol", ["AAPL", "ARNC", "AMZN"])
def test_batch_values_never_depend_on_later_bars(
    frames: dict[str, pd.DataFrame], symbol: str
) -> None:
    bars = frames[symbol]
    full = batch_many(ONE_OF_EACH_KIND, bars)
    rng = np.random.default_rng(7)
    sampled = sorted({0, 12, 13, 14, 19, 20, *rng.integers(21, len(bars), 4).tolist()})
    for i in sampled:
        prefix = batch_many(ONE_OF_EACH_KIND, bars.iloc[: i + 1])
        # Wildly different future bars must not change any value up to bar i either.
        altered = bars.copy()
        altered.iloc[i + 1 :] = altered.iloc[i + 1 :] * 3.0
        rewritten = batch_many(ONE_OF_EACH_KIND, altered)
        for indicator in ONE_OF_EACH_KIND:
            np.testing.assert_array_equal(
                prefix[indicator], full[indicator][: i + 1], err_msg=f"{indicator.key} at {i}"
            )
            np.testing.assert_array_equal(
                rewritten[indicator][: i + 1],
                full[indicator][: i + 1],
                err_msg=f"{indicator.key} at {i}",
            )


# ---------------------------------------------------------------------------------------
# Random histories


@st.composite
def ohlcv_bars(draw: st.DrawFn) -> pd.DataFrame:
    """Positive bars with high >= max(open, close) and low <= min(open, close)."""
    price = st.floats(0.01, 10_000.0, allow_nan=False, allow_infinity=False)
    fraction = st.floats(0.0, 0.5, allow_nan=False)
    shares = st.integers(0, 1_000_000_000).map(float)
    # An explicit length: left to itself, st.lists rarely draws more than a few dozen.
    length = draw(st.integers(0, 300))
    bar = st.tuples(price, price, fraction, fraction, shares)
    raw = draw(st.lists(bar, min_size=length, max_size=length))
    rows = [
        (
            open_,
            max(open_, close) * (1.0 + up),
            min(open_, close) * (1.0 - down),
            close,
            volume,
        )
        for open_, close, up, down, volume in raw
    ]
    return pd.DataFrame(rows, columns=BAR_COLUMNS, dtype=np.float64)


def scaled_tolerance(indicator: Indicator, bars: pd.DataFrame) -> FloatArray:
    """1e-9, relative to the largest input seen so far where that exceeds 1: running sums
    round in proportion to the largest value that passed through them, long after it
    left the window. RSI is a ratio in [0, 100] and gets the absolute tolerance."""
    if indicator.kind == "rsi" or len(bars) == 0:
        return np.full(len(bars), TOLERANCE)
    columns = [indicator.source] if indicator.kind in SOURCED_KINDS else ["high", "low", "close"]
    largest = np.maximum.accumulate(bars[columns].abs().max(axis=1).to_numpy())
    return TOLERANCE * np.maximum(1.0, largest)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bars=ohlcv_bars(),
    window=st.integers(2, 40),
    source=st.sampled_from(["open", "high", "low", "close", "volume"]),
    deviations=st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0]),
)
def test_incremental_matches_batch_on_random_bars(
    bars: pd.DataFrame, window: int, source: str, deviations: float
) -> None:
    rows = bar_rows(bars)
    for kind in INDICATOR_KINDS:
        indicator = Indicator(kind, window, source, deviations)
        expected = batch(indicator, bars)
        assert expected.dtype == np.float64
        assert len(expected) == len(bars)
        if len(bars) < indicator.lookback:
            assert np.isnan(expected).all(), indicator.key
        actual = run_incremental(indicator, rows)
        assert_same_values(indicator, expected, actual, scaled_tolerance(indicator, bars))


@pytest.mark.parametrize("kind", INDICATOR_KINDS)
@pytest.mark.parametrize("length", [0, 1, 13, 14])
def test_series_shorter_than_the_window_are_all_nan(kind: str, length: int) -> None:
    bars = pd.DataFrame(
        {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 1000.0},
        index=pd.RangeIndex(length),
    )
    indicator = Indicator(kind, 15)
    values = batch(indicator, bars)
    assert values.shape == (length,)
    assert np.isnan(values).all()
    assert np.isnan(run_incremental(indicator, bar_rows(bars))).all()


# ---------------------------------------------------------------------------------------
# Indicator text and validation


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"kind": "macd", "window": 12}, "unknown indicator 'macd'"),
        ({"kind": "sma", "window": 0}, "at least 1 bar"),
        ({"kind": "sma", "window": -5}, "at least 1 bar"),
        ({"kind": "rsi", "window": 1}, "at least 2 bars"),
        ({"kind": "atr", "window": 1}, "at least 2 bars"),
        ({"kind": "sma", "window": 2.5}, "whole number of bars"),
        ({"kind": "sma", "window": True}, "whole number of bars"),
        ({"kind": "sma", "window": 20, "source": "price"}, "unknown source 'price'"),
        ({"kind": "bb_upper", "window": 20, "deviations": 0.0}, "positive number"),
        ({"kind": "bb_lower", "window": 20, "deviations": -2.0}, "positive number"),
        ({"kind": "bb_middle", "window": 20, "deviations": math.nan}, "positive number"),
        ({"kind": "bb_upper", "window": 20, "deviations": math.inf}, "positive number"),
        ({"kind": "bb_upper", "window": 20, "deviations": "2"}, "number of standard"),
        ({"kind": "sma", "window": 20, "deviations": -1.0}, "positive number"),
    ],
)
def test_invalid_indicators_are_refused_with_a_reason(
    arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Indicator(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("indicator", "key"),
    [
        (Indicator("sma", 20), "sma(close,20)"),
        (Indicator("ema", 12), "ema(close,12)"),
        (Indicator("rsi", 14), "rsi(close,14)"),
        (Indicator("sma", 20, "volume"), "sma(volume,20)"),
        (Indicator("bb_upper", 20), "bb_upper(close,20,2)"),
        (Indicator("bb_middle", 20, "open", 2.0), "bb_middle(open,20,2)"),
        (Indicator("bb_lower", 10, deviations=1.5), "bb_lower(close,10,1.5)"),
        (Indicator("bb_upper", 20, deviations=0.1), "bb_upper(close,20,0.1)"),
        (Indicator("atr", 14), "atr(14)"),
        (Indicator("donchian_upper", 20), "donchian_upper(20)"),
        (Indicator("donchian_lower", 55), "donchian_lower(55)"),
    ],
)
def test_keys_are_canonical_and_parse_back(indicator: Indicator, key: str) -> None:
    assert indicator.key == key
    assert str(indicator) == key
    assert parse_indicator(key) == indicator


@given(
    kind=st.sampled_from(INDICATOR_KINDS),
    window=st.integers(2, 10_000),
    source=st.sampled_from(["open", "high", "low", "close", "volume"]),
    deviations=st.floats(1e-6, 1e6, allow_nan=False, allow_infinity=False),
)
def test_every_indicator_round_trips_through_its_key(
    kind: str, window: int, source: str, deviations: float
) -> None:
    indicator = Indicator(kind, window, source, deviations)
    parsed = parse_indicator(indicator.key)
    assert parsed == indicator
    assert parsed.key == indicator.key
    assert hash(parsed) == hash(indicator)


def test_parsing_forgives_spaces_and_case() -> None:
    assert parse_indicator("  sma ( close , 20 ) ") == Indicator("sma", 20)
    assert parse_indicator("BB_Upper(Close, 20, 2.5)") == Indicator("bb_upper", 20, "close", 2.5)
    assert parse_indicator("atr( 14 )") == Indicator("atr", 14)


def test_ignored_parameters_do_not_make_a_different_indicator() -> None:
    assert Indicator("atr", 14, source="high") == Indicator("atr", 14)
    assert Indicator("donchian_upper", 20, deviations=3.0) == Indicator("donchian_upper", 20)
    assert Indicator("sma", 20, deviations=3.0).key == "sma(close,20)"
    assert Indicator("sma", 20, deviations=3.0) == Indicator("sma", 20)
    assert Indicator("bb_upper", 20, deviations=2).deviations == 2.0
    # Parameters read from arrays arrive as numpy scalars, outside the declared types.
    numpy_scalars = Indicator(
        "bb_upper", np.int64(20), deviations=np.float32(1.5)  # type: ignore[arg-type]
    )
    assert numpy_scalars == Indicator("bb_upper", 20, deviations=1.5)
    assert type(numpy_scalars.window) is int
    assert type(numpy_scalars.deviations) is float


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sma",
        "sma()",
        "sma(close)",
        "sma(20)",
        "sma(close,20",
        "sma close 20",
        "sma(close,twenty)",
        "sma(close,20.5)",
        "sma(close,1_0)",
        "sma(close,-20)",
        "sma(close,0)",
        "sma(price,20)",
        "sma(close,20,2)",
        "bb_upper(close,20)",
        "bb_upper(close,20,-1)",
        "bb_upper(close,20,0)",
        "bb_upper(close,20,nan)",
        "bb_upper(close,20,inf)",
        "atr(close,14)",
        "atr(1)",
        "macd(close,12)",
        "sma(close,20) extra",
    ],
)
def test_malformed_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        parse_indicator(text)


# ---------------------------------------------------------------------------------------
# Batch against `ta` itself


def test_batch_values_are_the_ta_values(frames: dict[str, pd.DataFrame]) -> None:
    bars = frames["AAPL"]
    high, low, close = bars["high"], bars["low"], bars["close"]
    cases = [
        (Indicator("sma", 50), SMAIndicator(close, 50).sma_indicator()),
        (Indicator("ema", 26, "high"), EMAIndicator(high, 26).ema_indicator()),
        (Indicator("rsi", 14), RSIIndicator(close, 14).rsi()),
        (
            Indicator("bb_upper", 20, deviations=2.5),
            BollingerBands(close, 20, window_dev=2.5).bollinger_hband(),
        ),
        (
            Indicator("bb_lower", 10, deviations=1.5),
            BollingerBands(close, 10, window_dev=1.5).bollinger_lband(),
        ),
        (
            Indicator("donchian_lower", 55),
            DonchianChannel(high, low, close, 55, offset=0).donchian_channel_lband(),
        ),
    ]
    for indicator, expected in cases:
        np.testing.assert_array_equal(
            batch(indicator, bars), expected.to_numpy(dtype=np.float64), err_msg=indicator.key
        )
    # ATR: `ta` fills its warm-up with 0, which batch reports as missing.
    from_ta = AverageTrueRange(high, low, close, 14).average_true_range().to_numpy()
    values = batch(Indicator("atr", 14), bars)
    assert (from_ta[:13] == 0).all()
    assert np.isnan(values[:13]).all()
    np.testing.assert_array_equal(values[13:], from_ta[13:])


def test_batch_is_positional_whatever_the_index(frames: dict[str, pd.DataFrame]) -> None:
    bars = frames["XOM"]
    relabelled = bars.set_axis(pd.RangeIndex(100, 100 + len(bars)))
    duplicated = bars.set_axis(pd.Index([bars.index[0]] * len(bars)))
    for indicator in ONE_OF_EACH_KIND:
        expected = batch(indicator, bars)
        np.testing.assert_array_equal(batch(indicator, relabelled), expected, indicator.key)
        np.testing.assert_array_equal(batch(indicator, duplicated), expected, indicator.key)


def test_batch_many_equals_batch_one_by_one(frames: dict[str, pd.DataFrame]) -> None:
    bars = frames["MSFT"]
    indicators = [*REAL_DATA_INDICATORS, Indicator("sma", 10)]  # a repeat is computed once
    values = batch_many(indicators, bars)
    assert set(values) == set(indicators)
    for indicator in indicators:
        np.testing.assert_array_equal(values[indicator], batch(indicator, bars), indicator.key)
    assert batch_many([], bars) == {}


def test_missing_columns_are_named() -> None:
    bars = pd.DataFrame({"open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0]})
    with pytest.raises(ValueError, match="'volume'"):
        batch(Indicator("sma", 5, "volume"), bars)
    with pytest.raises(ValueError, match="'high'"):
        batch(Indicator("atr", 14), bars.drop(columns="high"))
