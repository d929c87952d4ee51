"""The order book as the `orders`, `fills` and `positions` commands print it.

Read from the profile database without the engine: the store is opened read-only, which
takes no single-instance lock and, in WAL mode, neither blocks the running engine's
writer nor sees a half-written batch. So these commands are safe while the workstation
runs. Orders and fills come from the journal; positions are rebuilt from the fills (the
truth), and only the last marks are taken from the `positions` table the engine saves
every few seconds.
"""

from __future__ import annotations

import csv
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from core.journal import Journal
from core.model import Fill, OrderRequest, OrderType
from core.orders import Order
from core.portfolio import Portfolio, Position
from core.store import Store, StoreError
from tui import format as fmt

ZERO = Decimal(0)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CSV_HEADER = ("ts", "client_order_id", "symbol", "side", "quantity", "price", "commission",
              "venue", "fill_id")
# Schema versions (core.schema): v2 added the trading tables, v3 the positions' marks.
TRADING_SCHEMA = 2
MARKS_SCHEMA = 3
NUMERIC = frozenset({"Qty", "Price", "Filled", "Avg price", "Commission"})


@dataclass(slots=True)
class Book:
    orders: list[Order] = field(default_factory=list)  # oldest first (by sequence)
    fills: list[Fill] = field(default_factory=list)  # oldest first
    marks: dict[str, tuple[float, int]] = field(default_factory=dict)  # symbol: (price, ns)


async def read_book(path: Path) -> Book:
    """Everything the journal holds at `path`, as one consistent snapshot.

    Raises StoreError (a complete sentence naming the file) when it cannot be read."""
    store = await Store.open(path, read_only=True)
    try:
        if store.schema_version < TRADING_SCHEMA:
            return Book()  # a database from before trading: nothing can have been traded
        # One read transaction, so the orders, their events and their fills are read
        # from one snapshot even while the engine commits new ones between the SELECTs.
        await store.fetchall("BEGIN")
        state = await Journal(store).load()
        marks: dict[str, tuple[float, int]] = {}
        if store.schema_version >= MARKS_SCHEMA:
            for row in await store.fetchall(
                    "SELECT symbol, mark, updated FROM positions WHERE mark != ''"):
                marks[row["symbol"]] = (float(row["mark"]), int(row["updated"]))
        await store.fetchall("COMMIT")
        return Book(list(state.orders.values()), state.fills, marks)
    except sqlite3.Error as err:
        raise StoreError(path, f"cannot read {path}: {err}") from err
    except (ValueError, KeyError, ArithmeticError) as err:
        # A row this build cannot parse (bad JSON, an unknown status, a malformed
        # Decimal): a sentence naming the file, not a traceback.
        raise StoreError(path, f"cannot read {path}: unexpected data ({err!r})") from err
    finally:
        await store.close()


# -- orders ------------------------------------------------------------------------------


def orders_table(book: Book, zone: tzinfo, zone_label: str, *, open_only: bool,
                 limit: int) -> Table | str:
    """Newest first; a sentence instead of a table when there is nothing to show."""
    chosen = [order for order in reversed(book.orders) if order.is_open or not open_only]
    if not chosen:
        return "no open orders" if open_only else "no orders yet"
    shown = chosen[:limit] if limit else chosen
    table = Table(title="Open orders" if open_only else "Orders",
                  caption=_shown_caption(len(shown), len(chosen)))
    # Reasons are rare (rejections, cancels): no empty column to squeeze the rest.
    reasons = any(order.reason for order in shown)
    for title in ("Id", f"Created ({zone_label})", "Symbol", "Side", "Filled", "Type",
                  "Price", "Avg price", "Status", *(["Reason"] if reasons else [])):
        table.add_column(title, justify="right" if title in NUMERIC else "left",
                         **_fit(title in ("Id", "Symbol", "Status")))
    for order in shown:
        request = order.request
        table.add_row(
            escape(order.client_order_id), _time(order.created_ns, zone), order.symbol,
            request.side.value,
            f"{_quantity(order.filled_quantity)}/{_quantity(request.quantity)}",
            f"{request.order_type.value.replace('_', '-')} {request.time_in_force.value.upper()}",
            _order_price(request),
            fmt.DASH if order.average_price is None else fmt.price(float(order.average_price)),
            order.status.value, *([Text(order.reason)] if reasons else []),
        )
    return table


def _order_price(request: OrderRequest) -> str:
    """The prices that make the order what it is: limit, stop, trail, bracket legs."""
    kind = request.order_type
    parts: list[str] = []
    if kind == OrderType.STOP_LIMIT:
        parts.append(f"stop {request.stop_price} limit {request.limit_price}")
    elif request.limit_price is not None:
        parts.append(str(request.limit_price))
    elif request.stop_price is not None:
        parts.append(str(request.stop_price))
    if request.trail_amount is not None:
        parts.append(f"trail {request.trail_amount}")
    elif request.trail_percent is not None:
        parts.append(f"trail {request.trail_percent.normalize():f}%")
    if request.take_profit is not None:
        parts.append(f"TP {request.take_profit}")
    if request.stop_loss is not None:
        parts.append(f"SL {request.stop_loss}")
    return " ".join(parts) or fmt.DASH


# -- fills -------------------------------------------------------------------------------


