"""The chart pane: candles with volume and a moving-average overlay for the selected
symbol, daily or intraday, drawn with textual-plotext.

Plotting is comparatively slow (plotext builds the whole figure in Python), so the pane
redraws at most `MAX_REDRAWS_PER_S` times a second however fast its symbol ticks, and the
figure is built in a thread, off the event loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.strip import Strip
from textual.widgets import Static

from core.model import Bar
from tui import format as fmt
from tui.ansi import ansi_to_strips
from tui.widgets.offloop_plot import OffLoopPlot

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


@dataclass(frozen=True, slots=True)
class Figure:
    """One frame of the chart as plain data: taken on the event loop, drawn in a thread.
    x is the bar's position; `tick_positions` and `tick_labels` name some of them."""

    width: int
    height: int
    theme: str  # the plotext theme name
    opens: list[float]
    highs: list[float]
    lows: list[float]
    closes: list[float]
    average: list[tuple[int, float]]  # (position, value) where the average is defined
    tick_positions: list[int]
    tick_labels: list[str]
    up: tuple[int, int, int]
    down: tuple[int, int, int]
    accent: tuple[int, int, int]


class ChartPlot(OffLoopPlot[Figure]):
    """The candles, built off the event loop (tui/widgets/offloop_plot.py)."""

    BUILD_GROUP = "chart-build"

    def _build(self, figure: Figure) -> list[Strip]:
        """Runs in a thread; touches only this widget's own plotext figure."""
        plt = self.plt
        plt.clear_figure()
        plt.plotsize(figure.width, figure.height)
        plt._set_size(figure.width, figure.height)  # see PlotextPlot.render
        plt.theme(figure.theme)
        # Positions, not dates, on the x axis: plotext parses every date string, which
        # costs a quarter of the build, and it would space candles by calendar time
        # (gaps for nights and weekends) where a trader wants one slot per bar.
        positions: list[Any] = list(range(len(figure.closes)))  # typed as dates upstream
        plt.candlestick(
            positions,
            {"Open": figure.opens, "High": figure.highs, "Low": figure.lows,
             "Close": figure.closes},
            colors=[figure.up, figure.down],
        )
        if figure.average:
            plt.plot([float(x) for x, _ in figure.average], [a for _, a in figure.average],
                     color=figure.accent, marker="braille")
        plt.xticks([float(x) for x in figure.tick_positions], figure.tick_labels)
        return ansi_to_strips(plt.build().removesuffix("\n"))  # one strip per row


class ChartPane(Vertical):
    def __init__(self, zone: tzinfo, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.zone = zone
        self.symbol: str | None = None
        self.interval = "1d"
        self._daily: list[Bar] = []
        self._minutes: list[Bar] = []
        self._dirty = False
        self._drawn_size = (0, 0)

    def compose(self) -> ComposeResult:
        yield Static("", id="chart-caption")
        yield ChartPlot(id="chart-plot")
        yield Static("", id="chart-volume")

    def on_mount(self) -> None:
        self.border_title = "Chart"
        self.set_interval(1 / MAX_REDRAWS_PER_S, self._redraw_if_dirty)

    @property
    def pending(self) -> bool:
        """A redraw is under way or waiting for the next tick."""
        return self._dirty or self.query_one(ChartPlot).pending

    def show(self, symbol: str | None, daily: list[Bar], minutes: list[Bar]) -> None:
        self.symbol = symbol
        self._daily = daily
        self._minutes = minutes
        self.redraw()

    def set_interval_mode(self, interval: str) -> None:
        self.interval = interval
        self.redraw()

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

    def on_resize(self) -> None:
        plot = self.query_one(ChartPlot)
        if (plot.size.width, plot.size.height) != self._drawn_size:
            self.redraw()

    def _redraw_if_dirty(self) -> None:
        if self._dirty:
            self.redraw()

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

    def redraw(self) -> None:
        """Caption and volume now; the candles as soon as the plot thread has them."""
        self._dirty = False
        plot = self.query_one(ChartPlot)
        self._drawn_size = (plot.size.width, plot.size.height)
        caption = self.query_one("#chart-caption", Static)
        volume = self.query_one("#chart-volume", Static)
        # Fixed heights in the stylesheet, so no relayout (which would repaint everything).
        if self.symbol is None:
            caption.update(" no symbol selected", layout=False)
            volume.update("", layout=False)
            plot.draw(None)
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
            caption.update(f" {self.symbol} · {label} · no data yet", layout=False)
            volume.update("", layout=False)
            plot.draw(None)
            return
        last = series[-1]
        caption.update(
            f" {self.symbol} · {label} · O {fmt.price(last.open)} H {fmt.price(last.high)} "
            f"L {fmt.price(last.low)} C {fmt.price(last.close)} V {fmt.volume(last.volume)}"
            f" · SMA{MOVING_AVERAGE}",
            layout=False,
        )
        variables = self.app.theme_variables
        up = _rgb(variables.get("up", "#00ff00"))
        down = _rgb(variables.get("down", "#ff0000"))
        accent = _rgb(variables.get("accent", "#ffff00"))
        closes = [b.close for b in series]
        average = [(x, a) for x, a in enumerate(moving_average(closes, MOVING_AVERAGE))
                   if not math.isnan(a)]
        ticks = _tick_positions(len(series), 4)
        volume.update(volume_strip(series, max(10, plot.size.width - 6), up, down),
                      layout=False)
        plot.draw(Figure(
            width=plot.size.width, height=plot.size.height, theme=plot.theme_name(),
            opens=[b.open for b in series], highs=[b.high for b in series],
            lows=[b.low for b in series], closes=closes, average=average,
            tick_positions=ticks, tick_labels=[self._tick_label(series[i]) for i in ticks],
            up=up, down=down, accent=accent,
        ))

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
