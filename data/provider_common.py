"""What the real providers (yahoo, alpaca) share: cleaning a provider's bars as every
loader cleans them, the history frame, and the book of symbols a feed has seen and
checked (search, "did you mean" and validate without asking twice)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.model import Instrument, is_well_formed_symbol
from data.bundle import LoadReport
from data.history import nearest_symbols

if TYPE_CHECKING:
    from core.store import BarRow


def clean_bar_rows(stamps: npt.NDArray[np.int64], values: npt.NDArray[np.float64], *,
                   daily: bool, report: LoadReport) -> list[BarRow]:
    """Bars (`stamps`: bar starts in epoch ns; `values`: open, high, low, close, volume
    per row) as rows, oldest first, cleaned as every loader cleans (see
    `data.bundle.clean_daily_bars`): rows with a missing, infinite or negative field are
    dropped as invalid, rows with a zero price as zero-price; of rows with one time the
    last is kept; high and low are swapped where high < low, then widened to take in an
    open or close outside them. `report` counts what was done."""
    valid = np.isfinite(values).all(axis=1) & (values >= 0).all(axis=1)
    report.invalid_rows_dropped += int((~valid).sum())
    zero = valid & (values[:, :4] == 0).any(axis=1)
    report.zero_price_rows_dropped += int(zero.sum())
    keep = valid & ~zero
    stamps, values = stamps[keep], values[keep]
    order = np.argsort(stamps, kind="stable")
    stamps, values = stamps[order], values[order]
    last_of_its_time = np.r_[stamps[1:] != stamps[:-1], True] if len(stamps) else keep[:0]
    report.duplicates_dropped += int((~last_of_its_time).sum())
    stamps, values = stamps[last_of_its_time], values[last_of_its_time]
    opens, highs, lows, closes = (values[:, i] for i in range(4))
    swapped = highs < lows
    report.high_low_swapped += int(swapped.sum())
    highs, lows = np.where(swapped, lows, highs), np.where(swapped, highs, lows)
    top = np.maximum(highs, np.maximum(opens, closes))
    bottom = np.minimum(lows, np.minimum(opens, closes))
    report.out_of_range_repaired += int(((top != highs) | (bottom != lows)).sum())
    if daily:
        report.zero_volume_rows += int((values[:, 4] == 0).sum())
    return [(int(ts), float(o), float(h), float(lo), float(c), float(v))
            for ts, o, h, lo, c, v in zip(stamps, opens, top, bottom, closes, values[:, 4],
                                          strict=True)]


def numeric_columns(frame: pd.DataFrame, names: Sequence[str]) -> npt.NDArray[np.float64]:
    """The named columns as one float array (text or missing values become NaN)."""
    return np.column_stack([
        np.asarray(pd.to_numeric(frame[name], errors="coerce"), dtype=np.float64)
        for name in names])


def bars_frame(rows: Mapping[str, Sequence[BarRow]]) -> pd.DataFrame:
    """The history frame: symbol, ts (UTC), open, high, low, close, volume, ordered by
    symbol then time."""
    ordered = [(symbol, row) for symbol in sorted(rows) for row in sorted(rows[symbol])]
    stamps = np.array([row[0] for _, row in ordered], dtype=np.int64)
    return pd.DataFrame({
        "symbol": [symbol for symbol, _ in ordered],
        "ts": pd.to_datetime(stamps, unit="ns", utc=True),
        **{name: np.array([row[i] for _, row in ordered], dtype=np.float64)
           for i, name in enumerate(("open", "high", "low", "close", "volume"), start=1)},
    })


class SymbolBook:
    """The symbols a feed knows without I/O (the bundle's, those seen since) and what
    checking them found: an Instrument, or None for a symbol the provider does not
    serve. Checks are made once per run."""

    def __init__(self, source: str, known: Iterable[str] = ()) -> None:
        self.source = source
        self.known = set(known)
        self.instruments: dict[str, Instrument | None] = {}

    def found(self) -> dict[str, Instrument]:
        return {s: i for s, i in self.instruments.items() if i is not None}

    def is_unknown(self, symbol: str) -> bool:
        """Checked, and the provider does not serve it."""
        return symbol in self.instruments and self.instruments[symbol] is None

    def search(self, text: str, limit: int, streamed: Iterable[str] = ()) -> list[Instrument]:
        text = text.strip().upper()
        found = self.found()
        names = sorted(self.known | set(found) | set(streamed))
        starts = [s for s in names if s.startswith(text)]
        contains = [s for s in names if text in s and not s.startswith(text)]
        named = [s for s, i in sorted(found.items())
                 if text and text in i.name.upper() and s not in starts and s not in contains]
        return [found.get(s) or Instrument(s, source=self.source)
                for s in (starts + contains + named)[:limit]]

    def suggest(self, symbol: str) -> list[str]:
        return nearest_symbols(symbol, sorted((self.known | set(self.found())) - {symbol}))

    async def validate(self, symbols: Sequence[str],
                       check: Callable[[str], Awaitable[Instrument | None]]
                       ) -> dict[str, Instrument | None]:
        """Each symbol's instrument: malformed ones are None, checked ones as found
        before, the rest by `check` (concurrently; it records what it finds)."""
        result: dict[str, Instrument | None] = {}
        todo: list[str] = []
        for symbol in dict.fromkeys(symbols):
            if not is_well_formed_symbol(symbol):
                result[symbol] = None
            elif symbol in self.instruments:
                result[symbol] = self.instruments[symbol]
            else:
                todo.append(symbol)
        checked = await asyncio.gather(*(check(symbol) for symbol in todo))
        result.update(zip(todo, checked, strict=True))
        return result
