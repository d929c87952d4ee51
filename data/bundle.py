"""The bundled daily bars of the replay market: five years of US equities, read per symbol.

The bundle (built by `data.make_bundle`) holds one LZMA-compressed CSV per symbol, copied
from Yahoo Finance as published, defects included. `clean_daily_bars` repairs or drops
every defective row and counts what it did in a `LoadReport`, and every load logs those
counts: a replay that quietly trades on a zero-price print or a bar whose close lies
outside its own range would mislead the trader, and one that quietly drops rows would
hide why a chart has a gap.

Loading every symbol this way takes seconds, so `load_all` keeps the cleaned bars of the
whole bundle in a disk cache (`data.bundle_cache`) and later instances read them from it
in a fraction of that, logging and reporting exactly what the cleaning did.
"""

from __future__ import annotations

import io
import logging
import lzma
import threading
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from data import bundle_cache

logger = logging.getLogger(__name__)

BUNDLE_PATH = Path(__file__).parent / "bundled" / "us_equities_daily.zip"

PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")
COLUMNS = (*PRICE_COLUMNS, "volume")
# About one year of sessions: fewer rows means a listing, delisting or rename inside the
# bundle's five years, which indicators with long lookbacks cannot use in full.
SHORT_HISTORY_ROWS = 250
# Dates named in a log line before it says "and N more".
LOGGED_DATES = 5
# In the disk cache's key: bump it when `clean_daily_bars` changes what it returns or logs,
# so old caches are rebuilt (the bundle's members, the constants here and the versions of
# pandas and numpy are in the key already).
CACHE_VERSION = 1
# `load_many` reads the disk cache when asked for at least this many symbols not loaded
# yet: reading it takes about as long as cleaning this many.
CACHE_MIN_SYMBOLS = 10

Note = tuple[int, str]  # a line cleaning logged: its level and its text
_COLUMN_INDEX = pd.Index(COLUMNS)  # copied into the frames read from the disk cache


class BundleError(Exception):
    """The bundle, or one of its members, is missing or unreadable."""


class UnknownSymbolError(KeyError):
    """A symbol the bundle has no bars for."""

    def __init__(self, symbol: str, path: Path) -> None:
        super().__init__(symbol)
        self.symbol = symbol
        self.path = path

    def __str__(self) -> str:
        return f"no bundled bars for {self.symbol!r} in {self.path}"


@dataclass
class LoadReport:
    """What cleaning repaired or dropped. Counts are of defects, not of rows: a row can
    carry several (the second CBS row of 2019-12-04 is both a duplicate and all zeros)."""

    duplicates_dropped: int = 0
    zero_price_rows_dropped: int = 0
    out_of_range_repaired: int = 0
    zero_volume_rows: int = 0
    invalid_rows_dropped: int = 0
    high_low_swapped: int = 0
    short_history: list[str] = field(default_factory=list)

    def merge(self, other: LoadReport) -> None:
        """Add another report's counts to this one."""
        for counter in fields(self):
            name = counter.name
            if name != "short_history":
                setattr(self, name, getattr(self, name) + getattr(other, name))
        self.short_history.extend(s for s in other.short_history if s not in self.short_history)

    def summary(self) -> str:
        """One line for a human, or "clean"."""
        counted = [
            (self.duplicates_dropped, "duplicate row", "duplicate rows", "dropped"),
            (self.zero_price_rows_dropped, "zero-price row", "zero-price rows", "dropped"),
            (self.invalid_rows_dropped, "invalid row", "invalid rows", "dropped"),
            (self.high_low_swapped, "row with high < low", "rows with high < low", "swapped"),
            (self.out_of_range_repaired, "out-of-range row", "out-of-range rows", "repaired"),
            (self.zero_volume_rows, "zero-volume row", "zero-volume rows", "kept"),
        ]
        parts = [
            f"{_quantity(number, singular, plural)} {verb}"
            for number, singular, plural, verb in counted
            if number
        ]
        if self.short_history:
            histories = _quantity(len(self.short_history), "short history", "short histories")
            names = ", ".join(sorted(self.short_history))
            parts.append(f"{histories} (< {SHORT_HISTORY_ROWS} rows): {names}")
        return ", ".join(parts) or "clean"


