"""Terminal text with SGR colour codes, as Textual strips, fast.

plotext hands back its figure as one ANSI string: thousands of cells, each wrapped in
truecolor escapes. `rich.text.Text.from_ansi` decodes that in about as long as plotext
took to draw it (~30 ms for a large pane), and Textual then converts the Text to strips
again on every repaint. The figure only ever uses a handful of codes (reset, bold, italic,
underline, 24-bit and 256-colour foreground and background), so this decoder handles
exactly those, caches one Style per distinct code state, and merges runs of equal style.
Anything else is handed to rich's full decoder, so an unexpected code costs speed, never
correctness.
"""

from __future__ import annotations

import re
from typing import cast

from rich.color import Color
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_OTHER_ESCAPE = re.compile(r"\x1b(?!\[[0-9;]*m)")

# (foreground, background, bold, italic, underline)
_State = tuple[Color | None, Color | None, bool, bool, bool]
_PLAIN: _State = (None, None, False, False, False)


class UnsupportedCode(ValueError):
    """An escape this decoder does not know: use rich's."""


FG, BG, BOLD, ITALIC, UNDERLINE = range(5)  # positions in a _State
# Codes that set one field of the state to a fixed value.
_FIXED: dict[int, tuple[int, object]] = {
    1: (BOLD, True), 3: (ITALIC, True), 4: (UNDERLINE, True),
    22: (BOLD, False), 23: (ITALIC, False), 24: (UNDERLINE, False),
    39: (FG, Color.default()), 49: (BG, Color.default()),
}


def _apply(state: _State, params: str) -> _State:
    fields: list[object] = list(state)
    codes = [int(c) if c else 0 for c in params.split(";")] if params else [0]
    i = 0
    while i < len(codes):
        code = codes[i]
        if code == 0:
            fields = list(_PLAIN)
        elif code in _FIXED:
            index, value = _FIXED[code]
            fields[index] = value
        elif code in (38, 48) and i + 1 < len(codes):
            if codes[i + 1] == 2 and i + 4 < len(codes):
                colour = Color.from_rgb(codes[i + 2], codes[i + 3], codes[i + 4])
                i += 4
            elif codes[i + 1] == 5 and i + 2 < len(codes):
                colour = Color.from_ansi(codes[i + 2])
                i += 2
            else:
                raise UnsupportedCode(params)
            fields[FG if code == 38 else BG] = colour
        elif 30 <= code <= 37 or 90 <= code <= 97:
            fields[FG] = Color.from_ansi(code - 30 if code < 90 else code - 82)
        elif 40 <= code <= 47 or 100 <= code <= 107:
            fields[BG] = Color.from_ansi(code - 40 if code < 100 else code - 92)
        else:
            raise UnsupportedCode(params)
        i += 1
    return cast(_State, tuple(fields))


def _style(state: _State) -> Style:
    fg, bg, bold, italic, underline = state
    return Style(
        color=fg,
        bgcolor=bg,
        bold=bold or None,
        italic=italic or None,
        underline=underline or None,
    )


def ansi_to_strips(text: str) -> list[Strip]:
    """One strip per line of `text`. Lines are assumed to hold single-cell characters
    (as plotext's do); rich's decoder is used when the text has any other escape."""
    if _OTHER_ESCAPE.search(text):
        return _rich_strips(text)
    transitions: dict[tuple[_State, str], _State] = {}
    styles: dict[_State, Style] = {}
    state = _PLAIN
    strips = []
    try:
        for line in text.split("\n"):
            segments: list[Segment] = []
            run: list[str] = []  # text drawn in run_state, not yet a segment
            run_state = state
            length = 0
            # With its capturing group, split alternates text, SGR parameters, text, ...
            for index, piece in enumerate(_SGR.split(line)):
                if index % 2:
                    key = (state, piece)
                    following = transitions.get(key)
                    if following is None:
                        following = transitions[key] = _apply(state, piece)
                    state = following
                elif piece:
                    if state != run_state and run:
                        segments.append(Segment("".join(run), _cached(styles, run_state)))
                        run = []
                    run_state = state
                    run.append(piece)
                    length += len(piece)
            if run:
                segments.append(Segment("".join(run), _cached(styles, run_state)))
            strips.append(Strip(segments, length))
    except UnsupportedCode:
        return _rich_strips(text)
    return strips


def _cached(styles: dict[_State, Style], state: _State) -> Style:
    style = styles.get(state)
    if style is None:
        style = styles[state] = _style(state)
    return style


def _rich_strips(text: str) -> list[Strip]:
    console = Console(width=10_000, color_system="truecolor", force_terminal=True,
                      legacy_windows=False)
    lines = Text.from_ansi(text).split("\n", allow_blank=True)
    return [Strip(list(line.render(console, end=""))) for line in lines]
