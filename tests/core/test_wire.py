"""The control socket's encoding: every view the engine hands a screen comes back from a
line of JSON equal to what went in (Decimals exact, NaN kept, enums and tuples as they
were), and a line can only ever rebuild the engine's own value types."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from core.backtest import BacktestSpec, run_backtest
from core.engine import Engine
from core.model import OrderRequest, OrderType, Side, TradingState
from core.state import ChangeCursor
from core.strategies.builtin import MaCross
from core.wire import WireError, dumps, encode, loads, registry
from data.history import load_history
from tests.conftest import make_settings
from tests.core.test_engine import wait_for


def round_trip(value: object) -> object:
    return loads(dumps({"value": value}))["value"]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    engine = await Engine.open(make_settings(tmp_path))
    await engine.start()
    await wait_for(lambda: all(r.last == r.last for r in engine.snapshot().rows.values()))
    yield engine
    await engine.stop()


async def test_snapshots_and_deltas_come_back_equal(engine: Engine) -> None:
    cursor = engine.snapshot().cursor
    await engine.desk.place(OrderRequest("AAPL", Side.BUY, Decimal(10)))
    await engine.desk.place(OrderRequest("MSFT", Side.BUY, Decimal(5), OrderType.LIMIT,
                                         limit_price=Decimal("110.00")))
    await engine.set_scan("close > 0 sort by close desc limit 2", "core")
    snapshot = engine.snapshot()
    assert snapshot.fills
    assert snapshot.orders
    assert snapshot.positions
    assert snapshot.scan
    assert round_trip(snapshot) == snapshot
    delta = engine.changes(cursor)
    assert delta.orders
    assert delta.fills
    assert round_trip(delta) == delta
    assert round_trip(ChangeCursor(1, 2, 3, 4, 5, 6, 7)) == ChangeCursor(1, 2, 3, 4, 5, 6, 7)


def test_a_backtest_result_comes_back_equal() -> None:
    start, end = date(2018, 1, 1), date(2018, 6, 30)
    history = load_history(("AAPL",), start, end, adjusted=True)
    params = MaCross.Params(fast=5, slow=20)
    spec = BacktestSpec("ma_cross", params.model_dump(mode="json"), ("AAPL",), start, end,
                        Decimal(50_000))
    result = run_backtest(MaCross, params, history.bars, spec)
    assert result.fills
    assert result.signals
    assert round_trip(result) == result


def test_values_keep_their_types() -> None:
    assert round_trip(Decimal("0.1000")) == Decimal("0.1000")
    assert str(round_trip(Decimal("0.1000"))) == "0.1000"
    assert math.isnan(round_trip(math.nan))  # type: ignore[arg-type]
    assert round_trip(TradingState.HALTED) is TradingState.HALTED
    assert round_trip((1, "a")) == (1, "a")
    assert round_trip({"$odd": 1, "plain": [1, 2]}) == {"$odd": 1, "plain": [1, 2]}
    assert round_trip({1: "one"}) == {1: "one"}
    assert round_trip(date(2019, 3, 14)) == date(2019, 3, 14)


def test_only_the_engines_own_types_can_be_rebuilt() -> None:
    names = registry()
    assert {"QuoteRow", "OrderView", "Fill", "EngineSnapshot", "OrderRequest",
            "HealthRecord", "KillReport"} <= set(names)
    for name in ("Popen", "Path", "function", "type", "object"):
        with pytest.raises(WireError, match="unknown type"):
            loads(json.dumps({"$t": name, "f": {}}))
    with pytest.raises(WireError):
        loads(b'{"$e": "Side", "v": "sideways"}')
    with pytest.raises(WireError):
        loads(b'{"$t": "OrderRequest", "f": {"no_such_field": 1}}')
    with pytest.raises(WireError):
        loads(b'{"$d": "twelve"}')
    with pytest.raises(WireError, match="malformed JSON"):
        loads(b'{"id": 1, "cmd": ')
    with pytest.raises(WireError, match="cannot be sent"):
        encode(object())
