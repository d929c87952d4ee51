"""The strategy API without a market: the runner's modes, intents and guard; the
built-ins' parameters; discovery from entry points and the user's folder."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.indicators import Indicator
from core.model import NS_PER_SECOND, Bar, Fill, OrderType, Side, TimeInForce
from core.strategies.base import SizedParams, Strategy, StrategyMode
from core.strategies.builtin import (
    BUILTIN_STRATEGIES,
    BollingerReversion,
    DonchianBreakout,
    MaCross,
    RsiReversion,
)
from core.strategies.registry import discover, strategy_problem
from core.strategies.runner import CancelIntent, PlaceIntent, Signal, StrategyRunner

DAY_NS = 86_400 * NS_PER_SECOND


class Scripted(Strategy[SizedParams]):
    """Does what the test put in `script` for the bar's number."""

    name = "scripted"
    title = "scripted"
    Params = SizedParams
    script: dict[int, str] = {}

    def indicators(self) -> Sequence[Indicator]:
        return (Indicator("sma", 2),)

    def on_bar(self, bar: Bar) -> None:
        action = self.script.get(self.ctx.bars_seen(bar.symbol), "")
        if action == "target":
            self.ctx.target_position(bar.symbol, 100, reason="go long")
        elif action == "target-again":
            self.ctx.target_position(bar.symbol, 100, reason="still long")
        elif action == "stop":
            self.ctx.sell(bar.symbol, 100, stop=bar.close * 0.9731, tif=TimeInForce.GTC)
        elif action == "signal":
            self.ctx.signal(bar.symbol, Side.SELL, "looks weak")
        elif action == "raise":
            self.ctx.buy(bar.symbol, 5, reason="never sent")
            raise ZeroDivisionError("bad maths")


def runner_for(mode: StrategyMode, script: dict[int, str]) -> StrategyRunner:
    Scripted.script = script
    clock = [0]
    return StrategyRunner("scripted-1", Scripted, SizedParams(), ["AAPL"], mode,
                          now_ns=lambda: clock[0], account_equity=lambda: Decimal(100_000))


def bar(number: int, close: float = 100.0) -> Bar:
    return Bar("AAPL", number * DAY_NS, 86_400, close, close + 1, close - 1, close, 1e6)


def test_paper_mode_turns_acts_into_place_intents_with_signals() -> None:
    runner = runner_for(StrategyMode.PAPER, {1: "target", 2: "target-again"})
    assert runner.on_bar(bar(1))
    intents = runner.drain()
    place = [i for i in intents if isinstance(i, PlaceIntent)]
    signals = [i for i in intents if isinstance(i, Signal)]
    assert len(place) == 1
    assert place[0].request.quantity == 100
    assert place[0].request.side == Side.BUY
    assert place[0].request.strategy == "scripted-1"
    assert signals[0].reason == "go long"
    assert signals[0].acted
    # The open order counts: the target is already on its way.
    assert runner.on_bar(bar(2))
    assert [i for i in runner.drain() if isinstance(i, PlaceIntent)] == []


def test_observe_mode_only_signals() -> None:
    runner = runner_for(StrategyMode.OBSERVE, {1: "target", 2: "signal", 3: "stop"})
    for number in (1, 2, 3):
        runner.on_bar(bar(number))
    intents = runner.drain()
    assert all(isinstance(i, Signal) for i in intents)
    assert [(i.reason, i.acted) for i in intents if isinstance(i, Signal)] == [
        ("go long", False), ("looks weak", False)]  # a stop without a reason is no signal
    assert not runner.book.working


