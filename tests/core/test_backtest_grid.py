"""Parameter grids: ranges as the params' types, their combinations, the ranking, and
runs in real worker processes equal to the same runs in this one."""

from __future__ import annotations

import dataclasses
import math
from datetime import date
from decimal import Decimal

import pytest
from pydantic import Field

from core.backtest import BacktestSpec, run_backtest
from core.backtest_grid import (
    MAX_COMBINATIONS,
    GridAxis,
    GridError,
    GridJob,
    GridOutcome,
    combinations,
    grid_axes,
    parse_grid,
    parse_grids,
    ranked,
    run_grid,
)
from core.metrics import Metrics
from core.strategies.base import StrategyParams
from core.strategies.builtin import MaCross
from data.history import load_history


class DemoParams(StrategyParams):
    whole: int = Field(default=1, ge=0)
    share: float = 0.5
    maybe: int | None = None
    word: str = "a"
    flag: bool = False


def values(*texts: str, limit: int = MAX_COMBINATIONS) -> list[tuple[int | float, ...]]:
    return [axis.values for axis in grid_axes(DemoParams, "demo", parse_grids(texts),
                                              limit=limit)]


def test_an_int_param_gets_ints_up_to_an_inclusive_stop() -> None:
    [fives] = values("whole=5:20:5")
    assert fives == (5, 10, 15, 20)
    assert all(type(value) is int for value in fives)
    assert values("whole=1:10:4") == [(1, 5, 9)]  # 10 is not on the grid
    assert values("whole=10:1:-3") == [(10, 7, 4, 1)]
    assert values("whole=7:7:2") == [(7,)]
    assert values("whole=1.0:3:1") == [(1, 2, 3)]  # whole numbers, written as decimals
    assert values("maybe=1:2:1") == [(1, 2)]  # an optional int is an int


def test_float_steps_land_on_the_stop_without_float_error() -> None:
    # Summing 0.1 in floats gives 0.30000000000000004, past the stop, and numpy's
    # arange(0.1, 0.3, 0.1) stops short: the values are worked out in Decimal.
    assert values("share=0.1:0.3:0.1") == [(0.1, 0.2, 0.3)]
    [steps] = values("share=1.5:2.5:0.1")
    assert len(steps) == 11
    assert steps[-1] == 2.5
    assert steps == tuple(float(Decimal("1.5") + i * Decimal("0.1")) for i in range(11))
    [floats] = values("share=1:3:1")
    assert floats == (1.0, 2.0, 3.0)
    assert all(type(value) is float for value in floats)
    assert values("share=1e-3:3e-3:1e-3") == [(0.001, 0.002, 0.003)]


@pytest.mark.parametrize(("text", "message"), [
    ("whole", "--grid expects NAME=START:STOP:STEP, not 'whole'"),
    ("whole=1:5", "--grid expects NAME=START:STOP:STEP, not 'whole=1:5'"),
    ("whole=1:5:1:1", "--grid expects NAME=START:STOP:STEP, not 'whole=1:5:1:1'"),
    ("=1:5:1", "--grid expects NAME=START:STOP:STEP, not '=1:5:1'"),
    ("whole=a:5:1", "--grid expects NAME=START:STOP:STEP with numbers, not 'whole=a:5:1'"),
    ("whole=1::1", "--grid expects NAME=START:STOP:STEP with numbers, not 'whole=1::1'"),
    ("whole=1:inf:1", "with numbers, not 'whole=1:inf:1'"),
    ("whole=1:nan:1", "with numbers, not 'whole=1:nan:1'"),
    ("whole=1:5:0", "--grid whole=1:5:0: the step cannot be 0"),
    ("whole=5:1:1", "--grid whole=5:1:1: steps of 1 never get from 5 to 1"),
])
def test_bad_syntax_is_a_sentence(text: str, message: str) -> None:
    with pytest.raises(GridError) as caught:
        parse_grid(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("texts", "message"), [
    (("whole=1:2:1", "whole=3:4:1"), "--grid whole is given twice"),
    (("wole=1:2:1",), "--grid: unknown param wole for demo (known: whole, share, maybe, "
     "word, flag)"),
    (("wole=1:2:1", "shar=1:2:1"), "--grid: unknown params wole, shar for demo"),
    (("word=1:2:1",), "--grid word=1:2:1: word is not a number param of demo"),
    (("flag=0:1:1",), "--grid flag=0:1:1: flag is not a number param of demo"),
    (("whole=1:3:0.5",), "--grid whole=1:3:0.5: whole takes whole numbers"),
    (("whole=0.5:3:1",), "--grid whole=0.5:3:1: whole takes whole numbers"),
])
def test_grids_the_params_cannot_take_are_refused(texts: tuple[str, ...], message: str
                                                  ) -> None:
    with pytest.raises(GridError) as caught:
        values(*texts)
    assert str(caught.value).startswith(message)


