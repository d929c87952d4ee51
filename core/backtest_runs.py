"""Saved backtests: a run's spec, metrics and equity curve, and its round trips, kept in
the profile database (tables `backtest_runs` and `backtest_trades`, schema v4).

Money and quantities are stored as Decimal text, times as epoch nanoseconds, dates as
ISO text. Metrics and the equity curve are JSON written with `allow_nan`: a Sharpe
ratio of NaN (no variance) or a profit factor of inf (no losing trade) is a fact about
the run and must read back as itself, not as null or an error.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from core.backtest import BacktestResult
from core.metrics import Metrics, RoundTrip
from core.store import Store, StoreError

# The schema version (core.schema) that created the backtest tables.
BACKTEST_SCHEMA = 4
# Ids are chosen as max + 1 before the insert so the trades can name their run in the
# same transaction; two saves racing for one id lose one insert to the primary key,
# and the loser simply takes the next id.
SAVE_ATTEMPTS = 5

INSERT_RUN = (
    "INSERT INTO backtest_runs (id, created, strategy, params, symbols, start, end, cash, "
    "fill_at, metrics, equity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_TRADE = (
    "INSERT INTO backtest_trades (run_id, seq, symbol, direction, quantity, entry_ts, "
    "entry_price, exit_ts, exit_price, commission, pnl) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
RUN_COLUMNS = ("id, created, strategy, params, symbols, start, end, cash, fill_at, metrics, "
               "equity")


@dataclass(frozen=True, slots=True)
class SavedRun:
    """A backtest as the database holds it. From `list_runs` the trips are left empty
    (a listing shows only the metrics); `load_run` fills them in."""

    id: int
    created_ns: int
    strategy: str
    params: dict[str, Any]
    symbols: tuple[str, ...]
    start: date
    end: date
    cash: Decimal
    fill_at: str
    metrics: Metrics
    equity: list[tuple[date, float]] = field(default_factory=list)
    trips: list[RoundTrip] = field(default_factory=list)

    def describe(self) -> str:
        shown = ", ".join(self.symbols[:6]) + (f" +{len(self.symbols) - 6}"
                                                if len(self.symbols) > 6 else "")
        return f"{self.strategy} on {shown}, {self.start} to {self.end}"


def _dumps(value: Any) -> str:
    # allow_nan: NaN and inf stay themselves (json writes NaN / Infinity and reads them
    # back); the database is ours, not an interchange format.
    return json.dumps(value, allow_nan=True, separators=(",", ":"))


def _run_row(run_id: int, created_ns: int, result: BacktestResult) -> tuple[Any, ...]:
    spec = result.spec
    equity = [[day.isoformat(), value]
              for day, value in zip(result.days, result.equity, strict=True)]
    return (run_id, created_ns, spec.strategy, _dumps(dict(spec.params)),
            _dumps(list(spec.symbols)), spec.start.isoformat(), spec.end.isoformat(),
            str(spec.cash), spec.fill_at, _dumps(result.metrics.as_dict()), _dumps(equity))


def _trade_rows(run_id: int, trips: Sequence[RoundTrip]) -> list[tuple[Any, ...]]:
    return [(run_id, seq, trip.symbol, trip.direction, str(trip.quantity), trip.entry_ns,
             str(trip.entry_price), trip.exit_ns, str(trip.exit_price), str(trip.commission),
             str(trip.pnl))
            for seq, trip in enumerate(trips)]


async def save_run(store: Store, result: BacktestResult, *,
                   created_ns: int | None = None) -> int:
    """Save `result` (the run and its round trips, in one transaction) and return the
    run's id. Raises StoreError, a sentence naming the file, when it cannot."""
    created = time.time_ns() if created_ns is None else created_ns
    for _ in range(SAVE_ATTEMPTS):
        try:
            row = await store.fetchone("SELECT coalesce(max(id), 0) + 1 FROM backtest_runs")
            run_id = int(row[0]) if row is not None else 1
            statements: list[tuple[str, Sequence[Any]]] = [
                (INSERT_RUN, _run_row(run_id, created, result))]
            statements += [(INSERT_TRADE, trade) for trade in _trade_rows(run_id, result.trips)]
            await store.submit_many(statements)
            return run_id
        except sqlite3.IntegrityError:
            continue  # another save took this id first: try the next one
        except sqlite3.Error as err:
            raise StoreError(store.path, f"cannot save the backtest in {store.path}: {err}"
                             ) from err
    raise StoreError(store.path, f"cannot save the backtest in {store.path}: no free run id "
                     f"after {SAVE_ATTEMPTS} attempts")


