"""Number formatting on the board: widths that fit, units chosen after rounding."""

from __future__ import annotations

import math

import pytest

from tui import format as fmt


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (950, "950"), (999.4, "999"), (999.6, "1.00K"), (12_345, "12.3K"),
    (999_400, "999K"), (999_700, "1.00M"), (2_580_000, "2.58M"), (99_960_000, "100M"),
    (1.2e9, "1.20B"), (math.nan, fmt.DASH),
])
def test_volume(value: float, text: str) -> None:
    assert fmt.volume(value) == text


@pytest.mark.parametrize(("low", "high", "text"), [
    (95.94, 96.82, "95.94-96.82"),
    (1460.93, 1469.4, "1460.93-1469.40"),
    (0.5123, 0.61, "0.5123-0.6100"),
    (301_234.5, 305_000.0, "301234-305000"),
    (math.nan, 1.0, fmt.DASH),
])
def test_day_range_fits_its_column(low: float, high: float, text: str) -> None:
    assert fmt.day_range(low, high) == text
    assert len(text) <= 16


def test_percent_carries_its_direction_in_text() -> None:
    assert fmt.percent(1.234) == "▲1.23%"
    assert fmt.percent(-0.5) == "▼0.50%"
    assert fmt.percent(0.0) == " 0.00%"
