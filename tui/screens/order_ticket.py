"""The order ticket (b / s) and the change ticket (e): modal forms that build an order
request, validate it as it is typed, and show its value and what risk would say before
it is sent. Enter sends, escape closes without sending.

The ticket only builds and checks; the workstation sends (and reports the outcome).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from core.client import CommandError, EngineClient
from core.model import OrderRequest, OrderType, Side, TimeInForce
from core.state import OrderView, QuoteRow
from tui import format as fmt

TYPE_CHOICES = [
    ("market", OrderType.MARKET),
    ("limit", OrderType.LIMIT),
    ("stop", OrderType.STOP),
    ("stop-limit", OrderType.STOP_LIMIT),
    ("trailing stop", OrderType.TRAILING_STOP),
]
TIF_CHOICES = [("day", TimeInForce.DAY), ("gtc", TimeInForce.GTC), ("ioc", TimeInForce.IOC)]
SIDE_CHOICES = [("buy", Side.BUY), ("sell", Side.SELL)]

TICKET_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 72; height: auto; max-height: 100%; border: round $accent; background: $surface;
    padding: 0 1;
}}
{name} Grid {{
    grid-size: 4; grid-columns: 12 1fr 12 1fr; grid-rows: 1; grid-gutter: 0 1; height: auto;
    margin-top: 1;
}}
{name} Grid > Label {{ color: $text-muted; }}
{name} Input {{ background: $panel; }}
{name} Input:focus {{ background: $primary 30%; }}
{name} Input:disabled {{ background: $surface; color: $text-disabled; }}
{name} SelectCurrent {{ background: $panel; }}
{name} Select:focus > SelectCurrent {{ background: $primary 30%; }}
{name} #ticket-check {{ height: auto; min-height: 2; margin-top: 1; }}
{name} #ticket-buttons {{ height: 1; align-horizontal: right; margin-top: 1; }}
{name} Button {{ margin-left: 1; }}
"""


