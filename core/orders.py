"""Orders: the state machine, client order ids, fills applied exactly once.

An order moves through the states of `OrderStatus` along the edges of `TRANSITIONS` and
nowhere else. A move off an edge is a bug somewhere (ours or the venue's): it raises
`IllegalTransition` inside the engine, which records it, and the order keeps its state.

Client order ids are `<prefix>-<yyyymmdd>-<seq>`: the date is the exchange's (New York)
date the order was created, and `seq` is one sequence for the life of the database,
persisted in the same transaction as the order's intent (`core.journal`), so an id is
never issued twice, even across restarts or on a day with thousands of orders.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from core.model import (
    NS_PER_SECOND,
    TERMINAL_STATUSES,
    Fill,
    OrderRequest,
    OrderStatus,
    Side,
    by_fields,
)

S = OrderStatus
_ZERO = Decimal(0)
# From each state, the states an order may move to. Fills may race a cancel or a
# replace, so a pending cancel or replace can still (partially) fill; a venue that
# refuses a cancel or replace puts the order back where it was.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_NEW: frozenset({S.ACCEPTED, S.REJECTED, S.PARTIALLY_FILLED, S.FILLED,
                              S.CANCELED, S.EXPIRED}),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL,
                           S.PENDING_REPLACE, S.CANCELED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL,
                                   S.PENDING_REPLACE, S.CANCELED, S.EXPIRED}),
    S.PENDING_CANCEL: frozenset({S.CANCELED, S.PARTIALLY_FILLED, S.FILLED, S.ACCEPTED,
                                 S.EXPIRED}),
    S.PENDING_REPLACE: frozenset({S.REPLACED, S.PARTIALLY_FILLED, S.FILLED, S.ACCEPTED,
                                  S.CANCELED, S.EXPIRED}),
    **{terminal: frozenset() for terminal in TERMINAL_STATUSES},
}
EXCHANGE_ZONE = ZoneInfo("America/New_York")


class OrderError(Exception):
    """An order cannot do what was asked of it."""


class IllegalTransition(OrderError):
    def __init__(self, client_order_id: str, current: OrderStatus, wanted: OrderStatus) -> None:
        super().__init__(f"order {client_order_id}: {current.value} cannot become "
                         f"{wanted.value}")
        self.client_order_id = client_order_id
        self.current = current
        self.wanted = wanted


class Overfill(OrderError):
    def __init__(self, client_order_id: str, quantity: Decimal, filled: Decimal,
                 more: Decimal) -> None:
        super().__init__(f"order {client_order_id}: a fill of {more} on {filled} filled "
                         f"would exceed the order's {quantity}")
        self.client_order_id = client_order_id


# Enum members as module constants in the per-order paths: on Python 3.11 every
# attribute read on an enum class goes through EnumType.__getattr__.
_ACCEPTED, _FILLED = OrderStatus.ACCEPTED, OrderStatus.FILLED
_PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED


@dataclass(slots=True, unsafe_hash=True)
class OrderEvent:
    """One change of an order, as appended to the journal's `order_events`.

    Its `__init__` is written out, with `Final` fields for `frozen=True`: see
    `core.model`'s docstring."""

    client_order_id: Final[str]
    ts_ns: Final[int]
    status: Final[OrderStatus]
    filled_quantity: Final[Decimal]
    reason: Final[str]

    def __init__(self, client_order_id: str, ts_ns: int, status: OrderStatus,
                 filled_quantity: Decimal, reason: str = "") -> None:
        self.client_order_id = client_order_id
        self.ts_ns = ts_ns
        self.status = status
        self.filled_quantity = filled_quantity
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return by_fields(self)


