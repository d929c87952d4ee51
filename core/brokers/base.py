"""The broker protocol: what the engine needs from a venue, and what a venue reports.

A broker receives orders only from the engine's trading desk, after the risk check and
after the order's intent is in the journal (DESIGN.md sections 2 and 4). It reports
back through one callback, synchronously on the engine's loop: `OrderUpdate` for a
change of state, `Fill` for an execution. A venue that restarts keeps its own state,
and answers `lookup(client_order_id)` so the engine can settle orders it held as in
flight without ever sending them again.

Brokers are found by entry point (`tapedeck.brokers`), so the engine never imports a
concrete one; `load_broker` builds one from the settings and a `BrokerContext`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from core.clock import ExchangeCalendar
from core.model import Fill, OrderRequest, OrderStatus, OrderUpdate
from core.orders import Order

if TYPE_CHECKING:
    from core.bus import Bus
    from core.config import Settings
    from core.market import MarketState
    from core.store import Store

BROKER_ENTRY_POINT_GROUP = "tapedeck.brokers"


class BrokerError(Exception):
    """A broker could not do what was asked; the message is for the trader."""


class BrokerInDoubt(BrokerError):
    """The venue did not answer whether it took the order (a timeout, a 5xx, a dropped
    connection). The order stays in flight: the broker settles it by looking it up by
    client order id, and reports what it finds; it is never sent again blindly."""


BrokerEvent = OrderUpdate | Fill
Report = Callable[[BrokerEvent], None]


@dataclass(frozen=True, slots=True)
class VenueOrderState:
    """What the venue knows of one order, for reconciliation after a restart."""

    client_order_id: str
    status: OrderStatus
    filled_quantity: Decimal
    venue_order_id: str = ""
    reason: str = ""
    fills: tuple[Fill, ...] = ()


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An order as the venue holds it, for reconciliation: one of ours (found by client
    order id or venue id) or one placed elsewhere, to be adopted as external."""

    client_order_id: str
    venue_order_id: str
    request: OrderRequest
    status: OrderStatus
    filled_quantity: Decimal
    created_ns: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class VenueSnapshot:
    """What a remote venue says at start: its open orders, the fills since a time (client
    order ids resolved, the venue's own for orders placed elsewhere), any other order
    those fills belong to, and its positions (symbol -> quantity, average price)."""

    open_orders: tuple[VenueOrder, ...]
    fills: tuple[Fill, ...]
    other_orders: tuple[VenueOrder, ...]
    positions: dict[str, tuple[Decimal, Decimal]]


@dataclass(frozen=True, slots=True)
class BrokerAccount:
    # None for a venue whose cash history predates the journal (a real account): the
    # desk then derives it so that its cash after the journal's fills is the venue's.
    starting_cash: Decimal | None
    cash: Decimal
    equity: Decimal
    buying_power: Decimal
    kind: str  # "cash" or "margin"


@dataclass(frozen=True, slots=True)
class BrokerContext:
    """What the engine lends a broker: the live market (read only), the bus it may
    subscribe to, the market clock (a function: a replay swaps its clock when it
    seeks) and calendar, and the profile's database (None in a backtest, which keeps
    no books)."""

    market: MarketState
    bus: Bus
    now_ns: Callable[[], int]
    calendar: ExchangeCalendar
    store: Store | None


class Broker(ABC):
    """A venue. `capabilities` names what it supports beyond market and limit orders:
    "stop", "stop_limit", "trailing_stop", "bracket", "replace"."""

    name: str
    capabilities: frozenset[str] = frozenset()

    @abstractmethod
    async def start(self, report: Report) -> None:
        """Load the venue's state and begin reporting through `report`."""

    @abstractmethod
    async def stop(self) -> None: ...

    def connection(self) -> str:
        """The link to the venue as the health record shows it ("connected", or what is
        wrong); an in-process venue is always connected."""
        return "connected"

    @abstractmethod
    async def submit(self, order: Order, legs: Sequence[Order] = ()) -> None:
        """Send an order (with its bracket legs, whose intents are journaled too).
        Raises BrokerError when it could not be sent; the venue's verdict (accepted,
        rejected) comes through `report`."""

    @abstractmethod
    async def cancel(self, client_order_id: str) -> None: ...

    @abstractmethod
    async def replace(self, client_order_id: str, new: Order) -> None:
        """Replace an open order by `new` (a new client order id, `new.replaces` set):
        the old one becomes replaced and the new one accepted, or the old one stays
        as it was and the new one is rejected."""

    @abstractmethod
    async def lookup(self, client_order_id: str) -> VenueOrderState | None:
        """The venue's record of an order, or None if it never received it."""

    @abstractmethod
    async def account(self) -> BrokerAccount: ...

    async def snapshot(self, known: Sequence[Order], since_ns: int) -> VenueSnapshot | None:
        """For a venue the engine does not own (a real broker): its open orders, fills
        since `since_ns`, and positions, for reconciliation at start. `known` are the
        journal's orders, with the venue ids they were given. None: nothing to reconcile
        (the paper venue keeps its books in the same database)."""
        return None

    def live_account(self) -> str:
        """"" for paper trading; for real money, the account as the trader knows it
        (the workstation asks before it starts trading it)."""
        return ""


class BrokerFactory(Protocol):
    @classmethod
    def from_settings(cls, settings: Settings, context: BrokerContext) -> Broker: ...


def available_brokers() -> dict[str, Any]:
    return {point.name: point for point in entry_points(group=BROKER_ENTRY_POINT_GROUP)}


def load_broker(name: str, settings: Settings, context: BrokerContext) -> Broker:
    brokers = available_brokers()
    if name not in brokers:
        known = ", ".join(sorted(brokers)) or "none"
        raise BrokerError(f"unknown broker {name!r} (installed: {known})")
    try:
        factory: BrokerFactory = brokers[name].load()
        return factory.from_settings(settings, context)
    except BrokerError:
        raise
    except Exception as exc:
        raise BrokerError(f"broker {name!r} failed to start: {exc}") from exc


def describe(order: Order) -> str:
    """'buy 100 AAPL limit 180.50' — an order as one phrase for messages."""
    request = order.request
    text = f"{request.side.value} {request.quantity.normalize():f} {request.symbol}"
    kind = request.order_type.value.replace("_", "-")
    if request.limit_price is not None and request.stop_price is not None:
        return f"{text} {kind} {request.stop_price}/{request.limit_price}"
    if request.limit_price is not None:
        return f"{text} {kind} {request.limit_price}"
    if request.stop_price is not None:
        return f"{text} {kind} {request.stop_price}"
    return f"{text} {kind}"