def fills_table(book: Book, zone: tzinfo, zone_label: str, *, limit: int) -> Table | str:
    """Newest first; a sentence instead of a table when there is nothing to show."""
    if not book.fills:
        return "no fills yet"
    chosen = book.fills[::-1]
    shown = chosen[:limit] if limit else chosen
    table = Table(title="Fills", caption=_shown_caption(len(shown), len(chosen)))
    for title in (f"Time ({zone_label})", "Order", "Symbol", "Side", "Qty", "Price",
                  "Commission", "Venue", "Fill id"):
        table.add_column(title, justify="right" if title in NUMERIC else "left",
                         **_fit(title in ("Order", "Symbol", "Fill id")))
    for fill in shown:
        table.add_row(
            _time(fill.ts_ns, zone), escape(fill.client_order_id), fill.symbol,
            fill.side.value, _quantity(fill.quantity), fmt.price(float(fill.price)),
            _money(fill.commission), escape(fill.venue), escape(fill.fill_id),
        )
    return table


def write_fills_csv(book: Book, out: TextIO, *, limit: int) -> None:
    """The newest `limit` fills (0: all) in time order, oldest first as a ledger reads,
    with exact Decimal values as stored."""
    rows = book.fills[-limit:] if limit else book.fills
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for fill in rows:
        writer.writerow((iso_utc(fill.ts_ns), fill.client_order_id, fill.symbol,
                         fill.side.value, fill.quantity, fill.price, fill.commission,
                         fill.venue, fill.fill_id))


def iso_utc(ts_ns: int) -> str:
    """ISO 8601 in UTC, to the microsecond, computed in integers (no float rounding)."""
    moment = EPOCH + timedelta(microseconds=ts_ns // 1_000)
    return moment.isoformat(timespec="microseconds")


# -- positions ---------------------------------------------------------------------------


def positions_table(book: Book, zone: tzinfo, zone_label: str) -> Table | str:
    """Open positions from the fills, valued at the engine's last saved marks."""
    portfolio = Portfolio.start(ZERO)  # cash is not shown; only the positions count
    for fill in book.fills:
        portfolio.apply_fill(fill)
    positions = sorted(portfolio.positions.values(), key=lambda p: p.symbol)
    held = [p for p in positions if p.quantity != 0]
    closed = [p for p in positions if p.quantity == 0]
    notes: list[str] = []
    if closed:
        realized = sum((p.realized for p in closed), ZERO)
        notes.append(f"realized on {len(closed)} closed position"
                     f"{'s' if len(closed) > 1 else ''}: {_money(realized)}")
    commissions = sum((p.commissions for p in positions), ZERO)
    if commissions:
        notes.append(f"P&L is before commissions ({_money(commissions)} paid)")
    if not held:
        return "\n".join(["no open positions", *notes])
    marked_at = [book.marks[p.symbol][1] for p in held if p.symbol in book.marks]
    if marked_at:
        notes.append(f"marks as saved by the engine at {_time(max(marked_at), zone)} "
                     f"{zone_label}")
    if len(marked_at) < len(held):
        notes.append(f"{fmt.DASH}: no mark saved yet")
    table = Table(title="Positions", caption="\n".join(notes) or None)
    for title in ("Symbol", "Qty", "Avg cost", "Last mark", "Market value", "Unrealized",
                  "Realized"):
        table.add_column(title, justify="left" if title == "Symbol" else "right",
                         **_fit(title == "Symbol"))
    for position in held:
        table.add_row(*_position_cells(position, book.marks.get(position.symbol)))
    return table


def _position_cells(position: Position, mark: tuple[float, int] | None) -> list[str | Text]:
    cells: list[str | Text] = [position.symbol, _quantity(position.quantity),
                               fmt.price(float(position.average_cost))]
    if mark is None:
        # Without a mark the value is unknown; Position would value it at cost and
        # show an unrealized 0, which reads as a fact.
        cells += [fmt.DASH, fmt.DASH, fmt.DASH]
    else:
        position.last_price = mark[0]
        cells += [fmt.price(mark[0]), _money(position.market_value()),
                  _pnl(position.unrealized())]
    cells.append(_pnl(position.realized))
    return cells


# -- formatting --------------------------------------------------------------------------


def _fit(whole: bool) -> dict[str, Any]:
    """How a column gives way in a narrow terminal: ids and symbols (what people copy
    and grep) never break; the rest fold onto more lines rather than hide behind '…'."""
    return {"no_wrap": True} if whole else {"overflow": "fold"}


def _time(ts_ns: int, zone: tzinfo) -> str:
    return f"{fmt.clock_time(ts_ns, zone):%Y-%m-%d %H:%M:%S}"


def _quantity(value: Decimal) -> str:
    # normalize() drops trailing zeros ("100.00" -> "100"); "f" keeps it out of exponents.
    return f"{value.normalize():,f}"


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _pnl(value: Decimal) -> Text:
    # Signed text as well as colour, so the direction never depends on colour.
    style = "green" if value > 0 else "red" if value < 0 else ""
    return Text(f"{value:+,.2f}", style=style)


def _shown_caption(shown: int, total: int) -> str | None:
    if shown == total:
        return None
    return f"newest {shown} of {total} (--limit 0 for all)"