@dataclass(slots=True)
class Order:
    """An order and what has happened to it so far. (Its `__init__` is written out to
    be native when compiled: see `core.model`'s docstring.)"""

    client_order_id: str
    request: OrderRequest
    created_ns: int
    status: OrderStatus
    filled_quantity: Decimal
    average_price: Decimal | None
    updated_ns: int
    reason: str  # why it was rejected, canceled or expired
    venue_order_id: str
    parent_id: str  # a bracket leg's entry order
    oco_group: str  # bracket legs: the first to fill cancels the others
    replaces: str  # the order this one replaced
    fill_ids: set[str]

    def __init__(self, client_order_id: str, request: OrderRequest, created_ns: int,
                 status: OrderStatus = OrderStatus.PENDING_NEW,
                 filled_quantity: Decimal = _ZERO, average_price: Decimal | None = None,
                 updated_ns: int = 0, reason: str = "", venue_order_id: str = "",
                 parent_id: str = "", oco_group: str = "", replaces: str = "",
                 fill_ids: set[str] | None = None) -> None:
        self.client_order_id = client_order_id
        self.request = request
        self.created_ns = created_ns
        self.status = status
        self.filled_quantity = filled_quantity
        self.average_price = average_price
        self.updated_ns = updated_ns
        self.reason = reason
        self.venue_order_id = venue_order_id
        self.parent_id = parent_id
        self.oco_group = oco_group
        self.replaces = replaces
        self.fill_ids = set() if fill_ids is None else fill_ids

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return by_fields(self)

    @property
    def symbol(self) -> str:
        return self.request.symbol

    @property
    def side(self) -> Side:
        return self.request.side

    @property
    def quantity(self) -> Decimal:
        return self.request.quantity

    @property
    def remaining(self) -> Decimal:
        return self.request.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL_STATUSES

    def can_become(self, status: OrderStatus) -> bool:
        return status in TRANSITIONS[self.status]

    def transition(self, status: OrderStatus, ts_ns: int, reason: str = "") -> OrderEvent:
        """Move to `status`; raises IllegalTransition (and changes nothing) off an edge.

        Only a fill fills: `filled` comes from `apply_fill`, and partially_filled (a venue
        refusing a cancel or replace puts the order back) or accepted are reachable here
        only when the filled quantity says so. So the status and the filled quantity can
        never disagree."""
        filled = self.filled_quantity
        if (status not in TRANSITIONS[self.status] or status == _FILLED
                or (status == _PARTIALLY_FILLED and not 0 < filled < self.quantity)
                or (status == _ACCEPTED and filled != 0)):
            raise IllegalTransition(self.client_order_id, self.status, status)
        self.status = status
        self.updated_ns = ts_ns
        if reason:
            self.reason = reason
        return OrderEvent(self.client_order_id, ts_ns, status, self.filled_quantity, reason)

    def apply_fill(self, fill: Fill) -> OrderEvent | None:
        """Count a fill once: None when this fill id was applied before. Raises Overfill
        (and changes nothing) when it would fill more than the order's quantity, and
        IllegalTransition when the order cannot fill in its state."""
        if fill.fill_id in self.fill_ids:
            return None
        if fill.client_order_id != self.client_order_id:
            raise OrderError(f"fill {fill.fill_id} is for {fill.client_order_id}, "
                             f"not {self.client_order_id}")
        if fill.quantity <= 0:
            raise OrderError(f"fill {fill.fill_id} has quantity {fill.quantity}")
        filled = self.filled_quantity + fill.quantity
        if filled > self.request.quantity:
            raise Overfill(self.client_order_id, self.request.quantity, self.filled_quantity,
                           fill.quantity)
        status = _FILLED if filled == self.request.quantity else _PARTIALLY_FILLED
        if status not in TRANSITIONS[self.status]:
            raise IllegalTransition(self.client_order_id, self.status, status)
        self.restore_fill(fill)
        self.status = status
        self.updated_ns = fill.ts_ns
        return OrderEvent(self.client_order_id, fill.ts_ns, status, filled)

    def restore_fill(self, fill: Fill) -> None:
        """Count a fill's quantity and price, and nothing else: for `apply_fill`, and for
        the journal rebuilding an order whose status its events already give."""
        filled = self.filled_quantity + fill.quantity
        previous_value = (self.average_price or Decimal(0)) * self.filled_quantity
        self.average_price = (previous_value + fill.price * fill.quantity) / filled
        self.filled_quantity = filled
        self.fill_ids.add(fill.fill_id)


def exchange_date(ts_ns: int) -> str:
    return _exchange_date_of_hour(ts_ns // HOUR_NS)


HOUR_NS = 3600 * NS_PER_SECOND


@functools.lru_cache(maxsize=4096)
def _exchange_date_of_hour(hour: int) -> str:
    # The exchange's zone moves by whole hours: the date is the same all through an
    # hour, so it is worked out once per hour (ids are issued by the thousand).
    return datetime.fromtimestamp(hour * 3600, tz=EXCHANGE_ZONE).strftime("%Y%m%d")


class ClientOrderIds:
    """Issues `<prefix>-<yyyymmdd>-<seq>`. `next_sequence` comes from the journal; the
    caller persists the sequence with the order's intent (see `core.journal`)."""

    def __init__(self, prefix: str, next_sequence: int) -> None:
        if not prefix or not prefix.replace("_", "").isalnum():
            raise ValueError(f"a client order id prefix is letters and digits, not {prefix!r}")
        self.prefix = prefix
        self.next_sequence = next_sequence

    def issue(self, ts_ns: int) -> tuple[str, int]:
        """A new id and its sequence number."""
        sequence = self.next_sequence
        self.next_sequence += 1
        return f"{self.prefix}-{exchange_date(ts_ns)}-{sequence:06d}", sequence
