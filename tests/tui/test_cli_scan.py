"""`tapedeck scan`: typed scans, presets and saved scans over the real bundle, as a
table or CSV, through typer's runner; every mistake is one clear line, never a
traceback."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from core.saved_scans import save_scan
from core.scan_presets import PRESETS
from core.store import Store
from tui.cli import app

SMALL = "AAPL,MSFT,XOM,JPM,IBM,KO,PG,WFC,CBOE,PH"


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "scans.sqlite"
    monkeypatch.setenv("TAPEDECK_STORE__PATH", str(path))
    return path


def run(*args: str) -> Result:
    result = CliRunner().invoke(app, ["scan", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception)
    return result


def test_a_typed_scan_prints_its_hits_with_the_values_behind_them(database: Path) -> None:
    result = run("rsi(14) < 30 and close > sma(close, 200) sort by rsi(14) asc",
                 "--universe", SMALL, "--date", "2018-02-08")
    assert result.exit_code == 0, result.output
    assert "matched of 10 scanned on 2018-02-08 in 10 symbols" in result.output
    for column in ("symbol", "since", "rsi(close, 14)", "sma(close, 200)"):
        assert column in result.output
    assert "CBOE" in result.output


def test_csv_is_one_row_per_hit_in_ranking_order(database: Path) -> None:
    result = run("--preset", "oversold-rsi", "--date", "2018-02-08", "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert rows[0].keys() == {"symbol", "since", "as_of", "rsi(close, 14)", "close",
                              "sma(close, 200)", "rank"}
    ranks = [float(row["rank"]) for row in rows]
    assert ranks == sorted(ranks)
    assert all(float(row["rsi(close, 14)"]) < 30 for row in rows)
    assert {row["as_of"] for row in rows} == {"2018-02-08"}
    assert "CBOE" in [row["symbol"] for row in rows]


def test_without_a_scan_it_lists_the_presets_and_saved_scans(database: Path) -> None:
    async def save() -> None:
        store = await Store.open(database)
        await save_scan(store, "cheap banks", "close < 60", "WFC,JPM")
        await store.close()

    asyncio.run(save())
    result = run()
    assert result.exit_code == 0, result.output
    for preset in PRESETS:
        assert preset.name in result.output
    assert "cheap banks" in result.output
    # A saved scan runs by name, over its own universe.
    saved = run("--preset", "Cheap Banks", "--date", "2018-02-08", "--csv")
    assert saved.exit_code == 0, saved.output
    assert {row["symbol"] for row in csv.DictReader(io.StringIO(saved.output))} == {"WFC"}


def test_a_watchlist_is_a_universe(database: Path) -> None:
    result = run("close > 0", "--universe", "energy", "--date", "2019-03-14", "--csv")
    assert result.exit_code == 0, result.output
    # The default configuration's Energy watchlist.
    assert {row["symbol"] for row in csv.DictReader(io.StringIO(result.output))} == {
        "XOM", "CVX", "COP", "SLB"}


@pytest.mark.parametrize(("args", "message"), [
    (("rsi(14) <",), "^ expected a value or a condition"),
    (("__import__('os')",), "not valid"),
    (("close > 0", "--universe", "AAPL,APPL"), "did you mean AAPL"),
    (("close > 0", "--universe", "no list!"), "neither a watchlist"),
    (("close > 0", "--date", "2030-01-01"), "outside the bundled data"),
    (("close > 0", "--date", "yesterday"), "not a date"),
    (("--preset", "nope"), "the presets are oversold-rsi"),
    (("close > 0", "--preset", "gap-up"), "not both"),
])
def test_mistakes_are_one_clear_message(database: Path, args: tuple[str, ...],
                                        message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
