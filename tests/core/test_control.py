"""The control socket over a real engine: permissions, the remote client against the
in-process one, bad input of every kind answered without harm to other clients, a slow
client dropped, another user refused, and a client that carries on when the daemon
comes back."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from core.config import Settings
from core.control import MAX_LINE, ControlServer
from core.control_client import DaemonUnavailable, RemoteEngineClient, merge_deltas
from core.control_paths import ControlError, check_path_length, ensure_private_dir, socket_path
from core.engine import Engine
from core.model import OrderRequest, Side
from core.state import ChangeCursor, CommandError
from tests.conftest import make_settings
from tests.core.test_engine import wait_for


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, daemon={"client_buffer_kb": 64})


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    engine = await Engine.open(settings)
    await engine.start()
    await wait_for(lambda: all(r.last == r.last for r in engine.snapshot().rows.values()))
    yield engine
    await engine.stop()


@pytest.fixture
async def server(engine: Engine, settings: Settings) -> AsyncIterator[ControlServer]:
    server = ControlServer(engine, settings.daemon, socket_path(settings))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(server: ControlServer) -> AsyncIterator[RemoteEngineClient]:
    client = RemoteEngineClient(server.path, reconnect=True)
    await client.connect()
    yield client
    await client.close()


class RawClient:
    """A socket speaking the protocol by hand, for what a real client never sends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def open(self) -> RawClient:
        self.reader, self.writer = await asyncio.open_unix_connection(str(self.path),
                                                                      limit=1 << 26)
        return self

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, message: dict[str, object]) -> dict[str, object]:
        await self.send(json.dumps(message).encode() + b"\n")
        return await self.reply()

    async def reply(self) -> dict[str, object]:
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 10)
            assert line, "the daemon closed the connection"
            message: dict[str, object] = json.loads(line)
            if "push" not in message:
                return message

    async def hello(self) -> None:
        answer = await self.request({"id": 0, "cmd": "hello", "args": {"protocol": 1}})
        assert answer["ok"] is True

    def close(self) -> None:
        self.writer.close()


async def test_the_socket_and_its_directory_are_private(server: ControlServer) -> None:
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.path.parent.stat().st_mode) == 0o700
    assert stat.S_ISSOCK(server.path.stat().st_mode)


