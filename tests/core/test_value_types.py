"""The value types whose `__init__` is written out (native when compiled, see
`core.model`) behave as the frozen dataclasses they replace: equal and hashed by value,
rebuilt the same by pickle (the backtest grid sends results between processes) and by
copy, changed only through `dataclasses.replace`, and read-only once compiled."""

from __future__ import annotations

import copy
import dataclasses
import math
import pickle
from decimal import Decimal
from typing import Any

import pytest

from core.brokers.paper import PaperOrder
from core.metrics import Metrics, RoundTrip
from core.model import Fill, OrderRequest, OrderStatus, OrderType, OrderUpdate, Side
from core.native import is_compiled
from core.orders import Order, OrderEvent
from core.strategies.runner import PlaceIntent, Signal, WorkingOrder

REQUEST = OrderRequest("AAPL", Side.BUY, Decimal(100), OrderType.LIMIT,
                       limit_price=Decimal("101.25"), strategy="ma_cross:1")

IMMUTABLE: list[Any] = [
    REQUEST,
    Fill("V-1-1", "TD-20190102-1", "AAPL", Side.SELL, Decimal(5), Decimal("99.5"),
         Decimal("0.35"), 1_546_439_400_000_000_000, venue="paper"),
    OrderUpdate("TD-20190102-1", OrderStatus.CANCELED, 7, "canceled by the trader", "V-1"),
    OrderEvent("TD-20190102-1", 7, OrderStatus.ACCEPTED, Decimal(0)),
    PlaceIntent("entry", REQUEST, "sma(10) crossed above sma(30)"),
    Signal("ma_cross:1", 7, "AAPL", Side.BUY, "sma(10) crossed above sma(30)", True),
    RoundTrip("AAPL", "long", Decimal(100), 1, Decimal("101.25"), 2, Decimal(110),
              Decimal(1), Decimal("874")),
    Metrics(1e6, 1.1e6, 10.0, 2.0, 15.0, 0.8, 1.2, 12.5, 40, 3, 66.7, math.inf,
            100.0, 1.5, 55.0),
]

MUTABLE: list[Any] = [
    Order("TD-20190102-1", REQUEST, 5, OrderStatus.PARTIALLY_FILLED, Decimal(40),
          Decimal("101.2"), 6, fill_ids={"V-1-1"}),
    PaperOrder("TD-20190102-1", "V-1", REQUEST, 5, filled=Decimal(40), fills=1,
               legs=("TD-20190102-2",), extreme=102.5),
    WorkingOrder("entry", REQUEST, "TD-20190102-1", Decimal(40)),
]


def _same(left: Any, right: Any) -> bool:
    # NaN is not equal to itself: compare field by field, NaN matching NaN.
    for field in dataclasses.fields(left):
        a, b = getattr(left, field.name), getattr(right, field.name)
        if a != b and not (isinstance(a, float) and math.isnan(a) and math.isnan(b)):
            return False
    return type(left) is type(right)


@pytest.mark.parametrize("value", IMMUTABLE + MUTABLE, ids=lambda v: type(v).__name__)
def test_pickle_and_copy_rebuild_every_field(value: Any) -> None:
    for rebuilt in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
        assert _same(rebuilt, value)


@pytest.mark.parametrize("value", IMMUTABLE, ids=lambda v: type(v).__name__)
def test_immutable_values_hash_by_value_and_change_only_through_replace(value: Any) -> None:
    twin = pickle.loads(pickle.dumps(value))
    assert hash(twin) == hash(value)
    first = dataclasses.fields(value)[0].name
    if is_compiled(type(value).__module__):
        with pytest.raises(AttributeError):
            setattr(value, first, getattr(value, first))
    changed = dataclasses.replace(value, **{first: getattr(value, first) * 2})
    assert getattr(changed, first) == getattr(value, first) * 2
    assert getattr(value, first) != getattr(changed, first)


def test_defaults_are_those_of_the_signature() -> None:
    request = OrderRequest("AAPL", Side.BUY, Decimal(1))
    assert (request.order_type, request.limit_price, request.strategy) == (
        OrderType.MARKET, None, "")
    order = Order("TD-1", request, 0)
    assert order.status is OrderStatus.PENDING_NEW
    assert order.fill_ids == set()
    assert order.fill_ids is not Order("TD-2", request, 0).fill_ids  # not shared
    paper = PaperOrder("TD-1", "V-1", request, 0)
    assert paper.status is OrderStatus.ACCEPTED
    assert math.isnan(paper.extreme)
