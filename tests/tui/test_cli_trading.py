"""`tapedeck orders`, `fills` and `positions`: the journal of a real engine, read back
from its database, also while that engine still holds it."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from core.engine import Engine
from core.model import Fill, OrderStatus, OrderType
from core.schema import MIGRATIONS
from core.store import Store, StoreLockedError
from tests.core.test_trading import buy, open_engine
from tui import format as fmt
from tui.book_report import CSV_HEADER
from tui.cli import app

D = Decimal
ROOT = Path(__file__).resolve().parents[2]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class Traded:
    """What the engine did, to compare the commands' output with."""

    filled: str  # a market buy of 50 AAPL, filled
    resting: str  # a limit buy of 10 MSFT below the market, accepted and working
    fill: Fill
    mark: float  # AAPL's last price when the engine stopped


async def trade(engine: Engine) -> Traded:
    filled = await engine.desk.place(buy(quantity=50))
    below = D(repr(engine.market.states["MSFT"].last * 0.97)).quantize(D("0.01"))
    resting = await engine.desk.place(buy("MSFT", 10, order_type=OrderType.LIMIT,
                                          limit_price=below))
    assert filled.status == OrderStatus.FILLED
    assert resting.status == OrderStatus.ACCEPTED
    [fill] = engine.desk.fills
    return Traded(filled.client_order_id, resting.client_order_id, fill,
                  engine.desk.portfolio.positions["AAPL"].last_price)


@pytest.fixture
def traded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Traded:
    """A database a stopped engine traded in; the CLI finds it through the environment."""

    async def session() -> Traded:
        engine = await open_engine(tmp_path)
        try:
            return await trade(engine)
        finally:
            await engine.stop()  # saves the positions with their marks

    done = asyncio.run(session())
    monkeypatch.setenv("TAPEDECK_STORE__PATH", str(tmp_path / "test.sqlite"))
    return done


def run(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    # Never a traceback: a command ends normally or by typer.Exit (SystemExit).
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception)
    return result


def lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def test_orders_lists_both_orders_newest_first_with_their_status(traded: Traded) -> None:
    result = run("orders")
    assert result.exit_code == 0, result.output
    [filled] = lines_with(result.stdout, traded.filled)
    [resting] = lines_with(result.stdout, traded.resting)
    assert result.stdout.index(traded.resting) < result.stdout.index(traded.filled)
    assert "filled" in filled
    assert "50/50" in filled
    assert fmt.price(float(traded.fill.price)) in filled  # the average fill price
    assert "accepted" in resting
    assert "0/10" in resting
    assert "limit DAY" in resting
    assert "Created (ET)" in result.stdout  # the configured zone, America/New_York


def test_orders_open_and_limit(traded: Traded) -> None:
    working = run("orders", "--open")
    assert working.exit_code == 0
    assert traded.resting in working.stdout
    assert traded.filled not in working.stdout

    newest = run("orders", "--limit", "1")
    assert traded.resting in newest.stdout
    assert traded.filled not in newest.stdout
    assert "newest 1 of 2" in newest.stdout

    assert traded.filled in run("orders", "-n", "0").stdout


def test_fills_table_shows_the_fill(traded: Traded) -> None:
    result = run("fills")
    assert result.exit_code == 0, result.output
    [row] = lines_with(result.stdout, traded.fill.fill_id)
    assert traded.filled in row
    assert "AAPL" in row
    assert fmt.price(float(traded.fill.price)) in row
    assert traded.resting not in result.stdout  # it never filled


