"""The Alpaca feed against a loopback fake of Alpaca (tests/fakes), with the real
alpaca-py clients: history and its cache, symbol checks, the one shared market-data
connection, its failures, and the real FeedSupervisor restarting it."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from core.clock import ExchangeCalendar, SimClock
from core.config import Settings
from core.config_venues import alpaca_keys
from core.engine import Engine
from core.feeds import Backoff, FeedError, FeedSupervisor
from core.model import Bar, FeedState, MarketEvent, Quote, Trade, to_ns
from core.store import Store
from data.alpaca import AlpacaFeed
from data.alpaca_bars import CONNECTION_LIMIT, CONNECTION_LIMIT_NOTE
from tests.conftest import make_settings
from tests.core.test_engine import wait_for
from tests.fakes.alpaca_server import FakeAlpaca

CALENDAR = ExchangeCalendar()
Stream = AsyncIterator[Sequence[MarketEvent]]


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with FakeAlpaca() as server:
        yield server


def feed_settings(tmp_path: Path, fake: FakeAlpaca, **alpaca: Any) -> Settings:
    return make_settings(
        tmp_path, feed={"provider": "alpaca"},
        alpaca={"key_id": fake.key_id, "secret_key": fake.secret_key,
                "paper_url": fake.trading_url, "data_url": fake.data_url,
                "data_stream_url": fake.data_stream_url.removesuffix("/v2/iex"),
                "request_timeout_s": 2.0, **alpaca})


def make_feed(tmp_path: Path, fake: FakeAlpaca, **options: Any) -> AlpacaFeed:
    settings = feed_settings(tmp_path, fake)
    return AlpacaFeed(settings.alpaca, alpaca_keys(settings.alpaca), **options)


@pytest.fixture
async def feed(tmp_path: Path, fake: FakeAlpaca) -> AsyncIterator[AlpacaFeed]:
    feed = AlpacaFeed.from_settings(feed_settings(tmp_path, fake))
    yield feed
    await feed.close()


async def next_batch(stream: Stream, timeout: float = 5.0) -> Sequence[MarketEvent]:
    return await asyncio.wait_for(anext(stream), timeout)


async def collect(stream: Stream, done: Any, timeout: float = 5.0) -> list[MarketEvent]:
    """Batches until `done(events so far)`."""
    events: list[MarketEvent] = []
    deadline = time.monotonic() + timeout
    while not done(events):
        events.extend(await next_batch(stream, max(0.1, deadline - time.monotonic())))
    return events


async def subscribed(fake: FakeAlpaca, *symbols: str) -> None:
    await wait_for(lambda: set(symbols) <= set(fake.subscriptions().get("quotes", [])), 5)


def midnight(day: date) -> str:
    """A daily bar's time as Alpaca writes it: the New York midnight, in UTC."""
    return datetime.combine(day, datetime.min.time(), CALENDAR.zone).astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def daily(day: date, o: float, h: float, lo: float, c: float, v: float = 1000) -> dict[str, Any]:
    return {"t": midnight(day), "o": o, "h": h, "l": lo, "c": c, "v": v}


def session_open(day: date) -> pd.Timestamp:
    return pd.Timestamp(CALENDAR.open_close_ns(day)[0], unit="ns", tz="UTC")


# ---------------------------------------------------------------------- history


