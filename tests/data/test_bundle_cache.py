"""The disk cache of the bundle's cleaned bars (data/bundle_cache.py), on real files: what
it serves must be exactly what cleaning gives, and no state of the cache file or its
folder may break or change a load."""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import platformdirs
import pytest

import data.bundle
from data.bundle import BUNDLE_PATH, CACHE_MIN_SYMBOLS, BundledDailyBars, LoadReport

CACHE_LOGGER = "data.bundle_cache"
# Real members with every kind of repair (CBS, STI, VIAB: duplicates and a zero price;
# CBOE, DIS, DXC: out of range) and short histories (SNI, CSRA, COL), more of them than
# CACHE_MIN_SYMBOLS.
REAL_MEMBERS = ("AAPL", "CBOE", "CBS", "COL", "CSRA", "DIS", "DXC", "MSFT", "SNI", "STI",
                "VIAB", "XOM")
HEADER = "date,open,high,low,close,adj_close,volume\n"
# Defects the real members lack: an invalid row, high below low, zero volume.
ODD = (HEADER + "2019-01-02,10,11,9,10,10,1000\n2019-01-03,10,9,11,10,10,0\n"
       "2019-01-04,10,11,9,x,10,1000\n2019-01-07,10,11,9,10.5,10.5,2000\n")
# Nothing valid at all: an empty frame.
NOTHING = HEADER + "2019-01-02,0,0,0,0,0,0\nbad-date,1,1,1,1,1,1\n"


def make_bundle(path: Path, changes: dict[str, str] | None = None) -> Path:
    """A small bundle at `path`: some real members, two hand-made ones, with `changes`
    (member -> CSV text) replacing or adding members."""
    members = {"ODD": ODD, "NOTHING": NOTHING, **(changes or {})}
    with zipfile.ZipFile(BUNDLE_PATH) as source, \
            zipfile.ZipFile(path, "w", compression=zipfile.ZIP_LZMA) as archive:
        for symbol in REAL_MEMBERS:
            if symbol not in members:
                archive.writestr(f"{symbol}.csv", source.read(f"{symbol}.csv"))
        for symbol, text in members.items():
            archive.writestr(f"{symbol}.csv", text)
    return path


def slow_load(path: Path, cache_dir: Path) -> tuple[dict[str, pd.DataFrame], LoadReport]:
    """Every symbol cleaned from the zip (`load_many` never writes the cache, and
    `cache_dir` has none), with the report a `load_all` would have."""
    bundle = BundledDailyBars(path, cache_dir=cache_dir)
    frames = bundle.load_many(bundle.symbols())
    assert not bundle.cache_file.exists()
    return frames, bundle.report


def assert_same_frames(actual: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]
                       ) -> None:
    assert list(actual) == list(expected)
    for symbol, frame in expected.items():
        pd.testing.assert_frame_equal(actual[symbol], frame, check_exact=True,
                                      check_freq=True, check_flags=True)
        assert actual[symbol].index.name == "date"
        assert actual[symbol].index.dtype == np.dtype("datetime64[ns]")
        assert list(actual[symbol].dtypes) == [np.dtype(np.float64)] * 6


def cache_events(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage().split(" /")[0] for r in caplog.records if r.name == CACHE_LOGGER]


def bundle_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "data.bundle"]


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "small.zip")


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    # In this order: set_level also sets the level of caplog's handler.
    caplog.set_level(logging.INFO, logger="data.bundle")
    caplog.set_level(logging.DEBUG, logger=CACHE_LOGGER)
    return caplog


# --- the real bundle ----------------------------------------------------------------------


