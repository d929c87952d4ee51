"""The engine over a real store and the real replay feed."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from core.engine import CommandError, Engine
from core.model import FeedState, MarketEvent, Quote, Trade
from core.state import ChangeCursor
from tests.conftest import make_settings


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    engine = await Engine.open(make_settings(tmp_path))
    await engine.start()
    await wait_for(lambda: all(r.last == r.last for r in engine.snapshot().rows.values()))
    yield engine
    await engine.stop()


async def test_start_serves_every_watchlist_symbol(engine: Engine) -> None:
    snapshot = engine.snapshot()
    assert set(snapshot.rows) == {"AAPL", "MSFT", "JPM", "XOM", "CVX"}
    aapl = snapshot.rows["AAPL"]
    assert aapl.bid < aapl.ask
    assert not math.isnan(aapl.prev_close)
    assert aapl.change == pytest.approx(aapl.last - aapl.prev_close)
    assert len(snapshot.session_bars["AAPL"]) > 80  # 09:30 to 11:00
    assert snapshot.status.feed_state == FeedState.LIVE


async def test_changes_hold_only_what_changed(engine: Engine) -> None:
    cursor = ChangeCursor()
    first = engine.changes(cursor)
    assert {r.symbol for r in first.rows} == {"AAPL", "MSFT", "JPM", "XOM", "CVX"}
    assert engine.changes(cursor).rows == []
    state = engine.market.states["MSFT"]
    engine.ingest([Trade("MSFT", state.ts_ns + 1, state.last + 1, 100)])
    delta = engine.changes(cursor)
    assert [r.symbol for r in delta.rows] == ["MSFT"]
    assert delta.rows[0].tick == 1


async def test_trades_build_minute_bars(engine: Engine) -> None:
    state = engine.market.states["JPM"]
    cursor = ChangeCursor()
    engine.changes(cursor)
    base = state.ts_ns - state.ts_ns % 60_000_000_000 + 60_000_000_000
    engine.ingest([Trade("JPM", base + 1, 100.0, 10), Trade("JPM", base + 2, 101.0, 10),
                   Trade("JPM", base + 3, 99.0, 10), Trade("JPM", base + 60_000_000_000, 98, 5)])
    bars = engine.changes(cursor).bars
    built = [b for b in bars if b.ts_ns == base]
    assert built
    assert (built[0].open, built[0].high, built[0].low, built[0].close) == (
        100.0, 101.0, 99.0, 99.0)
    assert built[0].volume == 30


async def test_watchlist_commands_persist(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    engine = await Engine.open(settings)
    await engine.start()
    try:
        await engine.add_symbol("Core", " ibm ")
        with pytest.raises(CommandError, match="already in Core"):
            await engine.add_symbol("Core", "IBM")
        with pytest.raises(CommandError, match="not a symbol"):
            await engine.add_symbol("Core", "12$")
        await engine.move_symbol("Core", "IBM", -10)
        await engine.remove_symbol("Core", "MSFT")
        await engine.create_watchlist("Momentum")
        await engine.rename_watchlist("Energy", "Oil")
        with pytest.raises(CommandError, match="exists already"):
            await engine.create_watchlist("momentum")
        await engine.delete_watchlist("Momentum")
        assert "MSFT" not in engine.market.states
    finally:
        await engine.stop()
    reopened = await Engine.open(settings)
    await reopened.start()
    try:
        lists = {w.name: w.symbols for w in reopened.watchlists}
        assert lists == {"Core": ("IBM", "AAPL", "JPM"), "Oil": ("XOM", "CVX")}
    finally:
        await reopened.stop()


async def test_unknown_symbol_is_refused_with_suggestions(tmp_path: Path) -> None:
    engine = await Engine.open(make_settings(tmp_path, feed={"fallback": ""}))
    await engine.start()
    try:
        with pytest.raises(CommandError, match=r"unknown symbol APPL.*AAPL"):
            await engine.add_symbol("Core", "APPL")
        with pytest.raises(CommandError, match="no watchlist"):
            await engine.add_symbol("Nope", "IBM")
    finally:
        await engine.stop()


async def test_symbols_go_stale_only_while_updates_are_expected(engine: Engine) -> None:
    engine.mark_stale(now=1e12, stale_after=5)  # paused replay: nothing is stale
    assert engine.market.stale_count == 0
    engine.set_replay_paused(False)
    engine.mark_stale(now=1e12 + 6, stale_after=5)
    assert engine.market.stale_count == 5
    assert engine.status().stale_symbols == 5
    state = engine.market.states["AAPL"]
    engine.ingest([Quote("AAPL", state.ts_ns + 1, state.bid, state.ask, 1, 1)])
    assert engine.market.stale_count == 4
    assert any("stale" in e.message for e in engine.snapshot().logs)



async def test_a_failing_feed_is_restarted_with_backoff(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, feed={"backoff_initial_s": 0.05, "backoff_max_s": 0.1})
    engine = await Engine.open(settings)
    original = engine.feed.stream
    failures = {"left": 2}

    async def flaky(symbols: Sequence[str]) -> AsyncIterator[Sequence[MarketEvent]]:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise ConnectionError("connection reset by peer")
        async for batch in original(symbols):
            yield batch

    engine.feed.stream = flaky  # type: ignore[method-assign]
    await engine.start()
    try:
        await wait_for(lambda: engine.status().feed_state == FeedState.LIVE)
        messages = [e.message for e in engine.snapshot().logs]
        assert sum("reconnecting in" in m for m in messages) == 2
        assert any("connection reset" in m for m in messages)
    finally:
        await engine.stop()


async def test_a_second_engine_on_the_same_database_is_refused(engine: Engine) -> None:
    from core.store import StoreLockedError

    with pytest.raises(StoreLockedError, match=r"test\.sqlite"):
        await Engine.open(engine.settings)


async def test_wait_until_live_returns_with_prices_in_or_times_out(tmp_path: Path) -> None:
    engine = await Engine.open(make_settings(tmp_path))
    try:
        assert not await engine.wait_until_live(0.05)  # not started: never live
        await engine.start()
        assert await engine.wait_until_live(10.0)
        assert engine.status().feed_state == FeedState.LIVE
        # The batch that made the feed live is already applied.
        assert any(r.last == r.last for r in engine.snapshot().rows.values())
    finally:
        await engine.stop()
