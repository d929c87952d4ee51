"""The engine's scanner over the real replay: a scan over a watchlist is live (today's
forming bars), over the bundled universe the rest is on the last close; bad input is a
CommandError with the column; the active scan and saved scans survive a restart; new
hits are published once (kind `scan_hit`) and debounced, and only for a symbol whose
own live data made it match: never for the first result of a load (a scan set, the
universe loaded again at the bell or after a failed load), a symbol on its last close,
or a symbol being caught up as its streaming starts."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from core import scan_service
from core.engine import CommandError, Engine
from core.model import Trade
from core.scan_language import parse
from core.scan_live import LiveScan
from core.scan_service import ScanHit, resolve_universe
from core.scan_universe import UniverseBars
from core.state import ChangeCursor, Watchlist
from data.replay import ReplayFeed
from tests.conftest import make_settings
from tests.core.test_engine import wait_for

TODAY = date(2019, 3, 14)  # the test replay's session (make_settings)
YESTERDAY = date(2019, 3, 13)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    engine = await Engine.open(make_settings(tmp_path, scanner={"refresh_s": 0.1}))
    await engine.start()
    await wait_for(lambda: all(r.last == r.last for r in engine.snapshot().rows.values()))
    yield engine
    await engine.stop()


async def test_a_watchlist_scan_is_on_todays_forming_bars(engine: Engine) -> None:
    view = await engine.set_scan("close > 0 sort by close desc", "core")
    assert view.universe == "Core"
    assert view.result is not None
    hits = {hit.symbol: hit for hit in view.result.hits}
    assert set(hits) == {"AAPL", "MSFT", "JPM"}
    rows = engine.snapshot().rows
    for symbol, hit in hits.items():
        assert hit.as_of == TODAY
        assert hit.values["close"] == rows[symbol].last
    closes = [hit.rank for hit in view.result.hits]
    assert closes == sorted(closes, reverse=True)


async def test_the_bundled_universe_scans_the_rest_on_their_last_close(engine: Engine) -> None:
    view = await engine.set_scan("close > 0", "bundled")
    assert view.result is not None
    assert view.result.scanned > 400
    as_of = {hit.symbol: hit.as_of for hit in view.result.hits}
    assert as_of["AAPL"] == TODAY  # streamed: a watchlist symbol
    assert as_of["IBM"] == YESTERDAY  # not streamed: its last close
    # The whole universe is not streamed (it is over the stream limit).
    assert "IBM" not in engine.subscribed_symbols()


async def test_a_small_universe_is_streamed_whole(engine: Engine) -> None:
    view = await engine.set_scan("close > 0", "IBM, KO")
    assert view.universe == "IBM,KO"
    assert {"IBM", "KO"} <= set(engine.subscribed_symbols())
    await wait_for(lambda: engine.scanner.view.result is not None and {
        hit.symbol: hit.as_of for hit in engine.scanner.view.result.hits}.get("IBM") == TODAY)


@pytest.mark.parametrize(("text", "universe", "message"), [
    ("rsi(14) <", "bundled", "column 10"),
    ("__import__('os')", "bundled", "column 1"),
    ("close > 0", "no such list!", "neither a watchlist"),
])
async def test_bad_input_is_refused_with_a_clear_message(
        engine: Engine, text: str, universe: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        await engine.set_scan(text, universe)


async def test_the_active_scan_and_saved_scans_survive_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    engine = await Engine.open(settings)
    await engine.start()
    try:
        await engine.set_scan("rsi(14) < 70", "Energy")
        await engine.save_scan("My oversold", "rsi(14) < 30", "bundled")
        await engine.save_scan("my OVERSOLD", "rsi(14) < 25", "Core")  # same name: replaced
        with pytest.raises(CommandError, match="column 10"):
            await engine.save_scan("broken", "rsi(14) <<", "bundled")
        with pytest.raises(CommandError, match="preset"):
            await engine.save_scan("golden cross", "close > 0", "bundled")
    finally:
        await engine.stop()
    engine = await Engine.open(settings)
    await engine.start()
    try:
        view = engine.scanner.view
        assert (view.text, view.universe) == ("rsi(14) < 70", "Energy")
        assert [(s.name, s.text, s.universe) for s in view.saved] == [
            ("my OVERSOLD", "rsi(14) < 25", "Core")]
        await wait_for(lambda: engine.scanner.view.result is not None)
        await engine.delete_scan("My Oversold")
        assert engine.scanner.view.saved == ()
        with pytest.raises(CommandError, match="no saved scan"):
            await engine.delete_scan("nothing")
    finally:
        await engine.stop()


async def test_new_hits_are_announced_once(engine: Engine) -> None:
    announced: list[ScanHit] = []
    engine.bus.subscribe(ScanHit, announced.append)
    await engine.set_scan("close > 150", "Core")
    view = engine.scanner.view
    assert view.result is not None
    matching = {hit.symbol for hit in view.result.hits}
    assert matching == {"AAPL"}
    assert announced == []  # the first result is what the screen shows: no notice
    msft = engine.market.states["MSFT"]
    engine.ingest([Trade("MSFT", msft.ts_ns + 1, 160.0, 100)])
    await engine.scanner.refresh()
    assert [hit.symbol for hit in announced] == ["MSFT"]
    assert announced[0].kind == "scan_hit"
    assert "close = 160" in announced[0].summary
    await engine.scanner.refresh()
    assert len(announced) == 1  # still matching: not announced again
    # It stops matching, then matches again within the debounce: not announced again.
    engine.ingest([Trade("MSFT", msft.ts_ns + 2, 110.0, 100)])
    await engine.scanner.refresh()
    engine.ingest([Trade("MSFT", msft.ts_ns + 3, 161.0, 100)])
    await engine.scanner.refresh()
    assert len(announced) == 1
    logs = [event.message for event in engine.snapshot().logs]
    assert any(message.startswith("scan hit: MSFT") for message in logs)


async def test_consumers_get_the_scan_when_it_changes(engine: Engine) -> None:
    cursor = ChangeCursor()
    engine.changes(cursor)
    await engine.set_scan("close > 0", "Core")
    delta = engine.changes(cursor)
    assert delta.scan is not None
    assert delta.scan.text == "close > 0"
    await engine.clear_scan()
    cleared = engine.changes(cursor)
    assert cleared.scan is not None
    assert cleared.scan.text == ""
    assert engine.changes(cursor).scan is None


def test_universes_resolve_from_what_the_trader_types() -> None:
    lists = [Watchlist("Core", ("AAPL", "MSFT")), Watchlist("Energy", ("XOM",))]
    bundled = ["AAPL", "IBM", "MSFT", "XOM"]
    assert resolve_universe("", lists, bundled) == ("bundled", bundled)
    assert resolve_universe(" ALL ", lists, bundled) == ("bundled", bundled)
    assert resolve_universe("energy", lists, bundled) == ("Energy", ["XOM"])
    assert resolve_universe("ibm, aapl ibm", lists, bundled) == ("IBM,AAPL", ["IBM", "AAPL"])
    with pytest.raises(ValueError, match="neither a watchlist"):
        resolve_universe("not-a-list!", lists, bundled)
    with pytest.raises(ValueError, match="no bundled universe"):
        resolve_universe("bundled", lists, [])


async def test_values_are_numbers_a_screen_can_show(engine: Engine) -> None:
    view = await engine.set_scan("rsi(14) > 0 and close > sma(close, 20) or close > 0 "
                                 "sort by rsi(14) desc", "Core")
    assert view.result is not None
    for hit in view.result.hits:
        assert set(hit.values) == {"rsi(close, 14)", "close", "sma(close, 20)"}
        assert all(math.isfinite(value) for value in hit.values.values())


# The scan of the whole-universe snapshot that once showed "scan hit" lines (AMGN, KO and
# TAP: the last three of its 268 hits, so its whole first result had been announced).
WHOLE_UNIVERSE_SCAN = "rsi(14) > 40 and close > sma(close, 20) sort by rsi(14) desc"


def _streamed(engine: Engine) -> set[str]:
    return set(engine.market.states)


def _ring_the_bell(engine: Engine) -> ReplayFeed:
    """Move the paused replay to today's close: the session's bars are complete."""
    feed = engine.feed
    assert isinstance(feed, ReplayFeed)
    feed.seek(engine.calendar.open_close_ns(TODAY)[1])
    return feed


async def test_the_universe_loaded_again_at_the_bell_is_a_baseline(engine: Engine) -> None:
    announced: list[ScanHit] = []
    engine.bus.subscribe(ScanHit, announced.append)
    view = await engine.set_scan(WHOLE_UNIVERSE_SCAN, "bundled")
    assert view.result is not None
    before = {hit.symbol for hit in view.result.hits}
    # The bell: the universe is loaded again (today is the next session), and every
    # symbol is scanned on today's close.
    _ring_the_bell(engine)
    await engine.scanner.refresh()
    after = engine.scanner.view.result
    assert after is not None
    assert after.day == TODAY
    new = {hit.symbol for hit in after.hits} - before
    assert new - _streamed(engine)  # symbols the feed never streamed match now...
    assert announced == []  # ...but a new load's first result is no news
    assert not any("scan hit" in event.message for event in engine.snapshot().logs)


async def test_a_load_retried_after_it_failed_is_a_baseline(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    announced: list[ScanHit] = []
    engine.bus.subscribe(ScanHit, announced.append)
    await engine.set_scan(WHOLE_UNIVERSE_SCAN, "bundled")
    feed = _ring_the_bell(engine)
    load = feed.daily_universe
    failures = [OSError("the disk hiccuped")]

    async def flaky(symbols: Sequence[str] | None) -> tuple[UniverseBars, date]:
        if failures:
            raise failures.pop()
        return await load(symbols)

    monkeypatch.setattr(feed, "daily_universe", flaky)
    await engine.scanner.refresh()
    assert "the disk hiccuped" in engine.scanner.view.error
    await engine.scanner.refresh()  # loads again
    result = engine.scanner.view.result
    assert result is not None
    assert result.day == TODAY
    assert announced == []


async def test_symbols_streamed_after_the_first_result_are_caught_up_not_announced(
        engine: Engine) -> None:
    announced: list[ScanHit] = []
    engine.bus.subscribe(ScanHit, announced.append)
    universe = ["IBM", "KO", "PEP", "WMT", "PG", "JNJ", "VZ"]
    assert not set(universe) & _streamed(engine)
    # The first result is on their last close (the feed streams them only once the scan
    # is set): all rose on the 13th, none matches.
    view = await engine.set_scan("change < 0", ", ".join(universe))
    assert view.result is not None
    assert view.result.hits == []

    def caught_up() -> bool:
        # Every symbol has its prices, and the scanner has evaluated them.
        return all(engine.market.states[symbol].last == engine.market.states[symbol].last
                   for symbol in universe) and engine.market.seq == engine.scanner._seen_seq

    await wait_for(caught_up)
    result = engine.scanner.view.result
    assert result is not None
    falling = {hit.symbol for hit in result.hits}
    assert falling  # some are down on the day: they match on today's bar...
    assert all(hit.as_of == TODAY for hit in result.hits)
    assert announced == []  # ...as they did when the scan was set: being caught up is no news
    # A symbol already streamed that starts falling now is news.
    rising = sorted(set(universe) - falling)[0]
    state = engine.market.states[rising]
    engine.ingest([Trade(rising, state.ts_ns + 1, state.prev_close * 0.5, 100)])
    await engine.scanner.refresh()
    assert [hit.symbol for hit in announced] == [rising]


async def test_scans_set_at_once_over_a_slow_load_announce_nothing(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A loaded machine: the load is slow, two scans are set at once while the refresh
    loop runs; the result is the last scan's, and no result is announced."""
    announced: list[ScanHit] = []
    engine.bus.subscribe(ScanHit, announced.append)

    def slow(*args: Any) -> LiveScan:
        time.sleep(0.3)
        return LiveScan(*args)

    monkeypatch.setattr(scan_service, "LiveScan", slow)
    await asyncio.gather(engine.set_scan("close > open", "bundled"),
                         engine.set_scan(WHOLE_UNIVERSE_SCAN, "bundled"))
    await asyncio.sleep(0.5)  # a few refreshes
    view = engine.scanner.view
    assert view.text == WHOLE_UNIVERSE_SCAN
    assert view.result is not None
    assert view.result.scan.condition == parse(WHOLE_UNIVERSE_SCAN).condition
    assert announced == []
