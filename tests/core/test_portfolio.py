"""Positions and cash from fills: the identities that must always hold."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.model import Fill, Side
from core.portfolio import Portfolio, Position

D = Decimal


def fill(n: int, side: Side, quantity: str, price: str, symbol: str = "AAPL",
         commission: str = "1") -> Fill:
    return Fill(f"f{n}", f"o{n}", symbol, side, D(quantity), D(price), D(commission), n,
                "paper")


def test_long_average_cost_and_realised_pnl() -> None:
    position = Position("AAPL")
    position.apply(fill(1, Side.BUY, "100", "10"))
    position.apply(fill(2, Side.BUY, "100", "12"))
    assert position.average_cost == D(11)
    assert position.apply(fill(3, Side.SELL, "50", "15")) == D(200)
    assert (position.quantity, position.average_cost, position.realized) == (D(150), D(11),
                                                                            D(200))


def test_through_zero_the_rest_opens_at_the_fill_price() -> None:
    position = Position("AAPL")
    position.apply(fill(1, Side.BUY, "100", "10"))
    assert position.apply(fill(2, Side.SELL, "150", "9")) == D(-100)
    assert (position.quantity, position.average_cost) == (D(-50), D(9))
    assert position.apply(fill(3, Side.BUY, "50", "8")) == D(50)  # a short covered lower
    assert (position.quantity, position.average_cost) == (D(0), D(0))


def test_marks_move_equity_and_exposure_without_touching_cash() -> None:
    book = Portfolio.start(D(100_000))
    book.apply_fill(fill(1, Side.BUY, "100", "50", "AAPL", "0"))
    book.apply_fill(fill(2, Side.SELL, "10", "200", "MSFT", "0"))
    book.mark("AAPL", 55.0)
    book.mark("MSFT", 190.0)
    book.mark("JPM", 99.0)  # no position: ignored
    summary = book.summary()
    assert summary.cash == D(100_000) - D(5_000) + D(2_000)
    assert summary.unrealized == D(500) + D(100)
    assert summary.gross_exposure == D(5_500) + D(1_900)
    assert summary.net_exposure == D(5_500) - D(1_900)
    assert summary.equity == summary.cash + summary.net_exposure
    assert "JPM" not in book.positions


def test_a_fill_reported_twice_counts_once() -> None:
    book = Portfolio.start(D(1_000))
    assert book.apply_fill(fill(1, Side.BUY, "1", "10"))
    assert not book.apply_fill(fill(1, Side.BUY, "1", "10"))
    assert book.position("AAPL") == D(1)


trades = st.lists(
    st.tuples(
        st.sampled_from(["AAPL", "MSFT"]),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(min_value=1, max_value=500),
        st.integers(min_value=100, max_value=50_000),  # cents
        st.integers(min_value=0, max_value=500),  # commission in cents
    ),
    max_size=40,
)


@settings(max_examples=500, deadline=None)
@given(trades, st.integers(min_value=100, max_value=50_000))
def test_the_identities_hold_for_any_fills(steps: list[tuple[str, Side, int, int, int]],
                                           mark_cents: int) -> None:
    book = Portfolio.start(D(1_000_000))
    fills = [fill(n, side, str(quantity), str(D(cents) / 100), symbol, str(D(fee) / 100))
             for n, (symbol, side, quantity, cents, fee) in enumerate(steps)]
    for each in fills:
        book.apply_fill(each)
    mark = float(D(mark_cents) / 100)
    for symbol in ("AAPL", "MSFT"):
        book.mark(symbol, mark)
    for symbol in ("AAPL", "MSFT"):
        assert book.position(symbol) == sum(
            (f.signed_quantity for f in fills if f.symbol == symbol), D(0))
    assert book.cash == D(1_000_000) - sum(
        (f.signed_quantity * f.price + f.commission for f in fills), D(0))
    summary = book.summary()
    # Everything made or lost is realised or unrealised, less commissions.
    assert summary.equity - D(1_000_000) == pytest.approx(
        summary.realized + summary.unrealized - summary.commissions, abs=D("1e-9"))
