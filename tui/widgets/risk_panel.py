"""The risk panel: the trading state, the account, and every limit as a utilisation bar
that turns amber near its limit and red at it. Text says the same as the colour: the
state is a word, each bar has its percentage and its numbers."""

from __future__ import annotations

from decimal import Decimal

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from core.model import TradingState
from core.risk import LimitUse
from core.state import AccountView, RiskView

NEAR_LIMIT = 0.75
STATE_COLOURS = {TradingState.ACTIVE: "up", TradingState.REDUCING: "warn",
                 TradingState.HALTED: "halted"}


def compact_money(value: Decimal) -> str:
    """$1,234 / $12.3K / $1.25M: a limit's numbers in a few cells."""
    amount = abs(value)
    sign = "-" if value < 0 else ""
    if amount >= 1_000_000:
        return f"{sign}${amount / 1_000_000:.2f}M"
    if amount >= 10_000:
        return f"{sign}${amount / 1000:.1f}K"
    return f"{sign}${amount:,.0f}"


class RiskPanel(Widget):
    account: reactive[AccountView | None] = reactive(None, layout=False)
    risk: reactive[RiskView | None] = reactive(None, layout=False)

    def _colour(self, name: str) -> str:
        return self.app.theme_variables.get(name, "")

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        risk, account = self.risk, self.account
        if risk is None or account is None:
            text.append("waiting for the account…", style=self._colour("secondary"))
            return text
        width = max(self.size.width, 30)
        colour = self._colour(STATE_COLOURS[risk.state])
        text.append(f" {risk.state.value.upper()} ", style=f"bold reverse {colour}")
        if risk.reason:
            text.append(f" {risk.reason}", style=colour)
        text.append(f"   {account.broker}\n", style=self._colour("secondary"))
        half = (width - 2) // 2
        pairs = [
            (("Equity", f"{account.equity:,.2f}", ""),
             ("Day P&L", f"{account.day_pnl:+,.2f}", self._pnl(account.day_pnl))),
            (("Cash", f"{account.cash:,.2f}", ""),
             ("Buy power", f"{account.buying_power:,.2f}", "")),
            (("Gross", f"{account.gross_exposure:,.2f}", ""),
             ("Net", f"{account.net_exposure:+,.2f}", "")),
            (("Unrealized", f"{account.unrealized:+,.2f}", self._pnl(account.unrealized)),
             ("Realized", f"{account.realized:+,.2f}", self._pnl(account.realized))),
        ]
        for left, right in pairs:
            for label, value, style in (left, right):
                cell = max(half - len(label) - 2, len(value))
                text.append(f" {label} ", style=self._colour("secondary"))
                text.append(f"{value:>{cell}}", style=style)
            text.append("\n")
        for index, limit in enumerate(risk.limits):
            self._bar(text, limit, width)
            if index < len(risk.limits) - 1:
                text.append("\n")
        return text

    def _pnl(self, value: Decimal) -> str:
        return self._colour("up" if value > 0 else "down" if value < 0 else "foreground")

    def _bar(self, text: Text, limit: LimitUse, width: int) -> None:
        label = f" {limit.name:<17}"
        if limit.limit <= 0:
            text.append(label, style=self._colour("secondary"))
            text.append("off", style=self._colour("stale"))
            return
        share = limit.share
        if limit.money:
            numbers = f"{compact_money(limit.used)}/{compact_money(limit.limit)}"
        else:
            numbers = f"{limit.used.normalize():f}/{limit.limit.normalize():f}"
        numbers = f" {numbers:>15}"  # a fixed width keeps the bars aligned
        percent = f" {min(share, 9.99) * 100:3.0f}%"
        cells = max(4, width - len(label) - len(percent) - len(numbers) - 1)
        filled = min(cells, round(share * cells))
        colour = self._colour("halted" if share >= 1 else "warn" if share >= NEAR_LIMIT
                              else "up")
        text.append(label, style=self._colour("secondary"))
        text.append("█" * filled, style=colour)
        text.append("░" * (cells - filled), style=self._colour("stale"))
        text.append(percent, style=f"bold {colour}" if share >= NEAR_LIMIT else "")
        text.append(numbers, style=self._colour("secondary"))
