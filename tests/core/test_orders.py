"""The order state machine, order requests and client order ids."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.model import (
    TERMINAL_STATUSES,
    Fill,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    to_ns,
)
from core.orders import (
    TRANSITIONS,
    ClientOrderIds,
    IllegalTransition,
    Order,
    OrderError,
    Overfill,
)

S = OrderStatus
T0 = to_ns(datetime(2019, 3, 14, 15, 0, tzinfo=UTC))


def order(quantity: str = "100", status: OrderStatus = S.PENDING_NEW) -> Order:
    request = OrderRequest("AAPL", Side.BUY, Decimal(quantity), OrderType.LIMIT,
                           limit_price=Decimal("180.00"))
    made = Order("td-20190314-000001", request, T0)
    made.status = status
    return made


def fill(fill_id: str, quantity: str, price: str = "180.00") -> Fill:
    return Fill(fill_id, "td-20190314-000001", "AAPL", Side.BUY, Decimal(quantity),
                Decimal(price), Decimal("0.50"), T0 + 1, "paper")


# -- the state machine -----------------------------------------------------------------


def test_every_state_has_its_edges_and_final_states_have_none() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)
    for status in TERMINAL_STATUSES:
        assert TRANSITIONS[status] == frozenset()
    for status, targets in TRANSITIONS.items():
        assert S.PENDING_NEW not in targets, f"{status} must not go back to pending_new"


@pytest.mark.parametrize(("start", "target"), [
    (start, target) for start in OrderStatus for target in OrderStatus
    if target not in TRANSITIONS[start]
])
def test_an_illegal_transition_raises_and_changes_nothing(start: OrderStatus,
                                                          target: OrderStatus) -> None:
    made = order(status=start)
    with pytest.raises(IllegalTransition) as caught:
        made.transition(target, T0 + 5)
    assert made.status == start
    assert made.updated_ns == 0
    assert start.value in str(caught.value)
    assert target.value in str(caught.value)


def test_fills_move_the_order_and_average_the_price() -> None:
    made = order()
    made.transition(S.ACCEPTED, T0)
    event = made.apply_fill(fill("f1", "40", "180.00"))
    assert event is not None
    assert (made.status, made.filled_quantity, made.remaining) == (
        S.PARTIALLY_FILLED, Decimal(40), Decimal(60))
    made.apply_fill(fill("f2", "60", "180.10"))
    assert made.status == S.FILLED
    assert made.average_price == Decimal("180.06")
    assert not made.is_open


def test_a_fill_seen_twice_counts_once() -> None:
    made = order()
    assert made.apply_fill(fill("f1", "10")) is not None
    assert made.apply_fill(fill("f1", "10")) is None
    assert made.filled_quantity == Decimal(10)


def test_a_fill_beyond_the_quantity_is_refused_and_changes_nothing() -> None:
    made = order("100")
    made.apply_fill(fill("f1", "90"))
    with pytest.raises(Overfill):
        made.apply_fill(fill("f2", "11"))
    assert made.filled_quantity == Decimal(90)
    assert made.status == S.PARTIALLY_FILLED
    assert "f2" not in made.fill_ids


def test_a_fill_racing_a_cancel_is_kept() -> None:
    made = order()
    made.transition(S.ACCEPTED, T0)
    made.transition(S.PENDING_CANCEL, T0 + 1)
    made.apply_fill(fill("f1", "100"))
    assert made.status == S.FILLED


Action = tuple[str, OrderStatus | int]
actions = st.lists(
    st.one_of(
        st.tuples(st.just("move"), st.sampled_from(list(OrderStatus))),
        st.tuples(st.just("fill"), st.integers(min_value=-5, max_value=120)),
        st.tuples(st.just("refill"), st.integers(min_value=0, max_value=20)),
    ),
    max_size=20,
)


@settings(max_examples=10_000, deadline=None)
@given(actions)
def test_random_event_sequences_never_reach_an_illegal_state(steps: list[Action]) -> None:
    made = order("100")
    applied: list[str] = []
    for kind, value in steps:
        before = (made.status, made.filled_quantity, set(made.fill_ids))
        refused = False
        try:
            if kind == "move":
                assert isinstance(value, OrderStatus)
                made.transition(value, T0)
            else:
                assert isinstance(value, int)
                if kind == "refill" and applied:
                    fill_id = applied[value % len(applied)]
                else:
                    fill_id = f"f{len(applied) + 1}"
                if made.apply_fill(fill(fill_id, str(value))) is not None:
                    applied.append(fill_id)
        except OrderError:
            refused = True
        if refused:  # a refused step changes nothing at all
            assert (made.status, made.filled_quantity, made.fill_ids) == before
        else:
            assert made.status == before[0] or made.status in TRANSITIONS[before[0]]
        filled = made.filled_quantity
        assert Decimal(0) <= filled <= made.quantity
        assert (made.status == S.FILLED) == (filled == made.quantity)
        if made.status == S.PARTIALLY_FILLED:
            assert 0 < filled < made.quantity
        if made.status in (S.PENDING_NEW, S.ACCEPTED):
            assert filled == 0
        assert len(made.fill_ids) == len(applied)


# -- requests --------------------------------------------------------------------------


def req(**fields: object) -> OrderRequest:
    values: dict[str, object] = {"symbol": "AAPL", "side": Side.BUY,
                                 "quantity": Decimal(100)}
    values.update(fields)
    return OrderRequest(**values)  # type: ignore[arg-type]


D = Decimal


@pytest.mark.parametrize(("request_", "problem"), [
    (req(quantity=D(0)), "quantity must be positive"),
    (req(order_type=OrderType.LIMIT), "needs a limit price"),
    (req(limit_price=D(1)), "takes no limit price"),
    (req(order_type=OrderType.STOP), "needs a stop price"),
    (req(order_type=OrderType.STOP_LIMIT, stop_price=D(10)), "needs a limit price"),
    (req(order_type=OrderType.LIMIT, limit_price=D(-1)), "limit price must be positive"),
    (req(order_type=OrderType.TRAILING_STOP), "trail amount or a trail percent"),
    (req(order_type=OrderType.TRAILING_STOP, trail_amount=D(1), trail_percent=D(1)),
     "(one)"),
    (req(order_type=OrderType.TRAILING_STOP, trail_percent=D(100)), "never trigger"),
    (req(trail_amount=D(1)), "only a trailing stop"),
    (req(order_type=OrderType.STOP, stop_price=D(10), time_in_force=TimeInForce.IOC),
     "market and limit orders only"),
    (req(order_type=OrderType.STOP, stop_price=D(9), take_profit=D(12)),
     "entry must be a market or limit"),
    (req(take_profit=D(9), stop_loss=D(10)), "must be above the stop-loss"),
    (req(side=Side.SELL, take_profit=D(11), stop_loss=D(10)), "must be below the stop-loss"),
    (req(order_type=OrderType.LIMIT, limit_price=D(10), take_profit=D(9)),
     "must be above the entry"),
    (req(order_type=OrderType.LIMIT, limit_price=D(10), stop_loss=D(11)),
     "must be below the entry"),
])
def test_malformed_requests_are_explained(request_: OrderRequest, problem: str) -> None:
    assert any(problem in text for text in request_.problems()), request_.problems()


@pytest.mark.parametrize("request_", [
    req(),
    req(order_type=OrderType.LIMIT, limit_price=D("180.25"), time_in_force=TimeInForce.GTC),
    req(order_type=OrderType.STOP_LIMIT, stop_price=D(181), limit_price=D(182)),
    req(order_type=OrderType.TRAILING_STOP, trail_percent=D("2.5")),
    req(order_type=OrderType.LIMIT, limit_price=D(10), take_profit=D(12), stop_loss=D(9)),
    req(side=Side.SELL, take_profit=D(9), stop_loss=D(11)),
    req(time_in_force=TimeInForce.IOC),
])
def test_well_formed_requests_have_no_problems(request_: OrderRequest) -> None:
    assert request_.problems() == []


# -- client order ids ------------------------------------------------------------------


def test_client_order_ids_carry_the_exchange_date_and_never_repeat() -> None:
    ids = ClientOrderIds("td", next_sequence=41)
    # 2019-03-15 01:30 UTC is still the 14th in New York.
    late = to_ns(datetime(2019, 3, 15, 1, 30, tzinfo=UTC))
    first, sequence = ids.issue(late)
    assert (first, sequence) == ("td-20190314-000041", 41)
    issued = {ids.issue(T0)[0] for _ in range(2_000)}
    assert len(issued) == 2_000
    assert first not in issued
    assert ids.next_sequence == 2_042


@pytest.mark.parametrize("prefix", ["", "a b", "td-1", "x/y"])
def test_a_bad_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        ClientOrderIds(prefix, 1)
