"""The chart pane: candles with volume and a moving-average overlay for the selected
symbol, daily or intraday, drawn with textual-plotext.

Plotting is comparatively slow (plotext builds the whole figure), so the pane redraws at
most `MAX_REDRAWS_PER_S` times a second however fast its symbol ticks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import tzinfo

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from core.model import Bar
from tui import format as fmt

MAX_REDRAWS_PER_S = 2.0
MOVING_AVERAGE = 20


def aggregate(bars: Sequence[Bar], size: int) -> list[Bar]:
    """Merge runs of `size` consecutive bars (minute bars into n-minute candles)."""
    if size <= 1:
        return list(bars)
    merged = []
    for start in range(0, len(bars), size):
        chunk = bars[start : start + size]
        merged.append(Bar(chunk[0].symbol, chunk[0].ts_ns, chunk[0].interval_s * size,
                          chunk[0].open, max(b.high for b in chunk), min(b.low for b in chunk),
                          chunk[-1].close, sum(b.volume for b in chunk)))
    return merged


def moving_average(closes: Sequence[float], window: int) -> list[float]:
    averages = []
    total = 0.0
    for i, close in enumerate(closes):
        total += close
        if i >= window:
            total -= closes[i - window]
        averages.append(total / window if i >= window - 1 else math.nan)
    return averages


class ChartPane(Vertical):
    def __init__(self, zone: tzinfo, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.zone = zone
        self.symbol: str | None = None
        self.interval = "1d"
        self._daily: list[Bar] = []
        self._minutes: list[Bar] = []
        self._dirty = False
        self._last_draw = 0.0

    def compose(self) -> ComposeResult:
        yield Static("", id="chart-caption")
        yield PlotextPlot(id="chart-plot")
        yield Static("", id="chart-volume")

    def on_mount(self) -> None:
        self.border_title = "Chart"
        self.set_interval(1 / MAX_REDRAWS_PER_S, self._redraw_if_dirty)

    def show(self, symbol: str | None, daily: list[Bar], minutes: list[Bar]) -> None:
        self.symbol = symbol
        self._daily = daily
        self._minutes = minutes
        self._draw()

    def set_interval_mode(self, interval: str) -> None:
        self.interval = interval
        self._draw()

    def update_live(self, bar: Bar, *, completed: bool) -> None:
        """A minute bar of the charted symbol: extend the intraday series and today's
        daily candle."""
        if bar.symbol != self.symbol:
            return
        if self._minutes and self._minutes[-1].ts_ns == bar.ts_ns:
            self._minutes[-1] = bar
        elif not self._minutes or bar.ts_ns > self._minutes[-1].ts_ns:
            self._minutes.append(bar)
        self._dirty = True

    def _redraw_if_dirty(self) -> None:
        if self._dirty:
            self._draw()

    def _series(self) -> list[Bar]:
        if self.interval == "1m":
            return list(self._minutes)
        daily = list(self._daily)
        if self._minutes:
            today = self._minutes
            first = today[0]
            candle = Bar(first.symbol, first.ts_ns, 86_400, first.open,
                         max(b.high for b in today), min(b.low for b in today),
                         today[-1].close, sum(b.volume for b in today))
            if daily and fmt.clock_time(daily[-1].ts_ns, self.zone).date() == \
                    fmt.clock_time(candle.ts_ns, self.zone).date():
                daily[-1] = candle
            else:
                daily.append(candle)
        return daily

    def _draw(self) -> None:
        self._dirty = False
        self._last_draw = time.monotonic()
        plot = self.query_one(PlotextPlot)
        caption = self.query_one("#chart-caption", Static)
        plt = plot.plt
        plt.clear_figure()
        variables = self.app.theme_variables
        if self.symbol is None:
            caption.update(" no symbol selected")
            self.query_one("#chart-volume", Static).update("")
            plot.refresh()
            return
        series = self._series()
        width = max(20, plot.size.width - 12)
        if self.interval == "1m":
            size = max(1, math.ceil(len(series) / max(1, width // 2)))
            series = aggregate(series, size)
            label = f"{size}-minute" if size > 1 else "1-minute"
        else:
            series = series[-max(10, width // 2):]
            label = "daily"
        if not series:
            caption.update(f" {self.symbol} · {label} · no data yet")
            self.query_one("#chart-volume", Static).update("")
            plot.refresh()
            return
        last = series[-1]
        caption.update(
            f" {self.symbol} · {label} · O {fmt.price(last.open)} H {fmt.price(last.high)} "
            f"L {fmt.price(last.low)} C {fmt.price(last.close)} V {fmt.volume(last.volume)}"
            f" · SMA{MOVING_AVERAGE}"
        )
        closes = [b.close for b in series]
        up = _rgb(variables.get("up", "#00ff00"))
        down = _rgb(variables.get("down", "#ff0000"))
        accent = _rgb(variables.get("accent", "#ffff00"))
        plt.date_form("d/m/Y H:M:S")
        dates = [fmt.clock_time(b.ts_ns, self.zone).strftime("%d/%m/%Y %H:%M:%S")
                 for b in series]
        plt.candlestick(
            dates,
            {"Open": [b.open for b in series], "High": [b.high for b in series],
             "Low": [b.low for b in series], "Close": closes},
            colors=[up, down],
        )
        average = moving_average(closes, MOVING_AVERAGE)
        points = [(d, a) for d, a in zip(dates, average, strict=True) if not math.isnan(a)]
        if points:
            plt.plot([p[0] for p in points], [p[1] for p in points], color=accent,
                     marker="braille")
        ticks = _tick_positions(len(series), 4)
        plt.xticks([dates[i] for i in ticks], [self._tick_label(series[i]) for i in ticks])
        self.query_one("#chart-volume", Static).update(
            volume_strip(series, max(10, plot.size.width - 6), up, down))
        plot.refresh()

    def _tick_label(self, bar: Bar) -> str:
        moment = fmt.clock_time(bar.ts_ns, self.zone)
        return f"{moment:%H:%M}" if self.interval == "1m" else f"{moment:%b %d}"


VOLUME_GLYPHS = " ▁▂▃▄▅▆▇█"


def volume_strip(series: Sequence[Bar], width: int, up: tuple[int, int, int],
                 down: tuple[int, int, int], rows: int = 2) -> Text:
    """Volume under the candles: one column group per bar, two rows of block glyphs."""
    text = Text(no_wrap=True)
    if not series:
        return text
    peak = max(b.volume for b in series) or 1.0
    levels = rows * (len(VOLUME_GLYPHS) - 1)
    columns = []
    for x in range(width):
        bar = series[min(len(series) - 1, x * len(series) // width)]
        columns.append((round(bar.volume / peak * levels), bar.close >= bar.open))
    for row in range(rows - 1, -1, -1):
        if row != rows - 1:
            text.append("\n")
        text.append("vol " if row == rows - 1 else "    ", style="dim")
        for height, rising in columns:
            fill = max(0, min(len(VOLUME_GLYPHS) - 1, height - row * (len(VOLUME_GLYPHS) - 1)))
            colour = up if rising else down
            text.append(VOLUME_GLYPHS[fill], style=f"rgb({colour[0]},{colour[1]},{colour[2]})")
    return text


def _tick_positions(count: int, wanted: int) -> list[int]:
    if count <= wanted:
        return list(range(count))
    step = (count - 1) / (wanted - 1)
    return sorted({round(i * step) for i in range(wanted)})


def _rgb(colour: str) -> tuple[int, int, int]:
    from textual.color import Color

    parsed = Color.parse(colour)
    return (parsed.r, parsed.g, parsed.b)
