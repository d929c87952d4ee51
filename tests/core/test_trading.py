"""The trading desk inside the real engine: the replay feed, the paper venue, the risk
engine and the journal on a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.engine import CommandError, Engine
from core.journal import Journal
from core.model import NS_PER_SECOND, OrderRequest, OrderStatus, OrderType, Side, TradingState
from core.orders import Order
from core.store import Store
from tests.conftest import make_settings
from tests.core.test_engine import wait_for

D = Decimal
S = OrderStatus


async def open_engine(tmp_path: Path, **sections: dict[str, Any]) -> Engine:
    engine = await Engine.open(make_settings(tmp_path, **sections))
    await engine.start()
    await wait_for(lambda: all(r.last == r.last for r in engine.snapshot().rows.values()))
    return engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    engine = await open_engine(tmp_path)
    yield engine
    await engine.stop()


def buy(symbol: str = "AAPL", quantity: int = 100, **kwargs: Any) -> OrderRequest:
    return OrderRequest(symbol, Side.BUY, D(quantity), **kwargs)


def cash_identity(engine: Engine) -> Decimal:
    fills = engine.desk.fills
    return engine.desk.portfolio.starting_cash - sum(
        (f.signed_quantity * f.price + f.commission for f in fills), D(0))


async def test_a_market_buy_fills_and_moves_the_book(engine: Engine) -> None:
    cursor = engine.snapshot().cursor
    order = await engine.desk.place(buy())
    assert order.status == S.FILLED
    [fill] = engine.desk.fills
    assert fill.price >= D(repr(engine.market.states["AAPL"].ask))
    assert engine.desk.portfolio.position("AAPL") == D(100)
    assert engine.desk.portfolio.cash == cash_identity(engine)
    delta = engine.changes(cursor)
    assert [o.status for o in delta.orders] == [S.FILLED]
    assert delta.fills == [fill]
    assert [p.symbol for p in delta.positions] == ["AAPL"]
    assert delta.account is not None
    assert delta.account.cash == engine.desk.portfolio.cash
    await engine.store.flush()
    events = await engine.store.fetchall(
        "SELECT status FROM order_events WHERE client_order_id = ? ORDER BY id",
        (order.client_order_id,))
    assert [row["status"] for row in events] == ["pending_new", "accepted", "filled"]


async def test_risk_refuses_with_the_reason_and_audits_every_decision(tmp_path: Path
                                                                      ) -> None:
    engine = await open_engine(tmp_path, risk={"max_order_quantity": 500})
    try:
        with pytest.raises(CommandError, match="600 shares is over the order limit of 500"):
            await engine.desk.place(buy(quantity=600))
        await engine.desk.place(buy(quantity=10))
        with pytest.raises(CommandError, match="unknown symbol Z9"):
            await engine.desk.place(buy("Z9"))
        with pytest.raises(CommandError, match="needs a limit price"):
            await engine.desk.place(buy(order_type=OrderType.LIMIT))
        await engine.store.flush()
        audit = await engine.store.recent_audit()
        risk = [entry.message for entry in audit if entry.kind == "risk"]
        assert any(m.startswith("refused buy 600 AAPL") for m in risk)
        assert any(m.startswith("accepted buy 10 AAPL") for m in risk)
        assert engine.desk.portfolio.position("AAPL") == D(10)
    finally:
        await engine.stop()


async def test_orders_fills_and_positions_survive_a_restart(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path)
    first = await engine.desk.place(buy(quantity=50))
    resting = await engine.desk.place(buy("MSFT", 10, order_type=OrderType.LIMIT,
                                          limit_price=D(
                                              round(engine.market.states["MSFT"].last * 0.97,
                                                    2)).quantize(D("0.01"))))
    cash = engine.desk.portfolio.cash
    await engine.stop()

    engine = await open_engine(tmp_path)
    try:
        desk = engine.desk
        assert desk.orders[first.client_order_id].status == S.FILLED
        assert desk.orders[resting.client_order_id].status == S.ACCEPTED
        assert desk.portfolio.position("AAPL") == D(50)
        assert desk.portfolio.cash == cash == cash_identity(engine)
        third = await desk.place(buy(quantity=1))
        assert third.client_order_id.endswith("-000003")  # ids continue, never reused
        await desk.cancel(resting.client_order_id)
        assert desk.orders[resting.client_order_id].status == S.CANCELED
    finally:
        await engine.stop()


async def test_an_order_that_never_reached_the_venue_is_settled_not_resent(
        tmp_path: Path) -> None:
    engine = await open_engine(tmp_path)
    order = Order("td-20190314-000001", buy(), engine.market_now_ns())
    await Journal(engine.store).record_intent(order, 1, "paper")  # as if killed right here
    await engine.stop()

    engine = await open_engine(tmp_path)
    try:
        settled = engine.desk.orders[order.client_order_id]
        assert settled.status == S.REJECTED
        assert "never reached the paper venue" in settled.reason
        assert await engine.broker.lookup(order.client_order_id) is None  # not sent now
        assert engine.desk.ids.next_sequence == 2
    finally:
        await engine.stop()


async def test_the_kill_switch_flattens_and_halts(engine: Engine) -> None:
    desk = engine.desk
    await desk.place(buy(quantity=100))
    await desk.place(OrderRequest("MSFT", Side.SELL, D(20)))
    low = D(repr(engine.market.states["JPM"].last * 0.97)).quantize(D("0.01"))
    resting = await desk.place(buy("JPM", 10, order_type=OrderType.LIMIT, limit_price=low))
    report = await desk.kill()
    assert report.canceled == 1
    assert len(report.flattening) == 2
    assert not report.problems
    assert desk.orders[resting.client_order_id].status == S.CANCELED
    assert all(p.quantity == 0 for p in desk.portfolio.positions.values())
    assert desk.risk.state == TradingState.HALTED
    with pytest.raises(CommandError, match="trading is halted"):
        await desk.place(buy(quantity=1))
    assert desk.portfolio.cash == cash_identity(engine)


async def test_reducing_allows_only_orders_that_shrink_a_position(engine: Engine) -> None:
    desk = engine.desk
    await desk.place(buy(quantity=100))
    desk.set_trading_state(TradingState.REDUCING, "testing")
    with pytest.raises(CommandError, match="reducing only"):
        await desk.place(buy(quantity=1))
    await desk.place(OrderRequest("AAPL", Side.SELL, D(40)))
    assert desk.portfolio.position("AAPL") == D(60)


async def test_a_daily_loss_halts_trading_by_itself(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path, risk={"max_daily_loss": 1})
    try:
        await engine.desk.place(buy(quantity=100))  # the spread and slippage lose > $1
        summary = engine.desk.portfolio.summary()
        change = engine.desk.risk.observe(summary.equity, summary.day_pnl)
        assert change is not None
        assert change.new == TradingState.HALTED
        assert change.automatic
        assert "day's loss" in change.reason
    finally:
        await engine.stop()


async def test_replace_changes_a_resting_order(engine: Engine) -> None:
    desk = engine.desk
    low = D(repr(engine.market.states["AAPL"].last * 0.97)).quantize(D("0.01"))
    order = await desk.place(buy(quantity=10, order_type=OrderType.LIMIT, limit_price=low))
    new = await desk.replace(order.client_order_id, quantity=D(20),
                             limit_price=low - D("0.50"))
    assert desk.orders[order.client_order_id].status == S.REPLACED
    assert new.status == S.ACCEPTED
    assert new.replaces == order.client_order_id
    assert new.quantity == D(20)
    with pytest.raises(CommandError, match="already replaced"):
        await desk.cancel(order.client_order_id)


async def test_a_bracket_sends_its_legs_with_the_entry(engine: Engine) -> None:
    desk = engine.desk
    last = D(repr(engine.market.states["AAPL"].last))
    entry = await desk.place(buy(quantity=10, take_profit=(last * D("1.03")).quantize(D("0.01")),
                                 stop_loss=(last * D("0.97")).quantize(D("0.01"))))
    legs = [o for o in desk.orders.values() if o.parent_id == entry.client_order_id]
    assert [leg.request.order_type for leg in legs] == [OrderType.LIMIT, OrderType.STOP]
    assert all(leg.status == S.ACCEPTED for leg in legs)
    assert entry.status == S.FILLED
    await desk.close_position("AAPL")  # cancels the legs, then sells
    assert all(leg.status == S.CANCELED for leg in legs)
    assert desk.portfolio.position("AAPL") == 0


async def test_a_snapshot_carries_the_book(engine: Engine) -> None:
    await engine.desk.place(buy(quantity=5))
    snapshot = engine.snapshot()
    assert [o.quantity for o in snapshot.orders] == [D(5)]
    assert len(snapshot.fills) == 1
    assert snapshot.positions[0].quantity == D(5)
    assert snapshot.risk is not None
    assert snapshot.risk.state == TradingState.ACTIVE
    names = [limit.name for limit in snapshot.risk.limits]
    assert "gross exposure" in names
    assert "day loss" in names
    assert engine.changes(snapshot.cursor).orders == []


async def test_a_fill_the_journal_missed_is_taken_from_the_venue(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path)
    order = await engine.desk.place(buy(quantity=10))
    [fill] = engine.desk.fills
    await engine.stop()
    # As if killed after the venue booked the fill and before the journal did.
    async with await Store.open(tmp_path / "test.sqlite") as store:
        await store.execute("DELETE FROM fills")
        await store.execute("DELETE FROM order_events WHERE status = 'filled'")

    engine = await open_engine(tmp_path)
    try:
        desk = engine.desk
        assert desk.orders[order.client_order_id].status == S.FILLED
        assert [f.fill_id for f in desk.fills] == [fill.fill_id]
        assert desk.portfolio.position("AAPL") == D(10)
        assert desk.portfolio.cash == cash_identity(engine)
        await engine.store.flush()
        rows = await engine.store.fetchall("SELECT fill_id FROM fills")
        assert [row["fill_id"] for row in rows] == [fill.fill_id]  # journaled this time
    finally:
        await engine.stop()


async def test_the_account_is_saved_at_the_close(engine: Engine) -> None:
    await engine.desk.place(buy(quantity=10))
    _, close = engine.calendar.open_close_ns(date(2019, 3, 14))
    await engine.desk.watch._roll_session()  # still open: nothing saved
    assert await engine.store.fetchall("SELECT ts FROM account_snapshots") == []
    engine.feed.clock.set_ns(close + NS_PER_SECOND)  # type: ignore[attr-defined]
    await engine.desk.watch._roll_session()
    rows = await engine.store.fetchall("SELECT ts, equity FROM account_snapshots")
    assert [row["ts"] for row in rows] == [close + NS_PER_SECOND]
    assert D(rows[0]["equity"]) == engine.desk.portfolio.equity()


async def test_a_halt_outlives_a_restart(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path)
    await engine.desk.kill()
    await engine.stop()
    engine = await open_engine(tmp_path)
    try:
        assert engine.desk.risk.state == TradingState.HALTED
        assert engine.desk.risk.state_reason == "kill switch"
        with pytest.raises(CommandError, match="trading is halted"):
            await engine.desk.place(buy(quantity=1))
        engine.desk.set_trading_state(TradingState.ACTIVE, "")
        await engine.desk.place(buy(quantity=1))
    finally:
        await engine.stop()
    engine = await open_engine(tmp_path)
    try:
        assert engine.desk.risk.state == TradingState.ACTIVE
    finally:
        await engine.stop()
