"""The performance of a backtest: round trips built from fills, and the metrics of an
equity curve.

A round trip is one trade per symbol: it opens when the position leaves zero and
closes when it returns there. Adding to the position or taking part of it off belongs
to the same trip, so its entry and exit prices are quantity-weighted averages and its
quantity is everything opened in it. A fill that goes through zero closes the trip and
opens the next one in the other direction with the rest, and its commission is split
between the two by quantity. Because a trip always ends flat, its P&L is simply the cash
it moved (sells less buys) less its commissions: no lot matching is needed, and FIFO or
average cost give the same answer for a whole trip. Money stays Decimal, as in
`core.model`.

The metrics are float: they are statistics of an equity curve (one close per day), not
amounts anyone books. Every edge case (no days, one day, a flat curve, equity reaching
zero) gives a number, NaN where a ratio has nothing to divide by, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from core.model import Fill, by_fields

ZERO = Decimal(0)
NAN = float("nan")

FloatArray = npt.NDArray[np.float64]
DayArray = npt.NDArray[np.datetime64]

# A commission split across a flip is rounded to this when the pro rata share does not
# come out exact (1/3 of a dollar): far below a cent, yet few enough digits that the two
# shares still add back to the commission exactly in Decimal's 28-digit arithmetic.
COMMISSION_SHARE_QUANTUM = Decimal("1e-12")

# A standard deviation this small relative to the values is rounding noise (a curve that
# grows by exactly 1% a day has returns that differ in the 17th digit), not risk: it is
# treated as zero so a Sharpe ratio does not come out as 1e15.
RELATIVE_NOISE = 1e-12


@dataclass(slots=True, unsafe_hash=True)
class RoundTrip:
    """One trade: a position opened and closed (FIFO lots per symbol). (Its `__init__`
    is written out, with `Final` fields for `frozen=True`: see `core.model`.)"""

    symbol: Final[str]
    direction: Final[str]  # "long" or "short"
    quantity: Final[Decimal]  # everything opened in the trip (= everything closed)
    entry_ns: Final[int]  # the first opening fill
    entry_price: Final[Decimal]  # quantity-weighted average of the opening fills' prices
    exit_ns: Final[int]  # the fill that brought the position back to zero
    exit_price: Final[Decimal]  # ... of the closing fills
    commission: Final[Decimal]  # the share of opening and closing commissions of this trip
    pnl: Final[Decimal]  # net of commission

    def __init__(self, symbol: str, direction: str, quantity: Decimal, entry_ns: int,
                 entry_price: Decimal, exit_ns: int, exit_price: Decimal,
                 commission: Decimal, pnl: Decimal) -> None:
        self.symbol = symbol
        self.direction = direction
        self.quantity = quantity
        self.entry_ns = entry_ns
        self.entry_price = entry_price
        self.exit_ns = exit_ns
        self.exit_price = exit_price
        self.commission = commission
        self.pnl = pnl

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return by_fields(self)

    @property
    def return_pct(self) -> float:
        """P&L as a percentage of the money the entry took (long or short)."""
        notional = self.quantity * self.entry_price
        if notional == 0:
            return NAN
        return float(self.pnl / notional * 100)


class _OpenTrip:
    """A trip being built: the sums its averages and P&L come from."""

    def __init__(self, symbol: str, sign: int, entry_ns: int) -> None:
        self.symbol = symbol
        self.sign = sign  # +1 long, -1 short
        self.entry_ns = entry_ns
        self.position = ZERO  # signed
        self.opened_quantity = ZERO
        self.opened_value = ZERO  # sum of quantity * price of the opening fills
        self.closed_quantity = ZERO
        self.closed_value = ZERO
        self.commission = ZERO

    def open(self, quantity: Decimal, price: Decimal, commission: Decimal) -> None:
        self.position += self.sign * quantity
        self.opened_quantity += quantity
        self.opened_value += quantity * price
        self.commission += commission

    def close(self, quantity: Decimal, price: Decimal, commission: Decimal) -> None:
        self.position -= self.sign * quantity
        self.closed_quantity += quantity
        self.closed_value += quantity * price
        self.commission += commission

    def finished(self, exit_ns: int) -> RoundTrip:
        # Long: sold for closed_value, bought for opened_value; short the other way round.
        gross = self.sign * (self.closed_value - self.opened_value)
        return RoundTrip(
            symbol=self.symbol,
            direction="long" if self.sign > 0 else "short",
            quantity=self.opened_quantity,
            entry_ns=self.entry_ns,
            entry_price=self.opened_value / self.opened_quantity,
            exit_ns=exit_ns,
            exit_price=self.closed_value / self.closed_quantity,
            commission=self.commission,
            pnl=gross - self.commission,
        )


def _closing_share(commission: Decimal, closing: Decimal, quantity: Decimal) -> Decimal:
    """The part of a flipping fill's commission that belongs to the trip it closes."""
    exact = commission * closing / quantity
    rounded = exact.quantize(COMMISSION_SHARE_QUANTUM, ROUND_HALF_EVEN)
    # Keep an exact share as it came (1, not 1.000000000000).
    return exact if rounded == exact else rounded


