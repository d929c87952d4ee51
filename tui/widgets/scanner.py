"""The scanner pane: a preset picker, a universe, the scan typed with its errors shown
as you type, and the live results.

The results table has one row per hit: the symbol, the date it started matching, the
values behind each condition and the ranking value, in the scan's ranking order. A hit
whose values are from its last close (a symbol the feed does not stream) is dimmed.
The table is rebuilt only when the engine's scan view changes (at most once per
rescan), keeping the cursor on the same symbol.

The pane never commands the engine: it posts `ScanSubmitted`, `ChartRequested` and
`SaveRequested`, and the workstation acts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import tzinfo
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Select, Static
from textual.widgets.data_table import RowDoesNotExist

from core.scan_language import parse
from core.scan_presets import PRESETS
from core.scan_syntax import ScanError
from tui import format as fmt

if TYPE_CHECKING:
    from core.saved_scans import SavedScan
    from core.scan_service import ScanView
    from core.scanner import ScanResult

SAVED_PREFIX = "saved:"
PRESET_PREFIX = "preset:"
INPUT_TEXT_OFFSET = 0  # a compact input's text starts at its first column
TERM_WIDTH = 16  # a value column's widest header


class ScannerPane(Vertical):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save scan", id="scanner.save"),
        Binding("escape", "focus_results", "Results", show=False, id="scanner.results"),
        Binding("slash", "focus_input", "Edit scan", show=False, id="scanner.edit"),
    ]

    class ScanSubmitted(Message):
        def __init__(self, text: str, universe: str) -> None:
            super().__init__()
            self.text = text
            self.universe = universe

    class ChartRequested(Message):
        def __init__(self, symbol: str) -> None:
            super().__init__()
            self.symbol = symbol

    class SaveRequested(Message):
        def __init__(self, text: str, universe: str, name: str) -> None:
            super().__init__()
            self.text = text
            self.universe = universe
            self.name = name

    def __init__(self, zone: tzinfo, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.zone = zone
        self.view: ScanView | None = None
        self._saved_names: tuple[str, ...] = ()
        self._shown_version = -1
        self._columns: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        with Horizontal(id="scan-controls"):
            yield Select(self._options(()), prompt="Preset or saved scan", compact=True,
                         id="scan-preset")
            yield Input("bundled", placeholder="universe: bundled, a watchlist, or symbols",
                        compact=True, id="scan-universe")
        yield Input(placeholder="a scan, e.g. rsi(14) < 30 and close > sma(close, 200) "
                    "sort by rsi(14) asc", compact=True, id="scan-input")
        yield Static(id="scan-error")
        yield Static(id="scan-status")
        yield DataTable(cursor_type="row", zebra_stripes=False, id="scan-results")

    def on_mount(self) -> None:
        self.border_title = "Scanner"
        self._show_status()

    # ------------------------------------------------------------------ state in

    def set_view(self, view: ScanView | None) -> None:
        if view is None or view.version == self._shown_version:
            return
        first = self._shown_version < 0
        self._shown_version = view.version
        self.view = view
        names = tuple(scan.name for scan in view.saved)
        if names != self._saved_names:
            self._saved_names = names
            self.query_one("#scan-preset", Select).set_options(self._options(view.saved))
        if first and view.text:
            # The engine's active scan (restored after a restart) fills the form.
            self.query_one("#scan-input", Input).value = view.text
            self.query_one("#scan-universe", Input).value = view.universe
        self._show_results(view.result)
        self._show_status()

    @property
    def selected_symbol(self) -> str | None:
        table = self.query_one("#scan-results", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    def focus_results(self) -> None:
        self.query_one("#scan-results", DataTable).focus()

    def focus_input(self) -> None:
        """The expression when there is none yet, the results otherwise."""
        if self.view is not None and self.view.text:
            self.focus_results()
        else:
            self.query_one("#scan-input", Input).focus()

    # ------------------------------------------------------------------ typing

    @on(Input.Changed, "#scan-input")
    def check(self, event: Input.Changed) -> None:
        """Parse as the trader types: the error under the column where it starts."""
        self._show_error(event.value)

    @on(Input.Submitted, "#scan-input")
    @on(Input.Submitted, "#scan-universe")
    def submit(self, event: Input.Submitted) -> None:
        event.stop()
        text = self.query_one("#scan-input", Input).value
        if not text.strip():
            self.query_one("#scan-input", Input).focus()
            return
        if self._show_error(text):
            return
        universe = self.query_one("#scan-universe", Input).value.strip() or "bundled"
        self.post_message(self.ScanSubmitted(text, universe))
        self.focus_results()

    @on(Select.Changed, "#scan-preset")
    def picked(self, event: Select.Changed) -> None:
        value = event.value
        if not isinstance(value, str):
            return
        text, universe = self._lookup(value)
        if text is None:
            return
        self.query_one("#scan-input", Input).value = text
        self.query_one("#scan-universe", Input).value = universe
        self._show_error(text)
        self.post_message(self.ScanSubmitted(text, universe))
        self.focus_results()

    @on(DataTable.RowSelected, "#scan-results")
    def chart(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.ChartRequested(str(event.row_key.value)))

    def action_focus_results(self) -> None:
        self.focus_results()

    def action_focus_input(self) -> None:
        self.query_one("#scan-input", Input).focus()

    def action_save(self) -> None:
        text = self.query_one("#scan-input", Input).value
        if self._show_error(text) or not text.strip():
            self.notify("type a valid scan to save", severity="warning")
            return
        universe = self.query_one("#scan-universe", Input).value.strip() or "bundled"
        from tui.screens.prompt import TextPrompt

        def named(name: str | None) -> None:
            if name:
                self.post_message(self.SaveRequested(text, universe, name))

        self.app.push_screen(TextPrompt("Save the scan as", placeholder="a name"), named)

    # ------------------------------------------------------------------ drawing

    def _options(self, saved: Sequence[SavedScan]) -> list[tuple[str, str]]:
        options = [(preset.title, PRESET_PREFIX + preset.name) for preset in PRESETS]
        options += [(f"★ {scan.name}", SAVED_PREFIX + scan.name) for scan in saved]
        return options

    def _lookup(self, value: str) -> tuple[str | None, str]:
        if value.startswith(PRESET_PREFIX):
            name = value.removeprefix(PRESET_PREFIX)
            preset = next((p for p in PRESETS if p.name == name), None)
            return (preset.text if preset else None), "bundled"
        name = value.removeprefix(SAVED_PREFIX)
        saved = self.view.saved if self.view else ()
        scan = next((s for s in saved if s.name == name), None)
        return (scan.text, scan.universe) if scan else (None, "bundled")

    def _show_error(self, text: str) -> bool:
        """Show what is wrong with `text` (nothing for a valid or empty scan); whether
        something is."""
        line = self.query_one("#scan-error", Static)
        if not text.strip():
            line.update(Text("type a scan and press enter; escape: results; ctrl+s: save",
                             style="dim"))
            return False
        try:
            parse(text)
        except ScanError as error:
            line.update(self._error_text(error))
            return True
        line.update(Text("✓ valid: enter to run", style="dim"))
        return False

    def _error_text(self, error: ScanError) -> Text:
        """A caret under the column where the problem starts, the message after it (or
        before it, when it only fits there; cut at the pane's edge otherwise)."""
        width = max(self.size.width, 20)
        where = INPUT_TEXT_OFFSET + error.column - 1
        message = f"column {error.column}: {error.message}"
        if where + 2 + len(message) > width and len(message) + 2 <= where:
            return Text(" " * (where - len(message) - 1) + f"{message} ^", style="bold red")
        return Text(" " * where + f"^ {message}", style="bold red")

    def _show_status(self) -> None:
        status = self.query_one("#scan-status", Static)
        view = self.view
        if view is None or not view.text:
            status.update(Text("pick a preset or type a scan", style="dim"))
            return
        if view.error:
            status.update(Text(view.error, style="bold red"))
            return
        result = view.result
        if view.loading and result is None:
            status.update(Text(f"loading the {view.universe} universe…", style="dim"))
            return
        if result is None or result.day is None:
            status.update(Text("no result", style="dim"))
            return
        shown = (f"{len(result.hits)} of {result.matched}" if result.matched > len(result.hits)
                 else f"{result.matched}")
        stamp = fmt.clock_time(view.evaluated_ns, self.zone).strftime("%H:%M:%S") \
            if view.evaluated_ns else ""
        parts = [f"{shown} matched of {result.scanned} scanned on {result.day}",
                 view.universe]
        if any(hit.as_of != result.day for hit in result.hits):
            parts.append("dim: on the last close")
        if stamp:
            parts.append(f"updated {stamp}")
        status.update(Text(" · ".join(parts)))

    def _show_results(self, result: ScanResult | None) -> None:
        table = self.query_one("#scan-results", DataTable)
        keep = self.selected_symbol
        columns = self._column_titles(result)
        if columns != self._columns:
            table.clear(columns=True)
            self._columns = columns
            for title in columns:
                table.add_column(title, key=title)
        else:
            table.clear()
        if result is None:
            return
        rank_extra = len(columns) > 3 + len(result.terms)
        for position, hit in enumerate(result.hits, start=1):
            dim = "dim" if hit.as_of != result.day else ""
            cells: list[Text] = [Text(str(position), style="dim", justify="right"),
                                 Text(hit.symbol, style=f"bold {dim}".strip()),
                                 Text(hit.since.strftime("%Y-%m-%d"), style=dim)]
            cells += [_value(hit.values[term], dim) for term in result.terms]
            if rank_extra:
                cells.append(_value(hit.rank, dim))
            table.add_row(*cells, key=hit.symbol)
        if keep is not None:
            try:
                table.move_cursor(row=table.get_row_index(keep))
            except RowDoesNotExist:  # it left the results
                table.move_cursor(row=0)

    def _column_titles(self, result: ScanResult | None) -> tuple[str, ...]:
        if result is None:
            return ("#", "Symbol", "Since")
        titles = ["#", "Symbol", "Since", *(_title(term) for term in result.terms)]
        scan = result.scan
        if scan.sort_by is not None and scan.sort_by.render() not in result.terms:
            arrow = "↓" if scan.descending else "↑"
            titles.append(f"{arrow} {_title(scan.sort_by.render())}")
        # DataTable needs distinct keys: two long terms may shorten alike.
        seen: dict[str, int] = {}
        unique = []
        for title in titles:
            seen[title] = seen.get(title, 0) + 1
            unique.append(title if seen[title] == 1 else f"{title} {seen[title]}")
        return tuple(unique)


def _title(term: str) -> str:
    return term if len(term) <= TERM_WIDTH else term[:TERM_WIDTH - 1] + "…"


def _value(value: float, style: str) -> Text:
    if math.isnan(value):
        text = "—"
    elif abs(value) >= 100_000:
        text = fmt.volume(value)
    else:
        text = f"{value:,.2f}"
    return Text(text, style=style, justify="right")
