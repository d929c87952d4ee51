"""The control socket: how clients (an attached workstation, `tapedeck status`, `halt`,
...) reach a daemon's engine.

A Unix domain socket in a private directory (0700; the socket itself 0600), and a peer
credential check on every connection: only the daemon's own user gets in. The protocol
is newline-delimited JSON (values encoded by `core.wire`), version `PROTOCOL`:

    -> {"id": 1, "cmd": "hello", "args": {"protocol": 1, "client": "attach"}}
    <- {"id": 1, "ok": true, "result": {"protocol": 1, "pid": 4242, ...}}
    -> {"id": 2, "cmd": "place_order", "args": {"request": {"$t": "OrderRequest", ...}}}
    <- {"id": 2, "ok": false, "error": "risk refused the order: ...", "kind": "refused"}
    -> {"id": 3, "cmd": "subscribe"}
    <- {"id": 3, "ok": true, "result": <EngineSnapshot>}
    <- {"push": "delta", "delta": <EngineDelta>}          every 1/push_hz s, when changed

Every `EngineClient` command is a `cmd` by its method name, with its arguments by name.
A malformed line, an unknown command or a line over `MAX_LINE` bytes gets an error reply
(`kind` "bad_request") and the connection goes on. Requests run concurrently, so a slow
one (a history load) does not hold up a cancel behind it. Nothing a client does can
stall the engine: replies and pushes are written without waiting, and a client that
leaves more than `client_buffer_kb` unread is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import itertools
import logging
import os
import types
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import __version__
from core.client import EngineClient, InProcessEngineClient
from core.control_paths import (
    ControlError,
    check_path_length,
    ensure_private_dir,
    peer_credentials,
)
from core.state import ChangeCursor, CommandError, EngineDelta
from core.store import StoreError
from core.wire import WireError, dumps, loads

if TYPE_CHECKING:
    from core.config_daemon import DaemonSettings
    from core.engine import Engine

log = logging.getLogger(__name__)

PROTOCOL = 1
MAX_LINE = 4 * 1024 * 1024  # a request; replies and pushes may be larger
MAX_IN_FLIGHT = 64  # requests of one connection running at once
READ_CHUNK = 256 * 1024

# Every EngineClient method is a command but `changes`: deltas are pushed to a
# subscriber. `_run` answers the session's own: hello, ping, status, (un)subscribe.
EXCLUDED = frozenset({"changes"})


# ---------------------------------------------------------------------------- commands


@dataclasses.dataclass(frozen=True, slots=True)
class _Command:
    name: str
    call: Callable[..., Awaitable[Any]]
    signature: inspect.Signature
    hints: dict[str, Any]


def engine_commands(client: InProcessEngineClient) -> dict[str, _Command]:
    """Every EngineClient method but `changes`, bound to the in-process client."""
    commands = {}
    for name in sorted(EngineClient.__abstractmethods__ - EXCLUDED):
        method = getattr(client, name)
        hints = typing.get_type_hints(getattr(InProcessEngineClient, name))
        commands[name] = _Command(name, method, inspect.signature(method), hints)
    return commands


def check_arguments(command: _Command, args: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments bound to the command's parameters, each of the annotated type;
    CommandError naming what is wrong otherwise."""
    try:
        bound = command.signature.bind(**args)
    except TypeError as err:
        raise CommandError(f"{command.name}: {err}") from None
    for name, value in bound.arguments.items():
        expected = command.hints.get(name, Any)
        if not _conforms(value, expected):
            raise CommandError(f"{command.name}: {name} must be {_type_name(expected)}, "
                               f"not {type(value).__name__}")
    return dict(bound.arguments)


def _conforms(value: Any, expected: Any) -> bool:
    """A shallow type check (the top level and the items of a sequence)."""
    if expected is Any:
        return True
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, option) for option in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is not None:
        if origin in (Sequence, list, tuple):
            if not isinstance(value, (list, tuple)):
                return False
            (item,) = typing.get_args(expected)[:1] or (Any,)
            return all(_conforms(v, item) for v in value)
        if origin in (Mapping, dict):
            return isinstance(value, dict)
        return isinstance(value, origin)
    if isinstance(expected, type):
        return isinstance(value, expected)
    return True


def _type_name(expected: Any) -> str:
    if isinstance(expected, type):
        return "a number" if expected in (int, float, Decimal) else (
            f"a {expected.__name__}")
    return str(expected).replace("typing.", "").replace("collections.abc.", "")


# ---------------------------------------------------------------------------- server


