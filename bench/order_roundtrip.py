"""Order round trip in process: submit -> risk -> journal intent -> paper fill -> the UI's
change set, one order at a time.

A real Engine on a real Store (temp database, synchronous=FULL), configured as the tests'
`make_settings` does (paused replay of 2019-03-14 11:00, in the regular session), with the
paper venue's `latency_ms` = 0 and every risk limit that a long run of orders would trip
turned off (rate limit, open orders, daily loss, drawdown: 0 turns a limit off). After the
prices arrive and the heap is settled as the workstation settles it
(`core.runtime.settle_heap`), market orders of 5 AAPL shares, alternating buy and sell so
the position stays at 0 or 5, are sent one after the other. Each is timed from calling
`await engine.desk.place(request)` until its fill is in `engine.changes(cursor)` (the delta
the UI pulls): risk, the durable intent commit (`place` awaits it: one fsync), the paper
venue's fill (synchronous at latency 0), the book update, and the change set.

Reference, same run, same database: a bare durable commit, `await store.submit("INSERT INTO
settings ...")`. Orders and bare commits run in alternating blocks so machine noise hits
both alike. Orders within a block run back to back, as a trader's burst would: each
order's commit also carries the previous order's queued writes (its fill, events, the
venue's books), which `place` does not wait for. Before each block of bare commits the
store is flushed (untimed), so they commit nothing else.

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

from _workload import HostMeter, emit, filesystem_of, isolate

SYMBOL = "AAPL"
QUANTITY = Decimal(5)
BLOCK = 100  # orders (then bare commits) per alternating block
TARGET_P99_MS = 5.0
SETTING_SQL = ("INSERT INTO settings (key, value) VALUES (?, ?) "
               "ON CONFLICT (key) DO UPDATE SET value = excluded.value")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def spread(values: list[float]) -> dict[str, float | int]:
    return {
        "p50": ms(percentile(values, 50)),
        "p90": ms(percentile(values, 90)),
        "p99": ms(percentile(values, 99)),
        "max": ms(max(values)),
        "mean": ms(statistics.fmean(values)),
        "samples": len(values),
    }


async def run(orders: int, warmup: int, home: Path) -> dict[str, Any]:
    from core.config import Settings
    from core.engine import Engine
    from core.model import OrderRequest, OrderStatus, Side
    from core.runtime import settle_heap

    settings = Settings.model_validate({
        "store": {"path": str(home / "bench.sqlite")},
        "replay": {"start": "2019-03-14", "start_time": "11:00", "paused": True,
                   "resume": False},
        "ui": {"flash_ms": 0},
        "watchlists": {"Core": ["AAPL", "MSFT", "JPM"], "Energy": ["XOM", "CVX"]},
        "paper": {"latency_ms": 0},
        "risk": {"rate_limit_orders": 0, "max_open_orders": 0, "max_daily_loss": 0,
                 "max_drawdown": 0},
    })
    engine = await Engine.open(settings)
    try:
        await engine.start()
        deadline = time.monotonic() + 30
        while not all(r.last == r.last for r in engine.snapshot().rows.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("no prices within 30 s")
            await asyncio.sleep(0.01)
        settle_heap()  # as the workstation does once start-up is over

        desk, store = engine.desk, engine.store
        requests = [OrderRequest(SYMBOL, Side.BUY, QUANTITY),
                    OrderRequest(SYMBOL, Side.SELL, QUANTITY)]
        cursor = engine.snapshot().cursor
        # Instrumentation: how long place() waits on the intent's durable commit. The
        # wrapper only reads the clock around the journal's own call.
        intent_waits: list[float] = []
        record_intents = desk.journal.record_intents

        async def timed_record_intents(*args: Any, **kwargs: Any) -> None:
            t = time.perf_counter()
            try:
                await record_intents(*args, **kwargs)
            finally:
                intent_waits.append(time.perf_counter() - t)

        desk.journal.record_intents = timed_record_intents  # type: ignore[method-assign]
        sent = 0
        not_filled = 0
        polls_needed = 0  # changes() calls that did not have the fill yet (0 at latency 0)

        async def round_trips(count: int, total: list[float], place: list[float]) -> None:
            nonlocal sent, not_filled, polls_needed
            changes = engine.changes
            for _ in range(count):
                request = requests[sent % 2]
                sent += 1
                t0 = time.perf_counter()
                order = await desk.place(request)
                t1 = time.perf_counter()
                coid = order.client_order_id
                while not any(f.client_order_id == coid for f in changes(cursor).fills):
                    polls_needed += 1
                    await asyncio.sleep(0)  # a venue with latency fills on a later step
                t2 = time.perf_counter()
                total.append(t2 - t0)
                place.append(t1 - t0)
                if order.status != OrderStatus.FILLED:
                    not_filled += 1

        async def bare_commits(count: int, times: list[float]) -> None:
            await store.flush()  # the orders' queued writes must not ride along
            for i in range(count):
                t0 = time.perf_counter()
                await store.submit(SETTING_SQL, ("bench.commit", str(i)))
                times.append(time.perf_counter() - t0)

        scratch: list[float] = []
        await round_trips(warmup, scratch, [])
        await bare_commits(max(1, warmup // 4), scratch)
        intent_waits.clear()

        totals: list[float] = []
        places: list[float] = []
        commits: list[float] = []
        cpu0, wall0 = os.times(), time.perf_counter()
        done = 0
        while done < orders:
            block = min(BLOCK, orders - done)
            await round_trips(block, totals, places)
            await bare_commits(block, commits)
            done += block
        cpu1, wall1 = os.times(), time.perf_counter()
        await store.flush()
        event_rows = await store.fetchone("SELECT count(*) AS n FROM order_events")
        position = desk.portfolio.position(SYMBOL)
        orders_in_desk = len(desk.orders)
        fills_in_desk = len(desk.fills)
    finally:
        await engine.stop()

    changes_part = [t - p for t, p in zip(totals, places, strict=True)]
    tenth = max(1, len(totals) // 10)
    p99 = percentile(totals, 99)
    commit_p50, commit_p99 = percentile(commits, 50), percentile(commits, 99)
    return {
        "name": "order_roundtrip",
        "description": "in-process order round trip: place() through risk, durable intent, "
                       "paper fill, to the fill in engine.changes(); against a bare "
                       "durable commit in the same run",
        "round_trip_ms": {
            **spread(totals),
            "what": "await desk.place(market order) until engine.changes(cursor).fills "
                    "holds its fill",
        },
        "place_ms": {
            **spread(places),
            "what": "await desk.place() alone (risk, intent commit, paper fill)",
        },
        "intent_commit_wait_ms": {
            **spread(intent_waits),
            "what": "inside place(): await journal.record_intents (the durable commit of "
                    "the audit row, the intent, and the previous order's queued writes)",
        },
        "changes_ms": {
            **spread(changes_part),
            "what": "place() returned until the fill was seen in engine.changes()",
        },
        "reference_bare_commit_ms": {
            **spread(commits),
            "what": "await store.submit(INSERT INTO settings ...): one durable commit "
                    "(synchronous=FULL), queue flushed first",
        },
        "ratios": {
            "round_trip_p50_over_commit_p50": round(percentile(totals, 50) / commit_p50, 2),
            "round_trip_p99_over_commit_p99": round(p99 / commit_p99, 2),
            "round_trip_p50_minus_commit_p50_ms": ms(percentile(totals, 50) - commit_p50),
        },
        "drift": {
            "round_trip_p50_first_tenth_ms": ms(statistics.median(totals[:tenth])),
            "round_trip_p50_last_tenth_ms": ms(statistics.median(totals[-tenth:])),
            "intent_commit_wait_p50_first_tenth_ms": ms(statistics.median(
                intent_waits[:tenth])),
            "intent_commit_wait_p50_last_tenth_ms": ms(statistics.median(
                intent_waits[-tenth:])),
            "changes_p50_first_tenth_ms": ms(statistics.median(changes_part[:tenth])),
            "changes_p50_last_tenth_ms": ms(statistics.median(changes_part[-tenth:])),
            "why": "the desk keeps every order of the session: checks and views that walk "
                   "them grow with the count",
        },
        "workload": {
            "orders_timed": len(totals),
            "warmup_orders": warmup,
            "order": f"market, {QUANTITY} {SYMBOL}, alternating buy/sell",
            "block": f"{BLOCK} orders back to back, then {BLOCK} bare commits, alternating",
            "orders_in_desk_at_end": orders_in_desk,
            "fills_in_desk_at_end": fills_in_desk,
            "order_event_rows_at_end": event_rows["n"] if event_rows else None,
            "orders_not_fully_filled": not_filled,
            "changes_polls_before_fill_seen": polls_needed,
            "final_position": str(position),
            "paper_latency_ms": 0,
            "feed": "replay, paused (2019-03-14 11:00 New York)",
            "gc": "core.runtime.settle_heap() after start-up, as the workstation",
            "timer": "time.perf_counter",
        },
        "cpu": {
            "share_of_one_core": round(((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system))
                                       / (wall1 - wall0), 3),
            "measured_seconds": round(wall1 - wall0, 2),
        },
        "target": {
            "round_trip_p99_ms_max": TARGET_P99_MS,
            "p99_meets": p99 * 1000 <= TARGET_P99_MS,
        },
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "database_filesystem": filesystem_of(home),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2_000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-") as tmp:
        home = Path(tmp)
        isolate(home)
        host = HostMeter()
        gc.collect()
        result = asyncio.run(run(args.orders, args.warmup, home))
    host.report(result)
    emit(result)


if __name__ == "__main__":
    main()
