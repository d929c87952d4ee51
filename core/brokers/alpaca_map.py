"""Translation between our orders and Alpaca's: requests out, states, fills and orders
in. Pure functions over alpaca-py's models and Alpaca's raw JSON; no I/O.

Fill ids: Alpaca reports an execution twice over, once on the trade-updates stream
(with an `execution_id`) and once as an account activity (with an activity id), and the
two ids differ. Both carry the order's id and its cumulative filled quantity after the
execution, which is unique per execution of an order, so a fill's id here is
`<alpaca order id>:<cumulative quantity>`: the same execution is one fill whichever way
it arrives, before or after a restart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from alpaca.trading.enums import OrderClass
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.enums import TimeInForce as AlpacaTif
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)
from alpaca.trading.requests import OrderRequest as AlpacaRequest

from core.brokers.base import VenueOrder
from core.model import (
    NS_PER_SECOND,
    Fill,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from core.orders import Order
from core.reconcile import EXTERNAL

S = OrderStatus
VENUE = "alpaca"
ZERO = Decimal(0)

# Alpaca's order states onto ours. None: no change of ours follows from it (fills move
# an order to partially filled or filled; "held" is a bracket leg waiting for its
# entry, accepted as far as we are concerned; done_for_day can still fill tomorrow).
STATUS: dict[str, OrderStatus | None] = {
    "new": S.ACCEPTED, "accepted": S.ACCEPTED, "pending_new": S.ACCEPTED,
    "accepted_for_bidding": S.ACCEPTED, "held": S.ACCEPTED, "calculated": S.ACCEPTED,
    "partially_filled": None, "filled": None, "done_for_day": None, "stopped": None,
    "suspended": None,
    "pending_cancel": S.PENDING_CANCEL, "pending_replace": S.PENDING_REPLACE,
    "canceled": S.CANCELED, "expired": S.EXPIRED, "replaced": S.REPLACED,
    "rejected": S.REJECTED,
}
# Trade-update events that are a change of state (fills are handled apart).
EVENT_STATUS: dict[str, OrderStatus] = {
    "new": S.ACCEPTED, "accepted": S.ACCEPTED, "pending_new": S.ACCEPTED,
    "canceled": S.CANCELED, "expired": S.EXPIRED, "replaced": S.REPLACED,
    "rejected": S.REJECTED, "pending_cancel": S.PENDING_CANCEL,
    "pending_replace": S.PENDING_REPLACE, "order_cancel_rejected": S.ACCEPTED,
    "order_replace_rejected": S.ACCEPTED,
}
_TIF = {TimeInForce.DAY: AlpacaTif.DAY, TimeInForce.GTC: AlpacaTif.GTC,
        TimeInForce.IOC: AlpacaTif.IOC}


def submit_request(order: Order, legs: Sequence[Order] = ()) -> AlpacaRequest:
    """The alpaca-py request for an order (a bracket's legs ride on its entry)."""
    request = order.request
    common: dict[str, Any] = {
        "symbol": request.symbol,
        "qty": _quantity(request.quantity),
        "side": AlpacaSide.BUY if request.side == Side.BUY else AlpacaSide.SELL,
        "time_in_force": _TIF[request.time_in_force],
        "client_order_id": order.client_order_id,
    }
    if legs:
        common["order_class"] = OrderClass.BRACKET
        if request.take_profit is not None:
            common["take_profit"] = TakeProfitRequest(limit_price=float(request.take_profit))
        if request.stop_loss is not None:
            common["stop_loss"] = StopLossRequest(stop_price=float(request.stop_loss))
        if request.take_profit is None or request.stop_loss is None:
            # Alpaca's one-sided bracket is an OTO order.
            common["order_class"] = OrderClass.OTO
    kind = request.order_type
    if kind == OrderType.MARKET:
        return MarketOrderRequest(**common)
    if kind == OrderType.LIMIT:
        return LimitOrderRequest(limit_price=_price(request.limit_price), **common)
    if kind == OrderType.STOP:
        return StopOrderRequest(stop_price=_price(request.stop_price), **common)
    if kind == OrderType.STOP_LIMIT:
        return StopLimitOrderRequest(stop_price=_price(request.stop_price),
                                     limit_price=_price(request.limit_price), **common)
    if request.trail_percent is not None:
        return TrailingStopOrderRequest(trail_percent=float(request.trail_percent), **common)
    return TrailingStopOrderRequest(trail_price=_price(request.trail_amount), **common)


def replace_request(new: Order) -> ReplaceOrderRequest:
    request = new.request
    fields: dict[str, Any] = {
        "qty": _quantity(request.quantity),
        "time_in_force": _TIF[request.time_in_force],
        "client_order_id": new.client_order_id,
    }
    if request.limit_price is not None:
        fields["limit_price"] = float(request.limit_price)
    if request.stop_price is not None:
        fields["stop_price"] = float(request.stop_price)
    if request.trail_amount is not None:
        fields["trail"] = float(request.trail_amount)
    elif request.trail_percent is not None:
        fields["trail"] = float(request.trail_percent)
    return ReplaceOrderRequest(**{k: v for k, v in fields.items() if v is not None})


def _quantity(value: Decimal) -> int | float:
    return int(value) if value % 1 == 0 else float(value)


def _price(value: Decimal | None) -> float:
    if value is None:
        raise ValueError("the order lacks a price its type needs")
    return float(value)


def ns(moment: datetime | None) -> int:
    if moment is None:
        return 0
    return int(moment.timestamp()) * NS_PER_SECOND + moment.microsecond * 1000


def decimal(value: Any) -> Decimal:
    if value is None or value == "":
        return ZERO
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return ZERO


def enum_value(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def leg_orders(order: AlpacaOrder) -> list[AlpacaOrder]:
    return list(order.legs or [])


def request_of(order: AlpacaOrder, strategy: str = EXTERNAL) -> OrderRequest | None:
    """Our request for an Alpaca order (for adopting one placed elsewhere); None for one
    we cannot represent (a notional order, an option)."""
    if order.qty is None or not order.symbol:
        return None
    kind = enum_value(order.order_type or order.type)
    try:
        order_type = OrderType(kind)
    except ValueError:
        return None
    tif = enum_value(order.time_in_force)
    time_in_force = {"gtc": TimeInForce.GTC, "ioc": TimeInForce.IOC,
                     "fok": TimeInForce.IOC}.get(tif, TimeInForce.DAY)
    trail_price = decimal(order.trail_price) or None
    trail_percent = decimal(order.trail_percent) or None
    return OrderRequest(
        symbol=order.symbol,
        side=Side.BUY if enum_value(order.side) == "buy" else Side.SELL,
        quantity=decimal(order.qty),
        order_type=order_type,
        time_in_force=time_in_force,
        limit_price=decimal(order.limit_price) or None,
        stop_price=decimal(order.stop_price) or None,
        trail_amount=trail_price if trail_percent is None else None,
        trail_percent=trail_percent,
        strategy=strategy,
    )


def venue_order(order: AlpacaOrder, client_order_id: str) -> VenueOrder | None:
    request = request_of(order)
    if request is None:
        return None
    status = STATUS.get(enum_value(order.status)) or S.ACCEPTED
    return VenueOrder(client_order_id, str(order.id), request, status,
                      decimal(order.filled_qty), ns(order.created_at))


def fill_id(venue_order_id: str, cumulative: Decimal) -> str:
    return f"{venue_order_id}:{cumulative.normalize():f}"


def update_fill(data: Mapping[str, Any], order: AlpacaOrder, client_order_id: str,
                ts_ns: int) -> Fill | None:
    """The fill a `fill`/`partial_fill` trade update reports (raw JSON `data`: its price
    and qty are strings, kept exact)."""
    quantity = decimal(data.get("qty"))
    price = decimal(data.get("price"))
    if quantity <= 0 or price <= 0:
        return None
    cumulative = decimal(order.filled_qty) or quantity
    return Fill(fill_id(str(order.id), cumulative), client_order_id, order.symbol or "",
                Side.BUY if enum_value(order.side) == "buy" else Side.SELL, quantity, price,
                ZERO, ts_ns, VENUE)


def activity_fill(activity: Mapping[str, Any], client_order_id: str) -> Fill | None:
    """A FILL account activity as a fill (None for one that cannot be read)."""
    quantity = decimal(activity.get("qty"))
    price = decimal(activity.get("price"))
    venue_order_id = str(activity.get("order_id") or "")
    cumulative = decimal(activity.get("cum_qty"))
    if quantity <= 0 or price <= 0 or not venue_order_id or cumulative <= 0:
        return None
    moment = parse_time(str(activity.get("transaction_time") or ""))
    side = Side.BUY if str(activity.get("side", "")).lower() == "buy" else Side.SELL
    return Fill(fill_id(venue_order_id, cumulative), client_order_id,
                str(activity.get("symbol") or ""), side, quantity, price, ZERO, moment, VENUE)


def parse_time(text: str) -> int:
    if not text:
        return 0
    try:
        return ns(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return 0


def rfc3339(ts_ns: int) -> str:
    seconds, rest = divmod(ts_ns, NS_PER_SECOND)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
