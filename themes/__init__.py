"""tapedeck's themes: Textual `Theme` objects carrying the semantic colours the
stylesheets use ($up, $down, $bid, $ask, $warn, $stale, $halted).

Colour never carries meaning alone: the board always shows signs and arrows too, and the
`tapedeck-contrast` theme uses blue/orange (distinguishable with the common forms of
colour blindness) at high contrast.
"""

from __future__ import annotations

from pathlib import Path

from textual.theme import Theme

STYLESHEET = Path(__file__).parent / "tapedeck.tcss"

SEMANTIC_VARIABLES = ("up", "down", "bid", "ask", "warn", "stale", "halted", "flash-up",
                      "flash-down")

DARK = Theme(
    name="tapedeck-dark",
    primary="#4FA3E0",
    secondary="#7A8CA5",
    accent="#E0B04F",
    warning="#E8A33D",
    error="#E5534B",
    success="#3FB950",
    foreground="#D6DEE8",
    background="#0D1117",
    surface="#131A23",
    panel="#1A2330",
    dark=True,
    variables={
        "up": "#3FB950",
        "down": "#F25C54",
        "bid": "#58A6FF",
        "ask": "#F0883E",
        "warn": "#E8A33D",
        "stale": "#6E7681",
        "halted": "#FF4D6D",
        "flash-up": "#1F5F32",
        "flash-down": "#6B2226",
        "footer-key-foreground": "#E0B04F",
    },
)

LIGHT = Theme(
    name="tapedeck-light",
    primary="#0B62A8",
    secondary="#5A6B80",
    accent="#9A6700",
    warning="#9A6700",
    error="#C62828",
    success="#1A7F37",
    foreground="#1F2328",
    background="#FAFBFC",
    surface="#F0F3F6",
    panel="#E4E8ED",
    dark=False,
    variables={
        "up": "#1A7F37",
        "down": "#C62828",
        "bid": "#0B62A8",
        "ask": "#A3470C",
        "warn": "#9A6700",
        "stale": "#8C959F",
        "halted": "#B3124B",
        "flash-up": "#B7E4C2",
        "flash-down": "#F6C4C4",
        "footer-key-foreground": "#0B62A8",
    },
)

# Blue for up, orange for down: the pair that stays apart under deuteranopia,
# protanopia and tritanopia, on a black background for maximum contrast.
CONTRAST = Theme(
    name="tapedeck-contrast",
    primary="#FFFFFF",
    secondary="#C0C0C0",
    accent="#FFD700",
    warning="#FFD700",
    error="#FF8C00",
    success="#1E90FF",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#1C1C1C",
    dark=True,
    variables={
        "up": "#3DA5FF",
        "down": "#FF9F1C",
        "bid": "#3DA5FF",
        "ask": "#FF9F1C",
        "warn": "#FFD700",
        "stale": "#A0A0A0",
        "halted": "#FF00FF",
        "flash-up": "#003C78",
        "flash-down": "#6E3C00",
        "footer-key-foreground": "#FFD700",
    },
)

THEMES: dict[str, Theme] = {theme.name: theme for theme in (DARK, LIGHT, CONTRAST)}
DEFAULT_THEME = DARK.name
