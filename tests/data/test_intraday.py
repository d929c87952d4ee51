from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.intraday import DayPath, day_seed, synthesize_day

REPO = Path(__file__).resolve().parents[2]


@st.composite
def daily_bars(draw: st.DrawFn) -> tuple[float, float, float, float, float]:
    """A consistent bar: any low, a range up to 30% of it (sometimes none), open and close
    anywhere inside, sometimes exactly on an extreme."""
    low = draw(st.floats(min_value=0.01, max_value=5000.0))
    relative_range = draw(st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=0.3)))
    high = low * (1.0 + relative_range)
    inside = st.one_of(
        st.sampled_from([0.0, 1.0]), st.floats(min_value=0.0, max_value=1.0)
    )
    open_ = min(high, low + draw(inside) * (high - low))
    close = min(high, low + draw(inside) * (high - low))
    volume = draw(
        st.one_of(
            st.just(0.0),
            st.integers(min_value=1, max_value=50).map(float),
            st.floats(min_value=0.0, max_value=2e9),
        )
    )
    return open_, high, low, close, volume


def assert_honours_bar(
    path: DayPath, bar: tuple[float, float, float, float, float], steps: int
) -> None:
    open_, high, low, close, volume = bar
    prices = path.prices
    for array in (path.prices, path.volumes, path.bids, path.asks, path.fractions):
        assert array.shape == (steps + 1,)
    assert prices.dtype == np.float64
    assert path.volumes.dtype == np.int64
    assert prices[0] == open_
    assert prices[-1] == close
    assert abs(prices.max() - high) <= 1e-9
    assert abs(prices.min() - low) <= 1e-9
    assert prices.max() <= high
    assert prices.min() >= low
    assert int(path.volumes.sum()) == round(volume)
    assert (path.volumes >= 0).all()
    assert (path.bids <= prices).all()
    assert (path.asks >= prices).all()
    assert (path.asks - path.bids >= 0.01 - 1e-9).all()
    for quotes in (path.bids, path.asks):
        cents = quotes * 100.0
        assert np.allclose(cents, np.round(cents), rtol=0.0, atol=1e-6)
    assert path.fractions[0] == 0.0
    assert path.fractions[-1] == 1.0
    assert (np.diff(path.fractions) > 0).all()


@settings(max_examples=300, deadline=None)
@given(
    bar=daily_bars(),
    steps=st.integers(min_value=3, max_value=2000),
    seed=st.integers(min_value=-(2**63), max_value=2**64 - 1),
)
def test_path_honours_the_daily_bar(
    bar: tuple[float, float, float, float, float], steps: int, seed: int
) -> None:
    path = synthesize_day(*bar, steps=steps, seed=seed)
    assert_honours_bar(path, bar, steps)
    again = synthesize_day(*bar, steps=steps, seed=seed)
    for mine, theirs in zip(
        (path.prices, path.volumes, path.bids, path.asks),
        (again.prices, again.volumes, again.bids, again.asks),
        strict=True,
    ):
        assert np.array_equal(mine, theirs)


def test_seeds_give_different_paths_and_extremes_at_interior_times() -> None:
    bar = (100.0, 102.5, 98.7, 101.2, 5_000_000.0)
    paths = [synthesize_day(*bar, steps=390, seed=seed) for seed in range(50)]
    assert len({p.prices.tobytes() for p in paths}) == 50
    assert len({p.volumes.tobytes() for p in paths}) == 50
    for path in paths:
        assert 0 < int(np.argmax(path.prices)) < 390
        assert 0 < int(np.argmin(path.prices)) < 390
    # Both orders of the extremes happen.
    high_first = [int(np.argmax(p.prices)) < int(np.argmin(p.prices)) for p in paths]
    assert any(high_first)
    assert not all(high_first)


