"""Parameter search: ranges of strategy parameters, every combination of them, and the
backtests of those combinations fanned out over worker processes.

A range is NAME=START:STOP:STEP. Its values are START, START+STEP, ... up to STOP,
which is included when it lands on the grid (as numpy's arange would, were it not for
float error): the values are worked out in Decimal from the text, so 0.1:0.5:0.1 gives
five values, the last exactly 0.5. A parameter the model types as int gets ints.

The workers are spawned, not forked (the same on every platform, and no copy of a
parent's threads or locks): what they run is a top-level function, and what every run
shares (the bars, the spec, the settings) reaches each worker once, in the pool's
initializer, not with every task. A worker finds the strategy again by its name (its
own discovery: a user's strategy module cannot be pickled by reference).

Only the standard library is imported at module level; the backtester (pandas, numpy)
is imported by the functions that run one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import multiprocessing
import pickle
import signal
import traceback
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from multiprocessing.queues import Queue
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd
    from pydantic import BaseModel

    from core.backtest import BacktestSpec, Progress
    from core.config_trading import PaperSettings, RiskSettings
    from core.metrics import Metrics
    from core.strategies.base import Strategy

# More runs than this is a typo in a step far more often than a plan.
MAX_COMBINATIONS = 10_000
GRID_SYNTAX = "NAME=START:STOP:STEP"
# The metrics where less is better; for every other one, more is (start_equity is the
# same for every run, so its order does not matter).
LOWER_IS_BETTER = frozenset({"volatility_pct", "max_drawdown_pct", "max_drawdown_days"})

GridValue = int | float
ErrorKind = Literal["", "backtest", "crash"]


class GridError(ValueError):
    """A grid that cannot be run as given; the message is one line for the trader."""


class GridInterrupted(Exception):
    """Ctrl-C during a grid: the pool is shut down; `outcomes` are the runs that
    finished, by index."""

    def __init__(self, outcomes: list[GridOutcome], total: int) -> None:
        super().__init__(f"interrupted after {len(outcomes)} of {total} runs")
        self.outcomes = outcomes
        self.total = total


# -- ranges and combinations -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GridRange:
    """One --grid as given: its values are not known until the parameter's type is."""

    name: str
    start: Decimal
    stop: Decimal
    step: Decimal
    count: int
    text: str


@dataclass(frozen=True, slots=True)
class GridAxis:
    name: str
    values: tuple[GridValue, ...]


