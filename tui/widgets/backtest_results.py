"""What the backtest screen shows of a run: its terms and metrics with the equity curve
(the results tab), its round trips (the trades tab), and the saved runs to reopen.

A fresh run and a saved one are shown alike, from a `ResultView`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, tzinfo
from decimal import Decimal
from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from core.backtest import BacktestResult
from core.backtest_runs import SavedRun
from core.metrics import METRIC_LABELS, Metrics, RoundTrip, format_metric
from tui import format as fmt
from tui.widgets.backtest_equity import EquityPlot

METRIC_COLUMN_WIDTH = 38  # a label, its value and a gap
# What a trader reads first fits 80 columns; the rest is a scroll to the right.
TRADE_WIDTHS = {"Symbol": 6, "Side": 5, "Entry": 10, "Exit": 10, "Qty": 7, "P&L": 10,
                "Return": 8, "Entry px": 9, "Exit px": 9, "#": 5}
SAVED_WIDTHS = {"Run": 4, "Strategy": 19, "Symbols": 12, "Return": 8, "Sharpe": 6,
                "Max DD": 7, "Trades": 6, "Dates": 21, "Saved": 16}
SAVED_SHOWN = 100
REFUSALS_SHOWN = 3
CHART_MIN_ROWS = 12  # below this the chart takes the whole pane, a scroll down
FIT_PASSES = 3


def params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{name}={value}" for name, value in params.items()) or "none"


def money(value: Decimal) -> str:
    return f"${value:,.2f}"


def symbols_text(symbols: Sequence[str], width: int) -> str:
    """As many of the symbols as fit in `width`, and how many more: 'AAPL, MSFT +3'."""
    for shown in range(len(symbols), 0, -1):
        text = ", ".join(symbols[:shown])
        if shown < len(symbols):
            text += f" +{len(symbols) - shown}"
        if len(text) <= width:
            return text
    return f"{len(symbols)} symbols"


@dataclass(frozen=True, slots=True)
class ResultView:
    """One run as the results tabs show it."""

    heading: str  # "ma_cross on AAPL, 2018-01-02 to 2019-12-31"
    terms: str  # fills, prices, cash, params
    metrics: Metrics
    days: list[date]
    equity: list[float]
    trips: list[RoundTrip]
    run_id: int | None = None
    notes: list[str] = field(default_factory=list)  # worth knowing, not errors
    failure: str = ""  # the strategy failed and stopped trading

    def with_run_id(self, run_id: int) -> ResultView:
        return ResultView(self.heading, self.terms, self.metrics, self.days, self.equity,
                          self.trips, run_id, self.notes, self.failure)


def view_of_result(result: BacktestResult, adjusted: bool, notes: Sequence[str] = ()
                   ) -> ResultView:
    spec = result.spec
    terms = (f"fills at {spec.fill_at.replace('_', ' ')} · {'adjusted' if adjusted else 'raw'} "
             f"prices · cash {money(spec.cash)} · {params_text(dict(spec.params))}")
    shown_notes = list(notes)
    if result.open_positions:
        held = ", ".join(f"{symbol} {quantity.normalize():f}"
                         for symbol, quantity in result.open_positions.items())
        shown_notes.append(f"still open at the end (not in the trades): {held}")
    if result.refusals:
        count = len(result.refusals)
        more = f" (and {count - REFUSALS_SHOWN} more)" if count > REFUSALS_SHOWN else ""
        shown_notes.append(f"risk refused {count} order{'s' if count != 1 else ''}: "
                           f"{'; '.join(result.refusals[:REFUSALS_SHOWN])}{more}")
    return ResultView(spec.describe(), terms, result.metrics, list(result.days),
                      list(result.equity), list(result.trips), notes=shown_notes,
                      failure=result.failure)


def view_of_saved(run: SavedRun, zone: tzinfo, zone_label: str) -> ResultView:
    saved = fmt.clock_time(run.created_ns, zone)
    terms = (f"saved {saved:%Y-%m-%d %H:%M} {zone_label} · fills at "
             f"{run.fill_at.replace('_', ' ')} · cash {money(run.cash)} · "
             f"{params_text(run.params)}")
    return ResultView(run.describe(), terms, run.metrics, [day for day, _ in run.equity],
                      [value for _, value in run.equity], list(run.trips), run.id)


def metrics_grid(metrics: Metrics, width: int, colours: dict[str, str]) -> Table:
    """The metrics as label/value pairs in as many columns as the width takes, in
    METRIC_LABELS order down each column."""
    columns = max(1, min(3, width // METRIC_COLUMN_WIDTH))
    names = list(METRIC_LABELS)
    rows = -(-len(names) // columns)
    table = Table.grid(padding=(0, 1), expand=False)
    for column in range(columns):
        table.add_column(style=colours.get("label", ""), no_wrap=True)
        table.add_column(justify="right", no_wrap=True, min_width=12)
        if column < columns - 1:
            table.add_column(width=2)
    values = metrics.as_dict()
    for row in range(rows):
        cells: list[RenderableType] = []
        for column in range(columns):
            index = column * rows + row
            if index < len(names):
                name = names[index]
                cells += [METRIC_LABELS[name], _metric_value(name, values[name], colours)]
            else:
                cells += ["", ""]
            if column < columns - 1:
                cells.append("")
        table.add_row(*cells)
    return table


def _metric_value(name: str, value: float | int, colours: dict[str, str]) -> Text:
    text = format_metric(name, value)
    if name in ("total_return_pct", "cagr_pct") and value == value and value != 0:
        # Signed as well as coloured: direction never depends on colour alone.
        sign = "+" if value > 0 else ""
        return Text(sign + text, style=f"bold {colours['up' if value > 0 else 'down']}")
    return Text(text, style="bold")


class ResultsPane(VerticalScroll):
    """The results tab: the run's terms, its metrics and its equity curve."""

    EMPTY = ("No results yet. Fill in the setup (F2) and press ctrl+r to run, or reopen a "
             "saved run (F5).")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view: ResultView | None = None
        self._fit_passes = 0

    def compose(self) -> ComposeResult:
        yield Static(self.EMPTY, id="bt-summary")
        yield Static("", id="bt-metrics")
        yield EquityPlot(id="bt-equity")

    def on_mount(self) -> None:
        self.query_one(EquityPlot).display = False
        # The summary and metrics carry the theme's colours: redrawn with a new theme.
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._recolour())

    def _recolour(self) -> None:
        if self.view is not None:
            self.query_one("#bt-summary", Static).update(self._summary(self.view))
            self._show_metrics()

    def on_resize(self) -> None:
        self._show_metrics()
        self._refit()

    def _refit(self) -> None:
        # The text above the chart takes its new height in a later layout pass, so
        # the fit is checked again over the next few refreshes.
        self._fit_passes = FIT_PASSES
        self.call_after_refresh(self._fit_chart)

    def _fit_chart(self) -> None:
        """The chart takes the room under the metrics, or (when that is too little, at
        80x24) the whole pane, under a scroll, rather than a sliver."""
        plot = self.query_one(EquityPlot)
        if not plot.display:
            return
        self._fit_passes -= 1
        if self._fit_passes > 0:
            self.call_after_refresh(self._fit_chart)
        viewport = self.scrollable_content_region.height
        above = 0
        for name in ("bt-summary", "bt-metrics"):
            block = self.query_one(f"#{name}", Static)
            margin = block.styles.margin
            above += block.outer_size.height + margin.top + margin.bottom
        room = viewport - above - plot.styles.margin.top - plot.styles.margin.bottom
        height = room if room >= CHART_MIN_ROWS else viewport
        if plot.styles.height is None or plot.styles.height.value != height:
            plot.styles.height = max(CHART_MIN_ROWS, height)

    @property
    def pending(self) -> bool:
        return self.query_one(EquityPlot).pending

    def show(self, view: ResultView | None) -> None:
        self.view = view
        plot = self.query_one(EquityPlot)
        if view is None:
            self.query_one("#bt-summary", Static).update(self.EMPTY)
            self.query_one("#bt-metrics", Static).update("")
            plot.display = False
            return
        self.query_one("#bt-summary", Static).update(self._summary(view))
        self._show_metrics()
        plot.display = len(view.equity) >= 2
        plot.show(view.days, view.equity, view.metrics.start_equity)
        self.scroll_home(animate=False)
        self._refit()

    def set_run_id(self, run_id: int) -> None:
        """The run has been saved as `run_id`: say so in the summary."""
        if self.view is not None:
            self.view = self.view.with_run_id(run_id)
            self.query_one("#bt-summary", Static).update(self._summary(self.view))

    def _colours(self) -> dict[str, str]:
        variables = self.app.theme_variables
        return {"up": variables.get("up", "green"), "down": variables.get("down", "red"),
                "label": "dim",
                "accent": variables.get("accent", "")}

    def _summary(self, view: ResultView) -> Text:
        colours = self._colours()
        text = Text()
        if view.run_id is not None:
            text.append(f"Run {view.run_id} · ", style=f"bold {colours['accent']}")
        text.append(view.heading, style="bold")
        text.append(f"\n{view.terms}", style=colours["label"])
        for note in view.notes:
            text.append(f"\nnote: {note}", style=colours["label"])
        if view.failure:
            text.append(f"\nthe strategy failed and stopped trading: {view.failure}",
                        style=f"bold {colours['down']}")
        return text

    def _show_metrics(self) -> None:
        metrics = self.query_one("#bt-metrics", Static)
        if self.view is None:
            return
        width = self.scrollable_content_region.width or self.size.width
        metrics.update(metrics_grid(self.view.metrics, width, self._colours()))


