"""An attached screen under load: deltas per second it receives and its tick-to-screen
latency, against the in-process app measured in the same run.

The workload is ui_refresh.py's: 500 synthetic symbols, sim feed paused, every 10 ms one
Quote and one Trade for each of 50 symbols drawn at random (seeded), injected with
`engine.ingest`: 5,000 quotes/s plus 5,000 trades/s.

- **in-process** (the reference): `bench/ui_refresh.py --seconds N` in a fresh
  interpreter, its JSON read back: the app and the engine in one process.
- **attached**: a child process (this script with `--serve`) opens the engine on the
  same settings (temp database, `XDG_RUNTIME_DIR` a short temp dir), starts the
  `ControlServer` on it and runs the same 10 ms injector; this process runs the real app
  (`create_app(settings, RemoteEngineClient(path, reconnect=True))`,
  `app.run_test(size=(200, 60))`) as `tapedeck attach` does.

Latency across the two processes: the child stamps each injected event's `ts_ns` as
`base_ns + (monotonic_ns() - anchor_ns)`, taken just before it builds and ingests the
batch, and tells this process `base_ns` and `anchor_ns`. CLOCK_MONOTONIC is one clock for
every process on Linux, so when the QuoteBoard draws a row (`render_probe`), the row's
`ts_ns` gives back the instant its quote was ingested in the child. As in ui_refresh.py,
only the first draw of each new row content is sampled, and only visible rows are drawn.

Prints one JSON object on stdout. Never asserts on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any, BinaryIO

from _workload import HostMeter, cpu_seconds, emit, isolate, rss_mb, symbol_names
from ui_refresh import (
    EVENTS_PERIOD_S,
    REFRESH_HZ,
    SCREEN,
    SYMBOLS,
    SYMBOLS_PER_BATCH,
    ms,
    percentile,
)

SCRIPT = Path(__file__).resolve()
HERE = SCRIPT.parent
GOAL_P99_OVER_IN_PROCESS_MS = 50.0
CHILD_READY_TIMEOUT_S = 90.0
# The child's market time for injected events starts this far past the paused feed's
# clock, so no event of the feed's own can be taken for one of ours.
BASE_MARGIN_NS = 1_000_000_000


def bench_settings(home: Path, push_hz: float | None) -> Any:
    from core.config import Settings

    data: dict[str, Any] = {
        "feed": {"provider": "sim"},
        "replay": {"paused": True, "resume": False},
        "ui": {"refresh_hz": REFRESH_HZ},
        "store": {"path": str(home / "attach.sqlite")},
        "watchlists": {"Bench": symbol_names(SYMBOLS)},
    }
    if push_hz is not None:
        data["daemon"] = {"push_hz": push_hz}
    return Settings.model_validate(data)


def spread(values: list[float] | deque[float], *, mean: bool = False) -> dict[str, Any]:
    values = list(values)
    out: dict[str, Any] = {"min": ms(min(values)) if values else None,
                           "p50": ms(percentile(values, 50)), "p90": ms(percentile(values, 90)),
                           "p99": ms(percentile(values, 99)),
                           "max": ms(max(values)) if values else None}
    if mean:
        out["mean"] = ms(statistics.fmean(values)) if values else None
    out["samples"] = len(values)
    return out


# ---------------------------------------------------------------------------- child


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def serve(home: Path, push_hz: float | None) -> None:
    """The daemon's side: engine + ControlServer + the injector. Talks to the parent on
    stdin ("go", "stop", then end of file: shut down) and stdout (one JSON line each)."""
    import core.control as control
    from core.control import ControlServer
    from core.control_paths import socket_path
    from core.engine import Engine
    from core.model import FeedState, Quote, Trade

    settings = bench_settings(home, push_hz)
    symbols = symbol_names(SYMBOLS)
    engine = await Engine.open(settings)
    await engine.start()
    deadline = time.monotonic() + 60
    while not (engine.status().feed_state == FeedState.LIVE
               and len(engine.market.states) >= SYMBOLS
               and all(s.last == s.last for s in engine.market.states.values())):
        if time.monotonic() > deadline:
            raise RuntimeError("the engine did not price every symbol within 60 s")
        await asyncio.sleep(0.05)
    server = ControlServer(engine, settings.daemon, socket_path(settings))
    await server.start()

    # What the pushes cost the daemon: bytes and encoding time of each delta.
    driving = False
    pushes = push_bytes = 0
    encode_s = 0.0
    original_dumps = control.dumps  # type: ignore[attr-defined]

    def counting_dumps(message: Any) -> bytes:
        nonlocal pushes, push_bytes, encode_s
        t = time.perf_counter()
        data = original_dumps(message)
        if driving and isinstance(message, dict) and message.get("push") == "delta":
            encode_s += time.perf_counter() - t
            pushes += 1
            push_bytes += len(data)
        return data

    control.dumps = counting_dumps  # type: ignore[attr-defined]

    gc_passes: list[tuple[int, float]] = []
    gc_started = 0.0

    def on_gc(phase: str, info: dict[str, int]) -> None:
        nonlocal gc_started
        if phase == "start":
            gc_started = time.perf_counter()
        elif driving:
            gc_passes.append((info["generation"], time.perf_counter() - gc_started))

    gc.callbacks.append(on_gc)

    base_ns = engine.feed.clock.now_ns() + BASE_MARGIN_NS
    anchor_ns = time.monotonic_ns()
    say({"ready": True, "socket": str(server.path), "pid": os.getpid(),
         "base_ns": base_ns, "anchor_ns": anchor_ns})

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    sent_quotes = 0
    ingest_busy = 0.0
    driver_lag: deque[float] = deque(maxlen=100_000)

    async def drive(stop: asyncio.Event) -> None:
        # ui_refresh.py's driver; only the events' ts_ns differ (see the module doc).
        nonlocal sent_quotes, ingest_busy
        prices = {s: 100.0 + (i % 50) for i, s in enumerate(symbols)}
        start = time.monotonic()
        sent_batches = 0
        chooser = random.Random(7)
        ingest = engine.ingest
        while not stop.is_set():
            now = time.monotonic()
            due = int((now - start) / EVENTS_PERIOD_S) + 1
            while sent_batches < due:
                driver_lag.append(now - (start + sent_batches * EVENTS_PERIOD_S))
                t_in = time.monotonic_ns()
                ts = base_ns + (t_in - anchor_ns)
                batch: list[Quote | Trade] = []
                for symbol in chooser.sample(symbols, SYMBOLS_PER_BATCH):
                    price = prices[symbol] = round(prices[symbol] + 0.01, 2)
                    batch.append(Quote(symbol, ts, price - 0.01, price + 0.01, 100.0, 100.0))
                    batch.append(Trade(symbol, ts, price, 100.0))
                ingest(batch)
                ingest_busy += (time.monotonic_ns() - t_in) / 1e9
                sent_batches += 1
                sent_quotes += SYMBOLS_PER_BATCH
            await asyncio.sleep(max(0.0, start + sent_batches * EVENTS_PERIOD_S
                                    - time.monotonic()))

    try:
        if (await stdin.readline()).strip() != b"go":
            return
        stop = asyncio.Event()
        driving = True
        t0 = time.monotonic()
        task = asyncio.create_task(drive(stop))
        await stdin.readline()  # "stop"
        stop.set()
        await task
        driving = False
        wall = time.monotonic() - t0
        full = [s for g, s in gc_passes if g == 2]
        say({
            "seconds": round(wall, 2),
            "achieved_quotes_per_s": round(sent_quotes / wall),
            "driver_ingest_seconds": round(ingest_busy, 3),
            "driver_lateness_ms": {"p50": ms(percentile(list(driver_lag), 50)),
                                   "p99": ms(percentile(list(driver_lag), 99)),
                                   "max": ms(max(driver_lag)) if driver_lag else None},
            "pushes_sent": pushes,
            "push_bytes": push_bytes,
            "encode_seconds": round(encode_s, 3),
            "gc_passes": len(gc_passes),
            "gc_full_passes": len(full),
            "gc_seconds": round(sum(s for _, s in gc_passes), 3),
            "gc_full_max_ms": ms(max(full)) if full else None,
            "rss_mb": rss_mb(),
            "clients": server.clients,
        })
        await stdin.read()  # end of file: the parent is done
    finally:
        gc.callbacks.remove(on_gc)
        await server.stop()
        await engine.stop()


# ---------------------------------------------------------------------------- parent


def in_process_reference(seconds: float) -> dict[str, Any]:
    """ui_refresh.py itself, in a fresh interpreter: the same figures it prints."""
    done = subprocess.run([sys.executable, str(HERE / "ui_refresh.py"), "--seconds",
                           str(seconds)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ui_refresh.py failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


async def read_line(stream: asyncio.StreamReader, timeout: float, log: Path) -> dict[str, Any]:
    try:
        line = await asyncio.wait_for(stream.readline(), timeout)
    except TimeoutError:
        line = b""
    if not line:
        raise RuntimeError(f"the serving child said nothing; its stderr:\n{tail(log)}")
    message: dict[str, Any] = json.loads(line)
    return message


async def attached(seconds: float, home: Path, push_hz: float | None,
                   err: BinaryIO) -> dict[str, Any]:
    """The attached run; `err` takes the serving child's stderr."""
    import core.control_client as control_client
    from core.control_client import RemoteEngineClient
    from core.runtime import GC_THRESHOLDS
    from core.state import ChangeCursor, EngineDelta
    from tui.app import create_app
    from tui.widgets.quote_board import QuoteBoard

    settings = bench_settings(home, push_hz)
    log = home / "serve.stderr"
    setup_t0 = time.monotonic()
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), "--serve", "--home", str(home),
        *(["--push-hz", str(push_hz)] if push_hz is not None else []),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err)
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        ready = await read_line(child.stdout, CHILD_READY_TIMEOUT_S, log)
        offset_ns = ready["anchor_ns"] - ready["base_ns"]  # ts_ns + offset: ingest instant
        base_ns = ready["base_ns"]
        measuring = False

        # Bytes and decoding time of everything the daemon sent.
        received_bytes = 0
        decode_s = 0.0
        original_loads = control_client.loads  # type: ignore[attr-defined]

        def counting_loads(line: bytes | str) -> Any:
            nonlocal received_bytes, decode_s
            t = time.perf_counter()
            value = original_loads(line)
            if measuring:
                decode_s += time.perf_counter() - t
                received_bytes += len(line)
            return value

        control_client.loads = counting_loads  # type: ignore[attr-defined]

        arrivals: list[float] = []
        ingest_to_client: list[float] = []

        class CountingClient(RemoteEngineClient):
            """Counts the pushed deltas and the screen's pulls."""

            deltas = delta_rows = pulls = rows_pulled = 0

            def _add_delta(self, delta: EngineDelta) -> None:
                super()._add_delta(delta)
                if not measuring:
                    return
                now_ns = time.monotonic_ns()
                arrivals.append(now_ns / 1e9)
                self.deltas += 1
                self.delta_rows += len(delta.rows)
                for row in delta.rows:
                    if row.ts_ns >= base_ns:
                        ingest_to_client.append((now_ns - row.ts_ns - offset_ns) / 1e9)

            async def changes(self, cursor: ChangeCursor) -> EngineDelta:
                delta = await super().changes(cursor)
                if measuring:
                    self.pulls += 1
                    self.rows_pulled += len(delta.rows)
                return delta

        client = CountingClient(Path(ready["socket"]), reconnect=True)
        await client.connect()
        app = create_app(settings, client, tune_gc=True)  # as `tapedeck attach` runs it

        latencies: list[float] = []
        last_drawn: dict[str, int] = {}
        drawn_symbols: set[str] = set()
        board: QuoteBoard | None = None

        def probe(symbol: str, received_at: float) -> None:
            if board is None:
                return
            row = board.rows.get(symbol)
            if row is None or last_drawn.get(symbol) == row.ts_ns:
                return  # this row's content was drawn before
            last_drawn[symbol] = row.ts_ns
            if measuring and row.ts_ns >= base_ns:
                latencies.append((time.monotonic_ns() - row.ts_ns - offset_ns) / 1e9)
                drawn_symbols.add(symbol)

        loop_lag: deque[float] = deque(maxlen=100_000)

        async def loop_probe(stop: asyncio.Event) -> None:
            # How late a 10 ms timer runs in the screen's process (ui_refresh.py's
            # driver lateness is the same measure, with the injector in the loop).
            while not stop.is_set():
                due = time.monotonic() + EVENTS_PERIOD_S
                await asyncio.sleep(EVENTS_PERIOD_S)
                loop_lag.append(time.monotonic() - due)

        try:
            async with app.run_test(size=SCREEN) as pilot:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    screen = app.workstation
                    if screen is not None and screen.is_mounted and (
                            screen.first_quotes_at is not None):
                        board = screen.query_one(QuoteBoard)
                        if len(board.rows) >= SYMBOLS and all(
                                r.last == r.last for r in board.rows.values()):
                            break
                    await asyncio.sleep(0.05)
                else:
                    raise RuntimeError("the attached screen did not show quotes within 30 s")
                setup_s = time.monotonic() - setup_t0
                assert board is not None
                board.render_probe = probe
                await pilot.pause(0.5)
                while gc.get_threshold() != GC_THRESHOLDS and time.monotonic() < deadline:
                    await pilot.pause(0.05)
                visible_rows = max(0, min(len(board.symbols), board.size.height - 1))

                stop = asyncio.Event()
                lag_task = asyncio.create_task(loop_probe(stop))
                child.stdin.write(b"go\n")
                await child.stdin.drain()
                measuring = True
                wall0 = time.monotonic()
                cpu_parent0, cpu_child0 = cpu_seconds(), cpu_seconds(child.pid)
                await asyncio.sleep(seconds)
                wall1 = time.monotonic()
                cpu_parent1, cpu_child1 = cpu_seconds(), cpu_seconds(child.pid)
                measuring = False
                stop.set()
                await lag_task
                child.stdin.write(b"stop\n")
                await child.stdin.drain()
                served = await read_line(child.stdout, 30, log)
                rss_parent = rss_mb()
                link = client.connected
        finally:
            control_client.loads = original_loads  # type: ignore[attr-defined]
            await client.close()
    finally:
        if child.stdin is not None and not child.stdin.is_closing():
            child.stdin.close()
        try:
            code = await asyncio.wait_for(child.wait(), 30)
        except TimeoutError:
            child.kill()
            code = await child.wait()

    wall = wall1 - wall0
    assert None not in (cpu_parent0, cpu_parent1, cpu_child0, cpu_child1)
    parent_cpu = cpu_parent1 - cpu_parent0  # type: ignore[operator]
    child_cpu = cpu_child1 - cpu_child0  # type: ignore[operator]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    deltas = client.deltas
    return {
        "seconds": round(wall, 2),
        "deltas_per_s": round(deltas / wall, 2),
        "rows_per_delta": round(client.delta_rows / deltas, 1) if deltas else None,
        "delta_interval_ms": {"p50": ms(percentile(gaps, 50)), "p99": ms(percentile(gaps, 99)),
                              "max": ms(max(gaps)) if gaps else None},
        "push_hz_setting": settings.daemon.push_hz,
        "pulls_per_s": round(client.pulls / wall, 2),
        "rows_per_pull": round(client.rows_pulled / client.pulls, 1) if client.pulls else None,
        "latency_ms": {**spread(latencies, mean=True),
                       "what": "draw time minus the child's ingest instant of the quote the "
                               "drawn row shows; first draw of each new row content only"},
        "symbols_sampled": len(drawn_symbols),
        "visible_rows": visible_rows,
        "ingest_to_client_ms": {**spread(ingest_to_client),
                                "what": "arrival of the pushed delta in this process minus "
                                        "the ingest instant, per row of each delta"},
        "socket": {
            "bytes_per_s": round(received_bytes / wall),
            "bytes_per_delta": round(received_bytes / deltas) if deltas else None,
            "bytes_per_row": round(received_bytes / client.delta_rows)
            if client.delta_rows else None,
            "daemon_push_bytes_per_s": round(served["push_bytes"] / served["seconds"]),
        },
        "cpu": {
            "screen_process_share": round(parent_cpu / wall, 3),
            "daemon_process_share": round(child_cpu / wall, 3),
            "both_share": round((parent_cpu + child_cpu) / wall, 3),
            "screen_decode_wall_share": round(decode_s / wall, 3),
            "daemon_encode_wall_share": round(served["encode_seconds"] / served["seconds"], 3),
            "daemon_driver_ingest_share": round(
                served["driver_ingest_seconds"] / served["seconds"], 3),
            "how": "utime+stime of /proc/<pid>/stat over the loaded period / wall; the "
                   "daemon process includes the benchmark's injector. *_wall_share: wall "
                   "time inside core.wire's loads (every line received) and dumps (every "
                   "delta pushed) / wall, preemption included",
        },
        "rss_mb": {"screen_process": rss_parent, "daemon_process": served["rss_mb"]},
        "screen_loop_lateness_ms": {
            "p50": ms(percentile(list(loop_lag), 50)),
            "p99": ms(percentile(list(loop_lag), 99)),
            "max": ms(max(loop_lag)) if loop_lag else None,
            "what": "how late a 10 ms timer ran in the screen's process"},
        "daemon": {
            "achieved_quotes_per_s": served["achieved_quotes_per_s"],
            "driver_lateness_ms": served["driver_lateness_ms"],
            "pushes_sent_per_s": round(served["pushes_sent"] / served["seconds"], 2),
            "gc_passes": served["gc_passes"],
            "gc_full_passes": served["gc_full_passes"],
            "gc_seconds": served["gc_seconds"],
            "gc_full_max_ms": served["gc_full_max_ms"],
            "clients_at_end": served["clients"],
            "exit_code": code,
            "how": "engine + ControlServer in a child process, as `tapedeck daemon` "
                   "runs them, without its heartbeat and logging; no core.runtime.settle_heap "
                   "(the daemon does not call it)",
        },
        "connected_at_end": link,
        "setup_seconds": round(setup_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="loaded seconds of each of the two runs")
    parser.add_argument("--push-hz", type=float, default=None,
                        help="[daemon] push_hz of the attached run (default: the setting's)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.home, args.push_hz))
        return

    host = HostMeter()
    reference = in_process_reference(args.seconds)
    # Short paths: a Unix socket's path must stay under 107 bytes.
    home = Path(tempfile.mkdtemp(prefix="td-attach-", dir="/tmp"))
    try:
        isolate(home)
        runtime = home / "run"
        runtime.mkdir(mode=0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        with open(home / "serve.stderr", "wb") as err:
            result_attached = asyncio.run(attached(args.seconds, home, args.push_hz, err))
    finally:
        shutil.rmtree(home, ignore_errors=True)

    ref_latency = reference["latency_ms"]
    p99_diff = result_attached["latency_ms"]["p99"] - ref_latency["p99"]
    result: dict[str, Any] = {
        "name": "attach",
        "description": "an attached screen (daemon in another process, control socket) at "
                       "500 symbols and 5,000 quotes/s: deltas/s received and tick-to-screen "
                       "latency, against the in-process app (ui_refresh.py) in the same run",
        "attached": result_attached,
        "in_process": {
            "seconds": reference["seconds"],
            "latency_ms": {k: ref_latency[k] for k in
                           ("p50", "p90", "p99", "max", "mean", "samples")},
            "cpu_share_of_one_core": reference["cpu"]["share_of_one_core"],
            "pulls_per_s": reference["app"]["pulls_per_s_measured"],
            "rows_per_pull": reference["app"]["rows_per_pull"],
            "driver_lateness_ms": reference["load"]["driver_lateness_ms"],
            "achieved_quotes_per_s": reference["load"]["achieved_quotes_per_s"],
            "max_rss_mb": reference["memory"]["max_rss_mb"],
            "how": "bench/ui_refresh.py --seconds N, run first, in its own interpreter",
        },
        "latency_difference_ms": {
            k: round(result_attached["latency_ms"][k] - ref_latency[k], 2)
            for k in ("p50", "p90", "p99")},
        "cpu_ratio_attached_both_to_in_process": round(
            result_attached["cpu"]["both_share"] / reference["cpu"]["share_of_one_core"], 2),
        "target": {
            "p99_over_in_process_ms_max": GOAL_P99_OVER_IN_PROCESS_MS,
            "p99_over_in_process_ms": round(p99_diff, 2),
            "met": p99_diff <= GOAL_P99_OVER_IN_PROCESS_MS,
        },
    }
    host.report(result)
    emit(result)


if __name__ == "__main__":
    main()
