from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from textual.pilot import Pilot

from core.clock import SimClock
from core.model import to_ns
from tests.conftest import make_settings
from tui.app import TapedeckApp, create_app
from tui.screens.workstation import WorkstationScreen
from tui.widgets.chart import ChartPane
from tui.widgets.quote_board import QuoteBoard

FIXED_WALL = to_ns(datetime(2019, 3, 14, 15, 0, tzinfo=UTC))


@pytest.fixture(autouse=True)
def still_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., TapedeckApp]:
    def factory(**sections: dict[str, object]) -> TapedeckApp:
        app = create_app(make_settings(tmp_path, **sections), wall_clock=SimClock(FIXED_WALL))
        return app

    return factory


async def settle(pilot: Pilot[object]) -> WorkstationScreen:
    """Wait until the workstation shows quotes and the chart has loaded."""
    app = pilot.app
    assert isinstance(app, TapedeckApp)
    for _ in range(400):
        await pilot.pause(0.02)
        screen = app.workstation
        if screen is None or not screen.is_mounted:
            continue
        board = screen.query_one(QuoteBoard)
        chart = screen.query_one(ChartPane)
        if (board.rows and all(r.last == r.last for r in board.rows.values())
                and chart.symbol is not None and not screen.workers
                and not chart.pending):
            await pilot.pause(0.05)
            return screen
    raise AssertionError("the workstation did not settle")


def run_settled(pilot: Pilot[object]) -> asyncio.Future[WorkstationScreen]:
    return asyncio.ensure_future(settle(pilot))
