"""Clocks and the US equity session calendar.

One engine, two clocks: `LiveClock` reads the wall clock; `SimClock` is set by whoever
drives time (the replay feed, a backtest, a test) and never moves backwards. Both tell
time as epoch nanoseconds in UTC; `ExchangeCalendar` turns that into sessions in the
exchange's own zone.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from functools import lru_cache
from typing import ClassVar, Protocol
from zoneinfo import ZoneInfo

from core.model import NS_PER_SECOND, MarketPhase, utc_datetime

NEW_YORK = ZoneInfo("America/New_York")


class Clock(Protocol):
    def now_ns(self) -> int: ...

    def now(self) -> datetime: ...


class LiveClock:
    """The wall clock."""

    def now_ns(self) -> int:
        return time.time_ns()

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimClock:
    """A clock that moves only when told to, and only forward."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns

    def now_ns(self) -> int:
        return self._now_ns

    def now(self) -> datetime:
        return utc_datetime(self._now_ns)

    def set_ns(self, ts_ns: int) -> None:
        if ts_ns < self._now_ns:
            raise ValueError(
                f"a SimClock never moves backwards ({utc_datetime(ts_ns)} < {self.now()})"
            )
        self._now_ns = ts_ns

    def advance(self, seconds: float) -> None:
        self.set_ns(self._now_ns + int(seconds * NS_PER_SECOND))


# ---------------------------------------------------------------------------------------
# The NYSE/Nasdaq calendar, computed from the exchanges' published rules.


def _observed(day: date) -> date | None:
    """The weekday a fixed-date holiday is observed on (Saturday -> Friday, Sunday ->
    Monday). A New Year's Day on a Saturday is not observed: the exchanges do not close
    on the last trading day of the year."""
    if day.weekday() == 5:
        if day.month == 1 and day.day == 1:
            return None
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    return first + timedelta(days=offset + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    next_month = date(year + month // 12, month % 12 + 1, 1)
    last = next_month - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


# Closures outside the rules: national days of mourning.
SPECIAL_CLOSURES = frozenset({date(2018, 12, 5), date(2025, 1, 9)})


@lru_cache(maxsize=64)
def us_equity_holidays(year: int) -> frozenset[date]:
    days: list[date | None] = [
        _observed(date(year, 1, 1)),
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _easter(year) - timedelta(days=2),  # Good Friday
        _last_weekday(year, 5, 0),  # Memorial Day
        _observed(date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(date(year, 12, 25)),
    ]
    if year >= 2022:
        days.append(_observed(date(year, 6, 19)))  # Juneteenth
    # A New Year's Day on a Saturday of the next year is not observed on Dec 31.
    result = {d for d in days if d is not None}
    result |= {d for d in SPECIAL_CLOSURES if d.year == year}
    return frozenset(result)


@lru_cache(maxsize=64)
def us_equity_early_closes(year: int) -> frozenset[date]:
    """Sessions that close at 13:00 New York time."""
    days: set[date] = set()
    thanksgiving = _nth_weekday(year, 11, 3, 4)
    days.add(thanksgiving + timedelta(days=1))
    christmas_eve = date(year, 12, 24)
    if christmas_eve.weekday() < 5:
        days.add(christmas_eve)
    july_3 = date(year, 7, 3)
    if july_3.weekday() < 5 and date(year, 7, 4).weekday() not in (5, 6, 0):
        days.add(july_3)
    holidays = us_equity_holidays(year)
    return frozenset(d for d in days if d not in holidays and d.weekday() < 5)


class ExchangeCalendar:
    """Trading sessions of US equities: 09:30-16:00 New York time on weekdays that are
    not holidays, 13:00 closes on early-close days, pre-market from 04:00 and
    after-hours to 20:00."""

    # Class-level constants (ClassVar: readable on the class itself, compiled or not).
    zone: ClassVar[ZoneInfo] = NEW_YORK
    regular_open: ClassVar[clock_time] = clock_time(9, 30)
    regular_close: ClassVar[clock_time] = clock_time(16, 0)
    early_close: ClassVar[clock_time] = clock_time(13, 0)
    pre_open: ClassVar[clock_time] = clock_time(4, 0)
    post_close: ClassVar[clock_time] = clock_time(20, 0)

    def is_session(self, day: date) -> bool:
        return day.weekday() < 5 and day not in us_equity_holidays(day.year)

    def sessions(self, start: date, end: date) -> list[date]:
        """Trading days from start to end inclusive."""
        days = []
        day = start
        while day <= end:
            if self.is_session(day):
                days.append(day)
            day += timedelta(days=1)
        return days

    def next_session(self, after: date) -> date:
        day = after + timedelta(days=1)
        while not self.is_session(day):
            day += timedelta(days=1)
        return day

    def previous_session(self, before: date) -> date:
        day = before - timedelta(days=1)
        while not self.is_session(day):
            day -= timedelta(days=1)
        return day

    def open_close_ns(self, day: date) -> tuple[int, int]:
        """Regular-session open and close of a trading day, as epoch nanoseconds."""
        early = day in us_equity_early_closes(day.year)
        close_time = self.early_close if early else self.regular_close
        opens = datetime.combine(day, self.regular_open, self.zone)
        closes = datetime.combine(day, close_time, self.zone)
        return int(opens.timestamp()) * NS_PER_SECOND, int(closes.timestamp()) * NS_PER_SECOND

    def day_bounds(self, day: date) -> tuple[int, int, int, int]:
        """A calendar day's local midnight, regular open, regular close and the next
        local midnight, as epoch nanoseconds; open and close are 0 on a day with no
        session."""
        start = int(datetime.combine(day, clock_time(0), self.zone).timestamp())
        end = int(datetime.combine(day + timedelta(days=1), clock_time(0),
                                   self.zone).timestamp())
        opens, closes = self.open_close_ns(day) if self.is_session(day) else (0, 0)
        return start * NS_PER_SECOND, opens, closes, end * NS_PER_SECOND

    def phase(self, ts_ns: int) -> MarketPhase:
        local = utc_datetime(ts_ns).astimezone(self.zone)
        day = local.date()
        if not self.is_session(day):
            return MarketPhase.CLOSED
        open_ns, close_ns = self.open_close_ns(day)
        if open_ns <= ts_ns < close_ns:
            return MarketPhase.OPEN
        if self.pre_open <= local.time() and ts_ns < open_ns:
            return MarketPhase.PRE
        if ts_ns >= close_ns and local.time() < self.post_close:
            return MarketPhase.POST
        return MarketPhase.CLOSED

    def session_date(self, ts_ns: int) -> date:
        """The calendar date in the exchange's zone."""
        return utc_datetime(ts_ns).astimezone(self.zone).date()
