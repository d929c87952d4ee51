"""`e` in the strategies pane: a strategy instance's parameters, one input per field of
its Params model (built from the schema), each with its description and bounds.

What is typed is converted and checked as it is typed (the type, the bounds) and the
problem shows under the field. Enter (or ctrl+s) sends the values to the engine, which
checks them against the model again; a refusal (a rule between fields, say) shows
under the fields it names, or under all of them, and the dialog stays open. Only the
engine's message is shown, never a traceback.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static

from core.client import CommandError, EngineClient
from core.state import StrategyInfo, StrategyView
from tui.param_fields import MODEL_ERROR, ParamField, fields_from_schema, split_refusal

BOOL_CHOICES: list[tuple[str, bool]] = [("yes", True), ("no", False)]


class StrategyParamsEditor(ModalScreen[StrategyView | None]):
    DEFAULT_CSS = """
    StrategyParamsEditor { align: center middle; }
    StrategyParamsEditor > Vertical {
        width: 78; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    StrategyParamsEditor #params-title { height: auto; margin-bottom: 1; }
    StrategyParamsEditor #params-fields { height: auto; max-height: 70vh; }
    StrategyParamsEditor .param-row { height: auto; }
    StrategyParamsEditor .param-name { width: 16; text-style: bold; }
    StrategyParamsEditor .param-input { width: 14; margin-right: 1; }
    StrategyParamsEditor Input { background: $panel; }
    StrategyParamsEditor Input:focus { background: $primary 30%; }
    StrategyParamsEditor Input.-invalid { background: $error 25%; }
    StrategyParamsEditor SelectCurrent { background: $panel; }
    StrategyParamsEditor Select:focus > SelectCurrent { background: $primary 30%; }
    StrategyParamsEditor .param-hint { width: 1fr; height: auto; color: $text-muted; }
    StrategyParamsEditor .param-error {
        display: none; height: auto; margin-left: 16; color: $error;
    }
    StrategyParamsEditor .param-error.-shown { display: block; }
    StrategyParamsEditor #params-error { height: auto; color: $error; margin-top: 1; }
    StrategyParamsEditor #params-buttons { height: 1; align-horizontal: right; margin-top: 1; }
    StrategyParamsEditor Button { margin-left: 1; }
    """
    BINDINGS = [
        Binding("escape", "close", "Close", id="params.close"),
        Binding("ctrl+s", "save", "Save", id="params.save"),
    ]

    def __init__(self, client: EngineClient, view: StrategyView, info: StrategyInfo) -> None:
        super().__init__()
        self.client = client
        self.view = view
        self.info = info
        self.fields = fields_from_schema(info.schema)
        self._by_name = {field.name: field for field in self.fields}
        self.saving = False

    def compose(self) -> ComposeResult:
        view = self.view
        with Vertical():
            title = Text(no_wrap=True, overflow="ellipsis")
            title.append(" Parameters ", style="bold reverse")
            title.append(f" {view.id}", style="bold")
            title.append(f"  {view.title}")
            note = Text("An instance that is on restarts with the new values; its positions "
                        "and orders stay its own.", style="dim")
            yield Static(Text("\n").join([title, note]), id="params-title")
            with VerticalScroll(id="params-fields"):
                for field in self.fields:
                    with Horizontal(classes="param-row"):
                        yield Label(field.name, classes="param-name")
                        yield self._input(field, view.params.get(field.name, field.default))
                        hint = field.hint()
                        if field.description:
                            hint += f" · {field.description}"
                        yield Static(hint, classes="param-hint", markup=False)
                    yield Static("", id=f"error-{field.name}", classes="param-error",
                                 markup=False)
                if not self.fields:
                    yield Label("This strategy has no parameters.")
            yield Static("", id="params-error", markup=False)
            with Horizontal(id="params-buttons"):
                yield Button("Close (esc)", id="close", compact=True)
                yield Button("Save (enter)", id="save", compact=True, variant="primary")

    @staticmethod
    def _input(field: ParamField, value: Any) -> Widget:
        widget_id = f"param-{field.name}"
        if field.kind == "bool":
            return Select(BOOL_CHOICES, value=bool(value), allow_blank=False, compact=True,
                          id=widget_id, classes="param-input")
        if field.kind == "choice":
            choices = [(str(choice), choice) for choice in field.choices]
            current = value if value in field.choices else Select.NULL
            return Select(choices, value=current, allow_blank=field.optional or
                          current is Select.NULL, compact=True, id=widget_id,
                          classes="param-input")
        return Input(field.text_of(value), id=widget_id, compact=True, classes="param-input",
                     placeholder=field.text_of(field.default))

    def on_mount(self) -> None:
        first = next(iter(self.query(".param-input").results()), None)
        if first is not None:
            first.focus()
        else:
            self.query_one("#save", Button).focus()

    # ------------------------------------------------------------------ values

    def value_of(self, field: ParamField) -> Any:
        """The field's typed value; ValueError when it is not one."""
        widget = self.query_one(f"#param-{field.name}")
        if isinstance(widget, Select):
            value = widget.value
            if value is Select.NULL:
                if field.optional:
                    return None
                raise ValueError("pick a value")
            return value
        assert isinstance(widget, Input)
        return field.parse(widget.value)

    def collect(self) -> tuple[dict[str, Any], dict[str, str]]:
        """(values, problems) of every field."""
        values: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for field in self.fields:
            try:
                values[field.name] = self.value_of(field)
            except ValueError as err:
                problems[field.name] = str(err)
        return values, problems

    def show_problem(self, name: str, problem: str) -> None:
        error = self.query_one(f"#error-{name}", Static)
        error.update(problem)
        error.set_class(bool(problem), "-shown")
        self.query_one(f"#param-{name}").set_class(bool(problem), "-invalid")

    def _check_field(self, widget_id: str | None) -> None:
        name = (widget_id or "").removeprefix("param-")
        field = self._by_name.get(name)
        if field is None:
            return
        try:
            self.value_of(field)
        except ValueError as err:
            self.show_problem(name, str(err))
        else:
            self.show_problem(name, "")
        self.query_one("#params-error", Static).update("")

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        self._check_field(event.input.id)

    @on(Select.Changed)
    def _picked(self, event: Select.Changed) -> None:
        self._check_field(event.select.id)

    # ------------------------------------------------------------------ saving

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self.action_save()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_close()

    def action_save(self) -> None:
        if self.saving:
            return
        values, problems = self.collect()
        for field in self.fields:
            self.show_problem(field.name, problems.get(field.name, ""))
        if problems:
            self._focus_field(next(iter(problems)))
            self.query_one("#params-error", Static).update(
                "Nothing was changed: fix the fields marked above.")
            return
        if all(self.view.params.get(name) == value for name, value in values.items()):
            self.dismiss(None)  # nothing changed
            return
        self.saving = True
        self._save({**self.view.params, **values})

    @work(exclusive=True, group="params-save", exit_on_error=False)
    async def _save(self, params: dict[str, Any]) -> None:
        try:
            view = await self.client.set_strategy_params(self.view.id, params)
        except CommandError as err:
            self.saving = False
            self._show_refusal(str(err))
            return
        self.saving = False
        self.dismiss(view)

    def _show_refusal(self, message: str) -> None:
        problems = split_refusal(message, set(self._by_name))
        for name, parts in problems.items():
            if name != MODEL_ERROR:
                self.show_problem(name, "; ".join(parts))
        general = "; ".join(problems.get(MODEL_ERROR, []))
        self.query_one("#params-error", Static).update(
            f"Refused: {general}" if general else "Refused: see the fields marked above.")
        named = [name for name in problems if name != MODEL_ERROR]
        if named:
            self._focus_field(named[0])

    def _focus_field(self, name: str) -> None:
        self.query_one(f"#param-{name}").focus()

    def action_close(self) -> None:
        self.dismiss(None)