def test_the_whole_bundle_reads_back_exactly_from_the_cache(
    debug_log: pytest.LogCaptureFixture, isolated_environment: Path
) -> None:
    cold = BundledDailyBars()
    expected = cold.load_all()
    assert cold.cache_file.parent == Path(platformdirs.user_cache_dir("tapedeck"))
    assert cold.cache_file.is_relative_to(isolated_environment / "cache")
    assert cold.cache_file.is_file()
    assert cache_events(debug_log) == ["no bundle cache at", "wrote the bundle cache"]
    cold_lines = bundle_lines(debug_log)
    debug_log.clear()

    warm = BundledDailyBars()
    frames = warm.load_all()
    assert cache_events(debug_log) == ["read the bundle cache"]
    assert len(frames) == 443
    assert_same_frames(frames, expected)
    assert warm.report == cold.report
    assert warm.report.duplicates_dropped == 3
    # The same per-symbol repairs and the same summary, in the same order.
    assert bundle_lines(debug_log) == cold_lines
    assert warm.load("AAPL") is frames["AAPL"]
    again = warm.load_many(["CBS", "DXC"])
    assert again["CBS"] is frames["CBS"]
    assert again["DXC"] is frames["DXC"]
    assert warm.report == cold.report  # nothing counted twice


# --- a small bundle -----------------------------------------------------------------------


def test_a_cached_small_bundle_equals_cleaning(
    small: Path, tmp_path: Path, debug_log: pytest.LogCaptureFixture
) -> None:
    expected, report = slow_load(small, tmp_path / "elsewhere")
    assert report.invalid_rows_dropped == 2  # ODD's "x", NOTHING's date
    assert report.zero_price_rows_dropped == 2  # CBS's and NOTHING's
    assert report.high_low_swapped == 1
    assert report.short_history == ["COL", "CSRA", "NOTHING", "ODD", "SNI"]
    assert expected["NOTHING"].empty
    BundledDailyBars(small).load_all()
    debug_log.clear()

    warm = BundledDailyBars(small)
    assert_same_frames(warm.load_all(), expected)
    assert cache_events(debug_log) == ["read the bundle cache"]
    assert warm.report == report


def test_load_many_of_many_symbols_reads_the_cache(
    small: Path, tmp_path: Path, debug_log: pytest.LogCaptureFixture
) -> None:
    expected, _ = slow_load(small, tmp_path / "elsewhere")
    BundledDailyBars(small).load_all()
    debug_log.clear()

    some = sorted(expected)[:CACHE_MIN_SYMBOLS]
    warm = BundledDailyBars(small)
    assert_same_frames(warm.load_many(some), {s: expected[s] for s in some})
    assert cache_events(debug_log) == ["read the bundle cache"]
    # Then the rest, one by one, from the same cache.
    assert_same_frames({s: warm.load(s) for s in sorted(expected)}, expected)
    assert cache_events(debug_log) == ["read the bundle cache"]
    assert warm._cached is None  # released once every symbol is loaded


def test_few_symbols_do_not_read_the_cache(
    small: Path, debug_log: pytest.LogCaptureFixture
) -> None:
    BundledDailyBars(small).load_all()
    debug_log.clear()
    bundle = BundledDailyBars(small)
    bundle.load_many(["AAPL", "CBS"])
    bundle.load("MSFT")
    assert cache_events(debug_log) == []


def load_all_at_once(bundle: BundledDailyBars, workers: int) -> list[dict[str, pd.DataFrame]]:
    results: list[dict[str, pd.DataFrame]] = []
    barrier = threading.Barrier(workers)

    def worker() -> None:
        barrier.wait()
        results.append(bundle.load_all())

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("start", ["cold", "warm"])
def test_concurrent_load_alls_count_each_symbol_once(
    start: str, small: Path, tmp_path: Path, debug_log: pytest.LogCaptureFixture
) -> None:
    expected, report = slow_load(small, tmp_path / "elsewhere")
    if start == "warm":
        BundledDailyBars(small).load_all()
    debug_log.clear()
    bundle = BundledDailyBars(small)
    results = load_all_at_once(bundle, 6)
    assert len(results) == 6
    assert all(frames[s] is results[0][s] for frames in results for s in expected)
    assert_same_frames(results[0], expected)
    assert bundle.report == report
    events = ["read the bundle cache"] if start == "warm" else [
        "no bundle cache at", "wrote the bundle cache"]
    assert cache_events(debug_log) == events  # one read, at most one write
    assert [p.name for p in bundle.cache_file.parent.iterdir()] == [bundle.cache_file.name]


