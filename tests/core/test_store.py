from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core import store as store_module
from core.store import (
    MIGRATIONS,
    Store,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    StoreSchemaTooNewError,
    StoreUnavailableError,
    default_database_path,
)

HELPER = Path(__file__).with_name("store_writer_proc.py")
REPO = Path(__file__).resolve().parents[2]
AUDIT_INSERT = "INSERT INTO audit_log (ts, kind, message) VALUES (?, ?, ?)"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    # Resolved, as Store.path and the error messages are.
    return (tmp_path / "profile" / "test.sqlite").resolve()


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(db_path)
    yield opened
    await opened.close()


def write_file(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def table_names(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()


# -- opening and migrating -------------------------------------------------------------

LATEST = len(MIGRATIONS)


async def test_new_database_is_migrated_to_latest(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        assert store.schema_version == LATEST
        assert store.path == db_path
        assert not store.read_only
        mode = await store.fetchone("PRAGMA journal_mode")
        assert mode is not None
        assert mode[0] == "wal"
    assert user_version(db_path) == LATEST
    assert {"settings", "watchlists", "watchlist_symbols", "bars", "audit_log"} <= table_names(
        db_path
    )
    assert not db_path.with_name("test.sqlite.lock").exists()


async def test_reopen_is_idempotent_and_keeps_data(db_path: Path) -> None:
    async with await Store.open(db_path) as store:
        await store.set_setting("answer", 42)
    async with await Store.open(db_path) as store:
        assert store.schema_version == LATEST
        assert await store.get_setting("answer") == 42
    assert user_version(db_path) == LATEST


async def test_appended_migration_applies_on_next_open(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await Store.open(db_path):
        pass
    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, "CREATE TABLE extra (x);"])
    async with await Store.open(db_path) as store:
        assert store.schema_version == LATEST + 1
    assert user_version(db_path) == LATEST + 1
    assert "extra" in table_names(db_path)


async def test_failed_migration_rolls_back_and_releases_the_lock(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await Store.open(db_path):
        pass
    broken = "CREATE TABLE half_done (x); CREATE TABLE settings (x);"
    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, broken])
    with pytest.raises(StoreError, match=f"schema v{LATEST + 1}") as caught:
        await Store.open(db_path)
    assert str(db_path) in str(caught.value)
    assert user_version(db_path) == LATEST
    assert "half_done" not in table_names(db_path)
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    async with await Store.open(db_path) as store:
        assert store.schema_version == LATEST


def test_default_database_path_is_under_the_user_data_dir(isolated_environment: Path) -> None:
    expected = isolated_environment / "data" / "tapedeck"
    assert default_database_path() == expected / "default.sqlite"
    assert default_database_path("paper") == expected / "paper.sqlite"


# -- domain helpers --------------------------------------------------------------------


async def test_settings_round_trip(store: Store) -> None:
    assert await store.get_setting("missing") is None
    assert await store.get_setting("missing", {"x": 1}) == {"x": 1}
    values: dict[str, Any] = {
        "int": 7,
        "float": 1.5,
        "text": "héllo",
        "list": [1, "two", None],
        "dict": {"nested": {"ok": True}},
        "null": None,
    }
    for key, value in values.items():
        await store.set_setting(key, value)
    for key, value in values.items():
        assert await store.get_setting(key, "default") == value
    await store.set_setting("int", 8)
    assert await store.get_setting("int") == 8


async def test_watchlists_save_load_in_position_order(store: Store) -> None:
    assert await store.load_watchlists() == []
    await store.save_watchlist("Tech", ["MSFT", "AAPL", "NVDA"], 1)
    await store.save_watchlist("Core", ["SPY", "QQQ"], 0)
    await store.save_watchlist("Empty", [], 2)
    assert await store.load_watchlists() == [
        ("Core", ["SPY", "QQQ"]),
        ("Tech", ["MSFT", "AAPL", "NVDA"]),
        ("Empty", []),
    ]
    # Saving again replaces the symbols wholesale and can move the list.
    await store.save_watchlist("Tech", ["NVDA", "AMD"], 5)
    assert await store.load_watchlists() == [
        ("Core", ["SPY", "QQQ"]),
        ("Empty", []),
        ("Tech", ["NVDA", "AMD"]),
    ]


async def test_watchlist_rename_and_delete(store: Store) -> None:
    await store.save_watchlist("Core", ["SPY", "QQQ"], 0)
    await store.save_watchlist("Energy", ["XOM"], 1)
    await store.rename_watchlist("Core", "Main")
    assert await store.load_watchlists() == [("Main", ["SPY", "QQQ"]), ("Energy", ["XOM"])]
    with pytest.raises(sqlite3.IntegrityError):
        await store.rename_watchlist("Main", "Energy")
    await store.delete_watchlist("Main")
    assert await store.load_watchlists() == [("Energy", ["XOM"])]
    orphans = await store.fetchone(
        "SELECT count(*) FROM watchlist_symbols WHERE watchlist = ?", ("Main",)
    )
    assert orphans is not None
    assert orphans[0] == 0


async def test_save_watchlist_rejects_duplicates_and_is_atomic(store: Store) -> None:
    await store.save_watchlist("Core", ["SPY"], 0)
    with pytest.raises(ValueError, match="SPY appears twice"):
        await store.save_watchlist("Core", ["SPY", "QQQ", "SPY"], 0)
    # A list whose insert fails half way leaves the previous version untouched.
    with pytest.raises(sqlite3.IntegrityError):
        await store.submit_many(
            [
                ("DELETE FROM watchlist_symbols WHERE watchlist = ?", ("Core",)),
                ("INSERT INTO watchlist_symbols VALUES (?, ?, ?)", ("Core", "A", 0)),
                ("INSERT INTO watchlist_symbols VALUES (?, ?, ?)", ("Core", "A", 1)),
            ]
        )
    assert await store.load_watchlists() == [("Core", ["SPY"])]


async def test_audit_log(store: Store) -> None:
    store.audit("order", "bought 10 AAPL", {"qty": 10}, ts_ns=2_000)
    store.audit("order", "sold 5 AAPL", ts_ns=3_000)
    await store.audit("risk", "halted", {"reason": "loss limit"}, ts_ns=1_000)
    entries = await store.recent_audit(10)
    assert [(e.ts_ns, e.kind, e.message, e.data) for e in entries] == [
        (3_000, "order", "sold 5 AAPL", None),
        (2_000, "order", "bought 10 AAPL", {"qty": 10}),
        (1_000, "risk", "halted", {"reason": "loss limit"}),
    ]
    assert len(await store.recent_audit(2)) == 2
    await store.audit("clock", "now")
    newest = (await store.recent_audit(1))[0]
    assert newest.message == "now"
    assert newest.ts_ns > 1_000_000_000 * 1_000_000_000  # a real clock, in nanoseconds


async def test_failed_audit_is_logged_not_raised(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    future = store.audit("x", "too big a timestamp", ts_ns=2**70)
    await asyncio.wait({future})
    assert isinstance(future.exception(), OverflowError)
    assert "audit entry was not saved" in caplog.text


async def test_bars_round_trip_and_upsert(store: Store) -> None:
    rows = [(ts, 10.0 + ts, 11.0 + ts, 9.0 + ts, 10.5 + ts, 100.0 * ts) for ts in range(10)]
    await store.save_bars("AAPL", "1m", rows, "replay")
    await store.save_bars("MSFT", "1m", rows[:3], "replay")
    assert await store.load_bars("AAPL", "1m", 0, 10) == rows
    assert await store.load_bars("AAPL", "1m", 3, 6) == rows[3:6]
    assert await store.load_bars("AAPL", "1d", 0, 10) == []
    await store.save_bars("AAPL", "1m", [(4, 1.0, 2.0, 0.5, 1.5, 7.0)], "sim")
    assert (await store.load_bars("AAPL", "1m", 4, 5)) == [(4, 1.0, 2.0, 0.5, 1.5, 7.0)]
    source = await store.fetchone("SELECT source FROM bars WHERE symbol = 'AAPL' AND ts = 4")
    assert source is not None
    assert source[0] == "sim"


# -- the writer ------------------------------------------------------------------------


async def test_ten_thousand_submits_commit_in_order_in_few_transactions(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = 0
    real_commit = Store._commit

    async def counting_commit(self: Store, statements: Any) -> None:
        nonlocal commits
        commits += 1
        await real_commit(self, statements)

    monkeypatch.setattr(Store, "_commit", counting_commit)
    futures = [store.submit(AUDIT_INSERT, (i, "batch", f"m{i}")) for i in range(10_000)]
    await asyncio.gather(*futures)
    rows = await store.fetchall("SELECT ts, message FROM audit_log ORDER BY id")
    assert [(row[0], row[1]) for row in rows] == [(i, f"m{i}") for i in range(10_000)]
    assert commits <= 3


async def test_flush_waits_for_everything_submitted(store: Store) -> None:
    for i in range(500):
        store.submit(AUDIT_INSERT, (i, "flush", "m"))
    await store.flush()
    count = await store.fetchone("SELECT count(*) FROM audit_log")
    assert count is not None
    assert count[0] == 500
    await store.flush()  # nothing pending: returns at once


async def test_failing_statement_fails_only_its_own_future(store: Store) -> None:
    futures = [
        store.submit(AUDIT_INSERT, (1, "ok", "before")),
        store.submit("INSERT INTO settings (key, value) VALUES (?, NULL)", ("bad",)),
        store.submit(AUDIT_INSERT, (2, "ok", "after")),
        store.submit(AUDIT_INSERT, (2**70, "overflow", "too big")),
        store.submit(AUDIT_INSERT, (3, "ok", "last")),
    ]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert results[0] is None
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert "NOT NULL" in str(results[1])
    assert results[2] is None
    assert isinstance(results[3], OverflowError)
    assert results[4] is None
    rows = await store.fetchall("SELECT message FROM audit_log ORDER BY id")
    assert [row[0] for row in rows] == ["before", "after", "last"]
    # The writer is still healthy.
    await store.execute(AUDIT_INSERT, (4, "ok", "later"))


async def test_executemany(store: Store) -> None:
    await store.executemany(AUDIT_INSERT, ((i, "many", str(i)) for i in range(1_000)))
    count = await store.fetchone("SELECT count(*) FROM audit_log WHERE kind = 'many'")
    assert count is not None
    assert count[0] == 1_000


async def test_close_commits_pending_writes_and_refuses_new_ones(db_path: Path) -> None:
    store = await Store.open(db_path)
    for i in range(100):
        store.submit(AUDIT_INSERT, (i, "pending", "m"))
    await store.close()
    await store.close()  # twice is harmless
    with pytest.raises(StoreError, match="closed"):
        store.submit(AUDIT_INSERT, (0, "late", "m"))
    with pytest.raises(StoreError, match="closed"):
        await store.fetchall("SELECT 1")
    async with await Store.open(db_path) as reopened:
        count = await reopened.fetchone("SELECT count(*) FROM audit_log")
        assert count is not None
        assert count[0] == 100


# -- failures on open ------------------------------------------------------------------


async def test_second_open_in_process_is_locked(store: Store, db_path: Path) -> None:
    with pytest.raises(StoreLockedError) as caught:
        await Store.open(db_path)
    assert caught.value.pid == os.getpid()
    assert f"pid {os.getpid()}" in str(caught.value)
    assert str(db_path) in str(caught.value)
    # Refusing the second open must not disturb the first.
    await store.set_setting("still", "works")


@pytest.mark.slow
async def test_lock_held_by_another_process(db_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HELPER),
        "hold",
        str(db_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), timeout=10) == b"ready\n"
        with pytest.raises(StoreLockedError) as caught:
            await Store.open(db_path)
        assert caught.value.pid == proc.pid
        assert f"pid {proc.pid}" in str(caught.value)
        # Reading is still allowed while the other process owns the database.
        async with await Store.open(db_path, read_only=True) as reader:
            assert reader.schema_version == LATEST
    finally:
        proc.stdin.close()
        # Reading to EOF lets the pipe transport close before the loop does.
        await asyncio.wait_for(proc.communicate(), timeout=10)
    assert proc.returncode == 0
    async with await Store.open(db_path) as store:
        assert store.schema_version == LATEST


async def test_garbage_file_is_reported_corrupt(db_path: Path) -> None:
    write_file(db_path, random.Random(5).randbytes(64 * 1024))
    with pytest.raises(StoreCorruptError) as caught:
        await Store.open(db_path)
    message = str(caught.value)
    assert str(db_path) in message
    assert "damaged" in message
    assert "move it aside" in message
    assert caught.value.path == db_path
    assert not db_path.with_name("test.sqlite.lock").exists()
    with pytest.raises(StoreCorruptError):
        await Store.open(db_path, read_only=True)


async def test_newer_schema_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    for read_only in (False, True):
        with pytest.raises(StoreSchemaTooNewError) as caught:
            await Store.open(db_path, read_only=read_only)
        message = str(caught.value)
        expected = f"written by a newer tapedeck (schema v99, this build knows up to v{LATEST})"
        assert expected in message
        assert str(db_path) in message
    assert user_version(db_path) == 99


async def test_read_only_alongside_a_writer(store: Store, db_path: Path) -> None:
    await store.set_setting("k", 1)
    async with await Store.open(db_path, read_only=True) as reader:
        assert reader.read_only
        assert await reader.get_setting("k") == 1
        await store.set_setting("k", 2)
        assert await reader.get_setting("k") == 2
        with pytest.raises(StoreError, match="read-only"):
            reader.submit(AUDIT_INSERT, (0, "x", "y"))
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await reader.fetchall("DELETE FROM settings")
        assert await reader.integrity_check() == "ok"
    await store.set_setting("k", 3)  # closing the reader did not disturb the writer
    assert await store.get_setting("k") == 3


async def test_read_only_on_a_missing_file(db_path: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="no database at") as caught:
        await Store.open(db_path, read_only=True)
    assert str(db_path) in str(caught.value)
    assert not db_path.parent.exists()


async def test_directory_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    path = blocker / "db" / "test.sqlite"
    with pytest.raises(StoreUnavailableError) as caught:
        await Store.open(path)
    assert str(path) in str(caught.value)


async def test_database_path_that_is_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "dir.sqlite"
    path.mkdir()
    with pytest.raises(StoreUnavailableError) as caught:
        await Store.open(path)
    assert str(path) in str(caught.value)
    assert not path.with_name("dir.sqlite.lock").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
async def test_unwritable_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            await Store.open(locked / "test.sqlite")
        assert str(locked / "test.sqlite") in str(caught.value)
    finally:
        locked.chmod(0o700)