def test_an_open_directory_of_ours_is_made_private_and_a_long_path_refused(
        tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    ensure_private_dir(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    with pytest.raises(ControlError, match="longer than 107 bytes"):
        check_path_length(tmp_path / ("x" * 120) / "default.sock")


async def test_the_remote_client_sees_and_does_what_the_engine_does(
        engine: Engine, client: RemoteEngineClient) -> None:
    snapshot = await client.snapshot()
    local = engine.snapshot()
    assert snapshot.rows == local.rows
    assert snapshot.watchlists == local.watchlists
    assert snapshot.status.link == f"daemon pid {os.getpid()}"
    order = await client.place_order(OrderRequest("AAPL", Side.BUY, Decimal(10)))
    assert order.symbol == "AAPL"
    assert order.client_order_id in engine.desk.orders
    with pytest.raises(CommandError, match="there is no order nope"):
        await client.cancel_order("nope")
    with pytest.raises(CommandError, match="risk refused the order"):
        await client.place_order(OrderRequest("AAPL", Side.BUY, Decimal(9_999_999)))

    async def fill_arrives() -> bool:
        delta = await client.changes(snapshot.cursor)
        seen.extend(delta.fills)
        return bool(seen)

    seen: list[object] = []
    deadline = time.monotonic() + 10
    while not await fill_arrives():
        assert time.monotonic() < deadline, "no fill pushed"
        await asyncio.sleep(0.05)
    assert engine.desk.fills[-1] in seen
    bars = await client.history("AAPL", "1d", 5)
    assert len(bars) == 5
    assert bars[-1].symbol == "AAPL"
    assert [info.name for info in await client.strategy_catalog()]


async def test_bad_input_is_answered_and_other_clients_are_served(
        server: ControlServer, client: RemoteEngineClient) -> None:
    raw = await RawClient(server.path).open()
    first = await raw.request({"id": 1, "cmd": "snapshot"})
    assert first["ok"] is False
    assert "hello" in str(first["error"])
    await raw.hello()
    await raw.send(b"{this is not json\n")
    assert "malformed JSON" in str((await raw.reply())["error"])
    await raw.send(b"[1, 2, 3]\n")
    assert (await raw.reply())["kind"] == "bad_request"
    unknown = await raw.request({"id": 2, "cmd": "format_disk"})
    assert unknown["id"] == 2
    assert "unknown command 'format_disk'" in str(unknown["error"])
    wrong = await raw.request({"id": 3, "cmd": "cancel_order", "args": {"client_order_id": 5}})
    assert "client_order_id must be a str" in str(wrong["error"])
    missing = await raw.request({"id": 4, "cmd": "place_order", "args": {}})
    assert "missing a required argument" in str(missing["error"])
    forged = await raw.request({"id": 5, "cmd": "get_setting",
                                "args": {"key": {"$t": "Popen", "f": {}}}})
    assert "unknown type" in str(forged["error"])
    # Ten megabytes on one line: refused, skipped to its end, and the next line served.
    await raw.send(b'{"id": 6, "cmd": "ping", "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}\n')
    too_large = await raw.reply()
    assert f"the limit is {MAX_LINE} bytes" in str(too_large["error"])
    assert (await raw.request({"id": 7, "cmd": "ping"})) == {"id": 7, "ok": True,
                                                              "result": "pong"}
    wrong_version = RemoteEngineClient(server.path)
    await raw.send(b'{"id": 8, "cmd": "hello", "args": {"protocol": 99}}\n')
    assert "protocol 99 is not spoken here" in str((await raw.reply())["error"])
    raw.close()
    await wrong_version.close()
    # The well-behaved client never noticed.
    assert (await client.snapshot()).rows


async def test_a_client_that_never_reads_is_dropped_and_the_engine_runs_on(
        server: ControlServer, client: RemoteEngineClient, caplog: pytest.LogCaptureFixture
        ) -> None:
    caplog.set_level(logging.WARNING, "core.control")
    raw = await RawClient(server.path).open()
    await raw.hello()
    # Ask for far more than the socket buffers and the 64 KB allowance hold, read none.
    request = json.dumps({"id": 9, "cmd": "history",
                          "args": {"symbol": "AAPL", "interval": "1d", "sessions": 1000}})
    await raw.send((request + "\n").encode() * 200)
    await wait_for(lambda: server.clients == 1, timeout=20)
    assert "too slow" in caplog.text
    started = time.monotonic()
    assert (await client.snapshot()).rows
    assert time.monotonic() - started < 5
    raw.close()


async def test_a_connection_from_another_user_is_refused_and_logged(
        engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "core.control")
    server = ControlServer(engine, settings.daemon, socket_path(settings),
                           allowed_uid=os.getuid() + 1)
    await server.start()
    try:
        client = RemoteEngineClient(server.path)
        with pytest.raises(DaemonUnavailable, match="belongs to another user"):
            await client.connect()
        await client.close()
        assert server.refused == 1
        assert f"refused a control connection from uid {os.getuid()}" in caplog.text
    finally:
        await server.stop()


async def test_the_client_says_disconnected_and_resumes_on_its_own(
        engine: Engine, settings: Settings) -> None:
    server = ControlServer(engine, settings.daemon, socket_path(settings))
    await server.start()
    client = RemoteEngineClient(server.path, reconnect=True)
    await client.connect()
    snapshot = await client.snapshot()
    await server.stop()
    await wait_for(lambda: not client.connected)
    down = await client.changes(snapshot.cursor)
    assert down.status.link_down
    assert down.status.link.startswith("disconnected")
    assert down.account == snapshot.account  # the screen keeps what it showed
    with pytest.raises(CommandError, match="disconnected"):
        await client.cancel_all_orders()
    server = ControlServer(engine, settings.daemon, socket_path(settings))
    await server.start()
    try:
        await wait_for(lambda: client.connected, timeout=15)
        delta = await client.changes(snapshot.cursor)
        assert delta.resync
        again = await client.snapshot()
        assert again.rows == engine.snapshot().rows
        assert not again.status.link_down
        assert client.connects == 2
    finally:
        await client.close()
        await server.stop()


async def test_a_client_with_no_daemon_is_told_so(settings: Settings) -> None:
    client = RemoteEngineClient(socket_path(settings))
    with pytest.raises(DaemonUnavailable, match="no tapedeck daemon is running"):
        await client.connect()
    stale = socket_path(settings)
    ensure_private_dir(stale.parent)
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(stale))  # a socket file nobody listens on: a daemon killed -9
    with pytest.raises(DaemonUnavailable, match="stopped uncleanly"):
        await client.connect()


async def test_pushed_changes_merge_until_the_screen_pulls(engine: Engine) -> None:
    cursor = engine.snapshot().cursor
    await engine.desk.place(OrderRequest("AAPL", Side.BUY, Decimal(1)))
    first = engine.changes(cursor)
    await engine.desk.place(OrderRequest("MSFT", Side.BUY, Decimal(1)))
    second = engine.changes(cursor)
    merged = merge_deltas(first, second)
    assert [o.symbol for o in merged.orders] == [*(o.symbol for o in first.orders),
                                                 *(o.symbol for o in second.orders)]
    assert list(merged.fills) == [*first.fills, *second.fills]
    assert merged.positions == second.positions
    assert merged.status == second.status
    assert isinstance(cursor, ChangeCursor)
