"""Kill a writing engine with SIGKILL and check that every write it acknowledged survived.

The child prints a row's id only after the store resolved that row's future, so an id
read here is a promise the store made; the database reopened afterwards must keep it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

import pytest

from core.store import Store
from tests.core.store_writer_proc import expected_row

HELPER = Path(__file__).with_name("store_writer_proc.py")
REPO = Path(__file__).resolve().parents[2]


async def run_and_kill(db: Path, delay: float) -> list[int]:
    """Start a writer, let it write for `delay` seconds after its first ack, kill it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(HELPER), "write", str(db), stdout=asyncio.subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    acked: list[int] = []
    first = asyncio.Event()

    async def read_acks() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            acked.append(int(line))
            first.set()

    reader = asyncio.create_task(read_acks())
    try:
        await asyncio.wait_for(first.wait(), timeout=10)
        await asyncio.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await reader
    assert proc.returncode == -signal.SIGKILL
    return acked


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(5))
async def test_acknowledged_writes_survive_sigkill(tmp_path: Path, trial: int) -> None:
    db = tmp_path / "crash.sqlite"
    acked = await run_and_kill(db, random.Random(1000 + trial).uniform(0.05, 0.9))
    assert len(acked) > 100, "the writer barely started; the trial proves nothing"
    assert acked == sorted(acked)

    # Opening for writing proves the dead process's lock went with it.
    async with await Store.open(db) as store:
        rows = await store.fetchall("SELECT id, ts, kind, message, data FROM audit_log")
        stored = {row[0]: tuple(row) for row in rows}
        for row_id in acked:
            assert stored.get(row_id) == expected_row(row_id), f"acknowledged row {row_id}"
        # Commits are FIFO, so what survived is a prefix of what was submitted, and rows
        # committed but not yet acknowledged are intact too.
        assert sorted(stored) == list(range(1, len(stored) + 1))
        for row_id, row in stored.items():
            assert row == expected_row(row_id)
        assert await store.integrity_check() == "ok"
