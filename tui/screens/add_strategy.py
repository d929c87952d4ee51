"""`A` (or insert): add a strategy instance. Pick the strategy from the engine's
catalogue (title and description), check the symbols (the quote board's selection,
editable), enter. The instance starts in OBSERVE: signals only, no orders.

The engine adds it (and warms it on history); a refusal shows in place.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from core.client import CommandError, EngineClient
from core.state import StrategyInfo, StrategyView


def parse_symbols(text: str) -> list[str]:
    """'aapl, msft xom' -> ['AAPL', 'MSFT', 'XOM'] (the engine checks them)."""
    return [s.upper() for s in text.replace(",", " ").split() if s]


class AddStrategy(ModalScreen[StrategyView | None]):
    DEFAULT_CSS = """
    AddStrategy { align: center middle; }
    AddStrategy > Vertical {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    AddStrategy #add-title { text-style: bold; }
    AddStrategy OptionList { height: auto; max-height: 50vh; border: none; }
    AddStrategy #add-symbols-row { height: 1; margin-top: 1; }
    AddStrategy #add-symbols-row > Label { width: 10; }
    AddStrategy #add-symbols { width: 1fr; background: $panel; }
    AddStrategy #add-symbols:focus { background: $primary 30%; }
    AddStrategy #add-error { height: auto; color: $error; display: none; }
    AddStrategy #add-error.-shown { display: block; }
    AddStrategy #add-hint { color: $text-muted; height: auto; }
    AddStrategy #add-buttons { height: 1; align-horizontal: right; margin-top: 1; }
    AddStrategy Button { margin-left: 1; }
    """
    BINDINGS = [Binding("escape", "close", "Close", id="add_strategy.close")]

    def __init__(self, client: EngineClient, catalog: Sequence[StrategyInfo],
                 symbols: Sequence[str]) -> None:
        super().__init__()
        self.client = client
        self.catalog = list(catalog)
        self.symbols = list(symbols)
        self.adding = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Add a strategy instance", id="add-title")
            yield OptionList(*(self._option(info) for info in self.catalog),
                             id="add-strategies")
            with Horizontal(id="add-symbols-row"):
                yield Label("Symbols")
                yield Input(", ".join(self.symbols), id="add-symbols", compact=True,
                            placeholder="e.g. AAPL, MSFT")
            yield Static("", id="add-error", markup=False)
            yield Static("It starts in OBSERVE (signals only, no orders): m in the "
                         "strategies pane changes the mode. ↑↓ pick · tab to the symbols · "
                         "enter adds · esc closes", id="add-hint")
            with Horizontal(id="add-buttons"):
                yield Button("Close (esc)", id="close", compact=True)
                yield Button("Add (enter)", id="add", compact=True, variant="primary")

    @staticmethod
    def _option(info: StrategyInfo) -> Option:
        prompt = Text()
        prompt.append(info.title, style="bold")
        prompt.append(f"  {info.name}\n", style="dim")
        prompt.append(info.description or "(no description)", style="dim")
        return Option(prompt, id=info.name)

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        if options.option_count:
            options.highlighted = 0
            options.focus()
        else:
            self._error("No strategies are installed.")

    @property
    def chosen(self) -> StrategyInfo | None:
        options = self.query_one(OptionList)
        index = options.highlighted
        if index is None or not 0 <= index < len(self.catalog):
            return None
        return self.catalog[index]

    @on(OptionList.OptionSelected)
    @on(Input.Submitted)
    def _enter(self) -> None:
        self.action_add()

    @on(Input.Changed)
    def _typed(self) -> None:
        self._error("")

    def _error(self, message: str) -> None:
        error = self.query_one("#add-error", Static)
        error.update(message)
        error.set_class(bool(message), "-shown")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "add":
            self.action_add()
        else:
            self.action_close()

    def action_add(self) -> None:
        info = self.chosen
        if info is None:
            self._error("Pick a strategy from the list.")
            return
        symbols = parse_symbols(self.query_one("#add-symbols", Input).value)
        if not symbols:
            self._error("Type at least one symbol.")
            self.query_one("#add-symbols", Input).focus()
            return
        if not self.adding:
            self.adding = True
            self._add(info.name, symbols)

    @work(exclusive=True, group="add-strategy", exit_on_error=False)
    async def _add(self, name: str, symbols: list[str]) -> None:
        try:
            view = await self.client.add_strategy(name, symbols)
        except CommandError as err:
            self.adding = False
            self._error(str(err))
            return
        self.adding = False
        self.dismiss(view)

    def action_close(self) -> None:
        self.dismiss(None)