async def test_daily_and_minute_history_cleaned_paginated_and_cached(
        tmp_path: Path, fake: FakeAlpaca) -> None:
    days = CALENDAR.sessions(date(2024, 1, 2), date(2024, 1, 10))
    fake.bars = {
        "AAPL": [
            daily(days[0], 185.0, 188.0, 183.0, 186.0),
            daily(days[1], 186.0, 184.0, 187.0, 185.0),  # high < low: swapped
            daily(days[2], 185.0, 187.0, 184.0, 0.0),  # zero close: dropped
            daily(days[3], 185.0, 186.0, 184.0, 189.0),  # close above the high: widened
            daily(days[4], math.nan, 186.0, 184.0, 185.0),  # NaN open: dropped
            daily(days[5], 184.0, 186.0, 183.0, 185.5),
        ],
        "MSFT": [{"t": f"2024-01-02T14:{30 + i}:00Z", "o": 370.0 + i, "h": 371.0 + i,
                  "l": 369.0 + i, "c": 370.5 + i, "v": 500 + i} for i in range(5)],
    }
    fake.bars_page_size = 2
    store = await Store.open(tmp_path / "db.sqlite")
    feed = make_feed(tmp_path, fake)
    feed.use_store(store)
    try:
        start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 12, tzinfo=UTC)
        frame = await feed.history(["AAPL"], start, end, "1d")
        assert list(frame.columns) == ["symbol", "ts", "open", "high", "low", "close",
                                       "volume"]
        assert list(frame["ts"]) == [session_open(days[i]) for i in (0, 1, 3, 5)]
        assert (frame["symbol"] == "AAPL").all()
        assert list(frame["high"]) == [188.0, 187.0, 189.0, 186.0]
        assert list(frame["low"]) == [183.0, 184.0, 184.0, 183.0]
        paged = fake.count("GET", "/v2/stocks/bars")
        assert paged == 3  # six bars, two a page

        minutes = await feed.history(["MSFT"], start, end, "1m")
        assert list(minutes["ts"]) == list(pd.date_range("2024-01-02 14:30", periods=5,
                                                         freq="1min", tz="UTC"))
        assert list(minutes["close"]) == [370.5, 371.5, 372.5, 373.5, 374.5]
        fake.bars["JPM"] = [daily(day, 170.0, 171.0, 169.0, 170.5) for day in days[:3]]
        both = await feed.history(["JPM", "AAPL"], start, end, "1d")
        assert list(both["symbol"]) == ["AAPL"] * 4 + ["JPM"] * 3  # by symbol, then time
        assert list(both["ts"][4:]) == [session_open(day) for day in days[:3]]
        asked = fake.count("GET", "/v2/stocks/bars")

        again = await feed.history(["AAPL"], start, end, "1d")
        pd.testing.assert_frame_equal(again, frame)
        await feed.close()
        feed = make_feed(tmp_path, fake)  # a restart, on the same database
        feed.use_store(store)
        pd.testing.assert_frame_equal(await feed.history(["AAPL"], start, end, "1d"), frame)
        assert fake.count("GET", "/v2/stocks/bars") == asked
    finally:
        await feed.close()
        await store.close()


async def test_history_stops_at_the_clock_and_explains_unknown_symbols(
        tmp_path: Path, fake: FakeAlpaca) -> None:
    days = CALENDAR.sessions(date(2024, 1, 2), date(2024, 1, 5))
    fake.bars = {"AAPL": [daily(day, 185.0, 186.0, 184.0, 185.5) for day in days]}
    now = to_ns(datetime(2024, 1, 4, 12, 0, tzinfo=UTC))  # before the 4th's open
    feed = make_feed(tmp_path, fake, clock=SimClock(now))
    try:
        frame = await feed.history(["AAPL"], datetime(2024, 1, 1, tzinfo=UTC),
                                   datetime(2024, 1, 31, tzinfo=UTC), "1d")
        assert list(frame["ts"]) == [session_open(day) for day in days[:2]]
        with pytest.raises(FeedError, match="unknown symbol 12AB"):
            await feed.history(["12AB"], datetime(2024, 1, 1, tzinfo=UTC),
                               datetime(2024, 1, 3, tzinfo=UTC), "1d")
        with pytest.raises(FeedError, match="serves 1d and 1m"):
            await feed.history(["AAPL"], datetime(2024, 1, 1, tzinfo=UTC),
                               datetime(2024, 1, 3, tzinfo=UTC), "5m")
    finally:
        await feed.close()


async def test_validate_known_unknown_and_cached(feed: AlpacaFeed, fake: FakeAlpaca) -> None:
    found = await feed.validate(["AAPL", "ZZZZ", "not a symbol"])
    aapl = found["AAPL"]
    assert aapl is not None
    assert (aapl.name, aapl.exchange, aapl.source) == ("AAPL (fake)", "NASDAQ", "alpaca")
    assert found["ZZZZ"] is None
    assert found["not a symbol"] is None
    asked = fake.count("GET", "/v2/assets")
    assert asked == 2
    assert (await feed.validate(["AAPL", "ZZZZ"])) == {"AAPL": aapl, "ZZZZ": None}
    assert fake.count("GET", "/v2/assets") == asked
    assert "AAPL" in [i.symbol for i in feed.search("AAP")]
    assert "AAPL" in feed.suggest("APPL")


# ---------------------------------------------------------------------- streaming


