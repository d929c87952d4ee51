"""Synthetic daily bars for any symbol, for the "sim" market.

Every symbol is a random walk in log price: a market factor shared by all symbols (so a
watchlist moves together, as real ones do), the symbol's own noise, and Poisson jumps
(crashes for the market, earnings-like gaps for a symbol). Volatility clusters through a
slowly wandering market regime. A symbol's character (beta, volatility, drift, price level,
typical volume) comes from its name alone, so AAPL is the same kind of stock whatever the
seed; the seed picks the path.

The noise of a day is a hash of (seed, stream, date) rather than the next draw of a
generator, so a day's value never depends on which range was asked for or on which other
symbols were generated first. Prices accumulate from a fixed epoch, which makes a
(symbol, date) bar the same in every request that covers it.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.clock import ExchangeCalendar
from data.bundle import daily_bars_frame, empty_daily_bars

FloatArray = npt.NDArray[np.float64]
UIntArray = npt.NDArray[np.uint64]

EPOCH = date(2015, 1, 2)
TRADING_DAYS_PER_YEAR = 252

# The market factor: daily log-return drift and volatility, and its crash-like jumps.
MARKET_DRIFT = 0.07 / TRADING_DAYS_PER_YEAR
MARKET_VOLATILITY = 0.011
MARKET_JUMP_RATE = 0.008  # per session: about two a year
MARKET_JUMP_MEAN = -0.025
MARKET_JUMP_STD = 0.025
# Volatility regime: exp(REGIME_STRENGTH * x), x an exponentially weighted average of
# daily shocks with this half-life, rescaled to unit variance.
REGIME_HALF_LIFE = 40
REGIME_STRENGTH = 0.4
REGIME_WARM_UP_DAYS = 400  # calendar days of shocks before the epoch, so 2015 has regimes
# The share of a day's diffusive return that happens overnight, before the open.
OVERNIGHT_SHARE = 0.3
# How far high and low reach beyond the body of the bar, in daily volatilities.
WICK_SCALE = 0.5
MIN_PRICE = 0.01
# Generated frames kept for repeat requests. Consumers that stream a symbol keep their own
# arrays, so an unbounded cache would hold every symbol ever asked for twice (about 70 KB
# each: tens of MB for a 500-symbol synthetic universe); regenerating one takes a few ms.
FRAME_CACHE_SIZE = 64


def _key(*parts: object) -> int:
    """A 64-bit key for a noise stream; stable across processes, unlike hash()."""
    text = ":".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_ONE = np.uint64(0xBF58476D1CE4E5B9)
_MIX_TWO = np.uint64(0x94D049BB133111EB)


def _uniforms(key: int, days: UIntArray) -> FloatArray:
    """One uniform in (0, 1) per day: the SplitMix64 finalizer of (key, day), a counter-
    based generator, so each value depends on its key and day only."""
    x = days * _GOLDEN + np.uint64(key)
    x ^= x >> np.uint64(30)
    x *= _MIX_ONE
    x ^= x >> np.uint64(27)
    x *= _MIX_TWO
    x ^= x >> np.uint64(31)
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def _normals(key: int, days: UIntArray) -> FloatArray:
    """Standard normals by Box-Muller from two keyed uniform streams."""
    radius = np.sqrt(-2.0 * np.log(_uniforms(key, days)))
    return radius * np.cos(2.0 * math.pi * _uniforms(key ^ 0x5DEECE66D, days))


def _jumps(key: int, days: UIntArray, rate: float, mean: float, std: float) -> FloatArray:
    """Compound Poisson jumps per day: N ~ Poisson(rate) jumps, each N(mean, std), so a
    day's total is N(n mean, sqrt(n) std). Counts past two are too rare to bother with."""
    u = _uniforms(key, days)
    p_none = math.exp(-rate)
    p_at_most_one = p_none * (1.0 + rate)
    count = (u > p_none).astype(np.float64) + (u > p_at_most_one)
    return count * mean + np.sqrt(count) * std * _normals(key ^ 0x2545F491, days)


def _unit_interval(key: int, low: float, high: float) -> float:
    return low + (high - low) * ((key >> 11) + 0.5) * 2.0**-53


class _SymbolCharacter:
    """What kind of stock a symbol is, from its name."""

    def __init__(self, symbol: str) -> None:
        self.beta = _unit_interval(_key("beta", symbol), 0.5, 1.6)
        annual_volatility = _unit_interval(_key("volatility", symbol), 0.18, 0.6)
        systematic = self.beta * MARKET_VOLATILITY
        # A stock is at least somewhat more volatile than its share of the market's moves.
        self.daily_volatility = max(
            annual_volatility / math.sqrt(TRADING_DAYS_PER_YEAR), 1.2 * systematic
        )
        self.drift = _unit_interval(_key("drift", symbol), -0.05, 0.2) / TRADING_DAYS_PER_YEAR
        self.start_price = math.exp(
            _unit_interval(_key("price", symbol), math.log(10.0), math.log(500.0))
        )
        self.typical_volume = math.exp(
            _unit_interval(_key("volume", symbol), math.log(3e5), math.log(3e7))
        )
        self.jump_rate = _unit_interval(_key("jump rate", symbol), 0.005, 0.02)
        self.idiosyncratic_volatility = math.sqrt(self.daily_volatility**2 - systematic**2)


