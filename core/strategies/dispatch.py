"""Sending what strategies ask for: orders through the trading desk (so through risk
and the journal), cancels, and signals to the log and the bus.

An order is not sent when its instance was switched off or to observe after asking, or
when its symbol's data is stale or missing (strategies do not trade on stale data); a
refusal by risk is logged against the instance and the order leaves its book.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.model import LogLevel
from core.orders import Order
from core.state import CommandError
from core.strategies.base import StrategyMode
from core.strategies.instances import Instance
from core.strategies.runner import CancelIntent, PlaceIntent, Signal

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.bus import Bus
    from core.market import MarketState
    from core.trading import TradingDesk


@dataclass(slots=True)
class SendCounters:
    sent: int = 0
    refused: int = 0
    skipped_stale: int = 0
    signals: int = 0
    failures: int = 0
    recent_signals: list[Signal] = field(default_factory=list)


class IntentSender:
    def __init__(self, desk: TradingDesk, market: MarketState, bus: Bus,
                 log_line: Callable[[LogLevel, str, str], None],
                 owners: dict[str, Instance]) -> None:
        self.desk = desk
        self.market = market
        self.bus = bus
        self.log_line = log_line
        self.owners = owners  # client order id -> its instance, shared with the host
        self.counters = SendCounters()

    async def send(self, instance: Instance, intent: PlaceIntent | CancelIntent | Signal
                    ) -> None:
        runner = instance.runner
        assert runner is not None
        if isinstance(intent, Signal):
            self.signal(instance, intent)
            return
        if isinstance(intent, CancelIntent):
            working = runner.book.working.get(intent.ref)
            if working is not None and working.client_order_id:
                await self.cancel(instance, working.client_order_id)
            return
        request = intent.request
        if not runner.active or not runner.mode.trades:
            runner.order_ended(intent.ref)  # switched off or to observe meanwhile
            return
        why_not = self.untradable(request.symbol)
        if why_not:
            runner.order_ended(intent.ref)
            self.counters.skipped_stale += 1
            self.log_line(LogLevel.WARNING, "strategy",
                          f"{instance.id}: {request.side.value} {request.quantity:f} "
                          f"{request.symbol} not sent: {why_not}")
            return

        def issued(order: Order, ref: str = intent.ref) -> None:
            runner.order_placed(ref, order.client_order_id)
            self.owners[order.client_order_id] = instance

        try:
            await self.desk.place(request, issued=issued)
        except CommandError as err:
            runner.order_ended(intent.ref)
            self.counters.refused += 1
            self.log_line(LogLevel.WARNING, "strategy", f"{instance.id}: {err}")
            return
        self.counters.sent += 1

    def untradable(self, symbol: str) -> str:
        """Why a strategy may not trade `symbol` now ('' when it may)."""
        state = self.market.states.get(symbol)
        if state is None or state.instrument.source == "unknown":
            return f"the feed has no data for {symbol}"
        if state.stale:
            return f"{symbol}'s data is stale"
        return ""

    async def cancel(self, instance: Instance, client_order_id: str) -> None:
        order = self.desk.orders.get(client_order_id)
        if order is None or not order.is_open:
            return
        try:
            await self.desk.cancel(client_order_id)
        except CommandError as err:
            self.log_line(LogLevel.WARNING, "strategy", f"{instance.id}: {err}")

    async def cancel_working(self, instance: Instance) -> None:
        runner = instance.runner
        if runner is None:
            return
        for working in list(runner.book.working.values()):
            if working.client_order_id:
                await self.cancel(instance, working.client_order_id)

    def signal(self, instance: Instance, signal: Signal) -> None:
        self.counters.signals += 1
        recent = self.counters.recent_signals
        recent.append(signal)
        del recent[:-200]
        what = "placing an order" if signal.acted else (
            "observing: no order" if instance.mode == StrategyMode.OBSERVE else "signal")
        self.log_line(LogLevel.INFO, "signal", f"{instance.id}: {signal.side.value} "
                      f"{signal.symbol}: {signal.reason} ({what})")
        # The notifier listens for these (kind `signal`).
        self.bus.publish(signal)
