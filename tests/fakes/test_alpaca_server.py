"""The fake Alpaca against the real alpaca-py clients: if these pass, the fake speaks the
JSON and msgpack alpaca-py sends and parses."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.live.stock import StockDataStream
from alpaca.data.models import Quote
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import Order, TradeUpdate
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)

from tests.fakes.alpaca_server import FakeAlpaca


@pytest.fixture
def fake() -> Iterator[FakeAlpaca]:
    before = set(threading.enumerate())
    with FakeAlpaca() as server:
        yield server
    leftover = [t for t in set(threading.enumerate()) - before if t.name == "FakeAlpaca"]
    assert not leftover


@pytest.fixture
def client(fake: FakeAlpaca) -> Iterator[TradingClient]:
    trading = TradingClient(fake.key_id, fake.secret_key, url_override=fake.trading_url)
    yield trading
    trading._session.close()


def limit_buy(cid: str, qty: float = 10, price: float = 100.0, **extra: Any) -> LimitOrderRequest:
    return LimitOrderRequest(symbol="AAPL", qty=qty, side=OrderSide.BUY,
                             time_in_force=TimeInForce.DAY, limit_price=price,
                             client_order_id=cid, **extra)


async def until(condition: Callable[[], bool], timeout: float = 1.5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_orders_positions_account(fake: FakeAlpaca, client: TradingClient) -> None:
    placed = client.submit_order(limit_buy("c-1"))
    assert isinstance(placed, Order)
    assert placed.status == OrderStatus.NEW
    assert placed.client_order_id == "c-1"
    assert client.get_order_by_client_id("c-1").id == placed.id

    with pytest.raises(APIError) as duplicate:
        client.submit_order(limit_buy("c-1"))
    assert duplicate.value.status_code == 422
    assert duplicate.value.message == "client_order_id must be unique"
    assert len(fake.orders_by_client_id("c-1")) == 1

    new = client.replace_order_by_id(placed.id, ReplaceOrderRequest(limit_price=99.5,
                                                                    client_order_id="c-2"))
    assert isinstance(new, Order)
    assert new.replaces == placed.id
    assert new.limit_price == "99.5"
    assert fake.order("c-1")["status"] == "replaced"
    assert fake.order("c-1")["replaced_by"] == str(new.id)

    fake.fill("c-2", qty=4, price=99.5)
    assert client.get_order_by_id(new.id).status == OrderStatus.PARTIALLY_FILLED
    client.cancel_order_by_id(new.id)
    assert client.get_order_by_client_id("c-2").status == OrderStatus.CANCELED
    with pytest.raises(APIError) as again:
        client.cancel_order_by_id(new.id)
    assert again.value.status_code == 422

    [position] = client.get_all_positions()
    assert (position.symbol, position.qty, position.avg_entry_price) == ("AAPL", "4", "99.5")
    account = client.get_account()
    assert float(account.cash) == 100_000 - 4 * 99.5
    assert float(account.equity) == 100_000
    fills = client.get("/account/activities/FILL")
    assert [(f["order_id"], f["type"], f["qty"]) for f in fills] == [
        (str(new.id), "partial_fill", "4")]
    assert fake.count("POST", "/v2/orders") == 2


def test_bracket_legs_and_errors(fake: FakeAlpaca, client: TradingClient) -> None:
    bracket = client.submit_order(limit_buy(
        "b-1", order_class="bracket", take_profit=TakeProfitRequest(limit_price=110),
        stop_loss=StopLossRequest(stop_price=90)))
    assert isinstance(bracket, Order)
    assert bracket.legs
    assert {leg.status for leg in bracket.legs} == {OrderStatus.HELD}
    fake.fill("b-1", price=100)
    take_profit, stop_loss = (leg["client_order_id"] for leg in fake.order("b-1")["legs"])
    assert fake.order(stop_loss)["status"] == "new"
    fake.fill(take_profit)
    assert fake.order(stop_loss)["status"] == "canceled"
    assert client.get_all_positions() == []

    with pytest.raises(APIError) as unknown:
        client.submit_order(MarketOrderRequest(symbol="XYZ", qty=1, side=OrderSide.BUY,
                                               time_in_force=TimeInForce.DAY))
    assert unknown.value.status_code == 422
    assert unknown.value.message == 'asset "XYZ" not found'
    fake.fail_next("GET", "/v2/account", 500)
    with pytest.raises(APIError) as failed:
        client.get_account()
    assert failed.value.status_code == 500
    bad = requests.get(f"{fake.trading_url}/v2/account", timeout=2,
                       headers={"APCA-API-KEY-ID": "nope", "APCA-API-SECRET-KEY": "nope"})
    assert bad.status_code == 401
    assert bad.json()["code"] == 40110000
    fake.fail_next("*", "/v2/orders", 429)
    limited = requests.get(f"{fake.trading_url}/v2/orders", timeout=2)
    assert limited.status_code == 429
    assert limited.headers["X-Ratelimit-Remaining"] == "0"


def test_accept_then_stall(fake: FakeAlpaca) -> None:
    fake.accept_then_stall(0.5)
    headers = {"APCA-API-KEY-ID": fake.key_id, "APCA-API-SECRET-KEY": fake.secret_key}
    body = {"symbol": "MSFT", "qty": "1", "side": "buy", "type": "market",
            "time_in_force": "day", "client_order_id": "s-1"}
    with pytest.raises(requests.Timeout):
        requests.post(f"{fake.trading_url}/v2/orders", json=body, headers=headers, timeout=0.1)
    assert [o["status"] for o in fake.orders_by_client_id("s-1")] == ["new"]


async def test_trade_updates_stream(fake: FakeAlpaca, client: TradingClient) -> None:
    from alpaca.trading.stream import TradingStream

    updates: asyncio.Queue[TradeUpdate] = asyncio.Queue()

    async def on_update(update: TradeUpdate) -> None:
        await updates.put(update)

    stream = TradingStream(fake.key_id, fake.secret_key, url_override=fake.trading_stream_url)
    stream.subscribe_trade_updates(on_update)
    task = asyncio.create_task(stream._run_forever())
    try:
        await until(lambda: fake.trading_listeners == 1)
        await asyncio.to_thread(client.submit_order, limit_buy("t-1", qty=5))
        new = await asyncio.wait_for(updates.get(), 1)
        assert new.event == "new"
        assert new.order.client_order_id == "t-1"
        execution = fake.fill("t-1", price=101.25)
        fill = await asyncio.wait_for(updates.get(), 1)
        assert fill.event == "fill"
        assert str(fill.execution_id) == execution
        assert (fill.price, fill.qty, fill.position_qty) == (101.25, 5, 5)
        assert fill.order.status == OrderStatus.FILLED
    finally:
        await stream.stop_ws()
        await stream.close()
        await asyncio.wait_for(task, 2)
    await until(lambda: fake.trading_connections == 0)


async def test_data_stream_quotes_and_connection_limit(fake: FakeAlpaca) -> None:
    quotes: asyncio.Queue[Quote] = asyncio.Queue()

    async def on_quote(quote: Quote) -> None:
        await quotes.put(quote)

    stream = StockDataStream(fake.key_id, fake.secret_key, url_override=fake.data_stream_url)
    stream.subscribe_quotes(on_quote, "AAPL")
    task = asyncio.create_task(stream._run_forever())
    second = StockDataStream(fake.key_id, fake.secret_key, url_override=fake.data_stream_url)
    try:
        await until(lambda: fake.subscriptions().get("quotes") == ["AAPL"])
        when = datetime(2024, 1, 2, 15, 30, 0, 123456, tzinfo=UTC)
        fake.push_quote("MSFT", 400.0, 400.1)  # not subscribed: never delivered
        fake.push_quote("AAPL", 189.5, 189.52, bid_size=300, ts=when)
        quote = await asyncio.wait_for(quotes.get(), 1)
        assert (quote.symbol, quote.bid_price, quote.ask_price) == ("AAPL", 189.5, 189.52)
        assert (quote.bid_size, quote.timestamp) == (300, when)
        assert quotes.empty()

        with pytest.raises(ValueError, match="connection limit exceeded"):
            await second._start_ws()
        assert fake.data_connects_total == 2
    finally:
        await second.close()
        await stream.stop_ws()
        await stream.close()
        await asyncio.wait_for(task, 2)
    await until(lambda: fake.data_connections == 0)


def test_historical_bars_paginate(fake: FakeAlpaca) -> None:
    start = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    fake.bars = {"AAPL": [{"t": start + timedelta(minutes=i), "o": 100 + i, "h": 101 + i,
                           "l": 99 + i, "c": 100.5 + i, "v": 1000} for i in range(10)]}
    fake.bars_page_size = 3
    fake.push_quote("AAPL", 109.9, 110.1)
    history = StockHistoricalDataClient(fake.key_id, fake.secret_key, url_override=fake.data_url)
    try:
        bars = history.get_stock_bars(StockBarsRequest(
            symbol_or_symbols=["AAPL", "MSFT"], timeframe=TimeFrame.Minute,
            start=start + timedelta(minutes=2), end=start + timedelta(minutes=8)))
        got = bars.data["AAPL"]
        assert [b.timestamp for b in got] == [start + timedelta(minutes=i) for i in range(2, 9)]
        assert got[0].close == 102.5
        assert "MSFT" not in bars.data
        assert fake.count("GET", "/v2/stocks/bars") == 3
        latest = history.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAPL"))
        assert latest["AAPL"].ask_price == 110.1
    finally:
        history._session.close()
