"""`tapedeck backtest --grid`: every combination of the parameter ranges, checked
against the strategy's Params, run in worker processes (core/backtest_grid.py), and
the best listed by a metric.

A combination the Params refuse (fast not below slow) is skipped and counted, not an
error. Grid runs are not saved one by one; `--save-best` runs the best again here and
saves it as a single run is saved.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from tui.backtest_export import STDOUT, plain, write_output
from tui.backtest_report import escaped, money, params_text, print_fitted, report_console
from tui.backtest_run import load_bars, save_result, with_progress
from tui.backtest_strategies import crash_text, strategy_params, unknown_params

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from core.backtest_grid import GridAxis, GridJob, GridOutcome, GridValue
    from core.config import Settings
    from core.strategies.base import Strategy, StrategyParams
    from core.strategies.registry import StrategyRegistry
    from tui.backtest_cli import GridRequest, Request

# The metrics the table of the best runs shows, after the one they are ranked by: few
# enough that two params fit 80 columns (--json has them all).
KEY_METRICS = ("total_return_pct", "sharpe", "max_drawdown_pct", "trades", "win_rate_pct",
               "profit_factor")
# An axis with more values than this is shown by its ends.
AXIS_VALUES_SHOWN = 6


@dataclass(slots=True)
class GridPlan:
    """The combinations of a grid, as the strategy's Params take or refuse them."""

    combinations: int = 0
    runs: list[StrategyParams] = field(default_factory=list)
    skipped: list[tuple[dict[str, GridValue], str]] = field(default_factory=list)


def run_grid_command(settings: Settings, registry: StrategyRegistry, request: Request,
                     grid: GridRequest, folder: Path | None, *, json_out: str | None) -> int:
    from core.backtest import BacktestSpec
    from core.backtest_grid import GridError, GridInterrupted, GridJob, grid_axes, ranked
    from tui.cli_options import fail

    try:
        strategy_class = registry.get(request.strategy)
    except KeyError as error:
        fail(str(error.args[0]))
    both = [grid_range.name for grid_range in grid.ranges if grid_range.name in request.params]
    if both:
        fail(f"param {both[0]} is given by both --param and --grid")
    unknown = unknown_params(strategy_class, list(request.params))
    if unknown:
        fail(unknown)
    try:
        axes = grid_axes(strategy_class.Params, request.strategy, grid.ranges)
    except GridError as error:
        fail(str(error))
    plan = plan_grid(strategy_class, request.params, axes)
    if not plan.runs:
        fail(f"the params refuse every combination of the grid ({plan.combinations}); the "
             f"first: {plan.skipped[0][1]}")
    if plan.skipped:
        typer.echo(f"tapedeck: note: skipped {len(plan.skipped)} of {plan.combinations} "
                   f"combinations the params refuse; the first: {plan.skipped[0][1]}",
                   err=True)
    history = load_bars(request)
    spec = BacktestSpec(request.strategy, {}, request.symbols, request.start, request.end,
                        request.cash, "close" if request.fill_at == "close" else "next_open")
    job = GridJob(request.strategy, folder, history.bars, spec, settings.paper, settings.risk)
    console = report_console()
    quiet = json_out == STDOUT  # stdout carries only the JSON
    workers = min(grid.workers or os.cpu_count() or 1, len(plan.runs))
    started = time.perf_counter()
    try:
        outcomes = with_progress(lambda progress: _fan_out(job, plan, workers, progress),
                                 f"{spec.describe()}: {len(plan.runs)} runs", unit="runs",
                                 visible=console.is_terminal and not quiet)
    except GridInterrupted as stop:
        typer.echo(f"tapedeck: interrupted: {len(stop.outcomes)} of {stop.total} runs "
                   "finished", err=True)
        raise typer.Exit(130) from None
    except GridError as error:  # a worker process died
        fail(str(error), 1)
    elapsed = time.perf_counter() - started
    varying = [axis.name for axis in axes if len(axis.values) > 1] or [a.name for a in axes]
    dumps = [params.model_dump(mode="json") for params in plan.runs]
    code = _check_outcomes(request.strategy, outcomes, dumps, varying)
    best = ranked(outcomes, grid.rank_by)
    run_id, not_saved = None, ""
    if grid.save_best and best:
        run_id, not_saved = _save_best(settings, strategy_class, plan.runs[best[0].index], job,
                                       visible=console.is_terminal and not quiet)
    elif grid.save_best:
        not_saved = "every run failed"
    if not quiet:
        _print_grid(console, request, axes, plan, varying, dumps[0])
        print_fitted(console, top_table(best, dumps, varying, grid.rank_by, grid.top))
        console.print(f"{len(outcomes)} run{'s' if len(outcomes) != 1 else ''} in "
                      f"{elapsed:.2f} s on {workers} worker{'s' if workers != 1 else ''}")
        if run_id is not None:
            console.print(f"saved the best run as run {run_id}")
    if not_saved:
        typer.echo(f"tapedeck: the best run was not saved: {not_saved}", err=True)
    if json_out is not None:
        document = grid_json(request, axes, plan, outcomes, dumps, grid.rank_by, run_id,
                             workers, elapsed)
        if not write_output("--json", json_out, lambda out: out.write(document + "\n"),
                            console, quiet):
            code = 1
    return code


