"""What a notification says: the engine's events as short messages (a title a phone's
lock screen shows whole, a body with the detail), their levels, the summaries of
held-back messages and the samples `tapedeck notify test` sends. Pure formatting, no
I/O; part of `core.notify`, kept apart for size."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core.brokers.base import describe
from core.config_notify import NotifyLevel
from core.model import Fill, LogEvent, TradingState
from core.orders import Order, OrderEvent
from core.risk import StateChange
from core.scan_service import ScanHit
from core.state import FeedChange
from core.strategies.runner import Signal
from core.trading import KillReport

Clock = Callable[[int], str]  # a timestamp (ns) as the trader reads it


@dataclass(frozen=True, slots=True)
class Message:
    kind: str
    title: str
    body: str
    level: NotifyLevel


# The level of each kind's usual message (`send_test`, the daemon's own).
DEFAULT_LEVELS: dict[str, NotifyLevel] = {
    "fill": NotifyLevel.INFO,
    "reject": NotifyLevel.WARNING,
    "risk_state": NotifyLevel.WARNING,
    "kill_switch": NotifyLevel.CRITICAL,
    "scan_hit": NotifyLevel.INFO,
    "signal": NotifyLevel.INFO,
    "feed_down": NotifyLevel.ERROR,
    "feed_up": NotifyLevel.INFO,
    "daemon_start": NotifyLevel.INFO,
    "daemon_stop": NotifyLevel.INFO,
    "error": NotifyLevel.ERROR,
}

# (one, many) of each kind, for the summaries of held-back messages
_NOUNS = {"fill": ("fill", "fills"), "reject": ("reject", "rejects"),
          "risk_state": ("trading-state change", "trading-state changes"),
          "kill_switch": ("kill switch", "kill switches"),
          "scan_hit": ("scan hit", "scan hits"), "signal": ("signal", "signals"),
          "feed_down": ("feed-down message", "feed-down messages"),
          "feed_up": ("feed-up message", "feed-up messages"),
          "daemon_start": ("daemon start", "daemon starts"),
          "daemon_stop": ("daemon stop", "daemon stops"), "error": ("error", "errors")}


def noun(kind: str, number: int) -> str:
    one, many = _NOUNS.get(kind, (kind, kind))
    return one if number == 1 else many


def count(number: int, word: str) -> str:
    return f"{number} {word}" if number == 1 else f"{number} {word}s"


def shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def fill_message(fill: Fill, order: Order | None, clock: Clock) -> Message:
    title = (f"Filled {fill.side.value.upper()} {fill.quantity.normalize():f} "
             f"{fill.symbol} @ {fill.price}")
    lines = [f"order {fill.client_order_id}"]
    if order is not None and order.filled_quantity < order.quantity:
        lines[0] += (f", part fill: {order.filled_quantity.normalize():f} of "
                     f"{order.quantity.normalize():f}")
    if order is not None and order.request.strategy:
        lines.append(f"from: {order.request.strategy}")
    lines.append(f"commission {fill.commission}, at {clock(fill.ts_ns)}")
    return Message("fill", title, "\n".join(lines), NotifyLevel.INFO)


def reject_message(event: OrderEvent, order: Order | None, clock: Clock) -> Message:
    what = describe(order) if order is not None else "order"
    return Message("reject", f"Rejected: {what}",
                   f"{event.reason or 'no reason given'}\norder {event.client_order_id}, "
                   f"at {clock(event.ts_ns)}", NotifyLevel.WARNING)


def state_message(change: StateChange) -> Message:
    new = change.new
    if new == TradingState.ACTIVE:
        level = NotifyLevel.INFO
    elif change.automatic:
        # The engine stopped trading by itself: the trader may not know yet.
        level = NotifyLevel.CRITICAL if new == TradingState.HALTED else NotifyLevel.ERROR
    else:
        level = NotifyLevel.WARNING
    who = "automatically" if change.automatic else "by the trader"
    auto = " (automatic)" if change.automatic else ""
    return Message("risk_state", f"Trading {new.value.upper()}{auto}",
                   f"{change.old.value} -> {new.value} ({who}): {change.reason}", level)


def kill_message(report: KillReport) -> Message:
    body = (f"trading halted, {count(report.canceled, 'order')} canceled, "
            f"{count(len(report.flattening), 'position')} being closed")
    if report.problems:
        body += "\ncould not close: " + "; ".join(report.problems)
    return Message("kill_switch", "KILL SWITCH: trading halted", body, NotifyLevel.CRITICAL)


def scan_hit_message(hit: ScanHit) -> Message:
    return Message("scan_hit", f"Scan hit: {hit.symbol}", f"{hit.summary}\n{hit.scan}",
                   NotifyLevel.INFO)


def signal_message(signal: Signal, clock: Clock) -> Message:
    what = "order placed" if signal.acted else "no order"
    return Message("signal", f"Signal: {signal.side.value.upper()} {signal.symbol} "
                   f"({signal.instance})",
                   f"{signal.reason} ({what}), at {clock(signal.ts_ns)}", NotifyLevel.INFO)


def feed_message(change: FeedChange) -> Message:
    if change.up:
        return Message("feed_up", f"Feed back: {change.feed}",
                       change.message or f"the {change.feed} feed is live again",
                       NotifyLevel.INFO)
    return Message("feed_down", f"Feed down: {change.feed}",
                   change.message or f"the {change.feed} feed is {change.state.value}",
                   NotifyLevel.ERROR)


def error_message(event: LogEvent, clock: Clock) -> Message:
    return Message("error", shorten(f"{event.source}: {event.message}", 80),
                   f"{event.message}\n({event.source}, {clock(event.ts_ns)})",
                   NotifyLevel.ERROR)


def summary(kind: str, held: int, level: NotifyLevel, titles: Iterable[str]) -> Message:
    """The messages a throttle window held back, as one."""
    shown = list(titles)
    text = "\n".join(shown)
    if held > len(shown):
        text = f"... and {held - len(shown)} earlier\n{text}"
    return Message(kind, f"{held} more {noun(kind, held)}", text, level)


def quiet_hours_summary(held: dict[str, int]) -> Message:
    total = sum(held.values())
    detail = ", ".join(f"{number} {noun(kind, number)}" for kind, number in
                       sorted(held.items(), key=lambda item: -item[1]))
    return Message("quiet_hours", f"Quiet hours over: {count(total, 'message')} not sent",
                   detail, NotifyLevel.INFO)


_SAMPLES = {
    "fill": ("Filled BUY 100 AAPL @ 187.20", "order td-20240102-1, commission 1.00"),
    "reject": ("Rejected: buy 100 AAPL limit 187.20", "insufficient buying power"),
    "risk_state": ("Trading HALTED (automatic)",
                   "active -> halted (automatically): day's loss"),
    "kill_switch": ("KILL SWITCH: trading halted",
                    "trading halted, 2 orders canceled, 3 positions being closed"),
    "scan_hit": ("Scan hit: AAPL", "rsi(14) = 28.1\nrsi(14) < 30"),
    "signal": ("Signal: BUY AAPL (ma_cross)", "fast crossed above slow (no order)"),
    "feed_down": ("Feed down: replay", "no data for 15 s: reconnecting"),
    "feed_up": ("Feed back: replay", "the replay feed is live again"),
    "daemon_start": ("tapedeck daemon started", "profile default"),
    "daemon_stop": ("tapedeck daemon stopped", "profile default"),
    "error": ("orders: a sample error", "an error line from the log pane"),
}


def sample(kind: str) -> Message:
    """What `tapedeck notify test` sends for a kind."""
    title, body = _SAMPLES[kind]
    return Message(kind, f"[test] {title}", f"{body}\n(a test from `tapedeck notify test`)",
                   DEFAULT_LEVELS[kind])
