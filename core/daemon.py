"""The headless daemon: the engine with no screen, reachable over the control socket.

`tapedeck daemon` runs `Daemon.run`: open the profile's database (its lock keeps a
second engine off it), start the engine, listen on the control socket, write a health
record every heartbeat, and wait for a signal:

- SIGTERM, SIGINT: stop the feeds, flush the store, leave the broker's orders as they
  are (a good-till-canceled order keeps working at the venue), exit 0.
- SIGHUP: read the config again and apply its risk limits and notification rules;
  a config that does not load is reported and the running ones kept.

Logs go, structured, to a rotating file under the user log dir (one JSON object per
line) and to stderr (key=value, for journald or a terminal).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from core import __version__
from core.config import ConfigError
from core.control import ControlServer
from core.control_paths import ControlError, socket_path
from core.health import HealthRecord, health_of, save_health
from core.model import LogEvent, LogLevel
from core.notify import NotifyLevel
from core.runtime import settle_heap

if TYPE_CHECKING:
    from core.config import Settings
    from core.engine import Engine

log = logging.getLogger(__name__)
events_log = logging.getLogger("tapedeck.events")  # the trader's log lines, in the file

EXIT_OK = 0
EXIT_START_FAILED = 2
LOG_FILE_BYTES = 10_000_000
LOG_FILE_BACKUPS = 5
SETTLE_AFTER_S = 30.0  # at most: a feed that is slow to go live must not hold it off

_STANDARD_RECORD_KEYS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime"}


class JsonLines(logging.Formatter):
    """One JSON object per record: ts (UTC ISO), level, logger, msg, and any `extra`."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_RECORD_KEYS and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class KeyValues(logging.Formatter):
    """`ts=... level=... logger=... msg="..."` for stderr."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = (f"ts={stamp}Z level={record.levelname.lower()} logger={record.name} "
                f"msg={json.dumps(record.getMessage())}")
        for key, value in record.__dict__.items():
            if key not in _STANDARD_RECORD_KEYS and not key.startswith("_"):
                line += f" {key}={json.dumps(value, default=str)}"
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return line


def log_file_path(settings: Settings) -> Path:
    return Path(platformdirs.user_log_dir("tapedeck")) / f"{settings.store.profile}-daemon.log"


def configure_logging(settings: Settings, *, stderr: bool = True) -> Path | None:
    """Root logging to the rotating JSON file and to stderr; returns the file, or None
    when it cannot be written (the daemon runs on, logging to stderr only)."""
    root = logging.getLogger()
    root.setLevel(settings.logging.level.upper())
    path: Path | None = log_file_path(settings)
    assert path is not None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = RotatingFileHandler(
            path, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8")
        handler.setFormatter(JsonLines())
        root.addHandler(handler)
    except OSError as err:
        path = None
        print(f"tapedeck: cannot write the log file ({err.strerror}); logging to stderr only",
              file=sys.stderr)
    if stderr:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(KeyValues())
        root.addHandler(console)
    return path


def systemd_unit(executable: Sequence[str], *, config: Path | None = None,
                 profile: str | None = None) -> str:
    """A systemd user unit that runs the daemon (`tapedeck daemon --print-systemd-unit`);
    `executable` is the command that runs tapedeck."""
    command = [*executable, "daemon"]
    if config is not None:
        command += ["--config", str(Path(config).expanduser().resolve())]
    if profile:
        command += ["--profile", profile]
    name = profile or "default"
    return f"""\
# ~/.config/systemd/user/tapedeck.service
#   systemctl --user daemon-reload && systemctl --user enable --now tapedeck
#   loginctl enable-linger "$USER"   # keep it running after you log out
[Unit]
Description=tapedeck trading daemon (profile {name})
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={shlex.join(command)}
# Reload risk limits and notification rules from the config without a restart.
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM: the daemon stops the feeds, flushes the database and exits 0; orders at
# the broker stay as they are.
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=on-failure
RestartSec=5
Environment=PYTHONUNBUFFERED=1

