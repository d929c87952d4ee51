"""A child process for the order crash test, run as `python order_storm_proc.py DB SEED`.

It opens the real engine (a paused replay and the paper venue) on DB, prints "ready"
once every watchlist symbol has a price, and waits for a line on stdin: the test starts
each child a trial ahead, so that its ~2 s of imports and start-up overlap the previous
trial. Then it places ORDERS orders from several tasks at once, so that their intents
share the store's batches, and cancels some of the resting ones. It prints:

  ACK <client order id>   once `desk.place` returned: the order's intent is committed;
  FILL <venue> <fill id>  once a store flush that began after the fill was reported has
                          finished: the journal's row for the fill is committed;
  DONE                    after the last order, then it waits to be killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from decimal import Decimal
from pathlib import Path

from core.config import Settings
from core.engine import Engine
from core.model import OrderRequest, OrderType, Side
from core.state import CommandError

ORDERS = 1_000
WORKERS = 8
FLUSH_EVERY = 20  # orders a worker places between two flushes that acknowledge fills
STARTING_CASH = Decimal(100_000_000)
SYMBOLS = ("AAPL", "MSFT", "JPM", "XOM", "CVX")
CENT = Decimal("0.01")


def storm_settings(db: Path) -> Settings:
    """`tests.conftest.make_settings` with the database at `db` and every risk limit a
    storm would hit turned off, so the orders are refused by nothing but the venue."""
    return Settings.model_validate({
        "store": {"path": str(db)},
        "replay": {"start": "2019-03-14", "start_time": "11:00", "paused": True,
                   "resume": False},
        "ui": {"flash_ms": 0},
        "watchlists": {"Core": ["AAPL", "MSFT", "JPM"], "Energy": ["XOM", "CVX"]},
        "risk": {"max_order_quantity": 1_000_000, "max_order_notional": 0,
                 "max_position_notional": 0, "max_gross_exposure": 0, "max_open_orders": 0,
                 "rate_limit_orders": 0, "price_collar_pct": 0, "max_daily_loss": 0,
                 "max_drawdown": 0},
        "paper": {"account": "margin", "starting_cash": str(STARTING_CASH)},
    })


class Storm:
    def __init__(self, engine: Engine, seed: int) -> None:
        self.engine = engine
        self.desk = engine.desk
        self.rng = random.Random(seed)
        self.left = ORDERS
        self.resting: list[str] = []  # limit orders placed away from the market
        self.fills_printed = 0

    def say(self, line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def request(self) -> tuple[OrderRequest, bool]:
        """A random order, and whether it is meant to rest."""
        rng = self.rng
        symbol = rng.choice(SYMBOLS)
        side = rng.choice((Side.BUY, Side.SELL))
        quantity = Decimal(rng.randint(1, 50))
        roll = rng.random()
        if roll < 0.6:
            return OrderRequest(symbol, side, quantity), False
        last = Decimal(repr(self.engine.market.states[symbol].last))
        rests = roll < 0.85
        # 3% away on the passive side rests on a paused replay; 1% through the market
        # fills at once (at the quote, never worse than the limit).
        away = Decimal("0.97") if rests else Decimal("1.01")
        if side == Side.SELL:
            away = 2 - away
        price = (last * away).quantize(CENT)
        return OrderRequest(symbol, side, quantity, OrderType.LIMIT, limit_price=price), rests

    async def acknowledge_fills(self) -> None:
        # Every fill in the list now had its journal write queued when it was appended,
        # so once a flush that starts after this point is over, those writes are in.
        known = len(self.desk.fills)
        await self.engine.store.flush()
        if known > self.fills_printed:
            for fill in self.desk.fills[self.fills_printed:known]:
                self.say(f"FILL {fill.venue} {fill.fill_id}")
            self.fills_printed = known

    async def worker(self) -> None:
        placed = 0
        while self.left > 0:
            if self.resting and self.rng.random() < 0.15:
                coid = self.resting.pop(self.rng.randrange(len(self.resting)))
                # A resting order may have been canceled already by another worker's
                # pick, or filled: the desk says so, and the storm goes on.
                with contextlib.suppress(CommandError):
                    await self.desk.cancel(coid)
                continue
            self.left -= 1
            request, rests = self.request()
            try:
                order = await self.desk.place(request)
            except CommandError as err:
                self.say(f"REFUSED {err}")
                continue
            self.say(f"ACK {order.client_order_id}")
            if rests:
                self.resting.append(order.client_order_id)
            placed += 1
            if placed % FLUSH_EVERY == 0:
                await self.acknowledge_fills()


def priced(engine: Engine) -> bool:
    """Whether every symbol the storm trades has a last price (a NaN until the feed's
    first batch)."""
    states = engine.market.states
    return all(s in states and states[s].last == states[s].last for s in SYMBOLS)


async def storm(db: Path, seed: int) -> None:
    engine = await Engine.open(storm_settings(db))
    await engine.start()
    for _ in range(3_000):
        if priced(engine):
            break
        await asyncio.sleep(0.01)
    else:
        raise SystemExit("no prices after 30 s")
    run = Storm(engine, seed)
    run.say("ready")
    if not await asyncio.to_thread(sys.stdin.readline):
        await engine.stop()  # stdin closed: the test ended without running this trial
        return
    await asyncio.gather(*(run.worker() for _ in range(WORKERS)))
    await run.acknowledge_fills()
    run.say("DONE")
    await asyncio.Event().wait()  # the parent kills it (SIGKILL) when it likes


def main() -> None:
    db, seed = Path(sys.argv[1]), int(sys.argv[2])
    asyncio.run(storm(db, seed))


if __name__ == "__main__":
    main()