# --- a changed bundle ---------------------------------------------------------------------


def test_a_changed_bundle_does_not_use_the_old_cache(
    small: Path, tmp_path: Path, debug_log: pytest.LogCaptureFixture
) -> None:
    BundledDailyBars(small).load_all()
    old_cache = BundledDailyBars(small).cache_file.read_bytes()
    # The same modification time, another close: only the content differs.
    stat = small.stat()
    make_bundle(small, {"ODD": ODD.replace("10.5,10.5", "10.6,10.5")})
    os.utime(small, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    debug_log.clear()

    changed = BundledDailyBars(small)
    frames = changed.load_all()
    assert cache_events(debug_log)[0] == "ignoring the bundle cache"
    assert frames["ODD"]["close"].iloc[-1] == 10.6
    expected, report = slow_load(small, tmp_path / "elsewhere")
    assert_same_frames(frames, expected)
    assert changed.report == report
    assert changed.cache_file.read_bytes() != old_cache  # rebuilt for the new bundle


def test_a_new_cleaning_version_does_not_use_the_old_cache(
    small: Path, monkeypatch: pytest.MonkeyPatch, debug_log: pytest.LogCaptureFixture
) -> None:
    expected = BundledDailyBars(small).load_all()
    monkeypatch.setattr(data.bundle, "CACHE_VERSION", data.bundle.CACHE_VERSION + 1)
    debug_log.clear()
    assert_same_frames(BundledDailyBars(small).load_all(), expected)
    assert cache_events(debug_log) == ["ignoring the bundle cache", "wrote the bundle cache"]


def test_each_bundle_location_has_its_own_cache(small: Path, tmp_path: Path) -> None:
    other = make_bundle(tmp_path / "other.zip", {"EXTRA": ODD})
    first, second = BundledDailyBars(small), BundledDailyBars(other)
    assert first.cache_file != second.cache_file
    first.load_all()
    assert "EXTRA" in second.load_all()
    assert "EXTRA" not in BundledDailyBars(small).load_all()


# --- a damaged cache ----------------------------------------------------------------------


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_value(path: Path) -> None:
    """One bit in the middle of the values: only the zip's CRC tells."""
    content = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("values.npy")
    header = info.header_offset  # the member's local header: 30 bytes, its name, an extra
    name_length = int.from_bytes(content[header + 26 : header + 28], "little")
    extra_length = int.from_bytes(content[header + 28 : header + 30], "little")
    start = header + 30 + name_length + extra_length
    content[start + info.file_size // 2] ^= 0x01
    path.write_bytes(bytes(content))


def garbage(path: Path) -> None:
    path.write_bytes(b"not a cache" * 1000)


def empty(path: Path) -> None:
    path.write_bytes(b"")


def rewrite(path: Path, **changes: np.ndarray | None) -> None:
    """The cache with its key (so that only the checks of its arrays can refuse it) and
    `changes`: arrays replaced, or left out when None."""
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays.update(changes)
    np.savez(path, **{name: array for name, array in arrays.items() if array is not None})


def five_columns(path: Path) -> None:
    with np.load(path) as npz:
        rewrite(path, values=npz["values"][:5])


def bad_offsets(path: Path) -> None:
    with np.load(path) as npz:
        offsets = npz["offsets"].copy()
    offsets[-1] += 1
    rewrite(path, offsets=offsets)


def dates_as_numbers(path: Path) -> None:
    with np.load(path) as npz:
        rewrite(path, dates=npz["dates"].astype(np.int64))


def missing_array(path: Path) -> None:
    rewrite(path, note_levels=None)


@pytest.mark.parametrize("damage", [truncate, flip_a_value, garbage, empty, five_columns,
                                    bad_offsets, dates_as_numbers, missing_array])
def test_a_damaged_cache_is_ignored_and_rebuilt(
    damage: Callable[[Path], None], small: Path, tmp_path: Path, debug_log: pytest.LogCaptureFixture
) -> None:
    expected, report = slow_load(small, tmp_path / "elsewhere")
    cache = BundledDailyBars(small).cache_file
    BundledDailyBars(small).load_all()
    damage(cache)
    debug_log.clear()

    bundle = BundledDailyBars(small)
    assert_same_frames(bundle.load_all(), expected)
    assert bundle.report == report
    assert cache_events(debug_log)[0].startswith("ignoring the")
    assert cache_events(debug_log)[-1] == "wrote the bundle cache"
    debug_log.clear()
    assert_same_frames(BundledDailyBars(small).load_all(), expected)
    assert cache_events(debug_log) == ["read the bundle cache"]


class Trap:
    """Unpickling this makes the folder `marker`: proof that a cache's pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (os.mkdir, (str(self.marker),))


def test_a_cache_holding_a_pickle_is_refused_without_running_it(
    small: Path, tmp_path: Path, debug_log: pytest.LogCaptureFixture
) -> None:
    expected = BundledDailyBars(small).load_all()
    marker = tmp_path / "pickle-ran"
    cache = BundledDailyBars(small).cache_file
    symbols = np.empty(len(expected), dtype=object)
    symbols[:] = [Trap(marker)] * len(expected)
    rewrite(cache, symbols=symbols)
    pickle.loads(pickle.dumps(Trap(marker)))  # the trap works...
    assert marker.is_dir()
    marker.rmdir()
    debug_log.clear()

    assert_same_frames(BundledDailyBars(small).load_all(), expected)
    assert not marker.exists()  # ... and the cache's was never sprung
    assert cache_events(debug_log)[0] == "ignoring the unreadable bundle cache"


# --- a cache that cannot be written -------------------------------------------------------


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_cache_folder_still_loads(
    small: Path, tmp_path: Path, debug_log: pytest.LogCaptureFixture
) -> None:
    expected, report = slow_load(small, tmp_path / "elsewhere")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        bundle = BundledDailyBars(small, cache_dir=folder)
        assert_same_frames(bundle.load_all(), expected)
        assert bundle.report == report
        assert cache_events(debug_log)[-1] == "cannot write the bundle cache"
        assert list(folder.iterdir()) == []
        # and again, without a cache
        assert_same_frames(BundledDailyBars(small, cache_dir=folder).load_all(), expected)
    finally:
        folder.chmod(0o700)


def test_a_cache_folder_that_cannot_exist_still_loads(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    debug_log: pytest.LogCaptureFixture,
) -> None:
    expected, report = slow_load(small, tmp_path / "elsewhere")
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache folder would have to be inside this file")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    for _ in range(2):
        bundle = BundledDailyBars(small)
        assert_same_frames(bundle.load_all(), expected)
        assert bundle.report == report
        assert cache_events(debug_log)[-1] == "cannot write the bundle cache"
    assert blocker.read_text().startswith("the cache folder")


def test_a_cache_path_that_is_a_folder_still_loads(
    small: Path, tmp_path: Path, debug_log: pytest.LogCaptureFixture
) -> None:
    expected, _ = slow_load(small, tmp_path / "elsewhere")
    BundledDailyBars(small).cache_file.mkdir(parents=True)
    debug_log.clear()
    assert_same_frames(BundledDailyBars(small).load_all(), expected)
    assert cache_events(debug_log) == ["ignoring the unreadable bundle cache",
                                       "cannot write the bundle cache"]
    assert [p.name for p in BundledDailyBars(small).cache_file.parent.iterdir()] == [
        BundledDailyBars(small).cache_file.name]  # no temporary file left behind


def test_temporary_files_of_a_killed_writer_are_removed(small: Path) -> None:
    cache = BundledDailyBars(small).cache_file
    cache.parent.mkdir(parents=True)
    abandoned = cache.parent / f".{cache.stem}-killed.tmp"
    current = cache.parent / f".{cache.stem}-writing.tmp"
    for temporary in (abandoned, current):
        temporary.write_bytes(b"half a cache")
    an_hour_ago = time.time() - 3600
    os.utime(abandoned, (an_hour_ago, an_hour_ago))
    BundledDailyBars(small).load_all()
    assert sorted(p.name for p in cache.parent.iterdir()) == [current.name, cache.name]
