"""A live scan updated with today's bars equals a full evaluation of history plus that
bar: every preset and a broad set of expressions, on several dates; repeated updates of
the same day (quotes moving the forming bar), symbols with no bar yet today, and
symbols that reach the scan's lookback only with today's bar."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest

from core.scan_language import parse
from core.scan_live import BarValues, LiveScan
from core.scan_presets import PRESETS
from core.scan_universe import UniverseBars
from core.scanner import Hit, ScanResult, run_scan
from data.bundle import BundledDailyBars

DATES = [date(2016, 6, 1), date(2017, 9, 1), date(2018, 2, 6), date(2019, 6, 3)]
EXPRESSIONS = [preset.text for preset in PRESETS] + [
    "stoch(14) > 80 and atr(14) > 1 and pct_change(close, 5) > 0 and vwap > sma(vwap, 10) "
    "sort by change desc",
    "not (ema(rsi(14), 5) > 50) or highest(high, 20) < close[1] * 1.1 and "
    "bbands_upper(close, 20, 2) > close and bbands_lower(close, 20, 2) < close",
    "crosses_below(close, ema(close, 20)) or macd_signal(close, 12, 26, 9) < 0 and "
    "pct_change > 0.5 sort by adx(14) desc",
    "(crosses_above(rsi(7), 50))[1] or -macd(close, 5, 13) / atr(5) > 0.2 sort by volume desc",
]
FIELDS = ["open", "high", "low", "close", "volume"]
SYMBOLS = 150


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    with BundledDailyBars() as bundle:
        symbols = [*bundle.symbols()[:SYMBOLS], "MSFT", "XOM"]
        return {symbol: bundle.load(symbol) for symbol in symbols}


def _before(frames: dict[str, pd.DataFrame], day: date) -> UniverseBars:
    moment = pd.Timestamp(day)
    return UniverseBars.from_frames({s: f[f.index < moment] for s, f in frames.items()})


def _bar(frame: pd.DataFrame, day: date) -> BarValues:
    o, h, lo, c, v = (float(x) for x in frame.loc[pd.Timestamp(day), FIELDS])
    return o, h, lo, c, v


def _today(frames: dict[str, pd.DataFrame], day: date) -> dict[str, BarValues]:
    moment = pd.Timestamp(day)
    return {s: _bar(f, day) for s, f in frames.items() if moment in f.index}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _assert_hits_equal(live: list[Hit], full: list[Hit]) -> None:
    assert [hit.symbol for hit in live] == [hit.symbol for hit in full]
    for ours, theirs in zip(live, full, strict=True):
        assert ours.since == theirs.since, ours.symbol
        assert ours.as_of == theirs.as_of, ours.symbol
        assert _same(ours.rank, theirs.rank), (ours.symbol, ours.rank, theirs.rank)
        assert list(ours.values) == list(theirs.values)
        for text, value in ours.values.items():
            assert _same(value, theirs.values[text]), (ours.symbol, text)


def _live_part(result: ScanResult, day: date) -> list[Hit]:
    return [hit for hit in result.hits if hit.as_of == day]


@pytest.mark.parametrize("day", DATES, ids=str)
def test_an_update_with_todays_bars_equals_a_full_evaluation(
        frames: dict[str, pd.DataFrame], day: date) -> None:
    history = _before(frames, day)
    today = _today(frames, day)
    full_bars = UniverseBars.from_frames(frames, through=day)
    for text in EXPRESSIONS:
        scan = parse(text)
        # Without the limit, so a hit as of yesterday cannot push today's out of the list.
        scan_all = parse(text.split(" limit ")[0])
        live = LiveScan(scan_all, history, day)
        result = live.update(today)
        full = run_scan(scan_all, full_bars)
        _assert_hits_equal(_live_part(result, day), full.hits)
        assert result.day == day
        if scan.limit is not None:
            limited = LiveScan(scan, history, day).update(today)
            assert len(limited.hits) <= scan.limit


def test_quotes_moving_the_forming_bar_end_where_one_update_with_the_close_ends(
        frames: dict[str, pd.DataFrame]) -> None:
    day = DATES[1]
    scan = parse("rsi(14) < 45 and close > ema(close, 50) or adx(14) > 30 sort by rsi(14) asc")
    live = LiveScan(scan, _before(frames, day), day)
    today = _today(frames, day)
    # The morning: the open as every price, then a wide intraday range, then the close.
    live.update({s: (o, o, o, o, v / 10) for s, (o, _h, _l, _c, v) in today.items()})
    live.update({s: (o, h * 1.05, lo * 0.95, (h + lo) / 2, v / 2)
                 for s, (o, h, lo, _c, v) in today.items()})
    final = live.update(today)
    full = run_scan(scan, UniverseBars.from_frames(frames, through=day))
    _assert_hits_equal(_live_part(final, day), full.hits)


def test_a_symbol_without_a_bar_yet_today_is_scanned_on_its_last_close(
        frames: dict[str, pd.DataFrame]) -> None:
    day, yesterday = DATES[2], date(2018, 2, 5)
    scan = parse("close > 0 sort by close desc")
    live = LiveScan(scan, _before(frames, day), day)
    today = _today(frames, day)
    quiet = sorted(today)[:20]
    result = live.update({s: bar for s, bar in today.items() if s not in quiet})
    by_symbol = {hit.symbol: hit for hit in result.hits}
    for symbol in quiet:
        hit = by_symbol[symbol]
        assert hit.as_of == yesterday
        assert hit.values["close"] == frames[symbol].loc[pd.Timestamp(yesterday), "close"]
    # Its bar arrives: from then on it is scanned on today's.
    late = quiet[0]
    result = live.update({late: today[late]})
    hit = next(hit for hit in result.hits if hit.symbol == late)
    assert hit.as_of == day
    assert hit.values["close"] == today[late][3]


def test_before_any_bar_today_the_scan_is_of_the_last_close(
        frames: dict[str, pd.DataFrame]) -> None:
    day, yesterday = DATES[0], date(2016, 5, 31)
    scan = parse("rsi(14) < 40 sort by rsi(14) asc")
    live = LiveScan(scan, _before(frames, day), day)
    result = live.result()
    full = run_scan(scan, UniverseBars.from_frames(frames, through=yesterday))
    assert result.day == yesterday
    _assert_hits_equal(result.hits, full.hits)


def test_a_symbol_reaching_the_lookback_with_todays_bar_is_computed_whole(
        frames: dict[str, pd.DataFrame]) -> None:
    scan = parse("close > 0 and rsi(14) > 0 and adx(14) >= 0 and ema(close, 30) > 0 "
                 "and macd_signal(close, 12, 26, 9) > -1000 sort by adx(14) desc")
    needed = scan.lookback
    symbols = ["AAPL", "XOM", "MSFT"]
    # AAPL has one bar too few without today's, XOM exactly enough, MSFT plenty.
    cut = {"AAPL": needed - 1, "XOM": needed, "MSFT": 400}
    day = date(2016, 6, 1)
    moment = pd.Timestamp(day)
    histories = {s: frames[s][frames[s].index < moment].iloc[-cut[s]:] for s in symbols}
    live = LiveScan(scan, UniverseBars.from_frames(histories), day)
    result = live.update(_today({s: frames[s] for s in symbols}, day))
    full = run_scan(scan, UniverseBars.from_frames(
        {s: pd.concat([histories[s], frames[s].loc[[moment]]]) for s in symbols}))
    assert {hit.symbol for hit in result.hits} == set(symbols)
    _assert_hits_equal(result.hits, full.hits)


def test_symbols_too_young_or_gone_are_skipped_with_the_reason(
        frames: dict[str, pd.DataFrame]) -> None:
    day = date(2016, 6, 1)
    moment = pd.Timestamp(day)
    histories = {
        "AAPL": frames["AAPL"][frames["AAPL"].index < moment],
        "XOM": frames["XOM"][frames["XOM"].index < moment].iloc[-10:],
        "MSFT": frames["MSFT"][frames["MSFT"].index < pd.Timestamp(2016, 5, 20)],
    }
    live = LiveScan(parse("close > sma(close, 50)"), UniverseBars.from_frames(histories), day)
    result = live.update({"AAPL": _bar(frames["AAPL"], day), "XOM": _bar(frames["XOM"], day)})
    assert result.skipped == {
        "XOM": "11 bars of history, the scan needs 50",
        "MSFT": "no bar since 2016-05-19",
    }
    assert result.scanned == 1


def test_symbols_outside_the_universe_are_ignored(frames: dict[str, pd.DataFrame]) -> None:
    day = DATES[0]
    live = LiveScan(parse("close > 0"), _before(frames, day), day)
    result = live.update({"NOT_A_SYMBOL": (1.0, 1.0, 1.0, 1.0, 1.0)})
    assert result.day == date(2016, 5, 31)  # nothing arrived for today yet


def test_an_empty_history_is_refused() -> None:
    empty = UniverseBars.from_arrays([], [])
    with pytest.raises(ValueError, match="needs some history"):
        LiveScan(parse("close > 0"), empty, date(2016, 6, 1))
