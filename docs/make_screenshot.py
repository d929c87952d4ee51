"""Save the README's screenshot: the workstation as the app itself renders and saves it.

    .venv/bin/python docs/make_screenshot.py [PATH] [--size 120x40]

The default settings (default watchlists, default theme) over a replay paused at a
fixed moment (2019-03-14 14:30 New York), in a throwaway config and database, with a
few paper trades placed through the engine client as the order ticket would (two
fills and a resting limit), so the picture is the same on every machine and shows the
blotter and the risk panel at work. `make screenshot` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.client import EngineClient
    from core.state import QuoteRow

MOMENT = {"start": "2019-03-14", "start_time": "14:30", "paused": True, "resume": False}


async def save(path: Path, size: tuple[int, int]) -> None:
    from core.config import Settings
    from tui.app import create_app
    from tui.widgets.chart import ChartPane
    from tui.widgets.quote_board import QuoteBoard

    with tempfile.TemporaryDirectory(prefix="tapedeck-shot-") as home:
        settings = Settings.model_validate({
            "replay": MOMENT,
            "ui": {"flash_ms": 0},
            "store": {"path": str(Path(home) / "shot.sqlite")},
        })
        app = create_app(settings)
        async with app.run_test(size=size) as pilot:
            for _ in range(500):
                await pilot.pause(0.02)
                screen = app.workstation
                if screen is None or not screen.is_mounted:
                    continue
                rows = screen.query_one(QuoteBoard).rows
                chart = screen.query_one(ChartPane)
                if (rows and all(r.last == r.last for r in rows.values())
                        and chart.symbol is not None and not chart.pending
                        and not screen.workers):
                    break
            else:
                raise SystemExit("the workstation did not show quotes")
            await trade(app.client, rows)
            await pilot.pause(1.5)  # the next pulls; the order-rate window empties
            app.save_screenshot(filename=path.name, path=str(path.parent))


async def trade(client: EngineClient, rows: Mapping[str, QuoteRow]) -> None:
    """A long, a short and a bid resting under the market."""
    from core.model import OrderRequest, OrderType, Side

    await client.place_order(OrderRequest("AAPL", Side.BUY, Decimal(100)))
    await client.place_order(OrderRequest("FB", Side.SELL, Decimal(50)))
    under = Decimal(repr(rows["MSFT"].last * 0.99)).quantize(Decimal("0.01"))
    await client.place_order(OrderRequest("MSFT", Side.BUY, Decimal(200), OrderType.LIMIT,
                                          limit_price=under))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path,
                        default=Path(__file__).with_name("workstation.svg"))
    parser.add_argument("--size", default="120x40", help="COLUMNSxROWS")
    args = parser.parse_args()
    columns, rows = (int(n) for n in args.size.lower().split("x"))
    os.environ["TEXTUAL_ANIMATIONS"] = "none"
    asyncio.run(save(args.path.resolve(), (columns, rows)))
    sys.stdout.write(f"saved {args.path}\n")


if __name__ == "__main__":
    main()
