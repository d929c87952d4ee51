"""What a backtest is asked and what it gives back: plain data, kept apart from the
engine in core/backtest.py (which `make native` compiles) so that a spec pickles to a
grid's worker processes and a result is an ordinary Python object everywhere."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from core.metrics import Metrics, RoundTrip
from core.model import Fill
from core.orders import Order
from core.strategies.runner import Signal

FillAt = Literal["next_open", "close"]
FILL_AT: tuple[FillAt, ...] = ("next_open", "close")


class BacktestError(ValueError):
    """A backtest that cannot run as asked (no data, bad dates): a sentence for the
    trader."""


@dataclass(frozen=True, slots=True)
class BacktestSpec:
    strategy: str
    params: Mapping[str, Any]
    symbols: tuple[str, ...]
    start: date
    end: date
    cash: Decimal = Decimal(100_000)
    fill_at: FillAt = "next_open"

    def describe(self) -> str:
        shown = ", ".join(self.symbols[:6]) + (f" +{len(self.symbols) - 6}"
                                                if len(self.symbols) > 6 else "")
        return f"{self.strategy} on {shown}, {self.start} to {self.end}"


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order as the backtest left it."""

    client_order_id: str
    ts_ns: int
    symbol: str
    side: str
    quantity: Decimal
    order_type: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: str
    filled: Decimal
    reason: str

    @classmethod
    def of(cls, order: Order) -> OrderRecord:
        request = order.request
        # str() of a StrEnum is its value, without the enum's slow `value` property.
        return cls(order.client_order_id, order.created_ns, request.symbol,
                   str(request.side), request.quantity, str(request.order_type),
                   request.limit_price, request.stop_price, str(order.status),
                   order.filled_quantity, order.reason)


@dataclass(slots=True)
class BacktestResult:
    spec: BacktestSpec
    metrics: Metrics
    days: list[date]
    equity: list[float]
    trips: list[RoundTrip]
    orders: list[OrderRecord]
    fills: list[Fill]
    signals: list[Signal]
    refusals: list[str]
    failure: str = ""
    bars: int = 0
    elapsed_s: float = 0.0
    open_positions: dict[str, Decimal] = field(default_factory=dict)

    @property
    def bars_per_second(self) -> float:
        return self.bars / self.elapsed_s if self.elapsed_s > 0 else math.inf


Progress = Callable[[int, int], None]  # (sessions done, sessions in all)
