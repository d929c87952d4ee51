"""History from a real provider, kept in the profile's `bars` table.

A provider asks Yahoo or Alpaca only for the stretches it has never fetched:
`bar_coverage` records, per source, symbol and interval, the spans already asked for
(a gap in `bars` alone cannot tell a holiday or a quiet minute from a span never
fetched). A span is recorded as covered only up to what is settled: the latest
session's daily bar and the last minutes of intraday bars can still change, so they
are fetched again next time. Without a database (a feed used outside the engine) the
cache is a pass-through.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from core.model import NS_PER_SECOND

if TYPE_CHECKING:
    from core.store import BarRow, Store

log = logging.getLogger(__name__)

Span = tuple[int, int]  # [start_ns, end_ns)
Fetch = Callable[[int, int], Awaitable[Sequence["BarRow"]]]

# How long after a bar starts it can still change (the provider's data may also lag).
_SETTLE_NS = {"1d": 36 * 3600 * NS_PER_SECOND, "1m": 20 * 60 * NS_PER_SECOND}
_DEFAULT_SETTLE_NS = 36 * 3600 * NS_PER_SECOND


def missing_spans(wanted: Span, covered: Sequence[Span]) -> list[Span]:
    """The parts of `wanted` that no span in `covered` (sorted or not) includes."""
    start, end = wanted
    gaps: list[Span] = []
    cursor = start
    for span_start, span_end in sorted(covered):
        if span_end <= cursor:
            continue
        if span_start >= end:
            break
        if span_start > cursor:
            gaps.append((cursor, span_start))
        cursor = max(cursor, span_end)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append((cursor, end))
    return gaps


def merge_spans(spans: Sequence[Span]) -> list[Span]:
    """Overlapping or touching spans joined."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


class BarCache:
    def __init__(self, source: str, now_ns: Callable[[], int]) -> None:
        self.source = source
        self.now_ns = now_ns
        self.store: Store | None = None
        self.fetches = 0  # requests that went to the provider (tests, `doctor`)

    def use_store(self, store: Store) -> None:
        self.store = store

    async def bars(self, symbol: str, interval: str, start_ns: int, end_ns: int,
                   fetch: Fetch) -> list[BarRow]:
        """Bars with start_ns <= ts < end_ns: from the table where covered, from `fetch`
        (called once per missing span) elsewhere. A failing fetch raises; what was
        already cached stays."""
        if end_ns <= start_ns:
            return []
        store = self.store
        if store is None or store.read_only:
            self.fetches += 1
            return sorted(await fetch(start_ns, end_ns))
        covered = await self._covered(store, symbol, interval)
        for gap_start, gap_end in missing_spans((start_ns, end_ns), covered):
            self.fetches += 1
            rows = list(await fetch(gap_start, gap_end))
            if rows:
                await store.save_bars(symbol, interval, rows, self.source)
            settled = min(gap_end, self.now_ns() - _SETTLE_NS.get(interval, _DEFAULT_SETTLE_NS))
            if settled > gap_start:
                covered = merge_spans([*covered, (gap_start, settled)])
                await self._save_covered(store, symbol, interval, covered)
        return await store.load_bars(symbol, interval, start_ns, end_ns)

    async def _covered(self, store: Store, symbol: str, interval: str) -> list[Span]:
        rows = await store.fetchall(
            "SELECT start, end FROM bar_coverage WHERE source = ? AND symbol = ? "
            "AND interval = ? ORDER BY start", (self.source, symbol, interval))
        return [(int(row[0]), int(row[1])) for row in rows]

    async def _save_covered(self, store: Store, symbol: str, interval: str,
                            spans: Sequence[Span]) -> None:
        key = (self.source, symbol, interval)
        fetched = self.now_ns()
        await store.submit_many([
            ("DELETE FROM bar_coverage WHERE source = ? AND symbol = ? AND interval = ?", key),
            *(("INSERT INTO bar_coverage (source, symbol, interval, start, end, fetched) "
               "VALUES (?, ?, ?, ?, ?, ?)", (*key, start, end, fetched))
              for start, end in spans),
        ])
