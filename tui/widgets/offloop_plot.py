"""A PlotextPlot that builds its figure in a worker thread and draws it line by line.

plotext composes the whole figure in pure Python (20-40 ms for a large pane), and
decoding its ANSI output with rich takes as long again. PlotextPlot does both in
`render()`, on the event loop, on every repaint. Here both happen off the loop, the
result is kept as strips, and `render_line` only hands them out. One build runs at a
time; requests made meanwhile are coalesced into one more build of the latest figure
when it ends. Used by the workstation's chart and the backtest's equity curve.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from typing import Generic, TypeVar

from plotext._dict import themes as plotext_themes
from textual.strip import Strip
from textual_plotext import PlotextPlot

FigureT = TypeVar("FigureT")


class OffLoopPlot(PlotextPlot, Generic[FigureT]):
    BUILD_GROUP = "plot-build"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._wanted: FigureT | None = None  # the latest figure asked for
        self._drawn: FigureT | None = None  # the figure on screen
        self._strips: list[Strip] = []
        self._building = False
        self._again = False
        self.builds = 0

    @property
    def pending(self) -> bool:
        """A figure has been asked for and is not on screen yet."""
        return self._building or self._again

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        style = self.rich_style
        if y >= len(self._strips):
            return Strip.blank(width, style)
        return self._strips[y].adjust_cell_length(width, style)

    def theme_name(self) -> str:
        """The plotext theme for the app's current theme, registered with plotext first
        (PlotextPlot registers it on its own theme signal, which may come after ours)."""
        name = self._get_plotext_theme_name(self.app.theme)
        if name not in plotext_themes:
            self._register_theme(self.app.theme)
        return name

    def draw(self, figure: FigureT | None) -> None:
        """Show `figure` (None: nothing) once it is built."""
        self._wanted = figure
        if figure is None:
            self._drawn = None
            self._strips = []
            self.refresh()
            return
        if self._building:
            self._again = True
            return
        self._building = True
        self.run_worker(self._build_loop(), group=self.BUILD_GROUP, exit_on_error=False)

    async def _build_loop(self) -> None:
        try:
            while True:
                self._again = False
                figure = self._wanted
                if figure is None:
                    return
                strips = await asyncio.to_thread(self._build, figure)
                if self._wanted is None:
                    return  # cleared meanwhile
                self._strips = strips
                self._drawn = figure
                self.builds += 1
                self.refresh()
                if not self._again:
                    return
        finally:
            self._building = False
            self._again = False

    @abstractmethod
    def _build(self, figure: FigureT) -> list[Strip]:
        """Runs in a thread; touches only this widget's own plotext figure."""