def plan_grid(strategy_class: type[Strategy[Any]], fixed: dict[str, str],
              axes: Sequence[GridAxis]) -> GridPlan:
    """Each combination (with the fixed --param values) through the strategy's Params."""
    from core.backtest_grid import combinations

    plan = GridPlan()
    for combination in combinations(axes):
        plan.combinations += 1
        try:
            plan.runs.append(strategy_params(strategy_class, {**fixed, **combination}))
        except ValueError as error:
            plan.skipped.append((combination, str(error)))
    return plan


def _fan_out(job: GridJob, plan: GridPlan, workers: int,
             progress: Callable[[int, int], None] | None) -> list[GridOutcome]:
    from core.backtest_grid import run_grid

    return run_grid(job, [params.model_dump() for params in plan.runs], workers=workers,
                    progress=progress)


def _check_outcomes(strategy: str, outcomes: Sequence[GridOutcome],
                    dumps: Sequence[dict[str, Any]], varying: Sequence[str]) -> int:
    """Say which runs could not start or failed; the exit code (1 if any did). When no
    run could start, that is the command's error, as for a single run."""
    from tui.cli_options import fail

    errors = [outcome for outcome in outcomes if outcome.error]
    failed = [outcome for outcome in outcomes if outcome.failure and not outcome.error]
    if errors and len(errors) == len(outcomes):
        first = errors[0]
        if first.error_kind == "backtest":
            fail(first.error)
        fail(f"{strategy} could not start: {first.error}", 1)

    def which(outcome: GridOutcome) -> str:
        return params_text({name: dumps[outcome.index][name] for name in varying})

    if errors:
        typer.echo(f"tapedeck: {strategy} could not start in {len(errors)} of "
                   f"{len(outcomes)} runs; the first, {which(errors[0])}: {errors[0].error}",
                   err=True)
    if failed:
        typer.echo(f"tapedeck: the strategy failed in {len(failed)} of {len(outcomes)} runs "
                   f"(not ranked); the first, {which(failed[0])}: {failed[0].failure}",
                   err=True)
    return 1 if errors or failed else 0


def _save_best(settings: Settings, strategy_class: type[Strategy[Any]],
               params: StrategyParams, job: GridJob, *, visible: bool
               ) -> tuple[int | None, str]:
    """Run the best combination again, here, for everything a saved run keeps (the
    workers send back only metrics), and save it."""
    import dataclasses

    from core.backtest import run_backtest

    spec = dataclasses.replace(job.spec, params=params.model_dump(mode="json"))
    try:
        result = with_progress(
            lambda progress: run_backtest(strategy_class, params, job.bars, spec,
                                          paper=job.paper, risk=job.risk, progress=progress),
            f"the best again, to save: {spec.describe()}", unit="sessions", visible=visible)
    except Exception as error:  # it ran in a worker: this is not expected
        return None, f"it could not run again: {crash_text(error)}"
    return save_result(settings, result)


# -- the report ---------------------------------------------------------------------------


