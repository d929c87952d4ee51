"""`RemoteEngineClient`: the `EngineClient` of a screen attached to a daemon.

Commands become requests on the control socket (`core.control`); the engine's changes
arrive pushed, and are merged until the screen pulls them, so the screen's `changes()`
costs nothing on the socket. When the daemon goes away (restarted, stopped, the network
of an SSH session that ran it dropped) the client says so through the status it hands
the screen, tries again with backoff, and on its return asks the screen to take a fresh
snapshot: the screen carries on by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from core import __version__
from core.backtest import BacktestResult
from core.backtest_runs import SavedRun
from core.client import EngineClient
from core.control import PROTOCOL
from core.health import HealthRecord
from core.model import Bar, Instrument, OrderRequest, TradingState
from core.risk import RiskDecision
from core.saved_scans import SavedScan
from core.scan_service import ScanView
from core.state import (
    ChangeCursor,
    CommandError,
    EngineDelta,
    EngineSnapshot,
    EngineStatus,
    OrderView,
    QuoteRow,
    StrategyInfo,
    StrategyView,
)
from core.trading import KillReport
from core.wire import WireError, dumps, loads

log = logging.getLogger(__name__)

READ_LIMIT = 1 << 30  # a snapshot of a big session is large; the daemon is trusted
CALL_TIMEOUT_S = 30.0
BACKOFF_FIRST_S = 0.25
BACKOFF_MAX_S = 5.0


class DaemonUnavailable(Exception):
    """No daemon answers on the socket, or it will not talk to us; for the trader."""


def merge_deltas(first: EngineDelta, then: EngineDelta) -> EngineDelta:
    """One delta saying what `first` and then `then` said: newest rows and forming bars
    per symbol, every completed bar, log line, order change and fill in order, and the
    views re-sent whole (status, positions, account, risk, strategies) from `then`."""
    rows: dict[str, QuoteRow] = {row.symbol: row for row in first.rows}
    rows.update((row.symbol, row) for row in then.rows)
    building: dict[str, Bar] = {bar.symbol: bar for bar in first.building}
    building.update((bar.symbol, bar) for bar in then.building)
    return EngineDelta(
        rows=list(rows.values()),
        bars=[*first.bars, *then.bars],
        building=list(building.values()),
        logs=[*first.logs, *then.logs],
        status=then.status,
        watchlists=then.watchlists if then.watchlists is not None else first.watchlists,
        resync=first.resync or then.resync,
        orders=[*first.orders, *then.orders],
        fills=[*first.fills, *then.fills],
        positions=then.positions,
        account=then.account or first.account,
        risk=then.risk or first.risk,
        strategies=then.strategies,
        scan=then.scan if then.scan is not None else first.scan,
    )


# Merged deltas the screen has not pulled are capped: past this many completed bars the
# screen is told to take a snapshot instead.
PENDING_BARS_MAX = 50_000


class RemoteEngineClient(EngineClient):
    def __init__(self, path: Path, *, reconnect: bool = False, client: str = "attach",
                 call_timeout_s: float = CALL_TIMEOUT_S) -> None:
        """`reconnect`: keep trying when the daemon goes away (an attached screen); a
        one-shot command (`tapedeck halt`) gives up instead."""
        self.path = path
        self.reconnect = reconnect
        self.client_name = client
        self.call_timeout_s = call_timeout_s
        self.server: dict[str, Any] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._listener: asyncio.Task[None] | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._subscribed = False
        self._snapshot: EngineSnapshot | None = None  # taken, not handed out yet
        self._pending: EngineDelta | None = None
        self._last: EngineDelta | EngineSnapshot | None = None
        self._resync = False
        self._down_reason = ""  # "disconnected: why", while not connected
        self._retry_note = ""  # when the next attempt is
        self._bye = ""  # what the daemon said as it hung up
        self._closing = False
        self._on_changes: Callable[[], None] | None = None
        self.connects = 0

    # ------------------------------------------------------------------ connection

    @property
    def connected(self) -> bool:
        """Connected and greeted: requests can be made."""
        return self._writer is not None and bool(self.server)

    async def connect(self) -> dict[str, Any]:
        """Connect and say hello; DaemonUnavailable with the reason otherwise."""
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.path),
                                                                limit=READ_LIMIT)
        except FileNotFoundError:
            raise DaemonUnavailable(f"no tapedeck daemon is running (no socket at "
                                    f"{self.path})") from None
        except ConnectionRefusedError:
            raise DaemonUnavailable(f"no tapedeck daemon is running (nothing listens on "
                                    f"{self.path}: a daemon that stopped uncleanly)") from None
        except OSError as err:
            raise DaemonUnavailable(f"cannot reach the daemon at {self.path}: "
                                    f"{err.strerror}") from None
        self._writer = writer
        self.server = {}
        self._listener = asyncio.create_task(self._listen(reader), name="control-listen")
        try:
            self.server = await self._call("hello", protocol=PROTOCOL,
                                           client=f"{self.client_name} {__version__}")
        except CommandError as err:
            await self._drop()
            raise DaemonUnavailable(str(err)) from None
        self.connects += 1
        self._down_reason = self._retry_note = self._bye = ""
        return self.server

    async def close(self) -> None:
        self._closing = True
        if self._reconnector is not None:
            self._reconnector.cancel()
            with contextlib.suppress(BaseException):
                await self._reconnector
        await self._drop()

    async def _drop(self) -> None:
        writer, self._writer = self._writer, None
        listener, self._listener = self._listener, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        if listener is not None and listener is not asyncio.current_task():
            listener.cancel()
            with contextlib.suppress(BaseException):
                await listener
        self._fail_waiting("the connection to the daemon was closed")

    def _fail_waiting(self, reason: str) -> None:
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(CommandError(reason))

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        reason = "the daemon closed the connection"
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    message = loads(line)
                except WireError as err:
                    log.error("unreadable message from the daemon: %s", err)
                    continue
                if isinstance(message, dict):
                    self._dispatch(message)
        except (ConnectionError, OSError) as err:
            reason = f"the connection to the daemon broke: {err}"
        except ValueError:  # a line past READ_LIMIT
            reason = "the daemon sent a message too large to read"
        self._lost(reason)

    def _dispatch(self, message: dict[str, Any]) -> None:
        push = message.get("push")
        if push == "delta":
            delta = message.get("delta")
            if isinstance(delta, EngineDelta) and self._subscribed:
                self._add_delta(delta)
            return
        if push == "bye":
            self._bye = str(message.get("reason", ""))
            return
        request_id = message.get("id")
        future = self._waiting.pop(request_id, None) if isinstance(request_id, int) else None
        if future is None or future.done():
            if message.get("ok") is False:
                # Not an answer to a request: the daemon refusing the connection, or
                # complaining of a line it could not read.
                self._bye = str(message.get("error", ""))
                log.warning("the daemon: %s", self._bye)
            return
        if message.get("ok"):
            future.set_result(message.get("result"))
        else:
            future.set_exception(CommandError(str(message.get("error", "refused"))))

    def _add_delta(self, delta: EngineDelta) -> None:
        pending = delta if self._pending is None else merge_deltas(self._pending, delta)
        if len(pending.bars) > PENDING_BARS_MAX:
            self._resync = True
            pending = dataclasses.replace(pending, bars=[])
        self._pending = pending
        self._last = delta
        self._changed()

    def notify_changes(self, callback: Callable[[], None]) -> bool:
        # A delta is pushed at the daemon's cadence: the screen pulls as each arrives,
        # so an attached screen adds the socket's delay and not a second timer's.
        self._on_changes = callback
        return True

    def _changed(self) -> None:
        if self._on_changes is not None:
            try:
                self._on_changes()
            except Exception:  # a screen that is closing; never the listener's end
                log.debug("change callback failed", exc_info=True)

    def _lost(self, reason: str) -> None:
        reason = self._bye or reason
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._listener = None
        self._fail_waiting(reason)
        if self._closing:
            return
        self._down_reason = f"disconnected: {reason}"
        log.warning("%s", self._down_reason)
        self._changed()
        if self.reconnect and (self._reconnector is None or self._reconnector.done()):
            self._reconnector = asyncio.create_task(self._reconnect(), name="control-retry")

    async def _reconnect(self) -> None:
        delay = BACKOFF_FIRST_S
        attempt = 0
        if self._subscribed:
            # Whatever came before the loss is stale: once back, the screen's next pull
            # says resync, and its snapshot() subscribes again.
            self._pending = None
            self._resync = True
        while not self._closing:
            attempt += 1
            wait = delay * random.uniform(0.8, 1.2)  # jitter: clients do not retry in step
            self._retry_note = f"retrying in {wait:.1f} s (attempt {attempt})"
            self._changed()
            await asyncio.sleep(wait)
            try:
                await self.connect()
                log.info("reconnected to the daemon (pid %s)", self.server.get("pid"))
                self._changed()
                return
            except DaemonUnavailable as err:
                log.info("daemon not back yet: %s", err)
                self._down_reason = "disconnected: no daemon answers"  # the bar has one line
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def _call(self, command: str, /, **args: Any) -> Any:
        writer = self._writer
        if writer is None:
            raise CommandError(self._down_reason or "not connected to the daemon")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            writer.write(dumps({"id": request_id, "cmd": command, "args": args}))
        except WireError as err:
            self._waiting.pop(request_id, None)
            raise CommandError(f"cannot send {command}: {err}") from None
        try:
            return await asyncio.wait_for(future, self.call_timeout_s)
        except TimeoutError:
            self._waiting.pop(request_id, None)
            raise CommandError(f"the daemon did not answer {command} within "
                               f"{self.call_timeout_s:g} s") from None

    # ------------------------------------------------------------------ reads

    def _status(self, status: EngineStatus) -> EngineStatus:
        if self.connected:
            return dataclasses.replace(status, link=f"daemon pid {self.server.get('pid')}")
        note = self._down_reason or "disconnected"
        if self._retry_note:
            note += f" · {self._retry_note}"
        return dataclasses.replace(status, link=note, link_down=True)

    async def snapshot(self) -> EngineSnapshot:
        snapshot, self._snapshot = self._snapshot, None
        if snapshot is None:
            snapshot = await self._call("subscribe")
            self._subscribed = True
        self._pending = None
        self._resync = False
        self._last = snapshot
        return dataclasses.replace(snapshot, status=self._status(snapshot.status))

    async def changes(self, cursor: ChangeCursor) -> EngineDelta:
        if self._resync and self.connected:
            last = self._last
            assert last is not None
            return EngineDelta((), (), (), (), self._status(last.status), None, resync=True)
        pending, self._pending = self._pending, None
        if pending is not None:
            return dataclasses.replace(pending, status=self._status(pending.status))
        last = self._last
        if last is None:
            raise CommandError("take a snapshot first")
        # Nothing new (or no daemon): the views as they were, so the screen keeps them.
        return EngineDelta(
            (), (), (), (), self._status(last.status), None,
            positions=last.positions, account=last.account, risk=last.risk,
            strategies=last.strategies)

    async def status(self) -> HealthRecord:
        """The daemon's health record, live."""
        result: HealthRecord = await self._call("status")
        return result

    async def search(self, text: str, limit: int = 20) -> list[Instrument]:
        return list(await self._call("search", text=text, limit=limit))

    async def history(self, symbol: str, interval: str, sessions: int = 180) -> list[Bar]:
        return list(await self._call("history", symbol=symbol, interval=interval,
                                     sessions=sessions))

    # ------------------------------------------------------------------ commands

    async def add_symbol(self, watchlist: str, symbol: str) -> Instrument:
        result: Instrument = await self._call("add_symbol", watchlist=watchlist, symbol=symbol)
        return result

    async def remove_symbol(self, watchlist: str, symbol: str) -> None:
        await self._call("remove_symbol", watchlist=watchlist, symbol=symbol)

    async def move_symbol(self, watchlist: str, symbol: str, offset: int) -> int:
        return int(await self._call("move_symbol", watchlist=watchlist, symbol=symbol,
                                    offset=offset))

    async def create_watchlist(self, name: str) -> None:
        await self._call("create_watchlist", name=name)

    async def rename_watchlist(self, old: str, new: str) -> None:
        await self._call("rename_watchlist", old=old, new=new)

    async def delete_watchlist(self, name: str) -> None:
        await self._call("delete_watchlist", name=name)

    async def set_replay_speed(self, multiplier: float) -> None:
        await self._call("set_replay_speed", multiplier=multiplier)

    async def set_replay_paused(self, paused: bool) -> None:
        await self._call("set_replay_paused", paused=paused)

    async def get_setting(self, key: str, default: Any = None) -> Any:
        return await self._call("get_setting", key=key, default=default)

    async def set_setting(self, key: str, value: Any) -> None:
        await self._call("set_setting", key=key, value=value)

    async def place_order(self, request: OrderRequest) -> OrderView:
        result: OrderView = await self._call("place_order", request=request)
        return result

    async def precheck_order(self, request: OrderRequest) -> RiskDecision:
        result: RiskDecision = await self._call("precheck_order", request=request)
        return result

    async def cancel_order(self, client_order_id: str) -> None:
        await self._call("cancel_order", client_order_id=client_order_id)

    async def replace_order(self, client_order_id: str, *, quantity: Decimal | None = None,
                            limit_price: Decimal | None = None,
                            stop_price: Decimal | None = None) -> OrderView:
        result: OrderView = await self._call(
            "replace_order", client_order_id=client_order_id, quantity=quantity,
            limit_price=limit_price, stop_price=stop_price)
        return result

    async def cancel_all_orders(self) -> int:
        return int(await self._call("cancel_all_orders"))

    async def close_position(self, symbol: str) -> OrderView:
        result: OrderView = await self._call("close_position", symbol=symbol)
        return result

    async def kill_switch(self) -> KillReport:
        result: KillReport = await self._call("kill_switch")
        return result

    async def flatten(self) -> KillReport:
        result: KillReport = await self._call("flatten")
        return result

    async def set_trading_state(self, state: TradingState, reason: str = "") -> None:
        await self._call("set_trading_state", state=state, reason=reason)

    async def strategy_catalog(self) -> list[StrategyInfo]:
        return list(await self._call("strategy_catalog"))

    async def add_strategy(self, strategy: str, symbols: Sequence[str],
                           params: Mapping[str, Any] | None = None,
                           mode: str = "observe") -> StrategyView:
        result: StrategyView = await self._call(
            "add_strategy", strategy=strategy, symbols=list(symbols),
            params=None if params is None else dict(params), mode=mode)
        return result

    async def set_strategy_mode(self, instance_id: str, mode: str) -> StrategyView:
        result: StrategyView = await self._call("set_strategy_mode", instance_id=instance_id,
                                                mode=mode)
        return result

    async def set_strategy_params(self, instance_id: str,
                                  params: Mapping[str, Any]) -> StrategyView:
        result: StrategyView = await self._call("set_strategy_params",
                                                instance_id=instance_id, params=dict(params))
        return result

    async def remove_strategy(self, instance_id: str) -> None:
        await self._call("remove_strategy", instance_id=instance_id)

    async def save_backtest(self, result: BacktestResult) -> int:
        return int(await self._call("save_backtest", result=result))

    async def backtest_runs(self, limit: int = 50) -> list[SavedRun]:
        return list(await self._call("backtest_runs", limit=limit))

    async def backtest_run(self, run_id: int) -> SavedRun | None:
        result: SavedRun | None = await self._call("backtest_run", run_id=run_id)
        return result

    async def set_scan(self, text: str, universe: str) -> ScanView:
        result: ScanView = await self._call("set_scan", text=text, universe=universe)
        return result

    async def clear_scan(self) -> None:
        await self._call("clear_scan")

    async def save_scan(self, name: str, text: str, universe: str) -> SavedScan:
        result: SavedScan = await self._call("save_scan", name=name, text=text,
                                             universe=universe)
        return result

    async def delete_scan(self, name: str) -> None:
        await self._call("delete_scan", name=name)