class TradesTable(DataTable[Any]):
    """The run's round trips, in the order they closed; dates in the display zone."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._shown: tuple[Sequence[RoundTrip], tzinfo] | None = None

    def on_mount(self) -> None:
        for column, width in TRADE_WIDTHS.items():
            self.add_column(column, key=column, width=width)
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._recolour())

    def _recolour(self) -> None:
        if self._shown is not None:
            row = self.cursor_row
            self.show(*self._shown)
            self.move_cursor(row=row)

    def show(self, trips: Sequence[RoundTrip], zone: tzinfo) -> None:
        self._shown = (trips, zone)
        self.clear()
        variables = self.app.theme_variables
        for number, trip in enumerate(trips, start=1):
            style = variables.get("up" if trip.pnl > 0 else "down", "") if trip.pnl else ""
            self.add_row(
                trip.symbol, trip.direction,
                f"{fmt.clock_time(trip.entry_ns, zone):%Y-%m-%d}",
                f"{fmt.clock_time(trip.exit_ns, zone):%Y-%m-%d}",
                Text(f"{trip.quantity.normalize():,f}", justify="right"),
                Text(f"{trip.pnl:+,.2f}", style=style, justify="right"),
                Text(f"{trip.return_pct:+.2f}%", style=style, justify="right"),
                Text(fmt.price(float(trip.entry_price)), justify="right"),
                Text(fmt.price(float(trip.exit_price)), justify="right"),
                Text(str(number), justify="right"))


class SavedRunsTable(DataTable[Any]):
    """The saved runs, newest first; enter reopens one (row key: the run id)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        for column, width in SAVED_WIDTHS.items():
            self.add_column(column, key=column, width=width)

    def show(self, runs: Sequence[SavedRun], zone: tzinfo) -> None:
        selected = self.cursor_row
        self.clear()
        for run in runs[:SAVED_SHOWN]:
            metrics = run.metrics
            self.add_row(
                Text(str(run.id), justify="right"), run.strategy,
                symbols_text(run.symbols, SAVED_WIDTHS["Symbols"]),
                Text(format_metric("total_return_pct", metrics.total_return_pct),
                     justify="right"),
                Text(format_metric("sharpe", metrics.sharpe), justify="right"),
                Text(format_metric("max_drawdown_pct", metrics.max_drawdown_pct),
                     justify="right"),
                Text(format_metric("trades", metrics.trades), justify="right"),
                f"{run.start} {run.end}",
                f"{fmt.clock_time(run.created_ns, zone):%Y-%m-%d %H:%M}",
                key=str(run.id))
        if runs:
            self.move_cursor(row=min(selected, len(runs) - 1, SAVED_SHOWN - 1))