async def test_quotes_trades_and_bars_stream_as_batches(feed: AlpacaFeed,
                                                        fake: FakeAlpaca) -> None:
    today = CALENDAR.session_date(time.time_ns())
    before = CALENDAR.previous_session(today)
    fake.bars = {"AAPL": [daily(CALENDAR.previous_session(before), 180, 182, 179, 181),
                          daily(before, 181, 184, 180, 183.0)]}
    fake.push_trade("AAPL", 185.0, 10)  # the latest, before anyone is connected
    fake.push_quote("AAPL", 184.9, 185.1)
    stream = feed.stream(["AAPL"])
    try:
        first = await next_batch(stream)  # the catch-up: the reference close, the latest
        assert [type(e) for e in first] == [Bar, Trade, Quote]
        reference = first[0]
        assert isinstance(reference, Bar)
        assert (reference.interval_s, reference.close) == (86_400, 183.0)
        assert reference.ts_ns == CALENDAR.open_close_ns(before)[0]
        await subscribed(fake, "AAPL")
        assert fake.subscriptions() == {"bars": ["AAPL"], "quotes": ["AAPL"],
                                        "trades": ["AAPL"]}
        at = datetime.now(UTC).replace(second=0, microsecond=0)
        fake.push_quote("AAPL", 189.9, 190.1, 200, 300, ts=at)
        fake.push_trade("AAPL", 190.0, 50, ts=at)
        fake.push_bar("AAPL", 189.0, 190.5, 188.5, 190.0, 12_000, ts=at)
        events = await collect(stream, lambda got: len(got) >= 3)
        stamp = to_ns(at)
        assert events == [Quote("AAPL", stamp, 189.9, 190.1, 200.0, 300.0),
                          Trade("AAPL", stamp, 190.0, 50.0),
                          Bar("AAPL", stamp, 60, 189.0, 190.5, 188.5, 190.0, 12_000.0)]
        assert feed.note() == "IEX only: one exchange's prices"
        assert fake.data_connections == 1
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    await wait_for(lambda: fake.data_connections == 0, 2)


async def test_subscribe_while_running_uses_the_same_connection(feed: AlpacaFeed,
                                                                fake: FakeAlpaca) -> None:
    stream = feed.stream(["AAPL"])
    try:
        await next_batch(stream)
        await subscribed(fake, "AAPL")
        fake.push_trade("MSFT", 410.0)  # MSFT's latest, for the catch-up of a new symbol
        await feed.subscribe(["MSFT"])
        await subscribed(fake, "AAPL", "MSFT")
        fake.push_quote("MSFT", 409.0, 411.0)
        events = await collect(stream, lambda got: {Quote, Trade} <= {type(e) for e in got})
        # The new symbol's catch-up (its latest trade) and its live quote.
        assert [(e.symbol, e.price) for e in events if type(e) is Trade] == [("MSFT", 410.0)]
        # (The catch-up may carry that quote too, when it asks after the push.)
        assert {(e.symbol, e.bid) for e in events if type(e) is Quote} == {("MSFT", 409.0)}
        await feed.unsubscribe(["AAPL"])
        await wait_for(lambda: fake.subscriptions().get("quotes") == ["MSFT"], 5)
        assert fake.data_connects_total == 1
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def test_a_dropped_stream_raises_and_the_next_one_reconnects(
        feed: AlpacaFeed, fake: FakeAlpaca) -> None:
    stream = feed.stream(["AAPL"])
    await next_batch(stream)
    await subscribed(fake, "AAPL")
    fake.drop_streams("data")
    with pytest.raises(FeedError, match="connection to Alpaca was lost"):
        await collect(stream, lambda got: False)
    stream = feed.stream(["AAPL"])
    try:
        await next_batch(stream)
        await subscribed(fake, "AAPL")
        assert fake.data_connects_total == 2
        fake.push_quote("AAPL", 190.0, 190.2)
        events = await collect(stream, lambda got: bool(got))
        assert [(type(e), e.symbol) for e in events] == [(Quote, "AAPL")]
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def test_the_connection_limit_is_explained(tmp_path: Path, feed: AlpacaFeed,
                                                 fake: FakeAlpaca) -> None:
    other = make_feed(tmp_path, fake)  # another tapedeck with the same keys
    holder = other.stream(["SPY"])
    await next_batch(holder)
    stream = feed.stream(["AAPL"])
    with pytest.raises(FeedError) as raised:
        await next_batch(stream)
    assert str(raised.value) == CONNECTION_LIMIT
    assert feed.note() == CONNECTION_LIMIT_NOTE
    await wait_for(lambda: fake.data_connections == 1, 2)  # the refused one is closed
    await holder.aclose()  # type: ignore[attr-defined]
    await other.close()
    stream = feed.stream(["AAPL"])
    try:
        await next_batch(stream)
        assert feed.note() == "IEX only: one exchange's prices"  # the problem is over
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def test_bad_and_missing_keys_are_explained(tmp_path: Path, fake: FakeAlpaca) -> None:
    settings = feed_settings(tmp_path, fake, secret_key="wrong")
    feed = AlpacaFeed.from_settings(settings)
    try:
        with pytest.raises(FeedError, match=r"refused the API keys.*APCA_API_KEY_ID"):
            await next_batch(feed.stream(["AAPL"]))
        assert "refused the API keys" in feed.note()
        with pytest.raises(FeedError, match=r"refused the API keys.*APCA_API_SECRET_KEY"):
            await feed.history(["AAPL"], datetime(2024, 1, 1, tzinfo=UTC),
                               datetime(2024, 1, 5, tzinfo=UTC), "1d")
        assert fake.data_connections == 0
    finally:
        await feed.close()
    with pytest.raises(FeedError, match="no Alpaca API keys"):
        AlpacaFeed.from_settings(make_settings(tmp_path, feed={"provider": "alpaca"}))