def parse_decimal(text: str, name: str, *, required: bool = False) -> Decimal | None:
    """A typed number, or None when blank; ValueError with a sentence when it is not one."""
    text = text.strip().replace(",", "").removeprefix("$")
    if not text:
        if required:
            raise ValueError(f"{name} is required")
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{name}: {text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{name}: {text!r} is not a number")
    return value


@dataclass(frozen=True)
class TicketDefaults:
    symbol: str
    side: Side
    quote: QuoteRow | None
    quantity: Decimal = Decimal(100)


class OrderTicket(ModalScreen[OrderRequest | None]):
    DEFAULT_CSS = TICKET_CSS.format(name="OrderTicket")
    BINDINGS = [
        Binding("escape", "close", "Close", id="ticket.close"),
        Binding("ctrl+s", "send", "Send", id="ticket.send"),
    ]

    def __init__(self, client: EngineClient, defaults: TicketDefaults) -> None:
        super().__init__()
        self.client = client
        self.defaults = defaults
        self.request: OrderRequest | None = None
        self.problem = ""

    def compose(self) -> ComposeResult:
        quote = self.defaults.quote
        last = "" if quote is None or quote.last != quote.last else f"{quote.last:.2f}"
        with Vertical():
            yield Static(self._title(), id="ticket-title")
            with Grid():
                yield Label("Side")
                yield Select(
                    SIDE_CHOICES,
                    value=self.defaults.side,
                    allow_blank=False,
                    compact=True,
                    id="side",
                )
                yield Label("Quantity")
                yield Input(
                    f"{self.defaults.quantity:f}", id="quantity", compact=True, restrict=r"[0-9,]*"
                )
                yield Label("Type")
                yield Select(
                    TYPE_CHOICES, value=OrderType.MARKET, allow_blank=False, compact=True, id="type"
                )
                yield Label("TIF")
                yield Select(
                    TIF_CHOICES, value=TimeInForce.DAY, allow_blank=False, compact=True, id="tif"
                )
                yield Label("Limit price")
                yield Input(
                    last,
                    id="limit",
                    compact=True,
                    placeholder="limit, stop-limit",
                    restrict=r"[0-9.,$]*",
                )
                yield Label("Stop price")
                yield Input(
                    last,
                    id="stop",
                    compact=True,
                    placeholder="stop, stop-limit",
                    restrict=r"[0-9.,$]*",
                )
                yield Label("Trail")
                yield Input(
                    "", id="trail", compact=True, placeholder="1.50 or 2%", restrict=r"[0-9.,%$]*"
                )
                yield Label("")
                yield Label("")
                yield Label("Take profit")
                yield Input(
                    "",
                    id="take_profit",
                    compact=True,
                    placeholder="bracket: optional",
                    restrict=r"[0-9.,$]*",
                )
                yield Label("Stop loss")
                yield Input(
                    "",
                    id="stop_loss",
                    compact=True,
                    placeholder="bracket: optional",
                    restrict=r"[0-9.,$]*",
                )
            yield Static("", id="ticket-check")
            with Horizontal(id="ticket-buttons"):
                yield Button("Close (esc)", id="close", compact=True)
                yield Button("Send (enter)", id="send", compact=True, variant="primary")

    def on_mount(self) -> None:
        quantity = next(self.query("#quantity").results(Input), None)
        if quantity is None:  # the app quit while the ticket opened: nothing to set up
            return
        quantity.focus()
        self._sync_fields()
        self._changed()

    def _title(self) -> Text:
        quote = self.defaults.quote
        variables = self.app.theme_variables
        side = self._current_side()
        text = Text(no_wrap=True)
        colour = variables.get("bid" if side == Side.BUY else "ask", "")
        text.append(f" {side.value.upper()} ", style=f"bold reverse {colour}")
        text.append(f" {self.defaults.symbol}", style="bold")
        if quote is not None:
            text.append(f"   last {fmt.price(quote.last)}")
            text.append(f"  bid {fmt.price(quote.bid)}", style=variables.get("bid", ""))
            text.append(f"  ask {fmt.price(quote.ask)}", style=variables.get("ask", ""))
        return text

    def _current_side(self) -> Side:
        try:
            value = self.query_one("#side", Select).value
        except Exception:  # before compose: the side it opened with
            return self.defaults.side
        return value if isinstance(value, Side) else self.defaults.side

    def _order_type(self) -> OrderType:
        value = self.query_one("#type", Select).value
        return value if isinstance(value, OrderType) else OrderType.MARKET

    def _sync_fields(self) -> None:
        """Only the fields the order type uses can be edited."""
        kind = self._order_type()
        self.query_one("#limit", Input).disabled = kind not in (
            OrderType.LIMIT,
            OrderType.STOP_LIMIT,
        )
        self.query_one("#stop", Input).disabled = kind not in (OrderType.STOP, OrderType.STOP_LIMIT)
        self.query_one("#trail", Input).disabled = kind != OrderType.TRAILING_STOP

    def build(self) -> OrderRequest:
        """The request the form describes; ValueError naming the first bad field."""
        kind = self._order_type()
        values = {
            name: self.query_one(f"#{name}", Input).value
            for name in ("quantity", "limit", "stop", "trail", "take_profit", "stop_loss")
        }
        quantity = parse_decimal(values["quantity"], "quantity", required=True)
        assert quantity is not None
        limit = stop = trail_amount = trail_percent = None
        if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            limit = parse_decimal(values["limit"], "limit price", required=True)
        if kind in (OrderType.STOP, OrderType.STOP_LIMIT):
            stop = parse_decimal(values["stop"], "stop price", required=True)
        if kind == OrderType.TRAILING_STOP:
            trail = values["trail"].strip()
            if trail.endswith("%"):
                trail_percent = parse_decimal(trail[:-1], "trail", required=True)
            else:
                trail_amount = parse_decimal(trail, "trail", required=True)
        tif = self.query_one("#tif", Select).value
        return OrderRequest(
            self.defaults.symbol,
            self._current_side(),
            quantity,
            kind,
            tif if isinstance(tif, TimeInForce) else TimeInForce.DAY,
            limit_price=limit,
            stop_price=stop,
            trail_amount=trail_amount,
            trail_percent=trail_percent,
            take_profit=parse_decimal(values["take_profit"], "take-profit"),
            stop_loss=parse_decimal(values["stop_loss"], "stop-loss"),
        )

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "type":
            self._sync_fields()
        if event.select.id == "side":
            self.query_one("#ticket-title", Static).update(self._title())
        self._changed()

    @on(Input.Changed)
    def _input_changed(self) -> None:
        self._changed()

    def _changed(self) -> None:
        request = self._well_formed()
        if request is not None:
            self._precheck(request)

    def _well_formed(self) -> OrderRequest | None:
        """The form's request when it is well formed; else None, with the problem shown."""
        try:
            request = self.build()
        except ValueError as err:
            self._show(None, str(err))
            return None
        problems = request.problems()
        if problems:
            self._show(None, "; ".join(problems))
            return None
        return request

    @work(exclusive=True, group="ticket-check", exit_on_error=False)
    async def _precheck(self, request: OrderRequest) -> None:
        try:
            decision = await self.client.precheck_order(request)
        except CommandError as err:
            self._show(None, str(err))
            return
        self._show(
            request, "" if decision.accepted else decision.reason, notional=decision.notional
        )

    def _show(
        self, request: OrderRequest | None, problem: str, notional: Decimal | None = None
    ) -> None:
        self.request = request if not problem else None
        self.problem = problem
        variables = self.app.theme_variables
        text = Text()
        if notional:
            text.append(f"Value ${notional:,.2f}   ", style="bold")
        if problem:
            text.append(
                ("Risk: " if request is not None else "") + problem,
                style=variables.get("down", "red"),
            )
        elif request is not None:
            text.append("Risk check: passes", style=variables.get("up", "green"))
            if request.is_bracket:
                text.append(
                    "   bracket: take-profit and stop-loss go with it",
                    style=variables.get("secondary", ""),
                )
        self.query_one("#ticket-check", Static).update(text)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_send()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self.action_send()
        else:
            self.action_close()

    def action_send(self) -> None:
        request = self._well_formed()
        if request is not None:
            # Risk is asked again when the order is sent: the market may have moved.
            self.dismiss(request)

    def action_close(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class OrderChange:
    quantity: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None


class ReplaceTicket(ModalScreen[OrderChange | None]):
    """Change an open order's quantity (what is left) or prices."""

    DEFAULT_CSS = TICKET_CSS.format(name="ReplaceTicket")
    BINDINGS = [Binding("escape", "close", "Close", id="replace.close")]

    def __init__(self, order: OrderView) -> None:
        super().__init__()
        self.order = order

    def compose(self) -> ComposeResult:
        order = self.order
        with Vertical():
            yield Static(
                Text(
                    f" Change {order.client_order_id}: {order.side.value} "
                    f"{order.remaining.normalize():f} {order.symbol} "
                    f"{order.order_type.value.replace('_', '-')}",
                    style="bold",
                )
            )
            with Grid():
                yield Label("Quantity left")
                yield Input(
                    f"{order.remaining.normalize():f}",
                    id="quantity",
                    compact=True,
                    restrict=r"[0-9,]*",
                )
                yield Label("")
                yield Label("")
                yield Label("Limit price")
                yield Input(
                    "" if order.limit_price is None else str(order.limit_price),
                    id="limit",
                    compact=True,
                    disabled=order.limit_price is None,
                    restrict=r"[0-9.,$]*",
                )
                yield Label("Stop price")
                yield Input(
                    "" if order.stop_price is None else str(order.stop_price),
                    id="stop",
                    compact=True,
                    disabled=order.stop_price is None,
                    restrict=r"[0-9.,$]*",
                )
            yield Static("", id="ticket-check")
            with Horizontal(id="ticket-buttons"):
                yield Button("Close (esc)", id="close", compact=True)
                yield Button("Change (enter)", id="send", compact=True, variant="primary")

    def on_mount(self) -> None:
        self.query_one("#quantity", Input).focus()

    def _change(self) -> OrderChange:
        order = self.order
        quantity = parse_decimal(
            self.query_one("#quantity", Input).value, "quantity", required=True
        )
        limit = parse_decimal(self.query_one("#limit", Input).value, "limit price")
        stop = parse_decimal(self.query_one("#stop", Input).value, "stop price")
        if quantity is not None and quantity <= 0:
            raise ValueError("quantity must be positive (cancel with c instead)")
        return OrderChange(
            None if quantity == order.remaining else quantity,
            None if limit == order.limit_price else limit,
            None if stop == order.stop_price else stop,
        )

    @on(Input.Submitted)
    @on(Button.Pressed, "#send")
    def _send(self) -> None:
        try:
            change = self._change()
        except ValueError as err:
            self.query_one("#ticket-check", Static).update(
                Text(str(err), style=self.app.theme_variables.get("down", "red"))
            )
            return
        self.dismiss(change)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)
