"""Every preset scan over the whole bundled universe, on several dates, equals the
same scan computed symbol by symbol with `ta` (`core.scan_reference`): the same hits in
the same order, the same 'since' dates, values and ranks, the same skipped symbols.
And the presets are found by a forgiving name, and parse and render round trip."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest

from core.scan_language import parse
from core.scan_presets import PRESETS, Preset, find_preset
from core.scan_reference import ReferenceCache, ReferenceResult, reference_scan
from core.scan_universe import UniverseBars
from core.scanner import ScanResult, run_scan
from data.bundle import BundledDailyBars

# Chosen so that every preset has a hit on at least one of them (checked below).
DATES = [date(2016, 6, 1), date(2017, 9, 1), date(2018, 2, 6), date(2019, 6, 3)]


class Runs:
    """The scanner's and the reference's results, each (preset, date) computed once;
    the reference keeps each symbol's node values per date across the presets."""

    def __init__(self, frames: dict[str, pd.DataFrame]) -> None:
        self.frames = frames
        self.universes: dict[date, UniverseBars] = {}
        self.caches: dict[date, ReferenceCache] = {}
        self.results: dict[tuple[str, date], tuple[ScanResult, ReferenceResult]] = {}

    def get(self, preset: Preset, day: date) -> tuple[ScanResult, ReferenceResult]:
        key = (preset.name, day)
        if key not in self.results:
            if day not in self.universes:
                self.universes[day] = UniverseBars.from_frames(self.frames, through=day)
                self.caches[day] = ReferenceCache()
            scan = preset.parsed()
            self.results[key] = (run_scan(scan, self.universes[day]),
                                 reference_scan(scan, self.frames, day, self.caches[day]))
        return self.results[key]


@pytest.fixture(scope="module")
def runs() -> Runs:
    with BundledDailyBars() as bundle:
        return Runs(bundle.load_all())


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("day", DATES, ids=str)
@pytest.mark.parametrize("preset", PRESETS, ids=[p.name for p in PRESETS])
def test_the_scanner_equals_the_per_symbol_ta_reference(runs: Runs, preset: Preset,
                                                         day: date) -> None:
    ours, reference = runs.get(preset, day)
    assert ours.day == reference.day == day
    assert ours.skipped == reference.skipped
    assert ours.scanned == reference.scanned
    assert ours.matched == reference.matched
    assert ours.terms == reference.terms
    assert [hit.symbol for hit in ours.hits] == [hit.symbol for hit in reference.hits]
    for hit, expected in zip(ours.hits, reference.hits, strict=True):
        assert hit.since == expected.since, hit.symbol
        assert _same(hit.rank, expected.rank), (hit.symbol, hit.rank, expected.rank)
        assert hit.values.keys() == expected.values.keys()
        for text, value in hit.values.items():
            assert _same(value, expected.values[text]), (hit.symbol, text, value,
                                                          expected.values[text])


@pytest.mark.parametrize("preset", PRESETS, ids=[p.name for p in PRESETS])
def test_every_preset_has_a_hit_on_one_of_the_dates(runs: Runs, preset: Preset) -> None:
    # Otherwise the comparison above could pass with nothing to compare.
    hits = {day: len(runs.get(preset, day)[0].hits) for day in DATES}
    assert any(hits.values()), f"{preset.name} matches nothing on {DATES}"


def test_a_preset_is_found_whatever_the_case_spaces_or_underscores() -> None:
    assert find_preset("oversold-rsi") is PRESETS[0]
    assert find_preset("  Oversold RSI ").name == "oversold-rsi"
    assert find_preset("GOLDEN_CROSS").name == "golden-cross"
    assert find_preset("52 Week High").name == "52-week-high"
    for preset in PRESETS:
        assert find_preset(preset.name.upper().replace("-", " ")) is preset


def test_an_unknown_preset_is_a_key_error_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="no preset called 'death-cross'") as raised:
        find_preset("death-cross")
    message = str(raised.value)
    for preset in PRESETS:
        assert preset.name in message


def test_the_preset_names_are_unique_and_already_in_the_forgiven_form() -> None:
    names = [preset.name for preset in PRESETS]
    assert len(set(names)) == len(names)
    for name in names:
        assert name == name.strip().lower().replace(" ", "-").replace("_", "-")


@pytest.mark.parametrize("preset", PRESETS, ids=[p.name for p in PRESETS])
def test_every_preset_parses_and_renders_round_trip(preset: Preset) -> None:
    rendered = parse(preset.text).render()
    assert parse(rendered).render() == rendered
    assert preset.parsed().render() == rendered


# Expressions where the scanner once disagreed with `ta`: an RSI of a derived series
# (ta counts its missing early changes as 0), `[n]` of a `not` (never true above a
# symbol's first bar) and a crossing of constants; 2015-03-02 has young symbols.
EDGES = [
    Preset("edge-derived-rsi", "", "rsi(sma(close, 5), 14) > 50 sort by rsi(sma(close, 5), 14)",
           ""),
    Preset("edge-not-ago", "", "(not (close > 100))[3] and close > 0", ""),
    Preset("edge-constant-cross", "", "crosses_above(1, 2) or close < 20", ""),
]


@pytest.mark.parametrize("day", [date(2015, 3, 2), date(2019, 4, 1)], ids=str)
@pytest.mark.parametrize("edge", EDGES, ids=[p.name for p in EDGES])
def test_edge_expressions_equal_the_reference_too(runs: Runs, edge: Preset, day: date
                                                  ) -> None:
    test_the_scanner_equals_the_per_symbol_ta_reference(runs, edge, day)
    assert runs.get(edge, day)[0].hits
