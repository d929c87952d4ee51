"""The paper venue's fills, table by table: a real venue over a real market state and a
real database, driven by quotes and trades as the feed would deliver them."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.brokers.base import BrokerContext, BrokerError
from core.brokers.paper import PaperVenue
from core.clock import ExchangeCalendar
from core.config_trading import PaperSettings
from core.market import MarketState
from core.model import (
    NS_PER_SECOND,
    Fill,
    Instrument,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Quote,
    Side,
    TimeInForce,
    Trade,
)
from core.orders import Order
from core.store import Store

D = Decimal
CALENDAR = ExchangeCalendar()
OPEN_NS, CLOSE_NS = CALENDAR.open_close_ns(date(2019, 3, 14))
S = OrderStatus


class Desk:
    """A paper venue and what it reported."""

    def __init__(self, store: Store, **settings: Any) -> None:
        self.store = store
        self.now = OPEN_NS + 3600 * NS_PER_SECOND
        self.market = MarketState(calendar=CALENDAR)
        for symbol in ("AAPL", "MSFT"):
            self.market.track(Instrument(symbol))
        self.settings = PaperSettings(**{"slippage_bps": 0, "commission": "none", **settings})
        self.venue = self._venue()
        self.events: list[OrderUpdate | Fill] = []
        self._ids = itertools.count(1)

    def _venue(self) -> PaperVenue:
        context = BrokerContext(self.market, self.market.bus, lambda: self.now, CALENDAR,
                                self.store)
        return PaperVenue(self.settings, context)

    async def start(self) -> None:
        await self.venue.start(self.events.append)

    async def restart(self) -> None:
        await self.venue.stop()
        await self.store.flush()
        self.venue = self._venue()
        await self.start()

    def quote(self, bid: float, ask: float, size: float = 10_000, symbol: str = "AAPL") -> None:
        self.now += NS_PER_SECOND
        self.market.ingest([Quote(symbol, self.now, bid, ask, size, size)])

    def trade(self, price: float, size: float = 10_000, symbol: str = "AAPL") -> None:
        self.now += NS_PER_SECOND
        self.market.ingest([Trade(symbol, self.now, price, size)])

    def tick(self, price: float, size: float = 10_000, spread: float = 0.02) -> None:
        """A trade and the quote after it, as the replay sends them."""
        self.trade(price, size)
        self.quote(price - spread / 2, price + spread / 2, size)

    async def submit(self, request: OrderRequest, legs: tuple[OrderRequest, ...] = ()) -> Order:
        order = Order(f"t-{next(self._ids)}", request, self.now)
        children = [Order(f"t-{next(self._ids)}", leg, self.now, parent_id=order.client_order_id)
                    for leg in legs]
        await self.venue.submit(order, children)
        return order

    def fills(self, order: Order | None = None) -> list[Fill]:
        return [e for e in self.events if isinstance(e, Fill)
                and (order is None or e.client_order_id == order.client_order_id)]

    def statuses(self, order: Order) -> list[OrderStatus]:
        return [e.status for e in self.events
                if isinstance(e, OrderUpdate) and e.client_order_id == order.client_order_id]

    def reason(self, order: Order) -> str:
        return next(e.reason for e in reversed(self.events) if isinstance(e, OrderUpdate)
                    and e.client_order_id == order.client_order_id)

    def filled(self, order: Order) -> Decimal:
        return sum((f.quantity for f in self.fills(order)), D(0))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "paper.sqlite") as opened:
        yield opened


async def desk_with(store: Store, **settings: Any) -> Desk:
    desk = Desk(store, **settings)
    await desk.start()
    desk.tick(100.0)
    return desk


def buy(quantity: int = 100, **kwargs: Any) -> OrderRequest:
    return OrderRequest("AAPL", Side.BUY, D(quantity), **kwargs)


def sell(quantity: int = 100, **kwargs: Any) -> OrderRequest:
    return OrderRequest("AAPL", Side.SELL, D(quantity), **kwargs)


@pytest.mark.parametrize(("request_", "price"), [
    (buy(), D("100.02")),  # the ask, 100.01, plus 1 bp = 100.020001
    (sell(), D("99.98")),  # the bid, 99.99, less 1 bp
])
async def test_market_orders_fill_at_the_far_side_plus_slippage(
        store: Store, request_: OrderRequest, price: Decimal) -> None:
    desk = await desk_with(store, slippage_bps=1)
    order = await desk.submit(request_)
    assert desk.statuses(order) == [S.ACCEPTED]
    [fill] = desk.fills(order)
    assert (fill.quantity, fill.price) == (D(100), price)


async def test_a_limit_rests_until_the_quote_crosses_and_fills_no_worse(store: Store) -> None:
    desk = await desk_with(store)
    order = await desk.submit(buy(order_type=OrderType.LIMIT, limit_price=D("99.50")))
    desk.tick(99.80)
    assert desk.fills(order) == []
    desk.tick(99.40)  # the ask (99.41) is through the limit: filled at the ask
    [fill] = desk.fills(order)
    assert fill.price == D("99.41")


async def test_a_marketable_limit_fills_on_arrival_at_the_better_price(store: Store) -> None:
    desk = await desk_with(store)
    order = await desk.submit(buy(order_type=OrderType.LIMIT, limit_price=D("101")))
    assert desk.fills(order)[0].price == D("100.01")


async def test_a_stop_triggers_on_the_last_trade_and_a_gap_fills_at_the_market(
        store: Store) -> None:
    desk = await desk_with(store)
    order = await desk.submit(sell(order_type=OrderType.STOP, stop_price=D("98")))
    desk.quote(97.0, 97.1)  # quotes alone do not trigger a stop
    desk.tick(98.5)
    assert desk.fills(order) == []
    desk.tick(95.0)  # gapped through the stop: filled at the bid, not at 98
    [fill] = desk.fills(order)
    assert fill.price == D("94.99")


async def test_a_triggered_stop_limit_waits_for_its_limit(store: Store) -> None:
    desk = await desk_with(store)
    order = await desk.submit(sell(order_type=OrderType.STOP_LIMIT, stop_price=D("98"),
                                   limit_price=D("97.50")))
    desk.tick(96.0)  # triggered, but the bid is below the limit
    assert desk.fills(order) == []
    desk.tick(97.60)
    assert desk.fills(order)[0].price == D("97.59")


@pytest.mark.parametrize("trail", [{"trail_amount": D(1)}, {"trail_percent": D(1)}])
async def test_a_trailing_stop_follows_the_best_trade(store: Store, trail: dict[str, Any]
                                                      ) -> None:
    desk = await desk_with(store)
    order = await desk.submit(sell(order_type=OrderType.TRAILING_STOP, **trail))
    for price in (101.0, 103.0, 105.0, 104.2):
        desk.tick(price)
    assert desk.fills(order) == []  # the stop trails at 104 (amount) or 103.95 (1%)
    desk.tick(103.9)
    assert desk.fills(order)[0].price == D("103.89")


async def test_large_orders_fill_in_parts_by_share_of_volume(store: Store) -> None:
    desk = await desk_with(store, volume_share=0.25)
    desk.quote(99.99, 100.01, size=400)
    order = await desk.submit(buy(1000))
    assert [f.quantity for f in desk.fills(order)] == [D(100)]  # 25% of the 400 shown
    desk.tick(100.0, size=2000)  # 500 more
    desk.tick(100.0, size=2000)  # and the last 400
    assert [f.quantity for f in desk.fills(order)] == [D(100), D(500), D(400)]
    assert desk.statuses(order)[-1] == S.ACCEPTED  # fills carry the status, not updates
    assert len({f.fill_id for f in desk.fills(order)}) == 3


@pytest.mark.parametrize(("settings", "commission"), [
    ({"commission": "per_share", "commission_per_share": D("0.005"),
      "commission_minimum": D(1)}, D("1.00")),  # 100 x 0.005 = 0.50, the minimum is 1
    ({"commission": "per_share", "commission_per_share": D("0.005"),
      "commission_minimum": D(1)}, D("2.50")),  # 500 shares
    ({"commission": "percent", "commission_percent": D("0.1")}, D("10.00")),
])
async def test_commission_models(store: Store, settings: dict[str, Any], commission: Decimal
                                 ) -> None:
    desk = await desk_with(store, **settings)
    quantity = 500 if commission == D("2.50") else 100
    order = await desk.submit(buy(quantity, order_type=OrderType.LIMIT,
                                  limit_price=D("100.01")))
    assert desk.fills(order)[0].commission == commission


async def test_day_orders_expire_at_the_close_and_gtc_orders_stay(store: Store) -> None:
    desk = await desk_with(store)
    day = await desk.submit(buy(order_type=OrderType.LIMIT, limit_price=D(90)))
    gtc = await desk.submit(buy(order_type=OrderType.LIMIT, limit_price=D(90),
                                time_in_force=TimeInForce.GTC))
    desk.venue.expire_due(CLOSE_NS - 1)
    assert desk.statuses(day) == [S.ACCEPTED]
    desk.venue.expire_due(CLOSE_NS)
    assert desk.statuses(day) == [S.ACCEPTED, S.EXPIRED]
    assert desk.statuses(gtc) == [S.ACCEPTED]


async def test_a_day_order_after_the_close_works_the_next_session(store: Store) -> None:
    desk = await desk_with(store)
    desk.now = CLOSE_NS + 60 * NS_PER_SECOND
    order = await desk.submit(buy())
    assert desk.fills(order) == []  # no fills out of session
    desk.venue.expire_due(CLOSE_NS + 3600 * NS_PER_SECOND)
    assert desk.statuses(order) == [S.ACCEPTED]
    next_open, _ = CALENDAR.open_close_ns(date(2019, 3, 15))
    desk.now = next_open + NS_PER_SECOND
    desk.tick(101.0)
    assert desk.fills(order)[0].price == D("101.01")


async def test_ioc_cancels_what_it_could_not_fill_on_arrival(store: Store) -> None:
    desk = await desk_with(store, volume_share=0.25)
    desk.quote(99.99, 100.01, size=400)
    order = await desk.submit(buy(1000, order_type=OrderType.LIMIT, limit_price=D(101),
                                  time_in_force=TimeInForce.IOC))
    assert desk.filled(order) == D(100)
    assert desk.statuses(order)[-1] == S.CANCELED
    assert "100 of 1000" in desk.reason(order)


async def test_a_cash_account_rejects_beyond_its_cash_with_the_numbers(store: Store) -> None:
    desk = await desk_with(store, account="cash", starting_cash=D(10_000))
    order = await desk.submit(buy(200))
    assert desk.statuses(order) == [S.REJECTED]
    reason = desk.reason(order)
    assert "$20,002.00" in reason
    assert "$10,000.00 is available" in reason
    short = await desk.submit(sell(10))
    assert desk.statuses(short) == [S.REJECTED]
    assert "cannot sell short" in desk.reason(short)


async def test_open_buy_orders_hold_cash(store: Store) -> None:
    desk = await desk_with(store, account="cash", starting_cash=D(10_000))
    await desk.submit(buy(60, order_type=OrderType.LIMIT, limit_price=D(90)))  # holds 5,400
    order = await desk.submit(buy(60, order_type=OrderType.LIMIT, limit_price=D(90)))
    assert desk.statuses(order) == [S.REJECTED]
    assert "$5,400.00 held for open buy orders" in desk.reason(order)


async def test_a_margin_account_allows_its_multiplier(store: Store) -> None:
    desk = await desk_with(store, account="margin", margin_multiplier=D(2),
                           starting_cash=D(10_000))
    ok = await desk.submit(buy(150))  # 15,000 of 20,000
    assert desk.statuses(ok) == [S.ACCEPTED]
    over = await desk.submit(buy(60))  # 6,000 more
    assert desk.statuses(over) == [S.REJECTED]
    assert "x 2" in desk.reason(over)
    closing = await desk.submit(sell(150))  # closing needs no buying power
    assert desk.statuses(closing) == [S.ACCEPTED]


async def test_a_bracket_protects_its_entry_and_one_leg_cancels_the_other(store: Store
                                                                          ) -> None:
    desk = await desk_with(store)
    entry = await desk.submit(
        buy(100, order_type=OrderType.LIMIT, limit_price=D(99)),
        legs=(sell(100, order_type=OrderType.LIMIT, limit_price=D(103)),
              sell(100, order_type=OrderType.STOP, stop_price=D(97))))
    profit_id, loss_id = desk.venue.orders[entry.client_order_id].legs
    desk.tick(104.0)  # the take-profit is marketable, but there is nothing to protect yet
    assert desk.fills() == []
    desk.tick(98.9)  # the entry fills at 98.91
    assert desk.filled(entry) == D(100)
    desk.tick(103.5)
    profit = [f for f in desk.fills() if f.client_order_id == profit_id]
    assert [f.price for f in profit] == [D("103.49")]
    loss_states = [e.status for e in desk.events if isinstance(e, OrderUpdate)
                   and e.client_order_id == loss_id]
    assert loss_states == [S.ACCEPTED, S.CANCELED]
    desk.tick(90.0)  # the stop-loss is gone: nothing more fills
    assert len(desk.fills()) == 2


async def test_resting_orders_survive_a_restart(store: Store) -> None:
    desk = await desk_with(store)
    order = await desk.submit(buy(order_type=OrderType.LIMIT, limit_price=D(99)))
    await desk.restart()
    known = await desk.venue.lookup(order.client_order_id)
    assert known is not None
    assert known.status == S.ACCEPTED
    assert await desk.venue.lookup("never-sent") is None
    desk.tick(98.0)
    assert desk.filled(order) == D(100)
    await desk.restart()
    known = await desk.venue.lookup(order.client_order_id)
    assert known is not None
    assert known.status == S.FILLED
    assert len(known.fills) == 1
    account = await desk.venue.account()
    assert account.cash == D(100_000) - D("98.01") * 100


async def test_a_client_order_id_is_never_taken_twice(store: Store) -> None:
    desk = await desk_with(store)
    order = await desk.submit(buy())
    with pytest.raises(BrokerError, match="already has"):
        await desk.venue.submit(order)


async def test_cancel_and_replace(store: Store) -> None:
    desk = await desk_with(store)
    order = await desk.submit(buy(order_type=OrderType.LIMIT, limit_price=D(95)))
    new = Order("t-new", buy(50, order_type=OrderType.LIMIT, limit_price=D(96)), desk.now,
                replaces=order.client_order_id)
    await desk.venue.replace(order.client_order_id, new)
    assert desk.statuses(order) == [S.ACCEPTED, S.REPLACED]
    assert desk.statuses(new) == [S.ACCEPTED]
    await desk.venue.cancel(new.client_order_id)
    assert desk.statuses(new) == [S.ACCEPTED, S.CANCELED]


async def test_latency_delays_the_venue(store: Store) -> None:
    import asyncio

    desk = await desk_with(store, latency_ms=30)
    order = await desk.submit(buy())
    assert desk.statuses(order) == []
    await asyncio.sleep(0.1)
    assert desk.statuses(order) == [S.ACCEPTED]
    assert desk.filled(order) == D(100)
