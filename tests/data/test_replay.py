"""The replay market: what it streams, and that history never looks ahead."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core.clock import ExchangeCalendar
from core.model import NS_PER_SECOND, Bar, Quote, Trade
from data.bundle import BundledDailyBars
from data.replay import ReplayFeed
from data.synthetic import SyntheticDailyBars


def make_feed(start: date = date(2019, 3, 14), **options: object) -> ReplayFeed:
    values: dict[str, object] = dict(
        start=start, day_seconds=10.0, overnight_seconds=0.5, steps_per_day=390, seed=7,
        bundle=BundledDailyBars(), synthetic=SyntheticDailyBars(seed=42),
    )
    values.update(options)
    return ReplayFeed(**values)  # type: ignore[arg-type]


async def test_a_whole_day_streams_the_real_daily_bar() -> None:
    feed = make_feed()
    await feed.subscribe(["AAPL"])
    events = feed.advance(0)
    while feed.expects_updates() or not events:
        events.extend(feed.advance(0.5))
        if feed.clock.now_ns() >= feed.calendar.open_close_ns(date(2019, 3, 14))[1]:
            break
    # The opening print arrives in the catch-up minute bar, the rest as trades.
    opening = [e for e in events if isinstance(e, Bar) and e.interval_s == 60]
    trades = [e for e in events if isinstance(e, Trade)]
    quotes = [e for e in events if isinstance(e, Quote)]
    row = BundledDailyBars().load("AAPL").loc["2019-03-14"]
    assert opening[0].open == pytest.approx(row["open"])
    assert trades[-1].price == pytest.approx(row["close"])
    highs = [t.price for t in trades] + [b.high for b in opening]
    lows = [t.price for t in trades] + [b.low for b in opening]
    assert max(highs) == pytest.approx(row["high"])
    assert min(lows) == pytest.approx(row["low"])
    volume = sum(t.size for t in trades) + sum(b.volume for b in opening)
    assert volume == pytest.approx(row["volume"])
    assert all(q.bid < q.ask for q in quotes)
    assert [t.ts_ns for t in trades] == sorted(t.ts_ns for t in trades)


async def test_history_never_looks_past_the_replay_clock() -> None:
    feed = make_feed()
    await feed.subscribe(["MSFT"])
    feed.advance(2.0)  # a fifth of the session
    now = feed.clock.now_ns()
    start = datetime(2019, 1, 1, tzinfo=UTC)
    end = datetime(2020, 2, 1, tzinfo=UTC)
    daily = await feed.history(["MSFT"], start, end, "1d")
    assert daily["ts"].max().value <= now
    today = daily.iloc[-1]
    full_day = BundledDailyBars().load("MSFT").loc["2019-03-14"]
    assert today["ts"].tz_convert("America/New_York").date() == date(2019, 3, 14)
    assert today["volume"] < full_day["volume"]  # only the part already played
    minutes = await feed.history(["MSFT"], start, end, "1m")
    assert minutes["ts"].max().value <= now
    assert len(minutes) > 390  # earlier days' minutes too


async def test_catch_up_gives_the_session_so_far_then_the_quote() -> None:
    feed = make_feed()
    feed.start_at(datetime(2019, 3, 14, 11, 0).time())
    await feed.subscribe(["JPM"])
    events = feed.advance(0)
    daily = [e for e in events if isinstance(e, Bar) and e.interval_s == 86_400]
    minutes = [e for e in events if isinstance(e, Bar) and e.interval_s == 60]
    assert len(daily) == 1
    assert 85 <= len(minutes) <= 91  # 09:30 to 11:00
    assert isinstance(events[-1], Quote)


async def test_symbols_outside_the_bundle() -> None:
    feed = make_feed()
    found = await feed.validate(["AAPL", "ZZZZ", "not a symbol"])
    assert found["AAPL"] is not None
    assert found["AAPL"].source == "replay"
    assert found["ZZZZ"] is not None
    assert found["ZZZZ"].source == "sim"
    assert found["not a symbol"] is None
    strict = make_feed(synthetic=None)
    assert (await strict.validate(["ZZZZ"]))["ZZZZ"] is None
    assert "AAPL" in strict.suggest("APPL")


async def test_the_replay_moves_to_the_next_session_and_ends_with_the_data() -> None:
    feed = make_feed(start=date(2020, 1, 9))
    await feed.subscribe(["AAPL"])
    for _ in range(200):
        feed.advance(0.5)
        if feed.finished:
            break
    assert feed.session == date(2020, 1, 10)
    assert feed.finished
    assert "ended" in feed.describe()


def test_pause_and_speed() -> None:
    feed = make_feed()
    before = feed.clock.now_ns()
    feed.set_paused(True)
    feed.advance(5)
    assert feed.clock.now_ns() == before
    feed.set_paused(False)
    feed.set_speed(2)
    feed.advance(1)
    # 6.5 h in 10 s at 2x: 4,680 market seconds per wall second.
    assert (feed.clock.now_ns() - before) / NS_PER_SECOND == pytest.approx(4680, rel=1e-6)
    with pytest.raises(ValueError, match="positive"):
        feed.set_speed(0)


def test_seek_resumes_inside_a_session() -> None:
    feed = make_feed()
    target = datetime(2019, 6, 3, 14, 0, tzinfo=ExchangeCalendar.zone)
    feed.seek(int(target.timestamp()) * NS_PER_SECOND)
    assert feed.session == date(2019, 6, 3)
    assert feed.expects_updates()


async def test_the_stream_starts_with_the_first_symbols_and_the_rest_join() -> None:
    """The first batch does not wait for a long watchlist: the first FIRST_LOAD symbols
    come in it, the others join through the catch-up as their data loads."""
    from data.replay import FIRST_LOAD

    feed = make_feed(paused=True)
    symbols = ["AAPL", "MSFT", "JPM", "XOM", "CVX", "KO", "PEP", "WMT", "HD", "INTC", "CSCO"]
    assert len(symbols) > FIRST_LOAD
    stream = feed.stream(symbols)
    first = await anext(stream)
    quoted = {e.symbol for e in first if isinstance(e, Quote)}
    assert quoted == set(symbols[:FIRST_LOAD])
    later: set[str] = set()
    for _ in range(200):
        later |= {e.symbol for e in await anext(stream) if isinstance(e, Quote)}
        if later >= set(symbols[FIRST_LOAD:]):
            break
    assert later == set(symbols[FIRST_LOAD:])
    await stream.aclose()