def parse_grid(text: str) -> GridRange:
    """NAME=START:STOP:STEP. Raises GridError naming what is wrong."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    parts = rest.split(":")
    if not sep or not name or len(parts) != 3:
        raise GridError(f"--grid expects {GRID_SYNTAX}, not {text!r}")
    try:
        start, stop, step = (Decimal(part.strip()) for part in parts)
    except InvalidOperation:
        raise GridError(f"--grid expects {GRID_SYNTAX} with numbers, not {text!r}") from None
    if not all(value.is_finite() for value in (start, stop, step)):
        raise GridError(f"--grid expects {GRID_SYNTAX} with numbers, not {text!r}")
    if step == 0:
        raise GridError(f"--grid {text}: the step cannot be 0")
    if (stop - start) * step < 0:
        raise GridError(f"--grid {text}: steps of {parts[2].strip()} never get from "
                        f"{parts[0].strip()} to {parts[1].strip()}")
    try:
        count = int(((stop - start) / step).to_integral_value(ROUND_FLOOR)) + 1
    except ArithmeticError:  # exponents beyond Decimal's range
        raise GridError(f"--grid {text}: the numbers are too large") from None
    return GridRange(name, start, stop, step, count, text)


def parse_grids(texts: Sequence[str]) -> list[GridRange]:
    ranges: list[GridRange] = []
    for text in texts:
        grid = parse_grid(text)
        if any(other.name == grid.name for other in ranges):
            raise GridError(f"--grid {grid.name} is given twice")
        ranges.append(grid)
    return ranges


def param_kind(model: type[BaseModel], name: str) -> type[int] | type[float] | None:
    """int or float as the model types the field (an optional one too); None for
    anything else (a bool, a choice of words)."""
    annotation = model.model_fields[name].annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        annotation = rest[0] if len(rest) == 1 else None
    if annotation is int:
        return int
    if annotation is float:
        return float
    return None


def grid_axes(model: type[BaseModel], strategy: str, ranges: Sequence[GridRange],
              *, limit: int = MAX_COMBINATIONS) -> list[GridAxis]:
    """The values of each range as the parameter's type, checked against the model's
    fields and the limit on combinations. Raises GridError."""
    fields = list(model.model_fields)
    unknown = [grid.name for grid in ranges if grid.name not in fields]
    if unknown:
        raise GridError(f"--grid: unknown param{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join(unknown)} for {strategy} (known: {', '.join(fields)})")
    kinds: list[type[int] | type[float]] = []
    for grid in ranges:
        kind = param_kind(model, grid.name)
        if kind is None:
            raise GridError(f"--grid {grid.text}: {grid.name} is not a number param of "
                            f"{strategy}")
        if kind is int and not all(value == value.to_integral_value()
                                   for value in (grid.start, grid.step)):
            raise GridError(f"--grid {grid.text}: {grid.name} takes whole numbers")
        kinds.append(kind)
    total = math.prod(grid.count for grid in ranges)
    if total > limit:
        raise GridError(f"the grid has {total:,} combinations, more than the {limit:,} "
                        f"allowed: use larger steps or fewer params")
    return [GridAxis(grid.name, tuple(kind(grid.start + i * grid.step)
                                      for i in range(grid.count)))
            for grid, kind in zip(ranges, kinds, strict=True)]


def combinations(axes: Sequence[GridAxis]) -> Iterator[dict[str, GridValue]]:
    """Every combination, the last axis varying fastest."""
    names = [axis.name for axis in axes]
    for values in itertools.product(*(axis.values for axis in axes)):
        yield dict(zip(names, values, strict=True))


# -- ranking ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GridOutcome:
    """One run of a grid. `failure`: the strategy raised during the run (the metrics
    go up to there); `error`: the run could not start (no metrics)."""

    index: int  # the combination's place in the grid
    metrics: Metrics | None = None
    failure: str = ""
    error: str = ""
    error_kind: ErrorKind = ""
    bars: int = 0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.metrics is not None and not self.failure and not self.error


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


def ranked(outcomes: Sequence[GridOutcome], metric: str) -> list[GridOutcome]:
    """The runs that finished without failing, best first by `metric`; NaN last, and
    ties in grid order. An unknown metric raises AttributeError."""
    sign = 1.0 if lower_is_better(metric) else -1.0

    def key(outcome: GridOutcome) -> tuple[bool, float, int]:
        value = float(getattr(outcome.metrics, metric))
        nan = math.isnan(value)
        return nan, 0.0 if nan else sign * value, outcome.index

    return sorted((outcome for outcome in outcomes if outcome.ok), key=key)


# -- the workers --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GridJob:
    """What every run of a grid shares; sent to each worker once."""

    strategy: str
    folder: Path | None  # the user's strategy folder, for the worker's own discovery
    bars: Mapping[str, pd.DataFrame]
    spec: BacktestSpec  # its params are each run's
    paper: PaperSettings | None = None
    risk: RiskSettings | None = None


@dataclass(slots=True)
class _Worker:
    job: GridJob | None = None
    strategy: type[Strategy[Any]] | None = None
    problem: str = ""


_WORKER = _Worker()


def crash_text(error: BaseException) -> str:
    """An exception from a strategy's own code as one line: its type, its message, and
    where it was raised (the last frame: the user's file, most of the time)."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


def _start_worker(inbox: Queue[bytes]) -> None:
    """The pool's initializer: take the job (once), find the strategy."""
    # Ctrl-C reaches the whole process group: it is the parent's to handle (it stops
    # the pool); a worker that took it would print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from core.strategies.registry import discover

    registry_log = logging.getLogger("core.strategies.registry")
    registry_log.addHandler(logging.NullHandler())  # the parent reported the problems
    registry_log.propagate = False
    job: GridJob = pickle.loads(inbox.get())
    _WORKER.job = job
    try:
        _WORKER.strategy = discover(job.folder).get(job.strategy)
    except KeyError as error:
        _WORKER.problem = str(error.args[0])


def _run_one(index: int, params: dict[str, Any]) -> GridOutcome:
    """One combination, in a worker."""
    from core.backtest import BacktestError, run_backtest

    job, strategy = _WORKER.job, _WORKER.strategy
    if job is None or strategy is None:
        return GridOutcome(index, error=_WORKER.problem or "the worker did not start",
                           error_kind="crash")
    try:
        model = strategy.Params.model_validate(params)
        spec = dataclasses.replace(job.spec, params=model.model_dump(mode="json"))
        result = run_backtest(strategy, model, job.bars, spec, paper=job.paper, risk=job.risk)
    except BacktestError as error:
        return GridOutcome(index, error=str(error), error_kind="backtest")
    except Exception as error:  # the strategy's constructor or indicators
        return GridOutcome(index, error=crash_text(error), error_kind="crash")
    return GridOutcome(index, result.metrics, result.failure, bars=result.bars,
                       elapsed_s=result.elapsed_s)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored for a while: the workers started meanwhile inherit that (before
    their initializer runs), and a shutdown is not cut short."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: the signals are not ours to change
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None
                      else previous)