def test_fills_csv_has_the_header_and_one_exact_row_per_fill(traded: Traded) -> None:
    result = run("fills", "--csv")
    assert result.exit_code == 0, result.output
    header, *rows = list(csv.reader(io.StringIO(result.stdout)))
    assert tuple(header) == CSV_HEADER
    fill = traded.fill
    assert len(rows) == 1
    ts, order_id, symbol, side, quantity, price, commission, venue, fill_id = rows[0]
    moment = datetime.fromisoformat(ts)
    assert moment.utcoffset() == timedelta(0)
    # Exact to the microsecond, in integers: a float timestamp would round.
    assert (moment - EPOCH) // timedelta(microseconds=1) == fill.ts_ns // 1_000
    assert (order_id, symbol, side, venue, fill_id) == (
        traded.filled, "AAPL", "buy", fill.venue, fill.fill_id)
    assert (D(quantity), D(price), D(commission)) == (fill.quantity, fill.price,
                                                      fill.commission)


def test_positions_from_the_fills_at_the_saved_mark(traded: Traded) -> None:
    result = run("positions")
    assert result.exit_code == 0, result.output
    [row] = lines_with(result.stdout, "AAPL")
    price = traded.fill.price
    mark = D(repr(traded.mark))
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells == ["AAPL", "50", fmt.price(float(price)), fmt.price(traded.mark),
                     f"{mark * 50:,.2f}", f"{(mark - price) * 50:+,.2f}", "+0.00"]
    assert "MSFT" not in result.stdout  # a resting order is not a position
    assert "before commissions" in result.stdout


def test_a_missing_database_is_a_sentence_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "never" / "made.sqlite"
    monkeypatch.setenv("TAPEDECK_STORE__PATH", str(missing))
    for command in (["orders"], ["fills"], ["fills", "--csv"], ["positions"]):
        result = run(*command)
        assert result.exit_code == 1, command
        assert result.stderr == f"tapedeck: no database yet at {missing}: nothing has been " \
            "traded\n"
        assert result.stdout == ""
    assert not missing.parent.exists()  # reading never creates anything


def test_a_database_from_before_trading_has_no_orders(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    conn.close()
    monkeypatch.setenv("TAPEDECK_STORE__PATH", str(path))
    assert run("orders").stdout == "no orders yet\n"
    assert run("fills").stdout == "no fills yet\n"
    assert run("fills", "--csv").stdout == ",".join(CSV_HEADER) + "\n"
    assert run("positions").stdout == "no open positions\n"


async def saved_mark(engine: Engine, symbol: str, timeout: float = 10.0) -> None:
    """Wait until the engine has saved `symbol`'s position with a mark."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await engine.store.fetchone(
            "SELECT 1 FROM positions WHERE symbol = ? AND mark != ''", (symbol,)) is None:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the engine saved no mark for {symbol}")
        await asyncio.sleep(0.05)


async def test_the_commands_read_while_the_engine_holds_the_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "test.sqlite"
    monkeypatch.setenv("TAPEDECK_STORE__PATH", str(path))
    # Positions and their marks are saved every few seconds; here every tenth of one.
    engine = await open_engine(tmp_path, trading={"snapshot_every_s": 0.1})
    try:
        traded = await trade(engine)
        await saved_mark(engine, "AAPL")
        # Another process, as a trader would run it next to the workstation.
        outputs = {}
        for command in ("orders", "fills", "positions"):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "from tui.cli import main; main()", command, cwd=ROOT,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await process.communicate()
            assert process.returncode == 0, err.decode()
            assert err == b""
            outputs[command] = out.decode()
        assert traded.filled in outputs["orders"]
        assert traded.resting in outputs["orders"]
        assert traded.fill.fill_id in outputs["fills"]
        [row] = lines_with(outputs["positions"], "AAPL")
        assert fmt.price(traded.mark) in row
        # The engine kept its lock and its writer throughout.
        with pytest.raises(StoreLockedError):
            await Store.open(path)
        more = await engine.desk.place(buy(quantity=1))
        assert more.status == OrderStatus.FILLED
        # And in this process too: a read-only open beside the engine's lock.
        result = await asyncio.to_thread(run, "orders", "--open")
        assert result.exit_code == 0, result.output
        assert traded.resting in result.stdout
    finally:
        await engine.stop()
