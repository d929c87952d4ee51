"""Order journal throughput: durable order events per second, batched, synchronous=FULL.

A `core.store.Store` on a temp file (WAL, synchronous=FULL, as the engine opens it). The
orders the events belong to are created first with `Journal.record_intents` (order_events
references orders), untimed. Then, per repetition:

  batched  `Journal.record_event` called for each of 50,000 events (OrderEvent, cycling
           over the orders) without awaiting; the futures are gathered, and the time runs
           from the first call until the last future resolves, i.e. until every event is
           committed. Nothing awaits while the calls are made, so all of them are queued
           before the writer first runs and it commits them in transactions of up to
           `core.store.BATCH_LIMIT` statements: the best case for batching, as a burst of
           venue reports would be.
  serial   the in-run reference: `await journal.record_event(...)` one at a time for 1,000
           events, so each event is its own transaction and its own fsync.

Repetitions alternate batched and serial on the same database so machine noise hits both
alike. Reports events/s (best and median) for each, and their ratio.

Prints one JSON object on stdout. Never asserts on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from _workload import HostMeter, emit, filesystem_of

from core.journal import Journal
from core.model import OrderRequest, OrderStatus, Side
from core.orders import ClientOrderIds, Order, OrderEvent
from core.store import BATCH_LIMIT, Store

ORDERS = 1_000
TS0 = 1_552_575_600 * 1_000_000_000  # 2019-03-14 15:00 UTC
TARGET_EVENTS_PER_S = 5_000
# Each event is one state change as the desk journals it; the venue id rides along as
# it does for an acknowledgement.
STATUSES = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_CANCEL,
            OrderStatus.CANCELED)


async def create_orders(journal: Journal) -> list[str]:
    ids = ClientOrderIds("bench", 1)
    intents = []
    for i in range(ORDERS):
        coid, sequence = ids.issue(TS0)
        side = Side.BUY if i % 2 == 0 else Side.SELL
        intents.append((Order(coid, OrderRequest("AAPL", side, Decimal(100)), TS0), sequence))
    await journal.record_intents(intents, "paper")
    return [order.client_order_id for order, _ in intents]


def make_events(coids: list[str], count: int, start: int) -> list[OrderEvent]:
    """Built before timing: the benchmark times the journal, not dataclass creation."""
    events = []
    for n in range(start, start + count):
        status = STATUSES[n % len(STATUSES)]
        events.append(OrderEvent(coids[n % len(coids)], TS0 + n, status,
                                 Decimal(n % 100),
                                 "bench" if status == OrderStatus.CANCELED else ""))
    return events


async def batched(journal: Journal, events: list[OrderEvent]) -> tuple[float, float]:
    """Seconds to the last commit, and seconds spent making the calls."""
    record = journal.record_event
    t0 = time.perf_counter()
    futures = [record(event, "venue-1") for event in events]
    t1 = time.perf_counter()
    await asyncio.gather(*futures)
    return time.perf_counter() - t0, t1 - t0


async def serial(journal: Journal, events: list[OrderEvent]) -> tuple[float, list[float]]:
    record = journal.record_event
    each = []
    t0 = time.perf_counter()
    for event in events:
        t = time.perf_counter()
        await record(event, "venue-1")
        each.append(time.perf_counter() - t)
    return time.perf_counter() - t0, each


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def rates(times: list[float], events: int) -> dict[str, float]:
    best, median = min(times), statistics.median(times)
    return {
        "best_events_per_s": round(events / best),
        "median_events_per_s": round(events / median),
        "best_s": round(best, 4),
        "median_s": round(median, 4),
        "best_us_per_event": round(best / events * 1e6, 2),
    }


async def run(path: Path, events: int, serial_events: int, reps: int) -> dict[str, Any]:
    async with await Store.open(path) as store:
        journal = Journal(store)
        coids = await create_orders(journal)
        # Warm-up (untimed): the first writes page in the tables and grow the WAL.
        await batched(journal, make_events(coids, 5_000, 0))
        await serial(journal, make_events(coids, 50, 5_000))

        next_n = 5_050
        batched_times: list[float] = []
        submit_times: list[float] = []
        serial_times: list[float] = []
        serial_each: list[float] = []
        for _ in range(reps):
            work = make_events(coids, events, next_n)
            next_n += events
            gc.collect()
            total, submitting = await batched(journal, work)
            batched_times.append(total)
            submit_times.append(submitting)
            work = make_events(coids, serial_events, next_n)
            next_n += serial_events
            gc.collect()
            total, each = await serial(journal, work)
            serial_times.append(total)
            serial_each += each
        row = await store.fetchone("SELECT count(*) AS n FROM order_events")
        stored = int(row["n"]) if row is not None else -1
        expected = ORDERS + next_n  # each order's pending_new, plus every event sent

    batch = rates(batched_times, events)
    one = rates(serial_times, serial_events)
    return {
        "name": "journal",
        "description": "durable order events/s through Journal.record_event, batched by the "
                       "store's writer (synchronous=FULL), against one commit per event "
                       "in the same run",
        "batched": {
            **batch,
            "events": events,
            "submit_calls_median_s": round(statistics.median(submit_times), 4),
            "what": f"{events:,} record_event calls without awaiting, then gather: time "
                    "from the first call until the last future resolved (all committed)",
        },
        "reference_one_commit_per_event": {
            **one,
            "events": serial_events,
            "commit_ms_p50": round(percentile(serial_each, 50) * 1000, 3),
            "commit_ms_p99": round(percentile(serial_each, 99) * 1000, 3),
            "commit_ms_max": round(max(serial_each) * 1000, 3),
            "what": "await record_event one at a time: one transaction and fsync per event",
        },
        "ratios": {
            "batched_over_serial_best": round(batch["best_events_per_s"]
                                              / one["best_events_per_s"], 1),
            "batched_over_serial_median": round(batch["median_events_per_s"]
                                                / one["median_events_per_s"], 1),
        },
        "workload": {
            "orders": ORDERS,
            "repetitions": reps,
            "store_batch_limit": BATCH_LIMIT,
            "min_commits_per_batched_rep": -(-events // BATCH_LIMIT),
            "event_statuses": [s.value for s in STATUSES],
            "rows_stored": stored,
            "rows_expected": expected,
            "synchronous": "FULL",
            "journal_mode": "WAL",
            "timer": "time.perf_counter",
        },
        "target": {
            "events_per_s_min": TARGET_EVENTS_PER_S,
            "batched_best_meets": batch["best_events_per_s"] >= TARGET_EVENTS_PER_S,
            "batched_median_meets": batch["median_events_per_s"] >= TARGET_EVENTS_PER_S,
        },
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "database_filesystem": filesystem_of(path.parent),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--serial-events", type=int, default=1_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-") as tmp:
        host = HostMeter()
        result = asyncio.run(run(Path(tmp) / "journal.sqlite", args.events,
                                 args.serial_events, args.reps))
    host.report(result)
    emit(result)


if __name__ == "__main__":
    main()
