"""`EngineClient`: the one interface through which the UI reads and commands the engine.

Two implementations: `InProcessEngineClient` (the UI and the engine share a process and
an event loop) and, with the daemon, a remote one speaking the control socket. Every
method is async so the remote one can honour the same contract; the UI cannot tell
which one it holds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from core.engine import CommandError, Engine
from core.model import Bar, Instrument
from core.state import ChangeCursor, EngineDelta, EngineSnapshot

__all__ = ["CommandError", "EngineClient", "InProcessEngineClient"]


class EngineClient(ABC):
    """Reads and commands. Commands the engine refuses raise `CommandError` with a
    message for the trader."""

    @abstractmethod
    async def snapshot(self) -> EngineSnapshot: ...

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
