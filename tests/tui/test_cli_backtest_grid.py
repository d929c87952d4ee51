"""`tapedeck backtest --grid`: real strategies over the real bundle in real worker
processes, through typer's runner. Small grids over one or two symbols and a year, on
two workers, keep it quick."""

from __future__ import annotations

import math
import multiprocessing
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

import core.backtest_grid
from core.backtest import Progress
from core.backtest_grid import GridJob, GridOutcome
from tests.tui.test_cli_backtest import refused, run, strict_json

GRID_2018 = ("backtest", "ma_cross", "--symbols", "AAPL,MSFT", "--start", "2018-01-01",
             "--end", "2018-12-31", "--workers", "2")
# Six combinations, every one with fast below slow.
SIX = ("--grid", "fast=5:15:5", "--grid", "slow=20:30:10")


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "backtests.sqlite"
    monkeypatch.setenv("TAPEDECK_STORE__PATH", str(path))
    return path


def table_rows(text: str, title: str) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of the table under `title`, cell by cell."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(title))
    last = next(i for i in range(first, len(lines)) if lines[i].startswith("└"))
    header = [cell.strip() for cell in lines[first + 2].split("┃")[1:-1]]
    rows = [[cell.strip() for cell in line.split("│")[1:-1]]
            for line in lines[first + 4:last]]
    return header, rows


def same_metrics(first: dict[str, Any], second: dict[str, Any]) -> bool:
    return first.keys() == second.keys() and all(
        first[name] == second[name] or (isinstance(first[name], float)
                                        and math.isnan(first[name])
                                        and math.isnan(second[name]))
        for name in first)


def test_the_best_runs_are_listed_ranked_and_the_best_is_a_single_run(
        database: Path, tmp_path: Path) -> None:
    json_path = tmp_path / "grid.json"
    result = run(*GRID_2018, *SIX, "--top", "4", "--json", str(json_path), "--save-best")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "ma_cross on AAPL, MSFT, 2018-01-01 to 2018-12-31" in out
    assert "grid: fast 5, 10, 15 x slow 20, 30: 6 combinations" in out
    assert "6 runs in " in out
    assert "on 2 workers" in out
    assert "\x1b[" not in out  # no colours into a pipe

    document = strict_json(json_path.read_text(encoding="utf-8"))
    assert document["rank_by"] == "sharpe"
    assert document["lower_is_better"] is False
    assert document["combinations"] == 6
    assert document["skipped"] == []
    assert document["spec"]["grid"] == {"fast": [5, 10, 15], "slow": [20, 30]}
    results = document["results"]
    # Every combination, once, ranked, with the params a single run would have.
    assert sorted((r["params"]["fast"], r["params"]["slow"]) for r in results) == [
        (5, 20), (5, 30), (10, 20), (10, 30), (15, 20), (15, 30)]
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5, 6]
    sharpes = [r["metrics"]["sharpe"] for r in results]
    assert sharpes == sorted(sharpes, reverse=True)
    assert all(r["params"]["average"] == "sma" for r in results)

    header, rows = table_rows(out, "Top 4 of 6 runs by Sharpe ratio (highest first)")
    assert header[:4] == ["#", "fast", "slow", "Sharpe ratio"]
    assert len(rows) == 4
    for place, (row, expected) in enumerate(zip(rows, results, strict=False), start=1):
        assert row[:3] == [str(place), str(expected["params"]["fast"]),
                           str(expected["params"]["slow"])]
        assert row[3] == f"{expected['metrics']['sharpe']:,.2f}"

    # The best, saved: as a single run of those params saves it.
    best = results[0]
    assert document["best_run_id"] == 1
    assert "\nsaved the best run as run 1\n" in out
    shown = run("backtest", "--show", "1")
    assert shown.exit_code == 0, shown.output
    assert f"fast={best['params']['fast']} slow={best['params']['slow']}" in shown.stdout

    single = run(*GRID_2018[:8], "--no-save", "--json", "-",
                 "--param", f"fast={best['params']['fast']}",
                 "--param", f"slow={best['params']['slow']}")
    assert single.exit_code == 0, single.output
    alone = strict_json(single.stdout)
    assert alone["spec"]["params"] == best["params"]
    assert same_metrics(alone["metrics"], best["metrics"])
    assert alone["bars"] == best["bars"]


