"""A backtest's equity curve, drawn with textual-plotext.

As the workstation's chart (tui/widgets/chart.py), the figure is built in a thread and
kept as strips: plotext composes the whole figure in Python, which on the event loop
would stall the screen on every repaint. x is the session's position with dates as tick
labels (plotext would parse every date string, and space them by calendar days).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from textual.color import Color
from textual.strip import Strip

from tui.ansi import ansi_to_strips
from tui.widgets.offloop_plot import OffLoopPlot

TICK_SPACING = 16  # columns per date label on the x axis
Y_TICKS = 5


@dataclass(frozen=True, slots=True)
class EquityFigure:
    """One frame as plain data: taken on the event loop, drawn in a thread."""

    width: int
    height: int
    theme: str  # the plotext theme name
    equity: tuple[float, ...]
    start: float  # the starting equity, drawn as a reference line
    x_ticks: tuple[int, ...]
    x_labels: tuple[str, ...]
    y_ticks: tuple[float, ...]
    y_labels: tuple[str, ...]
    line: tuple[int, int, int]
    reference: tuple[int, int, int]


def rgb(colour: str) -> tuple[int, int, int]:
    parsed = Color.parse(colour)
    return (parsed.r, parsed.g, parsed.b)


def money_tick(value: float, span: float) -> str:
    """An axis label: $104.5k, $1.25M, $950 (enough digits to tell the ticks apart)."""
    magnitude = max(abs(value), 1.0)
    if magnitude >= 1e6:
        digits = 2 if span < 1e6 else 1
        return f"${value / 1e6:,.{digits}f}M"
    if magnitude >= 1e4:
        digits = 1 if span < 2e4 else 0
        return f"${value / 1e3:,.{digits}f}k"
    return f"${value:,.0f}"


def x_ticks(days: Sequence[date], width: int) -> tuple[list[int], list[str]]:
    """Evenly spaced positions, labelled with their session's month, or day for a short
    run."""
    count = len(days)
    if count == 0:
        return [], []
    wanted = max(2, min(8, (width - 10) // TICK_SPACING))
    if count <= wanted:
        positions = list(range(count))
    else:
        step = (count - 1) / (wanted - 1)
        positions = sorted({round(i * step) for i in range(wanted)})
    span_days = (days[-1] - days[0]).days
    pattern = "%Y-%m-%d" if span_days < 120 else "%b %Y"
    return positions, [days[i].strftime(pattern) for i in positions]


def y_ticks(values: Sequence[float], start: float) -> tuple[list[float], list[str]]:
    low = min(min(values), start)
    high = max(max(values), start)
    if high - low < 1e-9:
        return [low], [money_tick(low, 0.0)]
    step = (high - low) / (Y_TICKS - 1)
    ticks = [low + i * step for i in range(Y_TICKS)]
    return ticks, [money_tick(tick, high - low) for tick in ticks]


class EquityPlot(OffLoopPlot[EquityFigure]):
    """The curve of one run; `show` replaces it. One build runs at a time; a request
    made meanwhile is coalesced into one more build when it ends."""

    BUILD_GROUP = "equity-build"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._days: list[date] = []
        self._equity: list[float] = []
        self._start = 0.0

    def on_mount(self) -> None:
        super().on_mount()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.call_after_refresh(
            self._redraw))

    def on_resize(self) -> None:
        self._redraw()

    def show(self, days: Sequence[date], equity: Sequence[float], start: float) -> None:
        self._days = list(days)
        self._equity = list(equity)
        self._start = start
        self._redraw()

    def _figure(self) -> EquityFigure | None:
        width, height = self.size.width, self.size.height
        if len(self._equity) < 2 or width < 20 or height < 5:
            return None
        positions, labels = x_ticks(self._days, width)
        values, names = y_ticks(self._equity, self._start)
        variables = self.app.theme_variables
        return EquityFigure(width, height, self.theme_name(), tuple(self._equity), self._start,
                            tuple(positions), tuple(labels), tuple(values), tuple(names),
                            rgb(variables.get("accent", "#ffff00")),
                            rgb(variables.get("secondary", "#808080")))

    def _redraw(self) -> None:
        if not self.is_mounted:
            return
        figure = self._figure()
        if figure is None or figure != self._drawn:
            self.draw(figure)

    def _build(self, figure: EquityFigure) -> list[Strip]:
        """Runs in a thread; touches only this widget's own plotext figure."""
        plt = self.plt
        plt.clear_figure()
        plt.plotsize(figure.width, figure.height)
        plt._set_size(figure.width, figure.height)  # see PlotextPlot.render
        plt.theme(figure.theme)
        positions = [float(x) for x in range(len(figure.equity))]
        plt.hline(figure.start, color=figure.reference)
        plt.plot(positions, list(figure.equity), color=figure.line, marker="braille")
        plt.xticks([float(x) for x in figure.x_ticks], list(figure.x_labels))
        plt.yticks(list(figure.y_ticks), list(figure.y_labels))
        return ansi_to_strips(plt.build().removesuffix("\n"))
