"""The fast ANSI decoder for chart figures must read exactly as rich's decoder does."""

from __future__ import annotations

from rich.color import Color
from rich.console import Console
from rich.text import Text
from textual.app import App, ComposeResult
from textual.strip import Strip

from tui.ansi import ansi_to_strips
from tui.widgets.chart import ChartPlot, Figure

Cell = tuple[str, object, object, bool, bool, bool]


def colour(value: Color | None) -> object:
    return None if value is None else (value.type, value.number, value.triplet)


def cells(strips: list[Strip]) -> list[list[Cell]]:
    """Every character with the colours and attributes it is drawn with."""
    lines = []
    for strip in strips:
        line: list[Cell] = []
        for segment in strip:
            style = segment.style
            for char in segment.text:
                line.append((
                    char,
                    colour(style.color if style else None),
                    colour(style.bgcolor if style else None),
                    bool(style and style.bold),
                    bool(style and style.italic),
                    bool(style and style.underline),
                ))
        lines.append(line)
    return lines


def rich_reference(text: str) -> list[list[Cell]]:
    console = Console(width=10_000, color_system="truecolor", force_terminal=True)
    lines = Text.from_ansi(text).split("\n", allow_blank=True)
    return cells([Strip(list(line.render(console, end=""))) for line in lines])


class ChartApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ChartPlot(id="plot")


async def chart_figure() -> str:
    """The ANSI text of a real chart figure, drawn by the chart widget under its theme."""
    app = ChartApp()
    async with app.run_test(size=(100, 30)) as pilot:
        plot = app.query_one(ChartPlot)
        opens = [100.0 + (i % 7) for i in range(30)]
        closes = [o + (1 if i % 3 else -2) for i, o in enumerate(opens)]
        plot.draw(Figure(
            width=80, height=20, theme=plot.theme_name(), opens=opens,
            highs=[max(o, c) + 1 for o, c in zip(opens, closes, strict=True)],
            lows=[min(o, c) - 1 for o, c in zip(opens, closes, strict=True)],
            closes=closes, average=[(i, c) for i, c in enumerate(closes) if i >= 5],
            tick_positions=[0, 10, 20, 29], tick_labels=["a", "b", "c", "d"],
            up=(0, 200, 0), down=(200, 0, 0), accent=(255, 200, 0),
        ))
        while plot.pending:
            await pilot.pause(0.01)
        assert plot.builds == 1
        return str(plot.plt.build())


async def test_a_chart_figure_decodes_as_rich_decodes_it() -> None:
    figure = await chart_figure()
    assert "\x1b[38;2;" in figure
    assert "\x1b[48;2;" in figure
    strips = ansi_to_strips(figure)
    assert cells(strips) == rich_reference(figure)
    assert [strip.cell_length for strip in strips] == [
        len(line) for line in Text.from_ansi(figure).plain.split("\n")]


def test_every_handled_code() -> None:
    text = ("\x1b[1;3;4;31;42mA\x1b[22;23;24mB\x1b[39;49mC\x1b[38;5;200;48;5;17mD"
            "\x1b[0m\x1b[93;104mE\x1b[mF\nplain\x1b[1m")
    assert cells(ansi_to_strips(text)) == rich_reference(text)


def test_other_escapes_go_to_richs_decoder() -> None:
    # Reverse video (SGR 7) is not one of the fast path's codes; a cursor move is not SGR.
    for text in ("a\x1b[7mreversed\x1b[0m", "x\x1b[2Ky"):
        assert cells(ansi_to_strips(text)) == rich_reference(text)
