"""The account over time: the session's start and end (day P&L counts from the last
close; a new session lifts what the loss limits set), the daily-loss and drawdown limits
applied as equity moves, the broker's buying power refreshed, and the equity curve
(account snapshots, with the positions and their marks) saved every few seconds and at
each session's end. Part of the trading desk, kept apart for size.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from core.brokers.base import BrokerError
from core.model import LogLevel, MarketPhase, TradingState
from core.portfolio import ZERO
from core.risk import StateChange
from core.store import StoreError

if TYPE_CHECKING:
    from core.trading import TradingDesk

log = logging.getLogger(__name__)

MONITOR_EVERY_S = 0.25
ACCOUNT_REFRESH_S = 1.0


class AccountWatch:
    def __init__(self, desk: TradingDesk) -> None:
        self.desk = desk
        self.buying_power = ZERO
        self.session_day = ""
        self.market_open = False

    async def begin(self, buying_power: Decimal) -> None:
        """The desk has its book: start the day where the last close left it."""
        self.buying_power = buying_power
        portfolio = self.desk.portfolio
        portfolio.day_start_equity = await self.previous_close_equity()
        self.desk.risk.begin_day(portfolio.equity())
        self.session_day = str(self.desk.calendar.session_date(self.desk.now_ns()))

    async def previous_close_equity(self) -> Decimal | None:
        """Day P&L counts from the last snapshot before today's session."""
        today = self.desk.calendar.session_date(self.desk.now_ns())
        opens = self.desk.calendar.open_close_ns(today)[0]
        row = await self.desk.store.fetchone(
            "SELECT equity FROM account_snapshots WHERE ts < ? ORDER BY ts DESC LIMIT 1",
            (opens,))
        return Decimal(row["equity"]) if row is not None else None

    async def run(self) -> None:
        last_snapshot = last_account = time.monotonic()
        every = self.desk.settings.trading.snapshot_every_s
        fills_seen = len(self.desk.fills)
        while True:
            await asyncio.sleep(MONITOR_EVERY_S)
            try:
                await self._roll_session()
                summary = self.desk.portfolio.summary()
                change = self.desk.risk.observe(summary.equity, summary.day_pnl)
                if change is not None:
                    self.state_changed(change)
                now = time.monotonic()
                # Buying power moves with prices (every second is enough) and with fills
                # (the trader looks for it right after one: at the next tick).
                if now - last_account >= ACCOUNT_REFRESH_S or len(self.desk.fills) != fills_seen:
                    last_account = now
                    fills_seen = len(self.desk.fills)
                    self.buying_power = (await self.desk.broker.account()).buying_power
                if now - last_snapshot >= every:
                    last_snapshot = now
                    await self.save_snapshot()
            except (StoreError, BrokerError) as err:
                log.warning("trading monitor: %s", err)

    async def _roll_session(self) -> None:
        now = self.desk.now_ns()
        market_open = self.desk.calendar.phase(now) == MarketPhase.OPEN
        if self.market_open and not market_open:
            await self.save_snapshot()  # the session's close: a point of the equity curve
        self.market_open = market_open
        day = str(self.desk.calendar.session_date(now))
        if day == self.session_day:
            return
        await self.save_snapshot()  # the previous day's last
        self.session_day = day
        self.desk.portfolio.begin_day()
        change = self.desk.risk.begin_day(self.desk.portfolio.equity())
        if change is not None:
            self.state_changed(change)

    async def save_snapshot(self) -> None:
        """Persist the account (the equity curve) and the positions with their marks."""
        summary = self.desk.portfolio.summary()
        now = self.desk.now_ns()
        statements: list[tuple[str, Sequence[Any]]] = [(
            "INSERT OR REPLACE INTO account_snapshots (ts, cash, equity, gross_exposure, "
            "net_exposure, realized, unrealized, day_pnl) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (now, str(summary.cash), str(summary.equity), str(summary.gross_exposure),
             str(summary.net_exposure), str(summary.realized), str(summary.unrealized),
             str(summary.day_pnl)))]
        for position in self.desk.portfolio.positions.values():
            if position.quantity == 0:
                statements.append(("DELETE FROM positions WHERE symbol = ?",
                                   (position.symbol,)))
                continue
            # No price yet (a restart before the feed's first trade): keep the saved mark.
            mark = "" if position.last_price != position.last_price else repr(
                position.last_price)
            statements.append((
                "INSERT INTO positions (symbol, quantity, average_cost, realized, updated, "
                "mark) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (symbol) DO UPDATE SET "
                "quantity = excluded.quantity, average_cost = excluded.average_cost, "
                "realized = excluded.realized, updated = excluded.updated, "
                "mark = coalesce(nullif(excluded.mark, ''), positions.mark)",
                (position.symbol, str(position.quantity), str(position.average_cost),
                 str(position.realized), now, mark)))
        await self.desk.store.submit_many(statements)

    def state_changed(self, change: StateChange) -> None:
        who = "automatically" if change.automatic else "by the trader"
        message = (f"trading state {change.old.value} -> {change.new.value} ({who}): "
                   f"{change.reason}")
        level = LogLevel.INFO if change.new == TradingState.ACTIVE else LogLevel.WARNING
        self.desk.log_line(level, "risk", message)
        self.desk.store.audit("trading state", message, {"old": change.old.value,
                                                    "new": change.new.value,
                                                    "automatic": change.automatic},
                         ts_ns=self.desk.now_ns())
        self.desk.bus.publish(change)

