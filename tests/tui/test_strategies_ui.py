"""The strategies pane from the keyboard: the real app under Pilot over a real engine
(paused replay, paper venue, the built-in strategies and, for a failure, a strategy of
the user's strategy folder)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Input, OptionList, Static

from core.state import StrategyView
from tests.tui.conftest import settle
from tests.tui.test_trading_ui import wait_until
from tui.app import TapedeckApp
from tui.param_fields import fields_from_schema, split_refusal
from tui.screens.add_strategy import AddStrategy
from tui.screens.prompt import Confirm
from tui.screens.strategy_details import StrategyDetails
from tui.screens.strategy_params import StrategyParamsEditor
from tui.screens.workstation import WorkstationScreen
from tui.strategy_format import money, position_summary, short_id, symbols_summary
from tui.widgets.quote_board import QuoteBoard
from tui.widgets.strategies import StrategiesPane, StrategyList

FAILING_STRATEGY = '''
from collections.abc import Sequence
from typing import ClassVar

from core.indicators import Indicator
from core.model import Bar
from core.strategies.base import SizedParams, Strategy


class Fragile(Strategy[SizedParams]):
    name: ClassVar[str] = "fragile"
    title: ClassVar[str] = "Raises as it starts"
    Params = SizedParams

    def indicators(self) -> Sequence[Indicator]:
        return ()

    def on_start(self) -> None:
        raise RuntimeError("the fuse blew")

    def on_bar(self, bar: Bar) -> None:
        pass
'''


async def engine_view(app: TapedeckApp, instance_id: str) -> StrategyView:
    snapshot = await app.client.snapshot()
    return next(v for v in snapshot.strategies if v.id == instance_id)


async def with_instances(pilot: Pilot[object], *specs: tuple[str, list[str], str]
                         ) -> WorkstationScreen:
    """Settle, add (strategy, symbols, mode) instances through the engine's client, and
    show the strategies pane."""
    screen = await settle(pilot)
    app = pilot.app
    assert isinstance(app, TapedeckApp)
    for strategy, symbols, mode in specs:
        await app.client.add_strategy(strategy, symbols, mode=mode)
    await screen.pull()
    await pilot.press("6")
    await pilot.pause(0.1)
    return screen


def row_text(screen: WorkstationScreen, index: int) -> str:
    strips = screen.query_one(StrategyList).render_line(index + 1)
    return "".join(segment.text for segment in strips)


def static_text(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_the_mode_cycles_and_live_is_confirmed_first(
        make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await with_instances(pilot, ("ma_cross", ["AAPL"], "off"))
        pane = screen.query_one(StrategiesPane)
        assert app.focused is pane.strategy_list
        assert "OFF" in row_text(screen, 0)

        await pilot.press("m")
        await wait_until(pilot, lambda: pane.selected is not None
                         and pane.selected.mode == "observe")
        assert (await engine_view(app, "ma_cross-1")).mode == "observe"
        await pilot.press("m")
        await wait_until(pilot, lambda: pane.selected is not None
                         and pane.selected.mode == "paper")
        assert "PAPER" in row_text(screen, 0)

        # Next is LIVE: asked first, and No is the default (enter).
        await pilot.press("m")
        assert isinstance(app.screen, Confirm)
        question = str(app.screen.query_one("Label").render())
        assert "Switch ma_cross-1 to LIVE" in question
        assert "AAPL" in question
        focused = app.focused
        assert isinstance(focused, Button)
        assert focused.id == "no"
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert app.screen is screen
        assert (await engine_view(app, "ma_cross-1")).mode == "paper"

        await pilot.press("m")
        assert isinstance(app.screen, Confirm)
        await pilot.press("y")
        await wait_until(pilot, lambda: pane.selected is not None
                         and pane.selected.mode == "live")
        assert (await engine_view(app, "ma_cross-1")).mode == "live"
        assert "LIVE" in row_text(screen, 0)
        assert "1 LIVE" in str(pane.border_title)

        # From LIVE the cycle goes to OFF, without a question.
        await pilot.press("m")
        await wait_until(pilot, lambda: pane.selected is not None
                         and pane.selected.mode == "off")
        assert (await engine_view(app, "ma_cross-1")).mode == "off"


async def test_the_pane_keys_act_only_with_the_pane_focused(
        make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await with_instances(pilot, ("ma_cross", ["AAPL"], "off"))
        await pilot.press("1")  # the quote board
        assert app.focused is screen.query_one(QuoteBoard)
        await pilot.press("m")
        await pilot.pause(0.2)
        assert (await engine_view(app, "ma_cross-1")).mode == "off"
        # delete removes the board's symbol there, the instance in the pane (asking).
        await pilot.press("6", "delete")
        assert isinstance(app.screen, Confirm)
        assert "Remove the strategy instance ma_cross-1" in str(
            app.screen.query_one("Label").render())
        await pilot.press("y")
        pane = screen.query_one(StrategiesPane)
        await wait_until(pilot, lambda: not pane.views)
        assert (await app.client.snapshot()).strategies == []
        assert "AAPL" in screen.query_one(QuoteBoard).symbols


async def test_the_palette_and_a_remapped_key_reach_the_strategy_actions(
        make_app: Callable[..., TapedeckApp]) -> None:
    # [keys] in the config remaps a workstation binding (the pane's mode key).
    app = make_app(keys={"strategy.mode": "ctrl+o"})
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await with_instances(pilot, ("ma_cross", ["AAPL"], "off"))
        ids = {binding_id for binding_id, *_ in app.action_catalogue()}
        assert {"pane.strategies", "strategy.mode", "strategy.off", "strategy.params",
                "strategy.details", "strategy.remove", "strategy.add"} <= ids
        assert app._keymap.get("strategy.mode") == "ctrl+o"
        await pilot.press("m")  # remapped away
        await pilot.pause(0.2)
        assert (await engine_view(app, "ma_cross-1")).mode == "off"
        await pilot.press("ctrl+o")
        pane = screen.query_one(StrategiesPane)
        await wait_until(pilot, lambda: pane.selected is not None
                         and pane.selected.mode == "observe")

        # From the board, the palette shows the pane and acts on the instance.
        await pilot.press("1")
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Strategy ma_cross-1: paper")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: pane.selected is not None
                         and pane.selected.mode == "paper")
        assert (await engine_view(app, "ma_cross-1")).mode == "paper"
        assert app.focused is pane.strategy_list

        await pilot.press("1")
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"Strategy params")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, StrategyParamsEditor))


async def test_editing_parameters_checks_as_you_type_and_shows_the_engines_refusal(
        make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await with_instances(pilot, ("ma_cross", ["AAPL"], "observe"))
        await pilot.press("e")
        editor = app.screen
        assert isinstance(editor, StrategyParamsEditor)
        fast = editor.query_one("#param-fast", Input)
        assert fast.value == "10"
        assert "1 ≤ x ≤ 500" in " ".join(
            str(s.render()) for s in editor.query(".param-hint").results(Static))

        fast.value = "abc"
        await pilot.pause(0.1)
        assert "'abc' is not a whole number" in static_text(editor, "#error-fast")
        fast.value = "0"
        await pilot.pause(0.1)
        assert "must be at least 1" in static_text(editor, "#error-fast")
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert app.screen is editor  # not sent: nothing changed
        assert "Nothing was changed" in static_text(editor, "#params-error")
        assert (await engine_view(app, "ma_cross-1")).params["fast"] == 10

        fast.value = "12"
        await pilot.pause(0.1)
        assert static_text(editor, "#error-fast") == ""
        await pilot.press("enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, StrategyParamsEditor))
        assert (await engine_view(app, "ma_cross-1")).params["fast"] == 12

        # A rule between fields is the engine's: its refusal shows, the dialog stays.
        await pilot.press("e")
        editor = app.screen
        assert isinstance(editor, StrategyParamsEditor)
        editor.query_one("#param-fast", Input).value = "40"
        await pilot.pause(0.1)
        await pilot.press("enter")
        await wait_until(pilot, lambda: "Refused" in static_text(editor, "#params-error"))
        message = static_text(editor, "#params-error")
        assert "fast (40) must be shorter than slow (30)" in message
        assert "Traceback" not in message
        assert "Value error" not in message
        assert app.screen is editor
        assert (await engine_view(app, "ma_cross-1")).params["fast"] == 12
        await pilot.press("escape")
        assert not isinstance(app.screen, StrategyParamsEditor)


async def test_add_an_instance_for_the_selected_symbol(
        make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        board = screen.query_one(QuoteBoard)
        await pilot.press("down")
        assert board.selected_symbol == "MSFT"
        await pilot.press("A")
        dialog = app.screen
        assert isinstance(dialog, AddStrategy)
        assert dialog.query_one("#add-symbols", Input).value == "MSFT"
        names = [info.name for info in dialog.catalog]
        assert {"ma_cross", "rsi_reversion", "bollinger_reversion",
                "donchian_breakout"} <= set(names)
        options = dialog.query_one(OptionList)
        options.highlighted = names.index("rsi_reversion")
        await pilot.press("enter")
        pane = screen.query_one(StrategiesPane)
        await wait_until(pilot, lambda: bool(pane.views))
        [view] = pane.views
        assert (view.id, view.symbols, view.mode) == ("rsi_reversion-1", ("MSFT",), "observe")
        assert pane.selected == view
        assert app.focused is pane.strategy_list
        engine = await engine_view(app, "rsi_reversion-1")
        assert engine.symbols == ("MSFT",)

        # A symbol without data is refused in place.
        await pilot.press("insert")
        dialog = app.screen
        assert isinstance(dialog, AddStrategy)
        dialog.query_one("#add-symbols", Input).value = "MSFT, TOOLONGNAME"
        await pilot.press("enter")
        await wait_until(pilot, lambda: "not a symbol" in static_text(dialog, "#add-error"))
        assert app.screen is dialog
        await pilot.press("escape")
        assert len((await app.client.snapshot()).strategies) == 1


async def test_a_failed_instance_shows_its_error_and_traceback(
        make_app: Callable[..., TapedeckApp], tmp_path: Path) -> None:
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "fragile.py").write_text(FAILING_STRATEGY)
    app = make_app(strategies={"folder": str(folder)})
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await with_instances(pilot, ("fragile", ["AAPL"], "off"),
                                      ("ma_cross", ["MSFT"], "observe"))
        pane = screen.query_one(StrategiesPane)
        await pilot.press("m")  # off -> observe: on_start raises
        await wait_until(pilot, lambda: pane.selected is not None and bool(pane.selected.error))
        view = pane.selected
        assert view is not None
        assert view.mode == "off"
        row = row_text(screen, 0)
        assert "⚠ fragile-1" in row
        assert "OFF" in row
        assert "ERROR" in row
        assert "ERROR raised in on_start: RuntimeError: the fuse blew" in static_text(
            screen, "#strategy-detail")
        assert "1 failed" in str(pane.border_title)
        assert any("failed as it started" in str(n.message) for n in app._notifications)
        # The other instance runs on.
        assert (await engine_view(app, "ma_cross-1")).mode == "observe"

        await pilot.press("enter")
        details = app.screen
        assert isinstance(details, StrategyDetails)
        assert "RuntimeError: the fuse blew" in static_text(details, "#details-summary")
        traceback = static_text(details, "#details-traceback")
        assert "Traceback" in traceback
        assert "on_start" in traceback
        await pilot.press("escape")
        assert app.screen is screen


async def _two_instances(pilot: Pilot[object]) -> None:
    await with_instances(pilot, ("ma_cross", ["AAPL"], "paper"),
                         ("rsi_reversion", ["MSFT", "JPM", "XOM", "CVX"], "observe"))
    app = pilot.app
    assert isinstance(app, TapedeckApp)
    await app.client.set_strategy_mode("rsi_reversion-1", "live")
    screen = app.workstation
    assert screen is not None
    await screen.pull()
    await pilot.pause(0.3)


def test_snapshot_strategies_compact(snap_compare: Any, make_app: Callable[..., TapedeckApp]
                                     ) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=_two_instances)


def test_snapshot_strategies_wide(snap_compare: Any, make_app: Callable[..., TapedeckApp]
                                  ) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=_two_instances)


# ---------------------------------------------------------------------- the pieces


def test_fields_come_from_the_params_schema() -> None:
    from typing import Literal

    from pydantic import Field

    from core.strategies.base import SizedParams
    from core.strategies.builtin import MaCrossParams

    fields = {f.name: f for f in fields_from_schema(MaCrossParams.model_json_schema())}
    assert list(fields) == ["quantity", "position_value", "fast", "slow", "average",
                            "allow_short"]
    assert (fields["fast"].kind, fields["fast"].bounds()) == ("int", "1 ≤ x ≤ 500")
    assert fields["position_value"].bounds() == "0 < x ≤ 100,000,000"
    assert fields["average"].choices == ("sma", "ema")
    assert fields["allow_short"].kind == "bool"
    assert fields["fast"].parse(" 12 ") == 12
    for text, problem in (("abc", "not a whole number"), ("1.5", "not a whole number"),
                          ("0", "at least 1"), ("501", "at most 500"), ("", "required")):
        with pytest.raises(ValueError, match=problem):
            fields["fast"].parse(text)
    with pytest.raises(ValueError, match="more than 0"):
        fields["position_value"].parse("0")
    assert fields["position_value"].parse("2,500.5") == 2500.5

    class Optional(SizedParams):
        band: float | None = Field(default=None, lt=5, description="Optional band.")
        style: Literal["a", "b"] | None = None

    optional = {f.name: f for f in fields_from_schema(Optional.model_json_schema())}
    assert optional["band"].optional
    assert optional["band"].parse("") is None
    assert optional["band"].kind == "float"
    assert optional["style"].choices == ("a", "b")


def test_an_engine_refusal_splits_by_field() -> None:
    message = ("fast: Input should be greater than or equal to 1; colour: not a parameter "
               "of this strategy; parameters: Value error, fast (40) must be shorter than "
               "slow (30)")
    problems = split_refusal(message, {"fast", "slow"})
    assert problems["fast"] == ["Input should be greater than or equal to 1"]
    assert problems[""] == ["colour: not a parameter of this strategy",
                            "fast (40) must be shorter than slow (30)"]


def test_row_formats_fit_their_cells() -> None:
    assert short_id("bollinger_reversion-12", 13) == "bollinger…-12"
    assert short_id("ma_cross-1", 13) == "ma_cross-1"
    assert symbols_summary(["AAPL", "MSFT", "JPM", "XOM"], 9) == "AAPL +3"
    assert symbols_summary(["AAPL", "MSFT"], 9) == "AAPL,MSFT"
    assert symbols_summary([f"S{i:03d}" for i in range(50)], 5) == "50"
    single = StrategyView("x-1", "x", "X", "paper", ("AAPL",), {}, {"AAPL": Decimal(100)},
                          Decimal("12.5"), Decimal(0), 0, "", 0, 0)
    assert position_summary(single) == "+100"
    several = replace(single, symbols=("AAPL", "MSFT", "XOM"),
                      positions={"AAPL": Decimal(10), "MSFT": Decimal(-5), "XOM": Decimal(3)})
    assert position_summary(several) == "2L 1S"
    assert position_summary(replace(single, positions={})) == "flat"
    assert money(Decimal("-1234.5")) == "-1,234.50"
    assert money(Decimal(0)) == "0.00"
