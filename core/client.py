"""`EngineClient`: the one interface through which the UI reads and commands the engine.

Two implementations: `InProcessEngineClient` (the UI and the engine share a process and
an event loop) and, with the daemon, a remote one speaking the control socket. Every
method is async so the remote one can honour the same contract; the UI cannot tell
which one it holds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from core.backtest import BacktestResult
from core.backtest_runs import SavedRun, list_runs, load_run, save_run
from core.desk_views import order_view
from core.engine import Engine
from core.model import Bar, Instrument, OrderRequest, TradingState
from core.risk import RiskDecision
from core.saved_scans import SavedScan
from core.scan_service import ScanView
from core.state import (
    ChangeCursor,
    CommandError,
    EngineDelta,
    EngineSnapshot,
    OrderView,
    StrategyInfo,
    StrategyView,
)
from core.store import StoreError
from core.trading import KillReport

__all__ = ["CommandError", "EngineClient", "InProcessEngineClient", "KillReport"]


class EngineClient(ABC):
    """Reads and commands. Commands the engine refuses raise `CommandError` with a
    message for the trader."""

    @abstractmethod
    async def snapshot(self) -> EngineSnapshot: ...

    def notify_changes(self, callback: Callable[[], None]) -> bool:
        """Ask to be called when changes arrive, so the screen pulls then rather than on
        a timer. False: this client cannot say (an in-process engine changes on every
        tick), so the screen pulls at its own cadence."""
        return False

    @abstractmethod
    async def changes(self, cursor: ChangeCursor) -> EngineDelta: ...

    @abstractmethod
    async def search(self, text: str, limit: int = 20) -> list[Instrument]: ...

    @abstractmethod
    async def history(self, symbol: str, interval: str, sessions: int = 180) -> list[Bar]: ...

    @abstractmethod
    async def add_symbol(self, watchlist: str, symbol: str) -> Instrument: ...

    @abstractmethod
    async def remove_symbol(self, watchlist: str, symbol: str) -> None: ...

    @abstractmethod
    async def move_symbol(self, watchlist: str, symbol: str, offset: int) -> int: ...

    @abstractmethod
    async def create_watchlist(self, name: str) -> None: ...

    @abstractmethod
    async def rename_watchlist(self, old: str, new: str) -> None: ...

    @abstractmethod
    async def delete_watchlist(self, name: str) -> None: ...

    @abstractmethod
    async def set_replay_speed(self, multiplier: float) -> None: ...

    @abstractmethod
    async def set_replay_paused(self, paused: bool) -> None: ...

    @abstractmethod
    async def get_setting(self, key: str, default: Any = None) -> Any: ...

    @abstractmethod
    async def set_setting(self, key: str, value: Any) -> None: ...

    # -- trading: every order passes risk; refusals raise CommandError with the reason

    @abstractmethod
    async def place_order(self, request: OrderRequest) -> OrderView: ...

    @abstractmethod
    async def precheck_order(self, request: OrderRequest) -> RiskDecision:
        """What risk would say of the order now, without sending it."""

    @abstractmethod
    async def cancel_order(self, client_order_id: str) -> None: ...

    @abstractmethod
    async def replace_order(self, client_order_id: str, *, quantity: Decimal | None = None,
                            limit_price: Decimal | None = None,
                            stop_price: Decimal | None = None) -> OrderView: ...

    @abstractmethod
    async def cancel_all_orders(self) -> int: ...

    @abstractmethod
    async def close_position(self, symbol: str) -> OrderView: ...

    @abstractmethod
    async def kill_switch(self) -> KillReport: ...

    @abstractmethod
    async def flatten(self) -> KillReport:
        """Cancel every open order and close every position; trading stays as it is."""

    @abstractmethod
    async def set_trading_state(self, state: TradingState, reason: str = "") -> None: ...

    # -- strategies

    @abstractmethod
    async def strategy_catalog(self) -> list[StrategyInfo]:
        """The strategy classes the engine can run, with their parameter schemas."""

    @abstractmethod
    async def add_strategy(self, strategy: str, symbols: Sequence[str],
                           params: Mapping[str, Any] | None = None,
                           mode: str = "observe") -> StrategyView: ...

    @abstractmethod
    async def set_strategy_mode(self, instance_id: str, mode: str) -> StrategyView: ...

    @abstractmethod
    async def set_strategy_params(self, instance_id: str,
                                  params: Mapping[str, Any]) -> StrategyView: ...

    @abstractmethod
    async def remove_strategy(self, instance_id: str) -> None: ...

    # -- backtests (run by the caller, saved by the engine: it owns the database)

    @abstractmethod
    async def save_backtest(self, result: BacktestResult) -> int: ...

    @abstractmethod
    async def backtest_runs(self, limit: int = 50) -> list[SavedRun]: ...

    @abstractmethod
    async def backtest_run(self, run_id: int) -> SavedRun | None: ...

    # -- the scanner (run by the engine, so it keeps scanning with no screen attached)

    @abstractmethod
    async def set_scan(self, text: str, universe: str) -> ScanView:
        """Make a scan the active one; CommandError (with the column) for a scan that
        does not parse or a universe that does not resolve."""

    @abstractmethod
    async def clear_scan(self) -> None: ...

    @abstractmethod
    async def save_scan(self, name: str, text: str, universe: str) -> SavedScan: ...

    @abstractmethod
    async def delete_scan(self, name: str) -> None: ...


class InProcessEngineClient(EngineClient):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def snapshot(self) -> EngineSnapshot:
        return self.engine.snapshot()

    async def changes(self, cursor: ChangeCursor) -> EngineDelta:
        return self.engine.changes(cursor)

    async def search(self, text: str, limit: int = 20) -> list[Instrument]:
        return self.engine.search(text, limit)

    async def history(self, symbol: str, interval: str, sessions: int = 180) -> list[Bar]:
        return await self.engine.history(symbol, interval, sessions)

    async def add_symbol(self, watchlist: str, symbol: str) -> Instrument:
        return await self.engine.add_symbol(watchlist, symbol)

    async def remove_symbol(self, watchlist: str, symbol: str) -> None:
        await self.engine.remove_symbol(watchlist, symbol)

    async def move_symbol(self, watchlist: str, symbol: str, offset: int) -> int:
        return await self.engine.move_symbol(watchlist, symbol, offset)

    async def create_watchlist(self, name: str) -> None:
        await self.engine.create_watchlist(name)

    async def rename_watchlist(self, old: str, new: str) -> None:
        await self.engine.rename_watchlist(old, new)

    async def delete_watchlist(self, name: str) -> None:
        await self.engine.delete_watchlist(name)

    async def set_replay_speed(self, multiplier: float) -> None:
        self.engine.set_replay_speed(multiplier)

    async def set_replay_paused(self, paused: bool) -> None:
        self.engine.set_replay_paused(paused)

    async def get_setting(self, key: str, default: Any = None) -> Any:
        return await self.engine.get_setting(key, default)

    async def set_setting(self, key: str, value: Any) -> None:
        await self.engine.set_setting(key, value)

    async def place_order(self, request: OrderRequest) -> OrderView:
        return order_view(await self.engine.desk.place(request))

    async def precheck_order(self, request: OrderRequest) -> RiskDecision:
        return self.engine.desk.precheck(request)

    async def cancel_order(self, client_order_id: str) -> None:
        await self.engine.desk.cancel(client_order_id)

    async def replace_order(self, client_order_id: str, *, quantity: Decimal | None = None,
                            limit_price: Decimal | None = None,
                            stop_price: Decimal | None = None) -> OrderView:
        return order_view(await self.engine.desk.replace(
            client_order_id, quantity=quantity, limit_price=limit_price,
            stop_price=stop_price))

    async def cancel_all_orders(self) -> int:
        return await self.engine.desk.cancel_all()

    async def close_position(self, symbol: str) -> OrderView:
        return order_view(await self.engine.desk.close_position(symbol))

    async def kill_switch(self) -> KillReport:
        return await self.engine.desk.kill()

    async def flatten(self) -> KillReport:
        return await self.engine.desk.flatten()

    async def set_trading_state(self, state: TradingState, reason: str = "") -> None:
        self.engine.desk.set_trading_state(state, reason)

    async def strategy_catalog(self) -> list[StrategyInfo]:
        return self.engine.strategies.catalog()

    async def add_strategy(self, strategy: str, symbols: Sequence[str],
                           params: Mapping[str, Any] | None = None,
                           mode: str = "observe") -> StrategyView:
        return await self.engine.strategies.add(strategy, symbols, params, mode)

    async def set_strategy_mode(self, instance_id: str, mode: str) -> StrategyView:
        return await self.engine.strategies.set_mode(instance_id, mode)

    async def set_strategy_params(self, instance_id: str,
                                  params: Mapping[str, Any]) -> StrategyView:
        return await self.engine.strategies.set_params(instance_id, params)

    async def remove_strategy(self, instance_id: str) -> None:
        await self.engine.strategies.remove(instance_id)

    async def save_backtest(self, result: BacktestResult) -> int:
        try:
            return await save_run(self.engine.store, result)
        except StoreError as err:
            raise CommandError(str(err)) from err

    async def backtest_runs(self, limit: int = 50) -> list[SavedRun]:
        try:
            return await list_runs(self.engine.store, limit)
        except StoreError as err:
            raise CommandError(str(err)) from err

    async def backtest_run(self, run_id: int) -> SavedRun | None:
        try:
            return await load_run(self.engine.store, run_id)
        except StoreError as err:
            raise CommandError(str(err)) from err

    async def set_scan(self, text: str, universe: str) -> ScanView:
        return await self.engine.set_scan(text, universe)

    async def clear_scan(self) -> None:
        await self.engine.clear_scan()

    async def save_scan(self, name: str, text: str, universe: str) -> SavedScan:
        try:
            return await self.engine.save_scan(name, text, universe)
        except StoreError as err:
            raise CommandError(str(err)) from err

    async def delete_scan(self, name: str) -> None:
        try:
            await self.engine.delete_scan(name)
        except StoreError as err:
            raise CommandError(str(err)) from err
