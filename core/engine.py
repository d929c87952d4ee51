"""The engine: owns the feed's lifecycle, the market state per symbol, the watchlists,
and the change set its consumers pull.

The hot path is `ingest(batch)`: each event is dispatched synchronously on the bus to
plain-attribute updates of a `SymbolState`, stamped with a change sequence number. No
await, no allocation beyond the event itself, no database write. Consumers (the UI, an
attached client) pull `changes(cursor)` at their own cadence and get one `QuoteRow` per
symbol that changed, so their cost is bounded by the screen, not by the tick rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.brokers.base import Broker, BrokerContext, load_broker
from core.bus import Bus
from core.clock import Clock, ExchangeCalendar, LiveClock
from core.config import Settings
from core.feeds import (
    Backoff,
    FeedNotes,
    FeedSupervisor,
    MarketData,
    ReplayControl,
    UsesStore,
    load_feed,
)
from core.market import MarketState
from core.model import (
    NS_PER_SECOND,
    Bar,
    FeedState,
    Instrument,
    LogEvent,
    LogLevel,
    MarketPhase,
    is_well_formed_symbol,
    normalize_symbol,
)
from core.notify import Notifier, zone_for
from core.saved_scans import SavedScan
from core.scan_service import ScanService, ScanView
from core.state import (
    ChangeCursor,
    CommandError,
    EngineDelta,
    EngineSnapshot,
    EngineStatus,
    FeedChange,
    Watchlist,
)
from core.store import Store
from core.strategies.host import StrategyHost
from core.strategies.registry import StrategyRegistry, discover, strategy_folder
from core.trading import TradingDesk

__all__ = ["CommandError", "Engine", "EngineLogHandler"]

log = logging.getLogger(__name__)

BAR_LOG_SIZE = 200_000
LOG_SIZE = 2_000
DAY_NS = 24 * 3600 * NS_PER_SECOND
REPLAY_POSITION_KEY = "replay.position_ns"
SAVE_POSITION_EVERY_S = 5.0
NOTIFY_STOP_S = 3.0  # how long queued notifications may hold up a stop


class Engine:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        feed: MarketData,
        *,
        bus: Bus | None = None,
        wall_clock: Clock | None = None,
        calendar: ExchangeCalendar | None = None,
        broker: Broker | None = None,
        strategies: StrategyRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.feed = feed
        if isinstance(feed, UsesStore):
            feed.use_store(store)
        self.calendar = calendar or ExchangeCalendar()
        self.market = MarketState(bus, self.calendar)
        self.bus = self.market.bus
        self.wall_clock = wall_clock or LiveClock()
        self._log_counter = itertools.count(1)
        self._logs: deque[tuple[int, LogEvent]] = deque(maxlen=LOG_SIZE)
        self._watchlists: list[Watchlist] = []
        self._watchlist_version = 0
        self._feed_state = FeedState.STARTING
        self._feed_message = ""
        self._tasks: list[asyncio.Task[Any]] = []
        self._supervisor: FeedSupervisor | None = None
        self._log_handler: EngineLogHandler | None = None
        self._running = False
        self._live = asyncio.Event()  # set once the feed has delivered its first batch
        self._log_listeners: list[tuple[Callable[[LogEvent], None], bool]] = []
        self.log_file: Path | None = None
        self.last_data_at = 0.0  # monotonic time of the feed's last non-empty batch
        if broker is None:
            context = BrokerContext(self.market, self.bus, self.market_now_ns, self.calendar,
                                    store)
            broker = load_broker(settings.trading.broker, settings, context)
        self.broker = broker
        self.desk = TradingDesk(
            settings, store, self.market, broker, bus=self.bus, now_ns=self.market_now_ns,
            calendar=self.calendar, ensure_symbol=self.ensure_symbol, log_line=self.log)
        if strategies is None:
            strategies = discover(strategy_folder(settings.strategies.folder))
        self.strategies = StrategyHost(
            strategies, store, self.desk, self.market, calendar=self.calendar,
            now_ns=self.market_now_ns, log_line=self.log, ensure_symbol=self.ensure_symbol)
        self.scanner = ScanService(settings.scanner, feed, self.market, store, self.bus,
                                   self.calendar, lambda: self.watchlists, self.log,
                                   self.wall_clock.now_ns)
        self.notifier = Notifier(settings.notify, log_line=self.log,
                                 zone=zone_for(settings.ui.timezone),
                                 wall_now_ns=self.wall_clock.now_ns)
        self.notifier.attach(self.bus, orders=lambda client_id: self.desk.orders.get(client_id))
        self.add_log_listener(self.notifier.on_log)

    def market_now_ns(self) -> int:
        """The market clock (the replay's, for a replay; it swaps clocks on a seek)."""
        return self.feed.clock.now_ns()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(cls, settings: Settings, **kwargs: Any) -> Engine:
        """Open the profile's database and the configured feed.

        Raises StoreError (database problems), FeedError (provider problems) or
        BrokerError (broker problems), each with a message for the trader.
        """
        store = await Store.open(settings.database_path())
        try:
            feed = load_feed(settings.feed.provider, settings)
            return cls(settings, store, feed, **kwargs)
        except BaseException:
            await store.close()
            raise

    async def start(self) -> None:
        await self.notifier.start()
        self._log_handler = EngineLogHandler(self)
        for name in ("core", "data"):
            logging.getLogger(name).addHandler(self._log_handler)
        await self._restore_replay_position()
        await self._load_watchlists()
        await self.desk.load()
        await self.strategies.load()
        await self.scanner.load()
        symbols = self.subscribed_symbols()
        await self._ensure_states(symbols)
        await self.strategies.start(self.feed)
        self._supervisor = FeedSupervisor(
            self.feed,
            self.subscribed_symbols,
            self.ingest,
            self._set_feed_state,
            Backoff(self.settings.feed.backoff_initial_s, self.settings.feed.backoff_max_s),
            self.settings.feed.stall_after_s,
            # A bar's strategy orders go out before the next batch, as in a backtest.
            after_batch=self.strategies.flush,
        )
        self._running = True
        self._tasks = [
            asyncio.create_task(self._supervisor.run(), name="feed-supervisor"),
            asyncio.create_task(self._watch_staleness(), name="stale-watchdog"),
            asyncio.create_task(self._save_position_periodically(), name="replay-position"),
        ]
        await self.desk.start()
        await self.strategies.begin_sending()
        await self.scanner.start()
        self.log(LogLevel.INFO, "engine",
                 f"{self.feed.name} feed, {len(symbols)} symbols, database {self.store.path.name}")

    async def wait_until_live(self, timeout_s: float) -> bool:
        """Wait, at most `timeout_s`, for the feed's first batch (the supervisor ingests a
        batch in the same step that reports the feed live, so its prices are in by the
        time this returns True). The CLI waits briefly before drawing the screen: loading
        the first symbols alone is quicker than competing with the screen's start-up for
        the interpreter, and the first frame then shows prices."""
        try:
            await asyncio.wait_for(self._live.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.notifier.stop(NOTIFY_STOP_S)
        self._running = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):
            await self.scanner.stop()
        with contextlib.suppress(Exception):
            await self.strategies.stop()
        with contextlib.suppress(Exception):
            await self.desk.stop()
        await self._save_replay_position()
        with contextlib.suppress(Exception):
            await self.feed.close()
        if self._log_handler is not None:
            for name in ("core", "data"):
                logging.getLogger(name).removeHandler(self._log_handler)
        await self.store.close()

    def ingest(self, batch: Sequence[Any]) -> None:
        """Apply a batch of market events from the feed (the hot path)."""
        if batch:
            self.last_data_at = time.monotonic()  # the health record's last quote age
        self.market.ingest(batch)

    # ------------------------------------------------------------------ consumers

    def status(self) -> EngineStatus:
        market_ns = self.feed.clock.now_ns()
        replay = ""
        paused = False
        if isinstance(self.feed, ReplayControl):
            replay = self.feed.describe()
            paused = self.feed.paused
        return EngineStatus(
            feed_name=self.feed.name,
            feed_state=self._feed_state,
            feed_message=self._feed_message,
            delayed=self.feed.delayed,
            market_ns=market_ns,
            phase=self.calendar.phase(market_ns) if market_ns else MarketPhase.CLOSED,
            stale_symbols=self.market.stale_count,
            replay=replay,
            paused=paused,
            database=str(self.store.path),
            feed_note=self.feed.note() if isinstance(self.feed, FeedNotes) else "",
            live_account=self.broker.live_account(),
        )

    def snapshot(self) -> EngineSnapshot:
        states = self.market.states
        rows = {symbol: state.row() for symbol, state in states.items()}
        bars = {symbol: list(state.minute_bars) for symbol, state in states.items()}
        desk = self.desk
        cursor = ChangeCursor(self.market.seq, self.market.bar_seq, self._last_log_seq(),
                              self._watchlist_version, desk.order_seq, len(desk.fills),
                              self.scanner.view.version)
        return EngineSnapshot(
            rows=rows,
            session_bars=bars,
            logs=[event for _, event in self._logs],
            status=self.status(),
            watchlists=list(self._watchlists),
            cursor=cursor,
            orders=desk.recent_orders(),
            fills=desk.fills[-500:],
            positions=desk.positions(),
            account=desk.account(),
            risk=desk.risk_view(),
            strategies=self.strategies.views(),
            scan=self.scanner.view,
        )

    def changes(self, cursor: ChangeCursor) -> EngineDelta:
        """What changed since `cursor`; advances the cursor."""
        market = self.market
        rows = market.rows_since(cursor.quote_seq)
        bars, resync = market.bars_since(cursor.bar_seq)
        building = market.building_since(cursor.quote_seq)
        # Log numbers run without gaps: the new lines are the last (last - cursor) ones.
        new = min(len(self._logs), self._last_log_seq() - cursor.log_seq)
        logs = [event for _, event in itertools.islice(self._logs, len(self._logs) - new,
                                                        None)] if new > 0 else []
        watchlists = None
        if cursor.watchlist_version != self._watchlist_version:
            watchlists = list(self._watchlists)
        cursor.quote_seq = market.seq
        cursor.bar_seq = market.bar_seq
        cursor.log_seq = self._last_log_seq()
        cursor.watchlist_version = self._watchlist_version
        desk = self.desk
        orders = desk.orders_since(cursor.order_seq) if cursor.order_seq < desk.order_seq else []
        fills = desk.fills[cursor.fill_count:]
        cursor.order_seq = desk.order_seq
        cursor.fill_count = len(desk.fills)
        scan = self.scanner.view
        changed_scan = scan if scan.version != cursor.scan_version else None
        cursor.scan_version = scan.version
        return EngineDelta(rows, bars, building, logs, self.status(), watchlists, resync,
                           orders=orders, fills=fills, positions=desk.positions(),
                           account=desk.account(), risk=desk.risk_view(),
                           strategies=self.strategies.views(), scan=changed_scan)

    def _last_log_seq(self) -> int:
        return self._logs[-1][0] if self._logs else 0

    def log(self, level: LogLevel, source: str, message: str, *,
            forwarded: bool = False) -> None:
        """Add a line to the trader's log (thread-safe: loaders log from workers).
        `forwarded`: the line is a Python log record (`EngineLogHandler`)."""
        event = LogEvent(self.wall_clock.now_ns(), level, source, message)
        self._logs.append((next(self._log_counter), event))
        for listener, wants_forwarded in self._log_listeners:
            if wants_forwarded or not forwarded:
                listener(event)

    def add_log_listener(self, listener: Callable[[LogEvent], None], *,
                         forwarded: bool = True) -> None:
        """Also hand every log line to `listener` (the notifier's errors, the daemon's
        log file). It may be called from a worker thread: it must be thread-safe.
        `forwarded=False`: not the lines that came from Python logging (a log file
        has those already)."""
        self._log_listeners.append((listener, forwarded))

    # ------------------------------------------------------------------ watchlists

    @property
    def watchlists(self) -> list[Watchlist]:
        return list(self._watchlists)

    def subscribed_symbols(self) -> list[str]:
        """Every watchlist's symbols, and those with an open order or a position."""
        seen: dict[str, None] = {}
        for watchlist in self._watchlists:
            for symbol in watchlist.symbols:
                seen[symbol] = None
        for symbol in self.desk.symbols_in_use():
            seen[symbol] = None
        for symbol in self.strategies.symbols():
            seen[symbol] = None
        for symbol in self.scanner.streamed_symbols():
            seen[symbol] = None
        return list(seen)

    async def ensure_symbol(self, symbol: str) -> Instrument | None:
        """Track and stream a symbol an order needs (it may be on no watchlist); None
        when the feed has no data for it."""
        state = self.market.states.get(symbol)
        if state is not None:
            return None if state.instrument.source == "unknown" else state.instrument
        if not is_well_formed_symbol(symbol):
            return None
        instrument = (await self.feed.validate([symbol])).get(symbol)
        if instrument is None:
            return None
        if symbol not in self.market.states:
            self.market.track(instrument)
            await self.feed.subscribe([symbol])
        return self.market.states[symbol].instrument

    async def _load_watchlists(self) -> None:
        stored = await self.store.load_watchlists()
        if not stored:
            for position, (name, symbols) in enumerate(self.settings.watchlists.items()):
                await self.store.save_watchlist(name, symbols, position)
            stored = [(name, list(symbols)) for name, symbols in self.settings.watchlists.items()]
        self._watchlists = [Watchlist(name, tuple(symbols)) for name, symbols in stored]
        self._watchlist_version += 1

    async def _ensure_states(self, symbols: Sequence[str]) -> list[str]:
        """Create state for symbols the engine does not track yet; returns those the
        feed cannot serve (they stay in their lists, marked in the log)."""
        missing = [s for s in symbols if s not in self.market.states]
        if not missing:
            return []
        instruments = await self.feed.validate(missing)
        unknown = []
        for symbol in missing:
            instrument = instruments.get(symbol)
            if instrument is None:
                unknown.append(symbol)
                instrument = Instrument(symbol, source="unknown")
            self.market.track(instrument)
        if unknown:
            self.log(LogLevel.WARNING, "engine",
                     f"no market data for {', '.join(unknown)} from the {self.feed.name} feed")
        return unknown

    def _find_watchlist(self, name: str) -> int:
        for index, watchlist in enumerate(self._watchlists):
            if watchlist.name == name:
                return index
        raise CommandError(f"there is no watchlist named {name!r}")

    async def _replace_watchlist(self, index: int, watchlist: Watchlist) -> None:
        self._watchlists[index] = watchlist
        self._watchlist_version += 1
        await self.store.save_watchlist(watchlist.name, watchlist.symbols, index)

    async def add_symbol(self, watchlist: str, text: str) -> Instrument:
        symbol = normalize_symbol(text)
        if not is_well_formed_symbol(symbol):
            raise CommandError(
                f"{text.strip()!r} is not a symbol: use 1-5 letters, with an optional class "
                "suffix such as BRK.B"
            )
        index = self._find_watchlist(watchlist)
        current = self._watchlists[index]
        if symbol in current.symbols:
            raise CommandError(f"{symbol} is already in {current.name}")
        instrument = (await self.feed.validate([symbol])).get(symbol)
        if instrument is None:
            hint = self.feed.suggest(symbol)
            did_you_mean = f" Did you mean {', '.join(hint)}?" if hint else ""
            raise CommandError(
                f"unknown symbol {symbol}: the {self.feed.name} feed has no data for it."
                + did_you_mean
            )
        new_symbol = symbol not in self.market.states
        if new_symbol:
            self.market.track(instrument)
        await self._replace_watchlist(index, Watchlist(current.name, (*current.symbols, symbol)))
        if new_symbol:
            await self.feed.subscribe([symbol])
        if instrument.source == "sim":
            self.log(LogLevel.WARNING, "watchlist",
                     f"{symbol} is not in the bundled replay data: its prices are synthetic")
        self.log(LogLevel.INFO, "watchlist", f"added {symbol} to {current.name}")
        return instrument

    async def remove_symbol(self, watchlist: str, symbol: str) -> None:
        index = self._find_watchlist(watchlist)
        current = self._watchlists[index]
        if symbol not in current.symbols:
            raise CommandError(f"{symbol} is not in {current.name}")
        symbols = tuple(s for s in current.symbols if s != symbol)
        await self._replace_watchlist(index, Watchlist(current.name, symbols))
        if symbol not in self.subscribed_symbols():  # also kept while traded
            self.market.untrack(symbol)
            await self.feed.unsubscribe([symbol])
        self.log(LogLevel.INFO, "watchlist", f"removed {symbol} from {current.name}")

    async def move_symbol(self, watchlist: str, symbol: str, offset: int) -> int:
        """Move a symbol up (negative) or down the list; returns its new index."""
        index = self._find_watchlist(watchlist)
        current = self._watchlists[index]
        if symbol not in current.symbols:
            raise CommandError(f"{symbol} is not in {current.name}")
        symbols = list(current.symbols)
        old = symbols.index(symbol)
        new = max(0, min(len(symbols) - 1, old + offset))
        if new != old:
            symbols.insert(new, symbols.pop(old))
            await self._replace_watchlist(index, Watchlist(current.name, tuple(symbols)))
        return new

    async def create_watchlist(self, name: str) -> Watchlist:
        name = name.strip()
        if not name or len(name) > 32:
            raise CommandError("a watchlist name needs 1 to 32 characters")
        if any(w.name.lower() == name.lower() for w in self._watchlists):
            raise CommandError(f"a watchlist named {name!r} exists already")
        watchlist = Watchlist(name, ())
        self._watchlists.append(watchlist)
        self._watchlist_version += 1
        await self.store.save_watchlist(name, (), len(self._watchlists) - 1)
        self.log(LogLevel.INFO, "watchlist", f"created watchlist {name}")
        return watchlist

    async def rename_watchlist(self, old: str, new: str) -> None:
        new = new.strip()
        index = self._find_watchlist(old)
        if not new or len(new) > 32:
            raise CommandError("a watchlist name needs 1 to 32 characters")
        if any(w.name.lower() == new.lower() and w.name != old for w in self._watchlists):
            raise CommandError(f"a watchlist named {new!r} exists already")
        self._watchlists[index] = Watchlist(new, self._watchlists[index].symbols)
        self._watchlist_version += 1
        await self.store.rename_watchlist(old, new)

    async def delete_watchlist(self, name: str) -> None:
        index = self._find_watchlist(name)
        if len(self._watchlists) == 1:
            raise CommandError("the last watchlist cannot be deleted")
        removed = self._watchlists.pop(index)
        self._watchlist_version += 1
        await self.store.delete_watchlist(name)
        for position, watchlist in enumerate(self._watchlists):
            await self.store.save_watchlist(watchlist.name, watchlist.symbols, position)
        still = set(self.subscribed_symbols())
        gone = [s for s in removed.symbols if s not in still]
        for symbol in gone:
            self.market.untrack(symbol)
        if gone:
            await self.feed.unsubscribe(gone)
        self.log(LogLevel.INFO, "watchlist", f"deleted watchlist {name}")

    # ------------------------------------------------------------------ data

    # ------------------------------------------------------------------ the scanner

    async def set_scan(self, text: str, universe: str) -> ScanView:
        view = await self.scanner.set_scan(text, universe)
        await self._stream_new_symbols(self.scanner.streamed_symbols())
        return view

    async def clear_scan(self) -> None:
        await self.scanner.clear_scan()

    async def save_scan(self, name: str, text: str, universe: str) -> SavedScan:
        return await self.scanner.save(name, text, universe)

    async def delete_scan(self, name: str) -> None:
        await self.scanner.delete(name)

    async def _stream_new_symbols(self, symbols: Sequence[str]) -> None:
        """Track and stream those of `symbols` the engine does not stream yet."""
        new = [symbol for symbol in symbols if symbol not in self.market.states]
        if not new:
            return
        unknown = set(await self._ensure_states(new))
        known = [symbol for symbol in new if symbol not in unknown]
        if known:
            await self.feed.subscribe(known)

    def search(self, text: str, limit: int = 20) -> list[Instrument]:
        return self.feed.search(normalize_symbol(text), limit)

    async def history(self, symbol: str, interval: str, sessions: int = 180) -> list[Bar]:
        """Bars for a chart: daily bars for the last `sessions` sessions before the
        market clock, or today's minute bars."""
        state = self.market.states.get(symbol)
        if interval == "1m":
            if state is None:
                return []
            building = state.building_bar()
            return [*state.minute_bars, *([building] if building else [])]
        if interval != "1d":
            raise CommandError(f"unknown interval {interval!r}: use 1d or 1m")
        now_ns = self.feed.clock.now_ns()
        end = datetime.fromtimestamp(now_ns / NS_PER_SECOND, tz=UTC)
        start = end - timedelta(days=math.ceil(sessions * 7 / 5) + 10)
        frame = await self.feed.history([symbol], start, end, "1d")
        bars = [
            Bar(symbol, int(ts.value), 86_400, o, h, lo, c, v)
            for ts, o, h, lo, c, v in zip(
                frame["ts"], frame["open"], frame["high"], frame["low"], frame["close"],
                frame["volume"], strict=True,
            )
        ]
        return bars[-sessions:]

    # ------------------------------------------------------------------ replay

    def set_replay_speed(self, multiplier: float) -> None:
        if not isinstance(self.feed, ReplayControl):
            raise CommandError(f"the {self.feed.name} feed is live: it has no replay speed")
        self.feed.set_speed(multiplier)
        self.log(LogLevel.INFO, "replay", f"speed {self.feed.describe()}")

    def set_replay_paused(self, paused: bool) -> None:
        if not isinstance(self.feed, ReplayControl):
            raise CommandError(f"the {self.feed.name} feed is live: it cannot be paused")
        self.feed.set_paused(paused)
        self.log(LogLevel.INFO, "replay", "paused" if paused else "resumed")

    async def _restore_replay_position(self) -> None:
        if not isinstance(self.feed, ReplayControl) or not self.settings.replay.resume:
            return
        position = await self.store.get_setting(REPLAY_POSITION_KEY)
        if isinstance(position, int) and position > 0:
            self.feed.seek(position)

    async def _save_replay_position(self) -> None:
        if isinstance(self.feed, ReplayControl):
            with contextlib.suppress(Exception):
                await self.store.set_setting(REPLAY_POSITION_KEY, self.feed.clock.now_ns())

    async def _save_position_periodically(self) -> None:
        while True:
            await asyncio.sleep(SAVE_POSITION_EVERY_S)
            await self._save_replay_position()

    # ------------------------------------------------------------------ settings

    async def get_setting(self, key: str, default: Any = None) -> Any:
        return await self.store.get_setting(key, default)

    async def set_setting(self, key: str, value: Any) -> None:
        await self.store.set_setting(key, value)

    # ------------------------------------------------------------------ health

    def _set_feed_state(self, state: FeedState, message: str) -> None:
        changed = state != self._feed_state
        was_up = self._feed_state == FeedState.LIVE
        self._feed_state = state
        # Down and back up again once it has been live (start-up is not news).
        if self._live.is_set() and was_up != (state == FeedState.LIVE):
            self.bus.publish(FeedChange(self.wall_clock.now_ns(), self.feed.name, state,
                                        message))
        self._feed_message = message
        if message:
            level = LogLevel.WARNING if state == FeedState.RECONNECTING else LogLevel.INFO
            self.log(level, "feed", message)
        elif changed and state == FeedState.LIVE:
            self.log(LogLevel.INFO, "feed", f"{self.feed.name} feed live")
        if state == FeedState.LIVE:
            self._live.set()

    async def _watch_staleness(self) -> None:
        # A feed that updates less often by nature (Yahoo: on change, or by polling) says
        # how long its silence is normal.
        stale_after = max(self.settings.feed.stale_after_s,
                          float(getattr(self.feed, "stale_after_s", 0.0)))
        while True:
            await asyncio.sleep(min(1.0, stale_after / 4))
            self.mark_stale(time.monotonic(), stale_after)

    def mark_stale(self, now: float, stale_after: float) -> None:
        newly_stale = self.market.mark_stale(now, stale_after, self.feed.expects_updates())
        if newly_stale:
            shown = ", ".join(newly_stale[:8]) + (" ..." if len(newly_stale) > 8 else "")
            self.log(LogLevel.WARNING, "feed",
                     f"stale: no update for {stale_after:g} s from {shown}")


class EngineLogHandler(logging.Handler):
    """Routes the engine's and loaders' log records (INFO and up) into the trader's
    log pane."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(logging.INFO)
        self._engine = engine

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = LogLevel(min(max(record.levelno // 10 * 10, 10), 40))
            source = record.name.split(".")[-1]
            self._engine.log(level, source, record.getMessage(), forwarded=True)
        except Exception:
            self.handleError(record)