def _quantity(number: int, singular: str, plural: str) -> str:
    return f"{number} {singular if number == 1 else plural}"


def _rows(number: int, kind: str = "") -> str:
    noun = f"{kind} row" if kind else "row"
    return _quantity(number, noun, f"{noun}s")


def _dates_text(dates: npt.NDArray[np.datetime64]) -> str:
    listed = [str(d) for d in dates[:LOGGED_DATES].astype("datetime64[D]")]
    extra = len(dates) - len(listed)
    return ", ".join(listed) + (f" and {extra} more" if extra > 0 else "")


def _numeric(column: pd.Series[Any]) -> npt.NDArray[np.float64]:
    """A column as float64, with anything unparseable as NaN."""
    if column.dtype.kind in "fiu":
        return np.asarray(column, dtype=np.float64)
    return np.asarray(pd.to_numeric(column, errors="coerce"), dtype=np.float64)


def _wall_clock(value: object) -> pd.Timestamp | None:
    if not isinstance(value, str):
        return None
    parsed = pd.to_datetime(value, format="ISO8601", errors="coerce")
    if not isinstance(parsed, pd.Timestamp) or pd.isna(parsed):
        return None
    return parsed.tz_localize(None) if parsed.tz is not None else parsed


def _session_dates(column: pd.Series[Any]) -> npt.NDArray[np.datetime64]:
    """Dates as tz-naive midnights (datetime64[ns]); unparseable ones are NaT. A zoned
    timestamp keeps its own wall-clock date, which is the session it belongs to."""
    parsed = pd.to_datetime(column, format="%Y-%m-%d", errors="coerce")
    if parsed.isna().any():
        # The bundle's own format parses 4x faster; anything else gets a second try.
        try:
            parsed = pd.to_datetime(column, format="ISO8601", errors="coerce")
        except ValueError:
            # Timestamps with different UTC offsets share no zone to parse them in.
            parsed = pd.Series([_wall_clock(value) for value in column], dtype="datetime64[ns]")
    index = pd.DatetimeIndex(parsed)
    if index.tz is not None:
        index = index.tz_localize(None)
    days = np.asarray(index, dtype="datetime64[ns]").astype("datetime64[D]")
    return days.astype("datetime64[ns]")


def daily_bars_frame(
    dates: npt.NDArray[np.datetime64], values: npt.NDArray[np.float64]
) -> pd.DataFrame:
    """A frame with the schema of `BundledDailyBars.load`: `dates` (datetime64[ns]
    midnights) as the index, `values` the columns `COLUMNS` in order."""
    index = pd.DatetimeIndex(dates, name="date")
    return pd.DataFrame({name: values[:, i] for i, name in enumerate(COLUMNS)}, index=index)


def empty_daily_bars() -> pd.DataFrame:
    return daily_bars_frame(np.empty(0, dtype="datetime64[ns]"), np.empty((0, len(COLUMNS))))


def clean_daily_bars(symbol: str, raw: pd.DataFrame) -> tuple[pd.DataFrame, LoadReport]:
    """Validate and repair one symbol's raw daily bars (columns `date` and `COLUMNS`, as
    read from CSV, in publication order), logging what was done.

    Rows with an unparseable date, a missing, unparseable, infinite or negative field are
    dropped as invalid; rows with a zero price are dropped as zero-price; of rows sharing
    a date the last valid one published is kept. High and low are swapped where high <
    low, then widened to take in an open or close outside them. Zero-volume rows are kept
    (their prices are real) and counted, as is a history shorter than a year.
    """
    bars, report, notes = _clean(symbol, raw)
    _log(notes)
    return bars, report


def _log(notes: list[Note]) -> None:
    for level, message in notes:
        logger.log(level, "%s", message)


