"""One session's intraday path, synthesized from its daily bar, for the replay market.

The replay has only daily bars, yet the trader watches a tape that ticks. `synthesize_day`
invents a path that honours everything the bar states (it opens at the open, closes at the
close, touches the high and the low exactly and never leaves them, and trades exactly the
day's volume) and fills the rest with noise shaped like a real session: volatility and
volume heavier at the open and the close, volume heavier where the price moves, quotes
wider in the first minutes.

It runs for every symbol on every replayed day, so it is vectorised numpy throughout and
draws its randomness from SHAKE-128 rather than a numpy Generator: seeding a Generator
costs more than the rest of the function, while one SHAKE digest yields all the bytes a
day needs, identically on every platform and in every process.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# The high and the low need two distinct interior steps to be touched at.
MIN_STEPS = 3

# Standard deviation of the unpinned walk over a whole session, in units of the day's
# range. A Brownian session of daily volatility s has an expected range of about 1.6 s,
# so about 0.6 makes the noise as large as the range implies.
PATH_NOISE_OF_RANGE = 0.6
# A uniform byte in [-128, 127] has this standard deviation.
_INT8_STD = math.sqrt((256.0**2 - 1.0) / 12.0)

# Shares of the day's volume printed in the opening and closing auctions.
OPEN_AUCTION_SHARE = 0.015
CLOSE_AUCTION_SHARE = 0.06

# Half-spread as a fraction of price: a floor for the calmest large caps plus a part that
# grows with the day's volatility (range / close), as market makers quote wider when
# prices move more.
HALF_SPREAD_BASE = 0.2e-4
HALF_SPREAD_PER_VOLATILITY = 0.25e-2
# Added to every half-spread, in cents, so that bid < price < ask survives float rounding
# and the quote is always at least a cent wide.
HALF_SPREAD_MIN_CENTS = 0.05

# Multiplicative volume noise from a random byte b: 0.35 + 1.3 (b / 255)^2, a right-skewed
# factor in [0.35, 1.65] (volume bursts are larger than its lulls are deep).
VOLUME_NOISE_FLOOR = 0.35
VOLUME_NOISE_SPAN = 1.3


@dataclass(frozen=True, slots=True, eq=False)
class DayPath:
    """A session sampled at `steps + 1` instants: index 0 is the 09:30 open, the last
    index the close. Arrays are read-only: they may be shared between consumers."""

    prices: FloatArray  # last trade price at each instant
    volumes: IntArray  # shares traded in the step ending at each instant; [0] = opening auction
    bids: FloatArray
    asks: FloatArray
    fractions: FloatArray  # time of each instant as a fraction of the session, 0..1

    @property
    def steps(self) -> int:
        return len(self.prices) - 1


@lru_cache(maxsize=16)
def _session_shape(
    steps: int,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per-step profiles that depend only on the number of steps: fractions, the scale of
    price noise, the volume weights (auctions included) split into the parts the noise
    byte adds to and multiplies, and the quote widening."""
    fractions = np.linspace(0.0, 1.0, steps + 1)
    # Intraday activity: a U shape, busiest in the first and last half hour (1/13 of a
    # 6.5 hour session is 30 minutes).
    activity = (
        1.0 + 2.5 * np.exp(-fractions / 0.04) + 1.5 * np.exp(-(1.0 - fractions) / 0.05)
    )
    step_activity = activity[1:] / activity[1:].mean()
    noise_scale = np.sqrt(step_activity) / (_INT8_STD * math.sqrt(steps))

    volume_weights = np.empty(steps + 1)
    continuous = 1.0 - OPEN_AUCTION_SHARE - CLOSE_AUCTION_SHARE
    volume_weights[1:] = step_activity * (continuous / steps)
    volume_weights[0] = OPEN_AUCTION_SHARE
    volume_weights[steps] += CLOSE_AUCTION_SHARE

    volume_floor = volume_weights * VOLUME_NOISE_FLOOR
    volume_per_squared_byte = volume_weights * (VOLUME_NOISE_SPAN / 255.0**2)

    # Quotes are about three times wider in the first minutes, while the book fills in.
    quote_widening = 1.0 + 2.0 * np.exp(-fractions / 0.02)
    profiles = (fractions, noise_scale, volume_floor, volume_per_squared_byte, quote_widening)
    for array in profiles:
        array.flags.writeable = False
    return profiles


def _validate(
    open_: float, high: float, low: float, close: float, volume: float, steps: int
) -> None:
    values = (open_, high, low, close, volume)
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"non-finite bar: {values}")
    if low <= 0.0:
        raise ValueError(f"prices must be positive, low is {low}")
    if not low <= min(open_, close) <= max(open_, close) <= high:
        raise ValueError(
            f"inconsistent bar: open {open_} and close {close} not within [{low}, {high}]"
        )
    if volume < 0.0:
        raise ValueError(f"negative volume {volume}")
    if steps < MIN_STEPS:
        raise ValueError(f"steps must be at least {MIN_STEPS}, got {steps}")


def _unit(byte: int) -> float:
    """A byte as a fraction in (0, 1)."""
    return (byte + 0.5) / 256.0


def _arcsine_step(byte: int, interior: int) -> int:
    return 1 + min(int(math.sin(0.5 * math.pi * _unit(byte)) ** 2 * interior), interior - 1)


