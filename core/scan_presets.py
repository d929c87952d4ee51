"""The scanner's presets: scans a trader reaches for every day, written in the scan
language itself (so each one can be opened, read and changed like any typed scan).
The README's Scanner section documents each; tests check every one against a
per-symbol `ta` computation on the bundled data.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.scan_language import parse
from core.scan_syntax import Scan


@dataclass(frozen=True, slots=True)
class Preset:
    name: str  # what `tapedeck scan --preset NAME` and the picker call it
    title: str
    text: str  # the scan
    about: str  # one line on what it finds and why

    def parsed(self) -> Scan:
        return parse(self.text)


PRESETS: tuple[Preset, ...] = (
    Preset(
        "oversold-rsi", "Oversold RSI in an uptrend",
        "rsi(14) < 30 and close > sma(close, 200) sort by rsi(14) asc limit 50",
        "RSI(14) under 30 while the close holds above its 200-day average: a pullback "
        "in a long-term uptrend, the most oversold first."),
    Preset(
        "golden-cross", "Golden cross",
        "crosses_above(sma(close, 50), sma(close, 200)) and volume > avg(volume, 50) * 0.8 "
        "sort by pct_change(close, 20) desc",
        "The 50-day average crossed above the 200-day average on the last bar, on "
        "volume near or above usual; strongest 20-day momentum first."),
    Preset(
        "volume-spike", "Volume spike",
        "volume > 2 * avg(volume, 20) and close > 5 sort by volume / avg(volume, 20) desc "
        "limit 50",
        "Volume more than twice its 20-day average (close above $5): something "
        "happened; the largest multiple first."),
    Preset(
        "52-week-high", "52-week-high breakout",
        "close > highest(high, 252)[1] and volume > avg(volume, 50) "
        "sort by pct_change(close, 1) desc limit 50",
        "A close above the highest high of the previous 252 bars (a year of sessions) "
        "on above-average volume."),
    Preset(
        "gap-up", "Gap up",
        "open > high[1] and (open / close[1] - 1) * 100 >= 1 "
        "sort by (open / close[1] - 1) * 100 desc limit 50",
        "Opened above the previous bar's high and at least 1% above its close: a full "
        "gap up, the biggest first."),
    Preset(
        "gap-down", "Gap down",
        "open < low[1] and (open / close[1] - 1) * 100 <= -1 "
        "sort by (open / close[1] - 1) * 100 asc limit 50",
        "Opened below the previous bar's low and at least 1% below its close: a full "
        "gap down, the biggest first."),
    Preset(
        "bollinger-squeeze", "Bollinger squeeze",
        "bbands_width(close, 20, 2) < lowest(bbands_width(close, 20, 2), 120)[1] * 1.05 "
        "and adx(14) < 20 sort by bbands_width(close, 20, 2) asc limit 50",
        "The 20-day Bollinger bands are at (within 5% of) their narrowest in six months "
        "and ADX(14) says no trend: volatility is coiled, a breakout tends to follow."),
    Preset(
        "macd-bull-cross", "MACD bullish cross",
        "crosses_above(macd(close, 12, 26), macd_signal(close, 12, 26, 9)) and "
        "close > ema(close, 50) sort by rsi(14) asc",
        "The MACD line crossed above its signal line while the close is above its "
        "50-day EMA: momentum turning up within an uptrend."),
)

BY_NAME: dict[str, Preset] = {preset.name: preset for preset in PRESETS}


def find_preset(name: str) -> Preset:
    """The preset called `name` (case and spaces forgiven); KeyError with the known
    names otherwise."""
    wanted = name.strip().lower().replace(" ", "-").replace("_", "-")
    preset = BY_NAME.get(wanted)
    if preset is None:
        raise KeyError(f"no preset called {name!r}: the presets are "
                       f"{', '.join(BY_NAME)}")
    return preset