def _stop(executor: ProcessPoolExecutor) -> None:
    with _sigint_ignored():
        # The runs under way finish (one backtest each); the queued ones never start.
        executor.shutdown(wait=True, cancel_futures=True)


def run_grid(job: GridJob, runs: Sequence[Mapping[str, Any]], *, workers: int,
             progress: Progress | None = None) -> list[GridOutcome]:
    """Run `job` with each params of `runs` (validated already) over `workers`
    processes; the outcomes come back in the order of `runs`. Raises GridInterrupted
    on Ctrl-C and GridError when a worker process dies."""
    total = len(runs)
    count = max(1, min(workers, total))
    done: list[GridOutcome] = []
    if progress is not None:
        progress(0, total)
    context = multiprocessing.get_context("spawn")
    # The job reaches each worker's initializer once, through a queue rather than as an
    # argument: an argument travels while the worker starts, so the parent would wait
    # for each worker to read the bars (and import pandas to do it) before starting the
    # next, with SIGINT ignored all along. The queue's thread sends it meanwhile.
    inbox: Queue[bytes] = context.Queue()
    pickled_job = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
    for _ in range(count):
        inbox.put(pickled_job)
    try:
        with _sigint_ignored():  # the workers start here
            executor = ProcessPoolExecutor(max_workers=count, mp_context=context,
                                           initializer=_start_worker, initargs=(inbox,))
            try:
                futures: list[Future[GridOutcome]] = [
                    executor.submit(_run_one, index, dict(params))
                    for index, params in enumerate(runs)]
            except BaseException:
                _stop(executor)
                raise
        try:
            for future in as_completed(futures):
                done.append(future.result())
                if progress is not None:
                    progress(len(done), total)
        except KeyboardInterrupt:
            _stop(executor)
            raise GridInterrupted(sorted(done, key=lambda o: o.index), total) from None
        except BrokenProcessPool:
            _stop(executor)
            raise GridError(f"a backtest worker process died after {len(done)} of {total} "
                            "runs (out of memory, or a strategy that exits the process)"
                            ) from None
        except BaseException:
            _stop(executor)
            raise
        executor.shutdown(wait=True)
    finally:
        inbox.close()
        inbox.cancel_join_thread()  # a copy no worker took (one died) must not hang exit
    return sorted(done, key=lambda outcome: outcome.index)
