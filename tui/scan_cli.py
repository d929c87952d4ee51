"""`tapedeck scan`: run a scan over the bundled daily bars and print the hits.

    tapedeck scan "rsi(14) < 30 and close > sma(close, 200)" --date 2018-02-08
    tapedeck scan --preset golden-cross --universe Core --csv > hits.csv
    tapedeck scan                      (lists the presets and the saved scans)

Reads the profile's database read-only (its watchlists and saved scans): safe while the
workstation runs. Only typer is imported at module level, so `tapedeck --help` stays
instant; the scanner and the bundle are imported when the command runs.
"""

from __future__ import annotations

import csv
import logging
import math
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tui.cli_options import ConfigOption, ProfileOption, fail

if TYPE_CHECKING:
    from rich.table import Table

    from core.config import Settings
    from core.saved_scans import SavedScan
    from core.scanner import ScanResult
    from core.state import Watchlist
    from data.bundle import BundledDailyBars


def scan_command(
    ctx: typer.Context,
    expression: Annotated[str | None, typer.Argument(
        help="The scan, e.g. \"rsi(14) < 30 and close > sma(close, 200) sort by rsi(14) "
        "asc limit 20\" (leave it out to list the presets and saved scans).",
        metavar="EXPR", show_default=False)] = None,
    preset: Annotated[str | None, typer.Option(
        "--preset", help="Run a preset or a saved scan by name instead of EXPR.",
        metavar="NAME", show_default=False)] = None,
    universe: Annotated[str | None, typer.Option(
        "--universe", "-u", help="bundled (every bundled symbol, the default), a "
        "watchlist's name, or symbols separated by commas.", metavar="NAME",
        show_default=False)] = None,
    on: Annotated[str | None, typer.Option(
        "--date", help="Scan as of this session's close, YYYY-MM-DD (default: the last "
        "bundled session).", metavar="DATE", show_default=False)] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")
                      ] = False,
    config: ConfigOption = None,
    profile: ProfileOption = None,
) -> None:
    """Scan the bundled daily bars: every symbol matching a condition, with the values
    behind it, sorted by the ranking clause."""
    from tui.cli import _global, load

    settings = load(*_global(ctx, config, profile))
    # The bundle's repairs are documented and counted; a scan's output is the hits.
    logging.getLogger("data").setLevel(logging.ERROR)
    watchlists, saved = _profile_lists(settings)
    if expression is None and preset is None:
        _show(_catalog(saved))
        return
    if expression is not None and preset is not None:
        fail("give a scan or --preset, not both")
    text, universe_spec = _chosen(expression, preset, universe, saved)
    result, universe_name = _run(text, universe_spec, on, watchlists)
    if as_csv:
        _write_csv(result)
    else:
        _show(_table(result, text, universe_name))



def _chosen(expression: str | None, preset: str | None, universe: str | None,
            saved: list[SavedScan]) -> tuple[str, str]:
    """The scan's text and universe: typed, a preset, or a saved scan (whose own
    universe is the default)."""
    from core.scan_presets import find_preset

    if expression is not None:
        return expression, universe or "bundled"
    assert preset is not None
    for scan in saved:
        if scan.name.lower() == preset.strip().lower():
            return scan.text, universe or scan.universe
    try:
        return find_preset(preset).text, universe or "bundled"
    except KeyError as error:
        names = ", ".join(scan.name for scan in saved)
        extra = f"; the saved scans are {names}" if names else ""
        fail(f"{error.args[0]}{extra}")


def _run(text: str, universe_spec: str, on: str | None,
         watchlists: list[Watchlist]) -> tuple[ScanResult, str]:
    from core.scan_language import parse
    from core.scan_service import resolve_universe
    from core.scan_syntax import ScanError
    from core.scanner import run_scan
    from data.bundle import BundledDailyBars, BundleError
    from data.history import unknown_symbol_message
    from data.universe import universe_bars

    try:
        scan = parse(text)
    except ScanError as error:
        fail(f"the scan is not valid:\n{error.pointer(text)}")
    try:
        bundle = BundledDailyBars()
        known = bundle.symbols()
        name, symbols = resolve_universe(universe_spec, watchlists, known)
        unknown = [symbol for symbol in symbols if symbol not in bundle]
        if unknown:
            fail("; ".join(unknown_symbol_message(symbol, known) for symbol in unknown))
        first, last = _span(bundle, symbols)
        day = last if on is None else _date(on)
        if not first <= day <= last:
            fail(f"{day} is outside the bundled data ({first} to {last})")
        label = name if len(name) <= 24 else f"{len(symbols)} symbols"
        return run_scan(scan, universe_bars(bundle, symbols, through=day)), label
    except ValueError as error:  # a universe that does not resolve
        fail(str(error))
    except BundleError as error:
        fail(str(error))


