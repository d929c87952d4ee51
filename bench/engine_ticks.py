"""Engine hot-path throughput: market events per second through `MarketState.ingest`.

Three measurements over the same pre-built events (500 symbols, batches of 1,000 events,
three quotes to each trade, timestamps advancing 1 ms per event so minute bars complete
as they would in a session):

  ingest   `MarketState.ingest(batch)` over pre-built Quote/Trade batches
  adapter  building the Quote/Trade objects from raw tuples (what a feed adapter does
           with a decoded websocket frame) plus `ingest`
  floor    a bare loop `latest[event.symbol] = event` over the same events: the least a
           Python consumer of these events can do, measured in the same run

Each repetition starts from a fresh MarketState (500 tracked symbols, one warm-up trade
each, untimed) and runs all three, interleaved, so machine noise hits them alike.
Prints one JSON object on stdout. Never asserts on timing.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from datetime import UTC, datetime

from _workload import StealMeter, symbol_names

from core.market import MarketState
from core.model import NS_PER_SECOND, Instrument, Quote, Trade

SYMBOLS = 500
BATCH = 1_000
QUOTES_PER_TRADE = 3
TARGET_QUOTES_PER_S = 250_000


def build_raw(symbols: list[str], batches: int, seed: int) -> tuple[list[list[tuple]], int]:
    """Raw tuples as a feed frame would decode them: ("Q", sym, ts, bid, ask, bs, as)
    and ("T", sym, ts, price, size). Returns the batches and the start timestamp."""
    rng = random.Random(seed)
    start = int(datetime(2019, 1, 2, 14, 31, tzinfo=UTC).timestamp()) * NS_PER_SECOND
    mids = {s: 20.0 + rng.random() * 200.0 for s in symbols}
    ts = start
    raw_batches = []
    n = 0
    for _ in range(batches):
        batch = []
        for _ in range(BATCH):
            symbol = symbols[rng.randrange(len(symbols))]
            mid = mids[symbol] = round(mids[symbol] * (1 + rng.gauss(0, 0.0005)), 2)
            ts += 1_000_000  # 1 ms per event: 1,000 events per market second
            if n % (QUOTES_PER_TRADE + 1) == QUOTES_PER_TRADE:
                batch.append(("T", symbol, ts, mid, float(rng.randrange(1, 50) * 100)))
            else:
                size = float(rng.randrange(1, 20) * 100)
                batch.append(("Q", symbol, ts, round(mid - 0.01, 2), round(mid + 0.01, 2),
                              size, size))
            n += 1
        raw_batches.append(batch)
    return raw_batches, start


def adapt(raw: list[tuple]) -> list[Quote | Trade]:
    """What a feed adapter does with one decoded frame."""
    quote, trade = Quote, Trade
    return [
        quote(r[1], r[2], r[3], r[4], r[5], r[6]) if r[0] == "Q" else trade(r[1], r[2], r[3], r[4])
        for r in raw
    ]


def fresh_market(symbols: list[str], start_ns: int) -> MarketState:
    market = MarketState()
    for symbol in symbols:
        market.track(Instrument(symbol, source="sim"))
    # Warm-up (untimed): the first trade of a symbol opens its session, a one-off.
    market.ingest([Trade(s, start_ns, 100.0, 100.0) for s in symbols])
    return market


def run_ingest(market: MarketState, batches: list[list[Quote | Trade]]) -> float:
    ingest = market.ingest
    t0 = time.perf_counter()
    for batch in batches:
        ingest(batch)
    return time.perf_counter() - t0


def run_adapter(market: MarketState, raw_batches: list[list[tuple]]) -> float:
    ingest = market.ingest
    t0 = time.perf_counter()
    for raw in raw_batches:
        ingest(adapt(raw))
    return time.perf_counter() - t0


def run_floor(batches: list[list[Quote | Trade]]) -> float:
    latest: dict[str, object] = {}
    t0 = time.perf_counter()
    for batch in batches:
        for event in batch:
            latest[event.symbol] = event
    return time.perf_counter() - t0


def summary(times: list[float], events: int, quotes: int) -> dict[str, float]:
    best, median = min(times), statistics.median(times)
    return {
        "best_events_per_s": round(events / best),
        "median_events_per_s": round(events / median),
        "best_quotes_per_s": round(quotes / best),
        "median_quotes_per_s": round(quotes / median),
        "best_ns_per_event": round(best / events * 1e9, 1),
        "median_ns_per_event": round(median / events * 1e9, 1),
        "best_s": round(best, 4),
        "median_s": round(median, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100, help="batches of 1,000 events")
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()

    steal = StealMeter()
    symbols = symbol_names(SYMBOLS)
    raw_batches, start = build_raw(symbols, args.batches, seed=1)
    batches = [adapt(raw) for raw in raw_batches]
    events = sum(len(b) for b in batches)
    quotes = sum(1 for b in batches for e in b if type(e) is Quote)
    trades = events - quotes

    timings: dict[str, list[float]] = {"ingest": [], "adapter": [], "floor": []}
    completed_bars = 0
    bus_errors = 0
    for _ in range(args.reps):
        gc.collect()
        market = fresh_market(symbols, start)
        timings["ingest"].append(run_ingest(market, batches))
        completed_bars, bus_errors = market.bar_seq, market.bus.errors
        gc.collect()
        market = fresh_market(symbols, start)
        timings["adapter"].append(run_adapter(market, raw_batches))
        gc.collect()
        timings["floor"].append(run_floor(batches))

    ingest = summary(timings["ingest"], events, quotes)
    adapter = summary(timings["adapter"], events, quotes)
    floor = summary(timings["floor"], events, quotes)
    result = {
        "name": "engine_ticks",
        "description": "MarketState.ingest throughput (one thread) vs a bare dict-store "
                       "loop over the same events, measured in the same run",
        "workload": {
            "symbols": SYMBOLS,
            "batch_events": BATCH,
            "batches": args.batches,
            "events_per_rep": events,
            "quotes_per_rep": quotes,
            "trades_per_rep": trades,
            "quote_to_trade": f"{QUOTES_PER_TRADE}:1",
            "market_ns_per_event": 1_000_000,
            "minute_bars_completed_per_rep": completed_bars,
            "bus_subscriber_errors": bus_errors,
            "repetitions": args.reps,
            "timer": "time.perf_counter",
        },
        "ingest": ingest,
        "adapter_plus_ingest": adapter,
        "reference_floor_dict_store": floor,
        "ratios": {
            "ingest_vs_floor_best_throughput": round(
                ingest["best_events_per_s"] / floor["best_events_per_s"], 3),
            "ingest_vs_floor_median_throughput": round(
                ingest["median_events_per_s"] / floor["median_events_per_s"], 3),
            "adapter_vs_floor_best_throughput": round(
                adapter["best_events_per_s"] / floor["best_events_per_s"], 3),
            "adapter_vs_ingest_best_throughput": round(
                adapter["best_events_per_s"] / ingest["best_events_per_s"], 3),
            "ingest_cost_in_floor_units_best": round(
                floor["best_events_per_s"] / ingest["best_events_per_s"], 2),
        },
        "target": {
            "ingest_quotes_per_s_min": TARGET_QUOTES_PER_S,
            "ingest_best_meets": ingest["best_quotes_per_s"] >= TARGET_QUOTES_PER_S,
            "ingest_median_meets": ingest["median_quotes_per_s"] >= TARGET_QUOTES_PER_S,
            "adapter_median_meets": adapter["median_quotes_per_s"] >= TARGET_QUOTES_PER_S,
            "note": "quotes/s counts only Quote events; trades in the same batches cost "
                    "time too (events/s counts both)",
        },
        "machine": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
    }
    result["host_cpu_steal_share"] = steal.share()
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
