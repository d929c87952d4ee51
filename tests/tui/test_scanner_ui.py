"""The scanner pane from the keyboard: the real app under Pilot over a real engine (the
paused replay of 2019-03-14, 11:00): typing a scan, its errors as you type, a preset
from the picker, a hit's chart, the order ticket on a hit, saving a scan; snapshots."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static

from core.scan_presets import find_preset
from tests.tui.conftest import settle
from tests.tui.test_trading_ui import wait_until
from tui.app import TapedeckApp
from tui.screens.order_ticket import OrderTicket
from tui.screens.prompt import TextPrompt
from tui.screens.workstation import WorkstationScreen
from tui.widgets.chart import ChartPane
from tui.widgets.scanner import ScannerPane


def status(screen: WorkstationScreen) -> str:
    return str(screen.query_one("#scan-status", Static).render())


def error_line(screen: WorkstationScreen) -> str:
    return str(screen.query_one("#scan-error", Static).render())


def results(screen: WorkstationScreen) -> list[str]:
    table = screen.query_one("#scan-results", DataTable)
    return [str(key.value) for key in table.rows]


async def open_scanner(pilot: Pilot[object]) -> WorkstationScreen:
    screen = await settle(pilot)
    await pilot.press("7")
    await pilot.pause(0.1)
    return screen


async def run_typed(pilot: Pilot[object], screen: WorkstationScreen, text: str,
                    universe: str = "Core") -> None:
    screen.query_one("#scan-universe", Input).value = universe
    field = screen.query_one("#scan-input", Input)
    field.focus()
    await pilot.press(*text)
    await pilot.press("enter")
    await wait_until(pilot, lambda: "matched" in status(screen))


async def test_typing_a_scan_shows_its_hits_in_ranking_order(
        make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_scanner(pilot)
        assert screen.query_one(ScannerPane).display
        assert not screen.query_one("#quote-board").display
        await run_typed(pilot, screen, "close > 0 sort by close desc")
        assert "3 matched of 3 scanned on 2019-03-14 · Core" in status(screen)
        rows = screen.query_one(ScannerPane).view
        assert rows is not None
        assert rows.result is not None
        closes = [hit.rank for hit in rows.result.hits]
        assert closes == sorted(closes, reverse=True)
        assert results(screen) == [hit.symbol for hit in rows.result.hits]
        table = screen.query_one("#scan-results", DataTable)
        assert [str(column.label) for column in table.columns.values()] == [
            "#", "Symbol", "Since", "close"]
        assert table.has_focus  # running a scan moves to its results


async def test_an_error_shows_under_its_column_as_you_type_and_nothing_runs(
        make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_scanner(pilot)
        field = screen.query_one("#scan-input", Input)
        field.focus()
        await pilot.press(*"rsi(14) <")
        await pilot.pause(0.05)
        line = error_line(screen)
        assert "column 10: expected a value or a condition" in line
        # The caret sits under the column (a compact input: no border, no padding).
        assert line.index("^") == 9
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert screen.scanner_symbol() is None
        assert (await app.client.snapshot()).scan is not None
        assert (await app.client.snapshot()).scan.text == ""  # type: ignore[union-attr]
        await pilot.press(*" 30")
        await pilot.pause(0.05)
        assert "valid" in error_line(screen)
        await pilot.press("ctrl+a", "ctrl+k")
        await pilot.press(*"close.__class__")
        await pilot.pause(0.05)
        assert "column 6" in error_line(screen)


async def test_picking_a_preset_runs_it_over_the_bundled_universe(
        make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_scanner(pilot)
        picker = screen.query_one("#scan-preset", Select)
        picker.focus()
        await pilot.press("enter")  # opens the list
        await pilot.pause(0.1)
        # The blank prompt is first: the third preset, volume spike, is three down.
        await pilot.press("down", "down", "down", "enter")
        await wait_until(pilot, lambda: "matched" in status(screen))
        preset = find_preset("volume-spike")
        assert screen.query_one("#scan-input", Input).value == preset.text
        assert screen.query_one("#scan-universe", Input).value == "bundled"
        assert "scanned on 2019-03-14 · bundled" in status(screen)
        view = screen.query_one(ScannerPane).view
        assert view is not None
        assert view.result is not None
        assert view.result.scanned > 400


async def test_enter_on_a_hit_charts_it(make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_scanner(pilot)
        await run_typed(pilot, screen, "close > 0 sort by close asc")
        first = results(screen)[0]
        assert first != screen.query_one(ChartPane).symbol
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.query_one(ChartPane).symbol == first)
        assert screen.pane == "chart"  # at 80x24 the chart takes the screen
        await pilot.press("7")
        await pilot.pause(0.1)
        assert screen.query_one("#scan-results", DataTable).has_focus


async def test_b_on_a_hit_opens_the_ticket_on_it(make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_scanner(pilot)
        await run_typed(pilot, screen, "close > 0 sort by close desc")
        await pilot.press("down")
        wanted = results(screen)[1]
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, OrderTicket))
        ticket = app.screen
        assert isinstance(ticket, OrderTicket)
        assert ticket.defaults.symbol == wanted


async def test_a_scan_is_saved_and_offered_in_the_picker(
        make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_scanner(pilot)
        await run_typed(pilot, screen, "rsi(14) > 0")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, TextPrompt))
        await pilot.press(*"my rsi", "enter")
        pane = screen.query_one(ScannerPane)
        await wait_until(pilot, lambda: pane.view is not None and [
            scan.name for scan in pane.view.saved] == ["my rsi"])
        # The picker offers it: choosing it fills the form with its scan and universe.
        screen.query_one("#scan-input", Input).value = ""
        screen.query_one("#scan-preset", Select).value = "saved:my rsi"
        await wait_until(pilot, lambda: screen.query_one("#scan-input", Input).value
                         == "rsi(14) > 0")
        assert screen.query_one("#scan-universe", Input).value == "Core"
        saved = (await app.client.snapshot()).scan
        assert saved is not None
        assert [(s.name, s.text, s.universe) for s in saved.saved] == [
            ("my rsi", "rsi(14) > 0", "Core")]


async def _scanned(pilot: Pilot[object]) -> None:
    screen = await open_scanner(pilot)
    # Over the watchlist the paused replay streams: every value is from today's bar.
    await run_typed(pilot, screen, "rsi(14) > 20 and close > sma(close, 20) * 0.9 sort by "
                    "rsi(14) desc", universe="Core")
    await pilot.pause(0.2)


def test_snapshot_scanner_compact(snap_compare: Any, make_app: Callable[..., TapedeckApp]
                                  ) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=_scanned)


def test_snapshot_scanner_wide(snap_compare: Any, make_app: Callable[..., TapedeckApp]
                               ) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=_scanned)
