"""Trading from the keyboard: the real app under Pilot over a real engine, paper venue,
risk engine and journal."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static

from core.model import OrderStatus, OrderType, TradingState
from tests.tui.conftest import settle
from tui.app import TapedeckApp
from tui.screens.order_ticket import OrderTicket
from tui.screens.prompt import Confirm
from tui.screens.workstation import WorkstationScreen
from tui.widgets.blotter import Blotter
from tui.widgets.quote_board import QuoteBoard
from tui.widgets.risk_panel import RiskPanel


async def wait_until(pilot: Pilot[object], predicate: Callable[[], bool]) -> None:
    for _ in range(200):
        if predicate():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not reached")


async def buy_from_ticket(pilot: Pilot[object], quantity: str) -> None:
    await pilot.press("b")
    assert isinstance(pilot.app.screen, OrderTicket)
    field = pilot.app.screen.query_one("#quantity", Input)
    field.value = quantity
    await pilot.pause(0.1)
    await pilot.press("enter")


async def test_buy_from_the_ticket_shows_the_fill_and_the_position(
        make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        await pilot.press("b")
        ticket = app.screen
        assert isinstance(ticket, OrderTicket)
        ticket.query_one("#quantity", Input).value = "25"
        await pilot.pause(0.2)
        check = str(ticket.query_one("#ticket-check", Static).render())
        assert "Risk check: passes" in check
        assert "Value $" in check
        await pilot.press("enter")
        blotter = screen.query_one(Blotter)
        await wait_until(pilot, lambda: bool(blotter.positions))
        [order] = blotter.orders.values()
        assert order.status == OrderStatus.FILLED
        assert order.quantity == Decimal(25)
        assert len(blotter.fills) == 1
        assert blotter.positions["AAPL"].quantity == Decimal(25)
        assert blotter.query_one("#orders-table", DataTable).row_count == 1
        panel = screen.query_one(RiskPanel)
        await wait_until(pilot, lambda: panel.account is not None
                         and panel.account.gross_exposure > 0)
        assert "gross exposure" in str(panel.render())


async def test_a_refused_order_shows_its_reason(make_app: Callable[..., TapedeckApp]) -> None:
    app = make_app(risk={"max_order_quantity": 50})
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        await pilot.press("b")
        ticket = app.screen
        assert isinstance(ticket, OrderTicket)
        ticket.query_one("#quantity", Input).value = "80"
        await pilot.pause(0.2)
        check = str(ticket.query_one("#ticket-check", Static).render())
        assert "80 shares is over the order limit of 50" in check
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert any("80 shares is over the order limit of 50" in str(n.message)
                   for n in app._notifications)
        assert screen.query_one(Blotter).orders == {}


async def test_a_venue_rejection_shows_in_the_blotter(make_app: Callable[..., TapedeckApp]
                                                      ) -> None:
    app = make_app(paper={"account": "cash", "starting_cash": 1000})
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        await buy_from_ticket(pilot, "100")
        blotter = screen.query_one(Blotter)
        await wait_until(pilot, lambda: bool(blotter.orders))
        [order] = blotter.orders.values()
        assert order.status == OrderStatus.REJECTED
        assert "insufficient buying power" in order.reason
        table = blotter.query_one("#orders-table", DataTable)
        assert "insufficient buying power" in str(table.get_row_at(0)[-1])


async def test_the_kill_switch_flattens_and_halts(make_app: Callable[..., TapedeckApp]
                                                  ) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        await buy_from_ticket(pilot, "10")
        blotter = screen.query_one(Blotter)
        await wait_until(pilot, lambda: bool(blotter.positions))
        await pilot.press("ctrl+k")
        assert isinstance(app.screen, Confirm)
        question = str(app.screen.query_one("Label").render())
        assert "close 1 positions" in question
        await pilot.press("y")
        panel = screen.query_one(RiskPanel)
        await wait_until(pilot, lambda: panel.risk is not None
                         and panel.risk.state == TradingState.HALTED)
        await wait_until(pilot, lambda: not blotter.positions)
        assert "HALTED" in str(panel.render())
        await buy_from_ticket(pilot, "10")
        await pilot.pause(0.2)
        assert any("trading is halted" in str(n.message) for n in app._notifications)


async def test_cancel_a_resting_order_from_the_blotter(make_app: Callable[..., TapedeckApp]
                                                       ) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await settle(pilot)
        last = screen.query_one(QuoteBoard).rows["AAPL"].last
        await pilot.press("b")
        ticket = app.screen
        assert isinstance(ticket, OrderTicket)
        ticket.query_one("#type", Select).value = OrderType.LIMIT
        await pilot.pause(0.1)
        ticket.query_one("#limit", Input).value = f"{last * 0.98:.2f}"
        ticket.query_one("#quantity", Input).value = "5"
        await pilot.pause(0.2)
        await pilot.press("enter")
        blotter = screen.query_one(Blotter)
        await wait_until(pilot, lambda: bool(blotter.orders))
        assert next(iter(blotter.orders.values())).status == OrderStatus.ACCEPTED
        await pilot.press("4")  # the blotter
        await pilot.press("c")
        await wait_until(pilot, lambda: next(iter(blotter.orders.values())).status
                         == OrderStatus.CANCELED)
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert blotter.active_tab == "positions"
        assert app.focused is blotter.query_one("#positions-table", DataTable)
        await pilot.press("left_square_bracket")
        assert blotter.active_tab == "fills"


async def _ticket_open(pilot: Pilot[object]) -> None:
    await settle(pilot)
    await pilot.press("b")
    await pilot.pause(0.3)
    # A steady cursor: a blinking one is caught on or off depending on how busy the
    # machine is (a clean-clone run under load caught it off).
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


def test_snapshot_order_ticket(snap_compare: Any, make_app: Callable[..., TapedeckApp]
                               ) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=_ticket_open)


def _with_a_trade(pane: str) -> Callable[[Pilot[object]], Any]:
    async def run_before(pilot: Pilot[object]) -> None:
        screen = await settle(pilot)
        assert isinstance(screen, WorkstationScreen)
        await buy_from_ticket(pilot, "30")
        blotter = screen.query_one(Blotter)
        await wait_until(pilot, lambda: bool(blotter.positions))
        panel = screen.query_one(RiskPanel)
        await wait_until(pilot, lambda: panel.account is not None
                         and panel.account.buying_power < 2 * panel.account.starting_cash)
        # The order-rate bar counts the last second of wall time: wait until the panel
        # shows it empty, so the picture does not depend on how busy the machine is.
        await pilot.pause(1.0)
        await wait_until(pilot, lambda: panel.risk is not None and all(
            limit.used == 0 for limit in panel.risk.limits if limit.name == "order rate"))
        await pilot.press(pane)
        await pilot.pause(0.3)

    return run_before


def test_snapshot_blotter(snap_compare: Any, make_app: Callable[..., TapedeckApp]) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=_with_a_trade("4"))


def test_snapshot_risk_panel(snap_compare: Any, make_app: Callable[..., TapedeckApp]) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=_with_a_trade("5"))


def test_snapshot_trading_workstation(snap_compare: Any, make_app: Callable[..., TapedeckApp]
                                      ) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=_with_a_trade("1"))
