"""The checks an order request passes before risk sees it, and the bracket legs an
entry brings. Part of the trading desk, kept apart for size."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from core.brokers.base import Broker
from core.model import Instrument, OrderRequest, OrderType, Side
from core.state import CommandError

CAPABILITY_OF = {OrderType.STOP: "stop", OrderType.STOP_LIMIT: "stop_limit",
                 OrderType.TRAILING_STOP: "trailing_stop"}


async def checked_request(request: OrderRequest, broker: Broker,
                          ensure_symbol: Callable[[str], Awaitable[Instrument | None]]
                          ) -> OrderRequest:
    """The request with its symbol known, its quantity in lots and its prices on the
    tick; CommandError, with a sentence for the trader, for anything wrong."""
    check_request(request, broker, None)
    instrument = await ensure_symbol(request.symbol)
    if instrument is None:
        raise CommandError(f"unknown symbol {request.symbol}: there is no market data for it")
    return check_request(request, broker, instrument)


def check_request(request: OrderRequest, broker: Broker,
                  instrument: Instrument | None) -> OrderRequest:
    """`checked_request` for a symbol already looked up (None: checks the request and
    the broker's capabilities only)."""
    problems = request.problems()
    if problems:
        raise CommandError("; ".join(problems))
    kind = request.order_type
    needs = CAPABILITY_OF.get(kind)
    if needs and needs not in broker.capabilities:
        raise CommandError(f"the {broker.name} broker does not take "
                           f"{kind.value.replace('_', '-')} orders")
    if request.is_bracket and "bracket" not in broker.capabilities:
        raise CommandError(f"the {broker.name} broker does not take brackets")
    if instrument is None:
        return request
    if instrument.source == "unknown":
        raise CommandError(f"unknown symbol {request.symbol}: there is no market data for it")
    if instrument.round_quantity(request.quantity) != request.quantity:
        raise CommandError(f"the quantity must be a whole number of lots of "
                           f"{instrument.lot_size.normalize():f}")
    if kind == OrderType.MARKET and not request.is_bracket:
        return request  # no price to be on the tick
    for name in ("limit_price", "stop_price", "take_profit", "stop_loss", "trail_amount"):
        value = getattr(request, name)
        if value is not None and instrument.round_price(value) != value:
            raise CommandError(f"the {name.replace('_', ' ')} {value} is not on the "
                               f"tick of {instrument.tick_size.normalize():f}")
    return request


def bracket_legs(request: OrderRequest) -> list[OrderRequest]:
    """A bracket entry's exits: a limit at the take-profit and a stop at the stop-loss,
    on the other side, for the entry's quantity and time in force."""
    legs = []
    exit_side = Side.SELL if request.side == Side.BUY else Side.BUY
    if request.take_profit is not None:
        legs.append(OrderRequest(request.symbol, exit_side, request.quantity, OrderType.LIMIT,
                                 request.time_in_force, limit_price=request.take_profit,
                                 strategy=request.strategy))
    if request.stop_loss is not None:
        legs.append(OrderRequest(request.symbol, exit_side, request.quantity, OrderType.STOP,
                                 request.time_in_force, stop_price=request.stop_loss,
                                 strategy=request.strategy))
    return legs
