"""The strategy API: what a strategy declares, and the context it acts through.

A strategy is a class with a pydantic `Params` model (types, bounds, defaults), the
indicators it needs (`indicators()`), and handlers: `on_bar` (required), `on_quote`,
`on_fill`, `on_start` and `on_stop` (optional). It acts only through its
`StrategyContext`: `buy`, `sell`, `target_position`, `cancel` and `signal`, and reads
its own positions, the bars and the indicator values up to the current bar (never a
value computed with a later bar). It never talks to a broker: what it asks for becomes
an intent that its owner (the live host or the backtester) sends through risk.

The same class runs unchanged live and in a backtest: both drive it through a
`StrategyRunner` (core/strategies/runner.py); only the owner of the runner differs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from core.indicators import Indicator
from core.model import Bar, Fill, OrderType, Quote, Side

if TYPE_CHECKING:
    from core.strategies.runner import StrategyContext


class StrategyMode(StrEnum):
    """What a strategy instance may do: nothing, signal, trade on paper, trade."""

    OFF = "off"
    OBSERVE = "observe"  # signals only: shown and notified, no orders
    PAPER = "paper"  # orders to the paper venue, even when a real broker is configured
    LIVE = "live"  # orders to the configured broker

    @property
    def trades(self) -> bool:
        return self in (StrategyMode.PAPER, StrategyMode.LIVE)

    def cycled(self) -> StrategyMode:
        """The next mode in the order the pane's key steps through."""
        order = list(StrategyMode)
        return order[(order.index(self) + 1) % len(order)]


class StrategyParams(BaseModel):
    """Base of every strategy's parameters: unknown names are refused, values are
    immutable once the instance runs (an edit makes a new model)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SizedParams(StrategyParams):
    """How big a position a strategy takes: a fixed number of shares, or (quantity 0)
    as many whole shares as `position_value` buys at the last close."""

    quantity: int = Field(default=0, ge=0, le=1_000_000,
                          description="Shares per position; 0 sizes by position_value.")
    position_value: float = Field(default=10_000.0, gt=0, le=100_000_000,
                                  description="Money per position when quantity is 0.")


ParamsT = TypeVar("ParamsT", bound=StrategyParams)


class Strategy(ABC, Generic[ParamsT]):
    """Subclass it, set `name`, `title`, `description` and `Params`, and implement
    `indicators` and `on_bar`. Register it under the `tapedeck.strategies` entry point
    (or drop its module into the user strategy folder)."""

    name: ClassVar[str]  # the registry name, e.g. "ma_cross"
    title: ClassVar[str]  # one line for the pane and the pickers
    description: ClassVar[str] = ""
    Params: ClassVar[type[StrategyParams]]
    interval: ClassVar[str] = "1d"  # the bars on_bar receives: "1d" (daily) or "1m"

    def __init__(self, params: ParamsT, context: StrategyContext) -> None:
        self.params = params
        self.ctx = context

    @abstractmethod
    def indicators(self) -> Sequence[Indicator]:
        """The indicators the strategy reads (from its parameters): the runner keeps
        each one per symbol, computed up to the current bar."""

    def on_start(self) -> None:
        """The instance starts trading (history is loaded, indicators are warm)."""

    @abstractmethod
    def on_bar(self, bar: Bar) -> None:
        """A bar of one of the instance's symbols completed."""

    def on_quote(self, quote: Quote) -> None:
        """A quote of one of the instance's symbols (only called when overridden)."""

    def on_fill(self, fill: Fill) -> None:
        """One of the instance's orders filled (in part)."""

    def on_stop(self) -> None:
        """The instance stops (switched off, or the engine stops)."""

    # ------------------------------------------------------------------ helpers

    def shares_for(self, symbol: str) -> Decimal:
        """The position size the parameters ask for, in whole shares (0 when there is
        no price yet)."""
        params = self.params
        quantity = getattr(params, "quantity", 0)
        if quantity:
            return Decimal(quantity)
        value = float(getattr(params, "position_value", 0.0))
        close = self.ctx.close(symbol)
        if not close > 0:
            return Decimal(0)
        return Decimal(int(value // close))


def overrides_on_quote(strategy_class: type[Strategy[StrategyParams]]) -> bool:
    return strategy_class.on_quote is not Strategy.on_quote


__all__ = [
    "OrderType",
    "ParamsT",
    "Side",
    "SizedParams",
    "Strategy",
    "StrategyMode",
    "StrategyParams",
]
