"""One `tapedeck backtest` run: load the bars, run the strategy under a progress bar,
save the run, print the report and write the exports."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from tui.backtest_export import STDOUT, result_json, write_output, write_trades_csv
from tui.backtest_report import display_zone, print_result, report_console
from tui.backtest_strategies import crash_text, strategy_params

if TYPE_CHECKING:
    from core.backtest import BacktestResult, Progress
    from core.config import Settings
    from core.strategies.registry import StrategyRegistry
    from data.history import History
    from tui.backtest_cli import Request

T = TypeVar("T")


def run_single(settings: Settings, registry: StrategyRegistry, request: Request, *,
               trades_csv: str | None, json_out: str | None, save: bool) -> int:
    from core.backtest import BacktestError, BacktestSpec, run_backtest
    from tui.cli_options import fail

    try:
        strategy_class = registry.get(request.strategy)
    except KeyError as error:
        fail(str(error.args[0]))
    try:
        params = strategy_params(strategy_class, request.params)
    except ValueError as error:
        fail(str(error))
    history = load_bars(request)
    spec = BacktestSpec(request.strategy, params.model_dump(mode="json"), request.symbols,
                        request.start, request.end, request.cash,
                        "close" if request.fill_at == "close" else "next_open")
    console = report_console()
    quiet = STDOUT in (json_out, trades_csv)  # stdout carries only the export
    try:
        result = with_progress(
            lambda progress: run_backtest(strategy_class, params, history.bars, spec,
                                          paper=settings.paper, risk=settings.risk,
                                          progress=progress),
            spec.describe(), unit="sessions", visible=console.is_terminal and not quiet)
    except BacktestError as error:
        fail(str(error))
    except Exception as error:
        # The strategy's constructor and indicators() are user code that runs before the
        # runner's guard: a broken strategy is a sentence, not a traceback (exit 1: the
        # input was fine, the strategy was not).
        fail(f"{request.strategy} could not start: {crash_text(error)}", 1)
    run_id, not_saved = save_result(settings, result) if save else (None, "")
    code = 1 if result.failure else 0
    zone, label = display_zone(settings)
    if not quiet:
        print_result(console, result, request.adjusted, zone, label)
        if run_id is not None:
            console.print(f"saved as run {run_id}")
    if not_saved:
        typer.echo(f"tapedeck: the run was not saved: {not_saved}", err=True)
    outputs: list[tuple[str, str | None, Any]] = [
        ("--trades-csv", trades_csv, lambda out: write_trades_csv(result.trips, out)),
        ("--json", json_out,
         lambda out: out.write(result_json(result, request.adjusted, run_id) + "\n"))]
    for option, target, write in outputs:
        if target is not None and not write_output(option, target, write, console, quiet):
            code = 1
    return code


def load_bars(request: Request) -> History:
    """The request's bars (with the warm-up before its start); notes on stderr."""
    from data.bundle import BundleError
    from data.history import HistoryError, load_history
    from tui.cli_options import fail

    try:
        history = load_history(request.symbols, request.start, request.end,
                               adjusted=request.adjusted)
    except (HistoryError, BundleError) as error:
        fail(str(error))
    for note in history.notes:
        typer.echo(f"tapedeck: note: {note}", err=True)
    return history


def with_progress(work: Callable[[Progress | None], T], description: str, *, unit: str,
                  visible: bool) -> T:
    """Run `work(progress)` under a progress bar on stderr (none when not wanted);
    `progress(done, total)` counts `unit`."""
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
                  TextColumn(unit), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return work(progress)


def save_result(settings: Settings, result: BacktestResult) -> tuple[int | None, str]:
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