def _span(bundle: BundledDailyBars, symbols: list[str]) -> tuple[date, date]:
    """The first and last dates the universe's bars cover (loading them: many at once
    come from the bundle's disk cache, which `universe_bars` then reads from memory)."""
    from data.universe import universe_frames

    frames = list(universe_frames(bundle, symbols).values())
    spans = [(frame.index[0].date(), frame.index[-1].date()) for frame in frames
             if not frame.empty]
    if not spans:
        fail("the universe has no bars")
    return min(s[0] for s in spans), max(s[1] for s in spans)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        fail(f"--date: {text!r} is not a date: use YYYY-MM-DD")


def _profile_lists(settings: Settings) -> tuple[list[Watchlist], list[SavedScan]]:
    """The profile's watchlists (the config's before the first run) and saved scans."""
    import asyncio

    from core.state import Watchlist
    from core.store import StoreError

    configured = [Watchlist(name, tuple(symbols))
                  for name, symbols in settings.watchlists.items()]
    path = settings.database_path().expanduser()
    if not path.is_file():
        return configured, []
    try:
        stored, saved = asyncio.run(_read_profile(path))
    except StoreError as error:
        fail(str(error))
    return ([Watchlist(name, tuple(symbols)) for name, symbols in stored] or configured,
            saved)


async def _read_profile(path: Path) -> tuple[list[tuple[str, list[str]]], list[SavedScan]]:
    from core.saved_scans import saved_scans
    from core.store import Store

    store = await Store.open(path, read_only=True)
    try:
        lists = await store.load_watchlists()
        saved = await saved_scans(store) if store.schema_version >= 5 else []
        return lists, saved
    finally:
        await store.close()


# ---------------------------------------------------------------------------------------
# Output


def _catalog(saved: list[SavedScan]) -> Table:
    from rich.table import Table

    from core.scan_presets import PRESETS

    table = Table(title="Scans (tapedeck scan --preset NAME)", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("scan")
    table.add_column("what it finds")
    for preset in PRESETS:
        table.add_row(preset.name, preset.text, preset.about)
    for scan in saved:
        table.add_row(scan.name, scan.text, f"saved; universe {scan.universe}")
    return table


def _number(value: float) -> str:
    if math.isnan(value):
        return "—"
    if abs(value) >= 1e6:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _table(result: ScanResult, text: str, universe: str) -> Table:
    from rich.table import Table

    scan = result.scan
    rank_text = scan.sort_by.render() if scan.sort_by is not None else ""
    rank_extra = bool(rank_text) and rank_text not in result.terms
    day = f" on {result.day}" if result.day else ""
    shown = (f"{len(result.hits)} of {result.matched}" if result.matched > len(result.hits)
             else f"{result.matched}")
    table = Table(title=f"{text}\n{shown} matched of {result.scanned} scanned{day} in {universe}",
                  title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("symbol", no_wrap=True)
    table.add_column("since", no_wrap=True)
    for term in result.terms:
        table.add_column(term, justify="right")
    if rank_extra:
        table.add_column(f"{rank_text} ({'desc' if scan.descending else 'asc'})",
                         justify="right")
    for position, hit in enumerate(result.hits, start=1):
        cells = [str(position), hit.symbol, str(hit.since)]
        cells += [_number(hit.values[term]) for term in result.terms]
        if rank_extra:
            cells.append(_number(hit.rank))
        table.add_row(*cells)
    if result.skipped:
        table.caption = (f"{len(result.skipped)} symbols not scanned (no bar on the date, or "
                         "too little history)")
    return table


def _write_csv(result: ScanResult) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["symbol", "since", "as_of", *result.terms, "rank"])
    for hit in result.hits:
        writer.writerow([hit.symbol, hit.since.isoformat(), hit.as_of.isoformat(),
                         *(_csv_number(hit.values[term]) for term in result.terms),
                         _csv_number(hit.rank)])


def _csv_number(value: float) -> str:
    return "" if math.isnan(value) else repr(value)


def _show(report: Table) -> None:
    from tui.cli import _show as show

    show(report)
