"""In-process publish/subscribe for the engine's hot path, and the bounded queues that
sit at its I/O boundaries.

`Bus.publish` calls each subscriber synchronously: no await, no queue, no task switch,
so a quote reaches state, portfolio and strategies in a few microseconds. Work that is
slow (disk, network, the screen) subscribes through a bounded queue whose overflow
policy is stated where it is made:

- `ConflatingQueue`: keeps only the latest item per key (quotes per symbol). A slow
  reader sees fewer, newer quotes; it never falls behind.
- `ReliableQueue`: never drops. `put` waits while the queue is full (backpressure);
  `put_nowait` from synchronous code raises `QueueFull` rather than lose an item.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Handler = Callable[[Any], None]


class Bus:
    """Synchronous dispatch by event type.

    A subscriber that raises is logged and skipped for that event; it does not stop the
    other subscribers or the publisher, because one faulty consumer must never stall the
    market-data path.
    """

    __slots__ = ("_handlers", "errors")

    def __init__(self) -> None:
        self._handlers: dict[type, tuple[Handler, ...]] = {}
        self.errors = 0

    def subscribe(self, event_type: type, handler: Handler) -> Callable[[], None]:
        """Call `handler(event)` for every published event of exactly `event_type`.

        Returns a function that removes the subscription.
        """
        self._handlers[event_type] = (*self._handlers.get(event_type, ()), handler)

        def unsubscribe() -> None:
            current = self._handlers.get(event_type, ())
            self._handlers[event_type] = tuple(h for h in current if h is not handler)

        return unsubscribe

    def publish(self, event: object) -> None:
        for handler in self._handlers.get(type(event), ()):
            try:
                handler(event)
            except Exception:
                self.errors += 1
                log.exception("subscriber %r failed on %r", handler, event)

    def handlers(self, event_type: type) -> tuple[Handler, ...]:
        """The subscribers of a type, for a producer that dispatches a batch itself."""
        return self._handlers.get(event_type, ())


class QueueFull(Exception):
    """A never-drop queue is full: the item was not accepted."""


class ConflatingQueue(Generic[T]):
    """Latest item per key; `get_batch` waits for at least one and takes them all.

    Overflow policy: conflate. An item replaces the pending one with the same key, so
    the queue never holds more than one item per key (bounded by the key space).
    """

    def __init__(self, key: Callable[[T], Hashable]) -> None:
        self._key = key
        self._pending: dict[Hashable, T] = {}
        self._ready = asyncio.Event()
        self.conflated = 0

    def put_nowait(self, item: T) -> None:
        key = self._key(item)
        if key in self._pending:
            self.conflated += 1
            # Re-insert so the batch order follows the latest arrival.
            del self._pending[key]
        self._pending[key] = item
        self._ready.set()

    def __len__(self) -> int:
        return len(self._pending)

    async def get_batch(self) -> list[T]:
        while not self._pending:
            self._ready.clear()
            await self._ready.wait()
        batch = list(self._pending.values())
        self._pending.clear()
        self._ready.clear()
        return batch


class ReliableQueue(Generic[T]):
    """A FIFO that never drops an item.

    Overflow policy: backpressure. `put` waits for room; `put_nowait` raises
    `QueueFull` so a synchronous producer learns at once instead of losing data.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize <= 0:
            raise ValueError("a reliable queue needs a positive bound")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._not_full.set()

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return len(self._items) >= self.maxsize

    def put_nowait(self, item: T) -> None:
        if self.full():
            raise QueueFull(f"queue holds {len(self._items)} of {self.maxsize} items")
        self._items.append(item)
        self._not_empty.set()
        if self.full():
            self._not_full.clear()

    async def put(self, item: T) -> None:
        while self.full():
            await self._not_full.wait()
        self.put_nowait(item)

    async def get_batch(self, limit: int | None = None) -> list[T]:
        """Wait for at least one item, then take up to `limit` (all if None)."""
        while not self._items:
            self._not_empty.clear()
            await self._not_empty.wait()
        count = len(self._items) if limit is None else min(limit, len(self._items))
        batch = [self._items.popleft() for _ in range(count)]
        if not self._items:
            self._not_empty.clear()
        self._not_full.set()
        return batch
