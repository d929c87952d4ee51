"""The trading side of the fake Alpaca (see `tests.fakes.alpaca_server`): orders, positions,
the account and fill activities, rendered as Alpaca's Trading API v2 JSON.

Faithful to: the JSON field names and value formats alpaca-py's `Order`, `TradeAccount`,
`Position`, `Asset`, `Clock`, `TradeActivity` and `TradeUpdate` models parse (quantities
and prices as decimal strings, RFC 3339 UTC timestamps, uuid ids); the order lifecycle
(new -> partially_filled -> filled, canceled, expired, replaced, rejected; bracket legs
"held" until the parent fills, one leg's fill cancels the other); unique client_order_id;
replace as a new order (`replaces` / `replaced_by`); the error codes and messages.

Simplified: nothing executes by itself (the test calls `fill`); no buying-power, shorting
or price-band checks; a cash account (buying power = cash); `notional`, oco/oto and
multi-leg option orders are refused; a replacement starts unfilled for the remaining qty.

`TradingBook` is not thread-safe: the server holds its lock around every call.
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

JSON = dict[str, Any]

DEFAULT_ASSETS = ("AAPL", "MSFT", "JPM", "XOM", "CVX", "SPY")
EXCHANGES = {"AAPL": "NASDAQ", "MSFT": "NASDAQ", "SPY": "ARCA"}
ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit", "trailing_stop"})
TIME_IN_FORCE = frozenset({"day", "gtc", "ioc", "fok", "opg", "cls"})
TERMINAL = frozenset({"filled", "canceled", "expired", "replaced", "rejected", "done_for_day"})
FILLABLE = frozenset({"new", "partially_filled", "accepted", "pending_new"})
ZERO = Decimal(0)


class ApiError(Exception):
    """An Alpaca error answer: HTTP status plus the JSON body {"code", "message"}."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> JSON:
        return {"code": self.code, "message": self.message}


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(ts: datetime) -> str:
    """Alpaca's timestamp format: UTC with a Z, fractional seconds only when present."""
    ts = ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)
    if ts.microsecond:
        return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime:
    """An RFC 3339 timestamp or date (naive means UTC); 422 if it is not one."""
    if isinstance(value, datetime):
        ts = value
    else:
        try:
            ts = datetime.fromisoformat(str(value).strip().replace(" ", "+"))
        except ValueError:
            raise ApiError(422, 40010001, f"invalid timestamp {value!r}") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def dec(value: Any, name: str) -> Decimal | None:
    """A number sent as JSON number or string, or None; 422 if it is not a number."""
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ApiError(422, 40010001, f"invalid {name}") from None
    if not number.is_finite():
        raise ApiError(422, 40010001, f"invalid {name}")
    return number


