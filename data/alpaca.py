"""The `alpaca` provider: Alpaca's market data in real time, with an account's API keys.

Live prices come over ONE market-data websocket per feed (`data.alpaca_live`), carrying
quotes, trades and minute bars for every subscribed symbol: most Alpaca plans allow a
single connection per account, and a second one is refused ("connection limit
exceeded", 406). It has no reconnect loop of its own: the engine's `FeedSupervisor`
restarts it with backoff, and its watchdog restarts a stream gone silent.

Each connection starts with a catch-up batch from the REST API (the previous session's
daily bar, the latest trade and quote of each symbol): the watchlist shows prices and
the day's change at once, and after the close too, when nothing streams.

History (1d and 1m) comes from `StockHistoricalDataClient` in worker threads, under the
request timeout, split-adjusted, and is kept in the profile's database
(`data.bar_cache`). Symbols are checked against the trading API's assets.

`delayed` is False for both feeds: IEX (the free plan) is real time, only narrower (one
exchange's quotes and trades, a few percent of the volume). Labelling it DELAYED would
tell the trader the prices lag, which they do not; `note()` says "IEX only" instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from alpaca.data.enums import Adjustment, DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest, StockLatestTradeRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.enums import AssetClass, AssetStatus
from alpaca.trading.models import Asset

from core.brokers.alpaca_rest import (
    AlpacaError,
    AlpacaNotFound,
    AlpacaRest,
    AlpacaUnauthorized,
    _TimeoutSession,
    classify,
)
from core.clock import Clock, ExchangeCalendar, LiveClock
from core.config_venues import AlpacaKeys, MissingKeys, alpaca_keys
from core.feeds import FeedError
from core.model import (
    Instrument,
    MarketEvent,
    MarketPhase,
    Trade,
    is_well_formed_symbol,
    normalize_symbol,
    to_ns,
    utc_datetime,
)
from data.alpaca_bars import (
    DAY_NS,
    INTERVAL_SECONDS,
    KEYS_HELP,
    clean_rows,
    latest_events,
    reference_bar,
    reference_day,
)
from data.alpaca_live import AlpacaLive
from data.bar_cache import BarCache
from data.provider_common import SymbolBook, bars_frame

if TYPE_CHECKING:
    import pandas as pd

    from core.config import Settings
    from core.config_venues import AlpacaSettings
    from core.store import BarRow, Store

log = logging.getLogger(__name__)

T = TypeVar("T")
REFERENCE_DAYS = 14  # calendar days searched for the previous session's daily bar
HISTORY_CONCURRENCY = 4  # symbols fetched at once (Alpaca allows 200 requests a minute)


def unknown_symbol_text(symbol: str) -> str:
    return f"unknown symbol {symbol}: Alpaca has no US stock by that name"


class AlpacaFeed:
    """Implements `core.feeds.MarketData`, `UsesStore` and `FeedNotes` over Alpaca."""

    name = "alpaca"
    delayed = False  # IEX too: real time, one exchange (see the module's docstring)

    def __init__(self, settings: AlpacaSettings, keys: AlpacaKeys, *,
                 clock: Clock | None = None, calendar: ExchangeCalendar | None = None,
                 known_symbols: Sequence[str] = ()) -> None:
        self.settings = settings
        self.keys = keys
        self.clock: Clock = clock or LiveClock()
        self.calendar = calendar or ExchangeCalendar()
        self._data_feed = DataFeed.SIP if settings.data_feed == "sip" else DataFeed.IEX
        self._data = StockHistoricalDataClient(keys.key_id, keys.secret_key, raw_data=True,
                                               url_override=settings.data_url)
        # Below the public API (hence the pinned alpaca-py): the client sends with no
        # timeout at all. Its retry of a 429 (sleeping 3 s, three times) stays: it
        # sleeps in the worker thread, not on the loop.
        self._data._session = _TimeoutSession(settings.request_timeout_s)
        self._trading = AlpacaRest(settings, keys)  # assets live on the trading host
        self._cache = BarCache("alpaca", self.clock.now_ns)
        # symbol -> its instrument, or None when Alpaca has no such stock (this run only)
        # What is known without I/O, and what checking symbols found (this run only).
        self._symbols = SymbolBook("alpaca", known_symbols)
        self._live = AlpacaLive(settings, keys, self._catch_up)

    @classmethod
    def from_settings(cls, settings: Settings) -> AlpacaFeed:
        try:
            keys = alpaca_keys(settings.alpaca)
        except MissingKeys as error:
            raise FeedError(str(error)) from None
        known: list[str] = []
        try:
            from data.bundle import BundledDailyBars

            known = BundledDailyBars().symbols()
        except Exception as error:  # completion only: never worth failing the start
            log.debug("no bundled symbols for completion: %s", error)
        return cls(settings.alpaca, keys, known_symbols=known)

    def use_store(self, store: Store) -> None:
        self._cache.use_store(store)

    # ------------------------------------------------------------------ status

    def note(self) -> str:
        if self._live.problem:
            return self._live.problem
        return "IEX only: one exchange's prices" if self._data_feed == DataFeed.IEX else ""

    def expects_updates(self) -> bool:
        return bool(self._live.wanted) and (
            self.calendar.phase(self.clock.now_ns()) == MarketPhase.OPEN)

    # ------------------------------------------------------------------ symbols

    def search(self, text: str, limit: int = 20) -> list[Instrument]:
        return self._symbols.search(text, limit, self._live.wanted)

    def suggest(self, symbol: str) -> list[str]:
        return self._symbols.suggest(symbol)

    async def validate(self, symbols: Sequence[str]) -> dict[str, Instrument | None]:
        """Never raises: a symbol that cannot be checked now (no network, refused keys)
        is accepted unchecked and checked again next time; the stream says what is
        wrong."""
        return await self._symbols.validate(symbols, self._check)

    async def _check(self, symbol: str) -> Instrument | None:
        try:
            asset = await self._trading.call(_get_asset, symbol)
        except AlpacaNotFound:
            self._symbols.instruments[symbol] = None
            return None
        except AlpacaError as error:
            log.warning("could not check %s with Alpaca (%s): accepted unchecked", symbol, error)
            return Instrument(symbol, source="alpaca")
        instrument: Instrument | None = None
        if asset.asset_class != AssetClass.US_EQUITY or asset.status != AssetStatus.ACTIVE:
            log.info("%s: Alpaca lists it as %s %s: no market data", symbol,
                     asset.status.value, asset.asset_class.value)
        else:
            if not asset.tradable:
                log.info("%s is not tradable at Alpaca: prices only", symbol)
            instrument = Instrument(symbol, name=asset.name or "", exchange=asset.exchange.value,
                                    source="alpaca")
            self._symbols.known.add(symbol)
        self._symbols.instruments[symbol] = instrument
        return instrument

    # ------------------------------------------------------------------ history

    async def history(self, symbols: Sequence[str], start: datetime, end: datetime,
                      interval: str) -> pd.DataFrame:
        """Bars in [start, end), never beyond the clock. A symbol that fails is left out
        (and logged) when others are served; FeedError when none can be."""
        if interval not in INTERVAL_SECONDS:
            raise FeedError(f"unknown interval {interval!r}: Alpaca history serves 1d and 1m")
        now = self.clock.now_ns()
        start_ns, end_ns = _as_ns(start), min(_as_ns(end), now + 1)
        wanted = list(dict.fromkeys(normalize_symbol(s) for s in symbols))
        if end_ns <= start_ns or not wanted:
            return bars_frame({})
        gate = asyncio.Semaphore(HISTORY_CONCURRENCY)

        async def rows(symbol: str) -> list[BarRow]:
            if not is_well_formed_symbol(symbol) or (
                    self._symbols.is_unknown(symbol)):
                raise FeedError(unknown_symbol_text(symbol))
            async with gate:
                return await self._cache.bars(symbol, interval, start_ns, end_ns,
                                              self._fetcher(symbol, interval))

        answers = await asyncio.gather(*(rows(s) for s in wanted), return_exceptions=True)
        found: dict[str, list[BarRow]] = {}
        problems: list[FeedError] = []
        for symbol, answer in zip(wanted, answers, strict=True):
            if isinstance(answer, FeedError):
                problems.append(answer)
            elif isinstance(answer, BaseException):
                raise answer
            elif answer:
                found[symbol] = answer
        if problems and len(problems) == len(wanted):
            raise problems[0]
        for problem in problems:
            log.warning("%s", problem)
        return bars_frame(found)

    def _fetcher(self, symbol: str, interval: str
                 ) -> Callable[[int, int], Coroutine[Any, Any, list[BarRow]]]:
        daily = interval == "1d"

        async def fetch(gap_start: int, gap_end: int) -> list[BarRow]:
            # Alpaca stamps a daily bar with the New York midnight before the session
            # open that stamps it here: ask from a day earlier, keep what falls inside.
            # Split-adjusted (not for dividends): the last close is the price that
            # trades, and a 4:1 split does not read as a crash on a chart.
            request = StockBarsRequest(
                symbol_or_symbols=[symbol], timeframe=TimeFrame.Day if daily else TimeFrame.Minute,
                start=utc_datetime(gap_start - DAY_NS if daily else gap_start),
                end=utc_datetime(gap_end), feed=self._data_feed, adjustment=Adjustment.SPLIT)
            answer = await self._call(f"{interval} bars for {symbol}", symbol,
                                      self._data.get_stock_bars, request)
            records = answer.get(symbol) if isinstance(answer, dict) else None
            rows, report = clean_rows(records or [], daily, self.calendar)
            summary = report.summary()
            if summary != "clean":
                log.warning("%s %s bars from Alpaca: %s", symbol, interval, summary)
            return [row for row in rows if gap_start <= row[0] < gap_end]

        return fetch

    async def _call(self, what: str, symbol: str | None, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread; a failure as FeedError saying what it means."""
        try:
            return await asyncio.to_thread(fn, *args)
        except Exception as error:
            raise FeedError(self._rest_problem(classify(error), what, symbol)) from error

    def _rest_problem(self, error: AlpacaError, what: str, symbol: str | None) -> str:
        text = str(error)
        if isinstance(error, AlpacaUnauthorized):
            return f"Alpaca refused the API keys asking for {what}: {KEYS_HELP}"
        if error.status == 429:
            return (f"Alpaca is rate-limiting these keys (too many requests) for {what}: "
                    "try again in a minute")
        if error.status == 403:
            return (f"Alpaca refused {what} ({text}): the plan of these keys may not include "
                    f"{self._data_feed.value.upper()} data this recent; data_feed = \"iex\" "
                    "under [alpaca] is free")
        if symbol and error.status in (400, 404, 422) and "symbol" in text.lower():
            return f"{unknown_symbol_text(symbol)} ({text})"
        return f"Alpaca could not send {what}: {text}"

    # ------------------------------------------------------------------ streaming

    def stream(self, symbols: Sequence[str]) -> AsyncIterator[Sequence[MarketEvent]]:
        return self._live.stream(symbols)

    async def subscribe(self, symbols: Sequence[str]) -> None:
        await self._live.subscribe(symbols)

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        await self._live.unsubscribe(symbols)

    # ------------------------------------------------------------------ catch-up

    async def _catch_up(self, symbols: Sequence[str]) -> list[MarketEvent]:
        """For each symbol: the previous session's daily bar (the change's reference),
        the latest trade and the latest quote. Three requests for all the symbols; a
        failure costs only the catch-up."""
        if not symbols:
            return []
        now = self.clock.now_ns()
        names = list(symbols)
        daily = StockBarsRequest(
            symbol_or_symbols=names, timeframe=TimeFrame.Day,
            start=utc_datetime(now - REFERENCE_DAYS * DAY_NS), end=utc_datetime(now),
            feed=self._data_feed, adjustment=Adjustment.SPLIT)
        try:
            # Bounded as a whole: the first batch waits for it, and a slow or rate-limited
            # answer must not keep the stream from going live (or the watchdog would
            # restart it, and ask again).
            bars, trades, quotes = await asyncio.wait_for(asyncio.gather(
                self._call("daily bars", None, self._data.get_stock_bars, daily),
                self._call("the latest trades", None, self._data.get_stock_latest_trade,
                           StockLatestTradeRequest(symbol_or_symbols=names, feed=self._data_feed)),
                self._call("the latest quotes", None, self._data.get_stock_latest_quote,
                           StockLatestQuoteRequest(symbol_or_symbols=names, feed=self._data_feed))),
                self.settings.request_timeout_s)
        except (FeedError, TimeoutError) as error:
            log.warning("no latest prices for %s (%s): waiting for the stream",
                        ", ".join(names[:5]) + ("…" if len(names) > 5 else ""),
                        error or "no answer in time")
            return []
        events: list[MarketEvent] = []
        for symbol in names:
            latest = latest_events(symbol, _record(trades, symbol), _record(quotes, symbol))
            trade_ns = next((e.ts_ns for e in latest if type(e) is Trade), None)
            records = bars.get(symbol) if isinstance(bars, dict) else None
            rows, _ = clean_rows(records or [], True, self.calendar)
            reference = reference_bar(symbol, rows, reference_day(trade_ns, now, self.calendar),
                                      self.calendar)
            if reference is not None:
                events.append(reference)
            events.extend(latest)
        return events

    # ------------------------------------------------------------------ closing

    async def close(self) -> None:
        """Stop everything: the catch-ups, the connection (a running stream() ends with
        FeedError), the HTTP sessions."""
        await self._live.close()
        self._data._session.close()
        self._trading.client._session.close()


def _get_asset(client: Any, symbol: str) -> Asset:
    asset = client.get_asset(symbol)
    if not isinstance(asset, Asset):
        raise AlpacaError(f"an asset answer for {symbol} that cannot be read")
    return asset


def _record(answer: Any, symbol: str) -> dict[str, Any] | None:
    record = answer.get(symbol) if isinstance(answer, dict) else None
    return record if isinstance(record, dict) else None


def _as_ns(moment: datetime) -> int:
    # The protocol's datetimes are UTC; a naive one is read as UTC rather than refused.
    return to_ns(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))
