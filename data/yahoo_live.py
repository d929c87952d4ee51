"""Live prices for the Yahoo feed (`data.yahoo`), and the rate limit every request to
Yahoo passes through.

`YahooLive.stream()` sends the session so far first (minute bars from a poll, and the
previous session's daily bar), then one batch per websocket message. When the socket
fails it polls every `poll_interval_s` (every `CLOSED_POLL_S` while the market is shut,
when minute bars do not change) and tries the socket again after `SOCKET_RETRY_NS`.
Quiet stretches, on purpose, yield empty batches every heartbeat, so the supervisor's
stall watchdog does not restart a feed that is waiting as it should; a dead socket is
found by the websocket's own pings instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from core.clock import Clock
from core.feeds import Backoff, FeedError
from core.model import NS_PER_SECOND, Bar, MarketEvent, MarketPhase
from data.yahoo_bars import ONE_MINUTE, PollMark, frame_rows, message_events, poll_events
from data.yahoo_bars import yahoo_ticker as ticker_of
from data.yahoo_client import YahooClient, YahooNoData, YahooRateLimited

if TYPE_CHECKING:
    from core.clock import ExchangeCalendar
    from core.config_venues import YahooSettings

log = logging.getLogger("data.yahoo")  # one logger for the whole feed

T = TypeVar("T")

SOCKET_RETRY_NS = 300 * NS_PER_SECOND  # after a socket failure, poll this long first
CLOSED_POLL_S = 300.0
# Yahoo rate-limits bursts; a watchlist's worth of parallel requests is one.
MAX_CONCURRENT = 4


class RateLimitedNow(FeedError):
    """Yahoo is rate-limiting us: no request goes out until the backoff ends."""


def duration_text(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 120 else f"{seconds / 60:g} min"


class RateGate:
    """Every request to Yahoo goes through `request()`: at most `MAX_CONCURRENT` at a
    time, and none while backing off after a rate limit (`trip()`), which waits
    `Backoff` delays that double with each limit in a row and reset after a request
    that succeeds."""

    def __init__(self, clock: Clock, backoff: Backoff, rng: random.Random) -> None:
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)
        self._clock = clock
        self._backoff = backoff
        self._rng = rng
        self._in_a_row = 0
        self._until_ns = 0

    def wait_s(self) -> int:
        """Whole seconds until requests may go to Yahoo again (0: they may now)."""
        left = self._until_ns - self._clock.now_ns()
        return math.ceil(left / NS_PER_SECOND) if left > 0 else 0

    def text(self) -> str:
        return f"rate-limited by Yahoo: retrying in {self.wait_s()} s"

    def trip(self, why: str) -> None:
        now = self._clock.now_ns()
        if now < self._until_ns:
            return  # parallel requests hit the same limit: one backoff
        delay = self._backoff.delay(self._in_a_row, self._rng)
        self._in_a_row += 1
        self._until_ns = now + int(delay * NS_PER_SECOND)
        log.warning("rate-limited by Yahoo (%s): serving cached data, retrying in %.0f s",
                    why, delay)

    async def request(self, call: Callable[..., Awaitable[T]], *args: object) -> T:
        """`call(*args)`, unless Yahoo is rate-limiting us: then RateLimitedNow."""
        async with self._slots:
            # Checked once a slot is free: a request queued behind the one that met the
            # limit must not go out after it.
            if self.wait_s() > 0:
                raise RateLimitedNow(self.text())
            try:
                result = await call(*args)
            except YahooRateLimited as error:
                self.trip("HTTP 429")
                raise RateLimitedNow(self.text()) from error
            self._in_a_row = 0
            return result


class YahooLive:
    """The streaming half of the Yahoo feed. `reference(symbol)` gives the previous
    session's daily bar, `seen(symbol)` records a symbol Yahoo served prices for."""

    def __init__(self, settings: YahooSettings, client: YahooClient, gate: RateGate,
                 clock: Clock, calendar: ExchangeCalendar, *,
                 reference: Callable[[str], Awaitable[Bar | None]],
                 seen: Callable[[str], None], heartbeat_s: float,
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        self._settings = settings
        self._client = client
        self._gate = gate
        self._clock = clock
        self._calendar = calendar
        self._reference = reference
        self._seen = seen
        self._heartbeat_s = heartbeat_s
        self._sleep = sleep
        self.tickers: dict[str, str] = {}  # Yahoo ticker -> symbol, of the streamed
        self._pending: set[str] = set()  # streamed symbols waiting for their first prices
        self._referenced: set[str] = set()  # symbols sent their previous daily bar
        self._marks: dict[str, PollMark] = {}
        self._day_volumes: dict[str, float] = {}
        self.polling = False
        self._socket_retry_ns = 0
        self._last_poll_ns = 0
        self._closed = False

    def poll_every_s(self) -> float:
        every = self._settings.poll_interval_s
        if self._calendar.phase(self._clock.now_ns()) == MarketPhase.OPEN:
            return every
        return max(every, CLOSED_POLL_S)

    async def subscribe(self, symbols: Sequence[str]) -> None:
        new = [s for s in dict.fromkeys(symbols) if ticker_of(s) not in self.tickers]
        for symbol in new:
            self.tickers[ticker_of(symbol)] = symbol
            self._pending.add(symbol)
        try:
            await self._client.subscribe([ticker_of(s) for s in new])
        except Exception as error:  # the stream notices a dead socket by itself
            log.warning("could not add %s to Yahoo's price stream: %s", ", ".join(new), error)

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        gone = [s for s in dict.fromkeys(symbols) if ticker_of(s) in self.tickers]
        for symbol in gone:
            del self.tickers[ticker_of(symbol)]
            self._pending.discard(symbol)
            self._marks.pop(symbol, None)
            self._day_volumes.pop(symbol, None)
        try:
            await self._client.unsubscribe([ticker_of(s) for s in gone])
        except Exception as error:
            log.debug("could not take %s off Yahoo's price stream: %s", gone, error)

    async def stream(self, symbols: Sequence[str]) -> AsyncGenerator[list[MarketEvent], None]:
        if self._closed:
            return
        for symbol in symbols:
            self.tickers.setdefault(ticker_of(symbol), symbol)
        self._pending.update(symbols)
        try:
            # The session so far first: a closed market sends nothing on the socket.
            yield await self._snapshot()
            while not self._closed:
                if self._socket_due():
                    self.polling = False
                    why = "Yahoo closed it"
                    batches = self._socket_batches()
                    try:
                        while True:
                            # Only the socket's errors are caught: never one thrown in
                            # at the yield (the consumer closing this generator).
                            try:
                                batch = await anext(batches)
                            except StopAsyncIteration:
                                break
                            except Exception as error:
                                why = f"{type(error).__name__}: {error}"
                                break
                            yield batch
                    finally:
                        await batches.aclose()
                    if self._closed:
                        return
                    self._socket_retry_ns = self._clock.now_ns() + SOCKET_RETRY_NS
                    log.warning("Yahoo's price websocket failed (%s): polling every %s, "
                                "trying it again in %s", why, duration_text(self.poll_every_s()),
                                duration_text(SOCKET_RETRY_NS / NS_PER_SECOND))
                self.polling = True
                async with contextlib.aclosing(self._poll_batches()) as batches:
                    async for batch in batches:
                        yield batch
        finally:
            self.polling = False

    def _socket_due(self) -> bool:
        return (self._settings.stream and self._clock.now_ns() >= self._socket_retry_ns
                and self._gate.wait_s() == 0)

    async def _socket_batches(self) -> AsyncGenerator[list[MarketEvent], None]:
        """One batch per websocket message (an empty one when it is quiet)."""
        messages = self._client.stream(list(self.tickers), self._heartbeat_s)
        async with contextlib.aclosing(messages):
            async for message in messages:
                if self._closed:
                    return
                events = await self._snapshot() if self._pending else []
                if message:
                    events.extend(message_events(message, self.tickers, self._day_volumes,
                                                 self._clock.now_ns()))
                yield events

    async def _poll_batches(self) -> AsyncGenerator[list[MarketEvent], None]:
        """One batch per poll, and an empty one every heartbeat between them: the feed
        is quiet on purpose, not stalled."""
        # The snapshot just taken counts as a poll.
        next_poll = self._last_poll_ns + int(self.poll_every_s() * NS_PER_SECOND)
        while not self._closed and not self._socket_due():
            now = self._clock.now_ns()
            if now >= next_poll:
                next_poll = now + int(self.poll_every_s() * NS_PER_SECOND)
                yield await self._poll_all()
            elif self._pending and self._gate.wait_s() == 0:
                yield await self._snapshot()
            else:
                await self._sleep(min(self._heartbeat_s, (next_poll - now) / NS_PER_SECOND))
                yield []

    async def _snapshot(self) -> list[MarketEvent]:
        """The first prices of newly streamed symbols (kept pending while rate-limited)."""
        symbols = [s for s in self.tickers.values() if s in self._pending]
        if not symbols or self._gate.wait_s() > 0:
            return []
        return await self._poll_reporting(symbols)

    async def _poll_all(self) -> list[MarketEvent]:
        return await self._poll_reporting(list(self.tickers.values()))

    async def _poll_reporting(self, symbols: list[str]) -> list[MarketEvent]:
        self._pending.difference_update(symbols)
        events, failures = await self._poll(symbols)
        if failures and len(failures) == len(symbols):
            # Nothing works (no network?): end the stream; the supervisor reconnects
            # and the status bar and log show why.
            raise FeedError(f"no prices from Yahoo: {_summary(failures)}")
        if failures:
            log.warning("no prices from Yahoo for some symbols: %s", _summary(failures))
        return events

    async def _poll(self, symbols: Sequence[str]
                    ) -> tuple[list[MarketEvent], list[tuple[str, str]]]:
        """Each symbol's latest minute bars as events (one request per symbol, as
        yf.download would make too, but with each symbol's own error), and what
        failed."""
        if not symbols or self._gate.wait_s() > 0:
            return [], []
        self._last_poll_ns = self._clock.now_ns()
        results = await asyncio.gather(*(self._poll_symbol(s) for s in symbols),
                                       return_exceptions=True)
        events: list[MarketEvent] = []
        failures: list[tuple[str, str]] = []
        for symbol, result in zip(symbols, results, strict=True):
            if isinstance(result, RateLimitedNow):
                self._pending.add(symbol)  # its first prices when the backoff ends
                continue  # the feed's note says so
            if isinstance(result, Exception):
                failures.append((symbol, _reason(result)))
            elif isinstance(result, BaseException):
                raise result
            else:
                events.extend(result)
        return events, failures

    async def _poll_symbol(self, symbol: str) -> list[MarketEvent]:
        events: list[MarketEvent] = []
        if symbol not in self._referenced:
            reference = await self._reference(symbol)
            self._referenced.add(symbol)
            if reference is not None:
                events.append(reference)
        try:
            frame = await self._gate.request(self._client.latest, ticker_of(symbol))
        except YahooNoData:
            return events
        rows, report = frame_rows(frame, ONE_MINUTE, self._calendar)
        if report.summary() != "clean":  # every poll: quietly
            log.debug("%s 1m bars from Yahoo: %s", symbol, report.summary())
        if ticker_of(symbol) not in self.tickers:
            return []  # unsubscribed meanwhile
        if rows:
            self._seen(symbol)
        events.extend(poll_events(symbol, rows, self._marks))
        return events

    async def close(self) -> None:
        self._closed = True
        self.polling = False
        await self._client.close()


def _reason(error: Exception) -> str:
    """An error as a short phrase: curl's messages run to three sentences and a URL."""
    text = str(error) or type(error).__name__
    if "Could not resolve host" in text:
        return "cannot reach Yahoo (the host name does not resolve: no network?)"
    if "Failed to perform" in text or "curl:" in text:
        text = text.split(". See ", 1)[0]
        text = text.split("curl: ", 1)[-1]
    return text.splitlines()[0][:160]


def _summary(failures: Sequence[tuple[str, str]]) -> str:
    """"AAPL, MSFT and 23 more: <reason>" per distinct reason: one line, not one per
    symbol."""
    by_reason: dict[str, list[str]] = {}
    for symbol, reason in failures:
        by_reason.setdefault(reason, []).append(symbol)
    parts = []
    for reason, symbols in by_reason.items():
        named = ", ".join(symbols[:3])
        if len(symbols) > 3:
            named += f" and {len(symbols) - 3} more"
        parts.append(f"{named}: {reason}")
    return "; ".join(parts)
