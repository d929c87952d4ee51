"""Strategy instances in the running engine: commands, persistence across a restart,
isolation of a failing strategy, and no orders on stale data. Real engine, real SQLite
file, real feeds (the paused replay, or the `bars` feed running through a year)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import pytest

from core.engine import Engine
from core.indicators import Indicator
from core.model import Bar, LogLevel, OrderStatus, Quote, Side
from core.state import CommandError
from core.store import Store
from core.strategies.base import SizedParams, Strategy
from core.strategies.builtin import BUILTIN_STRATEGIES
from core.strategies.registry import StrategyRegistry
from data.bar_replay import BarReplayFeed
from data.history import load_history
from tests.conftest import make_settings


class BuyOnStart(Strategy[SizedParams]):
    name: ClassVar[str] = "buy_on_start"
    title: ClassVar[str] = "Buys its quantity when switched on"
    Params = SizedParams

    def indicators(self) -> Sequence[Indicator]:
        return ()

    def on_start(self) -> None:
        for symbol in self.ctx.symbols:
            self.ctx.buy(symbol, self.params.quantity or 1, reason="switched on")

    def on_bar(self, bar: Bar) -> None:
        pass


class Bomb(Strategy[SizedParams]):
    """Trades like a crossover would, then raises on its 40th live bar."""

    name: ClassVar[str] = "bomb"
    title: ClassVar[str] = "Raises in on_bar"
    Params = SizedParams
    bars = 0

    def indicators(self) -> Sequence[Indicator]:
        return ()

    def on_bar(self, bar: Bar) -> None:
        self.bars += 1
        if self.bars == 40:
            raise RuntimeError("the bomb went off")
        self.ctx.target_position(bar.symbol, 10 if self.bars % 10 < 5 else 0, reason="tick")


def registry(*extra: type[Strategy[Any]]) -> StrategyRegistry:
    found = StrategyRegistry()
    for strategy_class in (*BUILTIN_STRATEGIES, *extra):
        found.add(strategy_class, "test")
    return found


async def open_engine(tmp_path: Path, *extra: type[Strategy[Any]]) -> Engine:
    engine = await Engine.open(make_settings(tmp_path), strategies=registry(*extra))
    await engine.start()
    deadline = asyncio.get_running_loop().time() + 10
    while not all(r.last == r.last for r in engine.snapshot().rows.values()):
        assert asyncio.get_running_loop().time() < deadline, "no prices"
        await asyncio.sleep(0.02)
    return engine


async def test_instances_keep_mode_params_and_symbols_across_a_restart(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path)
    try:
        added = await engine.strategies.add("ma_cross", ["aapl", "MSFT"],
                                            {"fast": 5, "slow": 20})
        assert (added.id, added.mode, added.symbols) == ("ma_cross-1", "observe",
                                                         ("AAPL", "MSFT"))
        await engine.strategies.set_params("ma_cross-1", {"fast": 8, "slow": 21,
                                                          "average": "ema"})
        await engine.strategies.set_mode("ma_cross-1", "paper")
        second = await engine.strategies.add("rsi_reversion", ["XOM"], mode="off")
        assert second.id == "rsi_reversion-1"
        assert second.mode == "off"
        # The series are warm: a 21-bar EMA has values from the history before now.
        runner = engine.strategies.instances["ma_cross-1"].runner
        assert runner is not None
        assert len(runner.series["AAPL"]) > 200
    finally:
        await engine.stop()

    engine = await open_engine(tmp_path)
    try:
        views = {view.id: view for view in engine.snapshot().strategies}
        assert views["ma_cross-1"].mode == "paper"
        assert views["ma_cross-1"].params["fast"] == 8
        assert views["ma_cross-1"].params["average"] == "ema"
        assert views["ma_cross-1"].symbols == ("AAPL", "MSFT")
        assert views["rsi_reversion-1"].mode == "off"
        # Its symbols stream although no watchlist has XOM... (Energy has it) or MSFT.
        assert {"AAPL", "MSFT", "XOM"} <= set(engine.subscribed_symbols())
    finally:
        await engine.stop()


async def test_bad_commands_are_refused_with_a_reason_and_change_nothing(
        tmp_path: Path) -> None:
    engine = await open_engine(tmp_path)
    host = engine.strategies
    try:
        with pytest.raises(CommandError, match="unknown strategy 'nope'"):
            await host.add("nope", ["AAPL"])
        with pytest.raises(CommandError, match="not a symbol: TOOLONGNAME"):
            await host.add("ma_cross", ["TOOLONGNAME"])
        with pytest.raises(CommandError, match="at least one symbol"):
            await host.add("ma_cross", [" "])
        with pytest.raises(CommandError, match="fast"):
            await host.add("ma_cross", ["AAPL"], {"fast": 50, "slow": 20})
        with pytest.raises(CommandError, match="colour: not a parameter"):
            await host.add("ma_cross", ["AAPL"], {"colour": "red"})
        assert host.views() == []
        await host.add("ma_cross", ["AAPL"])
        with pytest.raises(CommandError, match="unknown mode 'turbo'"):
            await host.set_mode("ma_cross-1", "turbo")
        with pytest.raises(CommandError, match="slow"):
            await host.set_params("ma_cross-1", {"slow": 1})
        with pytest.raises(CommandError, match="switch ma_cross-1 off"):
            await host.remove("ma_cross-1")
        assert host.views()[0].params["slow"] == 30
        await host.set_mode("ma_cross-1", "off")
        await host.remove("ma_cross-1")
        assert host.views() == []
        rows = await engine.store.fetchall("SELECT id FROM strategy_instances")
        assert rows == []
    finally:
        await engine.stop()


async def test_no_order_goes_out_on_stale_data(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path, BuyOnStart)
    host = engine.strategies
    try:
        await host.add("buy_on_start", ["AAPL"], {"quantity": 5}, mode="off")
        engine.market.states["AAPL"].stale = True
        await host.set_mode("buy_on_start-1", "paper")
        assert not engine.desk.orders
        assert any("not sent: AAPL's data is stale" in e.message
                   for e in engine.snapshot().logs)
        assert host.views()[0].open_orders == 0
        engine.market.states["AAPL"].stale = False
        await host.set_mode("buy_on_start-1", "off")
        await host.set_mode("buy_on_start-1", "paper")
        (order,) = engine.desk.orders.values()
        assert order.request.strategy == "buy_on_start-1"
        assert order.request.quantity == 5
        # Switching to observe cancels what it has working.
        await host.set_mode("buy_on_start-1", "observe")
        assert order.status in (OrderStatus.CANCELED, OrderStatus.FILLED)
    finally:
        await engine.stop()


async def test_a_strategy_raising_in_on_bar_is_switched_off_and_the_others_trade_on(
        tmp_path: Path) -> None:
    symbols = ("AAPL", "JPM")
    start, end = date(2017, 1, 3), date(2017, 6, 30)
    frames = load_history(symbols, start, end, adjusted=True).bars
    settings = make_settings(tmp_path, paper={"latency_ms": 0}, risk={"rate_limit_orders": 0},
                             watchlists={"Core": list(symbols)})
    store = await Store.open(settings.database_path())
    for instance_id, strategy, params in (
            ("bomb-1", "bomb", {"quantity": 10}),
            ("ma_cross-1", "ma_cross", {"fast": 5, "slow": 15, "quantity": 10})):
        await store.execute(
            "INSERT INTO strategy_instances VALUES (?, ?, ?, ?, 'paper', 0, 0)",
            (instance_id, strategy, json.dumps(params), json.dumps(list(symbols))))
    feed = BarReplayFeed(start=start, end=end, frames=frames, session_seconds=0)
    engine = Engine(settings, store, feed, strategies=registry(Bomb))
    await engine.start()
    try:
        deadline = asyncio.get_running_loop().time() + 120
        while feed.expects_updates():
            assert asyncio.get_running_loop().time() < deadline, "the replay did not finish"
            await asyncio.sleep(0.05)
        await engine.strategies.flush()
        views = {view.id: view for view in engine.strategies.views()}
        bomb, crossover = views["bomb-1"], views["ma_cross-1"]
        assert bomb.mode == "off"
        assert "RuntimeError: the bomb went off" in bomb.error
        assert "Traceback" in bomb.traceback
        assert bomb.open_orders == 0  # its working orders were canceled
        errors = [e for e in engine.snapshot().logs if e.level == LogLevel.ERROR]
        assert any("bomb-1 raised in on_bar" in e.message for e in errors)
        audit = await engine.store.recent_audit()
        assert any(entry.kind == "strategy failure" for entry in audit)
        # The crossover kept trading after the failure.
        failed_at = max(f.ts_ns for f in engine.desk.fills
                        if engine.desk.orders[f.client_order_id].request.strategy == "bomb-1")
        later = [f for f in engine.desk.fills if f.ts_ns > failed_at
                 and engine.desk.orders[f.client_order_id].request.strategy == "ma_cross-1"]
        assert later
        assert crossover.mode == "paper"
        assert not crossover.error
        mode = await engine.store.fetchone(
            "SELECT mode FROM strategy_instances WHERE id = 'bomb-1'")
        assert mode is not None
        assert mode["mode"] == "off"
    finally:
        await engine.stop()


class QuoteCounter(Strategy[SizedParams]):
    name: ClassVar[str] = "quote_counter"
    title: ClassVar[str] = "Signals on its third quote"
    Params = SizedParams

    def indicators(self) -> Sequence[Indicator]:
        return ()

    def on_bar(self, bar: Bar) -> None:
        pass

    def on_quote(self, quote: Quote) -> None:
        self.quotes = getattr(self, "quotes", 0) + 1
        if self.quotes == 3:
            self.ctx.signal(quote.symbol, Side.BUY, f"third quote at {quote.ask:.2f}")


async def test_quotes_reach_only_the_strategies_that_handle_them(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path, QuoteCounter)
    host = engine.strategies
    try:
        await host.add("quote_counter", ["AAPL"])
        await host.add("ma_cross", ["AAPL"])
        now = engine.market_now_ns()
        for step in range(3):
            engine.ingest([Quote("AAPL", now + step, 100.0, 100.02 + step, 100, 100)])
        await host.flush()
        views = {view.id: view for view in host.views()}
        assert views["quote_counter-1"].last_signal == "BUY AAPL: third quote at 102.02"
        assert views["ma_cross-1"].last_signal == ""
        assert any("quote_counter-1: buy AAPL: third quote" in e.message
                   for e in engine.snapshot().logs)
    finally:
        await engine.stop()
