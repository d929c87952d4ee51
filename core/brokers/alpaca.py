"""The Alpaca broker (paper or live), through alpaca-py.

Orders go out with our client order id, so Alpaca itself refuses a second order under
the same id (a 422): that makes every send safe to repeat, and the rules here make sure
nothing is repeated blindly anyway:
- a request that got no answer, or a 5xx, is in doubt: the order is looked up by client
  order id, and only an order Alpaca has never seen is sent again;
- a 422 "client_order_id must be unique" is settled the same way (the order is there);
- when even the lookup gets no answer, the order stays in flight (pending_new on the
  blotter) and a background task keeps asking, with backoff, until Alpaca answers.

What happens to orders arrives on the trade-updates stream, which this module runs
itself (alpaca-py's `TradingStream` handshake, our own loop): exponential backoff with
jitter between reconnects, and after every reconnect a catch-up (fills since the last
one, the open orders' states), since updates sent while it was down are not replayed.

At start the desk asks for a `snapshot` (open orders, fills since the last recorded,
positions) and reconciles the journal with it (core/reconcile.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.requests import GetOrdersRequest
from alpaca.trading.stream import TradingStream
from pydantic import ValidationError

from core.brokers import alpaca_map as amap
from core.brokers.alpaca_rest import (
    AlpacaDuplicate,
    AlpacaError,
    AlpacaInDoubt,
    AlpacaNotFound,
    AlpacaRest,
)
from core.brokers.base import (
    Broker,
    BrokerAccount,
    BrokerContext,
    BrokerError,
    BrokerInDoubt,
    Report,
    VenueOrder,
    VenueOrderState,
    VenueSnapshot,
)
from core.config_venues import AlpacaKeys, MissingKeys, alpaca_keys
from core.feeds import Backoff
from core.model import (
    NS_PER_SECOND,
    TERMINAL_STATUSES,
    Fill,
    OrderStatus,
    OrderType,
    OrderUpdate,
)
from core.orders import Order

if TYPE_CHECKING:
    from core.config import Settings

log = logging.getLogger(__name__)

S = OrderStatus
SEND_ATTEMPTS = 3
ACTIVITY_PAGE = 100
ORPHAN_WAIT_S = 5.0
FILL_LOOKBACK_NS = 3600 * NS_PER_SECOND  # activities are read from an hour before
STREAM_BACKOFF = Backoff(1.0, 30.0)
SETTLE_BACKOFF = Backoff(1.0, 60.0)
RECV_TIMEOUT_S = 5.0


class AlpacaBroker(Broker):
    name = "alpaca"
    capabilities = frozenset({"stop", "stop_limit", "trailing_stop", "bracket", "replace"})

    def __init__(self, settings: Settings, context: BrokerContext, keys: AlpacaKeys,
                 rng: random.Random | None = None) -> None:
        self.settings = settings.alpaca
        self.context = context
        self.keys = keys
        self.rng = rng or random.Random()
        self.rest = AlpacaRest(self.settings, keys, self.rng)
        self._report: Report | None = None
        self._venue_ids: dict[str, str] = {}  # our client order id -> Alpaca's order id
        self._client_ids: dict[str, str] = {}  # Alpaca's order id -> our client order id
        # Orders of ours still open as far as we have heard: what a catch-up asks about.
        self._open: set[str] = set()
        self._orphans: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stream_task: asyncio.Task[None] | None = None
        self._link = "connecting"
        self._stream_connects = 0
        self._last_fill_ns = 0
        self.account_number = ""
        self.catch_ups = 0

    @classmethod
    def from_settings(cls, settings: Settings, context: BrokerContext) -> AlpacaBroker:
        try:
            keys = alpaca_keys(settings.alpaca)
        except MissingKeys as err:
            raise BrokerError(str(err)) from None
        return cls(settings, context, keys)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, report: Report) -> None:
        self._report = report
        try:
            account = await self.rest.call(lambda client: client.get_account())
        except AlpacaError as err:
            raise BrokerError(f"cannot start trading on Alpaca "
                              f"({self.settings.trading_url()}): {err}") from None
        self.account_number = str(getattr(account, "account_number", "") or "")
        self._stream_task = asyncio.create_task(self._run_stream(), name="alpaca-trade-updates")

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._stream_task] if self._stream_task else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        self._stream_task = None
        self._report = None

    def connection(self) -> str:
        return self._link

    def live_account(self) -> str:
        return f"Alpaca LIVE account {self.account_number}" if self.settings.live else ""

    # ------------------------------------------------------------------ orders

    async def submit(self, order: Order, legs: Sequence[Order] = ()) -> None:
        request = amap.submit_request(order, legs)
        coid = order.client_order_id
        placed: AlpacaOrder | None = None
        for _ in range(SEND_ATTEMPTS):
            try:
                placed = await self.rest.call(lambda client: client.submit_order(request))
                break
            except AlpacaDuplicate:
                placed = await self._find_or_doubt(order, legs)
                if placed is None:
                    raise BrokerError("Alpaca says the client order id is taken, yet has no "
                                      "order under it") from None
                break
            except AlpacaInDoubt as err:
                log.warning("%s: %s; looking it up before anything is sent again", coid, err)
                placed = await self._find_or_doubt(order, legs)
                if placed is not None:
                    break
                # Alpaca has never seen it: sending again is safe (and a copy that did
                # arrive meanwhile would be refused as a duplicate, and found).
            except AlpacaError as err:
                raise BrokerError(str(err)) from None
        if placed is None:
            self._settle_later(order, legs)
            raise BrokerInDoubt(f"Alpaca did not confirm {coid} after {SEND_ATTEMPTS} tries; "
                                "it stays in flight until a lookup settles it")
        self._placed(order, legs, placed)

    async def _find_or_doubt(self, order: Order, legs: Sequence[Order]) -> AlpacaOrder | None:
        """The order at Alpaca, None if Alpaca has never seen it; BrokerInDoubt (with a
        settling task started) when Alpaca cannot even be asked."""
        try:
            return await self._fetch(order.client_order_id)
        except AlpacaError as err:
            self._settle_later(order, legs)
            raise BrokerInDoubt(f"{order.client_order_id}: {err}; it stays in flight until "
                                "Alpaca answers a lookup") from None

    def _placed(self, order: Order, legs: Sequence[Order], placed: AlpacaOrder) -> None:
        """Alpaca has the order: learn its ids (and its legs') and report its state."""
        self._learn(order.client_order_id, str(placed.id))
        self._open.update(sent.client_order_id for sent in (order, *legs))
        venue_legs = amap.leg_orders(placed)
        for leg in legs:
            kind = leg.request.order_type
            for venue_leg in venue_legs:
                venue_kind = amap.enum_value(venue_leg.order_type or venue_leg.type)
                if (venue_kind == "limit") == (kind == OrderType.LIMIT):
                    self._learn(leg.client_order_id, str(venue_leg.id))
                    venue_legs.remove(venue_leg)
                    break
        status = amap.STATUS.get(amap.enum_value(placed.status)) or S.ACCEPTED
        now = self.context.now_ns()
        self._emit(OrderUpdate(order.client_order_id, status, now, "", str(placed.id)))
        for leg in legs:
            if leg.client_order_id in self._venue_ids:
                self._emit(OrderUpdate(leg.client_order_id, S.ACCEPTED, now, "",
                                       self._venue_ids[leg.client_order_id]))

    async def cancel(self, client_order_id: str) -> None:
        venue_id = await self._venue_id(client_order_id)
        for _ in range(2):
            try:
                await self.rest.call(lambda client: client.cancel_order_by_id(venue_id))
                return  # "canceled" comes on the stream
            except AlpacaInDoubt:
                found = await self._fetch_quietly(client_order_id)
                if found is not None and amap.enum_value(found.status) in ("canceled",
                                                                           "pending_cancel"):
                    self._report_state(found, client_order_id)
                    return
            except AlpacaNotFound:
                raise BrokerError("Alpaca has no such order") from None
            except AlpacaError as err:
                found = await self._fetch_quietly(client_order_id)
                if found is not None:
                    self._report_state(found, client_order_id)
                raise BrokerError(str(err)) from None
        raise BrokerError("Alpaca did not confirm the cancel; its answer will come on the "
                          "trade-updates stream")

    async def replace(self, client_order_id: str, new: Order) -> None:
        venue_id = await self._venue_id(client_order_id)
        request = amap.replace_request(new)
        for _ in range(2):
            try:
                placed = await self.rest.call(
                    lambda client: client.replace_order_by_id(venue_id, request))
            except (AlpacaInDoubt, AlpacaDuplicate):
                placed = await self._fetch_quietly(new.client_order_id)
                if placed is None:
                    continue
            except AlpacaError as err:
                raise BrokerError(str(err)) from None
            self._learn(new.client_order_id, str(placed.id))
            self._open.add(new.client_order_id)
            now = self.context.now_ns()
            self._emit(OrderUpdate(client_order_id, S.REPLACED, now, "", venue_id))
            self._emit(OrderUpdate(new.client_order_id, S.ACCEPTED, now, "", str(placed.id)))
            return
        raise BrokerError("Alpaca did not confirm the change")

    async def lookup(self, client_order_id: str) -> VenueOrderState | None:
        try:
            found = await self._fetch(client_order_id)
        except AlpacaError as err:
            raise BrokerError(str(err)) from None
        if found is None:
            return None
        filled = amap.decimal(found.filled_qty)
        status = amap.STATUS.get(amap.enum_value(found.status))
        if status is None:
            status = S.ACCEPTED if filled == 0 else S.PARTIALLY_FILLED
        return VenueOrderState(client_order_id, status, filled, str(found.id))

    async def account(self) -> BrokerAccount:
        try:
            account = await self.rest.call(lambda client: client.get_account())
        except AlpacaError as err:
            raise BrokerError(str(err)) from None
        multiplier = amap.decimal(getattr(account, "multiplier", 1))
        return BrokerAccount(None, amap.decimal(account.cash), amap.decimal(account.equity),
                             amap.decimal(account.buying_power),
                             "margin" if multiplier > 1 else "cash")

    # ------------------------------------------------------------------ reconciliation

    async def snapshot(self, known: Sequence[Order], since_ns: int) -> VenueSnapshot:
        for order in known:
            if order.venue_order_id:
                self._learn(order.client_order_id, order.venue_order_id)
            if order.is_open:
                self._open.add(order.client_order_id)
        ours = {order.client_order_id for order in known}
        try:
            open_orders = await self.rest.call(lambda client: client.get_orders(
                GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500, nested=True)))
            fills, others = await self._fills_since(since_ns, ours)
            positions = await self.rest.call(lambda client: client.get_all_positions())
        except AlpacaError as err:
            raise BrokerError(f"cannot reconcile with Alpaca: {err}") from None
        venue_open: list[VenueOrder] = []
        for placed in _flatten(open_orders):
            if (venue := amap.venue_order(placed, self._client_id(placed, ours))) is not None:
                venue_open.append(venue)
        held: dict[str, tuple[Decimal, Decimal]] = {}
        for position in positions:
            quantity = abs(amap.decimal(position.qty))
            if amap.enum_value(position.side) == "short":
                quantity = -quantity
            held[str(position.symbol)] = (quantity, amap.decimal(position.avg_entry_price))
        return VenueSnapshot(tuple(venue_open), tuple(fills), tuple(others), held)

    async def _fills_since(self, since_ns: int, ours: set[str]
                           ) -> tuple[list[Fill], list[VenueOrder]]:
        """FILL activities from `since_ns` on, as fills; the orders among them we did
        not know, fetched (to be adopted)."""
        fills: list[Fill] = []
        others: dict[str, VenueOrder] = {}
        params: dict[str, Any] = {"after": amap.rfc3339(max(0, since_ns - FILL_LOOKBACK_NS)),
                                  "direction": "asc", "page_size": ACTIVITY_PAGE}
        while True:
            page = await self.rest.call(
                lambda client: client.get("/account/activities/FILL", dict(params)))
            if not isinstance(page, list) or not page:
                break
            for activity in page:
                if not isinstance(activity, dict):
                    continue
                venue_id = str(activity.get("order_id") or "")
                coid = self._client_ids.get(venue_id)
                if coid is None and venue_id:
                    if venue_id not in others:
                        fetched = await self._fetch_by_venue_id(venue_id)
                        if fetched is not None:
                            coid = self._client_id(fetched, ours)
                            if coid not in ours:
                                adopted = amap.venue_order(fetched, coid)
                                if adopted is not None:
                                    others[venue_id] = adopted
                    else:
                        coid = others[venue_id].client_order_id
                if coid is None:
                    continue
                fill = amap.activity_fill(activity, coid)
                if fill is not None:
                    fills.append(fill)
            if len(page) < ACTIVITY_PAGE:
                break
            params["page_token"] = str(page[-1].get("id", ""))
        return fills, list(others.values())

    def _client_id(self, placed: AlpacaOrder, ours: set[str]) -> str:
        """Our id for an Alpaca order: by its venue id, by its client order id when that
        is one of ours, else Alpaca's client order id (an order placed elsewhere)."""
        venue_id = str(placed.id)
        if venue_id in self._client_ids:
            return self._client_ids[venue_id]
        coid = placed.client_order_id
        if coid in ours:
            self._learn(coid, venue_id)
        return coid

    # ------------------------------------------------------------------ the stream

    async def _run_stream(self) -> None:
        attempt = 0
        while True:
            stream = TradingStream(self.keys.key_id, self.keys.secret_key,
                                   paper=not self.settings.live,
                                   url_override=self.settings.trading_stream_url())
            stream.subscribe_trade_updates(_ignore)  # so its handshake asks to listen
            started = time.monotonic()
            try:
                # alpaca-py's handshake (connect, authenticate, listen); the loop is
                # ours: its own reconnects, and a catch-up after each.
                await asyncio.wait_for(stream._start_ws(),  # type: ignore[no-untyped-call]
                                       self.settings.request_timeout_s)
                socket: Any = stream._ws
                self._link = "connected"
                self._stream_connects += 1
                if self._stream_connects > 1:
                    self._spawn(self._catch_up(), "alpaca-catch-up")
                while True:
                    try:
                        raw = await asyncio.wait_for(socket.recv(), RECV_TIMEOUT_S)
                    except TimeoutError:
                        continue  # quiet is normal; the socket's pings watch the link
                    self._on_message(raw)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await stream.close()
                raise
            except Exception as exc:
                reason = _stream_reason(exc)
            with contextlib.suppress(Exception):
                await stream.close()
            if time.monotonic() - started > 60:
                attempt = 0
            delay = STREAM_BACKOFF.delay(attempt, self.rng)
            attempt += 1
            self._link = f"trade updates down ({reason}); retrying in {delay:.0f} s"
            log.warning("Alpaca trade updates: %s; reconnecting in %.1f s", reason, delay)
            await asyncio.sleep(delay)

    def _on_message(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("Alpaca trade updates: a message that is not JSON was skipped")
            return
        if isinstance(message, dict) and message.get("stream") == "trade_updates":
            data = message.get("data")
            if isinstance(data, dict):
                self._on_trade_update(data)

    def _on_trade_update(self, data: dict[str, Any]) -> None:
        try:
            placed = AlpacaOrder(**data["order"])
        except (KeyError, TypeError, ValidationError) as err:
            log.warning("Alpaca trade update skipped: its order cannot be read (%s)", err)
            return
        venue_id = str(placed.id)
        coid = self._client_ids.get(venue_id)
        if coid is None:
            if placed.client_order_id in self._venue_ids:
                coid = placed.client_order_id
                self._learn(coid, venue_id)
            elif amap.enum_value(placed.order_class) in ("bracket", "oto", "oco"):
                # A bracket leg whose id the submit's answer has not told us yet.
                self._orphans.setdefault(venue_id, []).append((time.monotonic(), data))
                self._spawn(self._release_orphan(venue_id), "alpaca-orphan")
                return
            else:
                coid = placed.client_order_id
        self._apply_update(data, placed, coid)

    def _apply_update(self, data: dict[str, Any], placed: AlpacaOrder, coid: str) -> None:
        event = str(data.get("event", ""))
        ts_ns = amap.parse_time(str(data.get("timestamp") or "")) or self.context.now_ns()
        if event in ("fill", "partial_fill"):
            fill = amap.update_fill(data, placed, coid, ts_ns)
            if fill is not None:
                self._last_fill_ns = max(self._last_fill_ns, fill.ts_ns)
                self._emit(fill)
            if amap.enum_value(placed.status) == "filled":
                self._open.discard(coid)
            return
        status = amap.EVENT_STATUS.get(event)
        if status is None:
            return
        reason = ""
        if event == "rejected":
            reason = "rejected by Alpaca"
        elif event in ("order_cancel_rejected", "order_replace_rejected"):
            reason = event.replace("order_", "").replace("_", " ") + " by Alpaca"
            if amap.decimal(placed.filled_qty) > 0:
                status = S.PARTIALLY_FILLED
        self._emit(OrderUpdate(coid, status, ts_ns, reason, str(placed.id)))

    async def _release_orphan(self, venue_id: str) -> None:
        await asyncio.sleep(ORPHAN_WAIT_S)
        for _, data in self._orphans.pop(venue_id, []):
            self._on_trade_update_known(data)

    def _on_trade_update_known(self, data: dict[str, Any]) -> None:
        placed = AlpacaOrder(**data["order"])
        coid = self._client_ids.get(str(placed.id), placed.client_order_id)
        self._apply_update(data, placed, coid)

    async def _catch_up(self) -> None:
        """After a reconnect: what the stream said while it was down."""
        self.catch_ups += 1
        try:
            fills, _ = await self._fills_since(self._last_fill_ns or self.context.now_ns(),
                                               set(self._venue_ids))
            for fill in fills:
                self._emit(fill)
            for coid in sorted(self._open):
                venue_id = self._venue_ids.get(coid)
                found = None if venue_id is None else await self._fetch_by_venue_id(venue_id)
                if found is not None and amap.enum_value(found.status) in (
                        "canceled", "expired", "replaced", "rejected"):
                    self._report_state(found, coid)
        except AlpacaError as err:
            log.warning("Alpaca catch-up after a reconnect failed: %s", err)

    # ------------------------------------------------------------------ helpers

    def _emit(self, event: OrderUpdate | Fill) -> None:
        if isinstance(event, OrderUpdate) and event.status in TERMINAL_STATUSES:
            self._open.discard(event.client_order_id)
        if self._report is not None:
            self._report(event)

    def _report_state(self, found: AlpacaOrder, coid: str) -> None:
        status = amap.STATUS.get(amap.enum_value(found.status))
        if status is not None:
            self._emit(OrderUpdate(coid, status, self.context.now_ns(), "", str(found.id)))

    def _learn(self, coid: str, venue_id: str) -> None:
        self._venue_ids[coid] = venue_id
        self._client_ids[venue_id] = coid
        for _, data in self._orphans.pop(venue_id, []):
            self._on_trade_update_known(data)

    async def _venue_id(self, coid: str) -> str:
        if coid in self._venue_ids:
            return self._venue_ids[coid]
        found = await self._fetch_quietly(coid)
        if found is None:
            raise BrokerError(f"Alpaca has no order {coid}")
        self._learn(coid, str(found.id))
        return str(found.id)

    async def _fetch(self, coid: str) -> AlpacaOrder | None:
        """The order by our id (by Alpaca's id once known: a bracket leg carries an id
        Alpaca chose); None when Alpaca has no such order. Raises AlpacaError."""
        try:
            if coid in self._venue_ids:
                venue_id = self._venue_ids[coid]
                return await self.rest.call(lambda client: client.get_order_by_id(venue_id))
            return await self.rest.call(lambda client: client.get_order_by_client_id(coid))
        except AlpacaNotFound:
            return None

    async def _fetch_quietly(self, coid: str) -> AlpacaOrder | None:
        try:
            return await self._fetch(coid)
        except AlpacaError:
            return None

    async def _fetch_by_venue_id(self, venue_id: str) -> AlpacaOrder | None:
        try:
            return await self.rest.call(lambda client: client.get_order_by_id(venue_id))
        except AlpacaNotFound:
            return None

    def _settle_later(self, order: Order, legs: Sequence[Order]) -> None:
        self._spawn(self._settle(order, legs), f"alpaca-settle-{order.client_order_id}")

    async def _settle(self, order: Order, legs: Sequence[Order]) -> None:
        """Keep asking about an order in doubt until Alpaca answers: found, it is
        reported as Alpaca has it; never received, it is rejected (not resent: the
        market has moved on since the trader sent it)."""
        attempt = 0
        while True:
            await asyncio.sleep(SETTLE_BACKOFF.delay(attempt, self.rng))
            attempt += 1
            try:
                found = await self._fetch(order.client_order_id)
            except AlpacaError:
                continue
            if found is None:
                now = self.context.now_ns()
                for sent in (order, *legs):
                    self._emit(OrderUpdate(sent.client_order_id, S.REJECTED, now,
                                           "never reached Alpaca (no answer when it was "
                                           "sent); not sent again"))
            else:
                self._placed(order, legs, found)
            return

    def _spawn(self, work: Any, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _flatten(orders: Any) -> list[AlpacaOrder]:
    result: list[AlpacaOrder] = []
    for order in orders or []:
        result.append(order)
        result.extend(_flatten(order.legs))
    return result


def _stream_reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, TimeoutError):
        return "no answer to the handshake"
    if "authenticate" in text:
        return "Alpaca refused the API keys"
    if isinstance(error, OSError):
        return f"cannot connect ({text[:80]})"
    return text[:120]


async def _ignore(_update: Any) -> None:
    """The handler alpaca-py wants before it asks to listen; messages are read here."""