def _clean(symbol: str, raw: pd.DataFrame) -> tuple[pd.DataFrame, LoadReport, list[Note]]:
    """`clean_daily_bars`, returning the lines it would log instead of logging them."""
    missing = [c for c in ("date", *COLUMNS) if c not in raw.columns]
    if missing:
        raise ValueError(f"{symbol}: missing columns {', '.join(missing)}")
    report = LoadReport()
    dropped: list[str] = []
    repaired: list[str] = []

    dates = _session_dates(raw["date"])
    values = np.column_stack([_numeric(raw[c]) for c in COLUMNS])
    prices = values[:, : len(PRICE_COLUMNS)]

    undated = np.isnat(dates)
    invalid = (
        undated
        | ~np.isfinite(values).all(axis=1)
        | (prices < 0.0).any(axis=1)
        | (values[:, -1] < 0.0)
    )
    zero_price = ~invalid & (prices == 0.0).any(axis=1)
    report.invalid_rows_dropped = int(invalid.sum())
    report.zero_price_rows_dropped = int(zero_price.sum())

    dated = pd.Index(dates[~undated])
    duplicated = dated.duplicated(keep="first")
    report.duplicates_dropped = int(duplicated.sum())
    if report.duplicates_dropped:
        duplicate_dates = np.unique(np.asarray(dated[duplicated], dtype="datetime64[ns]"))
        dropped.append(
            f"{_rows(report.duplicates_dropped, 'duplicate')} ({_dates_text(duplicate_dates)})"
        )
    if report.zero_price_rows_dropped:
        dropped.append(
            f"{_rows(report.zero_price_rows_dropped, 'zero-price')} "
            f"({_dates_text(dates[zero_price])})"
        )
    if report.invalid_rows_dropped:
        dropped.append(
            f"{_rows(report.invalid_rows_dropped, 'invalid')} (missing, unparseable or "
            f"negative fields; {int(undated.sum())} with an unparseable date)"
        )

    keep = ~(invalid | zero_price)
    dates, values = dates[keep], values[keep]
    # A later publication of a session corrects an earlier one.
    latest = ~pd.Index(dates).duplicated(keep="last")
    if not latest.all():
        dates, values = dates[latest], values[latest]
    if len(dates) > 1 and (dates[1:] < dates[:-1]).any():
        order = np.argsort(dates, kind="stable")
        dates, values = dates[order], values[order]

    # Views into `values`, so the repairs below land in the frame.
    open_, high, low, close = (values[:, COLUMNS.index(c)] for c in PRICE_COLUMNS[:4])
    swapped = high < low
    report.high_low_swapped = int(swapped.sum())
    if report.high_low_swapped:
        high[swapped], low[swapped] = low[swapped], high[swapped]
        repaired.append(
            f"swapped high and low on {_rows(report.high_low_swapped)} "
            f"({_dates_text(dates[swapped])})"
        )
    widened_high = np.maximum(high, np.maximum(open_, close))
    widened_low = np.minimum(low, np.minimum(open_, close))
    out_of_range = (widened_high != high) | (widened_low != low)
    report.out_of_range_repaired = int(out_of_range.sum())
    if report.out_of_range_repaired:
        high[:] = widened_high
        low[:] = widened_low
        repaired.append(
            f"widened high/low to take in the open/close on "
            f"{_rows(report.out_of_range_repaired)} ({_dates_text(dates[out_of_range])})"
        )

    report.zero_volume_rows = int((values[:, -1] == 0.0).sum())
    if len(dates) < SHORT_HISTORY_ROWS:
        report.short_history.append(symbol)

    logged: list[Note] = []
    if dropped or repaired:
        changes = ", ".join([f"dropped {d}" for d in dropped] + repaired)
        logged.append((logging.WARNING, f"{symbol}: {changes}"))
    notes = []
    if report.zero_volume_rows:
        notes.append(f"kept {_rows(report.zero_volume_rows, 'zero-volume')}")
    if report.short_history:
        notes.append(f"short history: {_rows(len(dates))} (< {SHORT_HISTORY_ROWS})")
    if notes:
        logged.append((logging.INFO, f"{symbol}: {', '.join(notes)}"))
    return daily_bars_frame(dates, values), report, logged


