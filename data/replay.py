"""The replay market: real daily bars replayed as a live session.

Each trading day of the bundled history becomes a live session: for every symbol a
seeded intraday path (a Brownian bridge through the day's open, high, low and close,
see `data.intraday`) is streamed as quotes and trades while a SimClock runs the
session's 6.5 hours in `day_seconds` of wall time. Symbols outside the bundle can be
served by the synthetic market (`data.synthetic`) through the same machinery, so they
share the clock and the calendar.

History is served from the bundle up to the replay clock and never beyond it: today's
daily bar is the part of the session already played.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from datetime import time as dt_time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.clock import ExchangeCalendar, SimClock
from core.model import (
    NS_PER_SECOND,
    Bar,
    Instrument,
    MarketEvent,
    Quote,
    Trade,
    is_well_formed_symbol,
)
from core.scan_universe import UniverseBars
from data.bundle import BundledDailyBars, UnknownSymbolError
from data.intraday import DayPath, day_seed, synthesize_day
from data.replay_symbol import DailyArrays, ReplaySymbol
from data.synthetic import SyntheticDailyBars
from data.universe import universe_bars

if TYPE_CHECKING:
    from core.config import Settings

log = logging.getLogger(__name__)

MINUTE_NS = 60 * NS_PER_SECOND
SPEED_PRESETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 100.0)
MAX_MINUTE_HISTORY_DAYS = 10
FIRST_LOAD = 8  # symbols loaded before the stream's first batch; the rest follow
SYNTHETIC_EPOCH = date(2015, 1, 2)


class ReplayFeed:
    """Implements `core.feeds.MarketData` and `core.feeds.ReplayControl`."""

    delayed = False

    def __init__(
        self,
        *,
        start: date,
        day_seconds: float,
        overnight_seconds: float,
        steps_per_day: int,
        seed: int,
        paused: bool = False,
        bundle: BundledDailyBars | None = None,
        synthetic: SyntheticDailyBars | None = None,
        calendar: ExchangeCalendar | None = None,
        last_session: date | None = None,
        tick_s: float = 0.05,
        name: str = "replay",
    ) -> None:
        if bundle is None and synthetic is None:
            raise ValueError("a replay needs bundled or synthetic data")
        self.name = name
        self.calendar = calendar or ExchangeCalendar()
        self._bundle = bundle
        self._bundle_symbols = frozenset(bundle.symbols()) if bundle is not None else frozenset()
        self._synthetic = synthetic
        self._steps = steps_per_day
        self._seed = seed
        self._day_seconds = day_seconds
        self._overnight_seconds = overnight_seconds
        self._tick_s = tick_s
        self._speed = 1.0
        self._paused = paused
        self._finished = False
        self._first_session = self.calendar.next_session(date(2015, 1, 9)) if bundle else start
        self._last_session = last_session or (
            date(2020, 1, 10) if bundle else start.replace(year=start.year + 5)
        )
        self._symbols: dict[str, ReplaySymbol] = {}
        self._pending_catchup: set[str] = set()
        self._overnight_left = 0.0
        session = start if self.calendar.is_session(start) else self.calendar.next_session(start)
        self._begin_session(max(session, self._first_session))
        self.clock = SimClock(self._open_ns)

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplayFeed:
        replay = settings.replay
        synthetic = None
        if settings.feed.fallback == "sim":
            synthetic = SyntheticDailyBars(seed=settings.sim.seed)
        feed = cls(
            start=replay.start,
            day_seconds=replay.day_seconds,
            overnight_seconds=replay.overnight_seconds,
            steps_per_day=replay.steps_per_day,
            seed=replay.seed,
            paused=replay.paused,
            bundle=BundledDailyBars(),
            synthetic=synthetic,
        )
        feed.start_at(replay.start_time)
        return feed

    def start_at(self, moment: dt_time) -> None:
        """Begin the first session at a time of day (New York) instead of the open."""
        at = datetime.combine(self._session, moment, self.calendar.zone)
        self.seek(int(at.timestamp()) * NS_PER_SECOND)

    # ------------------------------------------------------------------ control

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def session(self) -> date:
        return self._session

    @property
    def finished(self) -> bool:
        return self._finished

    def set_speed(self, multiplier: float) -> None:
        if not math.isfinite(multiplier) or multiplier <= 0:
            raise ValueError(f"a replay speed must be a positive number, got {multiplier}")
        self._speed = float(multiplier)

    def set_paused(self, paused: bool) -> None:
        self._paused = paused

    def describe(self) -> str:
        if self._finished:
            return f"replay ended {self._session:%Y-%m-%d}"
        speed = f"{self._speed:g}x"
        minutes_per_second = self._market_rate() / 60
        return f"{speed} ({minutes_per_second:.1f} market min/s)"

    def seek(self, ts_ns: int) -> None:
        """Jump to a market time before streaming starts (resuming a previous run)."""
        day = self.calendar.session_date(ts_ns)
        if not self.calendar.is_session(day) or day < self._first_session:
            day = self.calendar.next_session(day)
        if day > self._last_session:
            log.info("saved replay position is past the data: starting at %s", self._session)
            return
        self._begin_session(day)
        position = min(max(ts_ns, self._open_ns), self._close_ns)
        self.clock = SimClock(position)
        if position >= self._close_ns:
            self._overnight_left = self._overnight_seconds

    def expects_updates(self) -> bool:
        if self._paused or self._finished or self._overnight_left > 0:
            return False
        return self._open_ns <= self.clock.now_ns() < self._close_ns

    def _market_rate(self) -> float:
        """Market seconds per wall second."""
        return (self._close_ns - self._open_ns) / NS_PER_SECOND / self._day_seconds * self._speed

    # ------------------------------------------------------------------ symbols

    def _daily_frame(self, symbol: str) -> tuple[pd.DataFrame, str] | None:
        if symbol in self._bundle_symbols and self._bundle is not None:
            try:
                return self._bundle.load(symbol), "replay"
            except UnknownSymbolError:
                return None
        if self._synthetic is not None and is_well_formed_symbol(symbol):
            return self._synthetic.load(symbol, SYNTHETIC_EPOCH, self._last_session), "sim"
        return None

    # ------------------------------------------------------------------ the scanner

    def universe_symbols(self) -> list[str]:
        return sorted(self._bundle_symbols)

    async def daily_universe(self, symbols: Sequence[str] | None) -> tuple[UniverseBars, date]:
        session = self._session
        if self.clock.now_ns() >= self._close_ns:
            # After the bell the session's bars are complete: the next one is "today".
            through, session = session, self.calendar.next_session(session)
        else:
            through = self.calendar.previous_session(session)
        bundle = self._bundle
        if bundle is None:
            return UniverseBars.from_arrays([], []), session
        bars = await asyncio.to_thread(universe_bars, bundle, symbols, through=through,
                                       as_of=session)
        return bars, session

    def search(self, text: str, limit: int = 20) -> list[Instrument]:
        text = text.strip().upper()
        symbols = sorted(self._bundle_symbols)
        starts = [s for s in symbols if s.startswith(text)]
        contains = [s for s in symbols if text in s and not s.startswith(text)]
        return [Instrument(s, source="replay") for s in (starts + contains)[:limit]]

    def suggest(self, symbol: str) -> list[str]:
        return difflib.get_close_matches(symbol, sorted(self._bundle_symbols), n=3, cutoff=0.6)

    async def validate(self, symbols: Sequence[str]) -> dict[str, Instrument | None]:
        result: dict[str, Instrument | None] = {}
        for symbol in symbols:
            if symbol in self._bundle_symbols:
                result[symbol] = Instrument(symbol, source="replay")
            elif self._synthetic is not None and is_well_formed_symbol(symbol):
                result[symbol] = Instrument(symbol, source="sim")
            else:
                result[symbol] = None
        return result

    async def subscribe(self, symbols: Sequence[str]) -> None:
        loaded = await asyncio.to_thread(self._load_symbols, list(symbols))
        for symbol, replay in loaded.items():
            if symbol not in self._symbols:
                self._symbols[symbol] = replay
                self._prepare_day(replay)
                self._pending_catchup.add(symbol)

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        for symbol in symbols:
            self._symbols.pop(symbol, None)
            self._pending_catchup.discard(symbol)

    def _load_symbols(self, symbols: list[str]) -> dict[str, ReplaySymbol]:
        loaded = {}
        for symbol in symbols:
            found = self._daily_frame(symbol)
            if found is None:
                log.warning("%s: no data in the %s market", symbol, self.name)
                continue
            frame, source = found
            phase = (day_seed(self._seed, symbol, date(2000, 1, 1)) % 1000) / 1000.0
            loaded[symbol] = ReplaySymbol(
                Instrument(symbol, source=source), DailyArrays.from_frame(frame), phase
            )
        return loaded

    # ------------------------------------------------------------------ sessions

    def _begin_session(self, day: date) -> None:
        self._session = day
        self._open_ns, self._close_ns = self.calendar.open_close_ns(day)
        self._overnight_left = 0.0
        for replay in self._symbols.values():
            self._prepare_day(replay)

    def _prepare_day(self, replay: ReplaySymbol) -> None:
        replay.emitted = -1
        row = replay.daily.row(self._session)
        if row is None:
            replay.path = None
            return
        o, h, lo, c, v = (float(x) for x in row)
        replay.path = synthesize_day(
            o, h, lo, c, v, self._steps, day_seed(self._seed, replay.instrument.symbol,
                                                  self._session)
        )

    def _step_index(self, replay: ReplaySymbol, ts_ns: int) -> int:
        """The last step of a symbol's path that has printed by `ts_ns`."""
        if ts_ns < self._open_ns:
            return -1
        fraction = (ts_ns - self._open_ns) / (self._close_ns - self._open_ns)
        if fraction >= 1.0:
            return self._steps
        return min(self._steps, int(fraction * self._steps + replay.phase))

    def _step_time(self, replay: ReplaySymbol, step: int) -> int:
        if step <= 0:
            return self._open_ns
        span = self._close_ns - self._open_ns
        at = self._open_ns + int(span * max(0.0, step - replay.phase) / self._steps)
        return min(at, self._close_ns - NS_PER_SECOND)

    # ------------------------------------------------------------------ streaming

    async def stream(self, symbols: Sequence[str]) -> AsyncIterator[Sequence[MarketEvent]]:
        # The first few symbols (the top of the first watchlist: what the screen shows
        # first) are loaded before the first batch; the rest load in the background and
        # join through the catch-up, so the first prices do not wait for the whole list.
        wanted = [s for s in symbols if s not in self._symbols]
        first, rest = wanted[:FIRST_LOAD], wanted[FIRST_LOAD:]
        if first:
            await self.subscribe(first)
        loader = asyncio.create_task(self.subscribe(rest), name="replay-load") if rest else None
        try:
            self._pending_catchup |= set(symbols) & set(self._symbols)
            last_wall = time.monotonic()
            yield self._catch_up()
            while True:
                await asyncio.sleep(self._tick_s)
                now = time.monotonic()
                elapsed, last_wall = now - last_wall, now
                if loader is not None and loader.done():
                    loader.result()  # a loading error ends the stream: the supervisor restarts it
                    loader = None
                yield self.advance(elapsed)
        finally:
            if loader is not None:
                loader.cancel()

    def advance(self, wall_seconds: float) -> list[MarketEvent]:
        """Move the replay forward by `wall_seconds` of wall time; return the events
        that printed meanwhile. Synchronous, so tests and benchmarks can drive it."""
        events: list[MarketEvent] = self._catch_up() if self._pending_catchup else []
        if self._paused or self._finished:
            return events
        if self._overnight_left > 0:
            self._overnight_left -= wall_seconds
            if self._overnight_left <= 0:
                self._next_session(events)
            return events
        now = self.clock.now_ns()
        target = now + int(wall_seconds * self._market_rate() * NS_PER_SECOND)
        if target >= self._close_ns:
            target = self._close_ns
        self.clock.set_ns(max(now, target))
        self._emit_steps(events, target)
        if target >= self._close_ns:
            # The session's daily bars complete at the bell: strategies act on them.
            for replay in self._symbols.values():
                completed = self._daily_bar(replay, self._session)
                if completed is not None:
                    events.append(completed)
            self._overnight_left = max(self._overnight_seconds, 1e-9)
        return events

    def _next_session(self, events: list[MarketEvent]) -> None:
        if self._session >= self._last_session:
            self._finished = True
            log.info("the replay reached the end of its data (%s)", self._session)
            return
        previous = self._session
        self._begin_session(self.calendar.next_session(previous))
        self.clock.set_ns(self._open_ns)
        for replay in self._symbols.values():
            reference = self._daily_bar(replay, previous)
            if reference is not None:
                events.append(reference)
        self._emit_steps(events, self._open_ns)

    def _emit_steps(self, events: list[MarketEvent], until_ns: int) -> None:
        for symbol, replay in self._symbols.items():
            path = replay.path
            if path is None:
                continue
            upto = self._step_index(replay, until_ns)
            if upto <= replay.emitted:
                continue
            prices, volumes = path.prices, path.volumes
            for step in range(replay.emitted + 1, upto + 1):
                ts = self._step_time(replay, step)
                events.append(Trade(symbol, ts, float(prices[step]), float(volumes[step])))
            ts = self._step_time(replay, upto)
            events.append(self._quote(symbol, path, upto, ts))
            replay.emitted = upto

    @staticmethod
    def _quote(symbol: str, path: DayPath, step: int, ts_ns: int) -> Quote:
        bid, ask = float(path.bids[step]), float(path.asks[step])
        # Displayed size: a slice of the step's volume, in round lots.
        size = float(max(100, round(float(path.volumes[step]) / 400) * 100))
        return Quote(symbol, ts_ns, bid, ask, size, size)

    def _catch_up(self) -> list[MarketEvent]:
        """For newly streamed symbols: yesterday's daily bar, the session so far as
        minute bars, and the current quote."""
        events: list[MarketEvent] = []
        now = self.clock.now_ns()
        for symbol in sorted(self._pending_catchup):
            replay = self._symbols.get(symbol)
            if replay is None:
                continue
            previous = self.calendar.previous_session(self._session)
            reference = self._daily_bar(replay, previous)
            if reference is not None:
                events.append(reference)
            path = replay.path
            if path is None:
                continue
            upto = self._step_index(replay, now)
            if upto >= 0:
                events.extend(self._minute_bars(replay, path, upto))
                events.append(self._quote(symbol, path, upto, self._step_time(replay, upto)))
            replay.emitted = upto
        self._pending_catchup.clear()
        return events

    def _minute_bars(
        self, replay: ReplaySymbol, path: DayPath, upto: int, day: date | None = None
    ) -> list[Bar]:
        """Steps 0..upto of a day's path aggregated into minute bars (the last one may
        be partial). The step times follow `_step_time`."""
        open_ns, close_ns = (
            (self._open_ns, self._close_ns) if day is None else self.calendar.open_close_ns(day)
        )
        steps = np.arange(upto + 1)
        offsets = np.maximum(0.0, steps - replay.phase) / self._steps * (close_ns - open_ns)
        times = np.minimum(open_ns + offsets.astype(np.int64), close_ns - NS_PER_SECOND)
        minutes = times - times % MINUTE_NS
        prices = path.prices[: upto + 1]
        volumes = path.volumes[: upto + 1].astype(np.float64)
        starts = np.flatnonzero(np.r_[True, minutes[1:] != minutes[:-1]])
        highs = np.maximum.reduceat(prices, starts)
        lows = np.minimum.reduceat(prices, starts)
        sums = np.add.reduceat(volumes, starts)
        ends = np.r_[starts[1:], upto + 1] - 1
        symbol = replay.instrument.symbol
        return [
            Bar(symbol, int(minutes[s]), 60, float(prices[s]), float(h), float(lo),
                float(prices[e]), float(v))
            for s, e, h, lo, v in zip(starts, ends, highs, lows, sums, strict=True)
        ]

    def _daily_bar(self, replay: ReplaySymbol, day: date) -> Bar | None:
        row = replay.daily.row(day)
        if row is None:
            return None
        open_ns, _ = self.calendar.open_close_ns(day)
        o, h, lo, c, v = (float(x) for x in row)
        return Bar(replay.instrument.symbol, open_ns, 86_400, o, h, lo, c, v)

    # ------------------------------------------------------------------ history

    async def history(
        self, symbols: Sequence[str], start: datetime, end: datetime, interval: str
    ) -> pd.DataFrame:
        if interval not in ("1d", "1m"):
            raise ValueError(f"unknown interval {interval!r}: the replay serves 1d and 1m")
        missing = [s for s in symbols if s not in self._symbols]
        extra = await asyncio.to_thread(self._load_symbols, missing) if missing else {}
        now = self.clock.now_ns()
        start_ns = int(start.timestamp()) * NS_PER_SECOND
        end_ns = min(int(end.timestamp()) * NS_PER_SECOND, now + 1)
        bars: list[Bar] = []
        for symbol in symbols:
            replay = self._symbols.get(symbol) or extra.get(symbol)
            if replay is None:
                continue
            if replay.path is None and symbol in extra:
                self._prepare_day(replay)
            if interval == "1d":
                bars.extend(self._daily_history(replay, now))
            else:
                bars.extend(self._minute_history(replay, start_ns, now))
        rows = [b for b in bars if start_ns <= b.ts_ns < end_ns]
        frame = pd.DataFrame(
            {
                "symbol": [b.symbol for b in rows],
                "ts": pd.to_datetime([b.ts_ns for b in rows], unit="ns", utc=True),
                "open": [b.open for b in rows],
                "high": [b.high for b in rows],
                "low": [b.low for b in rows],
                "close": [b.close for b in rows],
                "volume": [b.volume for b in rows],
            }
        )
        return frame

    def _daily_history(self, replay: ReplaySymbol, now_ns: int) -> list[Bar]:
        count = replay.daily.before(self._session)
        symbol = replay.instrument.symbol
        bars = []
        opens = [self.calendar.open_close_ns(pd.Timestamp(d).date())[0]
                 for d in replay.daily.dates[:count]]
        for open_ns, (o, h, lo, c, v) in zip(opens, replay.daily.ohlcv[:count], strict=True):
            bars.append(Bar(symbol, open_ns, 86_400, float(o), float(h), float(lo), float(c),
                            float(v)))
        path = replay.path
        upto = self._step_index(replay, now_ns)
        if path is not None and upto >= 0:
            prices = path.prices[: upto + 1]
            bars.append(Bar(symbol, self._open_ns, 86_400, float(prices[0]),
                            float(prices.max()), float(prices.min()), float(prices[-1]),
                            float(path.volumes[: upto + 1].sum())))
        return bars

    def _minute_history(self, replay: ReplaySymbol, start_ns: int, now_ns: int) -> list[Bar]:
        bars: list[Bar] = []
        first = max(self.calendar.session_date(start_ns), self._first_session)
        days = self.calendar.sessions(first, self._session)[-MAX_MINUTE_HISTORY_DAYS:]
        for day in days:
            if day == self._session:
                path, upto = replay.path, self._step_index(replay, now_ns)
            else:
                row = replay.daily.row(day)
                if row is None:
                    continue
                o, h, lo, c, v = (float(x) for x in row)
                path = synthesize_day(o, h, lo, c, v, self._steps,
                                      day_seed(self._seed, replay.instrument.symbol, day))
                upto = self._steps
            if path is None or upto < 0:
                continue
            bars.extend(self._minute_bars(replay, path, upto, day))
        return bars

    async def close(self) -> None:
        self._symbols.clear()