def _run_of(row: sqlite3.Row, trips: list[RoundTrip]) -> SavedRun:
    equity = [(date.fromisoformat(day), float(value)) for day, value in json.loads(row["equity"])]
    return SavedRun(
        id=int(row["id"]),
        created_ns=int(row["created"]),
        strategy=str(row["strategy"]),
        params=dict(json.loads(row["params"])),
        symbols=tuple(str(symbol) for symbol in json.loads(row["symbols"])),
        start=date.fromisoformat(row["start"]),
        end=date.fromisoformat(row["end"]),
        cash=Decimal(row["cash"]),
        fill_at=str(row["fill_at"]),
        metrics=Metrics.from_dict(json.loads(row["metrics"])),
        equity=equity,
        trips=trips,
    )


def _trip_of(row: sqlite3.Row) -> RoundTrip:
    return RoundTrip(
        symbol=str(row["symbol"]),
        direction=str(row["direction"]),
        quantity=Decimal(row["quantity"]),
        entry_ns=int(row["entry_ts"]),
        entry_price=Decimal(row["entry_price"]),
        exit_ns=int(row["exit_ts"]),
        exit_price=Decimal(row["exit_price"]),
        commission=Decimal(row["commission"]),
        pnl=Decimal(row["pnl"]),
    )


def _unreadable(store: Store, err: Exception) -> StoreError:
    if isinstance(err, sqlite3.Error):
        return StoreError(store.path, f"cannot read {store.path}: {err}")
    # A row this build cannot parse (bad JSON, a malformed Decimal or date): a sentence
    # naming the file, not a traceback.
    return StoreError(store.path, f"cannot read {store.path}: unexpected data in a saved "
                      f"backtest ({err!r})")


async def count_runs(store: Store) -> int:
    if store.schema_version < BACKTEST_SCHEMA:
        return 0  # a database from before backtests: none can have been saved
    try:
        row = await store.fetchone("SELECT count(*) FROM backtest_runs")
    except sqlite3.Error as err:
        raise _unreadable(store, err) from err
    return int(row[0]) if row is not None else 0


async def list_runs(store: Store, limit: int = 50) -> list[SavedRun]:
    """The newest `limit` runs (0 for all), newest first, without their trips."""
    if store.schema_version < BACKTEST_SCHEMA:
        return []
    try:
        rows = await store.fetchall(
            f"SELECT {RUN_COLUMNS} FROM backtest_runs ORDER BY created DESC, id DESC LIMIT ?",
            (limit if limit > 0 else -1,))
        return [_run_of(row, []) for row in rows]
    except (sqlite3.Error, ValueError, KeyError, TypeError, ArithmeticError) as err:
        raise _unreadable(store, err) from err


async def load_run(store: Store, run_id: int) -> SavedRun | None:
    """One run with its round trips (in the order they closed), or None."""
    if store.schema_version < BACKTEST_SCHEMA:
        return None
    try:
        # One read transaction: the run and its trades from one snapshot.
        await store.fetchall("BEGIN")
        try:
            row = await store.fetchone(
                f"SELECT {RUN_COLUMNS} FROM backtest_runs WHERE id = ?", (run_id,))
            trade_rows = [] if row is None else await store.fetchall(
                "SELECT * FROM backtest_trades WHERE run_id = ? ORDER BY seq", (run_id,))
        finally:
            await store.fetchall("COMMIT")
        if row is None:
            return None
        return _run_of(row, [_trip_of(trade) for trade in trade_rows])
    except (sqlite3.Error, ValueError, KeyError, TypeError, ArithmeticError) as err:
        raise _unreadable(store, err) from err
