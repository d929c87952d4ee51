"""The one place that calls yfinance: Yahoo Finance history, symbol look-ups and the live
price websocket, behind a small async interface the Yahoo feed (`data.yahoo`) uses.

yfinance is synchronous over HTTP, so every request runs in a worker thread
(`asyncio.to_thread`) and the engine's loop never waits on Yahoo (the feed limits how
many run at once). yfinance's errors become two of ours, `YahooRateLimited`
and `YahooNoData`, so the feed can tell rate limiting from a symbol Yahoo has nothing
for; anything else (a timeout, no network) passes through as it is.

Tests subclass `YahooClient` and override the `fetch_*` methods (the only yfinance HTTP
calls) to replay recorded responses; the websocket part stays real down to yfinance's
own message decoder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import pandas as pd
import yfinance as yf  # type: ignore[import-untyped]
from yfinance.exceptions import (  # type: ignore[import-untyped]
    YFPricesMissingError,
    YFRateLimitError,
    YFTickerMissingError,
    YFTzMissingError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_HTTP_429 = re.compile(r"\b429\b|too many requests", re.IGNORECASE)


class YahooRateLimited(Exception):
    """Yahoo answered 429 Too Many Requests, directly or wrapped in another error."""


class YahooNoData(Exception):
    """Yahoo had nothing for a request: an unknown or delisted symbol, a span with no
    bars, or (when it happens to a symbol it served before) rate limiting in disguise.
    `reason` is Yahoo's own explanation when it gave one."""

    def __init__(self, message: str, *, reason: str | None = None,
                 no_timezone: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.no_timezone = no_timezone


@dataclass(frozen=True, slots=True)
class YahooSymbol:
    """What a look-up tells about a symbol Yahoo knows."""

    name: str
    currency: str
    exchange: str


def is_rate_limit(error: BaseException) -> bool:
    """Whether an error is, or wraps, an HTTP 429 (yfinance raises its own
    YFRateLimitError only on some paths; others surface the HTTP error itself)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, YFRateLimitError | YahooRateLimited):
            return True
        response = getattr(current, "response", None)
        if getattr(response, "status_code", None) == 429:
            return True
        if _HTTP_429.search(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def translate_error(error: Exception) -> Exception:
    """yfinance's error as one of ours where it is one the feed acts on."""
    if isinstance(error, YahooRateLimited | YahooNoData):
        return error
    if is_rate_limit(error):
        return YahooRateLimited(str(error) or "HTTP 429 Too Many Requests")
    if isinstance(error, YFTzMissingError):
        return YahooNoData(str(error), no_timezone=True)
    if isinstance(error, YFPricesMissingError):
        return YahooNoData(str(error), reason=getattr(error, "yahoo_reason", None))
    if isinstance(error, YFTickerMissingError):
        return YahooNoData(str(error))
    return error


class YahooClient:
    """Yahoo Finance through yfinance. Symbols here are Yahoo's tickers (BRK-B, not
    BRK.B); the feed translates."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._socket: Any = None  # the open yf.AsyncWebSocket, while streaming
        # yfinance hides most errors by default: it logs them and returns an empty
        # frame, which reads the same as "no such symbol". Raised, they can be told
        # apart. (The per-call `raise_errors` is deprecated in favour of this switch.)
        yf.config.debug.hide_exceptions = False

    # ------------------------------------------------------------------ HTTP

    async def history(self, ticker: str, start: date | datetime, end: date | datetime,
                      interval: str) -> pd.DataFrame:
        """Bars from `start` (inclusive) to `end` (exclusive), as yfinance returns
        them: Open, High, Low, Close, Adj Close, Volume by exchange-zoned time."""
        return await self._run(self.fetch_history, ticker, start, end, interval)

    async def latest(self, ticker: str) -> pd.DataFrame:
        """The latest session's minute bars so far."""
        return await self._run(self.fetch_latest, ticker)

    async def lookup(self, ticker: str) -> YahooSymbol:
        """What Yahoo knows of a symbol; raises YahooNoData when it knows nothing."""
        return await self._run(self.fetch_symbol, ticker)

    async def _run(self, call: Callable[..., T], *args: object) -> T:
        try:
            return await asyncio.to_thread(call, *args)
        except Exception as error:
            translated = translate_error(error)
            if translated is error:
                raise
            raise translated from error

    # The yfinance calls themselves (synchronous: they run in a worker thread).
    # auto_adjust=False: raw prices match the live trades the stream delivers, and bars
    # kept in the database stay right when a later dividend would change adjusted ones.

    def fetch_history(self, ticker: str, start: date | datetime, end: date | datetime,
                      interval: str) -> pd.DataFrame:
        frame: pd.DataFrame = yf.Ticker(ticker).history(
            start=start, end=end, interval=interval, auto_adjust=False, actions=False,
            timeout=self.timeout_s)
        return frame

    def fetch_latest(self, ticker: str) -> pd.DataFrame:
        frame: pd.DataFrame = yf.Ticker(ticker).history(
            period="1d", interval="1m", auto_adjust=False, actions=False,
            timeout=self.timeout_s)
        return frame

    def fetch_symbol(self, ticker: str) -> YahooSymbol:
        # Five daily bars: the cheapest request that fails for a symbol Yahoo does not
        # know and carries the name and currency in its metadata.
        handle = yf.Ticker(ticker)
        frame = handle.history(period="5d", interval="1d", auto_adjust=False,
                               actions=False, timeout=self.timeout_s)
        if frame is None or frame.empty:
            raise YahooNoData(f"${ticker}: no price data in the last 5 days")
        meta = handle.history_metadata or {}
        name = meta.get("longName") or meta.get("shortName") or ""
        return YahooSymbol(str(name), str(meta.get("currency") or "USD"),
                           str(meta.get("fullExchangeName") or meta.get("exchangeName") or ""))

    # ------------------------------------------------------------------ websocket

    def open_socket(self) -> Any:
        """A new, unconnected yf.AsyncWebSocket."""
        return yf.AsyncWebSocket(verbose=False)

    async def stream(self, tickers: Sequence[str], idle_s: float
                     ) -> AsyncGenerator[dict[str, Any], None]:
        """Decoded price messages for `tickers` (yfinance's dicts: id, price, time in
        ms, day_volume, bid, ask, ...), and an empty dict after every `idle_s` without
        one. Raises when the socket cannot connect or closes."""
        socket = self.open_socket()
        self._socket = socket
        try:
            await socket.subscribe(list(tickers))  # connects, starts yfinance's heartbeat
            # Read the connection directly: yfinance's listen() reconnects forever on
            # its own and spins on a cleanly closed socket, so the feed would never
            # learn the socket is gone and fall back to polling.
            connection = socket._ws
            while True:
                try:
                    # Cancelling a websockets recv() loses nothing: the next call
                    # returns the same message.
                    raw = await asyncio.wait_for(connection.recv(), idle_s)
                except TimeoutError:
                    yield {}
                    continue
                message = self._decode(socket, raw)
                if message is not None:
                    yield message
        finally:
            if self._socket is socket:
                self._socket = None
            await _close_socket(socket)

    @staticmethod
    def _decode(socket: Any, raw: str | bytes) -> dict[str, Any] | None:
        try:
            encoded = json.loads(raw).get("message", "")
        except (ValueError, AttributeError):
            log.debug("skipped a Yahoo websocket frame that is not JSON: %.80r", raw)
            return None
        if not encoded:
            return None
        try:
            decoded: dict[str, Any] = dict(socket._decode_message(encoded))
        except Exception as error:
            log.warning("skipped a Yahoo price message that did not decode: %s", error)
            return None
        return decoded

    async def subscribe(self, tickers: Sequence[str]) -> None:
        """Add tickers to the open socket (nothing when none is open)."""
        socket = self._socket
        if socket is not None and tickers:
            await socket.subscribe(list(tickers))

    async def unsubscribe(self, tickers: Sequence[str]) -> None:
        socket = self._socket
        if socket is not None and tickers:
            await socket.unsubscribe(list(tickers))

    async def close(self) -> None:
        """Close the open socket, if any, and its heartbeat task."""
        socket, self._socket = self._socket, None
        if socket is not None:
            await _close_socket(socket)


async def _close_socket(socket: Any) -> None:
    # yf.AsyncWebSocket.close() cancels its heartbeat task without waiting for it:
    # wait here, so no task outlives the feed.
    heartbeat: asyncio.Task[Any] | None = getattr(socket, "_heartbeat_task", None)
    with contextlib.suppress(Exception):
        await socket.close()
    if heartbeat is not None:
        heartbeat.cancel()
        await asyncio.wait([heartbeat])
        if not heartbeat.cancelled():
            heartbeat.exception()  # retrieved: a failed heartbeat is not worth a warning