def _print_grid(console: Console, request: Request, axes: Sequence[GridAxis],
                plan: GridPlan, varying: Sequence[str], example: dict[str, Any]) -> None:
    from core.backtest import BacktestSpec

    spec = BacktestSpec(request.strategy, {}, request.symbols, request.start, request.end)
    prices = "adjusted" if request.adjusted else "raw"
    others = {name: value for name, value in example.items() if name not in varying}
    console.print(f"[bold]{escaped(spec.describe())}[/]")
    console.print(f"fills at {request.fill_at}, {prices} prices, cash {money(request.cash)}; "
                  f"other params {escaped(params_text(others))}")
    skipped = f", {len(plan.skipped)} refused by the params" if plan.skipped else ""
    console.print(f"grid: {escaped(' x '.join(axis_text(axis) for axis in axes))}: "
                  f"{plan.combinations} combination{'s' if plan.combinations != 1 else ''}"
                  f"{skipped}")


def axis_text(axis: GridAxis) -> str:
    values = [str(value) for value in axis.values]
    if len(values) <= AXIS_VALUES_SHOWN:
        return f"{axis.name} {', '.join(values)}"
    return f"{axis.name} {values[0]}, {values[1]}, ... {values[-1]} ({len(values)} values)"


def top_table(best: Sequence[GridOutcome], dumps: Sequence[dict[str, Any]],
              varying: Sequence[str], rank_by: str, top: int) -> Table | str:
    """The best runs, best first: their varying params, then the metric they are
    ranked by, then the key metrics."""
    from rich.table import Table

    from core.backtest_grid import lower_is_better
    from core.metrics import METRIC_LABELS, format_metric

    if not best:
        return "no run finished without the strategy failing: nothing to rank"
    shown = best if top == 0 else best[:top]
    order = "lowest" if lower_is_better(rank_by) else "highest"
    table = Table(title=f"Top {len(shown)} of {len(best)} runs by {METRIC_LABELS[rank_by]} "
                  f"({order} first)", title_justify="left")
    metrics = [rank_by, *(name for name in KEY_METRICS if name != rank_by)]
    # Headers wrap at their spaces in a narrow terminal; digits fold rather than hide.
    table.add_column("#", justify="right")
    for name in varying:
        table.add_column(name, justify="right", overflow="fold")
    for name in metrics:
        label = METRIC_LABELS[name]
        table.add_column(label, justify="right", overflow="fold",
                         min_width=max(len(word) for word in label.split()),
                         header_style="bold" if name == rank_by else "")
    for place, outcome in enumerate(shown, start=1):
        assert outcome.metrics is not None  # ranked runs have metrics
        values = outcome.metrics.as_dict()
        table.add_row(str(place), *(str(dumps[outcome.index][name]) for name in varying),
                      *(format_metric(name, values[name]) for name in metrics))
    return table


def grid_json(request: Request, axes: Sequence[GridAxis], plan: GridPlan,
              outcomes: Sequence[GridOutcome], dumps: Sequence[dict[str, Any]],
              rank_by: str, run_id: int | None, workers: int, elapsed_s: float) -> str:
    """Every combination: the runs (ranked ones first, best first, then those that
    failed) with their full params and metrics, and the ones the params refused."""
    import json

    from core.backtest_grid import lower_is_better, ranked

    best = ranked(outcomes, rank_by)
    places = {outcome.index: place for place, outcome in enumerate(best, start=1)}
    rest = [outcome for outcome in outcomes if outcome.index not in places]
    fixed = {name: dumps[0][name] for name in request.params}
    document = {
        "spec": {
            "strategy": request.strategy, "symbols": list(request.symbols),
            "start": request.start, "end": request.end, "cash": request.cash,
            "fill_at": request.fill_at, "adjusted": request.adjusted, "params": fixed,
            "grid": {axis.name: list(axis.values) for axis in axes},
        },
        "rank_by": rank_by,
        "lower_is_better": lower_is_better(rank_by),
        "combinations": plan.combinations,
        "results": [{
            "rank": places.get(outcome.index),
            "params": dumps[outcome.index],
            "metrics": None if outcome.metrics is None else outcome.metrics.as_dict(),
            "failure": outcome.failure,
            "error": outcome.error,
            "bars": outcome.bars,
            "elapsed_s": outcome.elapsed_s,
        } for outcome in [*best, *rest]],
        "skipped": [{"params": {**fixed, **combination}, "reason": reason}
                    for combination, reason in plan.skipped],
        "best_run_id": run_id,
        "workers": workers,
        "elapsed_s": elapsed_s,
    }
    return json.dumps(plain(document), indent=2, allow_nan=False)
