"""The market-data boundary: the protocol every feed implements, the registry that
finds feeds by entry point, and the supervisor that keeps a feed alive.

The protocol lives in core (not data) because the engine depends on it and core never
imports a concrete adapter; `data/` implements it.

`stream()` yields batches of events rather than single events: an await per quote would
cost more than the whole hot path, and every real source (a websocket frame, a replay
tick) delivers several events at once anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from core.clock import Clock
from core.model import FeedState, Instrument, MarketEvent

if TYPE_CHECKING:
    from datetime import date

    import pandas as pd

    from core.config import Settings
    from core.scan_universe import UniverseBars
    from core.store import Store

log = logging.getLogger(__name__)

FEED_ENTRY_POINT_GROUP = "tapedeck.feeds"


class FeedError(Exception):
    """A feed could not do what was asked; the message is for the trader."""


@runtime_checkable
class MarketData(Protocol):
    """A source of market data.

    `clock` is the market clock this feed's timestamps follow: the wall clock for a live
    source, a SimClock the feed advances for a replay.
    """

    name: str
    clock: Clock
    delayed: bool

    def search(self, text: str, limit: int = 20) -> list[Instrument]:
        """Instruments whose symbol (or name) starts with or contains `text`, best
        matches first, for completion. Cheap: no I/O."""
        ...

    async def validate(self, symbols: Sequence[str]) -> dict[str, Instrument | None]:
        """The instrument for each symbol, or None for a symbol this feed cannot serve."""
        ...

    def suggest(self, symbol: str) -> list[str]:
        """Known symbols close to an unknown one ("did you mean")."""
        ...

    async def history(
        self, symbols: Sequence[str], start: datetime, end: datetime, interval: str
    ) -> pd.DataFrame:
        """Bars with `start <= ts < end` for interval '1d' or '1m', never beyond the
        feed's clock: columns symbol, ts (UTC), open, high, low, close, volume, ordered
        by symbol then time."""
        ...

    def stream(self, symbols: Sequence[str]) -> AsyncIterator[Sequence[MarketEvent]]:
        """Live events for `symbols`; the first batches may replay the session so far
        (minute Bars) so a new subscriber starts with the day's context."""
        ...

    async def subscribe(self, symbols: Sequence[str]) -> None:
        """Add symbols to the running stream."""
        ...

    async def unsubscribe(self, symbols: Sequence[str]) -> None: ...

    def expects_updates(self) -> bool:
        """Whether updates should be arriving now (market open, not paused): the
        watchdogs only judge silence when they should."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class ReplayControl(Protocol):
    """A feed whose clock the trader can steer (the replay)."""

    @property
    def speed(self) -> float: ...

    @property
    def paused(self) -> bool: ...

    def set_speed(self, multiplier: float) -> None: ...

    def set_paused(self, paused: bool) -> None: ...

    def seek(self, ts_ns: int) -> None:
        """Move the replay to a market time (used to resume where the last run stopped)."""
        ...

    def describe(self) -> str:
        """One line for the status bar: position and speed."""
        ...


@runtime_checkable
class UniverseSource(Protocol):
    """A feed that hands the scanner a whole universe's daily bars in one call (the
    replay, from its bundle), instead of one history request per symbol."""

    def universe_symbols(self) -> list[str]:
        """Every symbol the feed can serve this way (the scanner's 'bundled' universe);
        empty when it has none."""
        ...

    async def daily_universe(self, symbols: Sequence[str] | None) -> tuple[UniverseBars, date]:
        """The completed sessions' daily bars of `symbols` (all of `universe_symbols()`
        for None), adjusted for splits and dividends as of the session that is next to
        complete, and that session (the scanner's 'today'). Never beyond the clock."""
        ...


@runtime_checkable
class UsesStore(Protocol):
    """A feed that keeps what it fetched in the profile's database (the real providers
    cache history in the bars table); the engine hands it the store it opened."""

    def use_store(self, store: Store) -> None: ...


@runtime_checkable
class FeedNotes(Protocol):
    """A feed with something to say beyond its connection state; the status bar shows
    it."""

    def note(self) -> str:
        """One short line ("rate-limited by Yahoo: cached data, retry in 40 s",
        "polling every 15 s"), or "" when there is nothing to say. Cheap: no I/O."""
        ...


class FeedFactory(Protocol):
    @classmethod
    def from_settings(cls, settings: Settings) -> MarketData: ...


def available_feeds() -> dict[str, Any]:
    """Registered feed names -> entry points (not yet imported)."""
    return {ep.name: ep for ep in entry_points(group=FEED_ENTRY_POINT_GROUP)}


def load_feed(name: str, settings: Settings) -> MarketData:
    feeds = available_feeds()
    if name not in feeds:
        known = ", ".join(sorted(feeds)) or "none"
        raise FeedError(f"unknown data provider {name!r} (installed: {known})")
    try:
        factory: FeedFactory = feeds[name].load()
        return factory.from_settings(settings)
    except FeedError:
        raise
    except Exception as exc:
        raise FeedError(f"data provider {name!r} failed to start: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: delay n is uniform in [d/2, d] with
    d = min(maximum, initial * 2**n), so reconnecting clients spread out."""

    initial: float
    maximum: float

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.maximum, self.initial * (2 ** min(attempt, 30)))
        return rng.uniform(ceiling / 2, ceiling)


class FeedSupervisor:
    """Runs a feed's stream, restarts it with backoff when it fails or stalls, and
    reports its state.

    A stall is judged only while the feed says updates are expected: a closed market
    or a paused replay is quiet, not broken.
    """

    def __init__(
        self,
        feed: MarketData,
        symbols: Callable[[], Sequence[str]],
        on_batch: Callable[[Sequence[MarketEvent]], None],
        on_state: Callable[[FeedState, str], None],
        backoff: Backoff,
        stall_after_s: float,
        seed: int | None = None,
        after_batch: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.feed = feed
        self._symbols = symbols
        self._on_batch = on_batch
        self._on_state = on_state
        self._backoff = backoff
        self._stall_after_s = stall_after_s
        self._after_batch = after_batch
        self._rng = random.Random(seed)
        self.restarts = 0
        self.last_batch_wall = time.monotonic()
        self._stream_task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        attempt = 0
        watchdog = asyncio.create_task(self._watch_for_stall(), name="feed-stall-watchdog")
        try:
            while True:
                self._on_state(FeedState.STARTING if attempt == 0 else FeedState.RECONNECTING, "")
                started = time.monotonic()
                self._stream_task = asyncio.create_task(self._consume(), name="feed-stream")
                reason = ""
                try:
                    await self._stream_task
                    reason = "the stream ended"
                except asyncio.CancelledError:
                    if self._stream_task.cancelled() and not _current_task_cancelling():
                        reason = f"no data for {self._stall_after_s:g} s"
                    else:
                        raise
                except Exception as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                # A stream that ran well for a while earns a fresh backoff.
                if time.monotonic() - started > 60:
                    attempt = 0
                delay = self._backoff.delay(attempt, self._rng)
                attempt += 1
                self.restarts += 1
                self._on_state(
                    FeedState.RECONNECTING,
                    f"{self.feed.name} feed: {reason}; reconnecting in {delay:.1f} s",
                )
                await asyncio.sleep(delay)
        finally:
            watchdog.cancel()
            if self._stream_task is not None:
                self._stream_task.cancel()
                with contextlib.suppress(BaseException):
                    await self._stream_task

    async def _consume(self) -> None:
        live_reported = False
        async for batch in self.feed.stream(list(self._symbols())):
            self.last_batch_wall = time.monotonic()
            if not live_reported:
                self._on_state(FeedState.LIVE, "")
                live_reported = True
            if batch:
                self._on_batch(batch)
                if self._after_batch is not None:
                    # What the batch set off (strategy orders) completes before the
                    # next batch is applied.
                    await self._after_batch()

    async def _watch_for_stall(self) -> None:
        interval = min(1.0, self._stall_after_s / 4)
        while True:
            await asyncio.sleep(interval)
            task = self._stream_task
            if task is None or task.done():
                continue
            if not self.feed.expects_updates():
                self.last_batch_wall = time.monotonic()
                continue
            if time.monotonic() - self.last_batch_wall > self._stall_after_s:
                log.warning("%s feed silent for %.1f s: restarting", self.feed.name,
                            self._stall_after_s)
                self.last_batch_wall = time.monotonic()
                task.cancel()


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
