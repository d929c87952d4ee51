"""Yahoo's bars and prices in the engine's terms: the intervals and how far back Yahoo
keeps them, request spans, cleaning a yfinance frame into bar rows, the history frame,
and websocket messages and polls as market events. No I/O here.

A daily bar is stamped with its session's open (as the replay stamps them), not with
the midnight yfinance puts on it: `Bar.ts_ns` is the bar's start.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.clock import NEW_YORK, ExchangeCalendar
from core.feeds import FeedError
from core.model import NS_PER_SECOND, Bar, MarketEvent, Quote, Trade
from data.bundle import LoadReport
from data.provider_common import clean_bar_rows, numeric_columns

if TYPE_CHECKING:
    from core.store import BarRow

MINUTE_NS = 60 * NS_PER_SECOND
DAY_NS = 86_400 * NS_PER_SECOND
# Yahoo counts its limits from its own clock, a moment after ours: keep clear of the edge.
LIMIT_MARGIN_NS = 5 * MINUTE_NS
_COLUMNS = ("Open", "High", "Low", "Close", "Volume")


@dataclass(frozen=True, slots=True)
class IntervalSpec:
    """A bar interval as Yahoo serves it."""

    yahoo: str  # Yahoo's name for it
    seconds: int
    label: str  # for messages: "1-minute"
    keep_days: int | None  # how far back Yahoo serves it (None: no limit)
    request_days: int | None  # the longest span one request may cover (None: any)

    @property
    def daily(self) -> bool:
        return self.seconds >= 86_400


INTERVALS: dict[str, IntervalSpec] = {
    "1m": IntervalSpec("1m", 60, "1-minute", 30, 7),
    "2m": IntervalSpec("2m", 120, "2-minute", 60, None),
    "5m": IntervalSpec("5m", 300, "5-minute", 60, None),
    "15m": IntervalSpec("15m", 900, "15-minute", 60, None),
    "30m": IntervalSpec("30m", 1800, "30-minute", 60, None),
    "1h": IntervalSpec("60m", 3600, "1-hour", 60, None),
    "1d": IntervalSpec("1d", 86_400, "daily", None, None),
}
ONE_MINUTE = INTERVALS["1m"]


def interval_spec(interval: str) -> IntervalSpec:
    spec = INTERVALS.get(interval)
    if spec is None:
        raise FeedError(f"unknown interval {interval!r}: Yahoo serves {', '.join(INTERVALS)}")
    return spec


def limit_message(spec: IntervalSpec) -> str:
    return (f"Yahoo keeps {spec.label} bars for the last {spec.keep_days} days only; "
            "ask for 1d bars for older dates")


def earliest_ns(spec: IntervalSpec, now_ns: int) -> int | None:
    """The oldest bar start Yahoo still serves at `now_ns` (None: no limit)."""
    if spec.keep_days is None:
        return None
    earliest = now_ns - spec.keep_days * DAY_NS + LIMIT_MARGIN_NS
    return earliest + (-earliest) % MINUTE_NS  # the next whole minute


def request_spans(spec: IntervalSpec, start_ns: int, end_ns: int) -> list[tuple[int, int]]:
    """[start, end) cut into spans one request may ask for."""
    if spec.request_days is None:
        return [(start_ns, end_ns)] if end_ns > start_ns else []
    step = spec.request_days * DAY_NS
    return [(at, min(at + step, end_ns)) for at in range(start_ns, end_ns, step)]


def request_bounds(spec: IntervalSpec, start_ns: int, end_ns: int
                   ) -> tuple[date, date] | tuple[pd.Timestamp, pd.Timestamp]:
    """What to ask yfinance for: whole New York dates for daily bars (Yahoo keys them
    by date), UTC instants otherwise."""
    if spec.daily:
        first = _ny_date(start_ns)
        last = _ny_date(end_ns - 1)
        return first, last + timedelta(days=1)
    return pd.Timestamp(start_ns, unit="ns", tz="UTC"), pd.Timestamp(end_ns, unit="ns", tz="UTC")


def _ny_date(ts_ns: int) -> date:
    return pd.Timestamp(ts_ns, unit="ns", tz="UTC").tz_convert(NEW_YORK).date()


def has_trading(spec: IntervalSpec, start_ns: int, end_ns: int,
                calendar: ExchangeCalendar) -> bool:
    """Whether [start, end) holds a bar a valid symbol must have: a session's open for
    daily bars, part of a regular session otherwise."""
    if end_ns <= start_ns:
        return False
    for day in calendar.sessions(_ny_date(start_ns), _ny_date(end_ns - 1)):
        opens, closes = calendar.open_close_ns(day)
        if spec.daily and start_ns <= opens < end_ns:
            return True
        if not spec.daily and opens < end_ns and start_ns < closes:
            return True
    return False


# ---------------------------------------------------------------------- cleaning


def frame_rows(frame: pd.DataFrame | None, spec: IntervalSpec, calendar: ExchangeCalendar
               ) -> tuple[list[BarRow], LoadReport]:
    """A yfinance frame as bar rows (ts_ns, open, high, low, close, volume), oldest
    first, cleaned by `clean_bar_rows`. The report counts what was done."""
    report = LoadReport()
    if frame is None or frame.empty:
        return [], report
    missing = [name for name in _COLUMNS if name not in frame.columns]
    if missing:
        report.invalid_rows_dropped = len(frame)
        return [], report
    stamps = _bar_starts(pd.DatetimeIndex(frame.index), spec, calendar)
    values = numeric_columns(frame, _COLUMNS)
    return clean_bar_rows(stamps, values, daily=spec.daily, report=report), report


def _bar_starts(index: pd.DatetimeIndex, spec: IntervalSpec,
                calendar: ExchangeCalendar) -> npt.NDArray[np.int64]:
    if spec.daily:
        local = index.tz_convert(NEW_YORK) if index.tz is not None else index
        days = [pd.Timestamp(moment).date() for moment in local]
        return np.array([calendar.open_close_ns(day)[0] for day in days], dtype=np.int64)
    zoned = index if index.tz is not None else index.tz_localize(NEW_YORK)
    return np.asarray(zoned.as_unit("ns").asi8, dtype=np.int64)  # epoch ns, UTC


def yahoo_ticker(symbol: str) -> str:
    """Yahoo writes share classes with a dash: BRK.B is BRK-B there."""
    return symbol.replace(".", "-")


def _number(message: Mapping[str, Any], key: str) -> float:
    # Protobuf's JSON form writes 64-bit integers as strings.
    try:
        value = float(message.get(key) or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) else 0.0


def message_events(message: Mapping[str, Any], symbols: Mapping[str, str],
                   day_volumes: dict[str, float], now_ns: int) -> list[MarketEvent]:
    """One decoded websocket message as events: a Trade when it has a price (its size
    is the rise in the day's volume since the symbol's last message, else the message's
    last size, else 0) and a Quote only when it carries both bid and ask (Yahoo often
    sends a price alone: no spread is made up). `symbols` maps Yahoo's tickers to ours;
    other tickers are ignored."""
    symbol = symbols.get(str(message.get("id", "")))
    if symbol is None:
        return []
    stamp = int(_number(message, "time"))
    # Yahoo stamps in milliseconds; seconds are accepted too, a missing time is now.
    ts_ns = (stamp * 1_000_000 if stamp > 10**11 else stamp * NS_PER_SECOND) if stamp else now_ns
    events: list[MarketEvent] = []
    price = _number(message, "price")
    if price > 0:
        size = _number(message, "last_size")
        if "day_volume" in message:
            volume = _number(message, "day_volume")
            before = day_volumes.get(symbol)
            day_volumes[symbol] = volume
            if before is not None and volume >= before:
                size = volume - before
        events.append(Trade(symbol, ts_ns, price, size))
    bid, ask = _number(message, "bid"), _number(message, "ask")
    if bid > 0 and ask >= bid:
        events.append(Quote(symbol, ts_ns, bid, ask, _number(message, "bid_size"),
                            _number(message, "ask_size")))
    return events


@dataclass(slots=True)
class PollMark:
    """How far a symbol's minute bars have been passed on: the newest minute sent and
    the volume of it accounted for."""

    minute_ns: int
    volume: float


def poll_events(symbol: str, rows: Sequence[BarRow], marks: dict[str, PollMark]
                ) -> list[MarketEvent]:
    """The minute bars of a poll as events: the minute left open last time settled
    (a Trade at its close for the volume since), the minutes not sent yet as Bars (the
    newest may still be forming: the engine carries on from it), and a Trade at the
    newest close, sized by the volume that minute gained since the last poll."""
    if not rows:
        return []
    mark = marks.get(symbol)
    events: list[MarketEvent] = []
    newest = rows[-1]
    fresh = [row for row in rows if mark is None or row[0] > mark.minute_ns]
    size = 0.0
    if mark is not None:
        left = next((row for row in rows if row[0] == mark.minute_ns), None)
        gained = 0.0 if left is None else max(0.0, left[5] - mark.volume)
        if fresh and left is not None:
            events.append(Trade(symbol, left[0], left[4], gained))
        elif not fresh:
            size = gained
    events.extend(Bar(symbol, ts, 60, o, h, lo, c, v) for ts, o, h, lo, c, v in fresh)
    events.append(Trade(symbol, newest[0], newest[4], size))
    marks[symbol] = PollMark(newest[0], newest[5])
    return events
