"""`?`: every key binding that is active, with its id (for remapping in config)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 100; height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close help", id="help.close")]

    def __init__(self, bindings: list[tuple[str, str, str]], legend: str) -> None:
        """`bindings`: (key display, description, binding id) rows."""
        super().__init__()
        self._rows = bindings
        self._legend = legend

    def compose(self) -> ComposeResult:
        table = Table(title="tapedeck — keys", expand=True, box=None, padding=(0, 1))
        table.add_column("Key", style="bold", no_wrap=True)
        table.add_column("Action")
        table.add_column("Id (remap in [keys])", style="dim", no_wrap=True)
        for key, description, binding_id in self._rows:
            table.add_row(key, description, binding_id)
        with VerticalScroll():
            yield Static(table)
            yield Static(Text(self._legend, style="dim"))

    def action_dismiss(self, result: None = None) -> None:  # type: ignore[override]
        self.dismiss(result)
