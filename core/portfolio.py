"""Positions, cash and P&L, derived from fills.

A position is the running sum of its fills at average cost: buying into a long (or
selling into a short) moves the average; trading against it realises P&L on the part
closed at the average; trading through zero closes the old side and opens the new one
at the fill price. Cash moves by every fill's value and commission, so two identities
hold at all times (and the tests check them): a position's quantity is the sum of its
signed fills, and cash is the starting cash minus the net value of fills and commissions.

Marking is the hot path: `mark` stores the latest price as a float and nothing else.
Equity, exposures and unrealised P&L are computed when asked for (a snapshot, a risk
check), in Decimal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from core.model import Fill

ZERO = Decimal(0)


def as_decimal(price: float) -> Decimal:
    """A market-data float as the Decimal it was printed as (repr, not binary value)."""
    return Decimal(repr(price))


@dataclass(slots=True)
class Position:
    symbol: str
    quantity: Decimal = ZERO  # negative when short
    average_cost: Decimal = ZERO  # per share, of the open quantity
    realized: Decimal = ZERO  # P&L closed so far, before commissions
    commissions: Decimal = ZERO
    last_price: float = float("nan")  # the latest mark

    def apply(self, fill: Fill) -> Decimal:
        """Add a fill; returns the P&L it realised."""
        signed = fill.signed_quantity
        self.commissions += fill.commission
        if self.quantity == 0 or (self.quantity > 0) == (signed > 0):
            total = self.quantity + signed
            self.average_cost = (self.average_cost * abs(self.quantity)
                                 + fill.price * abs(signed)) / abs(total)
            self.quantity = total
            return ZERO
        closing = min(abs(signed), abs(self.quantity))
        direction = 1 if self.quantity > 0 else -1
        realized = (fill.price - self.average_cost) * closing * direction
        self.realized += realized
        remaining = self.quantity + signed
        if remaining == 0:
            self.average_cost = ZERO
        elif (remaining > 0) != (self.quantity > 0):
            self.average_cost = fill.price  # went through zero: the rest opens here
        self.quantity = remaining
        return realized

    def market_value(self) -> Decimal:
        if self.quantity == 0:
            return ZERO
        price = self.mark_price()
        return self.quantity * price

    def mark_price(self) -> Decimal:
        """The last mark, or the average cost until a price has been seen."""
        return self.average_cost if self.last_price != self.last_price else as_decimal(
            self.last_price)

    def unrealized(self) -> Decimal:
        if self.quantity == 0:
            return ZERO
        return (self.mark_price() - self.average_cost) * self.quantity


@dataclass(slots=True)
class AccountSummary:
    cash: Decimal
    equity: Decimal
    realized: Decimal
    unrealized: Decimal
    gross_exposure: Decimal
    net_exposure: Decimal
    day_pnl: Decimal
    commissions: Decimal


@dataclass(slots=True)
class Portfolio:
    starting_cash: Decimal
    cash: Decimal = ZERO
    positions: dict[str, Position] = field(default_factory=dict)
    day_start_equity: Decimal | None = None
    fill_ids: set[tuple[str, str]] = field(default_factory=set)  # (venue, fill id)

    @classmethod
    def start(cls, starting_cash: Decimal) -> Portfolio:
        return cls(starting_cash=starting_cash, cash=starting_cash)

    def apply_fill(self, fill: Fill) -> bool:
        """Count a fill once (False when this venue's fill id was seen before)."""
        key = (fill.venue, fill.fill_id)
        if key in self.fill_ids:
            return False
        self.fill_ids.add(key)
        position = self.positions.get(fill.symbol)
        if position is None:
            position = self.positions[fill.symbol] = Position(fill.symbol)
        position.apply(fill)
        self.cash -= fill.signed_quantity * fill.price + fill.commission
        return True

    def mark(self, symbol: str, price: float) -> None:
        """The hot path: one dict lookup and one float store."""
        position = self.positions.get(symbol)
        if position is not None:
            position.last_price = price

    def position(self, symbol: str) -> Decimal:
        position = self.positions.get(symbol)
        return position.quantity if position is not None else ZERO

    def equity(self) -> Decimal:
        return self.cash + sum((p.market_value() for p in self.positions.values()), ZERO)

    def begin_day(self) -> None:
        """The session opened: day P&L counts from the equity now."""
        self.day_start_equity = self.equity()

    def summary(self) -> AccountSummary:
        values = [p.market_value() for p in self.positions.values()]
        equity = self.cash + sum(values, ZERO)
        start = self.day_start_equity if self.day_start_equity is not None else (
            self.starting_cash)
        return AccountSummary(
            cash=self.cash,
            equity=equity,
            realized=sum((p.realized for p in self.positions.values()), ZERO),
            unrealized=sum((p.unrealized() for p in self.positions.values()), ZERO),
            gross_exposure=sum((abs(v) for v in values), ZERO),
            net_exposure=sum(values, ZERO),
            day_pnl=equity - start,
            commissions=sum((p.commissions for p in self.positions.values()), ZERO),
        )
