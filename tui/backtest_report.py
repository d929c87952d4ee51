"""The report `tapedeck backtest` prints: the run's terms, its metrics table, the
equity curve (plotext) and its round trips (rich)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import tzinfo

    from rich.console import Console, RenderableType
    from rich.table import Table

    from core.backtest import BacktestResult
    from core.config import Settings
    from core.metrics import Metrics, RoundTrip

# The trades the report shows from each end of the run; the CSV has them all.
TRADES_SHOWN_EACH_END = 5
REFUSALS_SHOWN = 3
CHART_HEIGHT = 15
CHART_MIN_WIDTH = 40
CHART_MAX_WIDTH = 120


def report_console() -> Console:
    """stdout for the report. Lines run on rather than fold at 80 columns when piped
    (a grep should find a whole line), and numbers are not coloured by guesswork."""
    from rich.console import Console

    return Console(soft_wrap=True, highlight=False)


def display_zone(settings: Settings) -> tuple[tzinfo, str]:
    from tui import format as fmt

    return fmt.display_zone(settings.ui.timezone)


def params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{name}={value}" for name, value in params.items()) or "none"


def print_result(console: Console, result: BacktestResult, adjusted: bool, zone: tzinfo,
                 label: str) -> None:
    spec = result.spec
    prices = "adjusted" if adjusted else "raw"
    console.print(f"[bold]{escaped(spec.describe())}[/]")
    console.print(f"fills at {spec.fill_at}, {prices} prices, cash "
                  f"{money(spec.cash)}; params {escaped(params_text(dict(spec.params)))}")
    print_body(console, result.metrics, result.days, result.equity, result.trips, zone, label)
    if result.open_positions:
        held = ", ".join(f"{symbol} {quantity.normalize():f}"
                         for symbol, quantity in result.open_positions.items())
        console.print(f"still open at the end (not in the trades): {escaped(held)}")
    if result.refusals:
        count = len(result.refusals)
        console.print(f"risk refused {count} order{'s' if count != 1 else ''}:")
        for reason in result.refusals[:REFUSALS_SHOWN]:
            console.print(f"  {escaped(reason)}")
        if count > REFUSALS_SHOWN:
            console.print(f"  … and {count - REFUSALS_SHOWN} more (see --json)")
    if result.failure:
        console.print(f"[red]the strategy failed and stopped trading: "
                      f"{escaped(result.failure)}[/]")
    console.print(f"{result.bars:,} bar{'s' if result.bars != 1 else ''} in "
                  f"{result.elapsed_s:.2f} s")


def print_body(console: Console, metrics: Metrics, days: Sequence[date],
               equity: Sequence[float], trips: Sequence[RoundTrip], zone: tzinfo,
               label: str) -> None:
    from rich.text import Text

    print_fitted(console, metrics_table(metrics))
    chart = equity_chart(days, equity, _chart_width(console), colour=console.is_terminal)
    if chart:
        console.print(Text.from_ansi(chart))
    print_fitted(console, trades_table(trips, zone, label))


def print_fitted(console: Console, report: RenderableType) -> None:
    if console.is_terminal:
        console.print(report)
        return
    from rich.console import Console as RichConsole

    # Piped or redirected: there is no screen to fit, so print at the natural width
    # rather than folding times and prices into 80 columns.
    natural = console.measure(report, options=console.options.update_width(1_000))
    RichConsole(file=console.file, width=max(console.width, natural.maximum),
                highlight=False).print(report)


def _chart_width(console: Console) -> int:
    return max(CHART_MIN_WIDTH, min(CHART_MAX_WIDTH, console.width))


def metrics_table(metrics: Metrics) -> Table:
    from rich.table import Table

    from core.metrics import METRIC_LABELS, format_metric

    table = Table(title="Performance", title_justify="left")
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    values = metrics.as_dict()
    for name, label in METRIC_LABELS.items():
        table.add_row(label, format_metric(name, values[name]))
    return table


def equity_chart(days: Sequence[date], equity: Sequence[float], width: int, *,
                 colour: bool) -> str:
    """The equity curve drawn with plotext ('' with fewer than two closes: nothing to
    draw a line through)."""
    import plotext as plt

    if len(equity) < 2:
        return ""
    plt.clear_figure()  # plotext draws on one global figure: start from a blank one
    plt.date_form("Y-m-d")
    plt.plot([day.isoformat() for day in days], list(equity), marker="braille")
    plt.plotsize(width, CHART_HEIGHT)
    plt.title("Equity")
    if not colour:
        plt.theme("clear")
    chart: str = plt.build()
    plt.clear_figure()
    return chart if colour else str(plt.uncolorize(chart))


def trades_table(trips: Sequence[RoundTrip], zone: tzinfo, label: str) -> Table | str:
    from rich.table import Table
    from rich.text import Text

    from tui import format as fmt

    if not trips:
        return "no round trips"
    count = len(trips)
    shown = list(enumerate(trips, start=1))
    skipped = 0
    if count > 2 * TRADES_SHOWN_EACH_END:
        skipped = count - 2 * TRADES_SHOWN_EACH_END
        shown = shown[:TRADES_SHOWN_EACH_END] + shown[-TRADES_SHOWN_EACH_END:]
    title = f"Trades: {count} round trip{'s' if count != 1 else ''}"
    if skipped:
        title += f" (first and last {TRADES_SHOWN_EACH_END}; --trades-csv for all)"
    table = Table(title=title, title_justify="left")
    for heading in ("#", "Symbol", "Side", "Qty", f"Entry ({label})", "Entry price",
                    f"Exit ({label})", "Exit price", "P&L", "Return"):
        # Symbols never break; the rest fold onto more lines in a narrow terminal
        # rather than hide digits behind "…".
        whole = heading in ("Symbol", "Side")
        table.add_column(heading, justify="left" if whole else "right", no_wrap=whole,
                         overflow="fold")
    for number, trip in shown:
        if skipped and number == count - TRADES_SHOWN_EACH_END + 1:
            table.add_row("…", f"{skipped} more", *[""] * 8)
        style = "green" if trip.pnl > 0 else "red" if trip.pnl < 0 else ""
        table.add_row(
            str(number), trip.symbol, trip.direction, f"{trip.quantity.normalize():,f}",
            f"{fmt.clock_time(trip.entry_ns, zone):%Y-%m-%d %H:%M}",
            fmt.price(float(trip.entry_price)),
            f"{fmt.clock_time(trip.exit_ns, zone):%Y-%m-%d %H:%M}",
            fmt.price(float(trip.exit_price)),
            Text(f"{trip.pnl:+,.2f}", style=style),
            Text(f"{trip.return_pct:+.2f}%", style=style))
    return table


def money(value: Decimal) -> str:
    return f"${value:,.2f}"


def escaped(text: str) -> str:
    from rich.markup import escape

    return escape(text)