async def test_updates_are_expected_in_market_hours_with_symbols(tmp_path: Path,
                                                                  fake: FakeAlpaca) -> None:
    open_ = to_ns(datetime(2024, 1, 3, 15, 0, tzinfo=UTC))  # a Wednesday, 10:00 in New York
    clock = SimClock(open_)
    feed = make_feed(tmp_path, fake, clock=clock)
    assert not feed.expects_updates()  # nothing subscribed
    await feed.subscribe(["AAPL"])
    assert feed.expects_updates()
    clock.set_ns(to_ns(datetime(2024, 1, 3, 22, 0, tzinfo=UTC)))  # after the close
    assert not feed.expects_updates()
    await feed.close()


# ---------------------------------------------------------------------- supervised


def supervise(feed: AlpacaFeed, backoff: Backoff, stall_after_s: float,
              batches: list[Sequence[MarketEvent]], states: list[tuple[FeedState, str]]
              ) -> asyncio.Task[None]:
    supervisor = FeedSupervisor(feed, lambda: ["AAPL"], batches.append,
                                lambda state, message: states.append((state, message)),
                                backoff, stall_after_s, seed=7)
    return asyncio.create_task(supervisor.run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_watchdog_reconnects_a_silent_stream(
        feed: AlpacaFeed, fake: FakeAlpaca, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "expects_updates", lambda: True)  # as in market hours
    batches: list[Sequence[MarketEvent]] = []
    states: list[tuple[FeedState, str]] = []
    task = supervise(feed, Backoff(0.05, 0.2), 0.5, batches, states)
    try:
        await subscribed(fake, "AAPL")
        fake.silence_data(True)  # connected, subscribed, and mute (alpaca-py#740)
        fake.push_quote("AAPL", 190.0, 190.2)
        await wait_for(lambda: fake.data_connects_total >= 2, 5)
        assert any("no data for 0.5 s" in message for _, message in states)
        fake.silence_data(False)

        def arrived() -> bool:
            return any(type(e) is Quote and e.bid == 191.0 for batch in batches for e in batch)

        while not arrived():  # quotes keep coming, as in a live market
            fake.push_quote("AAPL", 191.0, 191.2)
            await asyncio.sleep(0.1)
        assert fake.data_connections == 1  # the silent one was closed, not left open
    finally:
        await stop(task)
    await wait_for(lambda: fake.data_connections == 0, 2)


async def test_repeated_failures_back_off(feed: AlpacaFeed, fake: FakeAlpaca,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "expects_updates", lambda: True)
    fake.data_connection_limit = 0  # every connection is refused (406)
    batches: list[Sequence[MarketEvent]] = []
    states: list[tuple[FeedState, str]] = []
    task = supervise(feed, Backoff(0.2, 1.0), 0.5, batches, states)
    try:
        await asyncio.sleep(2.0)
    finally:
        await stop(task)
    # 0.2, 0.4, 0.8, 1.0 s ceilings (at least half each): at most six tries in 2 s.
    assert 2 <= fake.data_connects_total <= 6
    assert not batches
    assert any(state == FeedState.RECONNECTING and CONNECTION_LIMIT in message
               for state, message in states)
    assert feed.note() == CONNECTION_LIMIT_NOTE
    assert fake.data_connections == 0


# ---------------------------------------------------------------------- end to end


async def test_engine_shows_alpaca_quotes(tmp_path: Path, fake: FakeAlpaca) -> None:
    engine = await Engine.open(feed_settings(tmp_path, fake))
    await engine.start()
    try:
        assert engine.feed.name == "alpaca"
        await subscribed(fake, "AAPL", "MSFT", "JPM", "XOM", "CVX")
        fake.push_quote("AAPL", 189.5, 189.7, 300, 400)
        fake.push_trade("AAPL", 189.6, 25)
        await wait_for(lambda: engine.snapshot().rows["AAPL"].last == 189.6, 5)
        row = engine.snapshot().rows["AAPL"]
        assert (row.bid, row.ask, row.bid_size, row.ask_size) == (189.5, 189.7, 300, 400)
        assert engine.status().feed_state == FeedState.LIVE
        assert fake.data_connects_total == 1
    finally:
        await engine.stop()
    await wait_for(lambda: fake.data_connections == 0, 2)