def test_the_combinations_are_capped_before_any_is_listed() -> None:
    assert len(values("whole=1:100:1", "share=1:100:1", limit=10_000)) == 2
    with pytest.raises(GridError) as caught:
        values("whole=1:101:1", "share=1:100:1", limit=10_000)
    assert str(caught.value) == ("the grid has 10,100 combinations, more than the 10,000 "
                                 "allowed: use larger steps or fewer params")
    with pytest.raises(GridError, match="the grid has 1,000,000,000,000 combinations"):
        values("whole=1:1e12:1")  # counted, never built


def test_combinations_are_the_cartesian_product_in_order() -> None:
    axes = [GridAxis("a", (1, 2)), GridAxis("b", (0.5, 1.5, 2.5))]
    assert list(combinations(axes)) == [
        {"a": 1, "b": 0.5}, {"a": 1, "b": 1.5}, {"a": 1, "b": 2.5},
        {"a": 2, "b": 0.5}, {"a": 2, "b": 1.5}, {"a": 2, "b": 2.5}]


def metrics(**given: float) -> Metrics:
    base = {field.name: 0.0 for field in dataclasses.fields(Metrics)}
    base.update(given)
    base["trades"] = int(base["trades"])
    base["max_drawdown_days"] = int(base["max_drawdown_days"])
    return Metrics(**base)  # type: ignore[arg-type]


def same(first: Metrics, second: Metrics) -> bool:
    """Equal, NaN and all (a dataclass's == finds NaN unequal to itself)."""
    return all(a == b or (math.isnan(a) and math.isnan(b))
               for a, b in zip(first.as_dict().values(), second.as_dict().values(),
                               strict=True))


def test_ranking_knows_which_way_is_better() -> None:
    outcomes = [
        GridOutcome(0, metrics(sharpe=0.5, max_drawdown_pct=9.0)),
        GridOutcome(1, metrics(sharpe=math.nan, max_drawdown_pct=math.nan)),
        GridOutcome(2, metrics(sharpe=1.5, max_drawdown_pct=3.0)),
        GridOutcome(3, metrics(sharpe=1.5, max_drawdown_pct=4.0)),
        GridOutcome(4, metrics(sharpe=9.0, max_drawdown_pct=1.0), failure="RuntimeError"),
        GridOutcome(5, error="could not start", error_kind="crash"),
        GridOutcome(6, metrics(sharpe=-math.inf, max_drawdown_pct=math.inf)),
    ]
    # Higher first; a tie in grid order; NaN after every number; failed runs left out.
    assert [o.index for o in ranked(outcomes, "sharpe")] == [2, 3, 0, 6, 1]
    # A drawdown is better small.
    assert [o.index for o in ranked(outcomes, "max_drawdown_pct")] == [2, 3, 0, 6, 1]
    # All the same: grid order.
    assert [o.index for o in ranked(outcomes, "volatility_pct")] == [0, 1, 2, 3, 6]


def test_runs_in_worker_processes_equal_runs_here() -> None:
    start, end = date(2018, 1, 1), date(2018, 12, 31)
    history = load_history(("AAPL", "MSFT"), start, end, adjusted=True)
    spec = BacktestSpec("ma_cross", {}, ("AAPL", "MSFT"), start, end)
    runs = [MaCross.Params.model_validate({"fast": fast, "slow": 30}) for fast in (5, 10, 20)]
    job = GridJob("ma_cross", None, history.bars, spec)
    seen: list[tuple[int, int]] = []
    outcomes = run_grid(job, [params.model_dump() for params in runs], workers=2,
                        progress=lambda done, total: seen.append((done, total)))
    assert [outcome.index for outcome in outcomes] == [0, 1, 2]
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]
    for outcome, params in zip(outcomes, runs, strict=True):
        here = run_backtest(MaCross, params, history.bars, dataclasses.replace(
            spec, params=params.model_dump(mode="json")))
        assert outcome.ok
        assert outcome.metrics is not None
        assert same(outcome.metrics, here.metrics)
        assert outcome.bars == here.bars


def test_a_strategy_the_workers_cannot_find_is_an_error_per_run() -> None:
    start, end = date(2018, 1, 1), date(2018, 3, 31)
    history = load_history(("AAPL",), start, end, adjusted=True)
    job = GridJob("nowhere", None, history.bars, BacktestSpec("nowhere", {}, ("AAPL",),
                                                                 start, end))
    [outcome] = run_grid(job, [{}], workers=1)
    assert not outcome.ok
    assert outcome.error.startswith("unknown strategy 'nowhere'")
