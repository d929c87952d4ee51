"""Startup time: `tapedeck --help`, and time to the first frame showing live quotes.

(a) `tapedeck --help` (the console script next to sys.executable) run as a subprocess,
    against `python -c pass` (the interpreter floor), interleaved, several times each.
    A subprocess also checks that importing `tui.cli` pulls in neither textual nor pandas.
(b) A fresh interpreter starts the workstation headless (200x60) the way `tui/cli.py`'s
    `_run_workstation` does (load settings, open and start the Engine, wait up to
    `FIRST_PRICES_WAIT_S` for the feed's first batch, `create_app` with an
    InProcessEngineClient), with default settings (replay feed) and a fresh temp
    config/data dir, and reports when `WorkstationScreen.first_quotes_at` is set (polled
    every 2 ms) and when the QuoteBoard first draws a row with a price. Times are taken
    from the parent's spawn (so interpreter start and imports count) and from the top of
    the child's script.

Prints one JSON object on stdout. Never asserts on timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _workload import StealMeter

TARGET_HELP_S = 0.3
TARGET_FIRST_QUOTES_S = 1.5
SCREEN = (200, 60)

# The child of (b). It takes its clocks before any heavy import.
CHILD = r"""
import time
T0_WALL, T0_MONO = time.time(), time.monotonic()
import asyncio, json, sys

marks = {}

def mark(name):
    marks[name] = time.time()

def main():
    from tui.cli import load
    settings = load()
    mark("settings_loaded")
    from core.client import InProcessEngineClient
    from core.engine import Engine
    from tui.app import create_app
    from tui.widgets.quote_board import QuoteBoard
    mark("imports_done")

    # Note when the board first draws a row that shows a price.
    original = QuoteBoard.render_line

    def render_line(self, y):
        strip = original(self, y)
        if "first_row_drawn" not in marks and y > 0:
            index = y - 1 + self.scroll_offset.y
            if index < len(self._order):
                row = self.rows.get(self._order[index])
                if row is not None and row.last == row.last:
                    mark("first_row_drawn")
        return strip

    QuoteBoard.render_line = render_line

    async def run():
        engine = await Engine.open(settings)
        mark("engine_opened")
        try:
            await engine.start()
            mark("engine_started")
            from tui.cli import FIRST_PRICES_WAIT_S
            await engine.wait_until_live(FIRST_PRICES_WAIT_S)
            mark("engine_live")
            app = create_app(settings, InProcessEngineClient(engine), tune_gc=True)

            async def watch():
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    screen = app.workstation
                    if screen is not None and "screen_created" not in marks:
                        mark("screen_created")
                    if (screen is not None and screen.is_mounted
                            and "screen_mounted" not in marks):
                        mark("screen_mounted")
                    if "engine_has_prices_polled" not in marks and any(
                            state.last == state.last
                            for state in engine.market.states.values()):
                        mark("engine_has_prices_polled")
                    if screen is not None and screen.first_quotes_at is not None:
                        marks["first_quotes_at"] = T0_WALL + (screen.first_quotes_at - T0_MONO)
                        marks["first_quotes_polled"] = time.time()
                        break
                    await asyncio.sleep(0.002)
                # Give the first drawn row a moment if it has not happened yet.
                until = time.monotonic() + 2
                while "first_row_drawn" not in marks and time.monotonic() < until:
                    await asyncio.sleep(0.002)
                app.exit()

            watcher = asyncio.create_task(watch())
            await app.run_async(headless=True, size=SIZE)
            watcher.cancel()
            mark("app_exited")
        finally:
            await engine.stop()
        mark("engine_stopped")

    asyncio.run(run())

