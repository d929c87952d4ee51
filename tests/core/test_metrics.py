"""Round trips from fills and the metrics of an equity curve, checked against arithmetic
written out in each test (and against pandas for the statistics)."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.metrics import (
    METRIC_LABELS,
    Metrics,
    RoundTrip,
    compute_metrics,
    format_metric,
    round_trips,
)
from core.model import Fill, Side

D = Decimal
SQRT_252 = math.sqrt(252)


def fill(ts: int, side: Side, quantity: str, price: str, commission: str = "0",
         symbol: str = "AAPL") -> Fill:
    return Fill(f"f{ts}", f"o{ts}", symbol, side, D(quantity), D(price), D(commission), ts,
                "paper")


def trip(pnl: str, quantity: str = "1", entry_price: str = "100") -> RoundTrip:
    """A trip for the trade statistics, where only pnl, quantity and entry price count."""
    return RoundTrip("AAPL", "long", D(quantity), 1, D(entry_price), 2, D(entry_price),
                     D(0), D(pnl))


def calendar(*days: date) -> list[date]:
    return list(days)


def curve(values: list[float]) -> npt.NDArray[np.float64]:
    return np.array(values, dtype=np.float64)


def flags(values: list[bool]) -> npt.NDArray[np.bool_]:
    return np.array(values, dtype=np.bool_)


def days_from(first: date, count: int) -> list[date]:
    return [first + timedelta(days=offset) for offset in range(count)]


# --- round trips ---------------------------------------------------------------------


def test_simple_long() -> None:
    trips = round_trips([fill(1, Side.BUY, "100", "10", "1"),
                         fill(2, Side.SELL, "100", "12", "1")])
    assert trips == [RoundTrip("AAPL", "long", D(100), 1, D(10), 2, D(12), D(2),
                               D(1200) - D(1000) - D(2))]
    assert trips[0].return_pct == pytest.approx(198 / 1000 * 100)  # 19.8


def test_simple_short() -> None:
    trips = round_trips([fill(1, Side.SELL, "50", "20", "1"),
                         fill(2, Side.BUY, "50", "18", "1")])
    # Sold for 1000, bought back for 900, 2 of commission.
    assert trips == [RoundTrip("AAPL", "short", D(50), 1, D(20), 2, D(18), D(2), D(98))]
    assert trips[0].return_pct == pytest.approx(98 / 1000 * 100)  # 9.8


def test_a_losing_short() -> None:
    (short,) = round_trips([fill(1, Side.SELL, "10", "20"), fill(2, Side.BUY, "10", "25")])
    assert short.pnl == D(200) - D(250)
    assert short.return_pct == pytest.approx(-50 / 200 * 100)


def test_scale_in_averages_the_entry() -> None:
    (trade,) = round_trips([fill(1, Side.BUY, "100", "10", "1"),
                            fill(2, Side.BUY, "100", "12", "1"),
                            fill(3, Side.SELL, "200", "13", "2")])
    # Entry (100*10 + 100*12) / 200 = 11; pnl 200*13 - 2200 - 4 = 396.
    assert (trade.quantity, trade.entry_price, trade.exit_price) == (D(200), D(11), D(13))
    assert (trade.entry_ns, trade.exit_ns, trade.commission, trade.pnl) == (1, 3, D(4), D(396))


def test_partial_exits_average_the_exit() -> None:
    (trade,) = round_trips([fill(1, Side.BUY, "300", "10", "3"),
                            fill(2, Side.SELL, "100", "11", "1"),
                            fill(3, Side.SELL, "200", "14", "2")])
    # Exit (100*11 + 200*14) / 300 = 3900 / 300 = 13; pnl 3900 - 3000 - 6 = 894.
    assert (trade.quantity, trade.entry_price, trade.exit_price) == (D(300), D(10), D(13))
    assert (trade.exit_ns, trade.commission, trade.pnl) == (3, D(6), D(894))


def test_scaling_in_and_out_counts_everything_opened() -> None:
    (trade,) = round_trips([fill(1, Side.BUY, "100", "10"),
                            fill(2, Side.SELL, "50", "12"),
                            fill(3, Side.BUY, "50", "11"),
                            fill(4, Side.SELL, "100", "13")])
    # The position never exceeds 100, but 150 were opened: 100@10 and 50@11 (1550),
    # and closed: 50@12 and 100@13 (1900).
    assert trade.quantity == D(150)
    assert trade.entry_price == D(1550) / D(150)
    assert trade.exit_price == D(1900) / D(150)
    assert trade.pnl == D(1900) - D(1550)


def test_a_flip_closes_the_trip_and_opens_the_next_with_the_commission_split() -> None:
    trips = round_trips([fill(1, Side.BUY, "100", "10", "1"),
                         fill(2, Side.SELL, "150", "12", "3"),  # 100 close, 50 open short
                         fill(3, Side.BUY, "50", "11", "0.5")])
    long, short = trips
    # The flip's 3 of commission: 3 * 100/150 = 2 to the long, 1 to the short.
    assert long == RoundTrip("AAPL", "long", D(100), 1, D(10), 2, D(12), D(1) + D(2),
                             D(1200) - D(1000) - D(3))
    assert short == RoundTrip("AAPL", "short", D(50), 2, D(12), 3, D(11), D(1) + D("0.5"),
                              D(600) - D(550) - D("1.5"))


def test_an_uneven_commission_split_still_adds_up_exactly() -> None:
    long, short = round_trips([fill(1, Side.BUY, "100", "10", "0"),
                               fill(2, Side.SELL, "150", "10", "1"),  # 1 * 100/150 = 2/3
                               fill(3, Side.BUY, "50", "10", "0")])
    assert long.commission == D("0.666666666667")  # rounded far below a cent
    assert long.commission + short.commission == D(1)
    assert long.pnl + short.pnl == D(-1)


def test_symbols_interleaved_are_separate_trips_in_closing_order() -> None:
    trips = round_trips([fill(1, Side.BUY, "10", "100", symbol="AAPL"),
                         fill(2, Side.SELL, "5", "200", symbol="MSFT"),
                         fill(3, Side.BUY, "10", "50", symbol="JPM"),
                         fill(4, Side.SELL, "10", "110", symbol="AAPL"),
                         fill(5, Side.BUY, "5", "190", symbol="MSFT")])
    # JPM is still open: no trip.
    assert [(t.symbol, t.direction, t.pnl) for t in trips] == [
        ("AAPL", "long", D(10) * (D(110) - D(100))),
        ("MSFT", "short", D(5) * (D(200) - D(190))),
    ]


def test_a_position_open_at_the_end_is_not_a_trip() -> None:
    assert round_trips([fill(1, Side.BUY, "100", "10"), fill(2, Side.SELL, "50", "11")]) == []
    trips = round_trips([fill(1, Side.BUY, "100", "10"), fill(2, Side.SELL, "100", "11"),
                         fill(3, Side.BUY, "100", "12")])
    assert [t.exit_ns for t in trips] == [2]
    # A flip at the end leaves the new side open: only the closed side is a trip.
    flipped = round_trips([fill(1, Side.BUY, "100", "10"), fill(2, Side.SELL, "300", "11")])
    assert [(t.direction, t.quantity) for t in flipped] == [("long", D(100))]


def test_fills_are_taken_in_time_order_and_empty_ones_skipped() -> None:
    trips = round_trips([fill(2, Side.SELL, "100", "12"), fill(1, Side.BUY, "100", "10"),
                         fill(3, Side.SELL, "0", "99")])
    assert [(t.direction, t.entry_ns, t.exit_ns, t.pnl) for t in trips] == [
        ("long", 1, 2, D(200))]
    assert round_trips([]) == []


def test_return_pct_without_notional_is_nan() -> None:
    assert math.isnan(trip("5", entry_price="0").return_pct)


# A round trip's P&L is the cash it moved less its commissions, so over positions that
# all end flat the trips' P&L is the realized cash change of every fill.
fill_steps = st.lists(
    st.tuples(st.sampled_from(["AAA", "BBB", "CCC"]), st.sampled_from([Side.BUY, Side.SELL]),
              st.integers(1, 500), st.integers(100, 50_000), st.integers(0, 999)),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(fill_steps)
def test_trip_pnl_sums_to_the_realized_cash_change(
        steps: list[tuple[str, Side, int, int, int]]) -> None:
    fills = [Fill(f"f{n}", f"o{n}", symbol, side, D(quantity), D(cents) / 100,
                  D(commission) / 100, n)
             for n, (symbol, side, quantity, cents, commission) in enumerate(steps)]
    positions: dict[str, Decimal] = {}
    for each_fill in fills:
        positions[each_fill.symbol] = (positions.get(each_fill.symbol, D(0))
                                       + each_fill.signed_quantity)
    for symbol, position in positions.items():  # flatten what is left, with a commission
        if position:
            side = Side.SELL if position > 0 else Side.BUY
            fills.append(Fill(f"x{symbol}", "", symbol, side, abs(position), D("42.17"),
                              D("0.37"), len(fills)))
    trips = round_trips(fills)
    cash = sum((f.quantity * f.price * (1 if f.side == Side.SELL else -1) - f.commission
                for f in fills), D(0))
    assert sum((t.pnl for t in trips), D(0)) == cash
    assert sum((t.commission for t in trips), D(0)) == sum((f.commission for f in fills),
                                                           D(0))
    for each in trips:
        sign = 1 if each.direction == "long" else -1
        assert each.quantity > 0
        assert each.entry_ns <= each.exit_ns
        gross = sign * (each.exit_price - each.entry_price) * each.quantity
        assert abs(gross - each.commission - each.pnl) < D("1e-15")  # averages round


# --- metrics -------------------------------------------------------------------------

# Returns +10%, -10%, +10%, +10%: 100 -> 110 -> 99 -> 108.9 -> 119.79.
FIVE_DAYS = days_from(date(2024, 1, 1), 5)
FIVE_CLOSES = [100.0, 110.0, 99.0, 108.9, 119.79]


def test_return_volatility_sharpe_and_sortino_by_hand() -> None:
    metrics = compute_metrics(FIVE_DAYS, curve(FIVE_CLOSES), flags([False] * 5), [])
    assert metrics.start_equity == 100.0
    assert metrics.end_equity == 119.79
    assert metrics.total_return_pct == pytest.approx(19.79)
    # Mean 0.05; deviations .05, -.15, .05, .05; squares sum to .03; / (4 - 1) = .01.
    mean, stdev = 0.05, 0.1
    assert metrics.volatility_pct == pytest.approx(stdev * SQRT_252 * 100)  # 158.7%
    assert metrics.sharpe == pytest.approx(mean / stdev * SQRT_252)  # 7.94
    # Downside: min(r, 0) = 0, -.1, 0, 0; sqrt(.01 / 4) = .05.
    assert metrics.sortino == pytest.approx(mean / 0.05 * SQRT_252)  # 15.87
    # Peak 110 (2 Jan) to 99: 11 / 110 = 10%; back above 110 on 5 Jan: 3 days.
    assert metrics.max_drawdown_pct == pytest.approx(10.0)
    assert metrics.max_drawdown_days == 3


def test_risk_free_rate_is_taken_from_each_day() -> None:
    metrics = compute_metrics(FIVE_DAYS, curve(FIVE_CLOSES), flags([False] * 5), [],
                              risk_free_rate_pct=5.0)
    daily = 1.05 ** (1 / 252) - 1  # about 0.000194
    assert metrics.sharpe == pytest.approx((0.05 - daily) / 0.1 * SQRT_252)
    assert metrics.sortino == pytest.approx((0.05 - daily) / 0.05 * SQRT_252)
    assert metrics.volatility_pct == pytest.approx(0.1 * SQRT_252 * 100)  # unchanged


def test_periods_per_year_scales_the_annualised_figures() -> None:
    metrics = compute_metrics(FIVE_DAYS, curve(FIVE_CLOSES), flags([False] * 5), [],
                              periods_per_year=12)
    assert metrics.volatility_pct == pytest.approx(0.1 * math.sqrt(12) * 100)
    assert metrics.sharpe == pytest.approx(0.05 / 0.1 * math.sqrt(12))


def test_cagr_over_calendar_days() -> None:
    # 2020 is a leap year: 1 Jan 2020 to 1 Jan 2022 is 366 + 365 = 731 days.
    metrics = compute_metrics(calendar(date(2020, 1, 1), date(2022, 1, 1)), curve([100, 121]),
                              flags([True, True]), [])
    assert metrics.total_return_pct == pytest.approx(21.0)
    assert metrics.cagr_pct == pytest.approx((1.21 ** (365.25 / 731) - 1) * 100)  # ~9.99%
    losing = compute_metrics(calendar(date(2021, 1, 1), date(2022, 1, 1)), curve([100, 80]),
                             flags([True, True]), [])
    assert losing.cagr_pct == pytest.approx((0.8 ** (365.25 / 365) - 1) * 100)  # ~-20.0%


def test_drawdown_duration_runs_from_the_peak_to_recovery_or_the_end() -> None:
    days = calendar(date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 5), date(2024, 1, 10),
                    date(2024, 1, 20), date(2024, 1, 31))
    equity = curve([100, 120, 110, 125, 90, 100])
    metrics = compute_metrics(days, equity, flags([True] * 6), [])
    # 120 (2 Jan) -> 110 -> 125 on 10 Jan: 8 days. 125 (10 Jan) -> 90 -> 100, not back by
    # 31 Jan: 21 days, the longer. Deepest: (125 - 90) / 125 = 28%.
    assert metrics.max_drawdown_days == 21
    assert metrics.max_drawdown_pct == pytest.approx(28.0)


def test_back_at_the_peak_ends_a_drawdown() -> None:
    days = days_from(date(2024, 3, 1), 6)
    # 100 on 1 Mar; below on 2-3 Mar; exactly 100 again on 4 Mar (3 days); below on 5-6 Mar
    # from the new peak date of 4 Mar: 2 days to the end.
    metrics = compute_metrics(days, curve([100, 90, 95, 100, 99, 98]), flags([True] * 6), [])
    assert metrics.max_drawdown_days == 3
    assert metrics.max_drawdown_pct == pytest.approx(10.0)


def test_trade_statistics_by_hand() -> None:
    trips = [trip("100", "10", "100"),  # 100 / 1000 = +10%
             trip("-50", "10", "50"),  # -50 / 500 = -10%
             trip("30", "1", "300"),  # 30 / 300 = +10%
             trip("0", "1", "10")]  # 0%
    metrics = compute_metrics(FIVE_DAYS, curve(FIVE_CLOSES),
                              flags([False, True, True, False, True]), trips)
    assert metrics.trades == 4
    assert metrics.win_rate_pct == pytest.approx(2 / 4 * 100)  # a flat trip is no win
    assert metrics.profit_factor == pytest.approx((100 + 30) / 50)  # 2.6
    assert metrics.average_trade == pytest.approx((100 - 50 + 30 + 0) / 4)  # 20
    assert metrics.average_trade_pct == pytest.approx((10 - 10 + 10 + 0) / 4)  # 2.5
    assert metrics.exposure_pct == pytest.approx(3 / 5 * 100)


def test_trade_statistics_without_losses_or_trips() -> None:
    def metrics_of(trips: list[RoundTrip]) -> Metrics:
        return compute_metrics(FIVE_DAYS, curve(FIVE_CLOSES), flags([False] * 5), trips)

    assert metrics_of([trip("10"), trip("0")]).profit_factor == math.inf
    assert math.isnan(metrics_of([trip("0")]).profit_factor)  # 0 / 0
    none = metrics_of([])
    assert none.trades == 0
    for value in (none.win_rate_pct, none.profit_factor, none.average_trade,
                  none.average_trade_pct):
        assert math.isnan(value)


def test_no_days_at_all() -> None:
    metrics = compute_metrics([], curve([]), flags([]), [])
    assert math.isnan(metrics.start_equity)
    assert math.isnan(metrics.total_return_pct)
    assert metrics.cagr_pct == 0.0
    assert math.isnan(metrics.volatility_pct)
    assert math.isnan(metrics.sharpe)
    assert math.isnan(metrics.sortino)
    assert (metrics.max_drawdown_pct, metrics.max_drawdown_days) == (0.0, 0)
    assert math.isnan(metrics.exposure_pct)


def test_one_day() -> None:
    metrics = compute_metrics(calendar(date(2024, 1, 2)), curve([1000]), flags([True]), [])
    assert (metrics.start_equity, metrics.end_equity) == (1000.0, 1000.0)
    assert (metrics.total_return_pct, metrics.cagr_pct) == (0.0, 0.0)
    assert math.isnan(metrics.volatility_pct)  # no return to spread
    assert math.isnan(metrics.sharpe)
    assert math.isnan(metrics.sortino)
    assert (metrics.max_drawdown_pct, metrics.max_drawdown_days) == (0.0, 0)
    assert metrics.exposure_pct == 100.0


def test_flat_equity() -> None:
    metrics = compute_metrics(days_from(date(2024, 1, 1), 10), curve([500] * 10),
                              flags([False] * 10), [])
    assert (metrics.total_return_pct, metrics.cagr_pct, metrics.volatility_pct) == (0, 0, 0)
    assert math.isnan(metrics.sharpe)
    assert math.isnan(metrics.sortino)
    assert (metrics.max_drawdown_pct, metrics.max_drawdown_days) == (0.0, 0)
    assert metrics.exposure_pct == 0.0


def test_steady_growth_has_no_volatility_rather_than_rounding_noise() -> None:
    equity = curve([100 * 1.01**day for day in range(30)])
    metrics = compute_metrics(days_from(date(2024, 1, 1), 30), equity, flags([True] * 30), [])
    assert metrics.volatility_pct == 0.0
    assert math.isnan(metrics.sharpe)  # not 1e15
    assert math.isnan(metrics.sortino)  # no down day


def test_equity_reaching_zero() -> None:
    days = days_from(date(2024, 1, 1), 4)
    metrics = compute_metrics(days, curve([100, 50, 0, 0]), flags([True] * 4), [])
    # Returns -50% and -100%; the day after ruin has none (0 -> 0 is no percentage).
    assert metrics.total_return_pct == -100.0
    assert metrics.cagr_pct == -100.0
    assert metrics.max_drawdown_pct == 100.0
    assert metrics.max_drawdown_days == 3
    mean, stdev = -0.75, math.sqrt((0.25**2 + 0.25**2) / 1)
    assert metrics.volatility_pct == pytest.approx(stdev * SQRT_252 * 100)
    assert metrics.sharpe == pytest.approx(mean / stdev * SQRT_252)
    downside = math.sqrt((0.5**2 + 1.0**2) / 2)
    assert metrics.sortino == pytest.approx(mean / downside * SQRT_252)
    # Back from zero: 0 -> 50 has no return either, so only -100% is left.
    revived = compute_metrics(days[:3], curve([100, 0, 50]), flags([True] * 3), [])
    assert math.isnan(revived.volatility_pct)
    assert revived.sortino == pytest.approx(-1.0 / 1.0 * SQRT_252)


def test_starting_from_nothing_and_a_huge_short_gain_do_not_raise() -> None:
    broke = compute_metrics(days_from(date(2024, 1, 1), 3), curve([0, 10, 5]),
                            flags([True] * 3), [])
    assert math.isnan(broke.total_return_pct)
    assert math.isnan(broke.cagr_pct)
    assert broke.max_drawdown_pct == pytest.approx(50.0)  # from the first positive peak
    rocket = compute_metrics(days_from(date(2024, 1, 1), 2), curve([1, 1e10]),
                             flags([True] * 2), [])
    assert rocket.cagr_pct == math.inf  # 1e10 ** 365.25 overflows to inf


def test_days_as_a_datetime64_array() -> None:
    days = np.array(["2020-01-01", "2022-01-01"], dtype="datetime64[D]")
    metrics = compute_metrics(days, curve([100, 121]), flags([True, True]), [])
    assert metrics.cagr_pct == pytest.approx((1.21 ** (365.25 / 731) - 1) * 100)


def test_mismatched_or_unordered_inputs_are_a_bug() -> None:
    with pytest.raises(ValueError, match="same length"):
        compute_metrics(FIVE_DAYS, curve(FIVE_CLOSES[:4]), flags([True] * 5), [])
    with pytest.raises(ValueError, match="ascending"):
        compute_metrics(list(reversed(FIVE_DAYS)), curve(FIVE_CLOSES), flags([True] * 5), [])


@pytest.mark.parametrize("risk_free_rate_pct", [0.0, 3.0])
def test_sharpe_and_volatility_agree_with_pandas(risk_free_rate_pct: float) -> None:
    generator = np.random.default_rng(20240101)
    equity = np.asarray(100_000 * np.cumprod(1 + generator.normal(0.0004, 0.012, 750)),
                        dtype=np.float64)
    days = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-01-01") + 750)
    metrics = compute_metrics(days, equity, np.ones(750, dtype=np.bool_), [],
                              risk_free_rate_pct=risk_free_rate_pct)
    returns = pd.Series(equity).pct_change().dropna()
    excess = returns - ((1 + risk_free_rate_pct / 100) ** (1 / 252) - 1)
    assert metrics.volatility_pct == pytest.approx(returns.std() * SQRT_252 * 100, rel=1e-9)
    assert metrics.sharpe == pytest.approx(excess.mean() / excess.std() * SQRT_252, rel=1e-9)
    downside = math.sqrt((returns.clip(upper=0) ** 2).mean())
    assert metrics.sortino == pytest.approx(excess.mean() / downside * SQRT_252, rel=1e-9)
    drawdown = (1 - pd.Series(equity) / pd.Series(equity).cummax()).max() * 100
    assert metrics.max_drawdown_pct == pytest.approx(drawdown, rel=1e-9)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=1e-6, max_value=1e12), max_size=60))
def test_max_drawdown_of_positive_equity_is_a_percentage(values: list[float]) -> None:
    days = days_from(date(2024, 1, 1), len(values))
    metrics = compute_metrics(days, curve(values), flags([True] * len(values)), [])
    assert 0.0 <= metrics.max_drawdown_pct <= 100.0
    assert 0 <= metrics.max_drawdown_days <= max(len(values) - 1, 0)


# --- storage and display -------------------------------------------------------------


def same(left: dict[str, float | int], right: dict[str, float | int]) -> bool:
    """Equal, NaN matching NaN."""
    return left.keys() == right.keys() and all(
        left[key] == right[key] or (math.isnan(left[key]) and math.isnan(right[key]))
        for key in left)


def test_metrics_round_trip_through_json() -> None:
    trips = [trip("10"), trip("5")]  # no losses: profit factor inf
    metrics = compute_metrics(calendar(date(2024, 1, 1)), curve([100]), flags([False]), trips)
    stored = json.loads(json.dumps(metrics.as_dict()))
    restored = Metrics.from_dict({**stored, "added_later": 1})
    assert same(restored.as_dict(), metrics.as_dict())
    assert restored.profit_factor == math.inf
    assert math.isnan(restored.sharpe)
    assert isinstance(restored.trades, int)
    assert isinstance(restored.max_drawdown_days, int)
    assert list(metrics.as_dict()) == list(METRIC_LABELS)  # every field, in display order
    with pytest.raises(KeyError):
        Metrics.from_dict({"sharpe": 1.0})


def test_labels() -> None:
    assert METRIC_LABELS["sharpe"] == "Sharpe ratio"
    assert list(METRIC_LABELS)[:3] == ["start_equity", "end_equity", "total_return_pct"]


@pytest.mark.parametrize(("name", "value", "text"), [
    ("total_return_pct", 12.3449, "12.34%"),
    ("max_drawdown_pct", 7.5, "7.50%"),
    ("cagr_pct", -3.2, "-3.20%"),
    ("cagr_pct", 12345.678, "12,345.68%"),
    ("sharpe", 1.2345, "1.23"),
    ("profit_factor", math.inf, "inf"),
    ("sortino", -math.inf, "-inf"),
    ("start_equity", 1234.5678, "$1,234.57"),
    ("average_trade", -1234.5, "-$1,234.50"),
    ("trades", 1234, "1,234"),
    ("max_drawdown_days", 17, "17"),
    ("win_rate_pct", math.nan, "n/a"),
])
def test_format_metric(name: str, value: float, text: str) -> None:
    assert format_metric(name, value) == text


def test_format_metric_knows_every_field() -> None:
    for name in METRIC_LABELS:
        assert format_metric(name, 1) != ""
    with pytest.raises(KeyError):
        format_metric("alpha", 1.0)
