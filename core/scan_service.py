"""The engine's scanner: one active scan over one universe, kept live while the
engine runs (with or without a screen attached), announcing new hits.

The universe's completed daily bars are loaded once per session, off the loop (the
feed's `UniverseSource` when it has one, its per-symbol history otherwise), and the
scan is evaluated over them once (`core.scan_live.LiveScan`). Then every `refresh_s`,
if prices moved, today's forming bar of each streamed symbol updates the scan's last
row only. A universe up to `stream_limit` symbols is streamed whole; a larger one
scans its streamed symbols live and the rest on their last close (each hit says which
bar it is as of). At a new session the history is loaded again.

A symbol that starts matching is announced once (`ScanHit` on the bus: the notifier's
kind `scan_hit`, and a line in the log), and not again for `hit_debounce_s` seconds.
What counts as starting to match:

- The first result of every loaded `LiveScan` (a scan made active, a universe or a
  session loaded again, a load retried) is a baseline, announced for no symbol: it is
  what the screen shows as it is set, and the next session's history is not news.
- After it, only a symbol whose own data moved can start matching: one the feed was
  already streaming at the last result and that has a bar of today's now. A symbol on
  its last close never changes within a load, and a symbol the feed starts streaming
  later (a small universe subscribed after its first result) is being caught up: its
  first live result is its own baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from core.bus import Bus
from core.clock import ExchangeCalendar
from core.feeds import MarketData, UniverseSource
from core.market import MarketState
from core.model import LogLevel, is_well_formed_symbol, normalize_symbol
from core.saved_scans import SavedScan, delete_scan, save_scan, saved_scans
from core.scan_language import parse
from core.scan_live import BarValues, LiveScan
from core.scan_syntax import Scan, ScanError
from core.scan_universe import UniverseBars, day_number
from core.scanner import ScanResult
from core.state import CommandError, Watchlist
from core.store import Store

if TYPE_CHECKING:
    from core.config import ScannerSettings

log = logging.getLogger(__name__)

BUNDLED = "bundled"
ACTIVE_SCAN_KEY = "scanner.active"
# Calendar days of history a universe is loaded with when the feed has no
# UniverseSource: about 500 sessions, past the longest lookback a preset has.
HISTORY_DAYS = 730


@dataclass(frozen=True, slots=True)
class ScanHit:
    """A symbol that started matching the active scan (kind `scan_hit`)."""

    kind: ClassVar[str] = "scan_hit"
    ts_ns: int
    symbol: str
    scan: str
    summary: str  # the values behind the conditions, for the message


@dataclass(frozen=True, slots=True)
class ScanView:
    """The scanner as a screen shows it."""

    text: str = ""
    universe: str = BUNDLED
    result: ScanResult | None = None
    error: str = ""  # why there is no result (a universe that could not load)
    loading: bool = False
    version: int = 0
    evaluated_ns: int = 0  # wall time of the result
    saved: tuple[SavedScan, ...] = field(default_factory=tuple)


def resolve_universe(spec: str, watchlists: Sequence[Watchlist], bundled: Sequence[str]
                     ) -> tuple[str, list[str]]:
    """A universe's name and symbols from what the trader typed: 'bundled' (or
    nothing), a watchlist's name (any case), or symbols separated by commas or spaces.
    ValueError naming what is wrong."""
    text = " ".join(spec.split())
    if text.lower() in ("", BUNDLED, "all"):
        if not bundled:
            raise ValueError("this feed has no bundled universe: name a watchlist or symbols")
        return BUNDLED, list(bundled)
    for watchlist in watchlists:
        if watchlist.name.lower() == text.lower():
            return watchlist.name, list(watchlist.symbols)
    words = [word for word in text.replace(",", " ").split() if word]
    bad = [word for word in words if not is_well_formed_symbol(normalize_symbol(word))]
    if bad:
        names = ", ".join(w.name for w in watchlists) or "none"
        raise ValueError(f"{bad[0]!r} is neither a watchlist (they are: {names}) nor a "
                         f"symbol; a universe is 'bundled', a watchlist, or symbols")
    symbols = list(dict.fromkeys(normalize_symbol(word) for word in words))
    return ",".join(symbols), symbols


class ScanService:
    def __init__(self, settings: ScannerSettings, feed: MarketData, market: MarketState,
                 store: Store, bus: Bus, calendar: ExchangeCalendar,
                 watchlists: Callable[[], list[Watchlist]],
                 log_line: Callable[[LogLevel, str, str], None],
                 wall_ns: Callable[[], int] = time.time_ns) -> None:
        self.settings = settings
        self.feed = feed
        self.market = market
        self.store = store
        self.bus = bus
        self.calendar = calendar
        self.watchlists = watchlists
        self.log_line = log_line
        self.wall_ns = wall_ns  # the time a result is stamped with
        self.view = ScanView()
        self._scan: Scan | None = None
        self._symbols: list[str] = []
        self._live: LiveScan | None = None
        self._loaded_for: tuple[str, tuple[date, bool]] | None = None  # see _session
        self._seen_seq = -1
        self._announced: dict[str, float] = {}  # symbol -> wall time of its last notice
        # What announcements compare with: the LiveScan of the last result (a result of
        # any other one is a baseline), the symbols matching in it, and those the feed
        # was streaming then (see _announce).
        self._compared: LiveScan | None = None
        self._matching: set[str] = set()
        self._streaming: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._build_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    async def load(self) -> None:
        saved = tuple(await saved_scans(self.store))
        stored = await self.store.get_setting(ACTIVE_SCAN_KEY)
        self.view = ScanView(saved=saved)
        if isinstance(stored, dict) and stored.get("text"):
            try:
                self._activate(str(stored["text"]), str(stored.get("universe", BUNDLED)))
            except CommandError as error:
                self.log_line(LogLevel.WARNING, "scanner", f"the saved scan was not restored: "
                              f"{error}")

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scanner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    def streamed_symbols(self) -> list[str]:
        """The universe's symbols the feed should stream (all of a small universe)."""
        if self._scan is None or len(self._symbols) > self.settings.stream_limit:
            return []
        return list(self._symbols)

    # ------------------------------------------------------------------ commands

    async def set_scan(self, text: str, universe: str) -> ScanView:
        """Make `text` over `universe` the active scan (CommandError for a scan that
        does not parse or a universe that does not resolve) and evaluate it."""
        self._activate(text, universe)
        await self.store.set_setting(ACTIVE_SCAN_KEY, {"text": text,
                                                       "universe": self.view.universe})
        await self.refresh()
        return self.view

    async def clear_scan(self) -> None:
        self._scan, self._live, self._loaded_for = None, None, None
        self._symbols = []
        self._compared = None
        self._publish(ScanView(saved=self.view.saved))
        await self.store.set_setting(ACTIVE_SCAN_KEY, None)

    async def save(self, name: str, text: str, universe: str) -> SavedScan:
        try:
            saved = await save_scan(self.store, name, text, universe)
        except ScanError as error:
            raise CommandError(str(error)) from error
        except ValueError as error:
            raise CommandError(str(error)) from error
        await self._reload_saved()
        return saved

    async def delete(self, name: str) -> None:
        if not await delete_scan(self.store, name):
            raise CommandError(f"no saved scan called {name!r}")
        await self._reload_saved()

    async def refresh(self) -> None:
        """Evaluate now (loading the universe first when it or the session changed)."""
        if self._scan is None:
            return
        session = self._session()
        if self._loaded_for != (self.view.universe, session) or self._live is None:
            await self._build(session)
        self._update()

    # ------------------------------------------------------------------ internals

    def _activate(self, text: str, universe: str) -> None:
        try:
            scan = parse(text)
        except ScanError as error:
            raise CommandError(str(error)) from error
        bundled = self.feed.universe_symbols() if isinstance(self.feed, UniverseSource) else []
        try:
            name, symbols = resolve_universe(universe, self.watchlists(), bundled)
        except ValueError as error:
            raise CommandError(str(error)) from error
        if name != self.view.universe or symbols != self._symbols:
            self._loaded_for = None
        self._scan, self._symbols = scan, symbols
        self._live = None
        self._compared = None
        self._publish(ScanView(text=text, universe=name, loading=True, saved=self.view.saved))
        self._wake.set()

    def _session(self) -> tuple[date, bool]:
        """What the loaded history depends on: the date, and whether its session has
        closed (a new date, or the bell, loads the universe again)."""
        now = self.feed.clock.now_ns()
        day = self.calendar.session_date(now)
        closed = self.calendar.is_session(day) and now >= self.calendar.open_close_ns(day)[1]
        return day, closed

    async def _build(self, session: tuple[date, bool]) -> None:
        async with self._build_lock:
            # The scan and its universe as they are once the lock is ours (a scan made
            # active while an earlier load held it is the one to load).
            scan, universe, symbols = self._scan, self.view.universe, list(self._symbols)
            if scan is None:
                return
            if self._live is not None and self._live.scan is scan and \
                    self._loaded_for == (universe, session):
                return  # built meanwhile (the refresh loop and a command both asked)
            self._publish(self._replace(loading=True))
            try:
                history, today = await self._history(symbols)
                live = await asyncio.to_thread(LiveScan, scan, history, today)
            except Exception as error:  # a feed that failed or a universe with no data
                log.debug("scanner: loading %s failed", universe, exc_info=True)
                if scan is self._scan:
                    self._live = None
                    self._publish(self._replace(loading=False, result=None,
                                                error=f"cannot load the {universe} "
                                                      f"universe: {error}"))
                return
            if scan is self._scan:
                # A new LiveScan: its first result is a baseline (_announce).
                self._live = live
                self._loaded_for = (universe, session)
                self._seen_seq = -1

    async def _history(self, symbols: list[str]) -> tuple[UniverseBars, date]:
        feed = self.feed
        if isinstance(feed, UniverseSource) and feed.universe_symbols():
            return await feed.daily_universe(symbols)
        now = feed.clock.now_ns()
        today = self.calendar.session_date(now)
        end = datetime.combine(today, datetime.min.time(), UTC)
        frame = await feed.history(symbols, end - timedelta(days=HISTORY_DAYS), end, "1d")
        by_symbol = dict(tuple(frame.groupby("symbol", sort=False))) if len(frame) else {}
        histories = []
        for symbol in symbols:
            rows = by_symbol.get(symbol, frame.iloc[:0])
            days = rows["ts"].dt.tz_convert(self.calendar.zone).dt.date
            numbers = np.array([day_number(day) for day in days], dtype=np.int64)
            values = rows[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)
            histories.append((numbers, values))
        return UniverseBars.from_arrays(list(symbols), histories), today

    def _update(self) -> None:
        live = self._live
        if live is None:
            return
        self._seen_seq = self.market.seq
        bars, streaming = self._today_bars(live)
        result = live.update(bars)
        self._announce(live, result, set(bars), streaming)
        self._publish(self._replace(result=result, loading=False, error="",
                                    evaluated_ns=self.wall_ns()))

    def _today_bars(self, live: LiveScan) -> tuple[dict[str, BarValues], set[str]]:
        """Today's forming bar of every streamed universe symbol that has one, and the
        universe symbols the feed streams (those with a price, of any day)."""
        bars: dict[str, BarValues] = {}
        streaming: set[str] = set()
        states = self.market.states
        for symbol in live.columns:
            state = states.get(symbol)
            if state is None:
                continue
            row = state.row()
            if row.ts_ns and math.isfinite(row.last):
                streaming.add(symbol)
            values = (row.day_open, row.day_high, row.day_low, row.last, row.volume)
            if not row.ts_ns or not all(math.isfinite(v) for v in values):
                continue
            if self.calendar.session_date(row.ts_ns) != live.session:
                continue
            bars[symbol] = values
        return bars, streaming

    def _announce(self, live: LiveScan, result: ScanResult, moved: set[str],
                  streaming: set[str]) -> None:
        """Announce the symbols that started matching since the last result of `live`
        (`moved`: those given a bar of today's for it; `streaming`: those the feed
        streams). Nothing for the first result of a LiveScan: a baseline."""
        now = time.monotonic()
        current = {hit.symbol for hit in result.hits}
        baseline = self._compared is not live
        before, streamed_before = self._matching, self._streaming
        self._compared, self._matching, self._streaming = live, current, streaming
        if baseline:
            return
        scan_text = self.view.text
        for hit in result.hits:
            symbol = hit.symbol
            if symbol in before:
                continue
            # Only its own data can make a symbol start matching: a live bar, for a symbol
            # streamed already at the last result (not one being caught up).
            if symbol not in moved or symbol not in streamed_before:
                continue
            last = self._announced.get(symbol)
            if last is not None and now - last < self.settings.hit_debounce_s:
                continue
            self._announced[symbol] = now
            summary = ", ".join(f"{text} = {value:.4g}" for text, value in hit.values.items())
            self.bus.publish(ScanHit(self.feed.clock.now_ns(), symbol, scan_text, summary))
            self.log_line(LogLevel.INFO, "scanner", f"scan hit: {symbol} ({summary})")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.refresh_s)
            self._wake.clear()
            if self._scan is None:
                continue
            try:
                session = self._session()
                if self._loaded_for != (self.view.universe, session) or self._live is None:
                    await self._build(session)
                    self._update()
                elif self.market.seq != self._seen_seq:
                    self._update()
            except Exception:  # the scanner must never take the engine down
                log.exception("scanner: a rescan failed")
                self.log_line(LogLevel.ERROR, "scanner",
                              "a rescan failed (details in the log file); retrying")

    async def _reload_saved(self) -> None:
        saved = tuple(await saved_scans(self.store))
        self._publish(self._replace(saved=saved))

    def _replace(self, **changes: Any) -> ScanView:
        return replace(self.view, **changes)

    def _publish(self, view: ScanView) -> None:
        """The new view, numbered after the last (screens redraw when it changes)."""
        self.view = replace(view, version=self.view.version + 1)

