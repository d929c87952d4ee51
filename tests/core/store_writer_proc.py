"""A child process for the store tests, run as `python store_writer_proc.py MODE DB`.

hold:  open the store, print "ready", keep it (and its lock) until stdin closes.
write: insert audit rows 1, 2, 3, ... as fast as the store takes them, printing each id
       only after its commit resolved, until killed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

from core.store import Store

INSERT = "INSERT INTO audit_log (id, ts, kind, message, data) VALUES (?, ?, ?, ?, ?)"
# Bound the queue so a producer faster than the disk does not just fill memory.
MAX_OUTSTANDING = 20_000


def expected_row(row_id: int) -> tuple[int, int, str, str, str]:
    """The content of row `row_id`, so the reader can check it was stored intact."""
    digest = hashlib.sha256(str(row_id).encode()).hexdigest()
    data = json.dumps({"i": row_id, "sha": digest, "pad": digest * 3})
    return (row_id, row_id * 1_000 + 7, "crash", f"row {row_id} {digest[:12]}", data)


async def hold(path: Path) -> None:
    store = await Store.open(path)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await store.close()


async def write(path: Path) -> None:
    store = await Store.open(path)
    out = sys.stdout
    acked = 0

    def acknowledge(row_id: int) -> Callable[[asyncio.Future[None]], None]:
        def done(future: asyncio.Future[None]) -> None:
            nonlocal acked
            if not future.cancelled() and future.exception() is None:
                out.write(f"{row_id}\n")
                acked = row_id

        return done

    row_id = 0
    while True:
        for _ in range(200):
            row_id += 1
            last = store.submit(INSERT, expected_row(row_id))
            last.add_done_callback(acknowledge(row_id))
        if row_id - acked > MAX_OUTSTANDING:
            await last
        else:
            await asyncio.sleep(0)
        out.flush()


def main() -> None:
    mode, db = sys.argv[1], Path(sys.argv[2])
    asyncio.run(hold(db) if mode == "hold" else write(db))


if __name__ == "__main__":
    main()