def test_path_moves_like_a_chart_not_a_straight_line() -> None:
    path = synthesize_day(100.0, 102.0, 98.0, 101.0, 1e6, steps=1560, seed=3)
    moves = np.diff(path.prices)
    assert (moves != 0).mean() > 0.5
    # The noise is a fraction of the range per step, not a jump across it.
    assert np.abs(moves).max() < 0.25 * (102.0 - 98.0)
    cents = path.prices * 100.0
    assert np.isclose(cents, np.round(cents)).mean() > 0.99  # trades print in cents


def test_volume_is_u_shaped() -> None:
    steps = 390
    total = np.zeros(steps + 1)
    for seed in range(200):
        total += synthesize_day(50.0, 51.0, 49.0, 50.5, 1e7, steps=steps, seed=seed).volumes
    per_step = total[1:]
    first_half_hour = per_step[:30].mean()
    last_half_hour = per_step[-30:].mean()
    midday = per_step[150:240].mean()
    assert first_half_hour > 1.5 * midday
    assert last_half_hour > 1.5 * midday
    # The closing print carries the closing auction, the first one the opening auction.
    assert per_step[-1] > 5 * midday
    assert total[0] > 5 * midday


def test_quotes_widen_with_volatility_and_at_the_open() -> None:
    calm = synthesize_day(100.0, 100.5, 99.5, 100.0, 1e6, steps=390, seed=1)
    wild = synthesize_day(100.0, 110.0, 90.0, 100.0, 1e6, steps=390, seed=1)
    assert np.median(wild.asks - wild.bids) > np.median(calm.asks - calm.bids)
    spread = wild.asks - wild.bids
    assert spread[:3].mean() > spread[100:300].mean()


def test_flat_day_without_volume() -> None:
    path = synthesize_day(25.0, 25.0, 25.0, 25.0, 0.0, steps=390, seed=9)
    assert (path.prices == 25.0).all()
    assert (path.volumes == 0).all()
    assert (path.bids < 25.0).all()
    assert (path.asks > 25.0).all()


def test_flat_day_with_volume() -> None:
    path = synthesize_day(25.0, 25.0, 25.0, 25.0, 12_345.0, steps=390, seed=9)
    assert (path.prices == 25.0).all()
    assert path.volumes.sum() == 12_345


def test_arrays_are_read_only() -> None:
    path = synthesize_day(10.0, 11.0, 9.0, 10.5, 1000.0, steps=10, seed=1)
    with pytest.raises(ValueError, match="read-only"):
        path.prices[3] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        path.fractions[0] = 0.5


@pytest.mark.parametrize(
    ("bar", "steps", "message"),
    [
        ((10.0, 11.0, 9.0, 11.5, 100.0), 10, "inconsistent"),
        ((8.0, 11.0, 9.0, 10.0, 100.0), 10, "inconsistent"),
        ((10.0, 9.0, 11.0, 10.0, 100.0), 10, "inconsistent"),
        ((10.0, 11.0, 9.0, 10.0, -1.0), 10, "negative volume"),
        ((10.0, 11.0, 9.0, float("nan"), 100.0), 10, "non-finite"),
        ((0.0, 0.0, 0.0, 0.0, 100.0), 10, "positive"),
        ((10.0, 11.0, 9.0, 10.0, 100.0), 2, "at least 3"),
    ],
)
def test_invalid_bars_are_refused(
    bar: tuple[float, float, float, float, float], steps: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        synthesize_day(*bar, steps=steps, seed=1)


def test_day_seed_is_stable_and_distinct() -> None:
    seed = day_seed(7, "AAPL", date(2019, 3, 1))
    assert seed == day_seed(7, "AAPL", date(2019, 3, 1))
    others = {
        day_seed(8, "AAPL", date(2019, 3, 1)),
        day_seed(7, "MSFT", date(2019, 3, 1)),
        day_seed(7, "AAPL", date(2019, 3, 4)),
    }
    assert seed not in others
    assert len(others) == 3
    assert 0 <= seed < 2**64


def test_day_seed_is_the_same_in_another_process() -> None:
    code = (
        "from datetime import date; from data.intraday import day_seed; "
        "print(day_seed(7, 'AAPL', date(2019, 3, 1)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(result.stdout) == day_seed(7, "AAPL", date(2019, 3, 1))