def test_refused_combinations_are_skipped_and_counted(database: Path) -> None:
    # fast must be below slow: (20, 20), (30, 20) and (30, 30) are refused.
    result = run(*GRID_2018, "--grid", "fast=10:30:10", "--grid", "slow=20:30:10",
                 "--rank-by", "max_drawdown_pct", "--json", "-")
    assert result.exit_code == 0, result.output
    assert result.stderr == ("tapedeck: note: skipped 3 of 6 combinations the params refuse; "
                             "the first: params: fast (20) must be shorter than slow (20)\n")
    document = strict_json(result.stdout)  # stdout is the JSON and nothing else
    assert not database.exists()  # grid runs are not saved
    assert document["best_run_id"] is None
    assert document["lower_is_better"] is True
    ran = [(r["params"]["fast"], r["params"]["slow"]) for r in document["results"]]
    assert sorted(ran) == [(10, 20), (10, 30), (20, 30)]
    skipped = document["skipped"]
    assert [(s["params"]["fast"], s["params"]["slow"]) for s in skipped] == [
        (20, 20), (30, 20), (30, 30)]
    assert skipped[1]["reason"] == "params: fast (30) must be shorter than slow (20)"
    drawdowns = [r["metrics"]["max_drawdown_pct"] for r in document["results"]]
    assert drawdowns == sorted(drawdowns)  # lowest first


def test_fixed_params_apply_to_every_combination(database: Path) -> None:
    result = run(*GRID_2018, "--grid", "fast=5:10:5", "--param", "slow=40", "--param",
                 "average=ema", "--json", "-")
    assert result.exit_code == 0, result.output
    document = strict_json(result.stdout)
    assert document["spec"]["params"] == {"slow": 40, "average": "ema"}
    assert [(r["params"]["fast"], r["params"]["slow"], r["params"]["average"])
            for r in sorted(document["results"], key=lambda r: r["params"]["fast"])] == [
        (5, 40, "ema"), (10, 40, "ema")]


@pytest.mark.parametrize(("args", "expected"), [
    (("--grid", "fast=5:20"), "--grid expects NAME=START:STOP:STEP, not 'fast=5:20'"),
    (("--grid", "fast=5:20:0"), "--grid fast=5:20:0: the step cannot be 0"),
    (("--grid", "fast=5:x:1"), "--grid expects NAME=START:STOP:STEP with numbers"),
    (("--grid", "fsat=5:20:5"), "--grid: unknown param fsat for ma_cross (known: quantity, "
     "position_value, fast, slow, average, allow_short)"),
    (("--grid", "fast=5:20:2.5"), "--grid fast=5:20:2.5: fast takes whole numbers"),
    (("--grid", "average=1:2:1"), "--grid average=1:2:1: average is not a number param"),
    (("--grid", "fast=5:10:5", "--grid", "fast=1:2:1"), "--grid fast is given twice"),
    (("--grid", "fast=5:10:5", "--param", "fast=3"),
     "param fast is given by both --param and --grid"),
    (("--grid", "fast=5:10:5", "--param", "slwo=40"), "unknown param slwo for ma_cross"),
    (("--grid", "fast=1:500:1", "--grid", "slow=2:1000:1"),
     "the grid has 499,500 combinations, more than the 10,000 allowed: use larger steps "
     "or fewer params"),
    (("--grid", "fast=30:50:10", "--param", "slow=20"),
     "the params refuse every combination of the grid (3); the first: params: fast (30) "
     "must be shorter than slow (20)"),
    (("--grid", "fast=5:10:5", "--trades-csv", "-"),
     "--trades-csv writes one run's trades: it does not go with --grid"),
    (("--grid", "fast=5:10:5", "--rank-by", "sharp"), "--rank-by takes a metric ("),
    (("--grid", "fast=5:10:5", "--save-best", "--no-save"),
     "use either --save-best or --no-save, not both"),
    (("--top", "3",), "--top goes with --grid"),
    (("--save-best",), "--save-best goes with --grid"),
    (("--workers", "2",), "--workers goes with --grid"),
])
def test_a_bad_grid_is_one_clear_line(database: Path, args: tuple[str, ...],
                                      expected: str) -> None:
    assert expected in refused("backtest", "ma_cross", *args)
    assert not database.exists()


