"""What `tapedeck backtest` writes besides its report: the round trips as CSV and the
whole run as JSON, to a file or to stdout."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from core.backtest import BacktestResult
    from core.metrics import RoundTrip

STDOUT = "-"
TRADES_CSV_HEADER = ("symbol", "direction", "quantity", "entry_time", "entry_price",
                     "exit_time", "exit_price", "commission", "pnl", "return_pct")


def write_output(option: str, target: str, write: Any, console: Console, quiet: bool
                 ) -> bool:
    """`write(out)` into the file `target` (or stdout); False, said on stderr, when the
    file cannot be written."""
    import sys

    if target == STDOUT:
        write(sys.stdout)
        return True
    path = Path(target).expanduser()
    try:
        with path.open("w", encoding="utf-8", newline="") as out:
            write(out)
    except OSError as error:
        typer.echo(f"tapedeck: {option}: cannot write {path}: {error.strerror}", err=True)
        return False
    if not quiet:
        console.print(f"wrote {path}")
    return True


def trade_record(trip: RoundTrip) -> dict[str, Any]:
    """A round trip for CSV and JSON: money and quantities as exact Decimal text, times
    as UTC ISO 8601."""
    from tui.book_report import iso_utc

    return {
        "symbol": trip.symbol,
        "direction": trip.direction,
        "quantity": str(trip.quantity),
        "entry_time": iso_utc(trip.entry_ns),
        "entry_price": str(trip.entry_price),
        "exit_time": iso_utc(trip.exit_ns),
        "exit_price": str(trip.exit_price),
        "commission": str(trip.commission),
        "pnl": str(trip.pnl),
        "return_pct": trip.return_pct,
    }


def write_trades_csv(trips: Sequence[RoundTrip], out: TextIO) -> None:
    import csv

    writer = csv.writer(out)
    writer.writerow(TRADES_CSV_HEADER)
    for trip in trips:
        record = trade_record(trip)
        # repr: the shortest text that reads back as the same float.
        record["return_pct"] = repr(record["return_pct"])
        writer.writerow(record[name] for name in TRADES_CSV_HEADER)


def plain(value: Any) -> Any:
    """JSON-safe: Decimals as text, and NaN or inf as the strings "NaN", "Infinity",
    "-Infinity" (strict JSON has no such numbers; both Python's float() and
    JavaScript's Number() read these strings back)."""
    import math

    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


def result_json(result: BacktestResult, adjusted: bool, run_id: int | None) -> str:
    import json

    from tui.book_report import iso_utc

    spec = result.spec
    document = {
        "run_id": run_id,
        "spec": {
            "strategy": spec.strategy, "params": dict(spec.params),
            "symbols": list(spec.symbols), "start": spec.start, "end": spec.end,
            "cash": spec.cash, "fill_at": spec.fill_at, "adjusted": adjusted,
        },
        "metrics": result.metrics.as_dict(),
        "equity": [[day, value] for day, value in zip(result.days, result.equity, strict=True)],
        "trades": [trade_record(trip) for trip in result.trips],
        "orders": [{
            "client_order_id": order.client_order_id, "time": iso_utc(order.ts_ns),
            "symbol": order.symbol, "side": order.side, "quantity": order.quantity,
            "order_type": order.order_type, "limit_price": order.limit_price,
            "stop_price": order.stop_price, "status": order.status,
            "filled": order.filled, "reason": order.reason,
        } for order in result.orders],
        "refusals": list(result.refusals),
        "failure": result.failure,
        "open_positions": dict(result.open_positions),
        "bars": result.bars,
        "elapsed_s": result.elapsed_s,
    }
    return json.dumps(plain(document), indent=2, allow_nan=False)

