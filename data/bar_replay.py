"""The `bars` provider: daily bars replayed session by session, fast.

Each session of each subscribed symbol plays as the backtester plays it
(`core.bar_path`): four prints (open; low and high; close), one batch per print, then
the daily bars at the closing bell. So a strategy run live on this feed meets the
market its backtest met, and the engine's orders and fills equal the backtester's
(tests/core/test_strategy_parity.py). A session takes `replay.bar_session_seconds` of
wall time (1 s by default): a year of a strategy's live behaviour, orders, fills and
signals included, in about four minutes.

Prices are split- and dividend-adjusted like backtests (`strategies.backtest_adjusted`).
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import date, datetime

import pandas as pd

from core.bar_path import session_steps
from core.clock import ExchangeCalendar, SimClock
from core.config import Settings
from core.model import NS_PER_SECOND, Bar, Instrument, MarketEvent
from data.bundle import BundledDailyBars
from data.history import BACKTEST_COLUMNS, adjusted_bars, nearest_symbols

COLUMNS = ("symbol", "ts", "open", "high", "low", "close", "volume")


class BarReplayFeed:
    """Implements `core.feeds.MarketData`."""

    delayed = False

    def __init__(
        self,
        *,
        start: date,
        end: date | None = None,
        frames: Mapping[str, pd.DataFrame] | None = None,
        bundle: BundledDailyBars | None = None,
        adjusted: bool = True,
        session_seconds: float = 1.0,
        calendar: ExchangeCalendar | None = None,
        name: str = "bars",
    ) -> None:
        if frames is None and bundle is None:
            raise ValueError("a bar replay needs frames or a bundle")
        self.name = name
        self.calendar = calendar or ExchangeCalendar()
        self._frames: dict[str, pd.DataFrame] = dict(frames or {})
        self._bundle = bundle
        self._adjusted = adjusted
        self._session_seconds = session_seconds
        self._start = start
        self._end = end
        self._symbols: list[str] = []
        self._sessions: list[date] = []  # every session any loaded symbol has a bar in
        self._rows: dict[str, dict[date, tuple[float, float, float, float, float]]] = {}
        self._next = 0  # index into _sessions of the next session to play
        self._finished = False
        for symbol in self._frames:
            self._index(symbol)
        first = self.calendar.previous_session(start if self.calendar.is_session(start)
                                               else self.calendar.next_session(start))
        # Before the first session's open: yesterday's bar is complete, today's is not.
        self.clock = SimClock(self.calendar.open_close_ns(first)[1])

    @classmethod
    def from_settings(cls, settings: Settings) -> BarReplayFeed:
        return cls(start=settings.replay.start, bundle=BundledDailyBars(),
                   adjusted=settings.strategies.backtest_adjusted,
                   session_seconds=settings.replay.bar_session_seconds)

    # ------------------------------------------------------------------ symbols

    def _known(self) -> list[str]:
        names = set(self._frames)
        if self._bundle is not None:
            names.update(self._bundle.symbols())
        return sorted(names)

    def search(self, text: str, limit: int = 20) -> list[Instrument]:
        text = text.upper()
        found = [s for s in self._known() if s.startswith(text)]
        found += [s for s in self._known() if text in s and s not in found]
        return [Instrument(s, source=self.name) for s in found[:limit]]

    def suggest(self, symbol: str) -> list[str]:
        return nearest_symbols(symbol, self._known())

    async def validate(self, symbols: Sequence[str]) -> dict[str, Instrument | None]:
        known = set(self._known())
        return {s: Instrument(s, source=self.name) if s in known else None for s in symbols}

    def _frame(self, symbol: str) -> pd.DataFrame | None:
        frame = self._frames.get(symbol)
        if frame is None and self._bundle is not None and symbol in self._bundle:
            raw = self._bundle.load(symbol)
            frame = adjusted_bars(raw) if self._adjusted else raw.loc[:, list(BACKTEST_COLUMNS)]
            frame = self._frames[symbol] = frame.astype("float64")
        return frame

    def _index(self, symbol: str) -> None:
        frame = self._frame(symbol)
        if frame is None or symbol in self._rows:
            return
        rows: dict[date, tuple[float, float, float, float, float]] = {}
        for stamp, o, h, lo, c, v in zip(frame.index, frame["open"], frame["high"],
                                         frame["low"], frame["close"], frame["volume"],
                                         strict=True):
            rows[pd.Timestamp(stamp).date()] = (float(o), float(h), float(lo), float(c),
                                                float(v))
        self._rows[symbol] = rows
        current = self._sessions[self._next] if self._next < len(self._sessions) else None
        days = {d for d in rows if d >= self._start and (self._end is None or d <= self._end)}
        self._sessions = sorted(days.union(self._sessions))
        if current is not None:
            self._next = bisect.bisect_left(self._sessions, current)

    async def subscribe(self, symbols: Sequence[str]) -> None:
        for symbol in symbols:
            if symbol not in self._symbols and (symbol in self._frames or (
                    self._bundle is not None and symbol in self._bundle)):
                await asyncio.to_thread(self._index, symbol)
                self._symbols.append(symbol)

    async def unsubscribe(self, symbols: Sequence[str]) -> None:
        self._symbols = [s for s in self._symbols if s not in symbols]

    # ------------------------------------------------------------------ streaming

    def expects_updates(self) -> bool:
        return not self._finished

    def _bar(self, symbol: str, day: date, open_ns: int) -> Bar | None:
        row = self._rows.get(symbol, {}).get(day)
        if row is None:
            return None
        return Bar(symbol, open_ns, 86_400, *row)

    def steps(self) -> list[tuple[int, list[MarketEvent]]]:
        """The next session's steps (empty at the end of the data); synchronous, for
        tests and benchmarks."""
        if self._next >= len(self._sessions):
            self._finished = True
            return []
        day = self._sessions[self._next]
        self._next += 1
        open_ns, close_ns = self.calendar.open_close_ns(day)
        bars = [bar for symbol in self._symbols
                if (bar := self._bar(symbol, day, open_ns)) is not None]
        return list(session_steps(bars, open_ns, close_ns))

    async def stream(self, symbols: Sequence[str]) -> AsyncIterator[Sequence[MarketEvent]]:
        await self.subscribe(symbols)
        pause = self._session_seconds / 5
        yield []
        while True:
            steps = self.steps()
            if not steps:
                await asyncio.sleep(3600)  # the data has ended: nothing more will come
                continue
            for ts_ns, events in steps:
                self.clock.set_ns(ts_ns)
                yield events
                await asyncio.sleep(pause)

    # ------------------------------------------------------------------ history

    async def history(
        self, symbols: Sequence[str], start: datetime, end: datetime, interval: str
    ) -> pd.DataFrame:
        """Daily bars complete by the feed's clock (minute bars: none, this feed has
        only daily ones)."""
        if interval not in ("1d", "1m"):
            raise ValueError(f"unknown interval {interval!r}: the bar replay serves 1d")
        rows: list[tuple[object, ...]] = []
        if interval == "1d":
            now = self.clock.now_ns()
            start_ns = int(start.timestamp()) * NS_PER_SECOND
            end_ns = int(end.timestamp()) * NS_PER_SECOND
            for symbol in symbols:
                if symbol not in self._rows:
                    await asyncio.to_thread(self._index, symbol)
                for day, (o, h, lo, c, v) in sorted(self._rows.get(symbol, {}).items()):
                    open_ns, close_ns = self.calendar.open_close_ns(day)
                    if close_ns > now:
                        break
                    if start_ns <= open_ns < end_ns:
                        rows.append((symbol, pd.Timestamp(open_ns, unit="ns", tz="UTC"),
                                     o, h, lo, c, v))
        return pd.DataFrame(rows, columns=list(COLUMNS))

    async def close(self) -> None:
        self._symbols.clear()