FLAKY_STRATEGY = '''
from core.strategies.base import SizedParams, Strategy


class FlakyParams(SizedParams):
    crash_at: int = 0


class Flaky(Strategy[FlakyParams]):
    name = "flaky"
    title = "Cannot start below 0, raises at bar crash_at above it"
    Params = FlakyParams

    def __init__(self, params, context):
        super().__init__(params, context)
        if params.crash_at < 0:
            raise RuntimeError("no such indicator")
        self.seen = 0

    def indicators(self):
        return ()

    def on_bar(self, bar):
        self.seen += 1
        if self.params.crash_at and self.seen >= self.params.crash_at:
            raise RuntimeError("lost count")
        self.ctx.target_position(bar.symbol, 10)
'''


def test_the_workers_find_a_user_strategy_and_its_failures_are_reported(
        database: Path, isolated_environment: Path) -> None:
    folder = isolated_environment / "strategies"  # beside TAPEDECK_CONFIG
    folder.mkdir()
    (folder / "flaky.py").write_text(FLAKY_STRATEGY, encoding="utf-8")
    result = run("backtest", "flaky", "--start", "2019-01-02", "--end", "2019-03-29",
                 "--grid", "crash_at=-1:1:1", "--workers", "2")
    assert result.exit_code == 1, result.output  # the strategy failed: as for one run
    assert "Traceback" not in result.output
    errors = result.stderr.splitlines()
    assert len(errors) == 2, result.stderr
    assert errors[0].startswith("tapedeck: flaky could not start in 1 of 3 runs; the first, "
                                "crash_at=-1: RuntimeError: no such indicator (")
    assert errors[1].startswith("tapedeck: the strategy failed in 1 of 3 runs (not ranked); "
                                "the first, crash_at=1: ")
    assert errors[1].endswith("RuntimeError: lost count")
    _, rows = table_rows(result.stdout, "Top 1 of 1 runs by Sharpe ratio")
    assert [row[:2] for row in rows] == [["1", "0"]]


def test_a_grid_no_run_of_which_can_start_is_the_error(
        database: Path, isolated_environment: Path) -> None:
    folder = isolated_environment / "strategies"
    folder.mkdir()
    (folder / "flaky.py").write_text(FLAKY_STRATEGY, encoding="utf-8")
    result = run("backtest", "flaky", "--start", "2019-01-02", "--end", "2019-01-31",
                 "--grid", "crash_at=-2:-1:1", "--workers", "2")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("tapedeck: flaky could not start: RuntimeError: no such "
                                    "indicator (")
    assert result.stderr.count("\n") == 1


def test_ctrl_c_stops_the_pool_and_says_how_far_it_got(
        database: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_run_grid = core.backtest_grid.run_grid

    def interrupted(job: GridJob, runs: Any, *, workers: int,
                    progress: Progress | None = None) -> list[GridOutcome]:
        def pressed(done: int, total: int) -> None:
            if done == 1:  # a real SIGINT, as Ctrl-C sends, once the first run is in
                os.kill(os.getpid(), signal.SIGINT)

        return real_run_grid(job, runs, workers=workers, progress=pressed)

    monkeypatch.setattr(core.backtest_grid, "run_grid", interrupted)
    result: Result = run(*GRID_2018, *SIX)
    assert result.exit_code == 130
    assert result.stdout == ""
    assert re.fullmatch(r"tapedeck: interrupted: [1-5] of 6 runs finished\n", result.stderr)
    assert multiprocessing.active_children() == []  # the pool is shut down
