"""The Alpaca broker, end to end: the real engine and desk, a real SQLite journal, the
real alpaca-py clients, and a loopback fake of Alpaca's trading API and trade-updates
stream (tests/fakes)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.brokers import alpaca_rest
from core.brokers.alpaca import AlpacaBroker
from core.brokers.alpaca_rest import RateLimiter
from core.brokers.base import BrokerError
from core.config import Settings
from core.engine import Engine
from core.model import OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from tests.conftest import make_settings
from tests.core.test_engine import wait_for
from tests.fakes.alpaca_server import FakeAlpaca

S = OrderStatus
HERE = Path(__file__).parent


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    with FakeAlpaca() as server:
        yield server


def alpaca_settings(tmp_path: Path, fake: FakeAlpaca, **alpaca: Any) -> Settings:
    return make_settings(
        tmp_path, trading={"broker": "alpaca"},
        alpaca={"key_id": fake.key_id, "secret_key": fake.secret_key,
                "paper_url": fake.trading_url, "request_timeout_s": 1.0, **alpaca})


@pytest.fixture
async def engine(tmp_path: Path, fake: FakeAlpaca) -> AsyncIterator[Engine]:
    engine = await Engine.open(alpaca_settings(tmp_path, fake))
    await engine.start()
    await wait_for(lambda: engine.broker.connection() == "connected")
    await wait_for(lambda: all(state.last == state.last
                               for state in engine.market.states.values()))
    yield engine
    await engine.stop()


def limit(symbol: str, quantity: int, price: str, side: Side = Side.BUY, **extra: Any
          ) -> OrderRequest:
    return OrderRequest(symbol, side, Decimal(quantity), OrderType.LIMIT, TimeInForce.DAY,
                        limit_price=Decimal(price), **extra)


def near(engine: Engine, symbol: str, offset: float = 0.0) -> str:
    """A limit price close to the market (the price collar refuses far ones)."""
    return f"{engine.market.states[symbol].last + offset:.2f}"


async def test_submit_fill_and_partial_fill(engine: Engine, fake: FakeAlpaca) -> None:
    order = await engine.desk.place(limit("AAPL", 100, near(engine, "AAPL")))
    await wait_for(lambda: order.status == S.ACCEPTED)
    assert order.venue_order_id == fake.order(order.client_order_id)["id"]
    fake.fill(order.client_order_id, 40, 180.0)
    await wait_for(lambda: order.status == S.PARTIALLY_FILLED)
    fake.fill(order.client_order_id, 60, 180.5)
    await wait_for(lambda: order.status == S.FILLED)
    assert order.filled_quantity == 100
    assert engine.desk.portfolio.position("AAPL") == 100
    assert [fill.fill_id for fill in engine.desk.fills] == [
        f"{order.venue_order_id}:40", f"{order.venue_order_id}:100"]
    await engine.store.flush()
    rows = await engine.store.fetchall("SELECT fill_id FROM fills ORDER BY ts")
    assert len(rows) == 2


async def test_cancel_and_replace(engine: Engine, fake: FakeAlpaca) -> None:
    first = await engine.desk.place(limit("MSFT", 10, near(engine, "MSFT", -1)))
    await wait_for(lambda: first.status == S.ACCEPTED)
    new = await engine.desk.replace(first.client_order_id, quantity=Decimal(5))
    await wait_for(lambda: first.status == S.REPLACED and new.status == S.ACCEPTED)
    assert fake.order(new.client_order_id)["replaces"] == first.venue_order_id
    assert fake.order(new.client_order_id)["qty"] == "5"
    await engine.desk.cancel(new.client_order_id)
    await wait_for(lambda: new.status == S.CANCELED)
    assert fake.order(new.client_order_id)["status"] == "canceled"


async def test_bracket_legs_follow_the_venue(engine: Engine, fake: FakeAlpaca) -> None:
    price = Decimal(near(engine, "JPM"))
    entry = await engine.desk.place(limit("JPM", 10, str(price), take_profit=price + 2,
                                          stop_loss=price - 2))
    legs = [order for order in engine.desk.orders.values() if order.parent_id]
    assert len(legs) == 2
    await wait_for(lambda: all(leg.venue_order_id for leg in legs))
    fake.fill(entry.client_order_id)
    await wait_for(lambda: entry.status == S.FILLED)
    take_profit = next(leg for leg in legs if leg.request.order_type == OrderType.LIMIT)
    stop = next(leg for leg in legs if leg is not take_profit)
    fake.fill(take_profit.venue_order_id, price=float(price + 2))
    await wait_for(lambda: take_profit.status == S.FILLED and stop.status == S.CANCELED)
    assert engine.desk.portfolio.position("JPM") == 0


async def test_timeout_after_the_venue_accepted_sends_no_duplicate(
        engine: Engine, fake: FakeAlpaca) -> None:
    fake.accept_then_stall(2.5)  # longer than the 1 s request timeout
    order = await engine.desk.place(limit("AAPL", 5, near(engine, "AAPL")))
    await wait_for(lambda: order.status == S.ACCEPTED)
    assert len(fake.orders_by_client_id(order.client_order_id)) == 1
    assert fake.count("POST", "/v2/orders") == 1
    assert fake.count("GET", "/v2/orders:by_client_order_id") >= 1


async def test_5xx_is_looked_up_then_sent_once(engine: Engine, fake: FakeAlpaca) -> None:
    fake.fail_next("POST", "/v2/orders", 503)
    order = await engine.desk.place(limit("AAPL", 5, near(engine, "AAPL")))
    await wait_for(lambda: order.status == S.ACCEPTED)
    assert fake.count("POST", "/v2/orders") == 2
    assert len(fake.orders_by_client_id(order.client_order_id)) == 1


async def test_a_resent_order_refused_as_duplicate_is_settled_by_lookup(
        engine: Engine, fake: FakeAlpaca) -> None:
    order = await engine.desk.place(limit("AAPL", 5, near(engine, "AAPL")))
    await wait_for(lambda: order.status == S.ACCEPTED)
    # As after a lost answer: the same order again. Alpaca answers 422, and the
    # broker finds the order it already has instead of failing or duplicating.
    await engine.broker.submit(order)
    assert len(fake.orders_by_client_id(order.client_order_id)) == 1
    assert order.status == S.ACCEPTED


async def test_429_backs_off_and_sends_once(engine: Engine, fake: FakeAlpaca,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alpaca_rest, "MAX_RATE_WAIT_S", 0.2)
    fake.fail_next("POST", "/v2/orders", 429, times=2)
    order = await engine.desk.place(limit("AAPL", 5, near(engine, "AAPL")))
    await wait_for(lambda: order.status == S.ACCEPTED)
    assert fake.count("POST", "/v2/orders") == 3
    assert isinstance(engine.broker, AlpacaBroker)
    assert engine.broker.rest.rate_limited == 2


async def test_rejection_carries_alpacas_reason(engine: Engine, fake: FakeAlpaca) -> None:
    fake.assets.discard("XOM")
    with pytest.raises(Exception, match="not found"):
        await engine.desk.place(limit("XOM", 5, near(engine, "XOM")))
    rejected = [o for o in engine.desk.orders.values() if o.symbol == "XOM"]
    assert rejected[0].status == S.REJECTED


async def test_stream_drop_recovers_and_catches_up(engine: Engine, fake: FakeAlpaca) -> None:
    order = await engine.desk.place(limit("AAPL", 10, near(engine, "AAPL")))
    await wait_for(lambda: order.status == S.ACCEPTED)
    fake.drop_streams("trading")
    await wait_for(lambda: engine.broker.connection() != "connected", 5)
    assert "retrying" in engine.broker.connection()
    fake.fill(order.client_order_id)  # pushed to nobody: caught up after the reconnect
    await wait_for(lambda: order.status == S.FILLED, 10)
    assert engine.broker.connection() == "connected"
    assert engine.desk.portfolio.position("AAPL") == 10


async def test_the_silent_lookup_leaves_the_order_in_flight(
        tmp_path: Path, fake: FakeAlpaca) -> None:
    """No answer to the send nor to the lookup: pending, not rejected, until Alpaca
    answers; then it is settled as Alpaca has it."""
    engine = await Engine.open(alpaca_settings(tmp_path, fake))
    await engine.start()
    await engine.wait_until_live(10)
    try:
        fake.accept_then_stall(2.5)
        fake.fail_next("GET", "/v2/orders:by_client_order_id", 503, times=3)
        order = await engine.desk.place(limit("AAPL", 5, near(engine, "AAPL")))
        assert order.status in (S.PENDING_NEW, S.ACCEPTED)  # the stream may say "new"
        await wait_for(lambda: order.status == S.ACCEPTED, 10)
        assert len(fake.orders_by_client_id(order.client_order_id)) == 1
    finally:
        await engine.stop()


async def test_bad_keys_are_a_clear_message(tmp_path: Path, fake: FakeAlpaca) -> None:
    settings = make_settings(tmp_path, trading={"broker": "alpaca"},
                             alpaca={"key_id": "wrong", "secret_key": "wrong",
                                     "paper_url": fake.trading_url})
    engine = await Engine.open(settings)
    try:
        with pytest.raises(BrokerError, match="refused the API keys"):
            await engine.start()
    finally:
        await engine.stop()


async def test_missing_keys_say_where_to_put_them(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, trading={"broker": "alpaca"})
    with pytest.raises(BrokerError, match="APCA_API_KEY_ID"):
        await Engine.open(settings)


def test_keys_never_show(tmp_path: Path, fake: FakeAlpaca) -> None:
    settings = alpaca_settings(tmp_path, fake)
    assert fake.secret_key not in repr(settings)
    assert fake.secret_key not in settings.model_dump_json()


def test_rate_limiter_keeps_to_the_window() -> None:
    now = [0.0]
    limiter = RateLimiter(3, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.delay() == 0
        limiter._sent.append(now[0])
    assert limiter.delay() == 60.0
    now[0] = 30.0
    assert limiter.delay() == 30.0
    now[0] = 60.0
    assert limiter.delay() == 0
    limiter.pause(5)
    assert limiter.delay() == 5


@pytest.mark.slow
async def test_reconciliation_after_the_engine_was_killed(tmp_path: Path,
                                                          fake: FakeAlpaca) -> None:
    db = tmp_path / "killed.sqlite"
    root = HERE.parent.parent
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "alpaca_engine_proc.py"), str(db), fake.trading_url,
        stdout=asyncio.subprocess.PIPE, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert child.stdout is not None
    placed: list[str] = []
    try:
        while len(placed) < 2:
            line = (await asyncio.wait_for(child.stdout.readline(), 30)).decode()
            assert line, "the engine process ended before placing its orders"
            if line.startswith("PLACED"):
                placed.append(line.split()[1])
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    filled, resting = placed
    # While the engine was down: one order filled, an order and a position appeared
    # that tapedeck never placed.
    fake.fill(filled, price=180.0)
    external = fake.add_external_order("MSFT", "buy", 3, limit_price=100.0)
    fake.set_position("XOM", 20, 70.0)

    engine = await Engine.open(alpaca_settings(tmp_path, fake, request_timeout_s=2.0)
                               .model_copy(update={"store": Settings().store.model_copy(
                                   update={"path": db})}))
    await engine.start()
    try:
        desk = engine.desk
        assert desk.orders[filled].status == S.FILLED
        assert desk.orders[resting].status == S.ACCEPTED
        assert desk.portfolio.position("AAPL") == 10
        adopted = desk.orders[external["client_order_id"]]
        assert adopted.request.strategy == "external"
        assert adopted.is_open
        assert desk.portfolio.position("XOM") == 20
        audit = [entry.message for entry in await engine.store.recent_audit(50)
                 if entry.kind == "reconcile"]
        assert any("adopted" in message and "MSFT" in message for message in audit)
        assert any(message.startswith("XOM: alpaca holds 20") for message in audit)
        # Nothing was sent twice.
        for coid in placed:
            assert len(fake.orders_by_client_id(coid)) == 1
        # The book's cash is the account's.
        account = await engine.broker.account()
        assert desk.portfolio.cash == account.cash
    finally:
        await engine.stop()

