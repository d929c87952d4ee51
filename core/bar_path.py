"""A daily bar played as a session: the events the backtester and the bar replay feed
both produce, so a strategy meets the same market in either.

A bar becomes four prints, each a trade and a quote (bid = ask = the price, a quarter
of the day's volume each): the open at the opening bell; then the low and the high
(low first on a day that closed up, high first on a day that closed down, the order
bar backtesters assume); then the close a second before the closing bell. The bar
itself completes at the bell. Orders a strategy sends on the bar therefore rest until
the next session's open print, where a market order fills at the open (plus the paper
venue's slippage); stops and limits meet the prints in between.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.model import NS_PER_SECOND, Bar, Quote, Trade

POINTS = 4


def point_prices(bar: Bar) -> tuple[float, float, float, float]:
    return path_prices(bar.open, bar.high, bar.low, bar.close)


def path_prices(o: float, h: float, lo: float, c: float) -> tuple[float, float, float, float]:
    """The four prints' prices of a bar given by its prices (no Bar to build)."""
    if c >= o:
        return o, lo, h, c
    return o, h, lo, c


def point_times(open_ns: int, close_ns: int) -> tuple[int, int, int, int]:
    span = close_ns - open_ns
    return (open_ns, open_ns + span // 3, open_ns + 2 * span // 3, close_ns - NS_PER_SECOND)


def point_events(symbol: str, ts_ns: int, price: float, size: float) -> tuple[Trade, Quote]:
    return (Trade(symbol, ts_ns, price, size), Quote(symbol, ts_ns, price, price, size, size))


def session_steps(bars: Sequence[Bar], open_ns: int, close_ns: int
                  ) -> list[tuple[int, list[Trade | Quote | Bar]]]:
    """One session of several symbols' daily bars as time-ordered steps: each point's
    events for every symbol, then the bars at the closing bell."""
    times = point_times(open_ns, close_ns)
    steps: list[tuple[int, list[Trade | Quote | Bar]]] = []
    prices = [point_prices(bar) for bar in bars]
    for point, ts in enumerate(times):
        events: list[Trade | Quote | Bar] = []
        for bar, path in zip(bars, prices, strict=True):
            events.extend(point_events(bar.symbol, ts, path[point], bar.volume / POINTS))
        steps.append((ts, events))
    steps.append((close_ns, list(bars)))
    return steps