def test_fills_move_the_instance_position_and_end_the_working_order() -> None:
    runner = runner_for(StrategyMode.PAPER, {1: "target", 2: "stop"})
    runner.on_bar(bar(1))
    (place,) = [i for i in runner.drain() if isinstance(i, PlaceIntent)]
    runner.order_placed(place.ref, "td-1")
    runner.on_fill(Fill("f1", "td-1", "AAPL", Side.BUY, Decimal(60), Decimal(100),
                        Decimal(1), DAY_NS, "paper"))
    assert runner.context.position("AAPL") == 60
    assert runner.context.working("AAPL") == 40
    runner.on_fill(Fill("f2", "td-1", "AAPL", Side.BUY, Decimal(40), Decimal(100),
                        Decimal(1), DAY_NS, "paper"))
    assert runner.context.working("AAPL") == 0
    assert not runner.book.working
    runner.on_bar(bar(2, close=100.0))
    (stop,) = [i for i in runner.drain() if isinstance(i, PlaceIntent)]
    assert stop.request.order_type == OrderType.STOP
    assert stop.request.stop_price == Decimal("97.31")  # on the tick
    runner.context.cancel(stop.ref)
    assert runner.drain() == [CancelIntent(stop.ref)]


def test_a_raising_handler_switches_the_instance_off_and_sends_nothing() -> None:
    runner = runner_for(StrategyMode.LIVE, {1: "raise", 2: "target"})
    assert not runner.on_bar(bar(1))
    assert runner.failure is not None
    assert "ZeroDivisionError: bad maths" in runner.failure.message
    assert "Traceback" in runner.failure.traceback
    assert not [i for i in runner.drain() if isinstance(i, PlaceIntent)]
    assert not runner.active
    runner.on_bar(bar(2))  # switched off: the bar is kept, the handler not called
    assert runner.drain() == []
    assert len(runner.series["AAPL"]) == 2


def test_builtins_validate_their_parameters() -> None:
    with pytest.raises(ValidationError, match="must be shorter"):
        MaCross.Params(fast=50, slow=20)
    with pytest.raises(ValidationError, match="oversold"):
        RsiReversion.Params(oversold=60)
    with pytest.raises(ValidationError):
        BollingerReversion.Params(deviations=0)
    with pytest.raises(ValidationError, match="Extra inputs"):
        DonchianBreakout.Params(entry=20, nonsense=1)  # type: ignore[call-arg]
    for strategy in BUILTIN_STRATEGIES:
        assert strategy_problem(strategy) == ""
        assert strategy.title
        assert strategy.description


def test_entry_points_find_the_builtins() -> None:
    registry = discover(None)
    assert {"ma_cross", "rsi_reversion", "bollinger_reversion",
            "donchian_breakout"} <= set(registry.classes)
    assert registry.get("ma_cross") is MaCross
    with pytest.raises(KeyError, match="unknown strategy 'nope'"):
        registry.get("nope")


GOOD = '''
from core.strategies.base import SizedParams, Strategy

class Momentum(Strategy[SizedParams]):
    name = "my_momentum"
    title = "mine"
    Params = SizedParams

    def indicators(self):
        return ()

    def on_bar(self, bar):
        pass
'''


def test_the_user_folder_loads_good_modules_and_reports_broken_ones(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "syntax.py").write_text("def oops(:\n")
    (tmp_path / "raises.py").write_text("raise RuntimeError('at import')\n")
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "empty.py").write_text("x = 1\n")
    (tmp_path / "clash.py").write_text(GOOD.replace("my_momentum", "ma_cross"))
    (tmp_path / "_private.py").write_text("raise RuntimeError('never imported')\n")
    registry = discover(tmp_path)
    assert "my_momentum" in registry.classes
    assert registry.get("ma_cross") is MaCross  # the built-in keeps its name
    problems = {Path(p.source).name: p.message for p in registry.problems}
    assert "SyntaxError" in problems["syntax.py"]
    assert "RuntimeError: at import" in problems["raises.py"]
    assert "SystemExit" in problems["exits.py"]
    assert problems["empty.py"] == "defines no Strategy subclass"
    assert "exists already" in problems["clash.py"]
    assert "_private.py" not in problems
    assert all(p.traceback for p in registry.problems
               if Path(p.source).name in ("syntax.py", "raises.py"))