[Install]
WantedBy=default.target
"""


class Daemon:
    def __init__(self, settings: Settings, *, reload: Callable[[], Settings] | None = None,
                 engine_options: dict[str, Any] | None = None) -> None:
        """`reload`: reads the config again (SIGHUP); it raises ConfigError for a
        config that does not load."""
        self.settings = settings
        self._reload = reload
        self._engine_options = engine_options or {}
        self.engine: Engine | None = None
        self.server: ControlServer | None = None
        self.started_ns = time.time_ns()
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ health

    def health(self, *, running: bool = True) -> HealthRecord:
        assert self.engine is not None
        return health_of(
            self.engine, started_ns=self.started_ns,
            clients=self.server.attached if self.server else 0,
            socket=str(self.server.path) if self.server else "",
            heartbeat_s=self.settings.daemon.heartbeat_s, version=__version__,
            running=running)

    async def _heartbeat(self) -> None:
        assert self.engine is not None
        while True:
            try:
                await save_health(self.engine.store, self.health())
            except Exception as err:  # a full disk must not stop the trading
                log.warning("health record not written: %s", err)
            await asyncio.sleep(self.settings.daemon.heartbeat_s)

    @staticmethod
    async def _settle(engine: Engine) -> None:
        """Once the first prices are in, start-up is over: settle the heap as the
        workstation does (`core.runtime.settle_heap`), or full collections of the
        start-up heap stall the pushes to attached screens."""
        await engine.wait_until_live(SETTLE_AFTER_S)
        settle_heap()

    # ------------------------------------------------------------------ run

    async def run(self) -> int:
        """Run until SIGTERM or SIGINT; the exit code. Start-up problems (the database
        is locked or damaged, the feed or broker will not load, the socket cannot be
        made) are logged as one clear line and give EXIT_START_FAILED."""
        from core.brokers.base import BrokerError
        from core.engine import Engine
        from core.feeds import FeedError
        from core.store import StoreError

        try:
            engine = await Engine.open(self.settings, **self._engine_options)
        except (StoreError, FeedError, BrokerError) as err:
            log.error("not started: %s", err)
            return EXIT_START_FAILED
        self.engine = engine
        engine.add_log_listener(_to_log_file, forwarded=False)
        try:
            await engine.start()
            self.server = ControlServer(engine, self.settings.daemon,
                                        socket_path(self.settings), status=self.health)
            await self.server.start()
        except (ControlError, BrokerError) as err:
            log.error("not started: %s", err)
            await engine.stop()
            return EXIT_START_FAILED
        self._install_signals()
        self._tasks = [asyncio.create_task(self._heartbeat(), name="heartbeat"),
                       asyncio.create_task(self._settle(engine), name="settle-heap")]
        log.info("tapedeck daemon %s running: pid %d, profile %s, database %s, socket %s",
                 __version__, os.getpid(), self.settings.store.profile, engine.store.path,
                 self.server.path, extra={"pid": os.getpid()})
        engine.notifier.notify(
            "daemon_start", "tapedeck daemon started",
            f"pid {os.getpid()}, profile {self.settings.store.profile}, "
            f"{engine.feed.name} feed, {engine.broker.name} broker", NotifyLevel.INFO)
        try:
            await self._stop.wait()
        finally:
            await self._shutdown()
        return EXIT_OK

    def request_stop(self, reason: str) -> None:
        self._stop_reason = reason
        self._stop.set()

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self.request_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self.reload)

    async def _shutdown(self) -> None:
        engine = self.engine
        assert engine is not None
        log.info("stopping (%s): the broker's orders are left as they are",
                 self._stop_reason or "asked to")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        if self.server is not None:
            await self.server.stop()
        engine.notifier.notify("daemon_stop", "tapedeck daemon stopped",
                               f"pid {os.getpid()}: {self._stop_reason or 'asked to stop'}",
                               NotifyLevel.INFO)
        with contextlib.suppress(Exception):
            await save_health(engine.store, self.health(running=False))
        await engine.stop()  # the feeds, the notifier's last sends, then the store
        log.info("stopped")

    # ------------------------------------------------------------------ SIGHUP

    def reload(self) -> None:
        """Apply the config's risk limits and notification rules as they are now."""
        engine = self.engine
        if engine is None or self._reload is None:
            return
        try:
            fresh = self._reload()
        except ConfigError as err:
            message = f"config not reloaded, the running settings are kept: {err}"
            log.error("%s", message)
            engine.log(LogLevel.ERROR, "daemon", message)
            return
        changed = []
        if fresh.risk != engine.settings.risk:
            engine.settings.risk = fresh.risk
            engine.desk.risk.settings = fresh.risk
            changed.append("risk limits")
        if fresh.notify != engine.settings.notify:
            engine.settings.notify = fresh.notify
            engine.notifier.configure(fresh.notify)
            changed.append("notification rules")
        message = ("reloaded " + " and ".join(changed) if changed
                   else "config reloaded: risk limits and notification rules unchanged")
        log.info("%s", message)
        engine.log(LogLevel.INFO, "daemon", message)


def _to_log_file(event: LogEvent) -> None:
    """The trader's log lines (fills, risk, the feed) into the daemon's log."""
    events_log.log(int(event.level), "%s", event.message, extra={"source": event.source})
