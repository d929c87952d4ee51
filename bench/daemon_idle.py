"""CPU of the real daemon at idle (market closed), alone and with one client attached.

`python -m tui.cli daemon --config <temp config>` with every XDG_* directory (data,
config, state, cache, runtime) in a temp folder. The feed is the default one, the
bundled replay, left running (not paused) and positioned at the close of Friday
2019-03-15 with `[replay] overnight_seconds` long: the replay then sits in its gap
between sessions, as it does every night of a replay (4 s by default), emitting
nothing, while every loop of the daemon runs as usual. Default watchlists.

Once the daemon answers on its socket (`RemoteEngineClient.connect`) and has settled,
its CPU share over `--seconds` (utime+stime of /proc/<pid>/stat, all threads, over
wall time):

- **idle**: no client;
- **one client**: a `RemoteEngineClient` that took a `snapshot()` (so it is subscribed
  and the daemon's push loop runs); deltas it received are counted (an idle market
  should send none).

The reference, measured over the same windows the same way, is a sleeping interpreter
(`python -c "import time; time.sleep(N)"`): the floor. The daemon is then stopped with
SIGTERM and its exit code reported.

Prints one JSON object on stdout. Never asserts on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _workload import HostMeter, cpu_seconds, emit, rss_mb

REPO = Path(__file__).resolve().parent.parent
TARGET_SHARE_MAX = 0.02  # of one core
READY_TIMEOUT_S = 90.0
CONFIG = """\
[feed]
provider = "replay"

[replay]
# The close of Friday 2019-03-15, then the gap to the next session: a day of wall time
# (by default the replay crosses a night in 4 s).
start = "2019-03-15"
start_time = "16:00"
overnight_seconds = 86400
resume = false
"""


def context_switches(pid: int) -> int | None:
    """Voluntary + involuntary context switches of the process's main thread (the event
    loop's): about one per wake-up when it sleeps between timers."""
    try:
        with open(f"/proc/{pid}/status") as status:
            total = 0
            for line in status:
                if line.startswith(("voluntary_ctxt_switches:",
                                    "nonvoluntary_ctxt_switches:")):
                    total += int(line.split()[1])
            return total
    except OSError:
        return None


