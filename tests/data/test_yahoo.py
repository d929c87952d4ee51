"""The Yahoo feed against recorded responses: no test here reaches Yahoo (the one marked
`network` does, and is off unless asked for).

`RecordedClient` is the feed's yfinance boundary with its HTTP calls replaced by
recordings (tests/data/fixtures/yahoo); the websocket part stays real down to
yfinance's own decoder, under a fake connection in place of the network.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
from collections import deque
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yfinance.live
from websockets.exceptions import ConnectionClosedOK
from yfinance.exceptions import YFRateLimitError, YFTzMissingError
from yfinance.pricing_pb2 import PricingData

from core.clock import SimClock
from core.config import Settings
from core.config_venues import YahooSettings
from core.feeds import FeedError
from core.model import NS_PER_SECOND, Bar, Quote, Trade
from core.store import Store
from data.yahoo import YahooFeed
from data.yahoo_bars import DAY_NS, interval_spec, request_spans
from data.yahoo_client import YahooClient, YahooRateLimited, YahooSymbol, is_rate_limit

FIXTURES = Path(__file__).parent / "fixtures" / "yahoo"
NOW = datetime(2020, 1, 10, 15, 0, tzinfo=UTC)  # a Friday, 10:00 in New York: market open
DEC_5 = datetime(2019, 12, 5, 12, tzinfo=UTC)
JAN_8 = datetime(2020, 1, 8, tzinfo=UTC)
VALID = {"AAPL", "MSFT", "SPY", "NVDA"}


def recorded(name: str) -> pd.DataFrame:
    frame = pd.read_csv(FIXTURES / name, index_col=0)
    frame.index = pd.to_datetime(frame.index, utc=True).tz_convert("America/New_York")
    return frame


class HTTPError(Exception):
    """What an HTTP library raises for an error status (it carries the response)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.response = type("Response", (), {"status_code": status_code})()


def wrapped_429() -> Exception:
    """A 429 inside another error, as yfinance lets some through."""
    answer = json.loads((FIXTURES / "rate_limit.json").read_text())
    try:
        try:
            raise HTTPError(f"{answer['status_code']} Client Error: {answer['reason']} for url: "
                            f"{answer['url']}", answer["status_code"])
        except HTTPError as inner:
            raise RuntimeError("Yahoo chart request failed") from inner
    except RuntimeError as outer:
        return outer


class RecordedClient(YahooClient):
    """The yfinance boundary answering from recordings; it notes every call."""

    def __init__(self, clock: SimClock) -> None:
        super().__init__(timeout_s=1.0)
        self.clock = clock
        self.frames = {"1d": recorded("aapl_1d.csv"), "1m": recorded("aapl_1m.csv")}
        self.calls: list[tuple[Any, ...]] = []
        self.error: Exception | None = None  # raised by every call while set
        self.empty = False  # every answer empty: rate limiting in disguise

    def _answer(self, *call: Any) -> None:
        self.calls.append(call)
        if self.error is not None:
            raise self.error
        if call[1] not in VALID or (self.empty and call[0] == "symbol"):
            raise YFTzMissingError(call[1])

    def fetch_history(self, ticker: str, start: Any, end: Any, interval: str) -> pd.DataFrame:
        self._answer("history", ticker, start, end, interval)
        frame = self.frames[interval]
        if self.empty:
            return recorded("empty.csv")
        if isinstance(start, datetime):
            inside = (frame.index >= start) & (frame.index < end)
        else:
            days = frame.index.date
            inside = (days >= start) & (days < end)
        return frame[inside]

    def fetch_latest(self, ticker: str) -> pd.DataFrame:
        self._answer("latest", ticker)
        frame = self.frames["1m"]
        return frame[frame.index <= self.clock.now()]

    def fetch_symbol(self, ticker: str) -> YahooSymbol:
        self._answer("symbol", ticker)
        return YahooSymbol(f"{ticker} Inc.", "USD", "NasdaqGS")

    def count(self, kind: str) -> int:
        return sum(1 for call in self.calls if call[0] == kind)


class FakeConnection:
    """A websocket connection that delivers recorded frames, then waits to be closed."""

    def __init__(self, frames: list[str]) -> None:
        self.frames = deque(frames)
        self.sent: list[dict[str, Any]] = []
        self.closed = asyncio.Event()

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    async def recv(self) -> str:
        if self.frames:
            return self.frames.popleft()
        await self.closed.wait()
        raise ConnectionClosedOK(None, None)

    async def close(self) -> None:
        self.closed.set()