class _Connection:
    _ids = itertools.count(1)

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 pid: int | None, limit: int) -> None:
        self.id = next(self._ids)
        self.reader = reader
        self.writer = writer
        self.pid = pid
        self.limit = limit
        self.greeted = False
        self.client = ""
        self.cursor: ChangeCursor | None = None  # set while subscribed
        self.last_sent: tuple[Any, ...] | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    def __str__(self) -> str:
        who = f" ({self.client})" if self.client else ""
        return f"client {self.id}{who}" + (f" pid {self.pid}" if self.pid else "")

    def send(self, message: Mapping[str, Any]) -> bool:
        """Queue a message without waiting; False (and the connection closed) when the
        client has left too much unread."""
        if self.closed:
            return False
        try:
            data = dumps(message)
        except WireError as err:
            log.error("cannot encode a reply to %s: %s", self, err)
            data = dumps({"id": message.get("id"), "ok": False, "kind": "internal",
                          "error": f"the daemon could not encode its answer: {err}"})
        self.writer.write(data)
        transport = self.writer.transport
        if transport.get_write_buffer_size() > self.limit:
            log.warning("%s is too slow: %d KB unread, disconnected", self,
                        transport.get_write_buffer_size() // 1024)
            self.close()
            return False
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.cursor = None
        # abort, not close: close would first try to flush what the client never read.
        self.writer.transport.abort()


class ControlServer:
    def __init__(self, engine: Engine, settings: DaemonSettings, path: Path, *,
                 status: Callable[[], Any] | None = None,
                 allowed_uid: int | None = None) -> None:
        """`status`: what the `status` command answers (the daemon's health record).
        `allowed_uid`: whose connections are served (the daemon's own user)."""
        self.engine = engine
        self.settings = settings
        self.path = path
        self._status = status
        self._allowed_uid = os.getuid() if allowed_uid is None else allowed_uid
        self._client = InProcessEngineClient(engine)
        self._commands = engine_commands(self._client)
        self._connections: set[_Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._pusher: asyncio.Task[None] | None = None
        self.refused = 0

    @property
    def clients(self) -> int:
        """Connections open now (a screen, or a one-off command such as `status`)."""
        return len(self._connections)

    @property
    def attached(self) -> int:
        """Screens attached: connections subscribed to the engine's changes."""
        return sum(1 for c in self._connections if c.cursor is not None)

    async def start(self) -> None:
        check_path_length(self.path)
        ensure_private_dir(self.path.parent)
        # The database lock is held by now: a socket file left here is a dead daemon's.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old_umask = os.umask(0o177)  # the socket is created 0600, never briefly wider
        try:
            self._server = await asyncio.start_unix_server(self._accept, path=str(self.path))
        except OSError as err:
            raise ControlError(f"cannot listen on {self.path}: {err.strerror}") from err
        finally:
            os.umask(old_umask)
        self.path.chmod(0o600)
        log.info("control socket %s", self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.send({"push": "bye", "reason": "the daemon is stopping"})
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.writer.drain(), 0.5)
            connection.close()
            for task in connection.tasks:
                task.cancel()
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(BaseException):
                await self._pusher
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # -- connections

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        credentials = peer_credentials(sock) if sock is not None else None
        pid = credentials[0] if credentials else None
        if credentials is not None and credentials[1] != self._allowed_uid:
            self.refused += 1
            log.warning("refused a control connection from uid %d (pid %d): only uid %d "
                        "may control this daemon", credentials[1], credentials[0],
                        self._allowed_uid)
            writer.write(dumps({"id": None, "ok": False, "kind": "refused",
                                "error": "this daemon belongs to another user"}))
            writer.transport.abort()
            return
        limit = self.settings.client_buffer_kb * 1024
        connection = _Connection(reader, writer, pid, limit)
        if len(self._connections) >= self.settings.max_clients:
            log.warning("refused %s: %d clients attached already", connection,
                        len(self._connections))
            connection.send({"id": None, "ok": False, "kind": "refused",
                             "error": f"the daemon serves {self.settings.max_clients} "
                                      "clients at most ([daemon] max_clients)"})
            connection.close()
            return
        self._connections.add(connection)
        try:
            await self._read(connection)
        except (ConnectionError, OSError):
            pass
        finally:
            self._connections.discard(connection)
            connection.close()
            for task in connection.tasks:
                task.cancel()
            if connection.greeted:
                log.info("%s detached", connection)

    async def _read(self, connection: _Connection) -> None:
        """Split the stream into lines; a line over MAX_LINE is answered with an error
        and skipped to its end, however long it runs."""
        pending = bytearray()
        skipping = False
        reader = connection.reader
        while not connection.closed:
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                return
            start = 0
            while True:
                end = chunk.find(b"\n", start)
                if end < 0:
                    if not skipping:
                        pending += chunk[start:]
                        if len(pending) > MAX_LINE:
                            pending.clear()
                            skipping = True
                            self._too_large(connection)
                    break
                if skipping:
                    skipping = False
                else:
                    pending += chunk[start:end]
                    if len(pending) > MAX_LINE:
                        self._too_large(connection)
                    elif pending.strip():
                        self._request(connection, bytes(pending))
                    pending.clear()
                start = end + 1

    @staticmethod
    def _too_large(connection: _Connection) -> None:
        log.warning("%s sent a line over %d bytes: skipped", connection, MAX_LINE)
        connection.send({"id": None, "ok": False, "kind": "bad_request",
                         "error": f"message too large: the limit is {MAX_LINE} bytes"})

    def _request(self, connection: _Connection, line: bytes) -> None:
        try:
            message = loads(line)
        except WireError as err:
            connection.send({"id": None, "ok": False, "kind": "bad_request", "error": str(err)})
            return
        if not isinstance(message, dict) or not isinstance(message.get("cmd"), str):
            connection.send({"id": message.get("id") if isinstance(message, dict) else None,
                             "ok": False, "kind": "bad_request",
                             "error": 'a request is an object with "cmd" (and "id", "args")'})
            return
        request_id = message.get("id")
        if not isinstance(request_id, (int, str, type(None))) or isinstance(request_id, bool):
            request_id = None
        args = message.get("args") or {}
        if not isinstance(args, dict):
            connection.send({"id": request_id, "ok": False, "kind": "bad_request",
                             "error": '"args" must be an object'})
            return
        if len(connection.tasks) >= MAX_IN_FLIGHT:
            connection.send({"id": request_id, "ok": False, "kind": "busy",
                             "error": f"more than {MAX_IN_FLIGHT} requests at once"})
            return
        task = asyncio.create_task(self._answer(connection, request_id, message["cmd"], args))
        connection.tasks.add(task)
        task.add_done_callback(connection.tasks.discard)

    async def _answer(self, connection: _Connection, request_id: int | str | None, name: str,
                      args: dict[str, Any]) -> None:
        try:
            result = await self._run(connection, name, args)
        except _BadRequest as err:
            reply = {"id": request_id, "ok": False, "kind": "bad_request", "error": str(err)}
        except (CommandError, StoreError) as err:
            reply = {"id": request_id, "ok": False, "kind": "refused", "error": str(err)}
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.exception("%s: %s failed", connection, name)
            reply = {"id": request_id, "ok": False, "kind": "internal",
                     "error": f"{name} failed in the daemon: {type(err).__name__}: {err} "
                              "(its log has the details)"}
        else:
            reply = {"id": request_id, "ok": True, "result": result}
        connection.send(reply)

    async def _run(self, connection: _Connection, name: str, args: dict[str, Any]) -> Any:
        if name == "hello":
            return self._hello(connection, args)
        if not connection.greeted:
            raise _BadRequest('say "hello" first, with the protocol version')
        if name == "ping":
            return "pong"
        if name == "status":
            if self._status is None:
                raise CommandError("this server keeps no health record")
            return self._status()
        if name == "subscribe":
            snapshot = self.engine.snapshot()
            connection.cursor = snapshot.cursor
            connection.last_sent = None
            self._ensure_pusher()
            return snapshot
        if name == "unsubscribe":
            connection.cursor = None
            return None
        command = self._commands.get(name)
        if command is None:
            raise _BadRequest(f"unknown command {name!r}")
        try:
            arguments = check_arguments(command, args)
        except CommandError as err:
            raise _BadRequest(str(err)) from None
        return await command.call(**arguments)

    def _hello(self, connection: _Connection, args: dict[str, Any]) -> dict[str, Any]:
        version = args.get("protocol")
        if version != PROTOCOL:
            raise _BadRequest(f"protocol {version!r} is not spoken here: this daemon "
                              f"(tapedeck {__version__}) speaks protocol {PROTOCOL}")
        connection.greeted = True
        connection.client = str(args.get("client", ""))[:40]
        log.info("%s attached", connection)
        return {"protocol": PROTOCOL, "version": __version__, "pid": os.getpid(),
                "profile": self.engine.settings.store.profile,
                "database": str(self.engine.store.path)}

    # -- pushing deltas

    def _ensure_pusher(self) -> None:
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.create_task(self._push(), name="control-push")

    async def _push(self) -> None:
        """One timer for every subscriber; it stops when the last one leaves, so an
        idle daemon with no client attached does no work here."""
        interval = 1.0 / self.settings.push_hz
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            # At a fixed rate, not a fixed pause: the time spent encoding is not added to
            # every period. A late tick is not made up: the next one is a period away.
            next_at = max(next_at + interval, loop.time())
            await asyncio.sleep(next_at - loop.time())
            subscribers = [c for c in self._connections if c.cursor is not None]
            if not subscribers:
                return
            for connection in subscribers:
                assert connection.cursor is not None
                delta = self.engine.changes(connection.cursor)
                signature = _signature(delta)
                if signature == connection.last_sent and _only_marks(delta):
                    continue  # nothing new: an idle market sends nothing
                connection.last_sent = signature
                connection.send({"push": "delta", "delta": delta})


class _BadRequest(Exception):
    pass


def _signature(delta: EngineDelta) -> tuple[Any, ...]:
    return (delta.status, tuple(delta.positions), delta.account, delta.risk,
            tuple(delta.strategies))


def _only_marks(delta: EngineDelta) -> bool:
    """Nothing in the delta but the views re-sent every time (status, marks)."""
    return not (delta.rows or delta.bars or delta.building or delta.logs or delta.orders
                or delta.fills or delta.watchlists is not None or delta.scan is not None
                or delta.resync)