main()
sys.stdout.write(json.dumps({"t0_wall": T0_WALL, "marks": marks}) + "\n")
"""


def isolated_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPEDECK_")}
    env["TAPEDECK_CONFIG"] = str(home / "config.toml")
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env[var] = str(home / var.lower())
    env["TEXTUAL_ANIMATIONS"] = "none"
    return env


def timed_run(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def stats(values: list[float]) -> dict[str, object]:
    return {
        "best_s": round(min(values), 4),
        "median_s": round(statistics.median(values), 4),
        "runs_s": [round(v, 4) for v in values],
    }


def help_time(runs: int, env: dict[str, str]) -> dict[str, object]:
    tapedeck = Path(sys.executable).with_name("tapedeck")
    help_times, floor_times = [], []
    # One untimed run of each so the first timed one does not pay for a cold disk cache.
    timed_run([str(tapedeck), "--help"], env)
    timed_run([sys.executable, "-c", "pass"], env)
    for _ in range(runs):
        help_times.append(timed_run([str(tapedeck), "--help"], env))
        floor_times.append(timed_run([sys.executable, "-c", "pass"], env))
    check = subprocess.run(
        [sys.executable, "-c",
         "import sys, json, time\nt = time.perf_counter()\nimport tui.cli\n"
         "t = time.perf_counter() - t\n"
         "heavy = ['textual', 'pandas', 'numpy', 'aiosqlite', 'pydantic', 'core.engine']\n"
         "print(json.dumps({'loaded': {m: m in sys.modules for m in heavy}, 'import_s': t}))"],
        env=env, check=True, capture_output=True, text=True,
    )
    imported = json.loads(check.stdout)
    help_stats = stats(help_times)
    floor_stats = stats(floor_times)
    return {
        "command": f"{tapedeck} --help",
        **help_stats,
        "reference_python_c_pass": floor_stats,
        "help_minus_floor_median_s": round(
            statistics.median(help_times) - statistics.median(floor_times), 4),
        "help_over_floor_median_ratio": round(
            statistics.median(help_times) / statistics.median(floor_times), 2),
        "light_cli_import": not (imported["loaded"]["textual"] or imported["loaded"]["pandas"]),
        "modules_loaded_by_importing_tui_cli": imported["loaded"],
        "import_tui_cli_s": round(imported["import_s"], 4),
    }


def first_quotes(runs: int) -> dict[str, object]:
    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="tapedeck-bench-") as tmp:
            env = isolated_env(Path(tmp))
            code = CHILD.replace("SIZE)", f"{SCREEN!r})")
            spawn = time.time()
            done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                  text=True, timeout=60)
            total = time.time() - spawn
        if done.returncode != 0:
            results.append({"error": done.stderr.strip().splitlines()[-5:],
                            "returncode": done.returncode})
            continue
        child = json.loads(done.stdout.strip().splitlines()[-1])
        marks = child["marks"]
        from_spawn = {name: round(at - spawn, 4) for name, at in
                      sorted(marks.items(), key=lambda item: item[1])}
        results.append({
            "first_quotes_s": from_spawn.get("first_quotes_at"),
            "first_row_drawn_s": from_spawn.get("first_row_drawn"),
            "interpreter_to_script_top_s": round(child["t0_wall"] - spawn, 4),
            "first_quotes_from_script_top_s": round(
                marks["first_quotes_at"] - child["t0_wall"], 4)
            if "first_quotes_at" in marks else None,
            "milestones_from_spawn_s": from_spawn,
            "process_total_s": round(total, 3),
        })
    good = [r["first_quotes_s"] for r in results if r.get("first_quotes_s") is not None]
    drawn = [r["first_row_drawn_s"] for r in results if r.get("first_row_drawn_s") is not None]
    return {
        "what": "process spawn -> WorkstationScreen.first_quotes_at (a pull delivered rows "
                "with prices); first_row_drawn: the QuoteBoard drew a row with a price",
        "settings": "defaults (replay feed), fresh temp config and database",
        "screen": f"{SCREEN[0]}x{SCREEN[1]} headless",
        "best_s": round(min(good), 4) if good else None,
        "median_s": round(statistics.median(good), 4) if good else None,
        "first_row_drawn_median_s": round(statistics.median(drawn), 4) if drawn else None,
        "runs": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--help-runs", type=int, default=5)
    parser.add_argument("--app-runs", type=int, default=3)
    args = parser.parse_args()
    steal = StealMeter()
    with tempfile.TemporaryDirectory(prefix="tapedeck-bench-") as tmp:
        help_result = help_time(args.help_runs, isolated_env(Path(tmp)))
    app_result = first_quotes(args.app_runs)
    result = {
        "name": "startup",
        "help": help_result,
        "first_frame_with_quotes": app_result,
        "target": {
            "help_s_max": TARGET_HELP_S,
            "help_median_meets": help_result["median_s"] <= TARGET_HELP_S,
            "first_quotes_s_max": TARGET_FIRST_QUOTES_S,
            "first_quotes_median_meets": (app_result["median_s"] is not None
                                          and app_result["median_s"] <= TARGET_FIRST_QUOTES_S),
        },
        "python": sys.version.split()[0],
        "host_cpu_steal_share": steal.share(),
        "cpus": os.cpu_count(),
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
