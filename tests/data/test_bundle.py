from __future__ import annotations

import io
import logging
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.bundle import (
    BUNDLE_PATH,
    COLUMNS,
    SHORT_HISTORY_ROWS,
    BundledDailyBars,
    BundleError,
    LoadReport,
    UnknownSymbolError,
    clean_daily_bars,
)

LOGGER = "data.bundle"


# Module-scoped fixtures are made before the autouse `isolated_environment` points the
# cache folder at a temporary one: these name their own, so as not to touch the user's.
@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> BundledDailyBars:
    return BundledDailyBars(cache_dir=tmp_path_factory.mktemp("cache"))


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def universe_log() -> Records:
    return Records()


@pytest.fixture(scope="module")
def full_bundle(
    universe_log: Records, tmp_path_factory: pytest.TempPathFactory
) -> BundledDailyBars:
    """A bundle with every symbol loaded once, by a single load_all."""
    # caplog lives for one test; loading the universe once for the module needs its own.
    logger = logging.getLogger(LOGGER)
    level = logger.level
    logger.addHandler(universe_log)
    logger.setLevel(logging.INFO)
    try:
        bundle = BundledDailyBars(cache_dir=tmp_path_factory.mktemp("cache"))
        bundle.load_all()
        return bundle
    finally:
        logger.removeHandler(universe_log)
        logger.setLevel(level)


@pytest.fixture(scope="module")
def universe(full_bundle: BundledDailyBars) -> dict[str, pd.DataFrame]:
    return full_bundle.load_many(full_bundle.symbols())


def raw_member(symbol: str) -> pd.DataFrame:
    with zipfile.ZipFile(BUNDLE_PATH) as archive:
        return pd.read_csv(io.BytesIO(archive.read(f"{symbol}.csv")), dtype={"date": str})


