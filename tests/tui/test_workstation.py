"""The real app under Pilot, over a real engine, store and replay."""

from __future__ import annotations

from collections.abc import Callable

from textual.color import Color
from textual.pilot import Pilot
from textual.widgets import Input, Static

from tests.tui.conftest import settle
from tui.app import TapedeckApp
from tui.screens.help import HelpScreen
from tui.screens.symbol_search import SymbolSearch
from tui.widgets.chart import ChartPane, ChartPlot
from tui.widgets.quote_board import QuoteBoard
from tui.widgets.status_bar import StatusBar


async def test_the_board_shows_the_active_watchlist(make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        board = screen.query_one(QuoteBoard)
        assert board.symbols == ["AAPL", "MSFT", "JPM"]
        assert board.selected_symbol == "AAPL"
        assert screen.query_one(StatusBar).status is not None
        assert not screen.compact


async def test_add_and_remove_a_symbol(make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        await pilot.press("slash")
        assert isinstance(app.screen, SymbolSearch)
        await pilot.press(*"ibm", "enter")
        await pilot.pause(0.3)
        board = screen.query_one(QuoteBoard)
        assert board.symbols[-1] == "IBM"
        assert board.selected_symbol == "IBM"
        await pilot.press("delete")
        await pilot.pause(0.2)
        assert "IBM" not in board.symbols


async def test_an_unknown_symbol_is_explained(make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app(feed={"fallback": ""})
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"appl", "enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, SymbolSearch)
        error = str(app.screen.query_one("#search-error").render())
        assert "unknown symbol APPL" in error
        assert "AAPL" in error
        assert app.screen.query_one(Input).value == "appl"
        await pilot.press("escape")
        assert not isinstance(app.screen, SymbolSearch)


async def test_switch_watchlist(make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        await pilot.press("right_square_bracket")
        await pilot.pause(0.1)
        assert screen.active_watchlist == "Energy"
        assert screen.query_one(QuoteBoard).symbols == ["XOM", "CVX"]
        await pilot.press("left_square_bracket")
        await pilot.pause(0.1)
        assert screen.active_watchlist == "Core"


async def test_switch_theme_is_remembered(make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.theme == "tapedeck-dark"
        await pilot.press("t")
        await pilot.pause(0.2)
        assert app.theme == "tapedeck-light"
    again = make_app()
    async with again.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert again.theme == "tapedeck-light"


async def test_help_lists_every_binding(make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.1)
        assert isinstance(app.screen, HelpScreen)
        ids = {binding_id for binding_id, *_ in app.action_catalogue()}
        assert {"watchlist.add", "watchlist.remove", "app.quit", "board.sort",
                "replay.pause", "chart.interval"} <= ids
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_palette_reaches_actions(make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Watchlist: Energy")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert screen.active_watchlist == "Energy"


async def test_compact_layout_at_80x24(make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        assert not screen.compact
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        assert screen.compact
        await pilot.press("2")
        await pilot.pause(0.1)
        assert screen.has_class("show-chart")
        assert screen.query_one("#chart-pane").display
        await pilot.press("1")
        await pilot.pause(0.1)
        assert not screen.has_class("show-chart")


async def test_keys_can_be_remapped(make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app(keys={"app.theme": "ctrl+y"})
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+y")
        await pilot.pause(0.2)
        assert app.theme == "tapedeck-light"


def chart_colours(plot: ChartPlot) -> set[tuple[int, int, int]]:
    """The foreground colours drawn in the plot."""
    return {segment.style.color.triplet for strip in plot._strips for segment in strip
            if segment.style and segment.style.color and segment.style.color.triplet}


def theme_up(app: TapedeckApp) -> tuple[int, int, int]:
    up = Color.parse(app.theme_variables["up"])
    return (up.r, up.g, up.b)


def caption(chart: ChartPane) -> str:
    return str(chart.query_one("#chart-caption", Static).render())


async def redrawn_after(pilot: Pilot[object], chart: ChartPane, *keys: str) -> None:
    """Press `keys` and wait for the chart's next finished figure."""
    plot = chart.query_one(ChartPlot)
    builds = plot.builds
    await pilot.press(*keys)
    for _ in range(200):
        if plot.builds > builds and not chart.pending:
            return
        await pilot.pause(0.02)
    raise AssertionError("the chart was not redrawn")


async def test_the_chart_draws_the_selected_symbol(make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        chart = (await settle(pilot)).query_one(ChartPane)
        plot = chart.query_one(ChartPlot)
        assert caption(chart).startswith(" AAPL · daily")
        assert len(plot._strips) == plot.size.height
        drawn = "".join(segment.text for strip in plot._strips for segment in strip)
        assert "┤" in drawn  # the price axis
        assert "█" in drawn  # candle bodies
        assert theme_up(app) in chart_colours(plot)

        await redrawn_after(pilot, chart, "down")
        assert caption(chart).startswith(" MSFT")
        await redrawn_after(pilot, chart, "i")
        assert "minute" in caption(chart)
        await redrawn_after(pilot, chart, "t")  # the next theme recolours the candles
        assert theme_up(app) in chart_colours(plot)
