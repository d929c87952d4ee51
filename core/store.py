"""SQLite persistence: one database file per profile, written by one engine at a time.

Every write goes through a single writer task. It takes everything queued (up to
`BATCH_LIMIT` statements) and commits it as one transaction, because aiosqlite hops to
its thread on every await (~86 us) and each commit syncs the WAL to disk, while
executemany runs ~385k rows/s: batching is what makes thousands of small writes a
second cheap. The writer runs with synchronous=FULL: the order journal's rule is that
an intent is on disk before a broker sees it, and with one commit per batch the fsync
is paid once per batch, not per row. A statement's future resolves only after its
transaction commits, so an acknowledged write survives the process being killed, and
the machine losing power.

Reads use a second, read-only connection. In WAL mode it never blocks the writer and
never sees a half-written batch.

The file itself (its path, its errors, its single-instance lock) is `core.dbfile`; the
schema is `core.schema`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Self

import aiosqlite

from core.dbfile import (
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    StoreSchemaTooNewError,
    StoreUnavailableError,
    claim,
    classify,
    default_database_path,
    release_lock,
)
from core.schema import MIGRATIONS

__all__ = [
    "MIGRATIONS",
    "AuditEntry",
    "Store",
    "StoreCorruptError",
    "StoreError",
    "StoreLockedError",
    "StoreSchemaTooNewError",
    "StoreUnavailableError",
    "default_database_path",
]

log = logging.getLogger(__name__)

BATCH_LIMIT = 5_000
BUSY_TIMEOUT_MS = 5_000

BarRow = tuple[int, float, float, float, float, float]


class AuditEntry(NamedTuple):
    id: int
    ts_ns: int
    kind: str
    message: str
    data: Any


@dataclass(slots=True)
class _Job:
    """Statements that commit together and the one future that reports on them."""

    statements: list[tuple[str, list[Sequence[Any]]]]
    future: asyncio.Future[None]
    size: int


def _runs(statements: Iterable[tuple[str, list[Sequence[Any]]]]) -> list[tuple[str, list[Any]]]:
    """Merge consecutive statements with the same SQL so each run is one executemany."""
    merged: list[tuple[str, list[Any]]] = []
    for sql, rows in statements:
        if merged and merged[-1][0] == sql:
            merged[-1][1].extend(rows)
        else:
            merged.append((sql, list(rows)))
    return merged


async def _connect(path: Path, *, read_only: bool) -> aiosqlite.Connection:
    target = path.as_uri() + "?mode=ro" if read_only else path.as_uri()
    # isolation_level=None: the writer issues BEGIN IMMEDIATE / COMMIT itself.
    conn = await aiosqlite.connect(target, uri=True, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


class Store:
    """The profile database. Open with `await Store.open(path)`; close with `close()`."""

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection | None,
        reader: aiosqlite.Connection,
        lock_fd: int | None,
        schema_version: int,
    ) -> None:
        self._path = path
        self._writer = writer
        self._reader = reader
        self._lock_fd = lock_fd
        self._schema_version = schema_version
        self._queue: deque[_Job] = deque()
        self._wakeup = asyncio.Event()
        self._in_flight: list[_Job] = []
        self._closing = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        if writer is not None:
            self._task = asyncio.create_task(self._write_loop(), name=f"store-writer {path}")

    @classmethod
    async def open(cls, path: Path, *, read_only: bool = False) -> Store:
        """Open (creating and migrating unless read_only) the database at `path`.

        Raises a StoreError subclass whose message names the file.
        """
        path, lock_fd = claim(path, read_only=read_only)
        conns: list[aiosqlite.Connection] = []
        try:
            conns.append(await _connect(path, read_only=read_only))
            version = await _prepare(path, conns[0], read_only=read_only)
            if not read_only:
                conns.append(await _connect(path, read_only=True))
                await conns[1].execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except BaseException as err:
            for conn in conns:
                with contextlib.suppress(Exception):
                    await conn.close()
            if lock_fd is not None:
                release_lock(path, lock_fd)
            if isinstance(err, sqlite3.Error):
                raise classify(path, err) from err
            raise
        writer = None if read_only else conns[0]
        return cls(path, writer, conns[-1], lock_fd, version)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def schema_version(self) -> int:
        return self._schema_version

    @property
    def read_only(self) -> bool:
        return self._writer is None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- writing -------------------------------------------------------------------------

    def submit(self, sql: str, params: Sequence[Any] = ()) -> asyncio.Future[None]:
        """Queue one statement; the future resolves once it is committed (never dropped).

        Cancelling the future does not withdraw the write.
        """
        return self._enqueue([(sql, [tuple(params)])], 1)

    def submit_many(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> asyncio.Future[None]:
        """Queue statements that commit in one transaction, all or none."""
        return self._enqueue([(sql, [tuple(p)]) for sql, p in statements], len(statements))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self.submit(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        materialized: list[Sequence[Any]] = [tuple(row) for row in rows]
        await self._enqueue([(sql, materialized)], len(materialized))

    async def flush(self) -> None:
        """Wait until everything submitted so far has been committed (or has failed)."""
        if self._task is None or self._task.done() or (not self._queue and not self._in_flight):
            return
        await self._enqueue([], 0)

    def _enqueue(
        self, statements: list[tuple[str, list[Sequence[Any]]]], size: int
    ) -> asyncio.Future[None]:
        if self._writer is None:
            raise StoreError(self._path, f"{self._path} was opened read-only")
        if self._closing or self._task is None or self._task.done():
            raise StoreError(self._path, f"{self._path} is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(statements, future, size))
        self._wakeup.set()
        return future

    async def _write_loop(self) -> None:
        try:
            while True:
                while not self._queue:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                size = 0
                batch = self._in_flight
                while self._queue and (not batch or size + self._queue[0].size <= BATCH_LIMIT):
                    job = self._queue.popleft()
                    batch.append(job)
                    size += job.size
                await self._write_batch(batch)
                batch.clear()
        except BaseException as err:
            # Nothing else will ever commit these, so nobody may be left waiting on them.
            closed = StoreError(self._path, f"{self._path}: the writer stopped: {err!r}")
            for job in (*self._in_flight, *self._queue):
                _fail(job.future, closed)
            self._in_flight.clear()
            self._queue.clear()
            raise

    async def _write_batch(self, batch: list[_Job]) -> None:
        # Exception, not just sqlite3.Error: a bad parameter (an int over 64 bits raises
        # OverflowError) must fail its own future, not stop the writer.
        try:
            await self._commit([s for job in batch for s in job.statements])
        except Exception as err:
            if len(batch) == 1:
                _fail(batch[0].future, err)
                return
            log.warning("a batch of %d writes failed (%s); retrying one by one", len(batch), err)
            for job in batch:
                try:
                    await self._commit(job.statements)
                except Exception as job_err:
                    _fail(job.future, job_err)
                else:
                    _resolve(job.future)
            return
        for job in batch:
            _resolve(job.future)

    async def _commit(self, statements: list[tuple[str, list[Sequence[Any]]]]) -> None:
        if not statements:
            return
        assert self._writer is not None
        conn = self._writer
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in _runs(statements):
                if len(rows) == 1:
                    await conn.execute(sql, rows[0])
                elif rows:
                    await conn.executemany(sql, rows)
            await conn.execute("COMMIT")
        except Exception:
            # Some errors (disk full, I/O) already rolled back; ROLLBACK then complains.
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
            raise

    # -- reading -------------------------------------------------------------------------

    def _reading(self) -> aiosqlite.Connection:
        if self._closed:
            raise StoreError(self._path, f"{self._path} is closed")
        return self._reader

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(await self._reading().execute_fetchall(sql, tuple(params)))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        async with self._reading().execute(sql, tuple(params)) as cursor:
            row: sqlite3.Row | None = await cursor.fetchone()
            return row

    async def integrity_check(self) -> str:
        """The full `PRAGMA integrity_check`: 'ok', or the problems one per line."""
        rows = await self.fetchall("PRAGMA integrity_check")
        return "\n".join(str(row[0]) for row in rows)

    # -- lifecycle -----------------------------------------------------------------------

    async def close(self) -> None:
        """Commit everything queued, then close the database and release the lock."""
        if self._closed:
            return
        try:
            await self.flush()
        finally:
            self._closing = True
            self._closed = True
            self._wakeup.set()
            try:
                if self._task is not None:
                    await asyncio.wait({self._task})
                    if not self._task.cancelled() and (err := self._task.exception()):
                        log.error("%s: the writer had stopped: %r", self._path, err)
            finally:
                for conn in {id(c): c for c in (self._reader, self._writer) if c}.values():
                    with contextlib.suppress(Exception):
                        await conn.close()
                if self._lock_fd is not None:
                    release_lock(self._path, self._lock_fd)
                    self._lock_fd = None

    # -- schema v1 helpers ---------------------------------------------------------------

    async def get_setting(self, key: str, default: Any = None) -> Any:
        row = await self.fetchone("SELECT value FROM settings WHERE key = ?", (key,))
        return default if row is None else json.loads(row[0])

    async def set_setting(self, key: str, value: Any) -> None:
        await self.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    async def load_watchlists(self) -> list[tuple[str, list[str]]]:
        rows = await self.fetchall(
            "SELECT w.name, s.symbol FROM watchlists AS w "
            "LEFT JOIN watchlist_symbols AS s ON s.watchlist = w.name "
            "ORDER BY w.position, w.name, s.position"
        )
        lists: dict[str, list[str]] = {}
        for name, symbol in rows:
            symbols = lists.setdefault(name, [])
            if symbol is not None:
                symbols.append(symbol)
        return list(lists.items())

    async def save_watchlist(self, name: str, symbols: Sequence[str], position: int) -> None:
        """Create or replace a watchlist and its symbols in one transaction."""
        if repeated := [s for s, count in Counter(symbols).items() if count > 1]:
            raise ValueError(f"{', '.join(repeated)} appears twice in watchlist {name!r}")
        statements: list[tuple[str, Sequence[Any]]] = [
            (
                "INSERT INTO watchlists (name, position) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (name, position),
            ),
            ("DELETE FROM watchlist_symbols WHERE watchlist = ?", (name,)),
        ]
        statements += [
            (
                "INSERT INTO watchlist_symbols (watchlist, symbol, position) VALUES (?, ?, ?)",
                (name, symbol, index),
            )
            for index, symbol in enumerate(symbols)
        ]
        await self.submit_many(statements)

    async def delete_watchlist(self, name: str) -> None:
        await self.execute("DELETE FROM watchlists WHERE name = ?", (name,))

    async def rename_watchlist(self, old: str, new: str) -> None:
        """Rename (symbols follow by ON UPDATE CASCADE); IntegrityError if `new` exists."""
        await self.execute("UPDATE watchlists SET name = ? WHERE name = ?", (new, old))

    def audit(
        self,
        kind: str,
        message: str,
        data: Mapping[str, Any] | None = None,
        ts_ns: int | None = None,
    ) -> asyncio.Future[None]:
        """Record an audit entry. Safe to ignore the future: a failure is logged."""
        future = self.submit(
            "INSERT INTO audit_log (ts, kind, message, data) VALUES (?, ?, ?, ?)",
            (
                time.time_ns() if ts_ns is None else ts_ns,
                kind,
                message,
                None if data is None else json.dumps(dict(data)),
            ),
        )
        future.add_done_callback(_log_audit_failure)
        return future

    async def recent_audit(self, limit: int = 100) -> list[AuditEntry]:
        """The newest `limit` entries, newest first."""
        rows = await self.fetchall(
            "SELECT id, ts, kind, message, data FROM audit_log ORDER BY ts DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [
            AuditEntry(id_, ts, kind, message, None if data is None else json.loads(data))
            for id_, ts, kind, message, data in rows
        ]

    async def save_bars(
        self, symbol: str, interval: str, rows: Iterable[BarRow], source: str
    ) -> None:
        """Upsert bars; `rows` are (ts_ns, open, high, low, close, volume)."""
        await self.executemany(
            "INSERT OR REPLACE INTO bars "
            "(symbol, interval, ts, open, high, low, close, volume, source) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((symbol, interval, *row, source) for row in rows),
        )

    async def load_bars(
        self, symbol: str, interval: str, start_ns: int, end_ns: int
    ) -> list[BarRow]:
        """Bars with start_ns <= ts < end_ns, oldest first."""
        rows = await self.fetchall(
            "SELECT ts, open, high, low, close, volume FROM bars "
            "WHERE symbol = ? AND interval = ? AND ts >= ? AND ts < ? ORDER BY ts",
            (symbol, interval, start_ns, end_ns),
        )
        return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fail(future: asyncio.Future[None], err: BaseException) -> None:
    if not future.done():
        future.set_exception(err)


def _log_audit_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and (err := future.exception()) is not None:
        log.error("audit entry was not saved: %s", err)


async def _prepare(path: Path, conn: aiosqlite.Connection, *, read_only: bool) -> int:
    """Set pragmas, check the file is sound, migrate; returns the schema version."""
    if not read_only:
        async with conn.execute("PRAGMA journal_mode=WAL") as cursor:
            mode = await cursor.fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            log.warning("%s: journal_mode is %s, not wal", path, mode and mode[0])
        await conn.execute("PRAGMA synchronous=FULL")  # see the module docstring
    await conn.execute("PRAGMA foreign_keys=ON")
    await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    problems = [str(row[0]) for row in await conn.execute_fetchall("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise StoreCorruptError(path, "quick_check: " + "; ".join(problems[:3]))
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row is not None else 0
    latest = len(MIGRATIONS)
    if version > latest:
        raise StoreSchemaTooNewError(path, version, latest)
    if read_only:
        return version
    for target in range(version + 1, latest + 1):
        script = f"BEGIN IMMEDIATE;\n{MIGRATIONS[target - 1]}\nPRAGMA user_version = {target};\n"
        try:
            await conn.executescript(script + "COMMIT;")
        except sqlite3.Error as err:
            with contextlib.suppress(sqlite3.Error):
                await conn.execute("ROLLBACK")
            raise StoreError(path, f"cannot upgrade {path} to schema v{target}: {err}") from err
        log.info("%s: migrated to schema v%d", path, target)
    return latest
