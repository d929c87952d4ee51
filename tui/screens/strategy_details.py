"""Enter in the strategies pane: everything about one instance, and for one that
failed, its error and traceback, in a scrollable view (escape closes)."""

from __future__ import annotations

from datetime import tzinfo

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from core.state import StrategyView
from tui import format as fmt
from tui.strategy_format import MODE_LABELS, money, shares


class StrategyDetails(ModalScreen[None]):
    DEFAULT_CSS = """
    StrategyDetails { align: center middle; }
    StrategyDetails > VerticalScroll {
        width: 90%; max-width: 110; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    StrategyDetails #details-traceback { margin-top: 1; color: $text-muted; }
    """
    BINDINGS = [Binding("escape,q,enter", "close", "Close", id="details.close")]

    def __init__(self, view: StrategyView, zone: tzinfo, zone_label: str = "") -> None:
        super().__init__()
        self.view = view
        self.zone = zone
        self.zone_label = zone_label

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self._summary(), id="details-summary")
            if self.view.traceback:
                yield Static(Text(self.view.traceback.rstrip()), id="details-traceback")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def _colour(self, name: str) -> str:
        return self.app.theme_variables.get(name, "")

    def _summary(self) -> Text:
        view = self.view
        muted = self._colour("secondary")
        text = Text()
        text.append(f"{view.id}", style="bold")
        text.append(f"  {view.title} ({view.strategy})\n", style=muted)

        def row(label: str, value: str | Text) -> None:
            text.append(f"{label:<14}", style=muted)
            text.append(value)
            text.append("\n")

        row("Mode", MODE_LABELS.get(view.mode, view.mode).strip())
        row("Symbols", ", ".join(view.symbols))
        row("Parameters", ", ".join(f"{k}={v}" for k, v in view.params.items()) or "none")
        row("Positions", ", ".join(f"{s} {shares(q)}" for s, q in view.positions.items())
            or "flat")
        row("Day P&L", money(view.day_pnl))
        row("Total P&L", money(view.total_pnl))
        row("Working", f"{view.open_orders} orders")
        last = fmt.DASH
        if view.last_signal:
            when = fmt.clock_time(view.last_signal_ns, self.zone).strftime("%Y-%m-%d %H:%M:%S")
            last = f"{when} {self.zone_label} {view.last_signal}".replace("  ", " ")
        row("Signals today", str(view.signals_today))
        row("Last signal", last)
        if view.error:
            text.append("\n")
            text.append("ERROR ", style=f"bold {self._colour('error')}")
            text.append(view.error, style=self._colour("error"))
            text.append("\nThe instance was switched off and its working orders canceled. "
                        "Fix the strategy, then m switches it on again.", style=muted)
        return text

    def action_close(self) -> None:
        self.dismiss(None)
