"""The workstation attached to a daemon subprocess, driven under Pilot: it shows the
daemon's market, places an order through the ticket, says "disconnected" when the daemon
stops, resumes by itself when a daemon comes back, and quitting it leaves the daemon
running."""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from core.config import load_settings
from core.control_client import RemoteEngineClient
from core.model import OrderStatus
from tests.tui.conftest import settle
from tests.tui.test_daemon import DaemonProcess, write_config
from tui.app import create_app
from tui.screens.order_ticket import OrderTicket
from tui.widgets.blotter import Blotter
from tui.widgets.quote_board import QuoteBoard
from tui.widgets.status_bar import StatusBar

pytestmark = pytest.mark.slow


async def wait_until(pilot: Pilot[object], predicate: Callable[[], bool],
                     timeout: float = 60.0) -> None:
    """Generous: a daemon starting on a loaded machine takes seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await pilot.pause(0.05)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    write_config(path, tmp_path / "daemon.sqlite")
    with path.open("a", encoding="utf-8") as file:
        file.write("[ui]\nflash_ms = 0\n")
    return path


@pytest.fixture
async def daemon(tmp_path: Path, config: Path) -> AsyncIterator[DaemonProcess]:
    process = await DaemonProcess(tmp_path, config).start()
    yield process
    await process.kill()


async def test_the_attached_workstation(daemon: DaemonProcess, tmp_path: Path,
                                        config: Path) -> None:
    ready = await daemon.client()
    await ready.close()
    client = RemoteEngineClient(daemon.socket, reconnect=True)
    await client.connect()
    app = create_app(load_settings(config), client)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        status_bar = screen.query_one(StatusBar)
        assert status_bar.status is not None
        assert status_bar.status.link == f"daemon pid {daemon.pid}"
        assert f"daemon pid {daemon.pid}" in str(status_bar.render())
        assert set(screen.query_one(QuoteBoard).rows) == {"AAPL", "MSFT", "JPM"}

        await pilot.press("b")
        ticket = app.screen
        assert isinstance(ticket, OrderTicket)
        ticket.query_one("#quantity", Input).value = "12"
        await pilot.pause(0.3)
        await pilot.press("enter")
        blotter = screen.query_one(Blotter)
        await wait_until(pilot, lambda: bool(blotter.positions))
        [order] = blotter.orders.values()
        assert order.status == OrderStatus.FILLED
        assert blotter.positions["AAPL"].quantity == Decimal(12)

        # The daemon stops: the screen says so and keeps what it showed.
        assert await daemon.stop(signal.SIGTERM) == 0
        await wait_until(pilot, lambda: status_bar.status is not None
                         and status_bar.status.link_down)
        assert "Disconnected" in str(status_bar.render())
        assert blotter.positions["AAPL"].quantity == Decimal(12)

        # A daemon comes back on the profile: the screen resumes on its own.
        again = await DaemonProcess(tmp_path, config).start()
        try:
            await wait_until(pilot, lambda: status_bar.status is not None
                             and status_bar.status.link == f"daemon pid {again.pid}")
            await wait_until(pilot, lambda: "AAPL" in blotter.positions)
            assert blotter.positions["AAPL"].quantity == Decimal(12)
            await pilot.press("q")
        finally:
            await client.close()
        # Detaching left the daemon running.
        probe = await again.client()
        assert (await probe.snapshot()).positions
        await probe.close()
        assert await again.stop() == 0
