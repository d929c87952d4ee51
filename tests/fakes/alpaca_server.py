"""A loopback fake of Alpaca that the real alpaca-py clients can be pointed at.

    with FakeAlpaca() as fake:
        client = TradingClient(fake.key_id, fake.secret_key, url_override=fake.trading_url)
        stream = TradingStream(fake.key_id, fake.secret_key,
                               url_override=fake.trading_stream_url)
        data = StockDataStream(fake.key_id, fake.secret_key, url_override=fake.data_stream_url)
        history = StockHistoricalDataClient(fake.key_id, fake.secret_key,
                                            url_override=fake.data_url)

Two aiohttp sites on 127.0.0.1 run in the fake's own thread and event loop, so blocking
`requests` calls and the test's loop never starve it:

- the trading host: REST under /v2 (account, orders, positions, assets, clock, FILL
  activities) and the trade-updates websocket at /stream (JSON, sent in binary frames as
  the real paper host does);
- the data host: REST under /v2/stocks (bars, latest quotes/trades/bars) and the stock
  stream at /v2/iex and /v2/sip (msgpack, with the real connection limit: 406).

Faithful to the paths, query parameters, auth headers, JSON fields, status codes and error
bodies alpaca-py sends and parses (see `alpaca_trading` and `alpaca_data` for what each
side simplifies). Nothing happens by itself: the test drives fills, expiries, rejections,
market data, failures, stalls and dropped connections through the methods below, all
thread-safe. REST errors are `{"code", "message"}` bodies; a 401 for bad key headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, NamedTuple

import msgpack
from aiohttp import WSMsgType, web

from tests.fakes.alpaca_data import (
    Subscriptions,
    bar_msg,
    bars_page,
    encode,
    quote_msg,
    rest_form,
    to_ns,
    trade_msg,
)
from tests.fakes.alpaca_trading import DEFAULT_ASSETS, JSON, ApiError, TradingBook

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WS_PATHS = frozenset({"/stream", "/v2/iex", "/v2/sip"})
_CLOSE = None  # queued on a connection: close it after what was queued before
_BODY = web.RequestKey("json", object)  # the request's JSON body, read by the middleware


class RecordedRequest(NamedTuple):
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class _Fault:
    method: str
    prefix: str
    times: int
    status: int = 0
    body: Any = None
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and path.startswith(self.prefix)


class _Conn:
    """One websocket connection; frames go out in order through its queue."""

    def __init__(self, kind: str, ws: web.WebSocketResponse, request: web.Request,
                 binary: bool) -> None:
        self.kind = kind
        self.ws = ws
        self.transport = request.transport
        self.binary = binary
        self.queue: asyncio.Queue[bytes | str | None] = asyncio.Queue()
        self.authenticated = False
        self.listening = False
        self.subs = Subscriptions()


class FakeAlpaca:
    """The fake trading and data hosts. `start()`/`stop()` or use as a context manager."""

    def __init__(self, key_id: str = "test-key", secret_key: str = "test-secret", *,
                 assets: Iterable[str] = DEFAULT_ASSETS, cash: float = 100_000.0,
                 data_connection_limit: int = 1, rate_limit_per_minute: int | None = None,
                 bars_page_size: int = 10_000) -> None:
        self.key_id = key_id
        self.secret_key = secret_key
        self.data_connection_limit = data_connection_limit
        self.rate_limit_per_minute = rate_limit_per_minute
        self.bars_page_size = bars_page_size
        self.bars: dict[str, list[JSON]] = {}
        self._lock = threading.Lock()
        self._book = TradingBook({a.upper() for a in assets}, Decimal(str(cash)),
                                 self._emit_trade_update)
        self._latest: dict[str, dict[str, JSON]] = {"quotes": {}, "trades": {}, "bars": {}}
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._stalls: list[_Fault] = []
        self._accept_stalls: list[float] = []
        self._window: deque[float] = deque()
        self._conns: set[_Conn] = set()
        self._data_connects_total = 0
        self._silenced = False
        self._trade_ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []
        self._ports: list[int] = []
        self._closing: asyncio.Event | None = None

    # ------------------------------------------------------------- lifecycle
    def start(self) -> FakeAlpaca:
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, args=(ready, failure),
                                        name="FakeAlpaca", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure or not self._ports:
            self.stop()
            raise RuntimeError("FakeAlpaca did not start") from (failure[0] if failure else None)
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = self._loop = None

    def __enter__(self) -> FakeAlpaca:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._open_sites())
        except BaseException as error:
            failure.append(error)
        ready.set()
        if not failure:
            loop.run_forever()
        loop.run_until_complete(self._cancel_leftovers())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    @staticmethod
    async def _cancel_leftovers() -> None:
        pending = asyncio.all_tasks() - {asyncio.current_task()}
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _open_sites(self) -> None:
        self._closing = asyncio.Event()
        trading = web.Application(middlewares=[self._middleware])
        r = trading.router
        r.add_get("/v2/account", self._get(lambda q, m: self._book.account_json()))
        r.add_get("/v2/account/activities/{kind}", self._activities)
        r.add_get("/v2/account/activities", self._activities)
        r.add_get("/v2/orders", self._get(lambda q, m: self._book.list_orders(q)))
        r.add_post("/v2/orders", self._post_order)
        r.add_delete("/v2/orders", self._get(lambda q, m: self._book.cancel_all(), 207))
        r.add_get("/v2/orders:by_client_order_id", self._get(
            lambda q, m: self._book.order_json(self._book.by_client_id(q.get("client_order_id",
                                                                             "")))))
        r.add_get("/v2/orders/{id}", self._get(
            lambda q, m: self._book.order_json(self._book.by_id(m["id"]))))
        r.add_patch("/v2/orders/{id}", self._patch_order)
        r.add_delete("/v2/orders/{id}", self._delete_order)
        r.add_get("/v2/positions", self._get(lambda q, m: self._book.positions_json()))
        r.add_get("/v2/positions/{symbol}", self._get(
            lambda q, m: self._book.position_json(m["symbol"])))
        r.add_delete("/v2/positions/{symbol}", self._get(
            lambda q, m: self._book.close_position(m["symbol"])))
        r.add_get("/v2/assets", self._get(
            lambda q, m: [self._book.asset_json(s) for s in sorted(self._book.assets)]))
        r.add_get("/v2/assets/{symbol}", self._get(lambda q, m: self._book.asset_json(m["symbol"])))
        r.add_get("/v2/clock", self._get(lambda q, m: self._book.clock_json()))
        r.add_get("/stream", self._trading_ws)
        data = web.Application(middlewares=[self._middleware])
        d = data.router
        d.add_get("/v2/stocks/bars", self._get(
            lambda q, m: bars_page(self.bars, q, self.bars_page_size)))
        for kind in ("quotes", "trades", "bars"):
            d.add_get(f"/v2/stocks/{kind}/latest", self._get(self._latest_answer(kind)))
        d.add_get("/v2/iex", self._data_ws)
        d.add_get("/v2/sip", self._data_ws)
        for app in (trading, data):
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._runners.append(runner)
            self._ports.append(int(runner.addresses[0][1]))

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at shutdown so a stalled request does not hold `stop()` up."""
        assert self._closing is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _shutdown(self) -> None:
        assert self._closing is not None
        self._closing.set()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.queue.put_nowait(_CLOSE)
        for _ in range(50):
            if not self._conns:
                break
            await asyncio.sleep(0.01)
        for conn in list(self._conns):
            if conn.transport is not None:
                conn.transport.abort()
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    # ------------------------------------------------------------------ urls
    @property
    def trading_url(self) -> str:
        return f"http://127.0.0.1:{self._ports[0]}"

    @property
    def trading_stream_url(self) -> str:
        return f"ws://127.0.0.1:{self._ports[0]}/stream"

    @property
    def data_url(self) -> str:
        return f"http://127.0.0.1:{self._ports[1]}"

    @property
    def data_stream_url(self) -> str:
        return f"ws://127.0.0.1:{self._ports[1]}/v2/iex"

    # ------------------------------------------------------------------ REST
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in WS_PATHS:
            return await handler(request)
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
        request[_BODY] = body
        with self._lock:
            self._requests.append(RecordedRequest(request.method, request.path,
                                                  dict(request.query), body))
            stall = self._take(self._stalls, request.method, request.path)
            fault = self._take(self._faults, request.method, request.path)
        if stall:
            await self._pause(stall.delay)
        if fault:
            return self._fault_response(fault)
        if (request.headers.get("APCA-API-KEY-ID") != self.key_id
                or request.headers.get("APCA-API-SECRET-KEY") != self.secret_key):
            return web.json_response({"code": 40110000, "message": "request is not authorized"},
                                     status=401)
        limited = self._rate_limited()
        if limited:
            return limited
        try:
            response = await handler(request)
        except ApiError as error:
            response = web.json_response(error.body(), status=error.status)
        if self.rate_limit_per_minute is not None and not response.prepared:
            with self._lock:
                left = max(self.rate_limit_per_minute - len(self._window), 0)
            response.headers["X-Ratelimit-Limit"] = str(self.rate_limit_per_minute)
            response.headers["X-Ratelimit-Remaining"] = str(left)
        return response

    @staticmethod
    def _take(faults: list[_Fault], method: str, path: str) -> _Fault | None:
        for fault in faults:
            if fault.matches(method, path):
                fault.times -= 1
                if fault.times <= 0:
                    faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _fault_response(fault: _Fault) -> web.Response:
        headers = {}
        if fault.status == 429:
            headers = {"X-Ratelimit-Limit": "200", "X-Ratelimit-Remaining": "0",
                       "X-Ratelimit-Reset": str(int(time.time()) + 60)}
        body = fault.body
        if body is None:
            body = {"code": fault.status * 100_000, "message": {
                429: "rate limit exceeded", 500: "internal server error",
                503: "service unavailable", 504: "gateway timeout"}.get(fault.status, "error")}
        if isinstance(body, str):
            return web.Response(text=body, status=fault.status, headers=headers)
        return web.json_response(body, status=fault.status, headers=headers)

    def _rate_limited(self) -> web.Response | None:
        limit = self.rate_limit_per_minute
        if limit is None:
            return None
        now = time.monotonic()
        with self._lock:
            while self._window and now - self._window[0] >= 60:
                self._window.popleft()
            if len(self._window) < limit:
                self._window.append(now)
                return None
            reset = int(time.time() + 60 - (now - self._window[0])) + 1
        return web.json_response(
            {"code": 42910000, "message": "rate limit exceeded"}, status=429,
            headers={"X-Ratelimit-Limit": str(limit), "X-Ratelimit-Remaining": "0",
                     "X-Ratelimit-Reset": str(reset)})

    def _get(self, answer: Callable[[dict[str, str], dict[str, str]], Any],
             status: int = 200) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            with self._lock:
                data = answer(dict(request.query), dict(request.match_info))
            return web.json_response(data, status=status)
        return handle

    def _latest_answer(self, kind: str) -> Callable[[dict[str, str], dict[str, str]], JSON]:
        def answer(query: dict[str, str], match: dict[str, str]) -> JSON:
            symbols = [s.strip().upper() for s in query.get("symbols", "").split(",")]
            latest = self._latest[kind]
            return {kind: {s: rest_form(latest[s]) for s in symbols if s in latest}}
        return answer

    async def _activities(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info.get("kind") or request.query.get("activity_types", "FILL")
        with self._lock:
            rows = self._book.fill_activities(request.query) if "FILL" in kind.upper() else []
        return web.json_response(rows)

    async def _post_order(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            data = self._book.submit(request[_BODY])
            stall = self._accept_stalls.pop(0) if self._accept_stalls else 0.0
        if stall:
            await self._pause(stall)
        return web.json_response(data)

    async def _patch_order(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            data = self._book.replace(request.match_info["id"], request[_BODY])
        return web.json_response(data)

    async def _delete_order(self, request: web.Request) -> web.StreamResponse:
        order_id = request.match_info["id"]
        with self._lock:
            self._book.cancelable(order_id)
        response = web.Response(status=204)
        await response.prepare(request)
        await response.write_eof()
        with self._lock:  # the cancel lands after the 204, as Alpaca's does
            self._book.cancel(order_id)
        return response

    # ------------------------------------------------------------ websockets
    async def _run_ws(self, request: web.Request, kind: str, binary: bool,
                      on_message: Callable[[_Conn, Any], None],
                      hello: bytes | str | None) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(timeout=1.0)
        await ws.prepare(request)
        conn = _Conn(kind, ws, request, binary)
        with self._lock:
            self._conns.add(conn)
            if kind == "data":
                self._data_connects_total += 1
        sender = asyncio.create_task(self._send_loop(conn))
        if hello is not None:
            conn.queue.put_nowait(hello)
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                try:
                    payload = (msgpack.unpackb(msg.data) if msg.type == WSMsgType.BINARY
                               and kind == "data" else json.loads(msg.data))
                except ValueError:
                    payload = None
                on_message(conn, payload)
        finally:
            with self._lock:
                self._conns.discard(conn)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        return ws

    async def _send_loop(self, conn: _Conn) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while True:
                frame = await conn.queue.get()
                if frame is _CLOSE:
                    await conn.ws.close()
                    return
                if isinstance(frame, bytes):
                    await conn.ws.send_bytes(frame)
                else:
                    await conn.ws.send_str(frame)

    async def _trading_ws(self, request: web.Request) -> web.WebSocketResponse:
        return await self._run_ws(request, "trading", True, self._on_trading_message, None)

    def _on_trading_message(self, conn: _Conn, msg: Any) -> None:
        def send(stream: str, data: JSON) -> None:
            conn.queue.put_nowait(json.dumps({"stream": stream, "data": data}).encode())

        if not isinstance(msg, dict):
            send("error", {"error": "invalid syntax"})
            return
        action, data = msg.get("action"), msg.get("data") or {}
        if action in ("authenticate", "auth"):
            key = data.get("key_id", msg.get("key"))
            secret = data.get("secret_key", msg.get("secret"))
            conn.authenticated = key == self.key_id and secret == self.secret_key
            status = "authorized" if conn.authenticated else "unauthorized"
            send("authorization", {"status": status, "action": "authenticate"})
            if not conn.authenticated:
                conn.queue.put_nowait(_CLOSE)
        elif action == "listen" and conn.authenticated:
            streams = [s for s in data.get("streams", []) if s == "trade_updates"]
            conn.listening = bool(streams)
            send("listening", {"streams": streams})
        else:
            send("authorization", {"status": "unauthorized", "action": str(action)})

    async def _data_ws(self, request: web.Request) -> web.WebSocketResponse:
        binary = "msgpack" in request.headers.get("Content-Type", "")
        hello = encode([{"T": "success", "msg": "connected"}], binary)
        return await self._run_ws(request, "data", binary, self._on_data_message, hello)

    def _on_data_message(self, conn: _Conn, msg: Any) -> None:
        def send(answer: JSON) -> None:
            conn.queue.put_nowait(encode([answer], conn.binary))

        def error(code: int, text: str) -> None:
            send({"T": "error", "code": code, "msg": text})

        action = msg.get("action") if isinstance(msg, dict) else None
        if action == "auth":
            if conn.authenticated:
                error(403, "already authenticated")
            elif msg.get("key") != self.key_id or msg.get("secret") != self.secret_key:
                error(402, "auth failed")
            else:
                with self._lock:
                    open_ = sum(c.kind == "data" and c.authenticated for c in self._conns)
                    conn.authenticated = open_ < self.data_connection_limit
                if conn.authenticated:
                    send({"T": "success", "msg": "authenticated"})
                else:
                    error(406, "connection limit exceeded")
                    conn.queue.put_nowait(_CLOSE)
        elif action in ("subscribe", "unsubscribe") and isinstance(msg, dict):
            if not conn.authenticated:
                error(401, "not authenticated")
                return
            with self._lock:
                conn.subs.apply(action, msg)
                send(conn.subs.ack())
        else:
            error(400, "invalid syntax")

    # ------------------------------------------------------------- pushing
    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(callback, *args)

    def _emit_trade_update(self, data: JSON) -> None:
        self._call(self._fan_trading,
                   json.dumps({"stream": "trade_updates", "data": data}).encode())

    def _fan_trading(self, frame: bytes) -> None:
        for conn in list(self._conns):
            if conn.kind == "trading" and conn.listening:
                conn.queue.put_nowait(frame)

    def _push_data(self, kind: str, msg: JSON) -> None:
        with self._lock:
            self._latest[kind][msg["S"]] = msg
        self._call(self._fan_data, msg)

    def _fan_data(self, msg: JSON) -> None:
        if self._silenced:
            return
        frames: dict[bool, bytes | str] = {}
        for conn in list(self._conns):
            if conn.kind == "data" and conn.authenticated and conn.subs.wants(msg):
                if conn.binary not in frames:
                    frames[conn.binary] = encode([msg], conn.binary)
                conn.queue.put_nowait(frames[conn.binary])

    def push_quote(self, symbol: str, bid: float, ask: float, bid_size: int = 100,
                   ask_size: int = 100, ts: datetime | None = None) -> None:
        """A quote to data connections subscribed to the symbol's quotes (ts: datetime)."""
        self._push_data("quotes", quote_msg(symbol.upper(), bid, ask, bid_size, ask_size,
                                            to_ns(ts)))

    def push_trade(self, symbol: str, price: float, size: int = 100,
                   ts: datetime | None = None) -> None:
        """A trade to subscribers; also the price positions are marked at."""
        with self._lock:
            self._book.last_price[symbol.upper()] = Decimal(str(price))
        self._push_data("trades", trade_msg(symbol.upper(), next(self._trade_ids), price, size,
                                            to_ns(ts)))

    def push_bar(self, symbol: str, o: float, h: float, l: float, c: float,  # noqa: E741
                 v: float, ts: datetime | None = None) -> None:
        """A minute bar to subscribers (stamped with its minute's start)."""
        with self._lock:
            self._book.last_price[symbol.upper()] = Decimal(str(c))
        self._push_data("bars", bar_msg(symbol.upper(), o, h, l, c, v, to_ns(ts)))

    def drop_streams(self, kind: str = "all") -> None:
        """Abort the websocket connections of that kind ("all", "trading", "data"): no close
        frame, the clients see the connection lost (1006). Returns once the server has let
        go of them (at most 2 s), so the counts already exclude them."""
        with self._lock:
            doomed = [c for c in self._conns if kind in ("all", c.kind)]
        for conn in doomed:
            if conn.transport is not None:
                self._call(conn.transport.abort)
        if threading.current_thread() is self._thread:
            return
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with self._lock:
                if not any(conn in self._conns for conn in doomed):
                    return
            time.sleep(0.005)

    def silence_data(self, on: bool = True) -> None:
        """Keep data connections open but stop sending market data (control answers such as
        subscription acks still go out)."""
        self._silenced = on

    # ------------------------------------------------------------ controls
    def fill(self, client_order_id: str, qty: float | None = None,
             price: float | None = None) -> str:
        """Execute all (qty None) or part of an open order (client_order_id, or the venue id)
        at price (default its limit, else the last trade): order, position, cash and a FILL
        activity updated, "fill"/"partial_fill" pushed. Returns the execution id."""
        with self._lock:
            return self._book.fill(client_order_id, qty, price)

    def expire(self, client_order_id: str) -> None:
        """The order expires ("expired" pushed); its open legs are canceled."""
        with self._lock:
            self._book.expire(client_order_id)

    def reject_next_submit(self, reason: str = "rejected by the fake") -> None:
        """The next accepted POST /v2/orders answers 200 (status pending_new) but the order is
        stored "rejected" and "rejected" is pushed instead of "new"."""
        with self._lock:
            self._book.reject_next.append(reason)

    def fail_next(self, method: str, path_prefix: str, status: int, times: int = 1,
                  body: Any = None) -> None:
        """The next `times` requests matching method ("*" = any) and path prefix (e.g.
        "/v2/orders") get `status` without being processed; 429s carry X-Ratelimit-*."""
        with self._lock:
            self._faults.append(_Fault(method.upper(), path_prefix, times, status, body))

    def accept_then_stall(self, seconds: float, times: int = 1) -> None:
        """The next POST /v2/orders is processed at once (stored, "new" pushed) but answered
        only after `seconds`."""
        with self._lock:
            self._accept_stalls.extend([seconds] * times)

    def stall_next(self, method: str, path_prefix: str, seconds: float, times: int = 1) -> None:
        """The next matching requests wait `seconds` before being processed normally."""
        with self._lock:
            self._stalls.append(_Fault(method.upper(), path_prefix, times, delay=seconds))

    def add_external_order(self, symbol: str, side: str, qty: float, type: str = "limit",
                           limit_price: float | None = None, stop_price: float | None = None,
                           client_order_id: str | None = None) -> JSON:
        """An open order placed outside the app (no event pushed); returns its JSON."""
        with self._lock:
            return self._book.add_external(symbol, side, qty, type, limit_price, stop_price,
                                           client_order_id)

    def set_position(self, symbol: str, qty: float, avg_entry_price: float) -> None:
        """A position held at the broker (signed qty; 0 removes it). Cash is not touched."""
        with self._lock:
            self._book.set_position(symbol, qty, avg_entry_price)

    @property
    def assets(self) -> set[str]:
        """The tradable symbols (mutable)."""
        return self._book.assets

    @property
    def market_open(self) -> bool:
        return self._book.market_open

    @market_open.setter
    def market_open(self, value: bool) -> None:
        self._book.market_open = value

    # ------------------------------------------------------- introspection
    @property
    def requests(self) -> list[RecordedRequest]:
        """REST requests received: (method, path, query, json body), oldest first."""
        with self._lock:
            return list(self._requests)

    def count(self, method: str, path_prefix: str) -> int:
        return sum(r.method == method.upper() and r.path.startswith(path_prefix)
                   for r in self.requests)

    def orders_by_client_id(self, client_order_id: str) -> list[JSON]:
        with self._lock:
            return [self._book.order_json(o) for o in self._book.orders.values()
                    if o.client_order_id == client_order_id]

    def order(self, client_order_id: str) -> JSON:
        """An order's JSON by client_order_id (or venue id); KeyError if unknown."""
        with self._lock:
            return self._book.order_json(self._book.resolve(client_order_id))

    def _count_conns(self, kind: str) -> int:
        with self._lock:
            return sum(c.kind == kind for c in self._conns)

    @property
    def data_connections(self) -> int:
        return self._count_conns("data")

    @property
    def trading_connections(self) -> int:
        return self._count_conns("trading")

    @property
    def trading_listeners(self) -> int:
        """Trading connections authenticated and listening to trade_updates."""
        with self._lock:
            return sum(c.kind == "trading" and c.listening for c in self._conns)

    @property
    def data_connects_total(self) -> int:
        with self._lock:
            return self._data_connects_total

    def subscriptions(self) -> dict[str, list[str]]:
        """The union of the open data connections' subscriptions, per channel."""
        with self._lock:
            union: dict[str, set[str]] = {}
            for conn in self._conns:
                if conn.kind == "data":
                    for name, symbols in conn.subs.channels.items():
                        union.setdefault(name, set()).update(symbols)
        return {name: sorted(symbols) for name, symbols in union.items() if symbols}
