"""Daily history for a backtest, from the bundled bars.

A backtest needs more than its own dates: the strategy warms its indicators on the bars
before the start (a 200-bar average is not ready on day one). So the frames run from
`WARMUP_DAYS` calendar days before the start to the end. Prices are split- and
dividend-adjusted by default: on raw prices a 4:1 split reads as a 75% crash, which
would trigger every stop and every mean-reversion entry in a backtest.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd

from data.bundle import BundledDailyBars

# About 275 sessions: enough for the longest lookbacks the built-in strategies allow at
# their defaults (and a 200-bar average) to be warm at the start.
WARMUP_DAYS = 400
BACKTEST_COLUMNS = ("open", "high", "low", "close", "volume")
ADJUSTED_PRICES = ("open", "high", "low", "close")
# Fewer sessions than this before the start leave long indicators cold at first: worth
# a note, as the early trades then differ from what a longer history would give.
SHORT_WARMUP_SESSIONS = 200
SUGGESTIONS = 3
SUGGESTION_CUTOFF = 0.6


class HistoryError(ValueError):
    """History that cannot be given as asked (an unknown symbol, dates the bundle does
    not cover); the message is one sentence for the trader."""


@dataclass(slots=True)
class History:
    bars: dict[str, pd.DataFrame]  # symbol -> open, high, low, close, volume by date
    notes: list[str] = field(default_factory=list)  # things worth saying, not errors


def edit_distance(first: str, second: str) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours (the optimal string
    alignment distance) that turn one name into the other."""
    rows = [list(range(len(second) + 1))]
    for i, a in enumerate(first, start=1):
        row = [i]
        for j, b in enumerate(second, start=1):
            cost = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (a != b))
            if i > 1 and j > 1 and a == second[j - 2] and first[i - 2] == b:
                cost = min(cost, rows[-2][j - 2] + 1)
            row.append(cost)
        rows.append(row)
    return rows[-1][-1]


def nearest_symbols(symbol: str, known: Sequence[str]) -> list[str]:
    """The known symbols a typo of `symbol` most likely meant, best first."""
    # difflib finds the candidates; edit distance orders them, as difflib's ratio ranks
    # PPL above AAPL for "APPL", while a ticker typo is mostly one wrong or swapped letter.
    candidates = difflib.get_close_matches(symbol, known, n=10, cutoff=SUGGESTION_CUTOFF)
    candidates.sort(key=lambda name: (edit_distance(symbol, name), abs(len(name) - len(symbol))))
    return candidates[:SUGGESTIONS]


def unknown_symbol_message(symbol: str, known: Sequence[str]) -> str:
    close = nearest_symbols(symbol, known)
    if not close:
        return f"no bundled bars for {symbol!r}"
    options = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
    return f"no bundled bars for {symbol!r} (did you mean {options}?)"


def adjusted_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """OHLC scaled by adj_close / close, the factor the data provider applied for
    splits and dividends; volume divided by it, so price x volume (the money traded) is
    unchanged."""
    ratio = frame["adj_close"] / frame["close"]
    adjusted = frame.loc[:, list(ADJUSTED_PRICES)].mul(ratio, axis=0)
    adjusted["volume"] = frame["volume"] / ratio
    return adjusted


def load_history(symbols: Sequence[str], start: date, end: date, *, adjusted: bool,
                 bundle: BundledDailyBars | None = None,
                 warmup_days: int = WARMUP_DAYS) -> History:
    """The bars of `symbols` from `warmup_days` before `start` to `end`.

    Raises HistoryError for unknown symbols (all of them at once, each with its nearest
    names), for a start after the end, and for dates outside what the bundle holds;
    `BundleError` when the bundle itself cannot be read.
    """
    if start > end:
        raise HistoryError(f"the start {start} is after the end {end}")
    source = bundle or BundledDailyBars()
    known = source.symbols()
    unknown = [symbol for symbol in symbols if symbol not in source]
    if unknown:
        raise HistoryError("; ".join(unknown_symbol_message(symbol, known)
                                     for symbol in unknown))
    full = {symbol: source.load(symbol) for symbol in symbols}
    spans = {symbol: (frame.index[0].date(), frame.index[-1].date())
             for symbol, frame in full.items() if not frame.empty}
    empty = [symbol for symbol in symbols if symbol not in spans]
    if empty:
        raise HistoryError(f"the bundle holds no bars for {', '.join(empty)}")
    first = min(span[0] for span in spans.values())
    last = max(span[1] for span in spans.values())
    if start < first or end > last:
        outside = start if start < first else end
        named = symbols[0] if len(symbols) == 1 else ", ".join(symbols)
        raise HistoryError(f"{outside} is outside the bundled data: bars for {named} run "
                           f"from {first} to {last}")
    notes: list[str] = []
    for symbol, (own_first, own_last) in spans.items():
        if own_first > end or own_last < start:
            raise HistoryError(f"{symbol} has no bars between {start} and {end} (its bars "
                               f"run from {own_first} to {own_last})")
        if own_first > start or own_last < end:
            notes.append(f"{symbol} has bars only from {own_first} to {own_last}")
    since = pd.Timestamp(start - timedelta(days=warmup_days))
    until = pd.Timestamp(end)
    bars: dict[str, pd.DataFrame] = {}
    short_warmup: dict[int, list[str]] = {}  # sessions before the start -> symbols
    for symbol, frame in full.items():
        window = frame.loc[(frame.index >= since) & (frame.index <= until)]
        warmup = int((window.index < pd.Timestamp(start)).sum())
        if warmup < SHORT_WARMUP_SESSIONS and spans[symbol][0] <= start:
            short_warmup.setdefault(warmup, []).append(symbol)
        chosen = adjusted_bars(window) if adjusted else window.loc[:, list(BACKTEST_COLUMNS)]
        # astype makes a new frame: the bundle's own frames are shared with its other
        # callers and must never be written to.
        bars[symbol] = chosen.astype("float64")
    for warmup, cold in short_warmup.items():
        notes.append(f"only {warmup} sessions before {start} to warm the indicators on "
                     f"({', '.join(cold)})")
    return History(bars, notes)
