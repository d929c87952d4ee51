"""How the strategies pane and its dialogs write an instance's fields: ids, modes,
symbols, positions, P&L, signals and errors, in a given width."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from decimal import Decimal

from core.state import StrategyView
from tui import format as fmt

MODE_LABELS = {"off": "OFF", "observe": "OBSERVE", "paper": "PAPER", "live": " LIVE "}
ERROR_MARK = "⚠"


def short_id(instance_id: str, width: int) -> str:
    """bollinger_reversion-12 -> bollinger_r…-12: the number is what tells two apart."""
    if len(instance_id) <= width:
        return instance_id
    name, dash, number = instance_id.rpartition("-")
    suffix = f"{dash}{number}" if dash and number.isdigit() else ""
    keep = width - len(suffix) - 1
    if keep < 1:
        return instance_id[: width - 1] + "…"
    return (name if suffix else instance_id)[:keep] + "…" + suffix


def symbols_summary(symbols: Sequence[str], width: int) -> str:
    """AAPL,MSFT +3: as many symbols as fit, then how many more."""
    if not symbols:
        return fmt.DASH
    text = ",".join(symbols)
    if len(text) <= width:
        return text
    for shown in range(len(symbols) - 1, 0, -1):
        head = ",".join(symbols[:shown]) + f" +{len(symbols) - shown}"
        if len(head) <= width:
            return head
    return f"{len(symbols)} syms" if width >= 6 else str(len(symbols))


def shares(quantity: Decimal) -> str:
    return f"{quantity.normalize():+,f}"


def position_summary(view: StrategyView) -> str:
    """Net shares for a one-symbol instance; 3L 1S (symbols held long and short) for
    several (the detail line lists them)."""
    held = {symbol: q for symbol, q in view.positions.items() if q}
    if not held:
        return "flat"
    if len(view.symbols) == 1:
        return shares(sum(held.values(), Decimal(0)))
    longs = sum(1 for q in held.values() if q > 0)
    shorts = len(held) - longs
    return " ".join(part for part in (f"{longs}L" if longs else "",
                                      f"{shorts}S" if shorts else "") if part)


def position_trend(view: StrategyView) -> str:
    total = sum(view.positions.values(), Decimal(0))
    held = any(view.positions.values())
    if not held:
        return "muted"
    return "up" if total > 0 else "down" if total < 0 else "base"


def money(value: Decimal) -> str:
    return "0.00" if not value else f"{value:+,.2f}"


def trend(value: Decimal) -> str:
    return "up" if value > 0 else "down" if value < 0 else "muted"


def signal_time(view: StrategyView, zone: tzinfo) -> str:
    """14:32 for a signal today, Mar 13 for an older one."""
    if not view.last_signal_ns:
        return ""
    when = fmt.clock_time(view.last_signal_ns, zone)
    return when.strftime("%H:%M") if view.signals_today else when.strftime("%b %d")


def error_text(view: StrategyView) -> str:
    """The error without the instance's id in front (the row says whose it is)."""
    return view.error.removeprefix(f"{view.id} ")


def short_error(view: StrategyView) -> str:
    """"ma_cross-1 raised in on_bar: KeyError: 'x'" -> "KeyError: 'x'" (the row is
    narrow; the detail line has it all)."""
    _, found, rest = view.error.partition(" raised in ")
    if not found:
        return error_text(view)
    return rest.partition(": ")[2] or rest


def describe_params(params: dict[str, object]) -> str:
    return " ".join(f"{name}={value}" for name, value in params.items())
