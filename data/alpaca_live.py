"""The Alpaca feed's one market-data connection (see `data.alpaca`): quotes, trades and
minute bars of every subscribed symbol over a single websocket.

The handshake is alpaca-py's (`StockDataStream._start_ws`); the receive loop is ours:
- no reconnect loop: a failed or lost connection raises FeedError and the engine's
  `FeedSupervisor` restarts `stream()` after a backoff with jitter (alpaca-py's own
  loops reconnecting at once are what caused 429 storms), and its watchdog restarts a
  stream that goes silent while still connected (alpaca-py#740);
- the socket is closed whenever `stream()` ends, cancelled or not: a half-open
  connection would hold the account's one slot;
- symbols are added and removed on the running connection, by editing alpaca-py's
  handlers and sending its subscribe messages ourselves: its public `subscribe_*`
  block on `run_coroutine_threadsafe(...).result()`, a deadlock from inside the loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import msgpack  # type: ignore[import-untyped]
from alpaca.data.enums import DataFeed
from alpaca.data.live.stock import StockDataStream
from websockets.exceptions import ConnectionClosed, WebSocketException

from core.feeds import FeedError
from core.model import MarketEvent, is_well_formed_symbol, normalize_symbol
from data.alpaca_bars import frame_events, stream_problem

if TYPE_CHECKING:
    from core.config_venues import AlpacaKeys, AlpacaSettings

log = logging.getLogger(__name__)

CHANNELS = ("quotes", "trades", "bars")
FLUSH_S = 1.0  # longest a finished catch-up waits for the next frame before it is sent
# alpaca-py's defaults wait 180 s for a pong; a dead connection is noticed in 30 here.
# close_timeout bounds the closing handshake a stream's exit waits for.
WEBSOCKET_PARAMS = {"ping_interval": 10, "ping_timeout": 30, "max_queue": 1024,
                    "close_timeout": 2}

CatchUp = Callable[[Sequence[str]], Awaitable[list[MarketEvent]]]


class AlpacaLive:
    """The connection, the subscription it should carry, and what went wrong last.

    `catch_up(symbols)` gives the events a symbol starts with (its reference close,
    latest trade and quote): the first batch of each connection, and for a symbol
    added while it runs."""

    def __init__(self, settings: AlpacaSettings, keys: AlpacaKeys, catch_up: CatchUp) -> None:
        self.settings = settings
        self.keys = keys
        self.data_feed = DataFeed.SIP if settings.data_feed == "sip" else DataFeed.IEX
        self.wanted: set[str] = set()  # what the connection should carry
        self.problem = ""  # a short note while a failure the trader can act on lasts
        self._catch_up = catch_up
        self._socket: StockDataStream | None = None  # the connection open now, if any
        self._live: StockDataStream | None = None  # ... once authenticated
        self._sync_lock = asyncio.Lock()
        self._pending: list[MarketEvent] = []  # catch-ups waiting for the next batch
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def stream(self, symbols: Sequence[str]) -> AsyncIterator[Sequence[MarketEvent]]:
        if self._closed:
            raise FeedError("the Alpaca feed is closed")
        self.wanted.update(s for s in map(normalize_symbol, symbols) if is_well_formed_symbol(s))
        if self._socket is not None:
            # One connection per feed: a stream abandoned without being closed gives
            # its slot up to this one.
            await _hang_up(self._socket)
        connection = StockDataStream(
            self.keys.key_id, self.keys.secret_key, raw_data=True, feed=self.data_feed,
            url_override=self.settings.market_stream_url(), websocket_params=WEBSOCKET_PARAMS)
        self._socket = connection
        try:
            await self._handshake(connection)
            self.problem = ""
            self._live = connection
            await self._sync(connection)
            # The first batch comes at once, so the supervisor reports the feed live
            # even when the market is closed and nothing streams.
            yield await self._catch_up(sorted(self.wanted))
            socket: Any = connection._ws
            while True:
                try:
                    raw = await asyncio.wait_for(socket.recv(), FLUSH_S)
                except TimeoutError:
                    if self._pending:
                        yield self._take_pending()
                    continue
                batch = self._read(raw)
                if self._pending:
                    batch = self._take_pending() + batch
                if batch:
                    yield batch
        except ConnectionClosed as error:
            if self._closed:
                raise FeedError("the Alpaca feed was closed") from None
            raise FeedError(f"the market-data connection to Alpaca was lost ({error})") from None
        except (OSError, WebSocketException) as error:
            raise FeedError(f"the market-data connection to Alpaca failed ({error})") from None
        finally:
            if self._live is connection:
                self._live = None
            if self._socket is connection:
                self._socket = None
            await _hang_up(connection)

    async def _handshake(self, connection: StockDataStream) -> None:
        url = self.settings.market_stream_url()
        try:
            await asyncio.wait_for(connection._start_ws(), self.settings.request_timeout_s)
        except ValueError as error:  # alpaca-py: what the server answered ("auth failed")
            message, self.problem = stream_problem(None, str(error), self.data_feed.value,
                                                   len(self.wanted))
            raise FeedError(message) from None
        except TimeoutError:
            raise FeedError(f"no answer from Alpaca's market-data stream at {url} in "
                            f"{self.settings.request_timeout_s:g} s") from None
        except (OSError, WebSocketException) as error:
            raise FeedError(f"cannot connect to Alpaca's market-data stream at {url} "
                            f"({error})") from None

    def _read(self, raw: bytes | str) -> list[MarketEvent]:
        try:
            messages = msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
        except Exception as failure:  # msgpack's errors have no common base but Exception
            log.warning("Alpaca: a market-data frame that cannot be read was skipped (%s)",
                        failure)
            return []
        events, error, skipped = frame_events(messages if isinstance(messages, list)
                                              else [messages])
        if skipped:
            log.debug("Alpaca: %d market-data messages that cannot be read were skipped",
                      skipped)
        if error is not None:
            code = error.get("code")
            message, self.problem = stream_problem(
                code if isinstance(code, int) else None, str(error.get("msg", "")),
                self.data_feed.value, len(self.wanted))
            raise FeedError(message)
        return events

    def _take_pending(self) -> list[MarketEvent]:
        pending, self._pending = self._pending, []
        return pending

    async def _sync(self, connection: StockDataStream) -> None:
        """Make the connection's subscription what `wanted` says, in place. alpaca-py
        builds its subscribe message from its handlers, so they are kept (as no-ops:
        frames are read here)."""
        async with self._sync_lock:
            if connection._ws is None:
                return
            handlers = connection._handlers
            have = set(handlers["quotes"])
            added = sorted(self.wanted - have)
            dropped = sorted(have - self.wanted)
            if added:
                for channel in CHANNELS:
                    handlers[channel].update(dict.fromkeys(added, _ignore))
                await connection._send_subscribe_msg()
            if dropped:
                for channel in CHANNELS:
                    await connection._send_unsubscribe_msg(channel, dropped)
                    for symbol in dropped:
                        handlers[channel].pop(symbol, None)

    async def subscribe(self, symbols: Sequence[str]) -> None:
        """Add symbols: on the running connection when there is one (with their
        catch-up), else to the set the next connection subscribes."""
        added = [s for s in dict.fromkeys(map(normalize_symbol, symbols))
                 if is_well_formed_symbol(s) and s not in self.wanted]
        self.wanted.update(added)
        if added and await self._resync():
            self._spawn(self._catch_up_later(added))

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        self.wanted.difference_update(map(normalize_symbol, symbols))
        await self._resync()

    async def _resync(self) -> bool:
        """Whether the running connection now carries `wanted`."""
        connection = self._live
        if connection is None:
            return False
        try:
            await self._sync(connection)
        except (OSError, WebSocketException, AttributeError) as error:
            # Lost or closed meanwhile (alpaca-py drops its socket, hence AttributeError):
            # the stream sees it too, ends, and its successor subscribes to everything.
            log.info("Alpaca: subscription not changed now (%s): it is on reconnect", error)
            return False
        return True

    async def _catch_up_later(self, symbols: Sequence[str]) -> None:
        events = await self._catch_up(symbols)
        if self._live is not None:  # else the next connection's catch-up has them
            self._pending.extend(events)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name="alpaca-catch-up")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop the catch-ups and close the connection (a running stream() ends with
        FeedError); no stream starts after this."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._live = None
        if self._socket is not None:
            await _hang_up(self._socket)
            self._socket = None


async def _hang_up(connection: StockDataStream) -> None:
    """Close a connection; if even that fails or is cancelled, drop the socket, so it
    never holds the account's one connection until Alpaca notices."""
    socket: Any = connection._ws
    if socket is None:
        return
    try:
        await connection.close()
    except asyncio.CancelledError:
        _abort(socket)
        raise
    except Exception as error:
        log.debug("Alpaca: closing the market-data connection failed (%s)", error)
        _abort(socket)


def _abort(socket: Any) -> None:
    transport = getattr(socket, "transport", None)
    if transport is not None:
        transport.abort()


async def _ignore(_message: object) -> None:
    """The handler alpaca-py's subscribe message is built from; frames are read here."""