def _extreme_steps(first: int, second: int, steps: int) -> tuple[int, int]:
    """Two distinct interior steps for the day's extremes. Real highs and lows cluster
    near the open and the close, so the times follow the arcsine law (the law of the time
    of a Brownian motion's maximum)."""
    interior = steps - 1
    one = _arcsine_step(first, interior)
    two = _arcsine_step(second, interior)
    if one == two:
        two = one + 1 if one < interior else one - 1
    return (one, two) if one < two else (two, one)


def synthesize_day(
    open_: float, high: float, low: float, close: float, volume: float, steps: int, seed: int
) -> DayPath:
    """A seeded intraday path of `steps` steps that opens at `open_`, closes at `close`,
    touches `high` and `low` exactly and trades exactly `round(volume)` shares."""
    _validate(open_, high, low, close, volume, steps)
    fractions, noise_scale, volume_floor, volume_per_squared_byte, quote_widening = (
        _session_shape(steps)
    )
    header = 4
    entropy = hashlib.shake_128(seed.to_bytes(16, "little", signed=True)).digest(
        header + 2 * steps + 1
    )
    day_range = high - low

    prices = np.empty(steps + 1)
    if day_range == 0.0:
        prices.fill(open_)
    else:
        t_one, t_two = _extreme_steps(entropy[0], entropy[1], steps)
        # The extreme nearer the open is the likelier to come first.
        high_first = _unit(entropy[2]) * day_range < open_ - low
        first, second = (high, low) if high_first else (low, high)

        # Increments of a walk, then a per-segment drift that pins it to the knots: the
        # piecewise Brownian bridge open -> first extreme -> second extreme -> close.
        step_bytes = np.frombuffer(entropy, dtype=np.int8, count=steps, offset=header)
        increments = step_bytes * (noise_scale * (PATH_NOISE_OF_RANGE * day_range))
        segment_noise = np.add.reduceat(increments, (0, t_one, t_two)).tolist()
        noise_one, noise_two, noise_three = segment_noise
        increments[:t_one] += (first - open_ - noise_one) / t_one
        increments[t_one:t_two] += (second - first - noise_two) / (t_two - t_one)
        increments[t_two:] += (close - second - noise_three) / (steps - t_two)
        prices[0] = 0.0
        np.cumsum(increments, out=prices[1:])

        # Fold the walk back into the band (a reflection at each edge), which keeps its
        # texture where clipping would leave flat shelves at the high and the low.
        # (np.remainder is an order of magnitude slower than this floor-based modulo.)
        prices += open_ - low
        period = 2.0 * day_range
        laps = prices / period
        np.floor(laps, out=laps)
        laps *= period
        prices -= laps
        prices -= day_range
        np.abs(prices, out=prices)
        np.subtract(high, prices, out=prices)
        # Trades print in cents; the clip catches a cent rounded past an off-grid extreme.
        prices *= 100.0
        np.rint(prices, out=prices)
        prices /= 100.0
        np.minimum(prices, high, out=prices)
        np.maximum(prices, low, out=prices)
        prices[t_one] = first
        prices[t_two] = second
    prices[0] = open_
    prices[steps] = close

    total = round(volume)
    if total == 0:
        volumes = np.zeros(steps + 1, dtype=np.int64)
    else:
        noise_bytes = np.frombuffer(entropy, dtype=np.uint8, count=steps + 1, offset=header + steps)
        weights = noise_bytes.astype(np.float64)
        weights *= weights
        weights *= volume_per_squared_byte
        weights += volume_floor
        moves = np.subtract(prices[1:], prices[:-1])
        np.abs(moves, out=moves)
        mean_move = float(np.add.reduce(moves)) / steps
        if mean_move > 0.0:
            moves *= 0.4 / mean_move
            moves += 0.6
            weights[1:] *= moves
        # Largest-remainder rounding, reached from the nearest integers: only the few
        # shares by which those miss the total move, taken from the steps whose remainders
        # rank lowest (or given to those that rank highest), which selects a handful of
        # entries where flooring first would select half of them.
        shares = weights * (total / float(np.add.reduce(weights)))
        rounded = np.rint(shares)
        excess = int(np.add.reduce(rounded)) - total
        if excess:
            shares -= rounded
            if excess > 0:
                rounded[np.argpartition(shares, excess - 1)[:excess]] -= 1.0
            else:
                rounded[np.argpartition(shares, excess)[excess:]] += 1.0
        volumes = rounded.astype(np.int64)

    cents = prices * 100.0
    half_spread = cents * (
        (HALF_SPREAD_BASE + HALF_SPREAD_PER_VOLATILITY * day_range / close) * quote_widening
    )
    half_spread += HALF_SPREAD_MIN_CENTS
    bids = np.floor(cents - half_spread)
    bids /= 100.0
    asks = np.ceil(cents + half_spread)
    asks /= 100.0

    prices.flags.writeable = False
    volumes.flags.writeable = False
    bids.flags.writeable = False
    asks.flags.writeable = False
    return DayPath(prices=prices, volumes=volumes, bids=bids, asks=asks, fractions=fractions)


def day_seed(base_seed: int, symbol: str, day: date) -> int:
    """The seed of one symbol's path on one day: stable across processes and platforms
    (Python's own str hash is salted per process), and independent of which other symbols
    or days are replayed."""
    key = f"{base_seed}:{symbol}:{day.isoformat()}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
