"""The write-ahead order journal.

The rules (DESIGN.md section 4):
- an order's intent (its row, its first event, and the advanced id sequence) is
  committed, durably, before any broker sees the order: `record_intent` is awaited;
- every later change of state is appended to `order_events`, never updated in place;
- a fill is stored once per (venue, fill id): a fill reported again is ignored by the
  primary key as well as by `Order.apply_fill`.

`load` rebuilds every order from its intent, its last event and its fills, and returns
the next free sequence number, so ids continue where they stopped. Orders the journal
holds as in flight (not terminal) are for the caller to resolve with the broker, by
client order id, never by sending them again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.model import Fill, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from core.orders import Order, OrderEvent
from core.store import Store

SEQUENCE_NAME = "client_order_id"
_DECIMAL_FIELDS = ("quantity", "limit_price", "stop_price", "trail_amount", "trail_percent",
                   "take_profit", "stop_loss")


def request_to_json(request: OrderRequest) -> str:
    data: dict[str, Any] = {
        "symbol": request.symbol,
        "side": request.side.value,
        "order_type": request.order_type.value,
        "time_in_force": request.time_in_force.value,
        "strategy": request.strategy,
    }
    for name in _DECIMAL_FIELDS:
        value = getattr(request, name)
        if value is not None:
            data[name] = str(value)
    return json.dumps(data, sort_keys=True)


def request_from_json(text: str) -> OrderRequest:
    data = json.loads(text)
    decimals = {name: Decimal(data[name]) for name in _DECIMAL_FIELDS if name in data}
    return OrderRequest(
        symbol=data["symbol"],
        side=Side(data["side"]),
        order_type=OrderType(data["order_type"]),
        time_in_force=TimeInForce(data["time_in_force"]),
        strategy=data.get("strategy", ""),
        **decimals,
    )


@dataclass(slots=True)
class JournalState:
    """Everything the journal holds, as of `Journal.load`."""

    orders: dict[str, Order] = field(default_factory=dict)  # by client order id
    fills: list[Fill] = field(default_factory=list)  # in time order
    next_sequence: int = 1

    def in_flight(self) -> list[Order]:
        """Orders not in a final state: to be settled with the broker on start."""
        return [order for order in self.orders.values() if order.is_open]


class Journal:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def record_intent(self, order: Order, sequence: int, venue: str) -> None:
        """Commit the order, its pending_new event and the id sequence in one durable
        transaction. Only after this returns may a broker see the order."""
        await self.record_intents([(order, sequence)], venue)

    async def record_intents(self, orders: Sequence[tuple[Order, int]], venue: str) -> None:
        """`record_intent` for orders that go out together (a bracket's entry and its
        legs): all of them, or none."""
        statements: list[tuple[str, Sequence[Any]]] = []
        for order, sequence in orders:
            statements += [
                ("INSERT INTO orders (client_order_id, sequence, created, symbol, venue, "
                 "request, parent_id, oco_group, replaces) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (order.client_order_id, sequence, order.created_ns, order.symbol, venue,
                  request_to_json(order.request), order.parent_id, order.oco_group,
                  order.replaces)),
                _event_statement(OrderEvent(order.client_order_id, order.created_ns,
                                            order.status, order.filled_quantity,
                                            order.reason)),
            ]
        last = max(sequence for _, sequence in orders)
        statements.append(
            ("INSERT INTO sequences (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
             "SET value = max(value, excluded.value)", (SEQUENCE_NAME, last + 1)))
        await self.store.submit_many(statements)

    def record_event(self, event: OrderEvent, venue_order_id: str = "") -> asyncio.Future[None]:
        """Append a change of state. The write is queued (never dropped) and the future
        resolves once it is committed; the hot path need not wait for it."""
        return self.store.submit_many([_event_statement(event, venue_order_id)])

    def record_fill(self, fill: Fill, event: OrderEvent) -> asyncio.Future[None]:
        """Store a fill and the order's change of state together, all or nothing."""
        return self.store.submit_many([
            ("INSERT INTO fills (venue, fill_id, client_order_id, symbol, side, quantity, "
             "price, commission, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
             "ON CONFLICT (venue, fill_id) DO NOTHING",
             (fill.venue, fill.fill_id, fill.client_order_id, fill.symbol, fill.side.value,
              str(fill.quantity), str(fill.price), str(fill.commission), fill.ts_ns)),
            _event_statement(event),
        ])

    async def load(self) -> JournalState:
        state = JournalState()
        for row in await self.store.fetchall(
            "SELECT client_order_id, created, request, parent_id, oco_group, replaces "
            "FROM orders ORDER BY sequence"
        ):
            state.orders[row["client_order_id"]] = Order(
                row["client_order_id"], request_from_json(row["request"]), int(row["created"]),
                parent_id=row["parent_id"], oco_group=row["oco_group"],
                replaces=row["replaces"], updated_ns=int(row["created"]))
        # The last event of each order says where it stands.
        for row in await self.store.fetchall(
            "SELECT e.client_order_id, e.ts, e.status, e.reason, e.venue_order_id "
            "FROM order_events e JOIN (SELECT client_order_id, max(id) AS last "
            "FROM order_events GROUP BY client_order_id) l ON e.id = l.last"
        ):
            last = state.orders.get(row["client_order_id"])
            if last is None:
                continue
            last.status = OrderStatus(row["status"])
            last.updated_ns = int(row["ts"])
            last.reason = row["reason"]
        # Reasons and venue ids given by earlier events still count.
        for row in await self.store.fetchall(
            "SELECT client_order_id, reason, venue_order_id FROM order_events "
            "WHERE reason != '' OR venue_order_id != '' ORDER BY id"
        ):
            earlier = state.orders.get(row["client_order_id"])
            if earlier is not None:
                earlier.reason = earlier.reason or row["reason"]
                earlier.venue_order_id = row["venue_order_id"] or earlier.venue_order_id
        # Fills are the truth of what filled: quantities and prices come from them.
        for row in await self.store.fetchall(
            "SELECT venue, fill_id, client_order_id, symbol, side, quantity, price, "
            "commission, ts FROM fills ORDER BY ts, rowid"
        ):
            fill = Fill(row["fill_id"], row["client_order_id"], row["symbol"],
                        Side(row["side"]), Decimal(row["quantity"]), Decimal(row["price"]),
                        Decimal(row["commission"]), int(row["ts"]), row["venue"])
            state.fills.append(fill)
            order = state.orders.get(fill.client_order_id)
            if order is None:
                continue  # cannot happen: fills reference orders (foreign key)
            order.restore_fill(fill)
        sequence = await self.store.fetchone("SELECT value FROM sequences WHERE name = ?",
                                             (SEQUENCE_NAME,))
        state.next_sequence = int(sequence["value"]) if sequence is not None else 1
        return state


def _event_statement(event: OrderEvent, venue_order_id: str = "") -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO order_events (client_order_id, ts, status, filled_quantity, reason, "
        "venue_order_id) VALUES (?, ?, ?, ?, ?, ?)",
        (event.client_order_id, event.ts_ns, event.status.value, str(event.filled_quantity),
         event.reason, venue_order_id),
    )
