"""One-shot quotes for the `quote` command: the configured feed, no UI, no database
lock (it reads the replay position read-only, so it works while the workstation runs)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from core.config import Settings
from core.feeds import ReplayControl, load_feed
from core.market import MarketState
from core.model import is_well_formed_symbol, normalize_symbol
from core.state import QuoteRow

REPLAY_POSITION_KEY = "replay.position_ns"


class QuoteRequestError(Exception):
    """The request cannot be served; the message is for the trader."""


async def _saved_replay_position(settings: Settings) -> int | None:
    from core.store import Store, StoreError

    path = settings.database_path()
    if not path.exists():
        return None
    with contextlib.suppress(StoreError):
        store = await Store.open(path, read_only=True)
        try:
            position = await store.get_setting(REPLAY_POSITION_KEY)
        finally:
            await store.close()
        return position if isinstance(position, int) else None
    return None


async def fetch_quotes(
    settings: Settings, symbols: Sequence[str], timeout_s: float = 15.0
) -> tuple[list[QuoteRow], int, list[str]]:
    """Quotes for `symbols` as of the feed's clock: (rows, market time, messages about
    symbols that could not be served)."""
    wanted = list(dict.fromkeys(normalize_symbol(s) for s in symbols))
    problems = [f"{s!r} is not a symbol" for s in wanted if not is_well_formed_symbol(s)]
    wanted = [s for s in wanted if is_well_formed_symbol(s)]
    feed = load_feed(settings.feed.provider, settings)
    try:
        if isinstance(feed, ReplayControl) and settings.replay.resume:
            position = await _saved_replay_position(settings)
            if position:
                feed.seek(position)
        instruments = await feed.validate(wanted)
        market = MarketState()
        served = []
        for symbol in wanted:
            instrument = instruments.get(symbol)
            if instrument is None:
                hint = feed.suggest(symbol)
                problems.append(f"unknown symbol {symbol}" +
                                (f" (did you mean {', '.join(hint)}?)" if hint else ""))
            else:
                market.track(instrument)
                served.append(symbol)
        if not served:
            raise QuoteRequestError("; ".join(problems) or "no symbols given")
        deadline = time.monotonic() + timeout_s
        stream = feed.stream(served)
        try:
            async for batch in stream:
                market.ingest(batch)
                if all(market.states[s].last == market.states[s].last for s in served):
                    break
                if time.monotonic() > deadline:
                    break
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
        rows = [market.states[s].row() for s in served]
        return rows, feed.clock.now_ns(), problems
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(feed.close(), 5)