def round_trips(fills: Sequence[Fill]) -> list[RoundTrip]:
    """The closed round trips of `fills`, in the order they closed.

    Fills are taken in time order (sorted by `ts_ns`, keeping the given order among
    equal timestamps); fills of zero quantity change nothing and are skipped. A position
    still open after the last fill is not a trip.
    """
    trips: list[RoundTrip] = []
    open_trips: dict[str, _OpenTrip] = {}
    for fill in sorted(fills, key=lambda each: each.ts_ns):
        if fill.quantity < 0:
            raise ValueError(f"fill {fill.fill_id}: negative quantity {fill.quantity}")
        if fill.quantity == 0:
            continue
        sign = 1 if fill.signed_quantity > 0 else -1
        trip = open_trips.get(fill.symbol)
        if trip is None:
            trip = open_trips[fill.symbol] = _OpenTrip(fill.symbol, sign, fill.ts_ns)
            trip.open(fill.quantity, fill.price, fill.commission)
        elif trip.sign == sign:
            trip.open(fill.quantity, fill.price, fill.commission)
        elif fill.quantity <= abs(trip.position):
            trip.close(fill.quantity, fill.price, fill.commission)
            if trip.position == 0:
                trips.append(trip.finished(fill.ts_ns))
                del open_trips[fill.symbol]
        else:  # through zero: close this trip, open the next with the rest
            closing = abs(trip.position)
            closing_commission = _closing_share(fill.commission, closing, fill.quantity)
            trip.close(closing, fill.price, closing_commission)
            trips.append(trip.finished(fill.ts_ns))
            flipped = open_trips[fill.symbol] = _OpenTrip(fill.symbol, sign, fill.ts_ns)
            flipped.open(fill.quantity - closing, fill.price,
                         fill.commission - closing_commission)
    return trips


