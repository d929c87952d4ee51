"""`/`: find a symbol with completion from the data provider and add it to the
watchlist. An unknown symbol is explained in place, not silently dropped."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from core.client import CommandError, EngineClient
from core.model import Instrument


@dataclass(frozen=True, slots=True)
class AddedSymbol:
    symbol: str
    source: str


class SymbolSearch(ModalScreen[AddedSymbol | None]):
    DEFAULT_CSS = """
    SymbolSearch { align: center top; }
    SymbolSearch > Vertical {
        margin-top: 3; width: 64; height: auto; max-height: 24;
        border: round $accent; background: $surface; padding: 0 1;
    }
    SymbolSearch OptionList { height: auto; max-height: 12; border: none; }
    SymbolSearch #search-error { color: $error; height: auto; }
    SymbolSearch #search-hint { color: $secondary; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="search.cancel"),
        Binding("down", "focus_results", "Results", show=False, id="search.results"),
    ]

    def __init__(self, client: EngineClient, watchlist: str) -> None:
        super().__init__()
        self._client = client
        self._watchlist = watchlist

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Add a symbol to [b]{self._watchlist}[/b]", id="search-title")
            yield Input(placeholder="symbol, e.g. AAPL", id="search-input")
            yield Label("", id="search-error")
            yield OptionList(id="search-results")
            yield Label("enter adds · ↓ picks from the list · esc closes", id="search-hint")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self._complete("")

    @on(Input.Changed)
    def changed(self, event: Input.Changed) -> None:
        self.query_one("#search-error", Label).update("")
        self._complete(event.value)

    @work(exclusive=True, group="complete", exit_on_error=False)
    async def _complete(self, text: str) -> None:
        matches: list[Instrument] = await self._client.search(text, 12) if text.strip() else []
        results = self.query_one(OptionList)
        results.clear_options()
        results.add_options(Option(m.symbol, id=m.symbol) for m in matches)

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self._add(event.value)

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self._add(event.option.id)

    @work(exclusive=True, group="add", exit_on_error=False)
    async def _add(self, text: str) -> None:
        try:
            instrument = await self._client.add_symbol(self._watchlist, text)
        except CommandError as error:
            self.query_one("#search-error", Label).update(str(error))
            self.query_one(Input).focus()
            return
        self.dismiss(AddedSymbol(instrument.symbol, instrument.source))

    def action_focus_results(self) -> None:
        results = self.query_one(OptionList)
        if results.option_count:
            results.focus()
            results.highlighted = 0

    def action_cancel(self) -> None:
        self.dismiss(None)