def raw_frame(rows: list[tuple[object, ...]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["date", *COLUMNS])


def row(day: str, price: float = 10.0, volume: float = 1000.0) -> tuple[object, ...]:
    return (day, price, price + 1.0, price - 1.0, price, price, volume)


# --- the real bundle -------------------------------------------------------------------


def test_symbols_come_from_member_names(bundle: BundledDailyBars) -> None:
    symbols = bundle.symbols()
    assert len(symbols) == 443
    assert symbols == sorted(symbols)
    assert {"AAPL", "CBS", "SNI"} <= set(symbols)
    assert "AAPL" in bundle
    assert "NOTASYMBOL" not in bundle


def test_load_returns_the_documented_schema(bundle: BundledDailyBars) -> None:
    bars = bundle.load("AAPL")
    assert list(bars.columns) == list(COLUMNS)
    assert all(dtype == np.float64 for dtype in bars.dtypes)
    assert isinstance(bars.index, pd.DatetimeIndex)
    assert bars.index.name == "date"
    assert bars.index.tz is None
    assert (bars.index == bars.index.normalize()).all()
    assert bars.index.is_monotonic_increasing
    assert bars.index.is_unique
    assert bars.index[0] == pd.Timestamp("2015-01-12")
    assert bars.index[-1] == pd.Timestamp("2020-01-10")
    assert len(bars) == len(raw_member("AAPL"))


def test_load_is_cached(bundle: BundledDailyBars) -> None:
    assert bundle.load("MSFT") is bundle.load("MSFT")


def test_unknown_symbol_is_a_key_error(bundle: BundledDailyBars) -> None:
    with pytest.raises(UnknownSymbolError, match="NOTASYMBOL") as raised:
        bundle.load("NOTASYMBOL")
    assert isinstance(raised.value, KeyError)
    with pytest.raises(KeyError):
        bundle.load_many(["AAPL", "NOTASYMBOL"])


def test_duplicates_keep_the_valid_then_the_last_row(bundle: BundledDailyBars) -> None:
    cbs = bundle.load("CBS")
    day = cbs.loc["2019-12-04"]
    assert (cbs.index == pd.Timestamp("2019-12-04")).sum() == 1
    assert day["close"] == 40.77
    assert day["volume"] == 25_531_000
    sti = bundle.load("STI")
    assert (sti.index == pd.Timestamp("2019-12-06")).sum() == 1
    assert sti.loc["2019-12-06", "low"] == 69.97
    assert sti.loc["2019-12-06", "volume"] == 18_980_771
    viab = bundle.load("VIAB")
    assert (viab.index == pd.Timestamp("2019-12-04")).sum() == 1
    assert viab.loc["2019-12-04", "low"] == 23.43
    assert viab.loc["2019-12-04", "volume"] == 41_869_884


@pytest.mark.parametrize(
    ("symbol", "day", "high", "low"),
    [
        ("CBOE", "2020-01-10", 116.6, 115.81),  # open 116.6 above the published high 116.52
        ("DIS", "2020-01-10", 146.47, 144.26),  # open 146.47 above the published high 145.5
        ("DXC", "2018-06-01", 83.4, 79.68),  # close 79.68 below the published low 80.05
    ],
)
def test_open_or_close_outside_the_range_widens_it(
    bundle: BundledDailyBars, symbol: str, day: str, high: float, low: float
) -> None:
    bar = bundle.load(symbol).loc[day]
    assert bar["high"] == high
    assert bar["low"] == low


def test_every_loaded_bar_is_consistent(universe: dict[str, pd.DataFrame]) -> None:
    for symbol, bars in universe.items():
        assert bars.index.is_unique, symbol
        assert bars.index.is_monotonic_increasing, symbol
    values = pd.concat(universe.values()).to_numpy()
    open_, high, low, close, adj_close, volume = values.T
    assert np.isfinite(values).all()
    assert (low > 0).all()
    assert (adj_close > 0).all()
    assert (volume >= 0).all()
    assert (low <= np.minimum(open_, close)).all()
    assert (high >= np.maximum(open_, close)).all()


def test_universe_report_counts_every_documented_defect(
    full_bundle: BundledDailyBars, universe: dict[str, pd.DataFrame]
) -> None:
    expected_zero_volume = 0
    with zipfile.ZipFile(BUNDLE_PATH) as archive:
        for name in archive.namelist():
            raw = pd.read_csv(io.BytesIO(archive.read(name)), dtype={"date": str})
            priced = raw[(raw[["open", "high", "low", "close", "adj_close"]] > 0).all(axis=1)]
            kept = priced.drop_duplicates("date", keep="last")
            expected_zero_volume += int((kept["volume"] == 0).sum())
    kept_zero_volume = sum(int((bars["volume"] == 0).sum()) for bars in universe.values())

    report = full_bundle.report
    assert report.duplicates_dropped == 3
    assert report.zero_price_rows_dropped == 1
    assert report.out_of_range_repaired == 3
    assert report.invalid_rows_dropped == 0
    assert report.high_low_swapped == 0
    assert report.zero_volume_rows == expected_zero_volume == kept_zero_volume > 400
    short = {symbol for symbol, bars in universe.items() if len(bars) < SHORT_HISTORY_ROWS}
    assert set(report.short_history) == short
    assert {"SNI", "CSRA", "COL"} <= short
    assert len(universe["SNI"]) == 2
    assert len(universe["CSRA"]) == 17
    assert len(universe["COL"]) == 88


def test_loads_log_their_defects_with_counts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    bundle = BundledDailyBars()
    bundle.load_many(["CBS", "DXC", "COL", "AAPL"])
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert "CBS: dropped 1 duplicate row (2019-12-04), dropped 1 zero-price row (2019-12-04)" in (
        messages
    )
    assert any(m.startswith("DXC: widened high/low") and "2018-06-01" in m for m in messages)
    col = next(r for r in caplog.records if r.getMessage().startswith("COL:"))
    assert col.levelno == logging.INFO
    assert "kept 37 zero-volume rows" in col.getMessage()
    assert "short history: 88 rows" in col.getMessage()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert {r.getMessage().split(":")[0] for r in warnings} == {"CBS", "DXC"}
    assert not any(m.startswith("AAPL") for m in messages)


def test_load_all_logs_the_universe_summary(
    universe: dict[str, pd.DataFrame], universe_log: Records
) -> None:
    assert len(universe) == 443
    summary = universe_log.records[-1].getMessage()
    assert summary.startswith("bundled daily bars, 443 symbols: 3 duplicate rows dropped")
    assert summary.endswith("ANDV, COL, CSRA, ESRX, FOX, FOXA, SCG, SNI")
    per_symbol = {r.getMessage().split(":")[0] for r in universe_log.records[:-1]}
    assert {"CBS", "STI", "VIAB", "CBOE", "DIS", "DXC", "SNI", "CSRA", "COL"} <= per_symbol


def test_concurrent_loads_read_and_count_a_symbol_once() -> None:
    bundle = BundledDailyBars()
    results: list[pd.DataFrame] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(bundle.load("CBS"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert all(frame is results[0] for frame in results)
    assert bundle.report.duplicates_dropped == 1
    assert bundle.report.zero_price_rows_dropped == 1


# --- a missing or damaged bundle ----------------------------------------------------------


def test_missing_bundle_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.zip"
    bundle = BundledDailyBars(path)
    with pytest.raises(BundleError, match=r"nowhere\.zip"):
        bundle.symbols()
    with pytest.raises(BundleError, match="not found"):
        bundle.load("AAPL")


def test_garbage_file_is_a_bundle_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.zip"
    path.write_bytes(b"this is not a zip file at all" * 100)
    with pytest.raises(BundleError, match=r"garbage\.zip"):
        BundledDailyBars(path).load("AAPL")


def test_corrupt_member_is_a_bundle_error(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.zip"
    content = "date,open,high,low,close,adj_close,volume\n" + "".join(
        f"2019-01-{d:02d},10,11,9,10,10,{1000 + d}\n" for d in range(2, 30)
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_LZMA) as archive:
        archive.writestr("GOOD.csv", content)
        archive.writestr("BAD.csv", content)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("BAD.csv")
    # Damage the compressed bytes, past the 30-byte local header and the file name.
    start = info.header_offset + 30 + len("BAD.csv") + 8
    for offset in range(start, start + 20):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))

    bundle = BundledDailyBars(path)
    assert bundle.symbols() == ["BAD", "GOOD"]
    assert len(bundle.load("GOOD")) == 28
    with pytest.raises(BundleError, match=r"BAD\.csv.*corrupt\.zip"):
        bundle.load("BAD")


def test_member_without_the_columns_is_a_bundle_error(tmp_path: Path) -> None:
    path = tmp_path / "columns.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ODD.csv", "day,price\n2019-01-02,10\n")
    with pytest.raises(BundleError, match="adj_close"):
        BundledDailyBars(path).load("ODD")


# --- hand-made defects --------------------------------------------------------------------


def test_clean_bars_pass_through_untouched(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    raw = raw_frame([row(f"2019-01-{d:02d}", 10.0 + d) for d in range(2, 5)])
    bars, report = clean_daily_bars("TEST", raw)
    assert report == LoadReport(short_history=["TEST"])  # three rows are a short history
    assert report.summary() == "1 short history (< 250 rows): TEST"
    assert list(bars["close"]) == [12.0, 13.0, 14.0]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_invalid_fields_drop_the_row(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    raw = raw_frame(
        [
            row("2019-01-02"),
            ("2019-01-03", float("nan"), 11.0, 9.0, 10.0, 10.0, 1000.0),  # NaN open
            ("2019-01-04", "abc", 11.0, 9.0, 10.0, 10.0, 1000.0),  # unparseable open
            ("2019-01-07", 10.0, 11.0, -9.0, 10.0, 10.0, 1000.0),  # negative low
            ("2019-01-08", 10.0, 11.0, 9.0, 10.0, 10.0, -5.0),  # negative volume
            ("2019-01-09", 10.0, float("inf"), 9.0, 10.0, 10.0, 1000.0),  # infinite high
            ("2019-13-45", 10.0, 11.0, 9.0, 10.0, 10.0, 1000.0),  # no such date
            ("not a date", 10.0, 11.0, 9.0, 10.0, 10.0, 1000.0),
            (None, 10.0, 11.0, 9.0, 10.0, 10.0, 1000.0),
            row("2019-01-10"),
        ]
    )
    bars, report = clean_daily_bars("TEST", raw)
    assert report.invalid_rows_dropped == 8
    assert list(bars.index) == [pd.Timestamp("2019-01-02"), pd.Timestamp("2019-01-10")]
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert warning.getMessage().startswith("TEST: dropped 8 invalid rows")
    assert "3 with an unparseable date" in warning.getMessage()


def test_zero_prices_drop_the_row_and_zero_volume_keeps_it() -> None:
    raw = raw_frame(
        [
            row("2019-01-02"),
            ("2019-01-03", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
            ("2019-01-04", 10.0, 11.0, 9.0, 10.0, 0.0, 1000.0),  # zero adjusted close
            row("2019-01-07", volume=0.0),
        ]
    )
    bars, report = clean_daily_bars("TEST", raw)
    assert report.zero_price_rows_dropped == 2
    assert report.zero_volume_rows == 1  # the all-zero row is dropped, not counted twice
    assert list(bars.index.strftime("%Y-%m-%d")) == ["2019-01-02", "2019-01-07"]
    assert bars.loc["2019-01-07", "volume"] == 0.0


def test_high_below_low_is_swapped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    raw = raw_frame([("2019-01-02", 10.0, 9.0, 11.0, 10.5, 10.5, 1000.0)])
    bars, report = clean_daily_bars("TEST", raw)
    assert report.high_low_swapped == 1
    assert report.out_of_range_repaired == 0
    assert (bars.loc["2019-01-02", "high"], bars.loc["2019-01-02", "low"]) == (11.0, 9.0)
    assert "swapped high and low on 1 row (2019-01-02)" in caplog.text


def test_swapped_then_still_out_of_range_is_widened() -> None:
    raw = raw_frame([("2019-01-02", 12.0, 9.0, 11.0, 8.5, 8.5, 1000.0)])
    bars, report = clean_daily_bars("TEST", raw)
    assert (report.high_low_swapped, report.out_of_range_repaired) == (1, 1)
    assert (bars["high"].iloc[0], bars["low"].iloc[0]) == (12.0, 8.5)


def test_duplicate_dates_keep_the_last_valid_row() -> None:
    raw = raw_frame(
        [
            row("2019-01-02", 10.0),
            row("2019-01-02", 11.0),  # a later correction: kept
            row("2019-01-03", 12.0),
            ("2019-01-03", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),  # later but invalid: dropped
            row("2019-01-04", 13.0),
            row("2019-01-04", 13.5),
            row("2019-01-04", 14.0),
        ]
    )
    bars, report = clean_daily_bars("TEST", raw)
    assert report.duplicates_dropped == 4
    assert report.zero_price_rows_dropped == 1
    assert list(bars["close"]) == [11.0, 12.0, 14.0]


def test_dates_are_sorted_and_normalized() -> None:
    raw = raw_frame(
        [
            row("2019-01-04T00:00:00", 13.0),
            row("2019-01-02 15:30:00-05:00", 11.0),
            row("2019-01-03", 12.0),
        ]
    )
    bars, _ = clean_daily_bars("TEST", raw)
    assert list(bars.index.strftime("%Y-%m-%d")) == ["2019-01-02", "2019-01-03", "2019-01-04"]
    assert (bars.index == bars.index.normalize()).all()
    assert bars.index.tz is None
    assert list(bars["close"]) == [11.0, 12.0, 13.0]


def test_everything_invalid_leaves_an_empty_frame_with_the_schema() -> None:
    raw = raw_frame([("garbage", "x", "y", "z", "w", "v", "u")])
    bars, report = clean_daily_bars("TEST", raw)
    assert bars.empty
    assert list(bars.columns) == list(COLUMNS)
    assert isinstance(bars.index, pd.DatetimeIndex)
    assert report.invalid_rows_dropped == 1


def test_missing_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="volume"):
        clean_daily_bars("TEST", raw_frame([row("2019-01-02")]).drop(columns="volume"))


def test_reports_merge_and_summarize() -> None:
    total = LoadReport()
    assert total.summary() == "clean"
    total.merge(LoadReport(duplicates_dropped=1, zero_volume_rows=2, short_history=["B"]))
    total.merge(LoadReport(duplicates_dropped=2, out_of_range_repaired=1, short_history=["A"]))
    assert total.duplicates_dropped == 3
    assert total.zero_volume_rows == 2
    assert total.short_history == ["B", "A"]
    assert total.summary() == (
        "3 duplicate rows dropped, 1 out-of-range row repaired, 2 zero-volume rows kept, "
        "2 short histories (< 250 rows): A, B"
    )
