"""The backtest screen: the real app under Pilot over a real engine (its database keeps
the runs), the built-in strategies and the bundled daily bars."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static, TabbedContent

from data.bundle import BundledDailyBars
from tests.tui.conftest import settle
from tui.app import TapedeckApp
from tui.screens.backtest import BacktestScreen
from tui.screens.backtest_form import BacktestForm
from tui.widgets.backtest_results import ResultsPane, TradesTable


async def wait_until(pilot: Pilot[object], predicate: Callable[[], bool],
                     timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not reached")


async def open_backtest(pilot: Pilot[object]) -> tuple[BacktestScreen, BacktestForm]:
    await settle(pilot)
    await pilot.press("B")
    screen = pilot.app.screen
    assert isinstance(screen, BacktestScreen)
    await wait_until(pilot, lambda: screen.form is not None)
    form = screen.form
    assert form is not None
    await pilot.pause(0.05)
    return screen, form


async def fill(pilot: Pilot[object], form: BacktestForm, *, strategy: str = "ma_cross",
               symbols: str = "AAPL", start: str = "2018-01-02", end: str = "2019-12-31",
               **params: str) -> None:
    form.query_one("#bt-strategy", Select).value = strategy
    await pilot.pause(0.05)
    form.query_one("#bt-symbols", Input).value = symbols
    form.query_one("#bt-start", Input).value = start
    form.query_one("#bt-end", Input).value = end
    for name, value in params.items():
        form.query_one(f"#bt-p-{strategy}-{name}", Input).value = value
    await pilot.pause(0.1)


def text_of(screen: BacktestScreen, selector: str) -> str:
    """What a Static shows, as plain text (a rich renderable printed at 200 columns)."""
    content = screen.query_one(selector, Static).content
    if isinstance(content, str):
        return content
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(content)
    return console.export_text()


async def run_to_the_end(pilot: Pilot[object], screen: BacktestScreen) -> None:
    await pilot.press("ctrl+r")
    await wait_until(pilot, lambda: screen.last_run_id is not None and not screen.running)
    await wait_until(pilot, lambda: not screen.query_one(ResultsPane).pending)
    await pilot.pause(0.1)


async def test_run_ma_cross_on_aapl_shows_and_saves_it(
        make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen, form = await open_backtest(pilot)
        # It opens on the workstation's selected symbol and the bundle's last two years.
        assert form.query_one("#bt-symbols", Input).value == "AAPL"
        assert form.query_one("#bt-start", Input).value == "2018-01-02"
        assert form.query_one("#bt-end", Input).value == "2019-12-31"
        await fill(pilot, form)
        await run_to_the_end(pilot, screen)
        assert screen.query_one("#bt-tabs", TabbedContent).active == "bt-results"
        summary = text_of(screen, "#bt-summary")
        assert f"Run {screen.last_run_id}" in summary
        assert "ma_cross on AAPL, 2018-01-02 to 2019-12-31" in summary
        metrics = text_of(screen, "#bt-metrics")
        for label in ("Total return", "Sharpe ratio", "Max drawdown", "Trades"):
            assert label in metrics
        runs = await app.client.backtest_runs(10)
        assert [run.id for run in runs] == [screen.last_run_id]
        [run] = runs
        assert run.strategy == "ma_cross"
        assert run.symbols == ("AAPL",)
        assert f"{run.metrics.total_return_pct:.2f}%" in metrics
        trades = screen.query_one(TradesTable)
        assert trades.row_count == run.metrics.trades > 0
        first = trades.get_row_at(0)
        assert first[0] == "AAPL"
        assert first[1] in ("long", "short")
        assert f"saved as run {screen.last_run_id}" in text_of(screen, "#bt-message")
        await pilot.press("f4")
        assert app.focused is trades
        theme = app.theme
        await pilot.press("t")  # the colours follow the theme
        await pilot.pause(0.2)
        assert app.theme != theme
        assert f"Run {screen.last_run_id}" in text_of(screen, "#bt-summary")
        assert trades.row_count == run.metrics.trades


async def test_a_saved_run_reopens(make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen, form = await open_backtest(pilot)
        await fill(pilot, form, strategy="rsi_reversion", symbols="MSFT")
        await run_to_the_end(pilot, screen)
        first_id = screen.last_run_id
        await fill(pilot, form, symbols="JPM")
        await pilot.press("f2", "ctrl+r")
        await wait_until(pilot, lambda: screen.last_run_id != first_id and not screen.running)
        await pilot.press("f5")
        saved = screen.query_one("#bt-saved-table", DataTable)
        await wait_until(pilot, lambda: saved.row_count == 2)
        await pilot.press("down", "enter")  # newest first: the second row is the first run
        await wait_until(pilot, lambda: f"Run {first_id} ·" in text_of(screen, "#bt-summary"))
        assert "rsi_reversion on MSFT" in text_of(screen, "#bt-summary")
        assert screen.query_one("#bt-tabs", TabbedContent).active == "bt-results"
        assert f"reopened run {first_id}" in text_of(screen, "#bt-message")


async def test_a_bad_symbol_is_named_beside_the_field_and_nothing_runs(
        make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen, form = await open_backtest(pilot)
        await fill(pilot, form, symbols="MSFT, APPL")
        hint = text_of(screen, "#bt-symbols-hint")
        assert "no bundled bars for 'APPL' (did you mean AAPL" in hint
        await pilot.press("ctrl+r")
        await pilot.pause(0.2)
        assert not screen.running
        assert "nothing was run" in text_of(screen, "#bt-message")
        assert app.focused is form.query_one("#bt-symbols", Input)
        assert await app.client.backtest_runs(10) == []
        form.query_one("#bt-symbols", Input).value = "MSFT, AAPL"
        await pilot.pause(0.1)
        assert "comma-separated" in text_of(screen, "#bt-symbols-hint")


async def test_a_bad_parameter_is_named_beside_it_and_nothing_runs(
        make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen, form = await open_backtest(pilot)
        await fill(pilot, form, fast="0")
        assert "greater than or equal to 1" in text_of(screen, "#bt-p-ma_cross-fast-hint")
        await pilot.press("enter")  # enter in a field runs, as ctrl+r
        await pilot.pause(0.2)
        assert not screen.running
        assert app.focused is form.query_one("#bt-p-ma_cross-fast", Input)
        # A rule across fields is shown under the heading.
        await fill(pilot, form, fast="50", slow="30")
        assert "Bars of the fast average" in text_of(screen, "#bt-p-ma_cross-fast-hint")
        assert "fast" in text_of(screen, "#bt-params-hint")
        await pilot.press("ctrl+r")
        await pilot.pause(0.2)
        assert not screen.running
        assert await app.client.backtest_runs(10) == []


async def test_dates_outside_the_bundle_are_a_message_not_a_traceback(
        make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen, form = await open_backtest(pilot)
        await fill(pilot, form, start="2010-01-04")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: not screen.running)
        await wait_until(pilot, lambda: "outside the bundled data" in
                         text_of(screen, "#bt-message"))
        assert await app.client.backtest_runs(10) == []


async def test_the_screen_responds_during_a_long_run_and_escape_cancels_it(
        make_app: Callable[..., TapedeckApp]) -> None:
    symbols = BundledDailyBars().symbols()[:150]
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen, form = await open_backtest(pilot)
        await fill(pilot, form, symbols=", ".join(symbols), start="2016-01-04")
        await pilot.press("ctrl+r")
        assert screen.running
        await wait_until(pilot, lambda: "sessions" in text_of(screen, "#bt-message"))
        tabs = screen.query_one("#bt-tabs", TabbedContent)

        async def key_takes_effect(key: str, effect: Callable[[], bool]) -> float:
            # simulate_key, not pilot.press: Pilot waits for the process to go idle
            # after a key, which it never does while the backtest thread computes.
            pressed = time.monotonic()
            app.simulate_key(key)
            await wait_until(pilot, effect, timeout=5)
            return time.monotonic() - pressed

        # Something visible changes at once while the worker runs.
        assert await key_takes_effect("f5", lambda: tabs.active == "bt-saved") < 1.0
        assert await key_takes_effect("f4", lambda: tabs.active == "bt-trades") < 1.0
        assert screen.running  # still going
        progress = text_of(screen, "#bt-message")
        assert "/1,006 sessions" in progress
        assert "1,006/1,006" not in progress
        assert await key_takes_effect("escape", lambda: not screen.running) < 2.0
        assert "cancelled" in text_of(screen, "#bt-message")
        assert await app.client.backtest_runs(10) == []
        assert isinstance(app.screen, BacktestScreen)  # escape cancelled; it did not leave
        await pilot.press("escape")
        assert not isinstance(app.screen, BacktestScreen)


async def test_the_palette_opens_it(make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"Backtest a strategy")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, BacktestScreen))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_snapshot_backtest_results(snap_compare: Any, make_app: Callable[..., TapedeckApp],
                                   size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[object]) -> None:
        screen, form = await open_backtest(pilot)
        await fill(pilot, form)
        await run_to_the_end(pilot, screen)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


BROKEN = '''
from core.strategies.base import SizedParams, Strategy


class BreaksLater(Strategy[SizedParams]):
    name = "breaks_later"
    title = "Breaks after a while"
    Params = SizedParams

    def indicators(self):
        return ()

    def on_start(self):
        self.seen = 0

    def on_bar(self, bar):
        self.seen += 1
        if self.seen > 50:
            raise ZeroDivisionError("the 51st bar")


class BreaksAtOnce(Strategy[SizedParams]):
    name = "breaks_at_once"
    title = "Breaks before it starts"
    Params = SizedParams

    def indicators(self):
        raise RuntimeError("no indicators today")

    def on_bar(self, bar):
        pass
'''


async def test_a_failing_strategy_is_a_message_not_a_traceback(
        make_app: Callable[..., TapedeckApp], tmp_path: Path) -> None:
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "broken.py").write_text(BROKEN)
    app = make_app(strategies={"folder": str(folder)})
    async with app.run_test(size=(120, 40)) as pilot:
        screen, form = await open_backtest(pilot)
        await fill(pilot, form, strategy="breaks_at_once")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: not screen.running)
        message = text_of(screen, "#bt-message")
        assert "breaks_at_once could not start: RuntimeError: no indicators today" in message
        assert await app.client.backtest_runs(10) == []
        # A failure part-way: the results up to it are shown, marked, and saved.
        await fill(pilot, form, strategy="breaks_later")
        await run_to_the_end(pilot, screen)
        assert "the strategy failed and stopped trading" in text_of(screen, "#bt-summary")
        assert "the 51st bar" in text_of(screen, "#bt-summary")
        assert f"saved as run {screen.last_run_id}" in text_of(screen, "#bt-message")
