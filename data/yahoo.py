"""The `yahoo` provider: Yahoo Finance prices, delayed, free and without an account.

History comes from Yahoo's chart API (through `data.yahoo_client`, the only code that
calls yfinance) and is kept in the profile's database (`data.bar_cache`), so a restart
or a second chart asks Yahoo only for what it has never fetched. Live prices come from
Yahoo's websocket; when the socket fails the feed polls minute bars every
`poll_interval_s` and tries the socket again every few minutes.

Yahoo rate-limits without warning, and sometimes in disguise: a symbol it served a
minute ago comes back "possibly delisted; no timezone found", or empty. Then no request
goes to Yahoo for a while (`rate_limit_backoff_s`, doubling with jitter up to
`rate_limit_backoff_max_s`), history is served from the database, and the status bar
says so. To tell that from a symbol Yahoo really does not know, the feed asks for one
it always has (SPY): when that comes back empty too, it is rate limiting.

What the feed does when it cannot do everything asked:
- history() while rate-limited returns what the database holds (possibly part of the
  span), and raises FeedError only when it holds nothing for any symbol asked.
- history() for several symbols leaves out (and logs) those it cannot serve, and raises
  only when it can serve none; an unknown symbol asked for alone raises its FeedError.
- validate() never raises: a symbol it cannot check now (rate limiting, no network) is
  accepted unchecked and checked again next time, so starting during a rate-limit wave
  does not mark a whole watchlist unknown.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pandas as pd

from core.clock import Clock, ExchangeCalendar, LiveClock
from core.feeds import Backoff, FeedError
from core.model import (
    NS_PER_SECOND,
    Bar,
    Instrument,
    MarketEvent,
    MarketPhase,
    to_ns,
    utc_datetime,
)
from data.bar_cache import BarCache
from data.provider_common import SymbolBook, bars_frame
from data.yahoo_bars import (
    DAY_NS,
    INTERVALS,
    IntervalSpec,
    earliest_ns,
    frame_rows,
    has_trading,
    interval_spec,
    limit_message,
    request_bounds,
    request_spans,
    yahoo_ticker,
)
from data.yahoo_client import YahooClient, YahooNoData
from data.yahoo_live import RateGate, RateLimitedNow, YahooLive, duration_text

if TYPE_CHECKING:
    from core.config import Settings
    from core.config_venues import YahooSettings
    from core.store import BarRow, Store
    from data.bundle import LoadReport

log = logging.getLogger(__name__)

CONTROL_SYMBOLS = ("SPY", "AAPL")  # symbols Yahoo always has
CONTROL_FRESH_NS = 60 * NS_PER_SECOND  # a good answer for a control symbol holds this long
REFERENCE_DAYS = 14  # calendar days searched for the previous session's daily bar


def unknown_symbol_text(symbol: str) -> str:
    return f"unknown symbol {symbol}: Yahoo has no data for it (delisted or mistyped?)"


class YahooFeed:
    """Implements `core.feeds.MarketData`, `UsesStore` and `FeedNotes` over Yahoo."""

    name = "yahoo"
    delayed = True  # not a consolidated real-time feed: the screen labels it DELAYED

    def __init__(self, settings: YahooSettings, *, client: YahooClient | None = None,
                 clock: Clock | None = None, calendar: ExchangeCalendar | None = None,
                 known_symbols: Sequence[str] = (), heartbeat_s: float = 5.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rng: random.Random | None = None) -> None:
        self.clock: Clock = clock or LiveClock()
        # Yahoo's socket sends only on a change and the fallback polls: a price is not
        # stale until well past a poll (the engine takes the larger of this and
        # [feed] stale_after_s).
        self.stale_after_s = max(60.0, 2 * settings.poll_interval_s)
        self.calendar = calendar or ExchangeCalendar()
        self._client = client or YahooClient(settings.request_timeout_s)
        self._gate = RateGate(
            self.clock, Backoff(settings.rate_limit_backoff_s, settings.rate_limit_backoff_max_s),
            rng or random.Random())
        self._cache = BarCache("yahoo", self.clock.now_ns)
        self._store: Store | None = None
        self._serving_ns = -CONTROL_FRESH_NS  # when a control symbol last came back
        # symbol -> its instrument, or None when Yahoo does not know it (this run only)
        # What is known without I/O, and what checking symbols found (this run only).
        self._symbols = SymbolBook("yahoo", known_symbols)
        self._live = YahooLive(settings, self._client, self._gate, self.clock, self.calendar,
                               reference=self._reference_bar, seen=self._mark_valid,
                               heartbeat_s=heartbeat_s, sleep=sleep)

    @classmethod
    def from_settings(cls, settings: Settings) -> YahooFeed:
        known: list[str] = []
        try:
            from data.bundle import BundledDailyBars

            known = BundledDailyBars().symbols()
        except Exception as error:  # completion only: never worth failing the start
            log.debug("no bundled symbols for completion: %s", error)
        # Beat well inside the supervisor's stall limit while the feed is quiet on purpose.
        heartbeat = max(0.5, min(5.0, settings.feed.stall_after_s / 3))
        return cls(settings.yahoo, known_symbols=known, heartbeat_s=heartbeat)

    def use_store(self, store: Store) -> None:
        self._store = store
        self._cache.use_store(store)

    # ------------------------------------------------------------------ status

    def note(self) -> str:
        wait = self._gate.wait_s()
        if wait > 0:
            return f"rate-limited by Yahoo: cached data, retrying in {wait} s"
        if self._live.polling:
            return f"polling every {duration_text(self._live.poll_every_s())}"
        return ""

    def expects_updates(self) -> bool:
        return self.calendar.phase(self.clock.now_ns()) == MarketPhase.OPEN

    # ------------------------------------------------------------------ symbols

    def search(self, text: str, limit: int = 20) -> list[Instrument]:
        return self._symbols.search(text, limit, self._live.tickers.values())

    def suggest(self, symbol: str) -> list[str]:
        return self._symbols.suggest(symbol)

    async def validate(self, symbols: Sequence[str]) -> dict[str, Instrument | None]:
        return await self._symbols.validate(symbols, self._check)

    async def _check(self, symbol: str) -> Instrument | None:
        try:
            found = await self._lookup(symbol)
            if found is not None:
                return found
            if await self._yahoo_is_serving(symbol):
                self._symbols.instruments[symbol] = None
                return None
            self._gate.trip(f"no data for {symbol} nor for {CONTROL_SYMBOLS[0]}")
            why = "rate-limited by Yahoo"
        except RateLimitedNow:
            why = "rate-limited by Yahoo"
        except Exception as error:
            why = f"{type(error).__name__}: {error}"
        log.warning("could not check %s with Yahoo (%s): accepted unchecked", symbol, why)
        return Instrument(symbol, source="yahoo")

    async def _lookup(self, symbol: str) -> Instrument | None:
        """The instrument, remembered, or None when Yahoo sent nothing for it."""
        try:
            info = await self._gate.request(self._client.lookup, yahoo_ticker(symbol))
        except YahooNoData:
            return None
        instrument = Instrument(symbol, name=info.name, exchange=info.exchange or "US",
                                currency=info.currency or "USD", source="yahoo")
        self._symbols.instruments[symbol] = instrument
        return instrument

    async def _yahoo_is_serving(self, symbol: str) -> bool:
        """Whether Yahoo answers for a symbol it always has: when it does not, its "no
        data" answers are rate limiting in disguise."""
        now = self.clock.now_ns()
        if now - self._serving_ns < CONTROL_FRESH_NS:
            return True
        control = next(name for name in CONTROL_SYMBOLS if name != symbol)
        try:
            await self._gate.request(self._client.lookup, control)
        except YahooNoData:
            return False
        self._serving_ns = now
        return True

    def _mark_valid(self, symbol: str) -> None:
        if self._symbols.instruments.get(symbol) is None:
            self._symbols.instruments[symbol] = Instrument(symbol, source="yahoo")

    # ------------------------------------------------------------------ history

    async def history(self, symbols: Sequence[str], start: datetime, end: datetime,
                      interval: str) -> pd.DataFrame:
        spec = interval_spec(interval)
        now = self.clock.now_ns()
        start_ns, end_ns = _as_ns(start), min(_as_ns(end), now + 1)
        wanted = list(dict.fromkeys(symbols))
        if end_ns <= start_ns or not wanted:
            return bars_frame({})
        earliest = earliest_ns(spec, now)
        if earliest is not None and start_ns < earliest:
            if end_ns <= earliest:
                raise FeedError(limit_message(spec))
            log.info("%s: %s served from %s", limit_message(spec), ", ".join(wanted),
                     f"{utc_datetime(earliest):%Y-%m-%d %H:%M} UTC")
            start_ns = earliest
        found: dict[str, list[BarRow]] = {}
        problems: list[str] = []
        cached_only: list[str] = []
        for symbol in wanted:
            try:
                found[symbol] = await self._rows(symbol, interval, spec, start_ns, end_ns)
            except RateLimitedNow:
                found[symbol] = await self._stored(symbol, interval, start_ns, end_ns)
                cached_only.append(symbol)
            except FeedError as error:
                problems.append(str(error))
        if not any(found.values()):
            if cached_only:
                raise FeedError(f"rate-limited by Yahoo: no cached {spec.label} bars for "
                                f"{', '.join(cached_only)}; retrying in {self._gate.wait_s()} s")
            if problems:
                raise FeedError("; ".join(problems))
        for problem in problems:
            log.warning("%s", problem)
        if cached_only:
            log.warning("rate-limited by Yahoo: %s history from cached data only",
                        ", ".join(cached_only))
        return bars_frame({s: rows for s, rows in found.items() if rows})

    async def _stored(self, symbol: str, interval: str, start_ns: int, end_ns: int
                      ) -> list[BarRow]:
        if self._store is None:
            return []
        return await self._store.load_bars(symbol, interval, start_ns, end_ns)

    async def _rows(self, symbol: str, interval: str, spec: IntervalSpec, start_ns: int,
                    end_ns: int) -> list[BarRow]:
        """A symbol's bars in [start, end): cached where fetched before, from Yahoo
        elsewhere."""
        if self._symbols.is_unknown(symbol):
            raise FeedError(unknown_symbol_text(symbol))

        async def fetch(gap_start: int, gap_end: int) -> list[BarRow]:
            rows: list[BarRow] = []
            for span_start, span_end in request_spans(spec, gap_start, gap_end):
                rows.extend(await self._fetch_span(symbol, spec, span_start, span_end))
            return rows

        return await self._cache.bars(symbol, interval, start_ns, end_ns, fetch)

    async def _fetch_span(self, symbol: str, spec: IntervalSpec, start_ns: int,
                          end_ns: int) -> list[BarRow]:
        """One request's worth of bars, cleaned; an empty answer for a span with
        trading in it is explained (unknown symbol, or rate limiting in disguise)."""
        first, last = request_bounds(spec, start_ns, end_ns)
        frame: pd.DataFrame | None = None
        try:
            try:
                frame = await self._gate.request(self._client.history, yahoo_ticker(symbol),
                                                 first, last, spec.yahoo)
            except YahooNoData as error:
                if error.reason and "delisted" not in error.reason.lower():
                    raise FeedError(f"Yahoo has no {spec.label} bars for {symbol} there: "
                                    f"{error.reason}") from error
            rows, report = frame_rows(frame, spec, self.calendar)
            self._log_report(symbol, spec, report, logging.WARNING)
            rows = [row for row in rows if start_ns <= row[0] < end_ns]
            if rows:
                self._mark_valid(symbol)
            elif has_trading(spec, start_ns, end_ns, self.calendar):
                await self._explain_missing(symbol, spec)
        except FeedError:
            raise
        except Exception as error:
            raise FeedError(f"Yahoo history request for {symbol} failed: {error}") from error
        return rows

    async def _explain_missing(self, symbol: str, spec: IntervalSpec) -> None:
        """Yahoo sent nothing for a span with trading in it. Returns when the symbol is
        known and Yahoo is serving (it has no bars there); raises FeedError for a symbol
        Yahoo does not know, RateLimitedNow when it is rate limiting in disguise."""
        known = self._symbols.instruments.get(symbol) is not None
        if not known and await self._lookup(symbol) is not None:
            return
        if await self._yahoo_is_serving(symbol):
            if known:
                return
            self._symbols.instruments[symbol] = None
            raise FeedError(unknown_symbol_text(symbol))
        self._gate.trip(f"no {spec.label} bars for {symbol}, which it served before"
                        if known else f"no data for {symbol} nor for a control symbol")
        raise RateLimitedNow(self._gate.text())

    @staticmethod
    def _log_report(symbol: str, spec: IntervalSpec, report: LoadReport, level: int) -> None:
        summary = report.summary()
        if summary != "clean":
            log.log(level, "%s %s bars from Yahoo: %s", symbol, spec.yahoo, summary)

    # ------------------------------------------------------------------ streaming

    def stream(self, symbols: Sequence[str]) -> AsyncIterator[Sequence[MarketEvent]]:
        return self._live.stream(symbols)

    async def subscribe(self, symbols: Sequence[str]) -> None:
        await self._live.subscribe(symbols)

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        await self._live.unsubscribe(symbols)

    async def _reference_bar(self, symbol: str) -> Bar | None:
        """The daily bar of the session before the latest one begun: the reference
        close the day's change is measured from."""
        now = self.clock.now_ns()
        today = self.calendar.session_date(now)
        day = today if self.calendar.is_session(today) else self.calendar.previous_session(today)
        if self.calendar.open_close_ns(day)[0] > now:
            day = self.calendar.previous_session(day)
        end = self.calendar.open_close_ns(day)[0]
        try:
            rows = await self._rows(symbol, "1d", INTERVALS["1d"],
                                    end - REFERENCE_DAYS * DAY_NS, end)
        except RateLimitedNow:
            raise
        except FeedError as error:
            log.debug("no previous daily bar for %s: %s", symbol, error)
            return None
        if not rows:
            return None
        ts, o, h, lo, c, v = rows[-1]
        return Bar(symbol, ts, 86_400, o, h, lo, c, v)

    async def close(self) -> None:
        """Stop streaming and close the socket; a running stream() ends."""
        await self._live.close()


def _as_ns(moment: datetime) -> int:
    # The protocol's datetimes are UTC; a naive one is read as UTC rather than refused.
    return to_ns(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))
