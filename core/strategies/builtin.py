"""The built-in strategies. Each is documented in the README with its parameters.

All of them act on completed daily bars and size positions with `SizedParams` (a fixed
number of shares, or as many as `position_value` buys). Entries and exits are market
orders that fill at the next session's open; the Donchian breakout also rests a
good-till-canceled stop under its position, moved up each bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from core.indicators import Indicator
from core.model import Bar, Fill, Side, TimeInForce
from core.strategies.base import SizedParams, Strategy

if TYPE_CHECKING:
    from core.strategies.runner import StrategyContext


class MaCrossParams(SizedParams):
    fast: int = Field(default=10, ge=1, le=500, description="Bars of the fast average.")
    slow: int = Field(default=30, ge=2, le=1000, description="Bars of the slow average.")
    average: Literal["sma", "ema"] = Field(default="sma", description="sma or ema.")
    allow_short: bool = Field(default=False,
                              description="Go short on a cross down instead of flat.")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MaCrossParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        return self


class MaCross(Strategy[MaCrossParams]):
    """Long when the fast average crosses above the slow one; flat (or short) when it
    crosses below."""

    name = "ma_cross"
    title = "Moving-average crossover"
    description = ("Buys when the fast moving average crosses above the slow one and "
                   "sells when it crosses back below (going short if allow_short).")
    Params = MaCrossParams

    def __init__(self, params: MaCrossParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        self.fast = Indicator(params.average, params.fast)
        self.slow = Indicator(params.average, params.slow)
        self.crossed_above = f"{self.fast.key} crossed above {self.slow.key}"
        self.crossed_below = f"{self.fast.key} crossed below {self.slow.key}"

    def indicators(self) -> Sequence[Indicator]:
        return (self.fast, self.slow)

    def on_start(self) -> None:
        # Lines read relative to the current bar: the cheapest read there is, for a
        # strategy that looks at every bar of a universe.
        self.lines = {symbol: (self.ctx.line(symbol, self.fast), self.ctx.line(symbol, self.slow))
                      for symbol in self.ctx.symbols}

    def on_bar(self, bar: Bar) -> None:
        symbol = bar.symbol
        fast_line, slow_line = self.lines[symbol]
        fast, fast_before = fast_line.now_and_before()
        slow, slow_before = slow_line.now_and_before()
        if fast > slow and fast_before <= slow_before:
            self.ctx.target_position(symbol, self.shares_for(symbol), reason=self.crossed_above)
        elif fast < slow and fast_before >= slow_before:
            target = -self.shares_for(symbol) if self.params.allow_short else Decimal(0)
            self.ctx.target_position(symbol, target, reason=self.crossed_below)


class RsiReversionParams(SizedParams):
    window: int = Field(default=14, ge=2, le=200, description="RSI bars.")
    oversold: float = Field(default=30.0, gt=0, lt=100, description="Buy below this RSI.")
    exit: float = Field(default=50.0, gt=0, lt=100,
                        description="Close the position when RSI crosses this level.")
    allow_short: bool = Field(default=False,
                              description="Also sell short above 100 - oversold.")

    @model_validator(mode="after")
    def _levels(self) -> RsiReversionParams:
        if not self.oversold < self.exit < 100 - self.oversold:
            raise ValueError(f"need oversold ({self.oversold:g}) < exit ({self.exit:g}) < "
                             f"100 - oversold ({100 - self.oversold:g})")
        return self


class RsiReversion(Strategy[RsiReversionParams]):
    """Buys a stretched fall (RSI under `oversold`) and sells into the bounce."""

    name = "rsi_reversion"
    title = "RSI mean reversion"
    description = ("Buys when RSI falls below oversold and closes when it recovers to "
                   "exit; with allow_short, the mirror image above 100 - oversold.")
    Params = RsiReversionParams

    def __init__(self, params: RsiReversionParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        self.rsi = Indicator("rsi", params.window)

    def indicators(self) -> Sequence[Indicator]:
        return (self.rsi,)

    def on_bar(self, bar: Bar) -> None:
        ctx, p, symbol = self.ctx, self.params, bar.symbol
        rsi = ctx.value(symbol, self.rsi)
        if rsi != rsi:
            return
        held = ctx.position(symbol) + ctx.working(symbol)
        size = self.shares_for(symbol)
        if held == 0:
            if rsi < p.oversold:
                ctx.target_position(symbol, size, reason=f"RSI {rsi:.1f} < {p.oversold:g}")
            elif p.allow_short and rsi > 100 - p.oversold:
                ctx.target_position(symbol, -size,
                                    reason=f"RSI {rsi:.1f} > {100 - p.oversold:g}")
        elif (held > 0 and rsi >= p.exit) or (held < 0 and rsi <= p.exit):
            ctx.target_position(symbol, 0, reason=f"RSI {rsi:.1f} back to {p.exit:g}")


class BollingerReversionParams(SizedParams):
    window: int = Field(default=20, ge=2, le=500, description="Bars of the bands.")
    deviations: float = Field(default=2.0, gt=0, le=10,
                              description="Band width in standard deviations.")
    allow_short: bool = Field(default=False, description="Also sell closes above the upper band.")


class BollingerReversion(Strategy[BollingerReversionParams]):
    """Buys a close under the lower band, closes at the middle band."""

    name = "bollinger_reversion"
    title = "Bollinger band mean reversion"
    description = ("Buys when the close falls below the lower band and closes the "
                   "position when it gets back to the middle band; with allow_short, "
                   "sells above the upper band.")
    Params = BollingerReversionParams

    def __init__(self, params: BollingerReversionParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        self.bands = tuple(Indicator(kind, params.window, deviations=params.deviations)
                           for kind in ("bb_lower", "bb_middle", "bb_upper"))

    def indicators(self) -> Sequence[Indicator]:
        return self.bands

    def on_bar(self, bar: Bar) -> None:
        ctx, symbol, close = self.ctx, bar.symbol, bar.close
        lower_ind, middle_ind, upper_ind = self.bands
        lower, middle = ctx.value(symbol, lower_ind), ctx.value(symbol, middle_ind)
        upper = ctx.value(symbol, upper_ind)
        if middle != middle:
            return
        held = ctx.position(symbol) + ctx.working(symbol)
        if held == 0:
            if close < lower:
                ctx.target_position(symbol, self.shares_for(symbol),
                                    reason=f"close {close:.2f} under the lower band {lower:.2f}")
            elif self.params.allow_short and close > upper:
                ctx.target_position(symbol, -self.shares_for(symbol),
                                    reason=f"close {close:.2f} over the upper band {upper:.2f}")
        elif (held > 0 and close >= middle) or (held < 0 and close <= middle):
            ctx.target_position(symbol, 0, reason=f"close {close:.2f} back at the middle "
                                f"band {middle:.2f}")


class DonchianBreakoutParams(SizedParams):
    entry: int = Field(default=20, ge=2, le=500,
                       description="Buy a close above the highest high of this many bars.")
    exit: int = Field(default=10, ge=2, le=500,
                      description="Sell a close below the lowest low of this many bars.")
    atr_window: int = Field(default=14, ge=2, le=200, description="ATR bars for the stop.")
    atr_stop: float = Field(default=2.0, gt=0, le=20,
                            description="Stop this many ATRs under the highest close since "
                                        "entry (0 < x).")


class DonchianBreakout(Strategy[DonchianBreakoutParams]):
    """A channel breakout, long only, protected by a rising ATR stop."""

    name = "donchian_breakout"
    title = "Donchian breakout with an ATR stop"
    description = ("Buys when the close breaks above the highest high of the last `entry` "
                   "bars; sells when it breaks below the lowest low of the last `exit` "
                   "bars. A stop rests atr_stop ATRs under the highest close since entry "
                   "and only ever moves up.")
    Params = DonchianBreakoutParams

    def __init__(self, params: DonchianBreakoutParams, context: StrategyContext) -> None:
        super().__init__(params, context)
        self.channel = (Indicator("donchian_upper", params.entry),
                        Indicator("donchian_lower", params.exit),
                        Indicator("atr", params.atr_window))
        self._stop: dict[str, tuple[str, Decimal]] = {}  # symbol -> (order ref, price)
        self._highest: dict[str, float] = {}

    def indicators(self) -> Sequence[Indicator]:
        return self.channel

    def on_bar(self, bar: Bar) -> None:
        ctx, symbol, close = self.ctx, bar.symbol, bar.close
        upper_ind, lower_ind, atr_ind = self.channel
        # The channel of the bars before this one: today's high is in today's channel.
        upper, lower = ctx.value(symbol, upper_ind, 1), ctx.value(symbol, lower_ind, 1)
        atr = ctx.value(symbol, atr_ind)
        held = ctx.position(symbol)
        pending = ctx.working(symbol) - self._stop_quantity(symbol)
        if held == 0 and pending == 0:
            self._drop_stop(symbol)
            if close > upper:
                ctx.target_position(symbol, self.shares_for(symbol),
                                    reason=f"close {close:.2f} broke the {self.params.entry}-bar "
                                    f"high {upper:.2f}")
            return
        if held > 0 and close < lower:
            self._drop_stop(symbol)
            ctx.target_position(symbol, 0, reason=f"close {close:.2f} broke the "
                                f"{self.params.exit}-bar low {lower:.2f}")
            return
        if held > 0 and atr == atr:
            self._highest[symbol] = max(self._highest.get(symbol, close), close)
            self._raise_stop(symbol, held, self._highest[symbol] - self.params.atr_stop * atr)

    def on_fill(self, fill: Fill) -> None:
        symbol = fill.symbol
        if fill.side == Side.BUY and symbol not in self._highest:
            self._highest[symbol] = float(fill.price)
        if self.ctx.position(symbol) <= 0:
            self._highest.pop(symbol, None)
            self._stop.pop(symbol, None)

    def _stop_quantity(self, symbol: str) -> Decimal:
        held = self._stop.get(symbol)
        if held is None or held[0] not in self.ctx.open_orders(symbol):
            return Decimal(0)
        return -self.ctx.position(symbol)

    def _raise_stop(self, symbol: str, held: Decimal, level: float) -> None:
        current = self._stop.get(symbol)
        if level <= 0:
            return
        if current is not None and current[0] in self.ctx.open_orders(symbol):
            if Decimal(str(round(level, 2))) <= current[1]:
                return  # a stop only ever rises
            self.ctx.cancel(current[0])
        # No reason: moving a protective stop is not a signal.
        ref = self.ctx.sell(symbol, held, stop=level, tif=TimeInForce.GTC)
        if ref is not None:
            self._stop[symbol] = (ref, Decimal(str(round(level, 2))))

    def _drop_stop(self, symbol: str) -> None:
        current = self._stop.pop(symbol, None)
        if current is not None:
            self.ctx.cancel(current[0])
        self._highest.pop(symbol, None)


BUILTIN_STRATEGIES: tuple[type[Strategy[Any]], ...] = (
    MaCross, RsiReversion, BollingerReversion, DonchianBreakout)