@dataclass(frozen=True, slots=True)
class Metrics:
    """The performance of one backtest. Percentages are in percent (12.5, not 0.125)."""

    start_equity: float
    end_equity: float
    total_return_pct: float
    cagr_pct: float
    volatility_pct: float  # annualised stdev of daily returns (ddof=1)
    sharpe: float  # NaN when the stdev is 0 or there are fewer than 2 returns
    sortino: float  # NaN when the downside deviation is 0
    max_drawdown_pct: float  # positive, % of the peak
    max_drawdown_days: int  # calendar days from a peak to its recovery (or the end)
    trades: int  # closed round trips
    win_rate_pct: float  # NaN with no trips
    profit_factor: float  # inf when no losses but some profit; NaN with no trips
    average_trade: float  # money; NaN with no trips
    average_trade_pct: float  # NaN with no trips
    exposure_pct: float  # share of days with a position open at the close

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        # Compiled, a frozen dataclass's default unpickling sets its fields through the
        # frozen __setattr__ and fails; rebuilding it through __init__ does not.
        return by_fields(self)

    def as_dict(self) -> dict[str, float | int]:
        """Field name -> value, for JSON and storage; NaN and inf stay floats."""
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Metrics:
        """The inverse of `as_dict`. Keys it does not know are ignored (a row written by
        a newer version still loads); a missing one raises KeyError."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = data[field.name]
            values[field.name] = int(raw) if field.name in _INTEGER_FIELDS else float(raw)
        return cls(**values)


_INTEGER_FIELDS = frozenset({"max_drawdown_days", "trades"})

# Field name -> label, in the order a report shows them.
METRIC_LABELS: dict[str, str] = {
    "start_equity": "Start equity",
    "end_equity": "End equity",
    "total_return_pct": "Total return",
    "cagr_pct": "CAGR",
    "volatility_pct": "Volatility (annualised)",
    "sharpe": "Sharpe ratio",
    "sortino": "Sortino ratio",
    "max_drawdown_pct": "Max drawdown",
    "max_drawdown_days": "Longest drawdown (days)",
    "trades": "Trades",
    "win_rate_pct": "Win rate",
    "profit_factor": "Profit factor",
    "average_trade": "Average trade",
    "average_trade_pct": "Average trade return",
    "exposure_pct": "Exposure",
}

_Kind = Literal["money", "percent", "ratio", "count"]
_METRIC_KINDS: dict[str, _Kind] = {
    "start_equity": "money",
    "end_equity": "money",
    "total_return_pct": "percent",
    "cagr_pct": "percent",
    "volatility_pct": "percent",
    "sharpe": "ratio",
    "sortino": "ratio",
    "max_drawdown_pct": "percent",
    "max_drawdown_days": "count",
    "trades": "count",
    "win_rate_pct": "percent",
    "profit_factor": "ratio",
    "average_trade": "money",
    "average_trade_pct": "percent",
    "exposure_pct": "percent",
}


def format_metric(name: str, value: float | int) -> str:
    """A metric as a report shows it: "12.34%", "1.23", "-$1,234.56", "17", and "n/a"
    for NaN, "inf"/"-inf" for infinities. An unknown name raises KeyError."""
    kind = _METRIC_KINDS[name]
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if kind == "money":
        return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"
    if kind == "percent":
        return f"{value:,.2f}%"
    if kind == "count":
        return f"{round(value):,d}"
    return f"{value:,.2f}"


def _as_days(days: Sequence[date] | DayArray) -> DayArray:
    if isinstance(days, np.ndarray):
        return days.astype("datetime64[D]")
    # A datetime is a date too, but numpy would keep its time (and balk at a zone).
    plain = [day.date() if isinstance(day, datetime) else day for day in days]
    return np.array(plain, dtype="datetime64[D]")


def _spread(values: FloatArray) -> float:
    """The sample standard deviation (ddof=1), with rounding noise read as zero; NaN
    with fewer than two values."""
    if values.size < 2:
        return NAN
    spread = float(np.std(values, ddof=1))
    if spread <= RELATIVE_NOISE * float(np.max(np.abs(values))):
        return 0.0
    return spread


def _cagr_pct(start: float, end: float, calendar_days: int) -> float:
    if calendar_days <= 0:
        return 0.0
    if not start > 0:
        return NAN
    growth = end / start
    if growth <= 0:
        return -100.0  # everything lost (or more): no rate of growth gets there
    # numpy rather than ** so a huge rate over a short span is inf, not OverflowError.
    with np.errstate(over="ignore"):
        return float((np.power(growth, 365.25 / calendar_days) - 1.0) * 100.0)


def _max_drawdown_pct(equity: FloatArray) -> float:
    if equity.size == 0:
        return 0.0
    peaks = np.maximum.accumulate(equity)
    # A fall is a share of its peak; below a peak of zero or less there is no share.
    positive = peaks > 0
    if not positive.any():
        return 0.0
    falls = (peaks[positive] - equity[positive]) / peaks[positive]
    return float(np.max(falls) * 100.0)


def _max_drawdown_days(equity: FloatArray, day_numbers: npt.NDArray[np.int64]) -> int:
    """The longest stretch, in calendar days, from a peak to the first close back at or
    above it, or to the last day for a drawdown not recovered."""
    if equity.size == 0:
        return 0
    if np.isnan(equity).any():
        return _max_drawdown_days_stepwise(equity, day_numbers)
    # A close at or above every close before it is a peak (the first close is one);
    # a drawdown runs from a peak to the next peak that is not the very next close.
    at_peak = np.empty(equity.size, dtype=bool)
    at_peak[0] = True
    at_peak[1:] = equity[1:] >= np.maximum.accumulate(equity)[:-1]
    peaks = np.flatnonzero(at_peak)
    recovered = np.diff(peaks) > 1
    longest = int(np.max(day_numbers[peaks[1:][recovered]] - day_numbers[peaks[:-1][recovered]],
                         initial=0))
    if peaks[-1] != equity.size - 1:  # under water at the end
        longest = max(longest, int(day_numbers[-1] - day_numbers[peaks[-1]]))
    return longest


def _max_drawdown_days_stepwise(equity: FloatArray, day_numbers: npt.NDArray[np.int64]) -> int:
    """`_max_drawdown_days` close by close, for a curve with NaN in it (a NaN close is
    under water; a NaN first close is a peak nothing reaches again)."""
    longest = 0
    peak, peak_day = float(equity[0]), int(day_numbers[0])
    underwater = False
    for value, day in zip(equity[1:].tolist(), day_numbers[1:].tolist(), strict=True):
        if value >= peak:
            if underwater:
                longest = max(longest, day - peak_day)
                underwater = False
            peak, peak_day = value, day
        else:
            underwater = True
    if underwater:
        longest = max(longest, int(day_numbers[-1]) - peak_day)
    return longest


def compute_metrics(days: Sequence[date] | DayArray, equity: FloatArray,
                    invested: npt.NDArray[np.bool_], trips: Sequence[RoundTrip], *,
                    periods_per_year: int = 252,
                    risk_free_rate_pct: float = 0.0) -> Metrics:
    """The metrics of an equity curve (one close per day, days ascending), the days a
    position was open at the close, and the closed round trips.

    A day's return is the change of equity from the previous close; a close at zero or
    below has no return after it (nothing to take a percentage of), so after ruin the
    curve adds no returns. Lengths that differ or days out of order raise ValueError:
    those are the caller's bug, not an edge case of the data.
    """
    day_array = _as_days(days)
    equity = np.asarray(equity, dtype=np.float64)
    invested = np.asarray(invested, dtype=np.bool_)
    if not day_array.size == equity.size == invested.size:
        raise ValueError(f"days ({day_array.size}), equity ({equity.size}) and invested "
                         f"({invested.size}) must have the same length")
    day_numbers = day_array.astype(np.int64)
    if np.any(np.diff(day_numbers) < 0):
        raise ValueError("days must be in ascending order")

    count = equity.size
    start = float(equity[0]) if count else NAN
    end = float(equity[-1]) if count else NAN
    total_return_pct = (end / start - 1.0) * 100.0 if start > 0 else NAN
    calendar_days = int(day_numbers[-1] - day_numbers[0]) if count >= 2 else 0

    previous, current = equity[:-1], equity[1:]
    has_base = previous > 0
    returns = current[has_base] / previous[has_base] - 1.0
    daily_risk_free = (1.0 + risk_free_rate_pct / 100.0) ** (1.0 / periods_per_year) - 1.0
    annualiser = math.sqrt(periods_per_year)

    volatility = _spread(returns)
    if daily_risk_free == 0.0:  # the usual case: excess returns are the returns
        excess, excess_spread = returns, volatility
    else:
        excess = returns - daily_risk_free
        excess_spread = _spread(excess)
    mean_excess = float(np.mean(excess)) if excess.size else NAN
    sharpe = mean_excess / excess_spread * annualiser if excess_spread > 0 else NAN
    downside = (math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
                if returns.size else 0.0)
    sortino = mean_excess / downside * annualiser if downside > 0 else NAN

    pnls = [trip.pnl for trip in trips]
    gross_profit = sum((pnl for pnl in pnls if pnl > 0), ZERO)
    gross_loss = -sum((pnl for pnl in pnls if pnl < 0), ZERO)
    if not pnls:
        win_rate_pct = profit_factor = average_trade = average_trade_pct = NAN
    else:
        win_rate_pct = sum(1 for pnl in pnls if pnl > 0) / len(pnls) * 100.0
        if gross_loss > 0:
            profit_factor = float(gross_profit / gross_loss)
        else:  # no losses: all profit is infinitely many times none; all flat is 0/0
            profit_factor = math.inf if gross_profit > 0 else NAN
        average_trade = float(sum(pnls, ZERO) / len(pnls))
        average_trade_pct = sum(trip.return_pct for trip in trips) / len(trips)

    return Metrics(
        start_equity=start,
        end_equity=end,
        total_return_pct=total_return_pct,
        cagr_pct=_cagr_pct(start, end, calendar_days),
        volatility_pct=volatility * annualiser * 100.0,
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown_pct=_max_drawdown_pct(equity),
        max_drawdown_days=_max_drawdown_days(equity, day_numbers),
        trades=len(trips),
        win_rate_pct=win_rate_pct,
        profit_factor=profit_factor,
        average_trade=average_trade,
        average_trade_pct=average_trade_pct,
        exposure_pct=float(np.mean(invested)) * 100.0 if count else NAN,
    )
