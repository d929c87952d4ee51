"""Saved backtests: a real run over the bundled bars, saved to a real SQLite file and read
back exactly."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from core.backtest import BacktestResult, BacktestSpec, run_backtest
from core.backtest_runs import count_runs, list_runs, load_run, save_run
from core.schema import MIGRATIONS
from core.store import Store
from core.strategies.builtin import MaCross
from data.history import load_history

START, END = date(2018, 1, 1), date(2018, 12, 31)


@pytest.fixture(scope="module")
def result() -> BacktestResult:
    """ma_cross on AAPL over 2018: a handful of round trips, a real equity curve."""
    history = load_history(("AAPL",), START, END, adjusted=True)
    params = MaCross.Params(fast=10, slow=30)
    spec = BacktestSpec("ma_cross", params.model_dump(mode="json"), ("AAPL",), START, END,
                        Decimal(50_000))
    done = run_backtest(MaCross, params, history.bars, spec)
    assert done.trips, "the fixture needs trades to round-trip"
    return done


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "runs.sqlite")
    yield opened
    await opened.close()


async def test_a_saved_run_loads_back_exactly(store: Store, result: BacktestResult) -> None:
    run_id = await save_run(store, result, created_ns=1_700_000_000_000_000_000)
    loaded = await load_run(store, run_id)
    assert loaded is not None
    assert loaded.id == run_id
    assert loaded.created_ns == 1_700_000_000_000_000_000
    assert loaded.strategy == "ma_cross"
    assert loaded.params == dict(result.spec.params)
    assert loaded.symbols == ("AAPL",)
    assert (loaded.start, loaded.end) == (START, END)
    assert loaded.cash == Decimal(50_000)
    assert loaded.fill_at == "next_open"
    assert loaded.metrics == result.metrics
    # Floats through JSON come back bit for bit (json writes the shortest repr).
    assert loaded.equity == list(zip(result.days, result.equity, strict=True))
    assert loaded.trips == result.trips  # Decimals, nanoseconds and order, exactly


async def test_nan_and_inf_metrics_survive(store: Store, result: BacktestResult) -> None:
    # No losing trade and no variance: the profit factor is inf, the Sharpe ratio NaN.
    odd = dataclasses.replace(result.metrics, sharpe=math.nan, sortino=math.nan,
                              profit_factor=math.inf, average_trade_pct=-math.inf)
    run_id = await save_run(store, dataclasses.replace(result, metrics=odd))
    loaded = await load_run(store, run_id)
    assert loaded is not None
    assert math.isnan(loaded.metrics.sharpe)
    assert math.isnan(loaded.metrics.sortino)
    assert loaded.metrics.profit_factor == math.inf
    assert loaded.metrics.average_trade_pct == -math.inf
    assert loaded.metrics.total_return_pct == result.metrics.total_return_pct


async def test_runs_list_newest_first_without_their_trades(
        store: Store, result: BacktestResult) -> None:
    first = await save_run(store, result, created_ns=1_000)
    later = dataclasses.replace(result, spec=dataclasses.replace(result.spec, fill_at="close"))
    second = await save_run(store, later, created_ns=2_000)
    assert (first, second) == (1, 2)
    runs = await list_runs(store, 50)
    assert [run.id for run in runs] == [2, 1]
    assert runs[0].fill_at == "close"
    assert runs[0].metrics == result.metrics
    assert runs[0].trips == []  # a listing does not read the trades
    assert [run.id for run in await list_runs(store, 1)] == [2]
    assert len(await list_runs(store, 0)) == 2  # 0: all
    assert await count_runs(store) == 2


async def test_a_run_and_its_trades_are_one_transaction(
        store: Store, result: BacktestResult, tmp_path: Path) -> None:
    run_id = await save_run(store, result)
    await store.close()
    conn = sqlite3.connect(tmp_path / "runs.sqlite")
    try:
        [(count,)] = conn.execute("SELECT count(*) FROM backtest_trades WHERE run_id = ?",
                                  (run_id,)).fetchall()
    finally:
        conn.close()
    assert count == len(result.trips)


async def test_an_unknown_run_is_none(store: Store) -> None:
    assert await load_run(store, 42) is None
    assert await list_runs(store, 10) == []


async def test_a_database_from_before_backtests_has_no_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("".join(MIGRATIONS[:3]) + "PRAGMA user_version = 3;")
    conn.close()
    # Read-only: not migrated, so the backtest tables do not exist.
    old = await Store.open(path, read_only=True)
    try:
        assert await list_runs(old, 10) == []
        assert await load_run(old, 1) is None
        assert await count_runs(old) == 0
    finally:
        await old.close()