class SyntheticDailyBars:
    """Daily bars for any symbol on the sessions of `calendar`, from `EPOCH` on."""

    def __init__(self, seed: int = 42, calendar: ExchangeCalendar | None = None) -> None:
        self.seed = seed
        self.calendar = calendar or ExchangeCalendar()
        self._lock = threading.Lock()
        self._sessions: list[date] = []
        self._market: tuple[FloatArray, FloatArray] | None = None  # returns, regime
        self._frames: OrderedDict[str, pd.DataFrame] = OrderedDict()

    def load(self, symbol: str, start: date, end: date) -> pd.DataFrame:
        """Bars of the sessions from start to end inclusive."""
        if start < EPOCH:
            raise ValueError(f"synthetic bars begin on {EPOCH}, not {start}")
        if end < start:
            return empty_daily_bars()
        with self._lock:
            frame = self._frames.get(symbol)
            if frame is None or frame.index[-1].date() < self.calendar.previous_session(
                end + timedelta(days=1)
            ):
                frame = self._generate(symbol, end)
                self._frames[symbol] = frame
                if len(self._frames) > FRAME_CACHE_SIZE:
                    self._frames.popitem(last=False)
            else:
                self._frames.move_to_end(symbol)
        return frame.loc[pd.Timestamp(start) : pd.Timestamp(end)]

    def _sessions_through(self, end: date) -> list[date]:
        if not self._sessions or self._sessions[-1] < self.calendar.previous_session(
            end + timedelta(days=1)
        ):
            self._sessions = self.calendar.sessions(
                EPOCH - timedelta(days=REGIME_WARM_UP_DAYS), end
            )
            self._market = None
        return self._sessions

    def _market_factor(self, days: UIntArray) -> tuple[FloatArray, FloatArray]:
        """Market log returns and volatility regime of every session since the warm-up."""
        if self._market is None or len(self._market[0]) != len(days):
            decay = 0.5 ** (1.0 / REGIME_HALF_LIFE)
            kernel = decay ** np.arange(8 * REGIME_HALF_LIFE)
            kernel /= math.sqrt(float(np.sum(kernel**2)))
            shocks = _normals(_key(self.seed, "regime"), days)
            regime = np.exp(REGIME_STRENGTH * np.convolve(shocks, kernel)[: len(days)])
            returns = (
                MARKET_DRIFT
                + MARKET_VOLATILITY * regime * _normals(_key(self.seed, "market"), days)
                + _jumps(
                    _key(self.seed, "market jumps"),
                    days,
                    MARKET_JUMP_RATE,
                    MARKET_JUMP_MEAN,
                    MARKET_JUMP_STD,
                )
            )
            self._market = (returns, regime)
        return self._market

    def _generate(self, symbol: str, end: date) -> pd.DataFrame:
        sessions = self._sessions_through(end)
        days = np.fromiter((d.toordinal() for d in sessions), dtype=np.uint64, count=len(sessions))
        market, regime = self._market_factor(days)
        first = next(i for i, d in enumerate(sessions) if d >= EPOCH)
        sessions, days = sessions[first:], days[first:]
        market, regime = market[first:], regime[first:]

        character = _SymbolCharacter(symbol)

        def noise(stream: str) -> FloatArray:
            return _normals(_key(self.seed, symbol, stream), days)

        # Idiosyncratic volatility clusters with the market's, at half strength.
        volatility = character.idiosyncratic_volatility * (0.5 + 0.5 * regime)
        diffusive = character.drift + character.beta * market + volatility * noise("returns")
        jumps = _jumps(
            _key(self.seed, symbol, "jumps"),
            days,
            character.jump_rate,
            0.0,
            4.0 * character.daily_volatility,
        )
        closes = character.start_price * np.exp(np.cumsum(diffusive + jumps))

        # Jumps are news, which breaks outside trading hours: they open as gaps.
        day_volatility = character.daily_volatility * regime
        overnight = (
            OVERNIGHT_SHARE * diffusive + jumps + 0.2 * day_volatility * noise("overnight")
        )
        previous_closes = np.concatenate(([character.start_price], closes[:-1]))
        opens = previous_closes * np.exp(overnight)

        opens = np.maximum(np.round(opens, 2), MIN_PRICE)
        closes = np.maximum(np.round(closes, 2), MIN_PRICE)
        body_high = np.maximum(opens, closes)
        body_low = np.minimum(opens, closes)
        highs = body_high * np.exp(WICK_SCALE * day_volatility * np.abs(noise("high")))
        lows = body_low * np.exp(-WICK_SCALE * day_volatility * np.abs(noise("low")))
        highs = np.maximum(np.round(highs, 2), body_high)
        lows = np.maximum(np.minimum(np.round(lows, 2), body_low), MIN_PRICE)

        # Volume rises with the size of the day's move and with the regime.
        move = np.abs(np.log(closes / previous_closes)) / character.daily_volatility
        volumes = character.typical_volume * (
            np.exp(0.3 * noise("volume")) * (0.6 + 0.4 * move) * np.sqrt(regime)
        )
        volumes = np.maximum(np.round(volumes), 1.0)

        values = np.column_stack((opens, highs, lows, closes, closes, volumes))
        return daily_bars_frame(np.array(sessions, dtype="datetime64[ns]"), values)
