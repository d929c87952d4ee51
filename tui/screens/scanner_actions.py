"""The workstation's scanner: run what the scanner pane submits, chart a hit (enter),
save a scan (ctrl+s), and trade a hit (`b`/`s` act on the scanner's selected row
while its pane is shown).

A base of `WorkstationScreen`, kept apart for size, like `TradingActions`.
"""

from __future__ import annotations

from collections.abc import Callable

from textual import on
from textual.screen import Screen

from core.client import CommandError, EngineClient
from tui.widgets.scanner import ScannerPane


class ScannerActions(Screen[None]):
    client: EngineClient
    pane: str
    # The workstation's:
    _load_chart: Callable[[str | None], object]
    action_show_pane: Callable[[str], None]

    @on(ScannerPane.ScanSubmitted)
    async def run_scan(self, event: ScannerPane.ScanSubmitted) -> None:
        try:
            view = await self.client.set_scan(event.text, event.universe)
        except CommandError as error:
            self.notify(str(error), title="Scan refused", severity="error", timeout=8)
            return
        self.query_one(ScannerPane).set_view(view)

    @on(ScannerPane.ChartRequested)
    def chart_hit(self, event: ScannerPane.ChartRequested) -> None:
        self._load_chart(event.symbol)
        if self.has_class("compact"):
            self.action_show_pane("chart")
            # Nothing of the scanner's keeps the keys while the chart covers it (`7`
            # must bring it back, not type into its hidden input).
            self.set_focus(None)

    @on(ScannerPane.SaveRequested)
    async def save_scan(self, event: ScannerPane.SaveRequested) -> None:
        try:
            saved = await self.client.save_scan(event.name, event.text, event.universe)
        except CommandError as error:
            self.notify(str(error), title="Not saved", severity="error", timeout=8)
            return
        self.notify(f"saved as {saved.name!r}: pick it from the preset list")

    def scanner_symbol(self) -> str | None:
        """The scanner's selected hit, while its pane is the one shown."""
        if self.pane != "scanner":
            return None
        return self.query_one(ScannerPane).selected_symbol
