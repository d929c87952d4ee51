"""Tick-to-screen latency and cost of the real app under load, headless.

The real TapedeckApp (via `create_app`) over a real Engine and Store (temp database), sim
feed, one watchlist of 500 synthetic tickers, 200x60 screen, `ui.refresh_hz` = 10. The
feed is paused so its own clock emits nothing; instead a task calls `engine.ingest` every
10 ms with one Quote and one Trade for each of 50 symbols drawn at random from the 500
(seeded; prices rising): 5,000 quotes/s plus 5,000 trades/s.

Latency comes from the QuoteBoard's `render_probe`, called each time a row is drawn. The
benchmark remembers, per visible symbol, the monotonic time it ingested each quote (keyed by the
quote's ts_ns). When a row is drawn with content not drawn before (the row's ts_ns names
the newest quote it shows), it records:
  - latency: draw time minus ingest time of the quote shown (tick-to-screen);
  - oldest_pending: draw time minus ingest time of the oldest quote of that symbol not yet
    on screen (a quote superseded before it was drawn counts as shown by this draw), i.e.
    the longest any tick waited to be reflected on screen.
Only visible rows are drawn, so only visible rows are sampled.

Prints one JSON object on stdout. Never asserts on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from _workload import StealMeter, isolate, symbol_names

os.environ["TEXTUAL_ANIMATIONS"] = "none"

SYMBOLS = 500
EVENTS_PERIOD_S = 0.010
SYMBOLS_PER_BATCH = 50  # one Quote + one Trade each -> 5,000 quotes/s
REFRESH_HZ = 10.0
SCREEN = (200, 60)
PENDING_CAP = 256  # per visible symbol: quotes not yet drawn (25 s of one symbol)
TARGETS = {"p99_ms_max": 150.0, "cpu_share_max": 0.40, "rss_mb_max": 250.0}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def rss_now_mb() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


async def run(seconds: float, home: Path) -> dict[str, object]:
    from core.client import InProcessEngineClient
    from core.config import Settings
    from core.engine import Engine
    from core.model import FeedState, Quote, Trade
    from core.state import ChangeCursor, EngineDelta
    from tui.app import create_app
    from tui.widgets.quote_board import QuoteBoard

    symbols = symbol_names(SYMBOLS)
    settings = Settings.model_validate({
        "feed": {"provider": "sim"},
        "replay": {"paused": True, "resume": False},
        "ui": {"refresh_hz": REFRESH_HZ},
        "store": {"path": str(home / "bench.sqlite")},
        "watchlists": {"Bench": symbols},
    })

    class CountingClient(InProcessEngineClient):
        """Counts pulls, to show the refresh interval in effect."""

        pulls = 0
        rows_pulled = 0

        async def changes(self, cursor: ChangeCursor) -> EngineDelta:
            delta = await super().changes(cursor)
            CountingClient.pulls += 1
            CountingClient.rows_pulled += len(delta.rows)
            return delta

    # Diagnostics: how often, and how long, the screen does a full layout (a layout
    # repaints every widget, unlike a line refresh). Private Textual API: optional.
    from textual.screen import Screen

    layouts: list[float] = []
    original_layout = getattr(Screen, "_refresh_layout", None)
    if original_layout is not None:
        def timed_layout(self: Screen, *args: object, **kwargs: object) -> object:
            t = time.perf_counter()
            try:
                return original_layout(self, *args, **kwargs)
            finally:
                if measuring:
                    layouts.append(time.perf_counter() - t)

        Screen._refresh_layout = timed_layout  # type: ignore[method-assign]

    setup_t0 = time.monotonic()
    engine = await Engine.open(settings)
    await engine.start()
    client = CountingClient(engine)
    app = create_app(settings, client, tune_gc=True)  # as the CLI runs it

    latencies: list[float] = []
    oldest_waits: list[float] = []
    # Per visible symbol: ts_ns -> ingest time of quotes not yet drawn.
    pending: dict[str, dict[int, float]] = {}
    overflowed = 0
    probe_calls = 0
    drawn_symbols: set[str] = set()
    measuring = False
    board: QuoteBoard | None = None

    def probe(symbol: str, received_at: float) -> None:
        nonlocal probe_calls
        probe_calls += 1
        if not measuring or board is None:
            return
        row = board.rows.get(symbol)
        waiting = pending.get(symbol)
        if row is None or not waiting:
            return
        ingested = waiting.get(row.ts_ns)
        if ingested is None:
            return  # this row's content was drawn before, or it is not one of ours
        now = time.monotonic()
        oldest = next(iter(waiting.values()))
        for ts in [ts for ts in waiting if ts <= row.ts_ns]:
            del waiting[ts]
        latencies.append(now - ingested)
        oldest_waits.append(now - oldest)
        drawn_symbols.add(symbol)

    sent_quotes = 0
    sent_trades = 0
    ingest_busy = 0.0
    driver_lag: deque[float] = deque(maxlen=100_000)

    async def drive(stop: asyncio.Event) -> None:
        nonlocal sent_quotes, sent_trades, ingest_busy, overflowed
        prices = {s: 100.0 + (i % 50) for i, s in enumerate(symbols)}
        base_ns = engine.feed.clock.now_ns()
        start = time.monotonic()
        sent_batches = 0
        # Which symbols tick is drawn at random (seeded): a fixed rotation would update
        # each symbol every 100 ms, in lockstep with the 10 Hz pull, and the latency would
        # measure the phase between the two loops rather than the app.
        chooser = random.Random(7)
        ingest = engine.ingest
        while not stop.is_set():
            now = time.monotonic()
            due = int((now - start) / EVENTS_PERIOD_S) + 1
            # Catch up on missed ticks so the offered rate stays 5,000 quotes/s.
            while sent_batches < due:
                driver_lag.append(now - (start + sent_batches * EVENTS_PERIOD_S))
                ts = base_ns + int((now - start) * 1e9) + sent_batches
                batch: list[Quote | Trade] = []
                chunk = chooser.sample(symbols, SYMBOLS_PER_BATCH)
                for symbol in chunk:
                    price = prices[symbol] = round(prices[symbol] + 0.01, 2)
                    batch.append(Quote(symbol, ts, price - 0.01, price + 0.01, 100.0, 100.0))
                    batch.append(Trade(symbol, ts, price, 100.0))
                t_in = time.monotonic()
                ingest(batch)
                ingest_busy += time.monotonic() - t_in
                for symbol in chunk:
                    waiting = pending.get(symbol)
                    if waiting is None:
                        continue  # not on screen: never drawn, nothing to measure
                    waiting[ts] = t_in
                    if len(waiting) > PENDING_CAP:
                        del waiting[next(iter(waiting))]
                        overflowed += 1
                sent_batches += 1
                sent_quotes += SYMBOLS_PER_BATCH
                sent_trades += SYMBOLS_PER_BATCH
            await asyncio.sleep(max(0.0, start + sent_batches * EVENTS_PERIOD_S
                                    - time.monotonic()))

    result: dict[str, object] = {}
    try:
        async with app.run_test(size=SCREEN) as pilot:
            # Wait for the workstation, the feed's catch-up and a first pull with prices.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                screen = app.workstation
                if (screen is not None and screen.is_mounted
                        and screen.first_quotes_at is not None
                        and engine.status().feed_state == FeedState.LIVE
                        and all(s.last == s.last for s in engine.market.states.values())):
                    break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("the workstation did not show quotes within 30 s")
            setup_s = time.monotonic() - setup_t0
            board = app.workstation.query_one(QuoteBoard)
            board.render_probe = probe
            # Let the first frames settle, and start-up finish: the app settles the heap
            # (core.runtime.settle_heap) once the first quotes are on screen.
            await pilot.pause(0.5)
            from core.runtime import GC_THRESHOLDS
            while gc.get_threshold() != GC_THRESHOLDS and time.monotonic() < deadline:
                await pilot.pause(0.05)
            visible_rows = max(0, min(len(board.symbols), board.size.height - 1))
            top = board.scroll_offset.y
            visible = board.symbols[top: top + visible_rows]
            pending.update({symbol: {} for symbol in visible})
            rss_before = rss_now_mb()

            stop = asyncio.Event()
            CountingClient.pulls = CountingClient.rows_pulled = 0
            measuring = True
            cpu0, wall0 = os.times(), time.monotonic()
            task = asyncio.create_task(drive(stop))
            await asyncio.sleep(seconds)
            stop.set()
            await task
            measuring = False
            cpu1, wall1 = os.times(), time.monotonic()
            pulls, rows_pulled = CountingClient.pulls, CountingClient.rows_pulled
            rss_after = rss_now_mb()
            feed_state = engine.status().feed_state
            restarts = engine._supervisor.restarts if engine._supervisor else None
            charted = app.workstation.query_one("#chart-pane").symbol
            board_height = board.size.height
    finally:
        await engine.stop()
        if original_layout is not None:
            Screen._refresh_layout = original_layout  # type: ignore[method-assign]

    wall = wall1 - wall0
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    p99 = percentile(latencies, 99)
    result = {
        "name": "ui_refresh",
        "description": "tick-to-screen latency, CPU and memory of the real app, headless, "
                       "500 symbols at 5,000 quotes/s",
        "seconds": round(wall, 2),
        "latency_ms": {
            "p50": ms(percentile(latencies, 50)),
            "p90": ms(percentile(latencies, 90)),
            "p99": ms(p99),
            "max": ms(max(latencies)) if latencies else None,
            "mean": ms(statistics.fmean(latencies)) if latencies else None,
            "samples": len(latencies),
            "what": "draw time minus ingest time of the quote the drawn row shows; first "
                    "draw of each new row content only",
        },
        "oldest_pending_ms": {
            "p50": ms(percentile(oldest_waits, 50)),
            "p99": ms(percentile(oldest_waits, 99)),
            "max": ms(max(oldest_waits)) if oldest_waits else None,
            "what": "draw time minus ingest time of the oldest quote of that symbol not yet "
                    "reflected on screen (includes quotes superseded before a draw)",
        },
        "visible_rows_only": True,
        "visibility_note": f"only visible rows are drawn ({visible_rows} of {SYMBOLS} "
                           f"symbols on a {SCREEN[0]}x{SCREEN[1]} screen), so latency is "
                           "sampled on visible rows",
        "symbols_sampled": len(drawn_symbols),
        "visible_symbols_never_sampled": sorted(set(pending) - drawn_symbols),
        "cpu": {
            "share_of_one_core": round(cpu / wall, 3),
            "cpu_seconds": round(cpu, 2),
            "driver_ingest_seconds": round(ingest_busy, 3),
            "share_excluding_driver_ingest": round((cpu - ingest_busy) / wall, 3),
            "how": "os.times() user+sys delta over the loaded period / wall; includes the "
                   "benchmark's own driver and probe",
        },
        "memory": {
            "max_rss_mb": round(max_rss_mb, 1),
            "rss_before_load_mb": round(rss_before, 1),
            "rss_after_load_mb": round(rss_after, 1),
            "how": "resource.getrusage(RUSAGE_SELF).ru_maxrss (process peak)",
        },
        "load": {
            "symbols": SYMBOLS,
            "offered_quotes_per_s": round(SYMBOLS_PER_BATCH / EVENTS_PERIOD_S),
            "achieved_quotes_per_s": round(sent_quotes / wall),
            "achieved_trades_per_s": round(sent_trades / wall),
            "batch": f"every {EVENTS_PERIOD_S * 1000:g} ms: 1 Quote + 1 Trade for each of "
                     f"{SYMBOLS_PER_BATCH} random symbols, rising prices",
            "driver_lateness_ms": {
                "p50": ms(percentile(list(driver_lag), 50)),
                "p99": ms(percentile(list(driver_lag), 99)),
                "max": ms(max(driver_lag)) if driver_lag else None,
                "what": "how late the 10 ms driver tick ran: a proxy for event-loop stalls "
                        "(missed ticks are caught up, so the offered rate holds)",
            },
            "pending_overflow_drops": overflowed,
        },
        "app": {
            "screen": f"{SCREEN[0]}x{SCREEN[1]}",
            "board_height": board_height,
            "refresh_hz_setting": REFRESH_HZ,
            "pulls_per_s_measured": round(pulls / wall, 2),
            "rows_per_pull": round(rows_pulled / pulls, 1) if pulls else None,
            "render_probe_calls": probe_calls,
            "full_layouts_per_s": round(len(layouts) / wall, 2) if original_layout else None,
            "full_layout_ms": {
                "median": ms(statistics.median(layouts)) if layouts else None,
                "max": ms(max(layouts)) if layouts else None,
                "what": "Screen._refresh_layout wall time (relayout + repaint of every "
                        "widget), during the loaded period",
            },
            "feed": "sim, paused (quotes injected with engine.ingest)",
            "feed_state_at_end": str(feed_state),
            "feed_restarts": restarts,
            "charted_symbol": charted,
            "setup_seconds": round(setup_s, 2),
            "textual_animations": os.environ.get("TEXTUAL_ANIMATIONS"),
        },
        "target": {
            **TARGETS,
            "p99_meets": p99 * 1000 <= TARGETS["p99_ms_max"],
            "cpu_meets": cpu / wall <= TARGETS["cpu_share_max"],
            "rss_meets": max_rss_mb <= TARGETS["rss_mb_max"],
        },
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-") as tmp:
        home = Path(tmp)
        isolate(home)
        steal = StealMeter()
        result = asyncio.run(run(args.seconds, home))
    result["host_cpu_steal_share"] = steal.share()
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
