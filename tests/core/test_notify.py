"""Notifications through real apprise: `json://` URLs posting to an HTTP server on
loopback that the test starts. A real engine (replay feed, paper venue, real database)
for the fill, the automatic halt, the kill switch and the engine's own errors; the
notifier alone for rules, throttling, de-duplication, quiet hours and the queue."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from core.config import ConfigError, Settings, load_settings
from core.config_notify import NotifySettings
from core.config_text import redacted
from core.engine import Engine
from core.model import LogLevel, OrderRequest, Side
from core.notify import QUEUE_SIZE, Notifier, NotifyLevel
from core.notify_apprise import scrub, secrets
from core.notify_messages import Message
from tests.conftest import make_settings
from tests.core.test_engine import wait_for

NEW_YORK = ZoneInfo("America/New_York")


class Receiver:
    """An HTTP server on loopback that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                posts.append((self.path, json.loads(self.rfile.read(length))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def titles(self, path: str) -> list[str]:
        return [body["title"] for where, body in list(self.posts) if where == f"/{path}"]

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for where, body in list(self.posts) if where == f"/{path}"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


class LogLines:
    def __init__(self) -> None:
        self.lines: list[tuple[LogLevel, str, str]] = []

    def __call__(self, level: LogLevel, source: str, message: str) -> None:
        self.lines.append((level, source, message))

    def text(self) -> str:
        return "\n".join(message for _, _, message in self.lines)


def notifier(receiver: Receiver | None = None, *, log: LogLines | None = None,
             wall_now_ns: Callable[[], int] | None = None, **settings: Any) -> Notifier:
    data: dict[str, Any] = {"throttle_s": 0, "dedupe_s": 0}
    if receiver is not None:
        data["targets"] = {"desk": receiver.url("desk")}
    data.update(settings)
    extra = {"wall_now_ns": wall_now_ns} if wall_now_ns is not None else {}
    return Notifier(NotifySettings.model_validate(data), log_line=log or LogLines(),
                    zone=NEW_YORK, **extra)


@pytest.fixture
async def running() -> AsyncIterator[list[Notifier]]:
    """Notifiers a test started, stopped at its end."""
    started: list[Notifier] = []
    yield started
    for each in started:
        await each.stop(timeout_s=1)


async def start(each: Notifier, running: list[Notifier]) -> Notifier:
    await each.start()
    running.append(each)
    return each


# ---------------------------------------------------------------------- a real engine


async def open_engine(tmp_path: Path, **sections: dict[str, Any]) -> Engine:
    engine = await Engine.open(make_settings(tmp_path, **sections))
    await engine.start()
    await wait_for(lambda: all(r.last == r.last for r in engine.snapshot().rows.values()))
    return engine


async def test_a_fill_an_automatic_halt_and_the_kill_switch_reach_the_phone(
        tmp_path: Path, receiver: Receiver) -> None:
    engine = await open_engine(
        tmp_path, risk={"max_daily_loss": 1},  # the first buy's spread loses more
        notify={"targets": {"phone": receiver.url("phone")}, "throttle_s": 0})
    try:
        order = await engine.desk.place(OrderRequest("AAPL", Side.BUY, Decimal(100)))
        [fill] = engine.desk.fills
        await wait_for(lambda: any("HALTED (auto" in t for t in receiver.titles("phone")))
        report = await engine.desk.kill()
        await wait_for(lambda: any("KILL" in t for t in receiver.titles("phone")))
        await wait_for(lambda: any(t.startswith("Filled SELL") for t in receiver.titles("phone")))
    finally:
        await engine.stop()
    by_title = {body["title"]: body for body in receiver.bodies("phone")}

    bought = by_title[f"Filled BUY 100 AAPL @ {fill.price}"]
    assert bought["type"] == "success"
    assert f"order {order.client_order_id}" in bought["message"]
    assert "2019-03-14 11:" in bought["message"]  # the market's time, in New York

    halted = by_title["Trading HALTED (automatic)"]
    assert halted["type"] == "failure"  # an automatic halt is critical
    assert "active -> halted (automatically): day's loss" in halted["message"]

    kill = by_title["KILL SWITCH: trading halted"]
    assert kill["type"] == "failure"
    assert kill["message"] == "trading halted, 0 orders canceled, 1 position being closed"
    assert report.flattening
    assert f"Filled SELL 100 AAPL @ {engine.desk.fills[-1].price}" in by_title


async def test_an_unreachable_target_does_not_hold_anything_up(
        tmp_path: Path, receiver: Receiver, silent_port: int) -> None:
    engine = await open_engine(tmp_path, notify={
        "targets": {"dead": f"json://127.0.0.1:{silent_port}/x?rto=2",
                    "phone": receiver.url("phone")},
        "timeout_s": 1.0, "throttle_s": 0})
    notifier = engine.notifier
    try:
        await engine.desk.place(OrderRequest("AAPL", Side.BUY, Decimal(10)))
        # The order filled and the phone has its message while the dead service is
        # still being waited for: nothing waited for it but its own sender.
        await wait_for(lambda: receiver.titles("phone"))
        assert notifier.failed == 0
        assert not notifier._targets["dead"].idle.is_set()
        await engine.desk.place(OrderRequest("MSFT", Side.BUY, Decimal(10)))
        await wait_for(lambda: len(receiver.titles("phone")) == 2)

        def failure_logged() -> bool:
            return any(event.source == "notify" and "dead" in event.message
                       for event in engine.snapshot().logs)

        await wait_for(failure_logged)
        [line] = [e for e in engine.snapshot().logs if e.source == "notify"]
        assert line.level == LogLevel.WARNING
        assert "no answer within 1 s" in line.message
        assert "nothing but critical messages go to dead for 60 s" in line.message
        # Cooling down: the MSFT fill queued behind the failure is dropped, not tried.
        await wait_for(lambda: notifier._targets["dead"].idle.is_set())
        assert notifier.failed == 1
        assert notifier.dropped == 1
        assert len(receiver.titles("phone")) == 2
    finally:
        await engine.stop()


async def test_engine_errors_become_notifications_from_any_thread(
        tmp_path: Path, receiver: Receiver) -> None:
    engine = await open_engine(tmp_path, notify={
        "targets": {"phone": receiver.url("phone")},
        "rules": [{"kinds": ["error"], "targets": ["phone"]}]})
    try:
        await asyncio.to_thread(engine.log, LogLevel.ERROR, "orders", "the journal is full")
        engine.log(LogLevel.ERROR, "notify", "about itself: never sent (no loops)")
        engine.log(LogLevel.WARNING, "orders", "only a warning")
        await wait_for(lambda: receiver.titles("phone"))
        await engine.desk.place(OrderRequest("AAPL", Side.BUY, Decimal(10)))  # not routed
    finally:
        await engine.stop()
    [error] = receiver.bodies("phone")
    assert error["title"] == "orders: the journal is full"
    assert error["type"] == "failure"


# ---------------------------------------------------------------------- the notifier


async def test_a_burst_is_throttled_then_summed_up(receiver: Receiver,
                                                   running: list[Notifier]) -> None:
    each = await start(notifier(receiver, throttle_s=0.3), running)
    for number in range(5):
        each.notify("fill", f"Filled BUY {number} AAPL", "detail")
    each.notify("reject", "Rejected: sell 1 MSFT", "another kind has its own window")
    await wait_for(lambda: len(receiver.titles("desk")) == 3)
    titles = receiver.titles("desk")
    assert titles[:2] == ["Filled BUY 0 AAPL", "Rejected: sell 1 MSFT"]
    assert titles[2] == "4 more fills"
    summary = receiver.bodies("desk")[2]["message"]
    assert summary.splitlines() == [f"Filled BUY {n} AAPL" for n in range(1, 5)]
    assert each.throttled == 4
    # The summary opened a new window: the next fill waits for its end too.
    each.notify("fill", "Filled BUY 9 AAPL", "detail")
    await wait_for(lambda: len(receiver.titles("desk")) == 4)
    assert receiver.titles("desk")[3] == "1 more fill"


async def test_critical_messages_are_never_throttled(receiver: Receiver,
                                                     running: list[Notifier]) -> None:
    each = await start(notifier(receiver, throttle_s=60), running)
    each.notify("kill_switch", "KILL 1", "", NotifyLevel.CRITICAL)
    each.notify("kill_switch", "KILL 2", "", NotifyLevel.CRITICAL)
    await wait_for(lambda: len(receiver.titles("desk")) == 2)


async def test_the_same_message_within_the_window_is_sent_once(
        receiver: Receiver, running: list[Notifier]) -> None:
    each = await start(notifier(receiver, dedupe_s=300), running)
    for _ in range(3):
        each.notify("feed_down", "Feed down: replay", "no data for 15 s", NotifyLevel.ERROR)
    each.notify("feed_down", "Feed down: replay", "no data for 30 s", NotifyLevel.ERROR)
    await wait_for(lambda: len(receiver.titles("desk")) == 2)
    assert [b["message"] for b in receiver.bodies("desk")] == ["no data for 15 s",
                                                               "no data for 30 s"]
    assert each.deduplicated == 2


async def test_quiet_hours_hold_all_but_critical_then_say_what_was_held(
        receiver: Receiver, running: list[Notifier]) -> None:
    clock = [datetime(2024, 3, 14, 23, 30, tzinfo=NEW_YORK)]
    each = await start(notifier(
        receiver, quiet_hours="22:00-07:00",
        wall_now_ns=lambda: int(clock[0].timestamp() * 1e9)), running)
    each.notify("fill", "Filled BUY 1 AAPL", "")
    each.notify("scan_hit", "Scan hit: XOM", "")
    each.notify("scan_hit", "Scan hit: CVX", "")
    each.notify("error", "orders: trouble", "", NotifyLevel.ERROR)
    each.notify("kill_switch", "KILL SWITCH: trading halted", "", NotifyLevel.CRITICAL)
    await wait_for(lambda: receiver.titles("desk"))
    assert receiver.titles("desk") == ["KILL SWITCH: trading halted"]
    clock[0] = datetime(2024, 3, 15, 6, 59, tzinfo=NEW_YORK)
    each.notify("fill", "Filled BUY 2 AAPL", "")
    clock[0] = datetime(2024, 3, 15, 7, 0, tzinfo=NEW_YORK)
    each.notify("fill", "Filled BUY 3 AAPL", "")
    await wait_for(lambda: len(receiver.titles("desk")) == 3)
    assert receiver.titles("desk")[1:] == ["Quiet hours over: 5 messages not sent",
                                           "Filled BUY 3 AAPL"]
    assert receiver.bodies("desk")[1]["message"] == "2 fills, 2 scan hits, 1 error"


async def test_rules_route_kinds_to_targets_above_a_level(receiver: Receiver,
                                                          running: list[Notifier]) -> None:
    each = await start(notifier(
        targets={"phone": receiver.url("phone"), "desktop": receiver.url("desktop")},
        rules=[{"kinds": ["fill", "reject"], "targets": ["desktop"]},
               {"kinds": ["*"], "targets": ["phone"], "min_level": "error"}]), running)
    each.notify("fill", "Filled", "")
    each.notify("scan_hit", "Scan hit", "")  # no rule
    each.notify("risk_state", "Trading REDUCING", "", NotifyLevel.WARNING)  # below error
    each.notify("risk_state", "Trading HALTED", "", NotifyLevel.CRITICAL)
    await wait_for(lambda: receiver.titles("desktop") and receiver.titles("phone"))
    await each.stop(timeout_s=2)
    assert receiver.titles("desktop") == ["Filled"]
    assert receiver.titles("phone") == ["Trading HALTED"]


async def test_configure_swaps_targets_and_rules_live(receiver: Receiver,
                                                      running: list[Notifier]) -> None:
    log = LogLines()
    each = await start(notifier(receiver, log=log), running)
    each.notify("fill", "one", "")
    await wait_for(lambda: receiver.titles("desk") == ["one"])
    each.configure(NotifySettings.model_validate({
        "throttle_s": 0, "dedupe_s": 0,
        "targets": {"desk": receiver.url("desk"), "phone": receiver.url("phone")},
        "rules": [{"kinds": ["fill"], "targets": ["phone"]}]}))
    each.notify("fill", "two", "")
    await wait_for(lambda: receiver.titles("phone") == ["two"])
    await each.stop(timeout_s=2)
    assert receiver.titles("desk") == ["one"]


async def test_a_full_queue_drops_its_oldest_least_urgent_message() -> None:
    log = LogLines()
    each = notifier(log=log, targets={"desk": "json://127.0.0.1:9/never-started"})
    each.notify("fill", "fill 0", "")
    each.notify("kill_switch", "kill", "", NotifyLevel.CRITICAL)
    for number in range(1, QUEUE_SIZE + 5):
        each.notify("fill", f"fill {number}", "")
    queue = each._targets["desk"].queue
    assert len(queue) == QUEUE_SIZE
    assert "kill" in [m.title for m in queue]
    assert [m.title for m in queue if m.kind == "fill"][:2] == ["fill 6", "fill 7"]
    assert each.dropped == 6
    assert [line for line in log.lines if "behind" in line[2]] == [
        (LogLevel.WARNING, "notify", "desk is behind: dropping its least urgent messages")]
    await each.stop(timeout_s=0)
    assert "100 notifications were not sent before the shutdown" in log.text()


async def test_stop_sends_what_is_queued_first(receiver: Receiver) -> None:
    each = notifier(receiver, throttle_s=60)
    await each.start()
    each.notify("fill", "first", "")
    each.notify("fill", "second", "")  # held back by the throttle
    each.notify("daemon_stop", "tapedeck daemon stopped", "", NotifyLevel.WARNING)
    await each.stop(timeout_s=5)
    assert sorted(receiver.titles("desk")) == ["1 more fill", "first",
                                               "tapedeck daemon stopped"]


async def test_an_apprise_config_file_gives_a_target_per_tag(
        tmp_path: Path, receiver: Receiver, running: list[Notifier]) -> None:
    path = tmp_path / "apprise.yml"
    path.write_text(f"urls:\n  - {receiver.url('a')}:\n    - tag: phone\n"
                    f"  - {receiver.url('b')}\n", encoding="utf-8")
    each = await start(notifier(config_file=str(path),
                                rules=[{"kinds": ["fill"], "targets": ["phone"]}]), running)
    assert sorted(each.target_names()) == ["config", "phone"]
    each.notify("fill", "to the phone only", "")
    await wait_for(lambda: receiver.titles("a"))
    await each.stop(timeout_s=2)
    assert receiver.titles("b") == []


async def test_a_missing_config_file_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    log = LogLines()
    each = notifier(log=log, config_file=str(tmp_path / "none.yml"),
                    rules=[{"kinds": ["*"], "targets": ["phone"]}])
    assert each.target_names() == []
    assert f"the apprise config file {tmp_path / 'none.yml'} does not exist" in log.text()
    each.notify("fill", "nowhere to go", "")
    await each.stop(timeout_s=0)


async def test_the_test_send_reports_each_target(receiver: Receiver) -> None:
    log = LogLines()
    each = notifier(log=log, throttle_s=60, dedupe_s=300, quiet_hours="00:00-23:59",
                    targets={"desk": receiver.url("desk"), "refused": "json://127.0.0.1:1/x",
                             "typo": "ntfyy://topic"})
    try:
        results = await each.send_test(["fill", "kill_switch"])
    finally:
        await each.stop(timeout_s=0)
    outcome = {(r.target, r.kind): (r.ok, r.reason) for r in results}
    assert outcome[("desk", "fill")] == (True, "")
    assert outcome[("desk", "kill_switch")] == (True, "")
    ok, reason = outcome[("refused", "fill")]
    assert not ok
    assert "Connection error" in reason
    assert outcome[("refused", "kill_switch")] == (False, "not tried: the first send failed")
    assert outcome[("typo", "fill")][1] == ("apprise cannot use its ntfyy:// URL (see "
                                            "apprise's URL docs)")
    assert receiver.titles("desk") == ["[test] Filled BUY 100 AAPL @ 187.20",
                                       "[test] KILL SWITCH: trading halted"]
    with pytest.raises(ValueError, match="unknown kind 'fills'"):
        await each.send_test(["fills"])


def test_log_lines_never_show_a_token() -> None:
    found = secrets(["tgram://123456789:AAFx-secret/987654",
                     "ntfy://user:pa55word@ntfy.sh/topic-xyz"])
    text = "Failed for 123456789:AAFx-secret at https://ntfy.sh/topic-xyz as user:pa55word"
    assert scrub(text, found) == "Failed for ***:*** at https://ntfy.sh/*** as user:***"


def test_messages_are_plain_data() -> None:
    message = Message("fill", "t", "b", NotifyLevel.INFO)
    assert message == Message("fill", "t", "b", NotifyLevel.INFO)


# ---------------------------------------------------------------------- settings


def load_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    return str(caught.value)


def test_settings_read_targets_rules_and_quiet_hours(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[notify]\nquiet_hours = "22:00-07:00"\n[notify.targets]\n'
                    'Phone = "ntfy://ntfy.sh/my-topic"\n[[notify.rules]]\n'
                    'kinds = ["fill", "REJECT"]\ntargets = ["phone"]\nmin_level = "Warning"\n'
                    'throttle_s = 10\n', encoding="utf-8")
    notify = load_settings(path, environ={}).notify
    assert notify.targets == {"phone": "ntfy://ntfy.sh/my-topic"}
    [rule] = notify.rules
    assert (rule.kinds, rule.targets, rule.min_level, rule.throttle_s) == (
        ["fill", "reject"], ["phone"], "warning", 10)
    assert str(notify.quiet_window()) == "(datetime.time(22, 0), datetime.time(7, 0))"
    env = load_settings(tmp_path / "none.toml", environ={
        "TAPEDECK_NOTIFY__TARGETS__DESKTOP": "dbus://"}).notify
    assert env.targets == {"desktop": "dbus://"}


@pytest.mark.parametrize(("text", "expected"), [
    ('[[notify.rules]]\nkinds = ["fil"]\n',
     "notify.rules[0].kinds[0]: did you mean fill? expected '*' or one of fill, reject, "),
    ('[[notify.rules]]\nmin_level = "loud"\n',
     "notify.rules[0].min_level: expected one of 'info', 'warning', 'error', 'critical', "
     "got 'loud'"),
    ('[notify]\nquiet_hours = "22-7"\n',
     'notify.quiet_hours: expected a time range such as "22:00-07:00", or "" for none, '
     "got '22-7'"),
    ('[notify]\nquiet_hours = "25:00-07:00"\n', "notify.quiet_hours: expected times of day"),
    ('[notify.targets]\nphone = "my-topic"\n',
     'notify.targets.phone: expected an apprise URL such as "ntfy://ntfy.sh/my-topic"'),
    ('[notify.targets]\nphone = "ntfy://x"\n[[notify.rules]]\ntargets = ["pager"]\n',
     "notify: rules[0].targets: there is no target 'pager' (the targets are: phone; add it "
     "under [notify.targets])"),
    ('[notify]\nthrottle = 5\n', "unknown key notify.throttle (did you mean throttle_s?)"),
])
def test_settings_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    message = load_error(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'config.toml'}: ")
    assert expected in message


def test_a_rule_may_name_a_target_the_config_file_brings(tmp_path: Path) -> None:
    settings = NotifySettings.model_validate({"config_file": str(tmp_path / "a.yml"),
                                              "rules": [{"targets": ["pager"]}]})
    assert settings.rules[0].targets == ["pager"]
    assert NotifySettings.model_validate({"config_file": ""}).config_file is None
    with pytest.raises(ValidationError):
        NotifySettings.model_validate({"rules": [{"kinds": []}]})


def test_config_show_hides_the_tokens_in_target_urls() -> None:
    settings = Settings.model_validate({"notify": {"targets": {
        "phone": "tgram://123456:AAF-token/987", "desktop": "dbus://"}}})
    shown = redacted(settings)["notify"]["targets"]
    assert shown == {"phone": "tgram://***", "desktop": "dbus://***"}
    assert "AAF-token" not in json.dumps(redacted(settings))


def test_an_engine_without_targets_never_imports_apprise() -> None:
    code = "import sys, core.engine; print('apprise' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_the_messages_a_trader_reads() -> None:
    from core.model import FeedState, OrderStatus
    from core.notify_messages import feed_message, reject_message, signal_message
    from core.orders import OrderEvent
    from core.state import FeedChange
    from core.strategies.runner import Signal

    def clock(ts_ns: int) -> str:
        return "11:00"

    reject = reject_message(OrderEvent("td-1", 0, OrderStatus.REJECTED, Decimal(0),
                                       "insufficient buying power"), None, clock)
    assert (reject.title, reject.body, reject.level) == (
        "Rejected: order", "insufficient buying power\norder td-1, at 11:00",
        NotifyLevel.WARNING)
    down = feed_message(FeedChange(0, "replay", FeedState.RECONNECTING, ""))
    assert (down.kind, down.title, down.body, down.level) == (
        "feed_down", "Feed down: replay", "the replay feed is reconnecting", NotifyLevel.ERROR)
    assert feed_message(FeedChange(0, "replay", FeedState.LIVE, "")).kind == "feed_up"
    signal = signal_message(Signal("ma_cross:AAPL", 0, "AAPL", Side.BUY, "fast over slow",
                                   False), clock)
    assert signal.title == "Signal: BUY AAPL (ma_cross:AAPL)"
    assert signal.body == "fast over slow (no order), at 11:00"