def fmt(value: Decimal | None) -> str | None:
    """A decimal as Alpaca writes it: "10", "101.5", never an exponent."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def asset_id(symbol: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-alpaca/{symbol}"))


@dataclass
class Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal
    seq: int
    created_at: datetime
    order_class: str = "simple"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    hwm: Decimal | None = None
    status: str = "new"
    filled_qty: Decimal = ZERO
    filled_avg_price: Decimal | None = None
    updated_at: datetime | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    legs: list[str] = field(default_factory=list)
    parent_id: str | None = None
    extended_hours: bool = False
    reject_reason: str | None = None

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty


@dataclass
class Position:
    qty: Decimal
    avg_entry_price: Decimal


class TradingBook:
    """Orders, positions, cash and fill activities of one paper account."""

    def __init__(self, assets: set[str], cash: Decimal, emit: Callable[[JSON], None]) -> None:
        self.assets = assets
        self.cash = cash
        self.last_equity = cash
        self.market_open = True
        self.orders: dict[str, Order] = {}
        self.positions: dict[str, Position] = {}
        self.last_price: dict[str, Decimal] = {}
        self.activities: list[tuple[datetime, JSON]] = []
        self.reject_next: list[str] = []
        self.account_id = str(uuid.uuid4())
        self.created_at = utcnow()
        self._emit = emit
        self._seq = itertools.count()

    # ---------------------------------------------------------------- lookups
    def by_id(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise ApiError(404, 40410000, "order not found")
        return order

    def by_client_id(self, client_order_id: str) -> Order:
        for order in self.orders.values():
            if order.client_order_id == client_order_id:
                return order
        raise ApiError(404, 40410000, "order not found")

    def resolve(self, ref: str) -> Order:
        """An order by client_order_id, else by id (the test controls accept either)."""
        for order in self.orders.values():
            if ref in (order.client_order_id, order.id):
                return order
        raise KeyError(ref)

    def _check_unique(self, client_order_id: str) -> None:
        if any(o.client_order_id == client_order_id for o in self.orders.values()):
            raise ApiError(422, 40010001, "client_order_id must be unique")

    # --------------------------------------------------------------- rendering
    def order_json(self, order: Order, nested: bool = True) -> JSON:
        def ts(value: datetime | None) -> str | None:
            return rfc3339(value) if value else None

        legs = [self.order_json(self.orders[i], False) for i in order.legs] if nested else []
        return {
            "id": order.id, "client_order_id": order.client_order_id,
            "created_at": ts(order.created_at), "updated_at": ts(order.updated_at),
            "submitted_at": ts(order.created_at), "filled_at": ts(order.filled_at),
            "expired_at": ts(order.expired_at), "canceled_at": ts(order.canceled_at),
            "failed_at": ts(order.failed_at), "replaced_at": ts(order.replaced_at),
            "replaced_by": order.replaced_by, "replaces": order.replaces,
            "asset_id": asset_id(order.symbol), "symbol": order.symbol,
            "asset_class": "us_equity", "notional": None, "qty": fmt(order.qty),
            "filled_qty": fmt(order.filled_qty), "filled_avg_price": fmt(order.filled_avg_price),
            "order_class": order.order_class, "order_type": order.type, "type": order.type,
            "side": order.side, "position_intent": None, "time_in_force": order.time_in_force,
            "limit_price": fmt(order.limit_price), "stop_price": fmt(order.stop_price),
            "status": order.status, "extended_hours": order.extended_hours,
            "legs": legs or None, "trail_percent": fmt(order.trail_percent),
            "trail_price": fmt(order.trail_price), "hwm": fmt(order.hwm),
            "expires_at": None,
        }

    def _event(self, event: str, order: Order, **extra: Any) -> None:
        data: JSON = {"event": event, "execution_id": str(uuid.uuid4()),
                      "timestamp": rfc3339(utcnow()), "order": self.order_json(order)}
        data.update(extra)
        self._emit(data)

    # ------------------------------------------------------------------ orders
    def _new_order(self, symbol: str, side: str, type_: str, tif: str, qty: Decimal,
                   client_order_id: str | None, **fields: Any) -> Order:
        now = utcnow()
        order = Order(id=str(uuid.uuid4()), client_order_id=client_order_id or str(uuid.uuid4()),
                      symbol=symbol, side=side, type=type_, time_in_force=tif, qty=qty,
                      seq=next(self._seq), created_at=now, updated_at=now, **fields)
        self.orders[order.id] = order
        return order

    def submit(self, body: Any) -> JSON:
        """POST /v2/orders: validate, store as "new", push "new" (or "rejected")."""
        if not isinstance(body, dict):
            raise ApiError(400, 40010000, "request body format is invalid")
        symbol = str(body.get("symbol") or "").upper()
        if not symbol:
            raise ApiError(422, 40010001, "symbol is required")
        if symbol not in self.assets:
            raise ApiError(422, 40010001, f'asset "{symbol}" not found')
        if body.get("notional") is not None:
            raise ApiError(422, 40010001, "notional orders are not supported by the fake")
        qty = dec(body.get("qty"), "qty")
        if qty is None or qty <= 0:
            raise ApiError(422, 40010001, "qty must be > 0")
        side = body.get("side")
        if side not in ("buy", "sell"):
            raise ApiError(422, 40010001, "side must be buy or sell")
        type_ = str(body.get("type") or body.get("order_type") or "market")
        if type_ not in ORDER_TYPES:
            raise ApiError(422, 40010001, f"invalid order type {type_!r}")
        tif = str(body.get("time_in_force") or "")
        if tif not in TIME_IN_FORCE:
            raise ApiError(422, 40010001, "invalid time_in_force")
        prices = {name: dec(body.get(name), name)
                  for name in ("limit_price", "stop_price", "trail_price", "trail_percent")}
        self._check_prices(type_, prices)
        order_class = str(body.get("order_class") or "simple")
        if order_class not in ("simple", "bracket"):
            raise ApiError(422, 40010001, f"order_class {order_class!r} not supported by the fake")
        take_profit = stop_loss = None
        if order_class == "bracket":
            take_profit = dec((body.get("take_profit") or {}).get("limit_price"), "limit_price")
            stop_loss = dec((body.get("stop_loss") or {}).get("stop_price"), "stop_price")
            if take_profit is None or stop_loss is None:
                raise ApiError(422, 40010001, "bracket orders require take_profit.limit_price "
                                              "and stop_loss.stop_price")
        client_order_id = body.get("client_order_id")
        if client_order_id:
            self._check_unique(str(client_order_id))
        order = self._new_order(symbol, side, type_, tif, qty,
                                str(client_order_id) if client_order_id else None,
                                order_class=order_class,
                                extended_hours=bool(body.get("extended_hours")), **prices)
        if type_ == "trailing_stop":
            self._trail(order)
        if take_profit is not None and stop_loss is not None:
            sl_limit = dec((body.get("stop_loss") or {}).get("limit_price"), "limit_price")
            exit_side = "sell" if side == "buy" else "buy"
            legs = [
                self._new_order(symbol, exit_side, "limit", tif, qty, None, order_class="bracket",
                                limit_price=take_profit, status="held", parent_id=order.id),
                self._new_order(symbol, exit_side, "stop_limit" if sl_limit else "stop", tif, qty,
                                None, order_class="bracket", stop_price=stop_loss,
                                limit_price=sl_limit, status="held", parent_id=order.id),
            ]
            order.legs = [leg.id for leg in legs]
        if self.reject_next:
            answer = self.order_json(order)
            answer["status"] = "pending_new"
            order.reject_reason = self.reject_next.pop(0)
            for one in [order, *(self.orders[i] for i in order.legs)]:
                one.status, one.failed_at, one.updated_at = "rejected", utcnow(), utcnow()
            self._event("rejected", order)
            return answer
        self._event("new", order)
        return self.order_json(order)

    @staticmethod
    def _check_prices(type_: str, prices: Mapping[str, Decimal | None]) -> None:
        for name, value in prices.items():
            if value is not None and value <= 0:
                raise ApiError(422, 40010001, f"{name} must be > 0")
        if type_ in ("limit", "stop_limit") and prices["limit_price"] is None:
            raise ApiError(422, 40010001, "limit_price is required")
        if type_ in ("stop", "stop_limit") and prices["stop_price"] is None:
            raise ApiError(422, 40010001, "stop_price is required")
        if type_ == "trailing_stop" and (
                (prices["trail_price"] is None) == (prices["trail_percent"] is None)):
            raise ApiError(422, 40010001, "trailing_stop needs one of trail_price, trail_percent")

    def _trail(self, order: Order) -> None:
        """A trailing stop's high-water mark and stop price from the last trade, if any."""
        order.hwm = self.last_price.get(order.symbol)
        if order.hwm is None:
            return
        sign = -1 if order.side == "sell" else 1
        if order.trail_price is not None:
            order.stop_price = order.hwm + sign * order.trail_price
        elif order.trail_percent is not None:
            order.stop_price = order.hwm * (1 + sign * order.trail_percent / 100)

    def list_orders(self, query: Mapping[str, str]) -> list[JSON]:
        """GET /v2/orders: status open|closed|all, limit, after, until, direction, nested,
        symbols, side."""
        status = query.get("status", "open")
        nested = query.get("nested", "false").lower() == "true"
        symbols = {s.strip().upper() for s in query.get("symbols", "").split(",") if s.strip()}
        after = parse_time(query["after"]) if query.get("after") else None
        until = parse_time(query["until"]) if query.get("until") else None
        picked = []
        for order in self.orders.values():
            if nested and order.parent_id:
                continue
            if status == "open" and order.status in TERMINAL:
                continue
            if status == "closed" and order.status not in TERMINAL:
                continue
            if symbols and order.symbol not in symbols:
                continue
            if query.get("side") and order.side != query["side"]:
                continue
            if (after and order.created_at <= after) or (until and order.created_at >= until):
                continue
            picked.append(order)
        picked.sort(key=lambda o: o.seq, reverse=query.get("direction", "desc") == "desc")
        limit = max(1, min(int(query.get("limit") or 50), 500))
        return [self.order_json(o, nested) for o in picked[:limit]]

    def cancelable(self, order_id: str) -> Order:
        order = self.by_id(order_id)
        if order.status in TERMINAL:
            raise ApiError(422, 42210000, "order is not cancelable")
        return order

    def cancel(self, order_id: str) -> None:
        """Cancel an open order and its open legs, pushing "canceled" for each."""
        order = self.by_id(order_id)
        if order.status not in TERMINAL:
            self._close(order, "canceled")
        for leg_id in order.legs:
            if self.orders[leg_id].status not in TERMINAL:
                self._close(self.orders[leg_id], "canceled")

    def cancel_all(self) -> list[JSON]:
        """DELETE /v2/orders: cancel every open order (answered 207 with one entry each)."""
        answers = []
        for order in list(self.orders.values()):
            if order.status in TERMINAL or (order.parent_id and order.status == "held"):
                continue
            self.cancel(order.id)
            answers.append({"id": order.id, "status": 200, "body": self.order_json(order)})
        return answers

    def _close(self, order: Order, status: str) -> None:
        now = utcnow()
        order.status, order.updated_at = status, now
        if status == "canceled":
            order.canceled_at = now
        elif status == "expired":
            order.expired_at = now
        self._event(status, order)

    def expire(self, ref: str) -> None:
        order = self.resolve(ref)
        if order.status in TERMINAL:
            raise ValueError(f"order {ref} is {order.status}, it cannot expire")
        self._close(order, "expired")
        for leg_id in order.legs:
            if self.orders[leg_id].status not in TERMINAL:
                self._close(self.orders[leg_id], "canceled")

    def replace(self, order_id: str, body: Any) -> JSON:
        """PATCH /v2/orders/{id}: a new order replaces the old one ("replaced" then "new")."""
        old = self.by_id(order_id)
        if old.status in TERMINAL or old.status == "pending_cancel":
            raise ApiError(422, 42210000, "order is not replaceable")
        if not isinstance(body, dict):
            raise ApiError(400, 40010000, "request body format is invalid")
        client_order_id = body.get("client_order_id")
        if client_order_id:
            self._check_unique(str(client_order_id))
        qty = dec(body.get("qty"), "qty")
        qty = old.remaining if qty is None else qty
        if qty <= 0:
            raise ApiError(422, 40010001, "qty must be > 0")
        tif = str(body.get("time_in_force") or old.time_in_force)
        if tif not in TIME_IN_FORCE:
            raise ApiError(422, 40010001, "invalid time_in_force")
        limit = dec(body.get("limit_price"), "limit_price")
        stop = dec(body.get("stop_price"), "stop_price")
        limit = old.limit_price if limit is None else limit
        stop = old.stop_price if stop is None else stop
        trail = dec(body.get("trail"), "trail")
        now = utcnow()
        new = dataclasses.replace(
            old, id=str(uuid.uuid4()), client_order_id=str(client_order_id or uuid.uuid4()),
            qty=qty, time_in_force=tif, limit_price=limit, stop_price=stop,
            status="held" if old.status == "held" else "new", filled_qty=ZERO,
            filled_avg_price=None, seq=next(self._seq), created_at=now, updated_at=now,
            filled_at=None, replaced_at=None, replaced_by=None, replaces=old.id,
            legs=list(old.legs))
        if trail is not None:
            if old.trail_percent is not None:
                new.trail_percent = trail
            else:
                new.trail_price = trail
        self._check_prices(new.type, {"limit_price": new.limit_price,
                                      "stop_price": new.stop_price,
                                      "trail_price": new.trail_price,
                                      "trail_percent": new.trail_percent})
        if new.type == "trailing_stop":
            self._trail(new)
        self.orders[new.id] = new
        for leg_id in new.legs:
            self.orders[leg_id].parent_id = new.id
        if old.parent_id:
            parent = self.orders[old.parent_id]
            parent.legs = [new.id if i == old.id else i for i in parent.legs]
        old.status, old.replaced_by, old.replaced_at, old.updated_at = "replaced", new.id, now, now
        old.legs = []
        self._event("replaced", old)
        self._event("new", new)
        return self.order_json(new)

    def add_external(self, symbol: str, side: str, qty: float, type_: str,
                     limit_price: float | None, stop_price: float | None,
                     client_order_id: str | None) -> JSON:
        """An open order placed outside the app: stored, no event."""
        if client_order_id:
            self._check_unique(client_order_id)
        order = self._new_order(symbol.upper(), side, type_, "day" if type_ == "market" else "gtc",
                                Decimal(str(qty)), client_order_id,
                                limit_price=dec(limit_price, "limit_price"),
                                stop_price=dec(stop_price, "stop_price"))
        return self.order_json(order)

    # ------------------------------------------------------------------- fills
    def fill(self, ref: str, qty: float | None, price: float | None) -> str:
        """Execute all or part of an open order; returns the execution id."""
        order = self.resolve(ref)
        if order.status not in FILLABLE:
            raise ValueError(f"order {ref} is {order.status}, it cannot fill")
        size = order.remaining if qty is None else Decimal(str(qty))
        if not ZERO < size <= order.remaining:
            raise ValueError(f"fill qty {size} is not in (0, {order.remaining}]")
        px = (Decimal(str(price)) if price is not None
              else order.limit_price or self.last_price.get(order.symbol) or order.stop_price)
        if px is None:
            raise ValueError(f"no price to fill {ref} at: pass price=")
        now = utcnow()
        paid = (order.filled_avg_price or ZERO) * order.filled_qty + px * size
        order.filled_qty += size
        order.filled_avg_price = paid / order.filled_qty
        done = order.filled_qty == order.qty
        order.status, order.updated_at = ("filled" if done else "partially_filled"), now
        if done:
            order.filled_at = now
        position_qty = self._apply_fill(order.symbol, order.side, size, px)
        execution_id = str(uuid.uuid4())
        self.activities.append((now, {
            "id": f"{now.strftime('%Y%m%d%H%M%S%f')[:-3]}::{uuid.uuid4()}",
            "account_id": self.account_id, "activity_type": "FILL",
            "transaction_time": rfc3339(now), "type": "fill" if done else "partial_fill",
            "price": fmt(px), "qty": fmt(size), "side": order.side, "symbol": order.symbol,
            "leaves_qty": fmt(order.remaining), "order_id": order.id,
            "cum_qty": fmt(order.filled_qty), "order_status": order.status}))
        self._emit({"event": "fill" if done else "partial_fill", "execution_id": execution_id,
                    "timestamp": rfc3339(now), "price": fmt(px), "qty": fmt(size),
                    "position_qty": fmt(position_qty), "order": self.order_json(order)})
        if done:
            for leg_id in order.legs:  # a filled bracket parent releases its legs
                leg = self.orders[leg_id]
                if leg.status == "held":
                    leg.status, leg.updated_at = "new", now
                    self._event("new", leg)
            if order.parent_id:  # a filled leg cancels its siblings
                for leg_id in self.orders[order.parent_id].legs:
                    leg = self.orders[leg_id]
                    if leg.id != order.id and leg.status not in TERMINAL:
                        self._close(leg, "canceled")
        return execution_id

    def _apply_fill(self, symbol: str, side: str, size: Decimal, px: Decimal) -> Decimal:
        signed = size if side == "buy" else -size
        self.cash -= signed * px
        self.last_price[symbol] = px
        pos = self.positions.get(symbol)
        if pos is None:
            self.positions[symbol] = Position(signed, px)
            return signed
        new_qty = pos.qty + signed
        if (pos.qty > 0) == (signed > 0):
            pos.avg_entry_price = (pos.qty * pos.avg_entry_price + signed * px) / new_qty
        elif abs(signed) > abs(pos.qty):
            pos.avg_entry_price = px  # flipped through flat
        pos.qty = new_qty
        if new_qty == 0:
            del self.positions[symbol]
        return new_qty

    def set_position(self, symbol: str, qty: float, avg_entry_price: float) -> None:
        symbol = symbol.upper()
        if qty == 0:
            self.positions.pop(symbol, None)
            return
        self.positions[symbol] = Position(Decimal(str(qty)), Decimal(str(avg_entry_price)))
        self.last_price.setdefault(symbol, Decimal(str(avg_entry_price)))

    # -------------------------------------------------------- positions, account
    def position_json(self, symbol: str) -> JSON:
        pos = self.positions.get(symbol.upper())
        if pos is None:
            for sym, one in self.positions.items():
                if asset_id(sym) == symbol:
                    symbol, pos = sym, one
            if pos is None:
                raise ApiError(404, 40410000, "position does not exist")
        symbol = symbol.upper()
        price = self.last_price.get(symbol, pos.avg_entry_price)
        value, cost = pos.qty * price, pos.qty * pos.avg_entry_price
        pnl = value - cost
        pnl_pc = (pnl / abs(cost)).quantize(Decimal("1e-10")) if cost else ZERO
        closing = "sell" if pos.qty > 0 else "buy"
        held = sum((o.remaining for o in self.orders.values() if o.symbol == symbol
                    and o.side == closing and o.status not in TERMINAL), ZERO)
        available = max(pos.qty - held, ZERO) if pos.qty > 0 else min(pos.qty + held, ZERO)
        return {
            "asset_id": asset_id(symbol), "symbol": symbol,
            "exchange": EXCHANGES.get(symbol, "NYSE"), "asset_class": "us_equity",
            "asset_marginable": True, "avg_entry_price": fmt(pos.avg_entry_price),
            "qty": fmt(pos.qty), "side": "long" if pos.qty > 0 else "short",
            "market_value": fmt(value), "cost_basis": fmt(cost), "unrealized_pl": fmt(pnl),
            "unrealized_plpc": fmt(pnl_pc), "unrealized_intraday_pl": fmt(pnl),
            "unrealized_intraday_plpc": fmt(pnl_pc), "current_price": fmt(price),
            "lastday_price": fmt(price), "change_today": "0", "qty_available": fmt(available),
        }

    def positions_json(self) -> list[JSON]:
        return [self.position_json(symbol) for symbol in sorted(self.positions)]

    def close_position(self, symbol: str) -> JSON:
        """DELETE /v2/positions/{symbol}: a market order for the whole position."""
        position = self.position_json(symbol)
        qty = abs(Decimal(position["qty"]))
        side = "sell" if position["side"] == "long" else "buy"
        return self.submit({"symbol": position["symbol"], "qty": str(qty), "side": side,
                            "type": "market", "time_in_force": "day"})

    def account_json(self) -> JSON:
        long_value = sum((p.qty * self.last_price.get(s, p.avg_entry_price)
                          for s, p in self.positions.items() if p.qty > 0), ZERO)
        short_value = sum((p.qty * self.last_price.get(s, p.avg_entry_price)
                           for s, p in self.positions.items() if p.qty < 0), ZERO)
        equity = self.cash + long_value + short_value
        power = fmt(max(self.cash, ZERO))
        return {
            "id": self.account_id, "account_number": "PA3FAKE00001", "status": "ACTIVE",
            "crypto_status": "ACTIVE", "currency": "USD", "buying_power": power,
            "regt_buying_power": power, "daytrading_buying_power": "0",
            "non_marginable_buying_power": power, "options_buying_power": power,
            "cash": fmt(self.cash), "accrued_fees": "0", "pending_transfer_out": "0",
            "pending_transfer_in": "0", "portfolio_value": fmt(equity),
            "pattern_day_trader": False, "trading_blocked": False, "transfers_blocked": False,
            "account_blocked": False, "created_at": rfc3339(self.created_at),
            "trade_suspended_by_user": False, "multiplier": "1", "shorting_enabled": True,
            "equity": fmt(equity), "last_equity": fmt(self.last_equity),
            "long_market_value": fmt(long_value), "short_market_value": fmt(short_value),
            "initial_margin": "0", "maintenance_margin": "0", "last_maintenance_margin": "0",
            "sma": "0", "daytrade_count": 0, "options_approved_level": 0,
            "options_trading_level": 0,
        }

    def asset_json(self, symbol_or_id: str) -> JSON:
        symbol = symbol_or_id.upper()
        if symbol not in self.assets:
            symbol = next((s for s in self.assets if asset_id(s) == symbol_or_id), "")
            if not symbol:
                raise ApiError(404, 40410000, "asset not found")
        return {
            "id": asset_id(symbol), "class": "us_equity",
            "exchange": EXCHANGES.get(symbol, "NYSE"), "symbol": symbol,
            "name": f"{symbol} (fake)", "status": "active", "tradable": True,
            "marginable": True, "shortable": True, "easy_to_borrow": True,
            "fractionable": True, "maintenance_margin_requirement": 30, "attributes": [],
        }

    def clock_json(self) -> JSON:
        now = utcnow()
        return {"timestamp": rfc3339(now), "is_open": self.market_open,
                "next_open": rfc3339(now + timedelta(hours=18 if self.market_open else 1)),
                "next_close": rfc3339(now + timedelta(hours=2 if self.market_open else 8))}

    def fill_activities(self, query: Mapping[str, str]) -> list[JSON]:
        """GET /v2/account/activities/FILL: after, until, date, direction (default desc),
        page_size (<= 100), page_token (the id of the last activity of the previous page)."""
        after = parse_time(query["after"]) if query.get("after") else None
        until = parse_time(query["until"]) if query.get("until") else None
        day = query.get("date", "")[:10]
        rows = [row for ts, row in self.activities
                if (after is None or ts > after) and (until is None or ts < until)
                and (not day or rfc3339(ts).startswith(day))]
        if query.get("direction", "desc") == "desc":
            rows.reverse()
        token = query.get("page_token")
        if token:
            ids = [row["id"] for row in rows]
            rows = rows[ids.index(token) + 1:] if token in ids else []
        size = max(1, min(int(query.get("page_size") or 100), 100))
        return rows[:size]
