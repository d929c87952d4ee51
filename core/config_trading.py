"""Settings for trading: the account and venue (`[trading]`, `[paper]`) and the risk
limits (`[risk]`). Part of `core.config.Settings`; kept apart only for size.

A limit of 0 turns that check off. Money is given as plain numbers in the account's
currency and held as Decimal.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from core.config_types import Section, SymbolList

Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)]


class TradingSettings(Section):
    broker: str = Field(default="paper", min_length=1,
                        description="Where orders go: paper (the built-in venue) or alpaca.")
    order_id_prefix: str = Field(
        default="td", pattern=r"^[A-Za-z0-9]{1,12}$",
        description="Prefix of client order ids: <prefix>-<yyyymmdd>-<seq>.")
    snapshot_every_s: float = Field(
        default=5.0, gt=0, le=3600,
        description="Seconds between saved account snapshots (the equity curve).")


class PaperSettings(Section):
    starting_cash: Money = Field(
        default=Decimal(100_000),
        description="Cash of a new paper account (an existing account keeps its own).")
    account: Literal["cash", "margin"] = Field(
        default="margin", description="cash: buy with cash only, no short sales; margin.")
    margin_multiplier: Decimal = Field(
        default=Decimal(2), ge=1, le=4, description="Buying power per unit of equity (margin).")
    slippage_bps: Decimal = Field(
        default=Decimal(1), ge=0, le=1000,
        description="Basis points a market (or triggered stop) order fills beyond the far side.")
    volume_share: float = Field(
        default=0.25, gt=0, le=1,
        description="Largest share of the volume traded (the displayed size on arrival) "
                    "one fill may take: bigger orders fill in parts.")
    latency_ms: float = Field(
        default=0.0, ge=0, le=10_000, description="Delay before the venue sees an order or cancel.")
    commission: Literal["per_share", "percent", "none"] = Field(
        default="per_share", description="Commission model.")
    commission_per_share: Money = Field(
        default=Decimal("0.005"), description="per_share: charge per share.")
    commission_minimum: Money = Field(
        default=Decimal(1), description="per_share: least charge per fill.")
    commission_percent: Decimal = Field(
        default=Decimal("0.05"), ge=0, le=10,
        description="percent: charge as % of the fill's value.")


class RiskSettings(Section):
    max_order_quantity: Decimal = Field(default=Decimal(10_000), ge=0,
                                        description="Most shares in one order.")
    max_order_notional: Money = Field(default=Decimal(50_000),
                                      description="Largest value of one order.")
    max_position_notional: Money = Field(
        default=Decimal(100_000),
        description="Largest value of one symbol's position, counting its open orders.")
    max_gross_exposure: Money = Field(
        default=Decimal(200_000),
        description="Largest sum of all positions' absolute values, counting open orders.")
    max_open_orders: int = Field(default=50, ge=0, description="Most orders open at once.")
    rate_limit_orders: int = Field(default=10, ge=0,
                                   description="Most orders sent within rate_limit_interval_s.")
    rate_limit_interval_s: float = Field(default=1.0, gt=0, le=3600,
                                         description="The window of the order rate limit.")
    allow_symbols: SymbolList = Field(
        default_factory=list, description="Only these symbols may be traded; empty allows all.")
    deny_symbols: SymbolList = Field(
        default_factory=list, description="These symbols may never be traded.")
    price_collar_pct: Decimal = Field(
        default=Decimal(5), ge=0, le=100,
        description="Refuse a limit price further than this % from the last trade.")
    max_daily_loss: Money = Field(
        default=Decimal(5_000),
        description="Day's loss (realized plus unrealized) that moves trading to on_daily_loss.")
    on_daily_loss: Literal["reducing", "halted"] = Field(
        default="halted", description="The trading state a breached daily loss sets.")
    max_drawdown: Money = Field(
        default=Decimal(7_500),
        description="Drop from the day's equity high that moves trading to on_drawdown.")
    on_drawdown: Literal["reducing", "halted"] = Field(
        default="reducing", description="The trading state a breached drawdown sets.")


class StrategySettings(Section):
    folder: Path | None = Field(
        default=None,
        description="A folder of your own strategy modules (*.py); when unset, "
                    "'strategies' beside the config file, if it exists.")
    backtest_fill_at: Literal["next_open", "close"] = Field(
        default="next_open",
        description="Backtests fill a bar's orders at the next bar's open, or at its close.")
    backtest_adjusted: bool = Field(
        default=True,
        description="Backtest on split- and dividend-adjusted prices (the bundled adj_close).")

    @field_validator("folder")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()