def threads(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return None


class Window:
    """CPU share of some processes over one stretch of wall time."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.wall0 = time.monotonic()
        self.cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.switches0 = {name: context_switches(pid) for name, pid in pids.items()}

    def close(self) -> dict[str, Any]:
        wall = time.monotonic() - self.wall0
        out: dict[str, Any] = {"seconds": round(wall, 2)}
        for name, pid in self.pids.items():
            cpu1, before = cpu_seconds(pid), self.cpu0[name]
            switches1, switches0 = context_switches(pid), self.switches0[name]
            out[name] = {
                "share_of_one_core": None if cpu1 is None or before is None
                else round((cpu1 - before) / wall, 4),
                "cpu_seconds": None if cpu1 is None or before is None
                else round(cpu1 - before, 2),
                "main_thread_wakeups_per_s": None if switches1 is None or switches0 is None
                else round((switches1 - switches0) / wall, 1),
            }
        return out


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


def spawn(config: Path, log: Path, floor_seconds: float) -> tuple[
        subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """The daemon (its stderr into `log`), and the sleeping reference."""
    with open(log, "wb") as err:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "tui.cli", "daemon", "--config", str(config)],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    floor = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({floor_seconds})"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return daemon, floor


async def wait_for_daemon(path: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until the daemon answers a hello on its socket."""
    from core.control_client import DaemonUnavailable, RemoteEngineClient

    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited ({proc.returncode}):\n{tail(log)}")
        client = RemoteEngineClient(path, call_timeout_s=5)
        try:
            await client.connect()
        except DaemonUnavailable:
            if time.monotonic() - t0 > READY_TIMEOUT_S:
                raise RuntimeError(f"no answer on {path} within {READY_TIMEOUT_S:g} s") from None
            await asyncio.sleep(0.1)
            continue
        await client.close()
        return


async def measure(seconds: float, settle: float, home: Path) -> dict[str, Any]:
    from core.config import load_settings
    from core.control_client import RemoteEngineClient
    from core.control_paths import socket_path
    from core.state import EngineDelta

    config = home / "config.toml"
    config.write_text(CONFIG)
    settings = load_settings(config)
    path = socket_path(settings)
    log = home / "daemon.stderr"

    floor_seconds = 2 * (seconds + settle) + 30
    t_spawn = time.monotonic()
    daemon, floor = spawn(config, log, floor_seconds)
    try:
        await wait_for_daemon(path, daemon, log)
        ready_s = time.monotonic() - t_spawn
        await asyncio.sleep(settle)
        pids = {"daemon": daemon.pid, "floor": floor.pid}

        # -- no client
        window = Window(pids)
        await asyncio.sleep(seconds)
        idle = window.close()
        idle["daemon"]["rss_mb"] = rss_mb(daemon.pid)
        idle["daemon"]["threads"] = threads(daemon.pid)

        # -- one client, subscribed
        received: list[EngineDelta] = []

        class CountingClient(RemoteEngineClient):
            def _add_delta(self, delta: EngineDelta) -> None:
                super()._add_delta(delta)
                received.append(delta)

        client = CountingClient(path, client="bench idle")
        await client.connect()
        snapshot = await client.snapshot()
        await asyncio.sleep(settle)
        received.clear()
        window = Window({**pids, "bench_client": os.getpid()})
        await asyncio.sleep(seconds)
        attached = window.close()
        attached["deltas_received"] = len(received)
        attached["rows_received"] = sum(len(d.rows) for d in received)
        health = await client.status()
        await client.close()
    finally:
        stop_t0 = time.monotonic()
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        try:
            code: int | None = daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            code = None
        stop_s = time.monotonic() - stop_t0
        floor.kill()
        floor.wait()

    warnings = [line for line in log.read_text(errors="replace").splitlines()
                if "level=warning" in line or "level=error" in line]
    share = idle["daemon"]["share_of_one_core"]
    share_attached = attached["daemon"]["share_of_one_core"]
    return {
        "name": "daemon_idle",
        "description": "CPU of the real daemon (tapedeck daemon, default replay feed) at "
                       "idle, market closed: alone, and with one subscribed client",
        "idle": idle,
        "one_client": attached,
        "feed": {
            "provider": settings.feed.provider,
            "state": "replay running (not paused), at the close of 2019-03-15, in its gap "
                     f"between sessions ([replay] overnight_seconds = "
                     f"{settings.replay.overnight_seconds:g}); default watchlists",
            "paused": settings.replay.paused,
            "symbols": len(snapshot.rows),
            "feed_state": health.feed_state,
            "health_last_quote_age_s": None if health.last_quote_age_s is None
            else round(health.last_quote_age_s, 1),
            "health_note": "the health record's last_quote_age_s, not a quote's: the stale "
                           "watchdog refreshes every symbol's wall time each second while "
                           "the feed expects no updates",
            "market_phase": str(snapshot.status.phase),
            "replay_position": snapshot.status.replay,
            "clients_seen_by_daemon": health.clients,
        },
        "daemon": {
            "ready_seconds": round(ready_s, 2),
            "settle_seconds": settle,
            "stop_signal": "SIGTERM",
            "exit_code": code,
            "stop_seconds": round(stop_s, 2),
            "log_warnings": warnings[-5:],
            "push_hz_setting": settings.daemon.push_hz,
            "heartbeat_s_setting": settings.daemon.heartbeat_s,
        },
        "how": "utime+stime delta of /proc/<pid>/stat (every thread) / wall over the window; "
               "wake-ups: voluntary+involuntary context switches of the main thread",
        "target": {
            "share_of_one_core_max": TARGET_SHARE_MAX,
            "idle_share": share,
            "idle_met": share is not None and share < TARGET_SHARE_MAX,
            "one_client_share": share_attached,
            "one_client_met": share_attached is not None and share_attached < TARGET_SHARE_MAX,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="length of each measured window")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds to wait before each window")
    args = parser.parse_args()
    host = HostMeter()
    home = Path(tempfile.mkdtemp(prefix="td-idle-", dir="/tmp"))  # a short socket path
    try:
        for name in list(os.environ):
            if name.startswith("TAPEDECK_"):
                del os.environ[name]
        for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME",
                    "XDG_RUNTIME_DIR"):
            folder = home / var.lower()
            folder.mkdir(mode=0o700)
            os.environ[var] = str(folder)
        result = asyncio.run(measure(args.seconds, args.settle, home))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    host.report(result)
    emit(result)


if __name__ == "__main__":
    main()
