"""`tapedeck backtest --list` and `--show ID`: the runs kept in the profile database,
read back without taking its lock."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tui.backtest_report import (
    display_zone,
    escaped,
    money,
    params_text,
    print_body,
    print_fitted,
    report_console,
)

if TYPE_CHECKING:
    from core.backtest_runs import SavedRun
    from core.config import Settings


def _read_saved(settings: Settings, limit: int | None, run_id: int | None
                ) -> tuple[list[SavedRun], int]:
    """The newest `limit` runs and how many there are, or the run `run_id` alone."""
    import asyncio

    from core.backtest_runs import count_runs, list_runs, load_run
    from core.store import Store, StoreError
    from tui.cli_options import fail

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


def list_saved(settings: Settings, limit: int) -> None:
    from rich.table import Table

    from core.metrics import format_metric
    from tui import format as fmt

    runs, total = _read_saved(settings, limit, None)
    console = report_console()
    if not runs:
        console.print("no saved backtests yet")
        return
    zone, label = display_zone(settings)
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
    print_fitted(console, table)


def show_saved(settings: Settings, run_id: int) -> None:
    from tui import format as fmt
    from tui.cli_options import fail

    runs, _ = _read_saved(settings, None, run_id)
    if not runs:
        fail(f"there is no saved run {run_id} (tapedeck backtest --list shows them)")
    [run] = runs
    console = report_console()
    zone, label = display_zone(settings)
    console.print(f"[bold]run {run.id}: {escaped(run.describe())}[/]")
    console.print(f"saved {fmt.clock_time(run.created_ns, zone):%Y-%m-%d %H:%M} {label}; "
                  f"fills at {run.fill_at}, cash {money(run.cash)}; params "
                  f"{escaped(params_text(run.params))}")
    print_body(console, run.metrics, [day for day, _ in run.equity],
                [value for _, value in run.equity], run.trips, zone, label)