def _counters() -> list[str]:
    """The names of `LoadReport`'s counts, in order."""
    return [f.name for f in fields(LoadReport) if f.name != "short_history"]


def _cache_key(archive: zipfile.ZipFile) -> str:
    """What the cleaned bars of `archive` depend on, besides its members."""
    return bundle_cache.cache_key(archive, f"cleaning {CACHE_VERSION}",
                                  str(SHORT_HISTORY_ROWS), str(LOGGED_DATES), *COLUMNS,
                                  *_counters())


class BundledDailyBars:
    """Daily bars of the bundled universe, loaded per symbol on first use and cached.

    `load_all` also saves what it loaded to a disk cache (in `cache_dir`, by default the
    user's cache folder), and `load_all`, or `load_many` asked for many symbols, serve
    from that cache when it was built from this bundle by this cleaning: the same frames,
    report and log lines, without reading the zip's members.

    Safe to share between threads: each symbol is read and cleaned (or taken from the
    cache) once, even when several workers ask for it at the same time.
    """

    def __init__(self, path: Path = BUNDLE_PATH, cache_dir: Path | None = None) -> None:
        self.path = path
        self.report = LoadReport()
        self._cache_dir = cache_dir
        self._archive: zipfile.ZipFile | None = None
        self._members: dict[str, str] = {}
        self._key = ""
        self._frames: dict[str, pd.DataFrame] = {}
        self._details: dict[str, tuple[LoadReport, list[Note]]] = {}  # for the disk cache
        self._symbol_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()  # guards the dicts, the report, the zip and _cached
        self._archive_lock = threading.Lock()  # one member read at a time from the file
        self._cache_lock = threading.Lock()  # one disk cache read or write at a time
        self._cached: bundle_cache.CachedBars | None = None  # released once all are loaded
        self._cache_read = False  # tried to read the disk cache
        self._cache_hit = False  # ... and could
        self._cache_written = False  # tried to write it

    @property
    def cache_file(self) -> Path:
        """The disk cache of this bundle's cleaned bars (it may not exist)."""
        return bundle_cache.cache_file(self.path, self._cache_dir)

    def _open(self) -> zipfile.ZipFile:
        with self._lock:
            if self._archive is None:
                try:
                    archive = zipfile.ZipFile(self.path)
                except FileNotFoundError as error:
                    raise BundleError(f"bundled data not found: {self.path}") from error
                except (zipfile.BadZipFile, OSError) as error:
                    raise BundleError(
                        f"bundled data is not a readable zip: {self.path} ({error})"
                    ) from error
                self._members = {
                    name.removesuffix(".csv"): name
                    for name in archive.namelist()
                    if name.endswith(".csv")
                }
                self._key = _cache_key(archive)
                self._archive = archive
            return self._archive

    def close(self) -> None:
        with self._lock:
            if self._archive is not None:
                self._archive.close()
                self._archive = None

    def __enter__(self) -> BundledDailyBars:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def symbols(self) -> list[str]:
        """Every symbol in the bundle, sorted; reads only the zip's directory."""
        self._open()
        return sorted(self._members)

    def __contains__(self, symbol: object) -> bool:
        self._open()
        return symbol in self._members

    def load(self, symbol: str) -> pd.DataFrame:
        """The cleaned daily bars of one symbol. The frame is shared with other callers
        and must not be modified."""
        with self._lock:
            cached = self._frames.get(symbol)
            if cached is not None:
                return cached
        archive = self._open()
        member = self._members.get(symbol)
        if member is None:
            raise UnknownSymbolError(symbol, self.path)
        with self._lock:
            symbol_lock = self._symbol_locks.setdefault(symbol, threading.Lock())
        with symbol_lock:
            with self._lock:
                cached = self._frames.get(symbol)
            if cached is not None:
                return cached
            from_cache = self._from_cache(symbol)
            if from_cache is None:
                bars, report, notes = _clean(symbol, self._read_member(archive, member))
            else:
                bars, report, notes = from_cache
            _log(notes)
            with self._lock:
                self._frames[symbol] = bars
                self._details[symbol] = (report, notes)
                self.report.merge(report)
                if len(self._frames) == len(self._members):
                    self._cached = None  # nothing left to serve: free its arrays
            return bars

    def _read_member(self, archive: zipfile.ZipFile, member: str) -> pd.DataFrame:
        try:
            with self._archive_lock:
                content = archive.read(member)
            raw = pd.read_csv(io.BytesIO(content), dtype={"date": str})
        except (
            zipfile.BadZipFile,
            lzma.LZMAError,
            zlib.error,
            EOFError,
            OSError,
            NotImplementedError,  # zipfile: a compression method it cannot decode
            ValueError,  # the CSV parser's errors, and undecodable text
        ) as error:
            # zipfile, its decompressors and the CSV parser each raise their own types for
            # a damaged member; the caller needs only to know which member of which file.
            raise BundleError(f"cannot read {member} from {self.path}: {error}") from error
        missing = [c for c in ("date", *COLUMNS) if c not in raw.columns]
        if missing:
            raise BundleError(
                f"{member} in {self.path} lacks the columns {', '.join(missing)}"
            )
        return raw

    def load_many(self, symbols: Iterable[str]) -> dict[str, pd.DataFrame]:
        wanted = list(symbols)
        self._read_cache(wanted, CACHE_MIN_SYMBOLS)
        return {symbol: self.load(symbol) for symbol in wanted}

    def load_all(self) -> dict[str, pd.DataFrame]:
        """Every symbol in the bundle; logs the cumulative report. Saves the bars to the
        disk cache when they did not come from it."""
        symbols = self.symbols()
        self._read_cache(symbols, 1)
        frames = self.load_many(symbols)
        self._write_cache(symbols)
        logger.info("bundled daily bars, %d symbols: %s", len(frames), self.report.summary())
        return frames

    # --- the disk cache (data/bundle_cache.py) ------------------------------------------

    def _read_cache(self, wanted: list[str], minimum: int) -> None:
        """Read the disk cache, once, if it was built for this bundle and cleaning and
        at least `minimum` of the `wanted` symbols are still to load."""
        if len(wanted) < minimum:
            return
        self._open()
        with self._lock:
            if len(set(wanted).difference(self._frames)) < minimum:
                return
        with self._cache_lock:
            if self._cache_read:
                return
            self._cache_read = True
            with self._lock:
                key, members = self._key, set(self._members)
            cached = bundle_cache.read(self.cache_file, key, members, len(COLUMNS),
                                       len(_counters()))
            with self._lock:
                self._cached = cached
            self._cache_hit = cached is not None

    def _from_cache(self, symbol: str) -> tuple[pd.DataFrame, LoadReport, list[Note]] | None:
        with self._lock:
            cached = self._cached
        row = None if cached is None else cached.positions.get(symbol)
        if cached is None or row is None:
            return None
        bars = cached.frame(row, _COLUMN_INDEX)
        counts = dict(zip(_counters(), (int(n) for n in cached.counts[row]), strict=True))
        report = LoadReport(**counts, short_history=[symbol] if cached.short_history[row] else [])
        return bars, report, cached.notes(row)

    def _write_cache(self, symbols: list[str]) -> None:
        """Save every symbol's bars, report and notes, unless they came from the cache or
        were saved already."""
        with self._cache_lock:
            if self._cache_hit or self._cache_written:
                return
            self._cache_written = True
            with self._lock:
                key = self._key
                loaded = [(self._frames[s], *self._details[s]) for s in symbols]
            bundle_cache.write(
                self.cache_file,
                key,
                symbols,
                [bars for bars, _, _ in loaded],
                [[getattr(report, name) for name in _counters()] for _, report, _ in loaded],
                [symbol in report.short_history for symbol, (_, report, _)
                 in zip(symbols, loaded, strict=True)],
                [notes for _, _, notes in loaded],
            )
