"""A child process for the reconciliation test, run as
`python alpaca_engine_proc.py DB TRADING_URL`: the real engine on DB, trading on the fake
Alpaca at TRADING_URL. It places two limit orders (AAPL 10, MSFT 5), prints
`PLACED <client order id>` for each once Alpaca has accepted it, and waits to be killed."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal
from pathlib import Path

from core.config import Settings
from core.engine import Engine
from core.model import OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from tests.core.test_engine import wait_for


async def main(db: Path, trading_url: str) -> None:
    settings = Settings.model_validate({
        "store": {"path": str(db)},
        "replay": {"start": "2019-03-14", "start_time": "11:00", "paused": True,
                   "resume": False},
        "watchlists": {"Core": ["AAPL", "MSFT", "JPM"], "Energy": ["XOM", "CVX"]},
        "trading": {"broker": "alpaca"},
        "alpaca": {"key_id": "test-key", "secret_key": "test-secret",
                   "paper_url": trading_url},
    })
    engine = await Engine.open(settings)
    await engine.start()
    await engine.wait_until_live(10)
    for symbol, quantity in (("AAPL", 10), ("MSFT", 5)):
        price = Decimal(f"{engine.market.states[symbol].last:.2f}")
        order = await engine.desk.place(OrderRequest(
            symbol, Side.BUY, Decimal(quantity), OrderType.LIMIT, TimeInForce.DAY,
            limit_price=price))
        await wait_for(lambda order=order: order.status == OrderStatus.ACCEPTED)
        await engine.store.flush()
        print("PLACED", order.client_order_id, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
