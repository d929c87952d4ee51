from __future__ import annotations

from datetime import date, datetime

import pytest

from core.clock import NEW_YORK, ExchangeCalendar, SimClock, us_equity_early_closes
from core.model import MarketPhase, to_ns


@pytest.mark.parametrize(
    "day",
    [
        date(2019, 1, 1), date(2019, 1, 21), date(2019, 2, 18), date(2019, 4, 19),
        date(2019, 5, 27), date(2019, 7, 4), date(2019, 9, 2), date(2019, 11, 28),
        date(2019, 12, 25), date(2018, 12, 5), date(2015, 7, 3), date(2022, 6, 20),
        date(2021, 12, 24),
    ],
)
def test_holidays_are_not_sessions(day: date) -> None:
    assert not ExchangeCalendar().is_session(day)


def test_a_saturday_new_year_is_not_observed_on_friday() -> None:
    assert ExchangeCalendar().is_session(date(2021, 12, 31))


def test_early_closes() -> None:
    assert date(2019, 11, 29) in us_equity_early_closes(2019)
    assert date(2019, 12, 24) in us_equity_early_closes(2019)
    open_ns, close_ns = ExchangeCalendar().open_close_ns(date(2019, 11, 29))
    assert (close_ns - open_ns) / 3.6e12 == pytest.approx(3.5)


def test_sessions_of_the_bundled_years() -> None:
    # 2016: 252 trading days (NYSE).
    assert len(ExchangeCalendar().sessions(date(2016, 1, 1), date(2016, 12, 31))) == 252


@pytest.mark.parametrize(
    ("moment", "phase"),
    [
        (datetime(2019, 3, 14, 9, 29, tzinfo=NEW_YORK), MarketPhase.PRE),
        (datetime(2019, 3, 14, 9, 30, tzinfo=NEW_YORK), MarketPhase.OPEN),
        (datetime(2019, 3, 14, 15, 59, tzinfo=NEW_YORK), MarketPhase.OPEN),
        (datetime(2019, 3, 14, 16, 0, tzinfo=NEW_YORK), MarketPhase.POST),
        (datetime(2019, 3, 14, 21, 0, tzinfo=NEW_YORK), MarketPhase.CLOSED),
        (datetime(2019, 3, 16, 12, 0, tzinfo=NEW_YORK), MarketPhase.CLOSED),
    ],
)
def test_phase(moment: datetime, phase: MarketPhase) -> None:
    assert ExchangeCalendar().phase(to_ns(moment)) == phase


def test_sim_clock_moves_only_forward() -> None:
    clock = SimClock(1_000)
    clock.advance(1.5)
    assert clock.now_ns() == 1_000 + 1_500_000_000
    with pytest.raises(ValueError, match="never moves backwards"):
        clock.set_ns(0)
    assert clock.now().tzinfo is not None