def ws_frames() -> list[str]:
    lines = (FIXTURES / "ws_messages.txt").read_text().split()
    return [json.dumps({"type": "pricing", "message": line}) for line in lines]


@pytest.fixture
def clock() -> SimClock:
    return SimClock(int(NOW.timestamp()) * NS_PER_SECOND)


@pytest.fixture
def client(clock: SimClock) -> RecordedClient:
    return RecordedClient(clock)


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    opened = await Store.open(tmp_path / "db.sqlite")
    yield opened
    await opened.close()


def make_feed(client: RecordedClient, clock: SimClock, store: Store | None = None,
              heartbeat_s: float = 5.0, **settings: Any) -> YahooFeed:
    async def sleep(seconds: float) -> None:  # the feed's waits pass at once
        clock.advance(seconds)
        await asyncio.sleep(0)

    feed = YahooFeed(YahooSettings(**settings), client=client, clock=clock,
                     known_symbols=["AAPL", "AMZN", "MSFT"], heartbeat_s=heartbeat_s, sleep=sleep,
                     rng=random.Random(3))
    if store is not None:
        feed.use_store(store)
    return feed


@pytest.fixture
def no_socket(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Yahoo's websocket refuses connections; the list counts the attempts."""
    attempts: list[int] = []

    async def refuse(url: str, **_: Any) -> None:
        attempts.append(1)
        raise OSError("connection refused")

    monkeypatch.setattr(yfinance.live, "async_connect", refuse)
    return attempts


# ---------------------------------------------------------------------- history


async def test_daily_history_comes_in_the_frame_shape_and_is_cached(
        client: RecordedClient, clock: SimClock, store: Store) -> None:
    feed = make_feed(client, clock, store)
    frame = await feed.history(["AAPL"], DEC_5, JAN_8, "1d")
    assert list(frame.columns) == ["symbol", "ts", "open", "high", "low", "close", "volume"]
    assert str(frame["ts"].dtype) == "datetime64[ns, UTC]"
    assert len(frame) == 22
    assert set(frame["symbol"]) == {"AAPL"}
    # A daily bar starts at its session's open.
    assert frame["ts"].iloc[0] == pd.Timestamp("2019-12-05 14:30", tz="UTC")
    assert frame["ts"].is_monotonic_increasing
    assert client.calls == [("history", "AAPL", date(2019, 12, 5), date(2020, 1, 8), "1d")]

    again = await feed.history(["AAPL"], DEC_5, JAN_8, "1d")
    restarted = make_feed(client, clock, store)
    after_restart = await restarted.history(["AAPL"], DEC_5, JAN_8, "1d")
    assert len(client.calls) == 1
    pd.testing.assert_frame_equal(again, frame)
    pd.testing.assert_frame_equal(after_restart, frame)


async def test_defective_rows_are_repaired_or_dropped_with_a_count(
        client: RecordedClient, clock: SimClock, caplog: pytest.LogCaptureFixture) -> None:
    feed = make_feed(client, clock)
    with caplog.at_level(logging.WARNING, logger="data.yahoo"):
        frame = await feed.history(["AAPL"], DEC_5, JAN_8, "1d")
    assert ("AAPL 1d bars from Yahoo: 1 duplicate row dropped, 1 invalid row dropped, "
            "1 out-of-range row repaired") in caplog.text
    by_day = frame.set_index(frame["ts"].dt.tz_convert("America/New_York").dt.date)
    assert date(2019, 12, 25) not in by_day.index  # the holiday's NaN row
    assert by_day.loc[date(2019, 12, 24), "volume"] == 12_160_900  # the later copy
    assert by_day.loc[date(2019, 12, 12), "high"] == by_day.loc[date(2019, 12, 12), "close"]
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()


async def test_minute_history_never_goes_beyond_the_clock(
        client: RecordedClient, clock: SimClock) -> None:
    feed = make_feed(client, clock)
    frame = await feed.history(["AAPL"], NOW - timedelta(hours=1), NOW + timedelta(hours=2),
                               "1m")
    assert len(frame) == 31  # 09:30 to 10:00 New York
    assert frame["ts"].iloc[-1] == pd.Timestamp(NOW)
    assert (frame["ts"].diff().dropna() == pd.Timedelta(minutes=1)).all()


async def test_minute_bars_older_than_30_days_are_refused_with_the_reason(
        client: RecordedClient, clock: SimClock) -> None:
    feed = make_feed(client, clock)
    with pytest.raises(FeedError, match=re.escape(
            "Yahoo keeps 1-minute bars for the last 30 days only; ask for 1d bars for "
            "older dates")):
        await feed.history(["AAPL"], datetime(2019, 11, 1, tzinfo=UTC),
                           datetime(2019, 11, 5, tzinfo=UTC), "1m")
    assert client.calls == []


async def test_a_minute_range_is_asked_for_in_7_day_requests(
        client: RecordedClient, clock: SimClock) -> None:
    feed = make_feed(client, clock)
    frame = await feed.history(["AAPL"], datetime(2019, 12, 27, tzinfo=UTC), NOW, "1m")
    spans = [(call[2], call[3]) for call in client.calls if call[0] == "history"]
    assert [(start.date(), end.date()) for start, end in spans] == [
        (date(2019, 12, 27), date(2020, 1, 3)), (date(2020, 1, 3), date(2020, 1, 10)),
        (date(2020, 1, 10), date(2020, 1, 10))]
    assert all(end - start <= timedelta(days=7) for start, end in spans)
    assert len(frame) == 30  # the recording's minutes before the clock
    assert request_spans(interval_spec("1d"), 0, 10 * DAY_NS) == [(0, 10 * DAY_NS)]


async def test_a_range_partly_older_than_30_days_returns_the_recent_part(
        client: RecordedClient, clock: SimClock, caplog: pytest.LogCaptureFixture) -> None:
    feed = make_feed(client, clock)
    with caplog.at_level(logging.INFO, logger="data.yahoo"):
        frame = await feed.history(["AAPL"], datetime(2019, 11, 20, tzinfo=UTC), NOW, "1m")
    assert len(frame) == 30
    first_start = client.calls[0][2]
    assert first_start >= NOW - timedelta(days=30)
    assert "Yahoo keeps 1-minute bars for the last 30 days only" in caplog.text
    assert len(client.calls) >= 5  # 30 days in 7-day requests


# ---------------------------------------------------------------------- rate limits


async def test_a_rate_limit_backs_off_and_serves_the_cache(
        client: RecordedClient, clock: SimClock, store: Store) -> None:
    feed = make_feed(client, clock, store)
    cached = await feed.history(["AAPL"], DEC_5, JAN_8, "1d")
    client.error = wrapped_429()

    older = datetime(2019, 11, 1, tzinfo=UTC)
    frame = await feed.history(["AAPL"], older, JAN_8, "1d")
    pd.testing.assert_frame_equal(frame, cached)  # what the database holds
    match = re.fullmatch(r"rate-limited by Yahoo: cached data, retrying in (\d+) s", feed.note())
    assert match is not None
    assert 15 <= int(match.group(1)) <= 30
    calls = len(client.calls)

    # While backing off nothing goes to Yahoo: not history, a check, nor a poll.
    await feed.history(["AAPL"], older, JAN_8, "1d")
    with pytest.raises(FeedError, match="rate-limited by Yahoo: no cached daily bars for MSFT"):
        await feed.history(["MSFT"], older, JAN_8, "1d")
    checked = await feed.validate(["NVDA"])
    assert checked["NVDA"] is not None  # accepted unchecked, not called unknown
    assert len(client.calls) == calls

    # The next limit in a row waits longer.
    clock.advance(int(match.group(1)) + 1)
    assert feed.note() == ""
    client.error = YFRateLimitError()
    await feed.history(["AAPL"], older, JAN_8, "1d")
    second = re.fullmatch(r"rate-limited by Yahoo: cached data, retrying in (\d+) s",
                          feed.note())
    assert second is not None
    assert 30 <= int(second.group(1)) <= 60
    assert len(client.calls) == calls + 1

    # Once Yahoo answers again, so does the feed.
    clock.advance(61)
    client.error = None
    frame = await feed.history(["AAPL"], older, JAN_8, "1d")
    assert len(frame) == 22
    assert feed.note() == ""
    checks = client.count("symbol")
    await feed.validate(["NVDA"])
    assert client.count("symbol") == checks + 1  # the symbol accepted unchecked, checked now


async def test_nothing_for_a_symbol_served_before_is_rate_limiting_in_disguise(
        client: RecordedClient, clock: SimClock, store: Store) -> None:
    feed = make_feed(client, clock, store)
    cached = await feed.history(["AAPL"], DEC_5, JAN_8, "1d")
    client.empty = True  # AAPL and the control symbol alike come back empty
    frame = await feed.history(["AAPL"], datetime(2019, 11, 1, tzinfo=UTC), JAN_8, "1d")
    pd.testing.assert_frame_equal(frame, cached)
    assert feed.note().startswith("rate-limited by Yahoo: cached data, retrying in ")
    assert ("symbol", "SPY") in client.calls
    calls = len(client.calls)
    await feed.history(["AAPL"], datetime(2019, 11, 1, tzinfo=UTC), JAN_8, "1d")
    assert len(client.calls) == calls


@pytest.mark.parametrize("error", [YFRateLimitError(), wrapped_429(),
                                   RuntimeError("HTTP Error 429: Too Many Requests")])
def test_an_http_429_is_recognised_however_it_is_wrapped(error: Exception) -> None:
    assert is_rate_limit(error)


def test_other_errors_are_not_rate_limits() -> None:
    assert not is_rate_limit(YFTzMissingError("XYZQ"))
    assert not is_rate_limit(HTTPError("404 Client Error: Not Found", 404))
    assert is_rate_limit(YahooRateLimited())


# ---------------------------------------------------------------------- symbols


async def test_an_unknown_symbol_is_none_and_its_history_a_clear_error(
        client: RecordedClient, clock: SimClock) -> None:
    feed = make_feed(client, clock)
    found = await feed.validate(["AAPL", "XYZQ", "not a symbol"])
    assert found["AAPL"] is not None
    assert found["AAPL"].name == "AAPL Inc."
    assert found["XYZQ"] is None
    assert found["not a symbol"] is None
    calls = len(client.calls)
    assert await feed.validate(["AAPL", "XYZQ"]) == {"AAPL": found["AAPL"], "XYZQ": None}
    message = "unknown symbol XYZQ: Yahoo has no data for it (delisted or mistyped?)"
    with pytest.raises(FeedError, match=re.escape(message)):
        await feed.history(["XYZQ"], DEC_5, JAN_8, "1d")
    assert len(client.calls) == calls  # all from memory

    fresh = make_feed(client, clock)  # never validated: found out from the history request
    with pytest.raises(FeedError, match=re.escape(message)):
        await fresh.history(["XYZQ"], DEC_5, JAN_8, "1d")
    # Several symbols: the unknown one is left out.
    frame = await fresh.history(["AAPL", "XYZQ"], DEC_5, JAN_8, "1d")
    assert set(frame["symbol"]) == {"AAPL"}


async def test_search_and_suggest_use_symbols_seen_without_io(
        client: RecordedClient, clock: SimClock) -> None:
    feed = make_feed(client, clock)
    await feed.validate(["NVDA"])
    calls = len(client.calls)
    assert [i.symbol for i in feed.search("A")][:3] == ["AAPL", "AMZN", "NVDA"]
    assert [i.symbol for i in feed.search("nvda inc")] == ["NVDA"]
    assert feed.suggest("APPL") == ["AAPL"]
    assert len(client.calls) == calls


def test_updates_are_expected_only_while_the_market_is_open(
        client: RecordedClient, clock: SimClock) -> None:
    feed = make_feed(client, clock)
    assert feed.expects_updates()
    clock.set_ns(int(datetime(2020, 1, 11, 15, tzinfo=UTC).timestamp()) * NS_PER_SECOND)
    assert not feed.expects_updates()


# ---------------------------------------------------------------------- streaming


def test_websocket_messages_decode_through_yfinance() -> None:
    line = (FIXTURES / "ws_messages.txt").read_text().split()[2]
    decoded = yfinance.live.BaseWebSocket(verbose=False)._decode_message(line)
    expected = PricingData()
    expected.ParseFromString(base64.b64decode(line))
    assert decoded["id"] == expected.id == "MSFT"
    assert decoded["bid"] == pytest.approx(161.39)


async def test_websocket_messages_become_trade_and_quote_batches(
        client: RecordedClient, clock: SimClock, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = FakeConnection(ws_frames())

    async def connect(url: str, **_: Any) -> FakeConnection:
        return connection

    monkeypatch.setattr(yfinance.live, "async_connect", connect)
    feed = make_feed(client, clock, heartbeat_s=0.01)  # a quiet socket's beat, at once
    stream = feed.stream(["AAPL", "MSFT"])
    first = list(await anext(stream))
    # The session so far: the previous session's daily bar, the minute bars, a price.
    assert Bar("AAPL", int(pd.Timestamp("2020-01-09 14:30", tz="UTC").value), 86_400,
               307.24, 310.43, 306.2, 309.63, 42527100.0) in first
    assert sum(1 for e in first if isinstance(e, Bar) and e.symbol == "AAPL"
               and e.interval_s == 60) == 31
    assert isinstance(first[-1], Trade)

    batches = [list(await anext(stream)) for _ in range(4)]
    ts = int(datetime(2020, 1, 10, 15, 0, 1, tzinfo=UTC).timestamp()) * NS_PER_SECOND
    aapl, more, msft, other = batches
    assert aapl == [Trade("AAPL", ts, pytest.approx(310.12), 100.0)]  # no volume before it
    assert more == [Trade("AAPL", ts + NS_PER_SECOND, pytest.approx(310.15), 300.0)]
    trade, quote = msft
    assert isinstance(trade, Trade)
    assert trade.symbol == "MSFT"
    assert quote == Quote("MSFT", ts + 3 * NS_PER_SECOND // 2, pytest.approx(161.39),
                          pytest.approx(161.41), 300.0, 200.0)
    assert other == []  # a ticker nobody asked for
    assert set(connection.sent[0]["subscribe"]) == {"AAPL", "MSFT"}
    assert await anext(stream) == []  # quiet: a heartbeat

    await feed.subscribe(["NVDA"])
    assert set(connection.sent[-1]["subscribe"]) == {"AAPL", "MSFT", "NVDA"}
    joined = list(await anext(stream))  # its session so far comes next
    assert {e.symbol for e in joined} == {"NVDA"}
    await feed.unsubscribe(["MSFT"])
    assert connection.sent[-1] == {"unsubscribe": ["MSFT"]}
    assert feed.note() == ""

    await feed.close()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_failed_socket_falls_back_to_polling(
        client: RecordedClient, clock: SimClock, no_socket: list[int]) -> None:
    feed = make_feed(client, clock)
    stream = feed.stream(["AAPL"])
    first = list(await anext(stream))
    assert isinstance(first[-1], Trade)
    assert first[-1].price == pytest.approx(
        recorded("aapl_1m.csv")["Close"].iloc[30])
    batches: list[list[Any]] = []
    polls = []
    while clock.now_ns() < int((NOW + timedelta(minutes=6)).timestamp()) * NS_PER_SECOND:
        batch = list(await anext(stream))
        batches.append(batch)
        if batch:
            polls.append(clock.now())
            assert feed.note() == "polling every 15 s"
    assert len(no_socket) == 2  # tried again after 5 minutes
    assert polls[1] - polls[0] == timedelta(seconds=15)
    assert all(b == [] or isinstance(b[-1], Trade) for b in batches)  # heartbeats between
    minutes = [e for b in batches for e in b if isinstance(e, Bar)]
    assert [pd.Timestamp(b.ts_ns, tz="UTC").minute for b in minutes][:2] == [1, 2]
    await stream.aclose()  # type: ignore[attr-defined]
    assert feed.note() == ""
    await feed.close()
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_polling_only_when_the_websocket_is_switched_off(
        client: RecordedClient, clock: SimClock, no_socket: list[int]) -> None:
    feed = make_feed(client, clock, stream=False, poll_interval_s=30)
    stream = feed.stream(["AAPL"])
    await anext(stream)
    await anext(stream)
    assert feed.note() == "polling every 30 s"
    assert no_socket == []
    await stream.aclose()  # type: ignore[attr-defined]
    await feed.close()


async def test_a_rate_limit_pauses_polling(
        client: RecordedClient, clock: SimClock, no_socket: list[int]) -> None:
    feed = make_feed(client, clock, stream=False)
    stream = feed.stream(["AAPL"])
    await anext(stream)
    client.error = YFRateLimitError()
    clock.advance(15)
    assert list(await anext(stream)) == []
    assert feed.note().startswith("rate-limited by Yahoo")
    calls = len(client.calls)
    for _ in range(4):
        assert list(await anext(stream)) == []
    assert len(client.calls) == calls
    await stream.aclose()  # type: ignore[attr-defined]
    await feed.close()


def test_the_feed_is_made_from_settings() -> None:
    feed = YahooFeed.from_settings(Settings())
    assert (feed.name, feed.delayed) == ("yahoo", True)
    assert feed.suggest("APPL")[0] == "AAPL"  # from the bundled symbols


@pytest.mark.network
async def test_real_aapl_daily_history_from_yahoo() -> None:
    feed = YahooFeed.from_settings(Settings())
    end = datetime.now(UTC)
    frame = await feed.history(["AAPL"], end - timedelta(days=30), end, "1d")
    await feed.close()
    assert len(frame) >= 15
    assert (frame["close"] > 0).all()
