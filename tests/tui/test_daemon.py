"""The daemon as a real subprocess: it starts, serves clients, outlives a client killed
with SIGKILL, refuses a second daemon on its profile, applies a changed risk limit on
SIGHUP, answers the command-line operations, and exits 0 on SIGTERM with everything
written; `tapedeck status` reads its last health record once it is gone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path

import platformdirs
import pytest

from core.config import Settings, load_settings
from core.control_client import DaemonUnavailable, RemoteEngineClient
from core.control_paths import socket_path
from core.health import load_health
from core.model import (
    TERMINAL_STATUSES,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TradingState,
)
from core.state import CommandError
from tests.core.test_control import RawClient
from tests.core.test_notify import Receiver
from tests.tui.test_cli_trading import run
from tui.book_report import read_book

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0


def write_config(path: Path, database: Path, *, max_order_notional: int = 50_000,
                 notify: str = "") -> None:
    path.write_text(notify + textwrap.dedent(f"""\
        [store]
        path = "{database}"
        [replay]
        start = "2019-03-14"
        start_time = "11:00"
        paused = true
        resume = false
        [risk]
        max_order_notional = {max_order_notional}
        [daemon]
        heartbeat_s = 0.5
        [watchlists]
        Core = ["AAPL", "MSFT", "JPM"]
        """), encoding="utf-8")


class DaemonProcess:
    def __init__(self, tmp_path: Path, config: Path) -> None:
        self.config = config
        self.stderr_path = tmp_path / f"daemon-{time.monotonic_ns()}.err"
        self.process: asyncio.subprocess.Process | None = None
        self.settings: Settings = load_settings(config)
        self.socket = socket_path(self.settings)

    async def start(self) -> DaemonProcess:
        with self.stderr_path.open("wb") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tui.cli", "daemon", "--config", str(self.config),
                cwd=ROOT, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=stderr)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    async def client(self, **options: object) -> RemoteEngineClient:
        """A connected client, once the daemon answers."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert self.process is not None
            if self.process.returncode is not None:
                raise AssertionError(f"the daemon exited {self.process.returncode}:\n"
                                     f"{self.stderr}")
            client = RemoteEngineClient(self.socket, **options)  # type: ignore[arg-type]
            try:
                await client.connect()
                return client
            except DaemonUnavailable:
                await client.close()
                if time.monotonic() > deadline:
                    raise AssertionError(f"the daemon never answered:\n{self.stderr}") from None
                await asyncio.sleep(0.1)

    async def wait_for_log(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged:\n{self.stderr}")
            await asyncio.sleep(0.05)

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def exit_code(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    write_config(path, tmp_path / "daemon.sqlite")
    return path


@pytest.fixture
async def daemon(tmp_path: Path, config: Path) -> AsyncIterator[DaemonProcess]:
    process = await DaemonProcess(tmp_path, config).start()
    yield process
    await process.kill()


async def priced(client: RemoteEngineClient) -> None:
    """Wait until the daemon's replay has prices (a market order needs a last trade)."""
    for _ in range(400):
        snapshot = await client.snapshot()
        if snapshot.rows and all(row.last == row.last for row in snapshot.rows.values()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no prices")


CLIENT_SCRIPT = """
import asyncio, sys
from decimal import Decimal
from pathlib import Path
from core.control_client import RemoteEngineClient
from core.model import OrderRequest, Side

async def main():
    client = RemoteEngineClient(Path(sys.argv[1]))
    await client.connect()
    order = await client.place_order(OrderRequest("MSFT", Side.BUY, Decimal(7)))
    print(order.client_order_id, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_the_daemon_serves_outlives_its_clients_and_stops_cleanly(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    first = await daemon.client()
    await priced(first)
    bought = await first.place_order(OrderRequest("AAPL", Side.BUY, Decimal(10)))
    resting = await first.place_order(OrderRequest(
        "JPM", Side.BUY, Decimal(3), OrderType.LIMIT, limit_price=Decimal("100.00")))
    assert resting.is_open
    # Another client, in its own process, places an order and is killed with SIGKILL.
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT_SCRIPT, str(daemon.socket), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE)
    assert other.stdout is not None
    placed_by_other = (await asyncio.wait_for(other.stdout.readline(), 30)).decode().strip()
    other.kill()
    await other.wait()
    await first.close()

    again = await daemon.client()
    snapshot = await again.snapshot()
    orders = {order.client_order_id: order for order in snapshot.orders}
    assert orders[bought.client_order_id].status == OrderStatus.FILLED
    assert orders[placed_by_other].status == OrderStatus.FILLED
    assert orders[resting.client_order_id].is_open
    assert {p.symbol: p.quantity for p in snapshot.positions} == {
        "AAPL": Decimal(10), "MSFT": Decimal(7)}
    await again.close()

    status = await asyncio.to_thread(run, "status", "--config", str(daemon.config))
    assert status.exit_code == 0, status.output
    assert f"running, pid {daemon.pid}" in status.stdout
    assert "2 positions" in status.stdout
    assert "1 open orders" in status.stdout

    assert await daemon.stop(signal.SIGTERM) == 0
    # Flushed: every order and fill is in the database; the resting order was left
    # working (not canceled) for the next start to pick up.
    book = await read_book(daemon.settings.database_path())
    statuses = {order.client_order_id: order.status for order in book.orders}
    assert statuses[bought.client_order_id] == OrderStatus.FILLED
    assert statuses[placed_by_other] == OrderStatus.FILLED
    assert statuses[resting.client_order_id] not in TERMINAL_STATUSES
    assert len(book.fills) == 2
    health = await load_health(daemon.settings.database_path())
    assert health is not None
    assert not health.running
    assert health.pid == daemon.pid
    assert not daemon.socket.exists()
    # Logs: structured on stderr and in the rotating file.
    assert "level=info logger=core.daemon" in daemon.stderr
    log_file = Path(platformdirs.user_log_dir("tapedeck")) / "default-daemon.log"
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert any(r["msg"] == "stopped" and r["logger"] == "core.daemon" for r in records)
    assert any(r["logger"] == "tapedeck.events" and "AAPL" in r["msg"] for r in records)

    gone = await asyncio.to_thread(run, "status", "--config", str(daemon.config))
    assert gone.exit_code == 3
    assert f"not running; pid {daemon.pid} stopped" in gone.stdout
    assert "2 positions" in gone.stdout


async def test_a_second_daemon_on_the_profile_is_refused(
        daemon: DaemonProcess, tmp_path: Path, config: Path) -> None:
    await (await daemon.client()).close()
    second = await DaemonProcess(tmp_path, config).start()
    assert await second.exit_code() == 2
    assert f"pid {daemon.pid}" in second.stderr
    assert "in use by another tapedeck" in second.stderr
    assert "Traceback" not in second.stderr


async def test_sighup_applies_a_changed_risk_limit(daemon: DaemonProcess,
                                                   tmp_path: Path) -> None:
    client = await daemon.client()
    await priced(client)
    request = OrderRequest("AAPL", Side.BUY, Decimal(10))  # about $1,800
    assert (await client.place_order(request)).status == OrderStatus.FILLED
    write_config(daemon.config, tmp_path / "daemon.sqlite", max_order_notional=1_000)
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)
    await daemon.wait_for_log("reloaded risk limits")
    with pytest.raises(CommandError, match="risk refused the order"):
        await client.place_order(request)
    # A config that no longer loads is reported; the daemon keeps the running limits.
    daemon.config.write_text("[risk]\nmax_order_notional = 'lots'\n", encoding="utf-8")
    daemon.process.send_signal(signal.SIGHUP)
    await daemon.wait_for_log("config not reloaded")
    with pytest.raises(CommandError, match="risk refused the order"):
        await client.place_order(request)
    assert (await client.snapshot()).rows
    await client.close()
    assert await daemon.stop() == 0


async def test_the_command_line_operations(daemon: DaemonProcess) -> None:
    client = await daemon.client()
    await priced(client)
    await client.place_order(OrderRequest("AAPL", Side.BUY, Decimal(5)))
    await client.place_order(OrderRequest("JPM", Side.BUY, Decimal(2), OrderType.LIMIT,
                                          limit_price=Decimal("100.00")))
    config = ("--config", str(daemon.config))
    # Abuse on one connection (garbage, ten megabytes on a line, a client that never
    # reads) while the others go on being served below.
    raw = await RawClient(daemon.socket).open()
    await raw.hello()
    await raw.send(b"{garbage\n" + b"x" * (10 * 1024 * 1024) + b"\n")
    assert "malformed JSON" in str((await raw.reply())["error"])
    assert "message too large" in str((await raw.reply())["error"])
    silent = await RawClient(daemon.socket).open()
    await silent.hello()
    await silent.request({"id": 1, "cmd": "subscribe"})  # then never reads again

    halted = await asyncio.to_thread(run, "halt", "--reason", "lunch", *config)
    assert halted.exit_code == 0
    assert "trading halted" in halted.stdout
    assert (await client.snapshot()).risk.state == TradingState.HALTED  # type: ignore[union-attr]
    with pytest.raises(CommandError, match="halted"):
        await client.place_order(OrderRequest("AAPL", Side.BUY, Decimal(1)))
    resumed = await asyncio.to_thread(run, "resume", *config)
    assert resumed.exit_code == 0
    assert (await client.snapshot()).risk.state == TradingState.ACTIVE  # type: ignore[union-attr]

    # The workstation on a profile a daemon owns offers to attach (here, with no
    # terminal to ask at, it says how).
    workstation = await asyncio.to_thread(run, "ui", *config)
    assert workstation.exit_code == 2
    assert f"A tapedeck daemon (pid {daemon.pid}) is running" in workstation.output
    assert "tapedeck attach" in workstation.output

    canceled = await asyncio.to_thread(run, "cancel-all", *config)
    assert canceled.exit_code == 0
    assert "1 order canceled" in canceled.stdout

    refused = await asyncio.to_thread(run, "flatten", *config)  # not a terminal, no --yes
    assert refused.exit_code != 0
    assert "--yes" in refused.output
    assert {p.symbol for p in (await client.snapshot()).positions} == {"AAPL"}
    flattened = await asyncio.to_thread(run, "flatten", "--yes", *config)
    assert flattened.exit_code == 0, flattened.output
    assert "1 positions closing" in flattened.stdout
    for _ in range(200):
        if not (await client.snapshot()).positions:
            break
        await asyncio.sleep(0.05)
    assert not (await client.snapshot()).positions
    await client.close()
    raw.close()
    silent.close()
    assert await daemon.stop() == 0

    for command in ("halt", "resume", "cancel-all", "flatten --yes"):
        result = await asyncio.to_thread(run, *command.split(), *config)
        assert result.exit_code == 3, (command, result.output)
        assert "no tapedeck daemon is running" in result.output
    unit = await asyncio.to_thread(run, "daemon", "--print-systemd-unit", *config)
    assert unit.exit_code == 0
    assert "ExecStart=" in unit.stdout
    assert " daemon --config " in unit.stdout
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit.stdout
    executable = unit.stdout.split("ExecStart=")[1].split()[0]
    assert os.path.isabs(executable)


@pytest.fixture
def loopback() -> Iterator[Receiver]:
    """An HTTP server on 127.0.0.1 that keeps what apprise's json:// posts to it."""
    receiver = Receiver()
    yield receiver
    receiver.close()


async def test_the_daemon_announces_itself_and_sighup_swaps_the_notification_rules(
        tmp_path: Path, loopback: Receiver) -> None:
    receiver = loopback
    config = tmp_path / "config.toml"
    database = tmp_path / "daemon.sqlite"
    targets = '[notify.targets]\nphone = "{url}"\n'
    write_config(config, database, notify=targets.format(url=receiver.url("before")))
    daemon = await DaemonProcess(tmp_path, config).start()
    try:
        await (await daemon.client()).close()
        await wait_until(lambda: receiver.titles("before") == ["tapedeck daemon started"])
        write_config(config, database, notify=targets.format(url=receiver.url("after")))
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        await daemon.wait_for_log("reloaded notification rules")
        assert await daemon.stop() == 0
        assert receiver.titles("after") == ["tapedeck daemon stopped"]
        assert receiver.titles("before") == ["tapedeck daemon started"]
    finally:
        await daemon.kill()


async def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)
