"""The backtest screen's setup form: strategy, symbols, dates, cash, fills, prices and
the strategy's parameters, each checked as it is typed, with the problem beside it.

The parameter inputs come from the strategy's JSON schema (the engine's catalog); they
are checked against the strategy's own Params model, which this process can import (the
same installation and strategy folder as the engine).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static

from core.backtest import BacktestSpec, FillAt
from core.backtest_grid import crash_text
from core.strategies.base import Strategy, StrategyParams
from data.history import unknown_symbol_message

FILL_CHOICES: list[tuple[str, FillAt]] = [("next open", "next_open"), ("close", "close")]
FILL_HINTS = {"next_open": "a bar's orders fill at the next session's open",
              "close": "a bar's orders fill at its own close"}
PRICE_CHOICES = [("adjusted", True), ("raw", False)]
PRICE_HINTS = {True: "split- and dividend-adjusted",
               False: "as traded: a split reads as a crash"}
SYMBOLS_HINT = "comma-separated; ctrl+l takes the watchlist's"
DATES_HINT = "YYYY-MM-DD, 2015 to 2019"
CASH_HINT = "starting cash"
INTEGER_CHARS = r"[-0-9]*"
NUMBER_CHARS = r"[-+0-9.eE]*"

FORM_CSS = """
BacktestForm { padding: 0 1; }
BacktestForm .bt-row { height: auto; }
BacktestForm .bt-label { width: 15; color: $text-muted; }
BacktestForm .bt-heading { width: 15; color: $secondary; text-style: bold; margin-top: 1; }
BacktestForm .bt-control { width: 14; }
BacktestForm .bt-wide { width: 1fr; }
BacktestForm .bt-hint { width: 1fr; height: auto; margin-left: 1; color: $text-muted; }
BacktestForm .bt-under { margin-left: 15; width: 1fr; height: auto; color: $text-muted; }
BacktestForm .bt-heading-hint { margin-top: 1; }
BacktestForm .-error { color: $error; }
BacktestForm .bt-to { width: 4; color: $text-muted; content-align: center middle; }
BacktestForm Input { background: $panel; }
BacktestForm Input:focus { background: $primary 30%; }
BacktestForm SelectCurrent { background: $panel; }
BacktestForm Select:focus > SelectCurrent { background: $primary 30%; }
BacktestForm #bt-strategy { width: 1fr; }
BacktestForm .bt-params { height: auto; }
BacktestForm #bt-run-row { height: 1; margin-top: 1; }
BacktestForm #bt-run { margin-left: 15; }
"""


@dataclass(frozen=True, slots=True)
class StrategyChoice:
    """A strategy the form offers: the engine's catalog entry, and its class when this
    process has it (None: it cannot be backtested here)."""

    name: str
    title: str
    description: str
    defaults: Mapping[str, Any]
    schema: Mapping[str, Any]
    strategy_class: type[Strategy[Any]] | None

    def fields(self) -> list[tuple[str, Mapping[str, Any]]]:
        properties = self.schema.get("properties", {})
        return [(name, prop) for name, prop in properties.items() if isinstance(prop, Mapping)]


@dataclass(frozen=True, slots=True)
class FormDefaults:
    symbols: tuple[str, ...]
    start: date
    end: date
    cash: Decimal
    fill_at: FillAt
    adjusted: bool
    strategy: str = "ma_cross"


@dataclass(frozen=True, slots=True)
class BacktestJob:
    """A run the form describes, checked and ready."""

    strategy_class: type[Strategy[Any]]
    params: StrategyParams
    spec: BacktestSpec
    adjusted: bool


# -- parsing (pure) ------------------------------------------------------------------------


def parse_symbols(text: str, known: Iterable[str] | None) -> tuple[tuple[str, ...], str]:
    """(symbols, '') or ((), the problem). `known` None: not checked against the bundle."""
    chosen: list[str] = []
    for piece in text.replace(";", ",").replace(" ", ",").split(","):
        symbol = piece.strip().upper()
        if symbol and symbol not in chosen:
            chosen.append(symbol)
    if not chosen:
        return (), "name at least one symbol"
    if known is not None:
        names = sorted(known)
        lookup = set(names)
        unknown = [symbol for symbol in chosen if symbol not in lookup]
        if unknown:
            return (), "; ".join(unknown_symbol_message(symbol, names) for symbol in unknown)
    return tuple(chosen), ""


def parse_date(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{name}: {text.strip()!r} is not a date as YYYY-MM-DD") from None


def parse_cash(text: str) -> Decimal:
    cleaned = text.strip().replace(",", "").replace("_", "").removeprefix("$")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"cash: {text.strip()!r} is not an amount") from None
    if not value.is_finite() or value <= 0:
        raise ValueError("cash must be more than 0")
    return value


def check_params(strategy_class: type[Strategy[Any]], values: Mapping[str, Any]
                 ) -> tuple[StrategyParams | None, dict[str, str], str]:
    """(params, {}, '') when `values` make valid Params; else (None, field -> problem,
    a problem across fields or of the model as a whole)."""
    try:
        # Lax mode: "50" becomes 50 for an int field, as the field's type says.
        return strategy_class.Params.model_validate(dict(values)), {}, ""
    except ValidationError as error:
        fields = set(strategy_class.Params.model_fields)
        by_field: dict[str, str] = {}
        general: list[str] = []
        for problem in error.errors():
            message = str(problem["msg"]).removeprefix("Value error, ")
            location = problem["loc"]
            if location and location[0] in fields:
                by_field.setdefault(str(location[0]), message)
            else:
                general.append(message)
        return None, by_field, "; ".join(general)
    except Exception as error:  # a user's validator may raise anything
        return None, {}, f"params: {crash_text(error)}"


def shown_default(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- the form --------------------------------------------------------------------------------


class BacktestForm(VerticalScroll):
    DEFAULT_CSS = FORM_CSS

    def __init__(self, choices: Sequence[StrategyChoice], defaults: FormDefaults,
                 known_symbols: Iterable[str] | None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.choices = {choice.name: choice for choice in choices}
        self.defaults = defaults
        self.known_symbols = None if known_symbols is None else frozenset(known_symbols)
        first = defaults.strategy if defaults.strategy in self.choices else next(
            iter(self.choices), "")
        self.strategy = first

    # -- building

    def compose(self) -> ComposeResult:
        defaults = self.defaults
        with Horizontal(classes="bt-row"):
            yield Label("Strategy", classes="bt-label")
            yield Select([(choice.title or choice.name, name)
                          for name, choice in self.choices.items()],
                         value=self.strategy, allow_blank=False, compact=True,
                         id="bt-strategy")
        yield Static("", id="bt-description", classes="bt-under")
        with Horizontal(classes="bt-row"):
            yield Label("Symbols", classes="bt-label")
            yield Input(", ".join(defaults.symbols), compact=True, id="bt-symbols",
                        classes="bt-wide", placeholder="AAPL, MSFT")
        yield Static(SYMBOLS_HINT, id="bt-symbols-hint", classes="bt-under")
        with Horizontal(classes="bt-row"):
            yield Label("Dates", classes="bt-label")
            yield Input(defaults.start.isoformat(), compact=True, id="bt-start",
                        classes="bt-control", restrict=r"[0-9-]*", max_length=10)
            yield Label("to", classes="bt-to")
            yield Input(defaults.end.isoformat(), compact=True, id="bt-end",
                        classes="bt-control", restrict=r"[0-9-]*", max_length=10)
            yield Static(DATES_HINT, id="bt-dates-hint", classes="bt-hint")
        with Horizontal(classes="bt-row"):
            yield Label("Cash", classes="bt-label")
            yield Input(f"{defaults.cash:,.0f}", compact=True, id="bt-cash",
                        classes="bt-control", restrict=r"[0-9.,_$]*")
            yield Static(CASH_HINT, id="bt-cash-hint", classes="bt-hint")
        with Horizontal(classes="bt-row"):
            yield Label("Fills at", classes="bt-label")
            yield Select(FILL_CHOICES, value=defaults.fill_at, allow_blank=False, compact=True,
                         id="bt-fill", classes="bt-control")
            yield Static(FILL_HINTS[defaults.fill_at], id="bt-fill-hint", classes="bt-hint")
        with Horizontal(classes="bt-row"):
            yield Label("Prices", classes="bt-label")
            yield Select(PRICE_CHOICES, value=defaults.adjusted, allow_blank=False,
                         compact=True, id="bt-adjusted", classes="bt-control")
            yield Static(PRICE_HINTS[defaults.adjusted], id="bt-adjusted-hint",
                         classes="bt-hint")
        with Horizontal(classes="bt-row"):
            yield Label("Parameters", classes="bt-heading")
            yield Static("", id="bt-params-hint", classes="bt-hint bt-heading-hint")
        for choice in self.choices.values():
            with Vertical(id=f"bt-params-{choice.name}", classes="bt-params"):
                yield from self._param_rows(choice)
        with Horizontal(id="bt-run-row"):
            yield Button("Run (ctrl+r)", id="bt-run", compact=True, variant="primary")

    def _param_rows(self, choice: StrategyChoice) -> ComposeResult:
        for name, prop in choice.fields():
            default = choice.defaults.get(name, prop.get("default"))
            with Horizontal(classes="bt-row"):
                yield Label(name, classes="bt-label")
                yield self._param_control(f"bt-p-{choice.name}-{name}", prop, default)
                yield Static(str(prop.get("description", "")),
                             id=f"bt-p-{choice.name}-{name}-hint", classes="bt-hint")

    @staticmethod
    def _param_control(widget_id: str, prop: Mapping[str, Any], default: Any) -> Widget:
        kind = prop.get("type")
        enum = prop.get("enum")
        if kind == "boolean":
            return Select([("yes", True), ("no", False)], value=bool(default),
                          allow_blank=False, compact=True, id=widget_id, classes="bt-control")
        if isinstance(enum, list) and enum:
            return Select([(str(value), value) for value in enum],
                          value=default if default in enum else enum[0], allow_blank=False,
                          compact=True, id=widget_id, classes="bt-control")
        restrict = {"integer": INTEGER_CHARS, "number": NUMBER_CHARS}.get(str(kind))
        return Input(shown_default(default), compact=True, id=widget_id, classes="bt-control",
                     restrict=restrict, placeholder=shown_default(default) or "none")

    def on_mount(self) -> None:
        self._show_strategy()
        self.check()

    # -- what the screen sets

    def set_symbols(self, symbols: Sequence[str]) -> None:
        self.query_one("#bt-symbols", Input).value = ", ".join(symbols)

    def focus_first(self) -> None:
        self.query_one("#bt-symbols", Input).focus()

    # -- events

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "bt-strategy" and isinstance(event.value, str):
            self.strategy = event.value
            self._show_strategy()
        elif event.select.id == "bt-fill" and event.value in FILL_HINTS:
            self.query_one("#bt-fill-hint", Static).update(FILL_HINTS[str(event.value)])
        elif event.select.id == "bt-adjusted" and isinstance(event.value, bool):
            self.query_one("#bt-adjusted-hint", Static).update(PRICE_HINTS[event.value])
        self.check()

    @on(Input.Changed)
    def _input_changed(self) -> None:
        self.check()

    def _show_strategy(self) -> None:
        choice = self.choices.get(self.strategy)
        for name in self.choices:
            self.query_one(f"#bt-params-{name}").display = name == self.strategy
        description = "" if choice is None else choice.description
        self.query_one("#bt-description", Static).update(description)

    # -- checking

    def _hint(self, widget_id: str, problem: str, hint: str) -> None:
        static = self.query_one(f"#{widget_id}", Static)
        static.set_class(bool(problem), "-error")
        static.update(problem or hint)

    def check(self) -> BacktestJob | None:
        """The job the form describes, or None with every problem shown beside its
        field."""
        symbols, symbols_problem = parse_symbols(self.query_one("#bt-symbols", Input).value,
                                                 self.known_symbols)
        self._hint("bt-symbols-hint", symbols_problem, SYMBOLS_HINT)
        start = end = None
        dates_problem = ""
        try:
            start = parse_date(self.query_one("#bt-start", Input).value, "start")
            end = parse_date(self.query_one("#bt-end", Input).value, "end")
            if end < start:
                dates_problem = f"the end {end} is before the start {start}"
        except ValueError as error:
            dates_problem = str(error)
        self._hint("bt-dates-hint", dates_problem, DATES_HINT)
        cash = None
        try:
            cash = parse_cash(self.query_one("#bt-cash", Input).value)
            cash_problem = ""
        except ValueError as error:
            cash_problem = str(error)
        self._hint("bt-cash-hint", cash_problem, CASH_HINT)
        params = self._check_params()
        choice = self.choices.get(self.strategy)
        fill = self.query_one("#bt-fill", Select).value
        adjusted = self.query_one("#bt-adjusted", Select).value
        if (params is None or choice is None or choice.strategy_class is None
                or symbols_problem or dates_problem or cash is None
                or start is None or end is None):
            return None
        spec = BacktestSpec(choice.name, params.model_dump(mode="json"), symbols, start, end,
                            cash, "close" if fill == "close" else "next_open")
        return BacktestJob(choice.strategy_class, params, spec, adjusted is not False)

    def _check_params(self) -> StrategyParams | None:
        choice = self.choices.get(self.strategy)
        if choice is None:
            self._hint("bt-params-hint", "no strategy to run", "")
            return None
        if choice.strategy_class is None:
            self._hint("bt-params-hint", f"{choice.name} is not installed in this process: "
                       "it cannot be backtested here", "")
            return None
        values: dict[str, Any] = {}
        for name, _ in choice.fields():
            widget = self.query_one(f"#bt-p-{choice.name}-{name}")
            if isinstance(widget, Input):
                if widget.value.strip():
                    values[name] = widget.value.strip()
            elif isinstance(widget, Select) and widget.value is not Select.NULL:
                values[name] = widget.value
        params, by_field, general = check_params(choice.strategy_class, values)
        for name, prop in choice.fields():
            self._hint(f"bt-p-{choice.name}-{name}-hint", by_field.get(name, ""),
                       str(prop.get("description", "")))
        self._hint("bt-params-hint", general, "")
        return params

    def first_problem(self) -> Widget | None:
        """The first field shown with a problem (to focus it)."""
        for hint in self.query(".-error").results(Static):
            control_id = (hint.id or "").removesuffix("-hint")
            if control_id.startswith("bt-p-") and not control_id.startswith(
                    f"bt-p-{self.strategy}-"):
                continue  # another strategy's field, not shown
            if control_id == "bt-dates":
                control_id = "bt-start"
            if control_id == "bt-params":  # across fields: the strategy's first field
                fields = self.choices[self.strategy].fields() if self.strategy in \
                    self.choices else []
                control_id = f"bt-p-{self.strategy}-{fields[0][0]}" if fields else ""
            found = self.query(f"#{control_id}") if control_id else None
            if found:
                return found.first()
        return None
