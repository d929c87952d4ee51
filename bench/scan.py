"""Scanner speed: a five-condition scan over the whole bundled universe, cold, against
the same scan computed symbol by symbol with `ta` (`core.scan_reference`).

The scan (`SCAN`) reads five distinct indicators (RSI, a 200-day SMA, ADX, Bollinger
band width, MACD and its signal line) and ranks the hits. It runs over every bundled
symbol and its full history through `THROUGH` (2019-12-31), loaded untimed.

  ours       `core.scanner.run_scan` on the universe's arrays (`UniverseBars`, built
             once, untimed, as the app keeps it): a fresh `Evaluator` every time, so
             every indicator is computed anew; only module-level caches (window bounds
             of pandas' kernels) survive from one repetition to the next, as they do in
             the app. Its first run is reported apart (`first_run_s`). Building the
             universe from the frames is timed too (`universe_build`), and reported
             with the scan as `ours_with_universe_build`.
  reference  `core.scan_reference.reference_scan` on the frames: each symbol cut at
             the date, every node computed with `ta` and pandas, a fresh cache every
             time.

Both must give the same hits in the same order, with the same 'since' dates, values and
ranks (to 1e-9 relative) and the same skipped symbols: the benchmark stops with an
error otherwise. Repetitions are interleaved (each reference run between runs of ours)
so machine noise hits both alike; garbage is collected before each timing
(`time.perf_counter`). Reports best and median seconds, the speedup (reference over
ours) and whether the targets are met: at least 5x the reference, at most 0.25 s.

`incremental`: the same scan kept live (`LiveScan`) over the history before
`THROUGH`, then that session's bar arriving for every symbol: the time of one update
(target: under 20 ms), against a cold rescan in the same run.

Prints one JSON object on stdout. Never asserts on timing.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import date
from functools import partial
from importlib.metadata import version
from typing import Any

import numpy as np
import pandas as pd
from _workload import HostMeter, emit

from core.scan_language import parse
from core.scan_live import LiveScan
from core.scan_reference import ReferenceResult, reference_scan
from core.scan_universe import UniverseBars
from core.scanner import ScanResult, run_scan
from data.bundle import BundledDailyBars

THROUGH = date(2019, 12, 31)
SCAN = ("rsi(14) < 60 and close > sma(close, 200) and adx(14) > 20 and "
        "bbands_width(close, 20, 2) < 10 and macd(close, 12, 26) > macd_signal(close, 12, 26, 9) "
        "sort by rsi(14) asc")
TARGET_SPEEDUP = 5.0
TARGET_SECONDS = 0.25
TARGET_UPDATE_SECONDS = 0.02


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    value = call()
    return time.perf_counter() - t0, value


def seconds(times: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(times), 4), "best_s": round(min(times), 4),
            "repetitions": len(times)}


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def differences(ours: ScanResult, reference: ReferenceResult) -> list[str]:
    """Where the scanner and the reference disagree (nothing: the same result)."""
    found: list[str] = []
    if ours.day != reference.day:
        found.append(f"day: ours {ours.day}, reference {reference.day}")
    if ours.skipped != reference.skipped:
        found.append(f"skipped: ours {sorted(ours.skipped)}, reference {sorted(reference.skipped)}")
    if (ours.scanned, ours.matched) != (reference.scanned, reference.matched):
        found.append(f"scanned, matched: ours {ours.scanned}, {ours.matched}; reference "
                     f"{reference.scanned}, {reference.matched}")
    symbols = [hit.symbol for hit in ours.hits]
    expected = [hit.symbol for hit in reference.hits]
    if symbols != expected:
        found.append(f"hits: ours {symbols}, reference {expected}")
        return found
    for hit, other in zip(ours.hits, reference.hits, strict=True):
        if hit.since != other.since:
            found.append(f"{hit.symbol} since: ours {hit.since}, reference {other.since}")
        if not _same(hit.rank, other.rank):
            found.append(f"{hit.symbol} rank: ours {hit.rank!r}, reference {other.rank!r}")
        for text, value in hit.values.items():
            theirs = other.values.get(text, math.nan)
            if not _same(value, theirs):
                found.append(f"{hit.symbol} {text}: ours {value!r}, reference {theirs!r}")
    return found


def cold(frames: dict[str, pd.DataFrame], reps: int, ours_per_rep: int) -> dict[str, Any]:
    """The scan from nothing but the bars, `reps` reference runs interleaved with
    `ours_per_rep` runs of ours (and as many universe builds) each."""
    scan = parse(SCAN)
    universe = UniverseBars.from_frames(frames, through=THROUGH)
    first_s, first = timed(lambda: run_scan(scan, universe))
    times: dict[str, list[float]] = {"ours": [], "universe_build": [], "reference": []}
    result: ScanResult = first
    reference: ReferenceResult | None = None
    for _ in range(reps):
        for _ in range(ours_per_rep):
            spent, _built = timed(lambda: UniverseBars.from_frames(frames, through=THROUGH))
            times["universe_build"].append(spent)
            spent, result = timed(lambda: run_scan(scan, universe))
            times["ours"].append(spent)
        spent, reference = timed(lambda: reference_scan(scan, frames, THROUGH))
        times["reference"].append(spent)
        assert reference is not None
        mismatches = differences(result, reference)
        if mismatches:
            raise SystemExit("scan: the scanner and the reference disagree:\n  "
                             + "\n  ".join(mismatches[:20]))
    assert reference is not None
    built = [b + o for b, o in zip(times["universe_build"], times["ours"], strict=True)]
    ours_median, ours_best = statistics.median(times["ours"]), min(times["ours"])
    ref_median, ref_best = statistics.median(times["reference"]), min(times["reference"])
    speedup = {"median": round(ref_median / ours_median, 1),
               "best": round(ref_best / ours_best, 1)}
    return {
        "ours_s": seconds(times["ours"]),
        "first_run_s": round(first_s, 4),
        "universe_build_s": seconds(times["universe_build"]),
        "ours_with_universe_build_s": seconds(built),
        "reference_s": seconds(times["reference"]),
        "speedup": speedup,
        "speedup_with_universe_build": {
            "median": round(ref_median / statistics.median(built), 1),
            "best": round(ref_best / min(built), 1)},
        "identical_hits": True,  # checked on every repetition (the benchmark stops if not)
        "day": str(result.day),
        "scanned": result.scanned,
        "skipped": len(result.skipped),
        "hits": [hit.symbol for hit in result.hits],
        "target": {
            "speedup_min": TARGET_SPEEDUP,
            "ours_max_s": TARGET_SECONDS,
            "speedup_median_meets": speedup["median"] >= TARGET_SPEEDUP,
            "ours_median_meets": ours_median <= TARGET_SECONDS,
            "ours_best_meets": ours_best <= TARGET_SECONDS,
        },
    }


def incremental(frames: dict[str, pd.DataFrame], reps: int) -> dict[str, Any]:
    """A live scan (`core.scan_live.LiveScan`) over the universe through the session
    before `THROUGH`, then `THROUGH`'s bar for every symbol: the time of `update`, the
    rescan after one new bar (every indicator's last row stepped, the hits ranked).
    Each repetition moves the bar (as quotes do through a session) so nothing is
    reused; the last one gives the close, and its hits must equal the cold scan's.
    Compared with a cold rescan of the same scan in the same run."""
    scan = parse(SCAN)
    moment = pd.Timestamp(THROUGH)
    history = UniverseBars.from_frames({s: f[f.index < moment] for s, f in frames.items()})
    closing = {s: tuple(float(x) for x in f.loc[moment, ["open", "high", "low", "close",
                                                          "volume"]])
               for s, f in frames.items() if moment in f.index}
    build_s, live = timed(lambda: LiveScan(scan, history, THROUGH))
    times: list[float] = []
    cold_times: list[float] = []
    universe = UniverseBars.from_frames(frames, through=THROUGH)
    for rep in range(reps):
        scale = 1.0 + 0.001 * (rep % 7 - 3)
        moved = {s: (o, max(h, c * scale), min(lo, c * scale), c * scale, v * 0.9)
                 for s, (o, h, lo, c, v) in closing.items()}
        spent, _ = timed(partial(live.update, moved))
        times.append(spent)
        if rep % 5 == 0:
            spent, _ = timed(lambda: run_scan(scan, universe))
            cold_times.append(spent)
    spent, result = timed(lambda: live.update(closing))
    times.append(spent)
    full = run_scan(scan, universe)
    if [(h.symbol, h.since) for h in result.hits] != [(h.symbol, h.since) for h in full.hits]:
        raise SystemExit("scan: the live update and the cold scan disagree")
    median = statistics.median(times)
    return {
        "update_s": seconds(times),
        "live_scan_build_s": round(build_s, 4),
        "cold_rescan_s": seconds(cold_times),
        "speedup_over_cold_median": round(statistics.median(cold_times) / median, 1),
        "symbols_updated": len(closing),
        "identical_hits": True,
        "target": {"update_max_s": TARGET_UPDATE_SECONDS,
                   "update_median_meets": median <= TARGET_UPDATE_SECONDS},
    }


def run(reps: int, ours_per_rep: int) -> dict[str, Any]:
    with BundledDailyBars() as bundle:
        frames = bundle.load_all()
    universe = UniverseBars.from_frames(frames, through=THROUGH)
    return {
        "name": "scan",
        "description": "a five-condition scan over the whole bundled universe and its full "
                       "history, cold (a fresh evaluator, every indicator computed), "
                       "against the same scan per symbol with ta in the same run",
        "scan": SCAN,
        "through": str(THROUGH),
        "symbols": len(universe.symbols),
        "bars": int(universe.lengths.sum()),
        "cold": cold(frames, reps, ours_per_rep),
        "incremental": incremental(frames, 50),
        "versions": {"ta": version("ta"), "pandas": pd.__version__,
                     "numpy": np.__version__},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "timer": "time.perf_counter"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3,
                        help="reference repetitions (each about 10 s)")
    parser.add_argument("--ours-per-rep", type=int, default=5,
                        help="runs of ours between two reference runs")
    args = parser.parse_args()
    host = HostMeter()
    t0 = time.perf_counter()
    result = run(args.reps, args.ours_per_rep)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    host.report(result)
    emit(result)


if __name__ == "__main__":
    main()
