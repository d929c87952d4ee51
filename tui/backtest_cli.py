"""`tapedeck backtest`: run a strategy over the bundled daily bars, print what it did,
and keep the run in the profile database; `--list` and `--show` read saved runs back;
`--grid` searches parameters over worker processes.

This module is the command and its arguments. The run is tui/backtest_run.py, the
parameter search tui/backtest_grid.py, the report tui/backtest_report.py, the CSV and
JSON tui/backtest_export.py, the saved runs tui/backtest_saved.py and the strategies
tui/backtest_strategies.py.

Only typer and light modules are imported at module level: `tapedeck --help` must stay
instant, and the backtester pulls in pandas and numpy. Everything heavy is imported
inside the command.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tui.backtest_export import STDOUT, TRADES_CSV_HEADER
from tui.cli_options import ConfigOption, ProfileOption

if TYPE_CHECKING:
    from core.backtest_grid import GridRange
    from core.config import Settings

__all__ = ["TRADES_CSV_HEADER", "GridRequest", "Request", "backtest_command"]

DEFAULT_SYMBOLS = ("AAPL",)
DEFAULT_START = "2016-01-04"
DEFAULT_END = "2019-12-31"
DEFAULT_CASH = "100000"
DEFAULT_LIST_LIMIT = 50
DEFAULT_TOP = 10
DEFAULT_RANK_BY = "sharpe"
FILL_AT_CHOICES = ("next_open", "close")  # core.backtest.FILL_AT, without importing pandas


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


@dataclass(frozen=True, slots=True)
class GridRequest:
    """The --grid options: the ranges as given (their values need the strategy's types)."""

    ranges: tuple[GridRange, ...]
    workers: int | None  # None: one per CPU
    top: int  # 0 for all
    rank_by: str
    save_best: bool


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
    grid: Annotated[list[str] | None, typer.Option(
        "--grid", help="Search a parameter: run it at START, START+STEP, ... up to STOP "
        "(included when it lands on a step). Repeatable: every combination runs, in "
        "worker processes, and the best are listed; --param still sets the others. Grid "
        "runs are not saved (see --save-best).", metavar="NAME=START:STOP:STEP",
        show_default=False)] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="With --grid: worker processes (default: one per CPU).",
        metavar="N", show_default=False)] = None,
    top: Annotated[int | None, typer.Option(
        "--top", min=0, help=f"With --grid: list the best N runs (default {DEFAULT_TOP}; 0 "
        "for all).", metavar="N", show_default=False)] = None,
    rank_by: Annotated[str | None, typer.Option(
        "--rank-by", help=f"With --grid: the metric that ranks the runs (default "
        f"{DEFAULT_RANK_BY}; any metric of --json; drawdowns and volatility rank lowest "
        "first).", metavar="METRIC", show_default=False)] = None,
    save_best: Annotated[bool, typer.Option(
        "--save-best", help="With --grid: save the best run, as a single run is "
        "saved.")] = False,
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
        "nothing else there); with --grid, every run's params and metrics.",
        metavar="PATH", show_default=False)] = None,
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
    slow=50`; `tapedeck backtest ma_cross --grid fast=5:30:5 --grid slow=40:100:20
    --rank-by max_drawdown_pct`; `tapedeck backtest --list`; `tapedeck backtest --show 3`."""
    from tui.cli import _global, load
    from tui.cli_options import fail

    config, profile = _global(ctx, config, profile)
    if limit is not None and not list_saved:
        fail("--limit goes with --list")
    if list_saved or show is not None:
        if list_saved and show is not None:
            fail("use either --list or --show, not both")
        if strategy is not None:
            fail("--list and --show read saved runs: leave out the strategy")
        if grid:
            fail("--grid runs a strategy: it does not go with --list or --show")
        settings = load(config, profile)
        from tui.backtest_saved import list_saved as list_runs
        from tui.backtest_saved import show_saved

        if show is not None:
            show_saved(settings, show)
        else:
            list_runs(settings, DEFAULT_LIST_LIMIT if limit is None else limit)
        return
    grid_request = _grid_request(grid or [], workers, top, rank_by, save_best,
                                 trades_csv=trades_csv, no_save=no_save)
    settings = load(config, profile)
    from tui.backtest_strategies import known_strategies, load_registry, strategy_folder

    registry = load_registry(settings, config)
    if strategy is None:
        fail(f"name a strategy to run ({known_strategies(registry)}), or use --list or "
             "--show ID")
    if trades_csv == STDOUT and json_out == STDOUT:
        fail("only one of --trades-csv and --json can write to stdout ('-')")
    for option, target in (("--trades-csv", trades_csv), ("--json", json_out)):
        _check_writable(option, target)
    request = _request(strategy, symbols, start, end, cash, fill_at, adjusted, params or [],
                       settings)
    if grid_request is not None:
        from tui.backtest_grid import run_grid_command

        code = run_grid_command(settings, registry, request, grid_request,
                                strategy_folder(settings, config), json_out=json_out)
    else:
        from tui.backtest_run import run_single

        code = run_single(settings, registry, request, trades_csv=trades_csv,
                          json_out=json_out, save=not no_save)
    raise typer.Exit(code)


# -- the command line ---------------------------------------------------------------------


def _grid_request(grids: Sequence[str], workers: int | None, top: int | None,
                  rank_by: str | None, save_best: bool, *, trades_csv: str | None,
                  no_save: bool) -> GridRequest | None:
    """The --grid options checked (the ranges' syntax too), or None without --grid."""
    from tui.cli_options import fail

    if not grids:
        given = [option for option, used in (
            ("--workers", workers is not None), ("--top", top is not None),
            ("--rank-by", rank_by is not None), ("--save-best", save_best)) if used]
        if given:
            fail(f"{given[0]} goes with --grid")
        return None
    if trades_csv is not None:
        fail("--trades-csv writes one run's trades: it does not go with --grid (--json "
             "has every run's params and metrics)")
    if save_best and no_save:
        fail("use either --save-best or --no-save, not both")
    from dataclasses import fields

    from core.backtest_grid import GridError, parse_grids
    from core.metrics import Metrics

    metric = DEFAULT_RANK_BY if rank_by is None else rank_by.strip()
    metrics = [field.name for field in fields(Metrics)]
    if metric not in metrics:
        fail(f"--rank-by takes a metric ({', '.join(metrics)}), not {rank_by!r}")
    try:
        ranges = tuple(parse_grids(grids))
    except GridError as error:
        fail(str(error))
    return GridRequest(ranges, workers, DEFAULT_TOP if top is None else top, metric,
                       save_best)


def _request(strategy: str, symbols: Sequence[str] | None, start: str, end: str, cash: str,
             fill_at: str | None, adjusted: bool | None, params: Sequence[str],
             settings: Settings) -> Request:
    from tui.cli_options import fail

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
    from tui.cli_options import fail

    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        fail(f"{option} expects a date as YYYY-MM-DD, not {text!r}")


def _symbols(given: Sequence[str]) -> tuple[str, ...]:
    from tui.cli_options import fail

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
    from tui.cli_options import fail

    try:
        # Separators as people write money: 100,000 and 100_000 both mean 100000.
        value = Decimal(text.strip().replace(",", "").replace("_", ""))
    except InvalidOperation:
        fail(f"--cash expects an amount such as 100000, not {text!r}")
    if not value.is_finite() or value <= 0:
        fail(f"--cash must be more than 0, not {text!r}")
    return value


def _param_pairs(given: Sequence[str]) -> dict[str, str]:
    from tui.cli_options import fail

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
    from tui.cli_options import fail

    if target is None or target == STDOUT:
        return
    path = Path(target).expanduser()
    if path.is_dir():
        fail(f"{option}: {path} is a directory")
    if not path.parent.is_dir():
        fail(f"{option}: there is no directory {path.parent}")


