from __future__ import annotations

import asyncio

import pytest

from core.bus import Bus, ConflatingQueue, QueueFull, ReliableQueue
from core.model import Quote, Trade


def test_publish_dispatches_by_type_in_subscription_order() -> None:
    bus = Bus()
    seen: list[tuple[str, object]] = []
    bus.subscribe(Quote, lambda e: seen.append(("first", e)))
    bus.subscribe(Quote, lambda e: seen.append(("second", e)))
    bus.subscribe(Trade, lambda e: seen.append(("trade", e)))
    quote = Quote("AAPL", 1, 1.0, 1.1, 100, 100)
    bus.publish(quote)
    assert seen == [("first", quote), ("second", quote)]


def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    bus = Bus()
    seen = []

    def broken(event: object) -> None:
        raise RuntimeError("boom")

    bus.subscribe(Quote, broken)
    bus.subscribe(Quote, seen.append)
    bus.publish(Quote("AAPL", 1, 1.0, 1.1, 100, 100))
    assert len(seen) == 1
    assert bus.errors == 1


def test_unsubscribe() -> None:
    bus = Bus()
    seen: list[object] = []
    unsubscribe = bus.subscribe(Quote, seen.append)
    unsubscribe()
    bus.publish(Quote("AAPL", 1, 1.0, 1.1, 100, 100))
    assert seen == []


async def test_conflating_queue_keeps_the_latest_per_key() -> None:
    queue: ConflatingQueue[Quote] = ConflatingQueue(key=lambda q: q.symbol)
    for price in (1.0, 2.0, 3.0):
        queue.put_nowait(Quote("AAPL", int(price), price, price, 1, 1))
    queue.put_nowait(Quote("MSFT", 9, 9.0, 9.0, 1, 1))
    batch = await queue.get_batch()
    assert [(q.symbol, q.bid) for q in batch] == [("AAPL", 3.0), ("MSFT", 9.0)]
    assert queue.conflated == 2
    assert len(queue) == 0


async def test_reliable_queue_never_drops_and_applies_backpressure() -> None:
    queue: ReliableQueue[int] = ReliableQueue(maxsize=3)
    for i in range(3):
        queue.put_nowait(i)
    with pytest.raises(QueueFull):
        queue.put_nowait(3)
    blocked = asyncio.create_task(queue.put(3))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    assert await queue.get_batch(limit=2) == [0, 1]
    await asyncio.wait_for(blocked, 1)
    assert await queue.get_batch() == [2, 3]


def test_reliable_queue_needs_a_bound() -> None:
    with pytest.raises(ValueError, match="positive bound"):
        ReliableQueue(0)
