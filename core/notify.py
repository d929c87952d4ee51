"""Notifications through apprise: fills, rejects, the trading state, the kill switch, scan
hits, strategy signals, the feed going down and coming back, the daemon's start and stop
and errors, sent to the trader's desktop and phone.

The engine's side is cheap: a bus handler formats a message and calls `notify`, which
routes it by the rules, holds it back in quiet hours, drops a repeat (de-duplication),
throttles a burst and appends it to each target's bounded queue. Nothing there awaits or
touches the network.

Each target (one `apprise.Apprise`, so success is known per target) has its own sender
task, so a slow or dead service delays only itself. apprise sends are blocking: they run
on a small pool of our own (the default executor is for scans and history loads) under
a timeout. A failure is logged to the trader's log pane, never raised and never retried;
the target is then cooled down (`cooldown_s`: its messages are dropped and counted, but
for critical ones), so a dead service costs one attempt and one log line per cool-down.

Queues: at most `QUEUE_SIZE` messages per target. Overflow policy: the oldest message of
the lowest level goes (a new message less urgent than all of them is the one dropped);
drops are counted and logged once per episode. Throttle: at most one message per kind and
target per `throttle_s`; the ones held back are counted and summed up in one message when
the window ends. Critical messages (the kill switch, an automatic halt) are never
throttled.

apprise is imported only when a target is configured (about 0.1 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

from core.config_notify import (
    ALL,
    KINDS,
    NotifyLevel,
    NotifySettings,
    level_of,
)
from core.model import NS_PER_SECOND, Fill, LogEvent, LogLevel, OrderStatus
from core.notify_apprise import build, config_file_groups, deliver, scrub, secrets
from core.notify_messages import (
    DEFAULT_LEVELS,
    Message,
    error_message,
    feed_message,
    fill_message,
    kill_message,
    quiet_hours_summary,
    reject_message,
    sample,
    scan_hit_message,
    signal_message,
    state_message,
    summary,
)
from core.orders import Order, OrderEvent
from core.risk import StateChange
from core.scan_service import ScanHit
from core.state import FeedChange
from core.strategies.runner import Signal
from core.trading import KillReport

if TYPE_CHECKING:
    import apprise

    from core.bus import Bus

__all__ = ["DEFAULT_LEVELS", "KINDS", "Delivery", "LogLine", "Message", "Notifier",
           "NotifyLevel", "zone_for"]

log = logging.getLogger(__name__)

QUEUE_SIZE = 100
SEND_THREADS = 8
# Waiting a little longer than apprise's own deadline lets it report the timeout itself.
WAIT_GRACE_S = 0.5
DEDUPE_LIMIT = 1_000
HELD_TITLES = 8  # titles of held-back messages repeated in the summary
SOURCE = "notify"

def zone_for(name: str) -> tzinfo | None:
    """The zone of `[ui] timezone` ("local" or an IANA name); None for "local", which is
    the system's local time looked up at each use (so it follows daylight saving)."""
    if name == "local":
        return None
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


@dataclass(frozen=True, slots=True)
class Delivery:
    """How one message to one target went (`send_test`)."""

    target: str
    kind: str
    ok: bool
    reason: str = ""


@dataclass(slots=True)
class _Window:
    """One kind's throttle window at one target."""

    opened: float
    held: int = 0
    level: NotifyLevel = NotifyLevel.INFO
    titles: deque[str] = field(default_factory=lambda: deque(maxlen=HELD_TITLES))
    timer: asyncio.TimerHandle | None = None


class _Target:
    """A named destination: its apprise object, its queue and its health."""

    def __init__(self, name: str, urls: list[str], problem: str = "") -> None:
        self.name = name
        self.urls = urls
        self.problem = problem  # why it cannot send at all (a bad URL, an unread file)
        self.services: apprise.Apprise | None = None
        self.secrets = secrets(urls)
        self.queue: deque[Message] = deque()
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.task: asyncio.Task[None] | None = None
        self.cooldown_until = 0.0
        self.failing = False
        self.dropped_cooling = 0
        self.dropped_full = 0

    @property
    def spec(self) -> tuple[tuple[str, ...], str]:
        return tuple(self.urls), self.problem


