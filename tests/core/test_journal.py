"""The write-ahead journal over a real database file."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from core.journal import Journal, request_from_json, request_to_json
from core.model import Fill, OrderRequest, OrderStatus, OrderType, Side, TimeInForce, to_ns
from core.orders import ClientOrderIds, Order
from core.store import Store

T0 = to_ns(datetime(2019, 3, 14, 15, 0, tzinfo=UTC))
BRACKET = OrderRequest("MSFT", Side.SELL, Decimal(25), OrderType.LIMIT, TimeInForce.GTC,
                       limit_price=Decimal("115.50"), take_profit=Decimal("110"),
                       stop_loss=Decimal("118.25"), strategy="donchian-1")


def test_a_request_survives_the_round_trip() -> None:
    trailing = OrderRequest("AAPL", Side.BUY, Decimal("10"), OrderType.TRAILING_STOP,
                            trail_percent=Decimal("2.5"))
    for request in (BRACKET, trailing):
        assert request_from_json(request_to_json(request)) == request


async def new_order(journal: Journal, ids: ClientOrderIds, request: OrderRequest) -> Order:
    client_order_id, sequence = ids.issue(T0)
    order = Order(client_order_id, request, T0)
    await journal.record_intent(order, sequence, "paper")
    return order


async def test_orders_events_and_fills_come_back_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    async with await Store.open(path) as store:
        journal = Journal(store)
        state = await journal.load()
        assert state.next_sequence == 1
        ids = ClientOrderIds("td", state.next_sequence)
        done = await new_order(journal, ids, BRACKET)
        journal.record_event(done.transition(OrderStatus.ACCEPTED, T0 + 1), "venue-1")
        first = Fill("x1", done.client_order_id, "MSFT", Side.SELL, Decimal(10),
                     Decimal("115.50"), Decimal("1.00"), T0 + 2, "paper")
        event = done.apply_fill(first)
        assert event is not None
        journal.record_fill(first, event)
        journal.record_fill(first, event)  # reported twice by the venue: stored once
        rejected = await new_order(journal, ids, OrderRequest("AAPL", Side.BUY, Decimal(1)))
        await journal.record_event(rejected.transition(
            OrderStatus.REJECTED, T0 + 3, "beyond buying power: needs $180.00, has $0.00"))
        waiting = await new_order(journal, ids, OrderRequest("JPM", Side.BUY, Decimal(5)))
        await store.flush()
    async with await Store.open(path) as store:
        state = await Journal(store).load()
    assert state.next_sequence == 4
    assert list(state.orders) == [done.client_order_id, rejected.client_order_id,
                                  waiting.client_order_id]
    again = state.orders[done.client_order_id]
    assert again.request == BRACKET
    assert again.status == OrderStatus.PARTIALLY_FILLED
    assert again.filled_quantity == Decimal(10)
    assert again.average_price == Decimal("115.50")
    assert again.fill_ids == {"x1"}
    assert again.venue_order_id == "venue-1"
    assert state.fills == [first]
    assert state.orders[rejected.client_order_id].reason.startswith("beyond buying power")
    assert [o.client_order_id for o in state.in_flight()] == [done.client_order_id,
                                                               waiting.client_order_id]


async def test_ids_continue_after_a_restart_and_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    issued: set[str] = set()
    for _ in range(3):
        async with await Store.open(path) as store:
            journal = Journal(store)
            ids = ClientOrderIds("td", (await journal.load()).next_sequence)
            for _ in range(5):
                order = await new_order(journal, ids, OrderRequest("KO", Side.BUY, Decimal(1)))
                assert order.client_order_id not in issued
                issued.add(order.client_order_id)
    assert len(issued) == 15
    assert max(issued) == "td-20190314-000015"
