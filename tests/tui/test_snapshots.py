"""Snapshots of the workstation at 80x24 and 120x40: a paused replay at a fixed
moment, a fixed wall clock for the log, no flashes, no animation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.conftest import settle
from tui.app import TapedeckApp


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_workstation(snap_compare: Any, make_app: Callable[..., TapedeckApp],
                     size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[object]) -> None:
        await settle(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)

