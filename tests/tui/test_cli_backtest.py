"""`tapedeck backtest`: real strategies over the real bundle, saved to a real database,
through typer's runner. Short date ranges and one symbol keep it quick."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from core.dbfile import claim, release_lock
from core.metrics import METRIC_LABELS
from tui.backtest_cli import TRADES_CSV_HEADER
from tui.cli import app

RUN_2018 = ("backtest", "ma_cross", "--symbols", "AAPL", "--start", "2018-01-01",
            "--end", "2018-12-31")
KNOWN = "known: bollinger_reversion, donchian_breakout, ma_cross, rsi_reversion"


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "backtests.sqlite"
    monkeypatch.setenv("TAPEDECK_STORE__PATH", str(path))
    return path


def run(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    # Never a traceback: a command ends normally or by typer.Exit (SystemExit).
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception)
    return result


def refused(*args: str) -> str:
    """The one-line message of a command that must refuse its input."""
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("tapedeck: ")
    return result.stderr


def metrics_block(text: str) -> list[str]:
    """The lines of the metrics table, from its title to its bottom border."""
    lines = text.splitlines()
    first = lines.index(next(line for line in lines if line.startswith("Performance")))
    last = next(i for i in range(first, len(lines)) if lines[i].startswith("└"))
    return lines[first:last + 1]


def strict_json(text: str) -> Any:
    def no_constants(name: str) -> Any:
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=no_constants)


def exported(*extra: str) -> dict[str, Any]:
    result = run(*RUN_2018, "--no-save", "--json", "-", *extra)
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = strict_json(result.stdout)
    return document


def test_a_run_prints_its_metrics_saves_and_shows_again(database: Path) -> None:
    result = run(*RUN_2018)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "ma_cross on AAPL, 2018-01-01 to 2018-12-31" in out
    table = metrics_block(out)
    for label in METRIC_LABELS.values():
        assert any(label in line for line in table), label
    assert "Equity" in out
    assert "2018-01-02" in out  # the chart's first date on its x axis
    assert "Trades:" in out
    assert "round trip" in out
    assert out.rstrip().endswith("saved as run 1")
    assert "\x1b[" not in out  # no colours into a pipe
    assert database.is_file()

    listed = run("backtest", "--list")
    assert listed.exit_code == 0, listed.output
    [row] = [line for line in listed.stdout.splitlines() if "ma_cross" in line]
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[0] == "1"
    assert cells[2:5] == ["ma_cross", "AAPL", "2018-01-01 to 2018-12-31"]
    total_return = next(line for line in table if "Total return" in line).split("│")[2].strip()
    assert cells[5] == total_return

    shown = run("backtest", "--show", "1")
    assert shown.exit_code == 0, shown.output
    assert "run 1: ma_cross on AAPL, 2018-01-01 to 2018-12-31" in shown.stdout
    assert metrics_block(shown.stdout) == table
    assert "Equity" in shown.stdout

    assert run(*RUN_2018).stdout.rstrip().endswith("saved as run 2")
    assert "newest 1 of 2" in run("backtest", "--list", "--limit", "1").stdout


def test_json_on_stdout_is_all_there_is_and_matches_the_csv(
        database: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "trades.csv"
    document = exported("--trades-csv", str(csv_path))
    assert not database.exists()  # --no-save
    assert document["run_id"] is None
    assert document["spec"] == {
        "strategy": "ma_cross", "params": document["spec"]["params"], "symbols": ["AAPL"],
        "start": "2018-01-01", "end": "2018-12-31", "cash": "100000", "fill_at": "next_open",
        "adjusted": True}
    assert document["spec"]["params"]["fast"] == 10
    assert set(document["metrics"]) == set(METRIC_LABELS)
    assert document["equity"][0] == ["2018-01-02", 100000.0]
    assert document["orders"]
    assert document["orders"][0]["symbol"] == "AAPL"
    assert document["failure"] == ""
    assert document["bars"] == len(document["equity"])

    header, *rows = list(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
    assert tuple(header) == TRADES_CSV_HEADER
    trades = document["trades"]
    assert len(rows) == len(trades) == document["metrics"]["trades"] > 0
    for row, trade in zip(rows, trades, strict=True):
        record = dict(zip(header, row, strict=True))
        assert float(record.pop("return_pct")) == trade.pop("return_pct")
        assert record == trade  # Decimals as the same exact text, the same ISO times


def test_fast_above_slow_is_refused_with_the_reason(database: Path) -> None:
    message = refused(*RUN_2018, "--param", "fast=50", "--param", "slow=20")
    assert message == "tapedeck: params: fast (50) must be shorter than slow (20)\n"
    assert not database.exists()


@pytest.mark.parametrize(("args", "expected"), [
    (("--symbols", "APPL"), "no bundled bars for 'APPL' (did you mean AAPL"),
    (("--param", "fsat=5"), "unknown param fsat for ma_cross (known: quantity, "
     "position_value, fast, slow, average, allow_short)"),
    (("--param", "fast=soon"), "param fast: Input should be a valid integer"),
    (("--param", "fast"), "--param expects NAME=VALUE, not 'fast'"),
    (("--start", "2019-06-01", "--end", "2019-01-01"),
     "the start 2019-06-01 is after the end 2019-01-01"),
    (("--start", "2014-06-01"), "2014-06-01 is outside the bundled data: bars for AAPL run "
     "from 2015-01-12 to 2020-01-10"),
    (("--end", "2020-06-30"), "2020-06-30 is outside the bundled data"),
    (("--start", "2018-02-30"), "--start expects a date as YYYY-MM-DD, not '2018-02-30'"),
    (("--cash", "lots"), "--cash expects an amount such as 100000, not 'lots'"),
    (("--fill-at", "open"), "--fill-at must be next_open or close, not 'open'"),
])
def test_bad_input_is_one_clear_line(database: Path, args: tuple[str, ...],
                                     expected: str) -> None:
    assert expected in refused("backtest", "ma_cross", *args)


def test_an_unknown_strategy_names_the_known_ones(database: Path) -> None:
    assert refused("backtest", "ma_crossing") == (
        f"tapedeck: unknown strategy 'ma_crossing' ({KNOWN})\n")
    assert KNOWN in refused("backtest")


def test_fill_at_close_fills_at_other_times_and_prices(database: Path) -> None:
    at_open = exported()["trades"]
    at_close = exported("--fill-at", "close")["trades"]
    assert at_open
    assert at_close
    assert {t["entry_time"] for t in at_open}.isdisjoint(t["entry_time"] for t in at_close)
    assert [t["entry_price"] for t in at_open] != [t["entry_price"] for t in at_close]


def test_raw_prices_are_not_the_adjusted_ones(database: Path) -> None:
    adjusted, raw = exported(), exported("--raw")
    assert raw["spec"]["adjusted"] is False
    # AAPL's 2018 dividends: the adjusted history is lower than the prices printed.
    assert float(raw["trades"][0]["entry_price"]) > float(adjusted["trades"][0]["entry_price"])


def test_a_locked_database_still_gets_the_results(database: Path) -> None:
    # Another tapedeck (the workstation) holds the profile database.
    path, lock = claim(database, read_only=False)
    assert lock is not None  # a writer's claim always holds the lock
    try:
        result = run(*RUN_2018)
    finally:
        release_lock(path, lock)
    assert result.exit_code == 0, result.output
    assert "Total return" in result.stdout
    assert "saved as run" not in result.stdout
    assert "tapedeck: the run was not saved: " in result.stderr
    assert "in use by another tapedeck" in result.stderr


def test_a_damaged_database_still_gets_the_results(database: Path) -> None:
    database.write_bytes(b"this is not a database" * 100)
    result = run(*RUN_2018)
    assert result.exit_code == 0, result.output
    assert "Total return" in result.stdout
    assert "the run was not saved" in result.stderr
    assert "damaged" in result.stderr


def test_saved_runs_need_a_database_and_a_known_id(database: Path) -> None:
    missing = run("backtest", "--list")
    assert missing.exit_code == 1
    assert missing.stderr == (f"tapedeck: no database yet at {database}: no backtest has "
                              "been saved\n")
    assert run(*RUN_2018).exit_code == 0
    assert "there is no saved run 9" in refused("backtest", "--show", "9")
    assert "leave out the strategy" in refused("backtest", "ma_cross", "--list")


def test_a_broken_user_strategy_is_a_warning(database: Path, isolated_environment: Path
                                             ) -> None:
    folder = isolated_environment / "strategies"  # beside TAPEDECK_CONFIG
    folder.mkdir()
    (folder / "broken.py").write_text("raise RuntimeError('half written')\n", encoding="utf-8")
    result = run(*RUN_2018, "--no-save")
    assert result.exit_code == 0, result.output
    assert "tapedeck: warning: strategy " in result.stderr
    assert "RuntimeError: half written" in result.stderr
    assert "Traceback" not in result.stderr


def test_metrics_keep_nan_as_a_string_in_json(database: Path) -> None:
    # Averages too long to cross within January: no trades, so the win rate and the
    # profit factor are NaN, which strict JSON can only carry as a string.
    document = exported("--param", "fast=150", "--param", "slow=200", "--end", "2018-01-31")
    metrics = document["metrics"]
    assert metrics["trades"] == 0
    assert metrics["win_rate_pct"] == "NaN"
    assert math.isnan(float(metrics["profit_factor"]))


CRASHING_STRATEGY = '''
from core.strategies.base import SizedParams, Strategy


class WhereParams(SizedParams):
    where: str = "on_bar"


class Crashing(Strategy[WhereParams]):
    name = "crashing"
    title = "Raises where it is told to"
    Params = WhereParams

    def __init__(self, params, context):
        super().__init__(params, context)
        if params.where == "init":
            raise RuntimeError("no such indicator")

    def indicators(self):
        return ()

    def on_bar(self, bar):
        self.ctx.target_position(bar.symbol, 10)
        if self.ctx.position(bar.symbol):
            raise RuntimeError("lost count")
'''


def test_a_strategy_that_raises_is_reported_not_a_traceback(
        database: Path, isolated_environment: Path) -> None:
    folder = isolated_environment / "strategies"
    folder.mkdir()
    (folder / "crashing.py").write_text(CRASHING_STRATEGY, encoding="utf-8")
    short = ("backtest", "crashing", "--start", "2019-01-02", "--end", "2019-02-28")

    during = run(*short)
    assert during.exit_code == 1, during.output
    assert "Total return" in during.stdout  # the results up to the failure
    assert "the strategy failed and stopped trading: " in during.stdout
    assert "RuntimeError: lost count" in during.stdout

    before = run(*short, "--param", "where=init")
    assert before.exit_code == 1
    assert before.stdout == ""
    assert before.stderr.startswith("tapedeck: crashing could not start: RuntimeError: no "
                                    "such indicator (")
    assert "Traceback" not in before.stderr
