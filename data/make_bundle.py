"""Build the bundled replay data from the full daily-bars CSV.

Run by a maintainer, never at run or test time:

    python -m data.make_bundle SOURCE.csv.gz

The bundle is a zip with one LZMA-compressed CSV per symbol, so the replay can load the
symbols a trader watches in milliseconds without decompressing the whole universe.
Rows are copied as published, defects included: the loader repairs them and counts
what it repaired.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pandas as pd

BUNDLE_PATH = Path(__file__).parent / "bundled" / "us_equities_daily.zip"

# Symbols every build keeps: the default watchlists and the rows with documented defects.
ALWAYS_KEEP = frozenset(
    [
        "AAPL",
        "MSFT",
        "AMZN",
        "GOOGL",
        "GOOG",
        "FB",
        "JPM",
        "BAC",
        "WFC",
        "C",
        "GS",
        "MS",
        "XOM",
        "CVX",
        "COP",
        "SLB",
        "JNJ",
        "PFE",
        "MRK",
        "UNH",
        "NVDA",
        "AMD",
        "INTC",
        "CSCO",
        "ORCL",
        "IBM",
        "V",
        "MA",
        "PG",
        "KO",
        "PEP",
        "WMT",
        "HD",
        "DIS",
        "NFLX",
        "BA",
        "CAT",
        "GE",
        "MMM",
        "T",
        "VZ",
        "CBS",
        "STI",
        "VIAB",
        "CBOE",
        "DXC",
        "SNI",
        "CSRA",
        "COL",
    ]
)
# Every DROP_EVERY-th other symbol (alphabetically) is left out to keep the bundle small.
DROP_EVERY = 11
MAX_BYTES = 8 * 1024 * 1024


def select_symbols(symbols: list[str]) -> list[str]:
    others = [s for s in sorted(symbols) if s not in ALWAYS_KEEP]
    dropped = set(others[DROP_EVERY - 1 :: DROP_EVERY])
    return [s for s in sorted(symbols) if s not in dropped]


def build(source: Path, target: Path = BUNDLE_PATH) -> None:
    frame = pd.read_csv(source, dtype={"symbol": str, "date": str})
    keep = select_symbols(list(frame["symbol"].unique()))
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_LZMA) as bundle:
        for symbol in keep:
            rows = frame[frame["symbol"] == symbol].drop(columns="symbol")
            # A fixed timestamp keeps the zip byte-identical between builds.
            info = zipfile.ZipInfo(f"{symbol}.csv", date_time=(2020, 1, 10, 0, 0, 0))
            info.compress_type = zipfile.ZIP_LZMA
            bundle.writestr(info, rows.to_csv(index=False))
    size = target.stat().st_size
    print(f"{len(keep)} symbols, {size:,} bytes -> {target}")
    if size > MAX_BYTES:
        raise SystemExit(f"bundle is {size:,} bytes, over the {MAX_BYTES:,} byte budget")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m data.make_bundle SOURCE.csv.gz")
    build(Path(sys.argv[1]))