LogLine = Callable[[LogLevel, str, str], None]


class Notifier:
    def __init__(
        self,
        settings: NotifySettings,
        *,
        log_line: LogLine,
        zone: tzinfo | None,
        wall_now_ns: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log_line = log_line
        self._zone = zone
        self._wall_now_ns = wall_now_ns
        self._monotonic = monotonic
        self._targets: dict[str, _Target] = {}
        self._routes: dict[tuple[str, NotifyLevel], dict[str, float]] = {}
        self._windows: dict[tuple[str, str], _Window] = {}
        self._recent: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._quiet_held: dict[str, Counter[str]] = {}
        self._unsubscribe: list[Callable[[], None]] = []
        self._orders: Callable[[str], Order | None] = lambda _: None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._pool: ThreadPoolExecutor | None = None
        self._running = False
        self.deduplicated = 0
        self.throttled = 0
        self.dropped = 0
        self.sent = 0
        self.failed = 0
        self.configure(settings)

    # ------------------------------------------------------------------ settings

    def configure(self, settings: NotifySettings) -> None:
        """Take new settings (the daemon's SIGHUP): rules and quiet hours at once; a
        target whose URL did not change keeps its queue, a removed one drops its queue."""
        self.settings = settings
        self._quiet = settings.quiet_window()
        self._quiet_min = level_of(settings.quiet_min_level)
        self._routes.clear()
        wanted = self._read_targets(settings)
        for name in list(self._targets):
            old = self._targets[name]
            if name in wanted and wanted[name].spec == old.spec:
                continue
            self._remove_target(old)
        for name, target in wanted.items():
            if name in self._targets:
                continue
            if target.problem:
                self._log_line(LogLevel.WARNING, SOURCE, f"target {name}: {target.problem}")
            self._targets[name] = target
            if self._running:
                self._start_target(target)
        for key in [key for key in self._windows if key[1] not in self._targets]:
            self._close_window(key)
        names = {name for rule in settings.rules for name in rule.targets} - {ALL}
        missing = sorted(names - set(self._targets))
        if missing and self._targets:
            self._log_line(LogLevel.WARNING, SOURCE, "the rules name targets that do not "
                           f"exist: {', '.join(missing)}")

    def _read_targets(self, settings: NotifySettings) -> dict[str, _Target]:
        """The targets the settings describe, each with its apprise object built."""
        groups: dict[str, list[str]] = {name: [url] for name, url in settings.targets.items()}
        if settings.config_file is not None:
            from_file, problem = config_file_groups(settings.config_file)
            if problem:
                self._log_line(LogLevel.WARNING, SOURCE, problem)
            for name, urls in from_file.items():
                groups.setdefault(name, []).extend(urls)
        targets: dict[str, _Target] = {}
        for name, urls in groups.items():
            existing = self._targets.get(name)
            if existing is not None and existing.urls == urls and not existing.problem:
                targets[name] = existing
                continue
            services, problem = build(urls) if urls else (None, "no URL")
            target = _Target(name, urls, problem)
            target.services = services
            targets[name] = target
        return targets

    def _remove_target(self, target: _Target) -> None:
        del self._targets[target.name]
        if target.task is not None:
            target.task.cancel()
        if target.queue:
            self._log_line(LogLevel.INFO, SOURCE, f"target {target.name} removed: "
                           f"{len(target.queue)} messages to it dropped")

    def target_names(self) -> list[str]:
        return list(self._targets)

    def target_problems(self) -> dict[str, str]:
        return {name: t.problem for name, t in self._targets.items() if t.problem}

    def _route(self, kind: str, level: NotifyLevel) -> dict[str, float]:
        """Target name -> throttle seconds for a message of this kind and level."""
        key = (kind, level)
        route = self._routes.get(key)
        if route is not None:
            return route
        settings = self.settings
        route = {}
        if not settings.rules:
            route = dict.fromkeys(self._targets, settings.throttle_s)
        for rule in settings.rules:
            if level < level_of(rule.min_level):
                continue
            if ALL not in rule.kinds and kind not in rule.kinds:
                continue
            throttle = settings.throttle_s if rule.throttle_s is None else rule.throttle_s
            names = self._targets if ALL in rule.targets else rule.targets
            for name in names:
                if name in self._targets:
                    # Two rules reaching one target: the more permissive throttle wins.
                    route[name] = min(route.get(name, throttle), throttle)
        self._routes[key] = route
        return route

    # ------------------------------------------------------------------ the engine's side

    def attach(self, bus: Bus, *, orders: Callable[[str], Order | None] | None = None) -> None:
        """Subscribe to the engine's events. `orders` looks an order up by its client id,
        so a reject can say what was rejected."""
        if orders is not None:
            self._orders = orders
        self._unsubscribe += [
            bus.subscribe(Fill, self._on_fill),
            bus.subscribe(OrderEvent, self._on_order_event),
            bus.subscribe(StateChange, self._on_state_change),
            bus.subscribe(KillReport, self._on_kill),
            bus.subscribe(ScanHit, self._on_scan_hit),
            bus.subscribe(Signal, self._on_signal),
            bus.subscribe(FeedChange, self._on_feed_change),
        ]

    def detach(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []

    @property
    def active(self) -> bool:
        return self.settings.enabled and bool(self._targets)

    def on_log(self, event: LogEvent) -> None:
        """An engine log line (any thread): errors become kind `error`."""
        if event.level >= LogLevel.ERROR and event.source != SOURCE and self.active:
            self.post(error_message(event, self._clock))

    def _on_fill(self, fill: Fill) -> None:
        if self.active:
            self.post(fill_message(fill, self._orders(fill.client_order_id), self._clock))

    def _on_order_event(self, event: OrderEvent) -> None:
        if event.status == OrderStatus.REJECTED and self.active:
            self.post(reject_message(event, self._orders(event.client_order_id),
                                     self._clock))

    def _on_state_change(self, change: StateChange) -> None:
        if self.active:
            self.post(state_message(change))

    def _on_kill(self, report: KillReport) -> None:
        if self.active:
            self.post(kill_message(report))

    def _on_scan_hit(self, hit: ScanHit) -> None:
        if self.active:
            self.post(scan_hit_message(hit))

    def _on_signal(self, signal: Signal) -> None:
        if self.active:
            self.post(signal_message(signal, self._clock))

    def _on_feed_change(self, change: FeedChange) -> None:
        if self.active:
            self.post(feed_message(change))

    def _clock(self, ts_ns: int) -> str:
        moment = datetime.fromtimestamp(ts_ns / NS_PER_SECOND, self._zone)
        return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()

    # ------------------------------------------------------------------ routing

    def post(self, message: Message) -> None:
        self.notify(message.kind, message.title, message.body, message.level)

    def notify(self, kind: str, title: str, body: str,
               level: NotifyLevel = NotifyLevel.INFO) -> None:
        """Route, filter and enqueue one message; returns at once (any thread)."""
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            with contextlib.suppress(RuntimeError):  # the loop has closed: too late
                loop.call_soon_threadsafe(self.notify, kind, title, body, level)
            return
        if not self.active:
            return
        route = self._route(kind, level)
        if not route:
            return
        if self._in_quiet_hours():
            if level < self._quiet_min:
                for name in route:
                    self._quiet_held.setdefault(name, Counter())[kind] += 1
                return
        elif self._quiet_held:
            self._say_quiet_hours_over()
        now = self._monotonic()
        if self._repeated((kind, title, body), now):
            self.deduplicated += 1
            return
        message = Message(kind, title, body, level)
        for name, throttle_s in route.items():
            self._throttle(name, message, throttle_s, now)

    def _in_quiet_hours(self) -> bool:
        if self._quiet is None:
            return False
        start, end = self._quiet
        moment = datetime.fromtimestamp(self._wall_now_ns() / NS_PER_SECOND, self._zone)
        now = moment.time().replace(tzinfo=None)
        return start <= now < end if start < end else (now >= start or now < end)

    def _say_quiet_hours_over(self) -> None:
        held, self._quiet_held = self._quiet_held, {}
        for name, counts in held.items():
            self._enqueue(name, quiet_hours_summary(dict(counts)))

    def _repeated(self, key: tuple[str, str, str], now: float) -> bool:
        window = self.settings.dedupe_s
        if window <= 0:
            return False
        recent = self._recent
        while recent:
            oldest_key, seen = next(iter(recent.items()))
            if now - seen < window and len(recent) < DEDUPE_LIMIT:
                break
            del recent[oldest_key]
        if key in recent:
            return True
        recent[key] = now
        return False

    def _throttle(self, name: str, message: Message, throttle_s: float, now: float) -> None:
        if throttle_s <= 0 or message.level >= NotifyLevel.CRITICAL:
            self._enqueue(name, message)
            return
        key = (message.kind, name)
        window = self._windows.get(key)
        if window is not None and now - window.opened < throttle_s:
            window.held += 1
            window.level = max(window.level, message.level)
            window.titles.append(message.title)
            self.throttled += 1
            if window.timer is None and self._loop is not None:
                window.timer = self._loop.call_later(
                    window.opened + throttle_s - now, self._end_window, key)
            return
        if window is not None and window.held:
            # No loop ran the window's end (not started yet): sum it up now.
            self._enqueue(name, _summary(message.kind, window))
        self._windows[key] = _Window(opened=now)
        self._enqueue(name, message)

    def _end_window(self, key: tuple[str, str]) -> None:
        window = self._windows.get(key)
        if window is None:
            return
        window.timer = None
        if window.held:
            self._enqueue(key[1], _summary(key[0], window))
            # The summary opens the next window: a steady storm is one message a window.
            self._windows[key] = _Window(opened=self._monotonic())

    def _close_window(self, key: tuple[str, str]) -> None:
        window = self._windows.pop(key, None)
        if window is not None and window.timer is not None:
            window.timer.cancel()

    def _enqueue(self, name: str, message: Message) -> None:
        target = self._targets.get(name)
        if target is None or target.problem:  # its problem was logged when it was read
            return
        queue = target.queue
        if len(queue) >= QUEUE_SIZE:
            lowest = min(queue, key=lambda queued: queued.level)
            self.dropped += 1
            target.dropped_full += 1
            if target.dropped_full == 1:
                self._log_line(LogLevel.WARNING, SOURCE, f"{name} is behind: dropping its "
                               "least urgent messages")
            if message.level < lowest.level:
                return
            queue.remove(lowest)  # the oldest of the lowest level
        queue.append(message)
        target.idle.clear()
        target.wake.set()

    # ------------------------------------------------------------------ sending

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._running = True
        for target in self._targets.values():
            self._start_target(target)

    def _start_target(self, target: _Target) -> None:
        if (target.task is None or target.task.done()) and self._loop is not None:
            target.task = self._loop.create_task(self._run_target(target),
                                                  name=f"notify-{target.name}")

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Give what is queued (a daemon_stop, the held-back summaries) `timeout_s` to go
        out, then give up on the rest."""
        for key, window in list(self._windows.items()):
            if window.timer is not None:
                window.timer.cancel()
                self._end_window(key)
        self._windows.clear()
        self._running = False
        targets = list(self._targets.values())
        waiting = [target.idle.wait() for target in targets if target.task is not None]
        if waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waiting), timeout_s)
        left = 0
        for target in targets:
            left += len(target.queue)
            target.queue.clear()
            if target.task is not None:
                target.task.cancel()
                with contextlib.suppress(BaseException):
                    await target.task
                target.task = None
            target.idle.set()
        if left:
            self._log_line(LogLevel.WARNING, SOURCE,
                           f"{left} notifications were not sent before the shutdown")
        if self._pool is not None:
            # A send still in flight is abandoned, not waited for (apprise's own deadline
            # ends it).
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._loop = None

    async def _run_target(self, target: _Target) -> None:
        while True:
            while not target.queue:
                self._caught_up(target)
                target.idle.set()
                target.wake.clear()
                await target.wake.wait()
            message = target.queue.popleft()
            now = self._monotonic()
            if now < target.cooldown_until and message.level < NotifyLevel.CRITICAL:
                target.dropped_cooling += 1
                self.dropped += 1
                continue
            ok, reason = await self._send(target, message)
            if ok:
                self.sent += 1
                if target.failing:
                    target.failing = False
                    dropped = target.dropped_cooling
                    target.dropped_cooling = 0
                    extra = f" ({dropped} messages were dropped meanwhile)" if dropped else ""
                    self._log_line(LogLevel.INFO, SOURCE,
                                   f"{target.name} is sending again{extra}")
                continue
            self.failed += 1
            target.failing = True
            cooldown = self.settings.cooldown_s
            target.cooldown_until = self._monotonic() + cooldown
            pause = (f"; nothing but critical messages go to {target.name} for "
                     f"{cooldown:g} s" if cooldown > 0 else "")
            self._log_line(LogLevel.WARNING, SOURCE, f"{target.name}: the {message.kind} "
                           f"message was not sent: {reason}{pause}")

    def _caught_up(self, target: _Target) -> None:
        if target.dropped_full:
            self._log_line(LogLevel.WARNING, SOURCE, f"{target.name} caught up; "
                           f"{target.dropped_full} messages to it were dropped")
            target.dropped_full = 0

    async def _send(self, target: _Target, message: Message,
                    services: apprise.Apprise | None = None) -> tuple[bool, str]:
        """Send on our pool under a timeout; never raises. (ok, reason)"""
        if services is None:
            services = target.services
        if services is None:
            return False, target.problem or "not configured"
        timeout_s = self.settings.timeout_s
        if self._pool is None:
            self._pool = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="notify")
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._pool, deliver, services, message, timeout_s)
            ok, reason = await asyncio.wait_for(future, timeout_s + WAIT_GRACE_S)
        except TimeoutError:
            ok, reason = False, f"no answer within {timeout_s:g} s"
        except Exception as err:  # anything at all: a notification never breaks the engine
            log.debug("notify: sending to %s failed", target.name, exc_info=True)
            ok, reason = False, f"{type(err).__name__}: {err}"
        if not ok:
            reason = scrub(reason, target.secrets)
            log.debug("notify: %s: %s not sent: %s", target.name, message.kind, reason)
        return ok, reason

    async def send_test(self, kinds: Sequence[str] | None = None) -> list[Delivery]:
        """One sample message of each kind (or of `kinds`) to each target a rule routes
        it to, past throttling, de-duplication and quiet hours. A target's first failure
        ends its test: the rest would only wait for the same dead service."""
        chosen = list(kinds) if kinds else list(KINDS)
        unknown = [kind for kind in chosen if kind not in KINDS]
        if unknown:
            raise ValueError(f"unknown kind {unknown[0]!r}: the kinds are {', '.join(KINDS)}")
        plan: dict[str, list[Message]] = {}
        for kind in chosen:
            sample_message = sample(kind)
            for name in self._route(kind, sample_message.level):
                plan.setdefault(name, []).append(sample_message)

        async def run(name: str, messages: list[Message]) -> list[Delivery]:
            target = self._targets[name]
            done: list[Delivery] = []
            for index, message in enumerate(messages):
                # A fresh apprise object per message: the test is a burst, which a
                # long-lived one would space out by the service's request interval.
                fresh = build(target.urls)[0] if target.urls and not target.problem else None
                ok, reason = await self._send(target, message, fresh)
                done.append(Delivery(name, message.kind, ok, reason))
                if not ok:
                    done += [Delivery(name, rest.kind, False, "not tried: the first send "
                                      "failed") for rest in messages[index + 1:]]
                    break
            return done

        batches = await asyncio.gather(*(run(name, messages)
                                         for name, messages in plan.items()))
        return [delivery for batch in batches for delivery in batch]


# ---------------------------------------------------------------------- helpers


def _summary(kind: str, window: _Window) -> Message:
    return summary(kind, window.held, window.level, window.titles)
