"""`tapedeck backtest`: run a strategy over the bundled daily bars, print what it did,
and keep the run in the profile database; `--list` and `--show` read saved runs back.

Only typer is imported at module level: `tapedeck --help` must stay instant, and the
backtester pulls in pandas and numpy. Everything heavy is imported inside the command.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from tui.cli_options import ConfigOption, ProfileOption

if TYPE_CHECKING:
    from datetime import tzinfo

    from rich.console import Console, RenderableType
    from rich.table import Table

    from core.backtest import BacktestResult, Progress
    from core.backtest_runs import SavedRun
    from core.config import Settings
    from core.metrics import Metrics, RoundTrip
    from core.strategies.base import Strategy, StrategyParams
    from core.strategies.registry import StrategyRegistry

DEFAULT_SYMBOLS = ("AAPL",)
DEFAULT_START = "2016-01-04"
DEFAULT_END = "2019-12-31"
DEFAULT_CASH = "100000"
DEFAULT_LIST_LIMIT = 50
FILL_AT_CHOICES = ("next_open", "close")  # core.backtest.FILL_AT, without importing pandas
STDOUT = "-"
# The trades the report shows from each end of the run; the CSV has them all.
TRADES_SHOWN_EACH_END = 5
REFUSALS_SHOWN = 3
CHART_HEIGHT = 15
CHART_MIN_WIDTH = 40
CHART_MAX_WIDTH = 120
TRADES_CSV_HEADER = ("symbol", "direction", "quantity", "entry_time", "entry_price",
                     "exit_time", "exit_price", "commission", "pnl", "return_pct")



@dataclass(frozen=True, slots=True)
class Request:
    """What the command line asked for, checked as far as it can be without data."""

    strategy: str
    symbols: tuple[str, ...]
    start: date
    end: date
    cash: Decimal
    fill_at: str
    adjusted: bool
    params: dict[str, str]  # name -> the text given; the strategy's model coerces it


def backtest_command(
    ctx: typer.Context,
    strategy: Annotated[str | None, typer.Argument(
        help="The strategy to run, e.g. ma_cross (leave it out to see them all).",
        metavar="STRATEGY", show_default=False)] = None,
    symbols: Annotated[list[str] | None, typer.Option(
        "--symbols", "-s", help="Symbols, comma-separated or repeated (default AAPL).",
        metavar="SYMBOLS", show_default=False)] = None,
    start: Annotated[str, typer.Option("--start", help="First session, YYYY-MM-DD.",
                                       metavar="DATE")] = DEFAULT_START,
    end: Annotated[str, typer.Option("--end", help="Last session, YYYY-MM-DD.",
                                     metavar="DATE")] = DEFAULT_END,
    params: Annotated[list[str] | None, typer.Option(
        "--param", "-P", help="A strategy parameter as NAME=VALUE (repeatable); the rest "
        "keep their defaults.", metavar="NAME=VALUE", show_default=False)] = None,
    cash: Annotated[str, typer.Option("--cash", help="Starting cash.", metavar="AMOUNT")
                    ] = DEFAULT_CASH,
    fill_at: Annotated[str | None, typer.Option(
        "--fill-at", help="Fill a bar's orders at the next_open or at its close (default: "
        "strategies.backtest_fill_at).", metavar="next_open|close",
        show_default=False)] = None,
    adjusted: Annotated[bool | None, typer.Option(
        "--adjusted/--raw", help="Split- and dividend-adjusted or raw prices (default: "
        "strategies.backtest_adjusted).", show_default=False)] = None,
    trades_csv: Annotated[str | None, typer.Option(
        "--trades-csv", help="Write the round trips as CSV to this file ('-' for stdout).",
        metavar="PATH", show_default=False)] = None,
    json_out: Annotated[str | None, typer.Option(
        "--json", help="Write the whole result as JSON to this file ('-' for stdout, and "
        "nothing else there).", metavar="PATH", show_default=False)] = None,
    no_save: Annotated[bool, typer.Option("--no-save", help="Do not keep the run in the "
                                          "profile database.")] = False,
    list_saved: Annotated[bool, typer.Option("--list", help="List the saved runs, newest "
                                             "first.")] = False,
    limit: Annotated[int | None, typer.Option(
        "--limit", "-n", min=0, help=f"With --list: the newest N (default "
        f"{DEFAULT_LIST_LIMIT}; 0 for all).", metavar="N", show_default=False)] = None,
    show: Annotated[int | None, typer.Option("--show", min=1, help="Print saved run ID again.",
                                             metavar="ID", show_default=False)] = None,
    config: ConfigOption = None,
    profile: ProfileOption = None,
) -> None:
    """Backtest a strategy on the bundled daily bars (2015-2019) and save the run.

    Examples: `tapedeck backtest ma_cross --symbols AAPL,MSFT --param fast=20 --param
    slow=50`; `tapedeck backtest --list`; `tapedeck backtest --show 3`."""
    from tui.cli import _global, fail, load

    config, profile = _global(ctx, config, profile)
    if limit is not None and not list_saved:
        fail("--limit goes with --list")
    if list_saved or show is not None:
        if list_saved and show is not None:
            fail("use either --list or --show, not both")
        if strategy is not None:
            fail("--list and --show read saved runs: leave out the strategy")
        settings = load(config, profile)
        if show is not None:
            _show_saved(settings, show)
        else:
            _list_saved(settings, DEFAULT_LIST_LIMIT if limit is None else limit)
        return
    settings = load(config, profile)
    registry = _registry(settings, config)
    if strategy is None:
        fail(f"name a strategy to run ({_known(registry)}), or use --list or --show ID")
    if trades_csv == STDOUT and json_out == STDOUT:
        fail("only one of --trades-csv and --json can write to stdout ('-')")
    for option, target in (("--trades-csv", trades_csv), ("--json", json_out)):
        _check_writable(option, target)
    request = _request(strategy, symbols, start, end, cash, fill_at, adjusted, params or [],
                       settings)
    code = _run(settings, registry, request, trades_csv=trades_csv, json_out=json_out,
                save=not no_save)
    raise typer.Exit(code)


# -- the command line ---------------------------------------------------------------------


def _request(strategy: str, symbols: Sequence[str] | None, start: str, end: str, cash: str,
             fill_at: str | None, adjusted: bool | None, params: Sequence[str],
             settings: Settings) -> Request:
    from tui.cli import fail

    chosen_fill = fill_at or settings.strategies.backtest_fill_at
    if chosen_fill not in FILL_AT_CHOICES:
        fail(f"--fill-at must be {' or '.join(FILL_AT_CHOICES)}, not {chosen_fill!r}")
    first, last = _date("--start", start), _date("--end", end)
    if first > last:
        fail(f"the start {first} is after the end {last}")
    return Request(
        strategy=strategy,
        symbols=_symbols(symbols or DEFAULT_SYMBOLS),
        start=first,
        end=last,
        cash=_cash(cash),
        fill_at=chosen_fill,
        adjusted=settings.strategies.backtest_adjusted if adjusted is None else adjusted,
        params=_param_pairs(params),
    )


def _date(option: str, text: str) -> date:
    from tui.cli import fail

    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        fail(f"{option} expects a date as YYYY-MM-DD, not {text!r}")


def _symbols(given: Sequence[str]) -> tuple[str, ...]:
    from tui.cli import fail

    chosen: list[str] = []
    for item in given:
        for piece in item.split(","):
            symbol = piece.strip().upper()
            if not symbol:
                fail(f"--symbols has an empty name in {item!r}")
            if symbol not in chosen:
                chosen.append(symbol)
    return tuple(chosen)


def _cash(text: str) -> Decimal:
    from tui.cli import fail

    try:
        # Separators as people write money: 100,000 and 100_000 both mean 100000.
        value = Decimal(text.strip().replace(",", "").replace("_", ""))
    except InvalidOperation:
        fail(f"--cash expects an amount such as 100000, not {text!r}")
    if not value.is_finite() or value <= 0:
        fail(f"--cash must be more than 0, not {text!r}")
    return value


def _param_pairs(given: Sequence[str]) -> dict[str, str]:
    from tui.cli import fail

    pairs: dict[str, str] = {}
    for item in given:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            fail(f"--param expects NAME=VALUE, not {item!r}")
        if name in pairs:
            fail(f"param {name} is given twice")
        pairs[name] = value.strip()
    return pairs


def _check_writable(option: str, target: str | None) -> None:
    """Refuse a destination that cannot work before spending time on the run."""
    from tui.cli import fail

    if target is None or target == STDOUT:
        return
    path = Path(target).expanduser()
    if path.is_dir():
        fail(f"{option}: {path} is a directory")
    if not path.parent.is_dir():
        fail(f"{option}: there is no directory {path.parent}")


# -- strategies ---------------------------------------------------------------------------


def strategy_folder(settings: Settings, config: Path | None) -> Path | None:
    """The user's strategy folder: the configured one, else 'strategies' beside the
    config file."""
    if settings.strategies.folder is not None:
        return settings.strategies.folder
    from core.config import config_path

    beside = (config or config_path()).expanduser().parent / "strategies"
    return beside if beside.is_dir() else None


def _registry(settings: Settings, config: Path | None) -> StrategyRegistry:
    from core.strategies.registry import discover

    # The registry logs each problem too; printed once below as a warning, not twice.
    with _silenced("core.strategies.registry"):
        registry = discover(strategy_folder(settings, config))
    for problem in registry.problems:
        typer.echo(f"tapedeck: warning: strategy {problem.source}: {problem.message}", err=True)
    return registry


@contextlib.contextmanager
def _silenced(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    propagate = logger.propagate
    quiet = logging.NullHandler()
    logger.addHandler(quiet)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(quiet)
        logger.propagate = propagate


def _known(registry: StrategyRegistry) -> str:
    return "known: " + (", ".join(sorted(registry.classes)) or "none")


def strategy_params(strategy_class: type[Strategy[Any]], given: dict[str, str]
                    ) -> StrategyParams:
    """The strategy's Params from NAME=VALUE text. Raises ValueError with one line
    naming every problem ("param fast: ...")."""
    from pydantic import ValidationError

    model = strategy_class.Params
    fields = list(model.model_fields)
    unknown = [name for name in given if name not in fields]
    if unknown:
        names = ", ".join(unknown)
        raise ValueError(f"unknown param{'s' if len(unknown) > 1 else ''} {names} for "
                         f"{strategy_class.name} (known: {', '.join(fields)})")
    try:
        # Lax mode: pydantic turns "50" into 50 and "true" into True, as the field says.
        return model.model_validate(given)
    except ValidationError as error:
        raise ValueError("; ".join(_param_problem(problem) for problem in error.errors())
                         ) from None
    except Exception as error:  # a user's validator may raise anything
        raise ValueError(f"params: {crash_text(error)}") from None


def crash_text(error: BaseException) -> str:
    """An exception from a strategy's own code as one line: its type, its message, and
    where it was raised (the last frame: the user's file, most of the time)."""
    import traceback

    frames = traceback.extract_tb(error.__traceback__)
    where = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


def _param_problem(problem: Any) -> str:
    message = str(problem["msg"]).removeprefix("Value error, ")
    location = ".".join(str(part) for part in problem["loc"])
    if not location:  # a check across fields (fast below slow)
        return f"params: {message}"
    given = problem.get("input")
    shown = f" (got {given!r})" if isinstance(given, str) else ""
    return f"param {location}: {message}{shown}"


# -- running ------------------------------------------------------------------------------


def _run(settings: Settings, registry: StrategyRegistry, request: Request, *,
         trades_csv: str | None, json_out: str | None, save: bool) -> int:
    from core.backtest import BacktestError, BacktestSpec, run_backtest
    from data.bundle import BundleError
    from data.history import HistoryError, load_history
    from tui.cli import fail

    try:
        strategy_class = registry.get(request.strategy)
    except KeyError as error:
        fail(str(error.args[0]))
    try:
        params = strategy_params(strategy_class, request.params)
    except ValueError as error:
        fail(str(error))
    try:
        history = load_history(request.symbols, request.start, request.end,
                               adjusted=request.adjusted)
    except (HistoryError, BundleError) as error:
        fail(str(error))
    for note in history.notes:
        typer.echo(f"tapedeck: note: {note}", err=True)
    spec = BacktestSpec(request.strategy, params.model_dump(mode="json"), request.symbols,
                        request.start, request.end, request.cash,
                        "close" if request.fill_at == "close" else "next_open")
    console = report_console()
    quiet = STDOUT in (json_out, trades_csv)  # stdout carries only the export
    try:
        result = _with_progress(
            lambda progress: run_backtest(strategy_class, params, history.bars, spec,
                                          paper=settings.paper, risk=settings.risk,
                                          progress=progress),
            spec.describe(), visible=console.is_terminal and not quiet)
    except BacktestError as error:
        fail(str(error))
    except Exception as error:
        # The strategy's constructor and indicators() are user code that runs before the
        # runner's guard: a broken strategy is a sentence, not a traceback (exit 1: the
        # input was fine, the strategy was not).
        fail(f"{request.strategy} could not start: {crash_text(error)}", 1)
    run_id, not_saved = _save(settings, result) if save else (None, "")
    code = 1 if result.failure else 0
    zone, label = _zone(settings)
    if not quiet:
        _print_result(console, result, request.adjusted, zone, label)
        if run_id is not None:
            console.print(f"saved as run {run_id}")
    if not_saved:
        typer.echo(f"tapedeck: the run was not saved: {not_saved}", err=True)
    outputs: list[tuple[str, str | None, Any]] = [
        ("--trades-csv", trades_csv, lambda out: write_trades_csv(result.trips, out)),
        ("--json", json_out,
         lambda out: out.write(result_json(result, request.adjusted, run_id) + "\n"))]
    for option, target, write in outputs:
        if target is not None and not _write(option, target, write, console, quiet):
            code = 1
    return code


def _with_progress(work: Callable[[Progress | None], BacktestResult], description: str, *,
                   visible: bool) -> BacktestResult:
    """Run `work(progress)` under a progress bar on stderr (none when not wanted)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    if not visible:
        return work(None)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("sessions"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return work(progress)


def _save(settings: Settings, result: BacktestResult) -> tuple[int | None, str]:
    """(run id, '') once saved; (None, why not) when the database cannot take it. A
    locked or damaged database must not cost the trader the results on screen."""
    import asyncio
    import sqlite3

    from core.backtest_runs import save_run
    from core.store import Store, StoreError

    async def saving() -> int:
        store = await Store.open(settings.database_path())
        try:
            return await save_run(store, result)
        finally:
            await store.close()

    try:
        return asyncio.run(saving()), ""
    except (StoreError, sqlite3.Error, OSError) as error:
        return None, str(error)


def _write(option: str, target: str, write: Any, console: Console, quiet: bool) -> bool:
    import sys

    if target == STDOUT:
        write(sys.stdout)
        return True
    path = Path(target).expanduser()
    try:
        with path.open("w", encoding="utf-8", newline="") as out:
            write(out)
    except OSError as error:
        typer.echo(f"tapedeck: {option}: cannot write {path}: {error.strerror}", err=True)
        return False
    if not quiet:
        console.print(f"wrote {path}")
    return True


# -- exports ------------------------------------------------------------------------------


def trade_record(trip: RoundTrip) -> dict[str, Any]:
    """A round trip for CSV and JSON: money and quantities as exact Decimal text, times
    as UTC ISO 8601."""
    from tui.book_report import iso_utc

    return {
        "symbol": trip.symbol,
        "direction": trip.direction,
        "quantity": str(trip.quantity),
        "entry_time": iso_utc(trip.entry_ns),
        "entry_price": str(trip.entry_price),
        "exit_time": iso_utc(trip.exit_ns),
        "exit_price": str(trip.exit_price),
        "commission": str(trip.commission),
        "pnl": str(trip.pnl),
        "return_pct": trip.return_pct,
    }


def write_trades_csv(trips: Sequence[RoundTrip], out: TextIO) -> None:
    import csv

    writer = csv.writer(out)
    writer.writerow(TRADES_CSV_HEADER)
    for trip in trips:
        record = trade_record(trip)
        # repr: the shortest text that reads back as the same float.
        record["return_pct"] = repr(record["return_pct"])
        writer.writerow(record[name] for name in TRADES_CSV_HEADER)


def _plain(value: Any) -> Any:
    """JSON-safe: Decimals as text, and NaN or inf as the strings "NaN", "Infinity",
    "-Infinity" (strict JSON has no such numbers; both Python's float() and
    JavaScript's Number() read these strings back)."""
    import math

    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


def result_json(result: BacktestResult, adjusted: bool, run_id: int | None) -> str:
    import json

    from tui.book_report import iso_utc

    spec = result.spec
    document = {
        "run_id": run_id,
        "spec": {
            "strategy": spec.strategy, "params": dict(spec.params),
            "symbols": list(spec.symbols), "start": spec.start, "end": spec.end,
            "cash": spec.cash, "fill_at": spec.fill_at, "adjusted": adjusted,
        },
        "metrics": result.metrics.as_dict(),
        "equity": [[day, value] for day, value in zip(result.days, result.equity, strict=True)],
        "trades": [trade_record(trip) for trip in result.trips],
        "orders": [{
            "client_order_id": order.client_order_id, "time": iso_utc(order.ts_ns),
            "symbol": order.symbol, "side": order.side, "quantity": order.quantity,
            "order_type": order.order_type, "limit_price": order.limit_price,
            "stop_price": order.stop_price, "status": order.status,
            "filled": order.filled, "reason": order.reason,
        } for order in result.orders],
        "refusals": list(result.refusals),
        "failure": result.failure,
        "open_positions": dict(result.open_positions),
        "bars": result.bars,
        "elapsed_s": result.elapsed_s,
    }
    return json.dumps(_plain(document), indent=2, allow_nan=False)


# -- the report ---------------------------------------------------------------------------


def report_console() -> Console:
    """stdout for the report. Lines run on rather than fold at 80 columns when piped
    (a grep should find a whole line), and numbers are not coloured by guesswork."""
    from rich.console import Console

    return Console(soft_wrap=True, highlight=False)


def _zone(settings: Settings) -> tuple[tzinfo, str]:
    from tui import format as fmt

    return fmt.display_zone(settings.ui.timezone)


def _params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{name}={value}" for name, value in params.items()) or "none"


def _print_result(console: Console, result: BacktestResult, adjusted: bool, zone: tzinfo,
                  label: str) -> None:
    spec = result.spec
    prices = "adjusted" if adjusted else "raw"
    console.print(f"[bold]{_escape(spec.describe())}[/]")
    console.print(f"fills at {spec.fill_at}, {prices} prices, cash "
                  f"{_money(spec.cash)}; params {_escape(_params_text(dict(spec.params)))}")
    _print_body(console, result.metrics, result.days, result.equity, result.trips, zone, label)
    if result.open_positions:
        held = ", ".join(f"{symbol} {quantity.normalize():f}"
                         for symbol, quantity in result.open_positions.items())
        console.print(f"still open at the end (not in the trades): {_escape(held)}")
    if result.refusals:
        count = len(result.refusals)
        console.print(f"risk refused {count} order{'s' if count != 1 else ''}:")
        for reason in result.refusals[:REFUSALS_SHOWN]:
            console.print(f"  {_escape(reason)}")
        if count > REFUSALS_SHOWN:
            console.print(f"  … and {count - REFUSALS_SHOWN} more (see --json)")
    if result.failure:
        console.print(f"[red]the strategy failed and stopped trading: "
                      f"{_escape(result.failure)}[/]")
    console.print(f"{result.bars:,} bar{'s' if result.bars != 1 else ''} in "
                  f"{result.elapsed_s:.2f} s")


def _print_body(console: Console, metrics: Metrics, days: Sequence[date],
                equity: Sequence[float], trips: Sequence[RoundTrip], zone: tzinfo,
                label: str) -> None:
    from rich.text import Text

    _print_fitted(console, metrics_table(metrics))
    chart = equity_chart(days, equity, _chart_width(console), colour=console.is_terminal)
    if chart:
        console.print(Text.from_ansi(chart))
    _print_fitted(console, trades_table(trips, zone, label))


def _print_fitted(console: Console, report: RenderableType) -> None:
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


def _money(value: Decimal) -> str:
    return f"${value:,.2f}"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


# -- saved runs ---------------------------------------------------------------------------


def _read_saved(settings: Settings, limit: int | None, run_id: int | None
                ) -> tuple[list[SavedRun], int]:
    """The newest `limit` runs and how many there are, or the run `run_id` alone."""
    import asyncio

    from core.backtest_runs import count_runs, list_runs, load_run
    from core.store import Store, StoreError
    from tui.cli import fail

    path = settings.database_path().expanduser()
    if not path.is_file():
        # Not an empty list: a mistyped --profile lands here too, and a script should be
        # able to tell (exit 1), as with `tapedeck orders`.
        fail(f"no database yet at {path}: no backtest has been saved", 1)

    async def reading() -> tuple[list[SavedRun], int]:
        # Read-only: no lock, so this works beside a running workstation.
        store = await Store.open(path, read_only=True)
        try:
            if run_id is not None:
                found = await load_run(store, run_id)
                return ([] if found is None else [found]), 1
            return await list_runs(store, limit or 0), await count_runs(store)
        finally:
            await store.close()

    try:
        return asyncio.run(reading())
    except StoreError as error:
        fail(str(error))


def _list_saved(settings: Settings, limit: int) -> None:
    from rich.table import Table

    from core.metrics import format_metric
    from tui import format as fmt

    runs, total = _read_saved(settings, limit, None)
    console = report_console()
    if not runs:
        console.print("no saved backtests yet")
        return
    zone, label = _zone(settings)
    table = Table(title="Saved backtests, newest first", title_justify="left",
                  caption=None if len(runs) == total else
                  f"newest {len(runs)} of {total} (--limit 0 for all)")
    for heading in ("ID", f"Saved ({label})", "Strategy", "Symbols", "Dates",
                    "Total return", "Sharpe", "Max drawdown", "Trades"):
        numeric = heading in ("ID", "Total return", "Sharpe", "Max drawdown", "Trades")
        table.add_column(heading, justify="right" if numeric else "left",
                         no_wrap=heading != "Symbols")
    for run in runs:
        metrics = run.metrics
        symbols = ", ".join(run.symbols[:4]) + (f" +{len(run.symbols) - 4}"
                                                 if len(run.symbols) > 4 else "")
        table.add_row(
            str(run.id), f"{fmt.clock_time(run.created_ns, zone):%Y-%m-%d %H:%M}",
            run.strategy, symbols, f"{run.start} to {run.end}",
            format_metric("total_return_pct", metrics.total_return_pct),
            format_metric("sharpe", metrics.sharpe),
            format_metric("max_drawdown_pct", metrics.max_drawdown_pct),
            format_metric("trades", metrics.trades))
    _print_fitted(console, table)


def _show_saved(settings: Settings, run_id: int) -> None:
    from tui import format as fmt
    from tui.cli import fail

    runs, _ = _read_saved(settings, None, run_id)
    if not runs:
        fail(f"there is no saved run {run_id} (tapedeck backtest --list shows them)")
    [run] = runs
    console = report_console()
    zone, label = _zone(settings)
    console.print(f"[bold]run {run.id}: {_escape(run.describe())}[/]")
    console.print(f"saved {fmt.clock_time(run.created_ns, zone):%Y-%m-%d %H:%M} {label}; "
                  f"fills at {run.fill_at}, cash {_money(run.cash)}; params "
                  f"{_escape(_params_text(run.params))}")
    _print_body(console, run.metrics, [day for day, _ in run.equity],
                [value for _, value in run.equity], run.trips, zone, label)
