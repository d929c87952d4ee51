"""The workstation's strategy keys: add an instance for the selected symbol (`A` or
insert, from anywhere); and in the strategies pane, cycle the mode (`m`: off, observe,
paper, live, asking before LIVE), switch off (`M`), edit the parameters (`e`), show
the details and traceback (enter), remove (delete, asking first).

A base of `WorkstationScreen`, kept apart for size, like `TradingActions`. The pane's
keys are screen bindings (so the help, the palette and the `[keys]` config know them)
that act only while the pane has the focus: `e` is the blotter's and delete the
watchlist's elsewhere. From the palette they show the pane first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import tzinfo
from functools import partial

from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen

from core.client import CommandError, EngineClient
from core.state import StrategyInfo, StrategyView
from core.strategies.base import StrategyMode
from tui.screens.add_strategy import AddStrategy
from tui.screens.prompt import Confirm
from tui.screens.strategy_details import StrategyDetails
from tui.screens.strategy_params import StrategyParamsEditor
from tui.widgets.quote_board import QuoteBoard
from tui.widgets.risk_panel import RiskPanel
from tui.widgets.strategies import StrategiesPane

STRATEGY_BINDINGS = [
    Binding("m", "strategy_mode", "Strategy mode", id="strategy.mode"),
    Binding("M", "strategy_off", "Strategy off", show=False, id="strategy.off"),
    Binding("e", "strategy_params", "Strategy params", id="strategy.params"),
    Binding("enter", "strategy_details", "Strategy details", show=False,
            id="strategy.details"),
    Binding("A,insert", "add_strategy", "Add strategy", show=False, id="strategy.add"),
]
# After the watchlist's delete (the footer keeps its place for it).
STRATEGY_REMOVE_BINDINGS = [
    Binding("delete", "remove_strategy", "Remove strategy", show=False,
            id="strategy.remove"),
]
# The actions that need the pane's focus (their keys mean something else elsewhere).
PANE_ACTIONS = frozenset({"strategy_mode", "strategy_off", "strategy_params",
                          "strategy_details", "remove_strategy"})
PANE_BINDING_IDS = frozenset(b.id for b in (*STRATEGY_BINDINGS, *STRATEGY_REMOVE_BINDINGS)
                             if b.id and b.action in PANE_ACTIONS)
MODE_HELP = {
    StrategyMode.OFF: "stopped: no signals, no orders (working orders are canceled)",
    StrategyMode.OBSERVE: "signals only, no orders",
    StrategyMode.PAPER: "orders to the paper venue",
    StrategyMode.LIVE: "orders to the configured broker",
}

Command = tuple[str, str, Callable[[], object]]


class StrategyActions(Screen[None]):
    client: EngineClient
    zone: tzinfo
    zone_label: str
    pull: Callable[[], Awaitable[None]]  # the workstation's: take the engine's changes now
    action_show_pane: Callable[[str], None]
    _strategy_catalog: list[StrategyInfo] | None = None

    # ------------------------------------------------------------------ the pane

    @property
    def strategies_pane(self) -> StrategiesPane:
        return self.query_one(StrategiesPane)

    @property
    def strategies_focused(self) -> bool:
        try:
            return self.strategies_pane.has_focus_within
        except NoMatches:
            return False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in PANE_ACTIONS:
            return self.strategies_focused
        if action == "remove_symbol" and self.strategies_focused:
            return False  # delete removes the instance there, not the board's symbol
        return super().check_action(action, parameters)

    def _selected_strategy(self) -> StrategyView | None:
        view = self.strategies_pane.selected
        if view is None:
            self.notify("no strategy instance selected: A adds one for the quote board's "
                        "symbol", severity="warning")
        return view

    async def strategy_catalog(self) -> list[StrategyInfo]:
        """The strategies the engine can run (asked once: they load at start-up)."""
        if self._strategy_catalog is None:
            self._strategy_catalog = await self.client.strategy_catalog()
        return self._strategy_catalog

    # ------------------------------------------------------------------ mode

    async def action_strategy_mode(self) -> None:
        view = self._selected_strategy()
        if view is not None:
            await self.request_mode(view, StrategyMode(view.mode).cycled())

    async def action_strategy_off(self) -> None:
        view = self._selected_strategy()
        if view is not None:
            await self.request_mode(view, StrategyMode.OFF)

    async def request_mode(self, view: StrategyView, mode: StrategyMode) -> None:
        """Set the mode; LIVE only after a confirmation (No is the default)."""
        if mode != StrategyMode.LIVE:
            await self.set_strategy_mode(view.id, mode)
            return
        account = self.query_one(RiskPanel).account
        broker = account.broker if account is not None else "configured"
        question = (f"Switch {view.id} to LIVE? It will send orders for "
                    f"{', '.join(view.symbols)} to the {broker} broker, within the risk "
                    "limits.")

        async def confirmed(answer: bool | None) -> None:
            if answer:
                await self.set_strategy_mode(view.id, mode)
            else:
                self.notify(f"{view.id} stays {view.mode}")

        self.app.push_screen(Confirm(question, "Go live"), confirmed)

    async def set_strategy_mode(self, instance_id: str, mode: StrategyMode) -> None:
        try:
            view = await self.client.set_strategy_mode(instance_id, mode.value)
        except CommandError as error:
            self.notify(str(error), title="Mode refused", severity="error", timeout=8)
            return
        if view.error and mode != StrategyMode.OFF:
            self.notify(f"{view.id} failed as it started: {view.error}",
                        title="Strategy error", severity="error", timeout=10)
        else:
            self.notify(f"{view.id}: {view.mode.upper()} ({MODE_HELP[StrategyMode(view.mode)]})",
                        severity="warning" if view.mode == "live" else "information")
        await self.pull()

    # ------------------------------------------------------------------ parameters, details

    async def action_strategy_params(self) -> None:
        view = self._selected_strategy()
        if view is None:
            return
        try:
            catalog = await self.strategy_catalog()
        except CommandError as error:
            self.notify(str(error), severity="error")
            return
        info = next((i for i in catalog if i.name == view.strategy), None)
        if info is None:
            self.notify(f"the strategy {view.strategy!r} is not installed: its parameters "
                        "cannot be edited", severity="warning")
            return

        async def saved(result: StrategyView | None) -> None:
            if result is None:
                return
            self.notify(f"{result.id}: parameters saved")
            await self.pull()

        self.app.push_screen(StrategyParamsEditor(self.client, view, info), saved)

    async def action_strategy_details(self) -> None:
        view = self._selected_strategy()
        if view is not None:
            self.app.push_screen(StrategyDetails(view, self.zone, self.zone_label))

    # ------------------------------------------------------------------ add, remove

    async def action_add_strategy(self) -> None:
        symbol = self.query_one(QuoteBoard).selected_symbol
        try:
            catalog = await self.strategy_catalog()
        except CommandError as error:
            self.notify(str(error), severity="error")
            return

        async def added(view: StrategyView | None) -> None:
            if view is None:
                return
            self.notify(f"added {view.id} on {', '.join(view.symbols)}: "
                        f"{view.mode.upper()} ({MODE_HELP[StrategyMode(view.mode)]})")
            await self.pull()
            self.action_show_pane("strategies")
            self.strategies_pane.select(view.id)

        self.app.push_screen(AddStrategy(self.client, catalog, [symbol] if symbol else []),
                             added)

    async def action_remove_strategy(self) -> None:
        view = self._selected_strategy()
        if view is None:
            return
        if view.mode != StrategyMode.OFF:
            self.notify(f"switch {view.id} off before removing it (M)", severity="warning")
            return
        question = (f"Remove the strategy instance {view.id} ({view.title} on "
                    f"{', '.join(view.symbols)})? Its settings are deleted")
        question += "; its positions stay in the account." if view.positions else "."

        async def remove(confirmed: bool | None) -> None:
            if not confirmed:
                return
            try:
                await self.client.remove_strategy(view.id)
            except CommandError as error:
                self.notify(str(error), title="Remove refused", severity="error", timeout=8)
                return
            self.notify(f"removed {view.id}")
            await self.pull()

        self.app.push_screen(Confirm(question, "Remove"), remove)

    # ------------------------------------------------------------------ from the palette

    def run_pane_action(self, action: str) -> None:
        """A pane key's action from the palette: show the pane, act on its selection."""
        self.action_show_pane("strategies")
        method = getattr(self, f"action_{action}", None)
        if method is not None:
            self.run_worker(method(), exit_on_error=False)

    def run_for(self, instance_id: str, action: str) -> None:
        self.action_show_pane("strategies")
        self.strategies_pane.select(instance_id)
        self.run_pane_action(action)

    def run_set_mode(self, instance_id: str, mode: StrategyMode) -> None:
        self.action_show_pane("strategies")
        self.strategies_pane.select(instance_id)
        view = next((v for v in self.strategies_pane.views if v.id == instance_id), None)
        if view is not None:
            self.run_worker(self.request_mode(view, mode), exit_on_error=False)


def strategy_commands(screen: StrategyActions) -> list[Command]:
    """The palette's entries for each instance: every other mode, the parameters, the
    details, remove."""
    commands: list[Command] = []
    try:
        views = screen.strategies_pane.views
    except NoMatches:
        return commands
    for view in views:
        for mode in StrategyMode:
            if mode.value != view.mode:
                asks = "; asks first" if mode == StrategyMode.LIVE else ""
                commands.append((f"Strategy {view.id}: {mode.value}",
                                 f"{MODE_HELP[mode]} (now {view.mode}{asks})",
                                 partial(screen.run_set_mode, view.id, mode)))
        commands.append((f"Strategy {view.id}: parameters", view.title,
                         partial(screen.run_for, view.id, "strategy_params")))
        commands.append((f"Strategy {view.id}: details", "error and traceback if it failed",
                         partial(screen.run_for, view.id, "strategy_details")))
        commands.append((f"Strategy {view.id}: remove", "asks first; it must be off",
                         partial(screen.run_for, view.id, "remove_strategy")))
    return commands
