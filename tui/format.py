"""Number and time formatting shared by the widgets and the CLI."""

from __future__ import annotations

import math
from datetime import datetime, tzinfo

from core.model import NS_PER_SECOND

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
DASH = "—"


def price(value: float) -> str:
    if math.isnan(value):
        return DASH
    return f"{value:,.4f}" if abs(value) < 1 else f"{value:,.2f}"


def signed(value: float) -> str:
    if math.isnan(value):
        return DASH
    return f"{value:+,.2f}"


def percent(value: float) -> str:
    """A signed percentage with an arrow, so direction never depends on colour."""
    if math.isnan(value):
        return DASH
    arrow = "▲" if value > 0 else "▼" if value < 0 else " "
    return f"{arrow}{abs(value):.2f}%" if value else f" {0:.2f}%"


VOLUME_UNITS = ((1e9, "B"), (1e6, "M"), (1e3, "K"))


def volume(value: float) -> str:
    """Three significant figures and a unit: 950, 12.3K, 1.00M. The unit is chosen after
    rounding, so 999,700 is 1.00M, not 1000K."""
    if math.isnan(value) or value <= 0:
        return DASH if math.isnan(value) else "0"
    for divisor, suffix in VOLUME_UNITS:
        if value >= divisor * 0.9995:
            scaled = value / divisor
            digits = 2 if scaled < 9.995 else 1 if scaled < 99.95 else 0
            return f"{scaled:.{digits}f}{suffix}"
    return f"{value:.0f}"


def day_range(low: float, high: float) -> str:
    """low-high in at most 16 cells for prices below 10,000: no thousands separators, and
    no cents from 10,000 up."""
    if math.isnan(low) or math.isnan(high):
        return DASH
    return f"{_compact_price(low)}-{_compact_price(high)}"


def _compact_price(value: float) -> str:
    if abs(value) < 1:
        return f"{value:.4f}"
    return f"{value:.2f}" if abs(value) < 10_000 else f"{value:.0f}"


def sparkline(values: list[float], width: int) -> str:
    """The last `width` points (each the close of a run of values) as block glyphs."""
    if width <= 0 or not values:
        return ""
    if len(values) > width:
        step = len(values) / width
        values = [values[min(len(values) - 1, int((i + 1) * step) - 1)] for i in range(width)]
    low, high = min(values), max(values)
    if high - low < 1e-12:
        return SPARK_BLOCKS[3] * len(values)
    scale = (len(SPARK_BLOCKS) - 1) / (high - low)
    return "".join(SPARK_BLOCKS[int((v - low) * scale)] for v in values)


def display_zone(name: str) -> tuple[tzinfo, str]:
    """The zone times are shown in (`ui.timezone`: "local" or an IANA name) and its
    short label for the status bar."""
    if name == "local":
        now = datetime.now().astimezone()
        assert now.tzinfo is not None  # astimezone() always sets one
        return now.tzinfo, now.strftime("%Z")
    from zoneinfo import ZoneInfo

    return ZoneInfo(name), "ET" if name == "America/New_York" else name


def clock_time(ts_ns: int, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(ts_ns / NS_PER_SECOND, tz=zone)
