"""Parity: a strategy run live, by the engine on bars replayed through the `bars` feed,
sends the same orders and gets the same fills as the backtester over the same bars.

The live side is the whole engine: the feed supervisor, the market state, the strategy
host, the trading desk with its journal and the paper venue with its store, on a real
SQLite file. The instance is saved in the database before the engine starts, so it also
shows that an instance's mode, parameters and symbols come back from the database.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.backtest import BacktestSpec, OrderRecord, run_backtest
from core.config_trading import PaperSettings, RiskSettings
from core.engine import Engine
from core.model import Fill
from core.store import Store
from core.strategies.builtin import BUILTIN_STRATEGIES
from data.bar_replay import BarReplayFeed
from data.history import load_history
from tests.conftest import make_settings

SYMBOLS = ("AAPL", "JPM", "XOM")
START, END = date(2017, 1, 3), date(2017, 12, 29)
PAPER = {"latency_ms": 0, "slippage_bps": "2", "commission": "per_share"}


def comparable_fill(fill: Fill) -> tuple[Any, ...]:
    return (fill.client_order_id, fill.ts_ns, fill.symbol, fill.side, fill.quantity,
            fill.price, fill.commission)


async def run_live(tmp_path: Path, strategy: str, params: dict[str, Any],
                   frames: dict[str, Any]) -> Engine:
    settings = make_settings(
        tmp_path, paper=PAPER, risk={"rate_limit_orders": 0},
        trading={"order_id_prefix": "td"}, watchlists={"Core": list(SYMBOLS)})
    store = await Store.open(settings.database_path())
    await store.execute(
        "INSERT INTO strategy_instances (id, strategy, params, symbols, mode, position, "
        "created) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (f"{strategy}-1", strategy, json.dumps(params), json.dumps(list(SYMBOLS)), "paper",
         0, 0))
    feed = BarReplayFeed(start=START, end=END, frames=frames, session_seconds=0)
    engine = Engine(settings, store, feed)
    await engine.start()
    deadline = asyncio.get_running_loop().time() + 120
    while feed.expects_updates():
        assert asyncio.get_running_loop().time() < deadline, "the replay did not finish"
        await asyncio.sleep(0.05)
    await engine.strategies.flush()
    return engine


@pytest.mark.parametrize(("strategy", "params"), [
    ("ma_cross", {"fast": 10, "slow": 30, "quantity": 100, "allow_short": True}),
    ("donchian_breakout", {"quantity": 50}),
])
async def test_live_engine_and_backtester_make_the_same_orders_and_fills(
        tmp_path: Path, strategy: str, params: dict[str, Any]) -> None:
    frames = load_history(SYMBOLS, START, END, adjusted=True).bars
    strategy_class = {cls.name: cls for cls in BUILTIN_STRATEGIES}[strategy]
    spec = BacktestSpec(strategy, params, SYMBOLS, START, END)
    expected = run_backtest(strategy_class, strategy_class.Params(**params), frames, spec,
                            paper=PaperSettings.model_validate(PAPER), risk=RiskSettings())
    assert len(expected.fills) >= 6, "too few trades for the comparison to mean much"

    engine = await run_live(tmp_path, strategy, params, frames)
    try:
        live_orders = sorted((OrderRecord.of(o) for o in engine.desk.orders.values()),
                             key=lambda o: o.client_order_id)
        live_fills = [comparable_fill(f) for f in engine.desk.fills]
        view = engine.strategies.views()[0]
    finally:
        await engine.stop()

    backtest_orders = sorted(expected.orders, key=lambda o: o.client_order_id)
    assert [o.client_order_id for o in live_orders] == \
        [o.client_order_id for o in backtest_orders]
    for live, backtest in zip(live_orders, backtest_orders, strict=True):
        assert live == backtest
    assert live_fills == [comparable_fill(f) for f in expected.fills]
    # The instance's own book holds what the backtest ended with.
    assert view.mode == "paper"
    assert view.error == ""
    assert view.positions == {s: q for s, q in expected.open_positions.items() if q}
    assert all(isinstance(q, Decimal) for q in view.positions.values())
