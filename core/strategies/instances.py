"""A strategy instance as the engine keeps it: its row in `strategy_instances`, its
parameters checked against the strategy's model, and the view the pane shows.

The live work (bars in, orders out) is the host's (core/strategies/host.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from core.model import NS_PER_SECOND
from core.portfolio import ZERO
from core.state import CommandError, StrategyInfo, StrategyView
from core.strategies.base import Strategy, StrategyMode, StrategyParams
from core.strategies.runner import StrategyRunner

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from core.state import SymbolState
    from core.store import Store

INSTANCE_COLUMNS = "id, strategy, params, symbols, mode, position, created"


def parameter_errors(err: ValidationError) -> str:
    """A pydantic error as one part per field, for the trader."""
    parts = []
    for error in err.errors():
        where = ".".join(str(part) for part in error["loc"]) or "parameters"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "not a parameter of this strategy"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def validate_params(strategy_class: type[Strategy[Any]],
                    values: Mapping[str, Any]) -> StrategyParams:
    try:
        return strategy_class.Params.model_validate(dict(values))
    except ValidationError as err:
        raise CommandError(parameter_errors(err)) from None


def strategy_info(name: str, strategy_class: type[Strategy[Any]], origin: str) -> StrategyInfo:
    params = strategy_class.Params
    return StrategyInfo(name, strategy_class.title, strategy_class.description,
                        params().model_dump(mode="json"), params.model_json_schema(), origin)


def parse_mode(mode: StrategyMode | str) -> StrategyMode:
    try:
        return StrategyMode(mode)
    except ValueError:
        names = ", ".join(m.value for m in StrategyMode)
        raise CommandError(f"unknown mode {mode!r}: use one of {names}") from None


def describe_params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in params.items()) or "(none)"


@dataclass(slots=True)
class Instance:
    id: str
    strategy: str
    params: dict[str, Any]
    symbols: tuple[str, ...]
    mode: StrategyMode
    position: int  # its row in the pane
    created_ns: int
    runner: StrategyRunner | None = None  # None when its strategy is not installed
    error: str = ""
    traceback: str = ""
    pnl_at_close: Decimal = ZERO  # its P&L at the last close: day P&L counts from it
    title: str = ""
    pending_save: bool = False  # switched off on the hot path: saved at the next flush

    def row(self) -> tuple[Any, ...]:
        return (self.id, self.strategy, json.dumps(self.params, sort_keys=True),
                json.dumps(list(self.symbols)), self.mode.value, self.position,
                self.created_ns)

    def view(self, states: Mapping[str, SymbolState], midnight_ns: int) -> StrategyView:
        """The pane's row, its positions marked at the last prices."""
        runner = self.runner
        if runner is None:
            return StrategyView(self.id, self.strategy, self.title or self.strategy,
                                self.mode.value, self.symbols, dict(self.params), {}, ZERO,
                                ZERO, 0, "", 0, 0, self.error, self.traceback)
        book = runner.book
        runner.mark({symbol: state.last for symbol in runner.symbols
                     if (state := states.get(symbol)) is not None and state.last == state.last})
        total = book.portfolio.equity()
        positions = {p.symbol: p.quantity for p in book.portfolio.positions.values()
                     if p.quantity}
        today = sum(1 for s in book.signals if s.ts_ns >= midnight_ns)
        last = book.signals[-1] if book.signals else None
        last_text = f"{last.side.value.upper()} {last.symbol}: {last.reason}" if last else ""
        return StrategyView(
            self.id, self.strategy, self.title, self.mode.value, self.symbols,
            dict(self.params), positions, total - self.pnl_at_close, total, today, last_text,
            last.ts_ns if last else 0, len(book.working), self.error, self.traceback)


async def load_instances(store: Store) -> tuple[list[Instance], list[str]]:
    """The saved instances in pane order, and a problem per row that cannot be read."""
    rows = await store.fetchall(
        f"SELECT {INSTANCE_COLUMNS} FROM strategy_instances ORDER BY position, id")
    instances: list[Instance] = []
    problems: list[str] = []
    for row in rows:
        try:
            params = json.loads(row["params"])
            symbols = tuple(json.loads(row["symbols"]))
            mode = StrategyMode(row["mode"])
            if not isinstance(params, dict):
                raise ValueError("its parameters are not a table")
        except (ValueError, TypeError) as err:
            problems.append(f"instance {row['id']} is unreadable in the database and is "
                            f"skipped: {err}")
            continue
        instances.append(Instance(row["id"], row["strategy"], params, symbols, mode,
                                  int(row["position"]), int(row["created"])))
    return instances, problems


async def save_instance(store: Store, instance: Instance) -> None:
    await store.execute(
        f"INSERT OR REPLACE INTO strategy_instances ({INSTANCE_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)", instance.row())


async def delete_instance(store: Store, instance_id: str) -> None:
    await store.execute("DELETE FROM strategy_instances WHERE id = ?", (instance_id,))


def session_midnight_ns(now_ns: int, zone: ZoneInfo) -> int:
    """The exchange's local midnight before `now_ns` (signals "today" count from it)."""
    if now_ns <= 0:
        return 0
    local = datetime.fromtimestamp(now_ns / NS_PER_SECOND, tz=zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return int(midnight.timestamp()) * NS_PER_SECOND
