"""The main screen: watchlists and the quote board, the chart, the blotter, the
strategies pane, the risk panel, the log, the status bar; the trading keys (b/s order
ticket, ctrl+k kill switch, cancel-all) and the strategy keys (tui/screens/
strategy_actions.py).

At 80x24 (below `ui.compact_width` x `ui.compact_height`) the panes become tabs; above
it they sit side by side. Both layouts are the same widgets: only CSS classes change,
so switching keeps every pane's state.

The screen pulls the engine's change set at `ui.refresh_hz` and hands each widget only
what changed for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import tzinfo
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Tab, Tabs

from core.client import CommandError, EngineClient
from core.state import ChangeCursor, EngineDelta, EngineSnapshot, QuoteRow, Watchlist
from tui.screens.prompt import Confirm, TextPrompt
from tui.screens.scanner_actions import ScannerActions
from tui.screens.strategy_actions import (
    STRATEGY_BINDINGS,
    STRATEGY_REMOVE_BINDINGS,
    StrategyActions,
)
from tui.screens.symbol_search import AddedSymbol, SymbolSearch
from tui.screens.trading_actions import TRADING_BINDINGS, TradingActions
from tui.widgets.blotter import Blotter
from tui.widgets.chart import ChartPane
from tui.widgets.log_pane import LogPane
from tui.widgets.quote_board import QuoteBoard
from tui.widgets.risk_panel import RiskPanel
from tui.widgets.scanner import ScannerPane
from tui.widgets.status_bar import StatusBar
from tui.widgets.strategies import StrategiesPane
from tui.widgets.watchlist_tabs import WatchlistTabs, tab_id

if TYPE_CHECKING:
    from tui.app import TapedeckApp

PANES = ("quotes", "chart", "log", "orders", "risk", "strategies", "scanner")
SPEED_STEPS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 100.0)
ACTIVE_WATCHLIST_KEY = "ui.watchlist"


class WorkstationScreen(ScannerActions, TradingActions, StrategyActions):
    BINDINGS = [
        # First, so that the footer shows the strategy pane's keys while it has the
        # focus (they are hidden elsewhere).
        *STRATEGY_BINDINGS,
        Binding("slash,a", "add_symbol", "Add symbol", id="watchlist.add"),
        Binding("delete", "remove_symbol", "Remove", id="watchlist.remove"),
        Binding("shift+up", "move_symbol(-1)", "Move up", show=False, id="watchlist.move_up"),
        Binding("shift+down", "move_symbol(1)", "Move down", show=False,
                id="watchlist.move_down"),
        Binding("right_square_bracket", "cycle_watchlist(1)", "Next list",
                id="watchlist.next"),
        Binding("left_square_bracket", "cycle_watchlist(-1)", "Previous list", show=False,
                id="watchlist.previous"),
        Binding("n", "new_watchlist", "New list", show=False, id="watchlist.new"),
        Binding("r", "rename_watchlist", "Rename list", show=False, id="watchlist.rename"),
        Binding("ctrl+d", "delete_watchlist", "Delete list", show=False,
                id="watchlist.delete"),
        Binding("i", "toggle_interval", "Daily/intraday", id="chart.interval"),
        Binding("space", "toggle_pause", "Pause replay", id="replay.pause"),
        Binding("plus,equals_sign", "replay_speed(1)", "Faster", show=False,
                id="replay.faster"),
        Binding("minus", "replay_speed(-1)", "Slower", show=False, id="replay.slower"),
        Binding("1", "show_pane('quotes')", "Quotes pane", show=False, id="pane.quotes"),
        Binding("2", "show_pane('chart')", "Chart pane", show=False, id="pane.chart"),
        Binding("3", "show_pane('log')", "Log pane", show=False, id="pane.log"),
        Binding("4", "show_pane('orders')", "Blotter", show=False, id="pane.orders"),
        Binding("5", "show_pane('risk')", "Risk pane", show=False, id="pane.risk"),
        Binding("7", "show_pane('scanner')", "Scanner pane", show=False, id="pane.scanner"),
        Binding("6", "show_pane('strategies')", "Strategies pane", show=False,
                id="pane.strategies"),
        *TRADING_BINDINGS,
        *STRATEGY_REMOVE_BINDINGS,
    ]

    def __init__(self, client: EngineClient, zone: tzinfo, zone_label: str) -> None:
        super().__init__()
        self.client = client
        self.zone = zone
        self.zone_label = zone_label
        self.cursor = ChangeCursor()
        self.watchlists: list[Watchlist] = []
        self.active_watchlist = ""
        self.pane = "quotes"
        self._pulling = False
        self._pull_again = False
        self._speed = 1.0
        self._paused = False
        self.first_quotes_at: float | None = None
        self._pending_select: str | None = None

    @property
    def tapedeck(self) -> TapedeckApp:
        from tui.app import TapedeckApp

        assert isinstance(self.app, TapedeckApp)
        return self.app

    def compose(self) -> ComposeResult:
        settings = self.tapedeck.settings
        yield StatusBar(self.zone, self.zone_label, id="status-bar")
        yield Tabs(
            Tab("1 Quotes", id="pane-quotes"),
            Tab("2 Chart", id="pane-chart"),
            Tab("3 Log", id="pane-log"),
            Tab("4 Orders", id="pane-orders"),
            Tab("5 Risk", id="pane-risk"),
            Tab("6 Strategies", id="pane-strategies"),
            Tab("7 Scanner", id="pane-scanner"),
            id="pane-tabs",
        )
        with Horizontal(id="panes"):
            with Vertical(id="left-column"):
                yield WatchlistTabs(id="watchlist-tabs")
                yield QuoteBoard(flash_ms=settings.ui.flash_ms, id="quote-board")
                yield Blotter(self.zone, id="blotter")
                yield StrategiesPane(self.zone, empty_hint=self._empty_strategies_hint(),
                                     id="strategies")
                yield ScannerPane(self.zone, id="scanner")
            with Vertical(id="right-column"):
                yield ChartPane(self.zone, id="chart-pane")
                yield RiskPanel(id="risk-panel")
                yield LogPane(self.zone, id="log-pane")
        yield Footer()

    async def on_mount(self) -> None:
        self.query_one("#log-pane", LogPane).border_title = "Log"
        self.query_one("#risk-panel", RiskPanel).border_title = "Risk"
        self._apply_layout()
        snapshot = await self.client.snapshot()
        stored = await self.client.get_setting(ACTIVE_WATCHLIST_KEY)
        self._apply_snapshot(snapshot, stored if isinstance(stored, str) else None)
        self.query_one(QuoteBoard).focus()
        refresh_hz = self.tapedeck.settings.ui.refresh_hz
        if self.client.notify_changes(self._changes_arrived):
            # Changes are pushed (attached to a daemon): pull as they arrive; the slow
            # timer only keeps the clock moving should the pushes stop.
            self.set_interval(1.0, self.pull)
        else:
            self.set_interval(1 / refresh_hz, self.pull)
        self.set_interval(0.1, self.query_one(QuoteBoard).expire_flashes)

    # ------------------------------------------------------------------ engine -> widgets

    def _apply_snapshot(self, snapshot: EngineSnapshot, active: str | None = None) -> None:
        self.cursor = snapshot.cursor
        board = self.query_one(QuoteBoard)
        board.rows = dict(snapshot.rows)
        board.set_session_bars(snapshot.session_bars)
        self._set_watchlists(snapshot.watchlists, active or self.active_watchlist)
        self.query_one(StatusBar).status = snapshot.status
        self.query_one(LogPane).add_events(snapshot.logs[-200:])
        self.query_one(Blotter).set_book(snapshot.orders, snapshot.fills, snapshot.positions)
        self.query_one(StrategiesPane).set_strategies(snapshot.strategies)
        self.query_one(ScannerPane).set_view(snapshot.scan)
        risk_panel = self.query_one(RiskPanel)
        risk_panel.account = snapshot.account
        risk_panel.risk = snapshot.risk
        self._note_first_quotes(snapshot.rows.values())

    def _changes_arrived(self) -> None:
        if self.is_attached:
            self.call_later(self.pull)

    async def pull(self) -> None:
        if self._pulling:
            self._pull_again = True  # changes that arrived meanwhile are not left waiting
            return
        self._pulling = True
        try:
            delta = await self.client.changes(self.cursor)
            if delta.resync:
                self._apply_snapshot(await self.client.snapshot())
                return
            self.apply_delta(delta)
        finally:
            self._pulling = False
            if self._pull_again:
                self._pull_again = False
                self.call_later(self.pull)

    def apply_delta(self, delta: EngineDelta) -> None:
        board = self.query_one(QuoteBoard)
        chart = self.query_one(ChartPane)
        if delta.watchlists is not None:
            self._set_watchlists(delta.watchlists, self.active_watchlist)
        if delta.rows:
            board.update_rows(delta.rows)
            self._note_first_quotes(delta.rows)
        if delta.bars:
            board.add_bars(delta.bars)
            for bar in delta.bars:
                chart.update_live(bar, completed=True)
        for bar in delta.building:
            chart.update_live(bar, completed=False)
        if delta.logs:
            self.query_one(LogPane).add_events(delta.logs)
        blotter = self.query_one(Blotter)
        blotter.update_orders(delta.orders)
        blotter.add_fills(delta.fills)
        blotter.update_positions(delta.positions)
        self.query_one(StrategiesPane).set_strategies(delta.strategies)
        self.query_one(ScannerPane).set_view(delta.scan)
        risk_panel = self.query_one(RiskPanel)
        if delta.account is not None and delta.account != risk_panel.account:
            risk_panel.account = delta.account
        if delta.risk is not None and delta.risk != risk_panel.risk:
            risk_panel.risk = delta.risk
        status = delta.status
        self._paused = status.paused
        self.query_one(StatusBar).status = status

    def _empty_strategies_hint(self) -> str:
        keys = next((keys for binding_id, keys, *_ in self.tapedeck.action_catalogue()
                     if binding_id == "strategy.add"), "A")
        return f"No strategy instances.\n{keys}: add one for the quote board's selected symbol."

    def _note_first_quotes(self, rows: Iterable[QuoteRow]) -> None:
        if self.first_quotes_at is None and any(
            row.last == row.last for row in rows
        ):
            self.first_quotes_at = time.monotonic()
            self.tapedeck.first_quotes_shown()

    def _set_watchlists(self, watchlists: Iterable[Watchlist], active: str) -> None:
        self.watchlists = list(watchlists)
        names = [w.name for w in self.watchlists]
        if active not in names:
            active = names[0] if names else ""
        self.active_watchlist = active
        self.query_one(WatchlistTabs).set_watchlists(names, active)
        self._show_active_watchlist(keep=self._pending_select)
        self._pending_select = None

    def _show_active_watchlist(self, keep: str | None = None) -> None:
        watchlist = self.current_watchlist()
        board = self.query_one(QuoteBoard)
        board.set_symbols(watchlist.symbols if watchlist else (), keep=keep)
        status_bar = self.query_one(StatusBar)
        status_bar.watchlist = (
            f"{watchlist.name} ({len(watchlist.symbols)})" if watchlist else "")

    def current_watchlist(self) -> Watchlist | None:
        return next((w for w in self.watchlists if w.name == self.active_watchlist), None)

    # ------------------------------------------------------------------ widget messages

    @on(QuoteBoard.Selected)
    def selected(self, event: QuoteBoard.Selected) -> None:
        chart = self.query_one(ChartPane)
        if event.symbol != chart.symbol:
            self._load_chart(event.symbol)

    @work(exclusive=True, group="chart", exit_on_error=False)
    async def _load_chart(self, symbol: str | None) -> None:
        chart = self.query_one(ChartPane)
        if symbol is None:
            chart.show(None, [], [])
            return
        try:
            daily = await self.client.history(symbol, "1d")
            minutes = await self.client.history(symbol, "1m")
        except CommandError as error:
            self.notify(str(error), severity="error")
            return
        chart.show(symbol, daily, minutes)

    @on(Tabs.TabActivated, "#watchlist-tabs")
    def watchlist_tab(self, event: Tabs.TabActivated) -> None:
        event.stop()
        for index, watchlist in enumerate(self.watchlists):
            if event.tab.id == tab_id(index) and watchlist.name != self.active_watchlist:
                self.switch_watchlist(watchlist.name)

    @on(Tabs.TabActivated, "#pane-tabs")
    def pane_tab(self, event: Tabs.TabActivated) -> None:
        event.stop()
        if event.tab.id:
            self.action_show_pane(event.tab.id.removeprefix("pane-"))

    def switch_watchlist(self, name: str) -> None:
        if name == self.active_watchlist or not any(w.name == name for w in self.watchlists):
            return
        self.active_watchlist = name
        self.query_one(WatchlistTabs).set_watchlists([w.name for w in self.watchlists], name)
        self._show_active_watchlist()
        self.run_worker(self.client.set_setting(ACTIVE_WATCHLIST_KEY, name), exit_on_error=False)

    # ------------------------------------------------------------------ layout

    def on_resize(self) -> None:
        self._apply_layout()

    def _apply_layout(self) -> None:
        settings = self.tapedeck.settings.ui
        compact = self.size.width < settings.compact_width or (
            self.size.height < settings.compact_height)
        self.set_class(compact, "compact")
        for pane in PANES:
            # The scanner takes the board's place at any size (the chart beside it shows
            # the hit charted); the other panes have their own places when wide.
            shown = self.pane == pane and (compact or pane == "scanner") and pane != "quotes"
            self.set_class(shown, f"show-{pane}")

    @property
    def compact(self) -> bool:
        return self.has_class("compact")

    def action_show_pane(self, pane: str) -> None:
        if pane not in PANES:
            return
        self.pane = pane
        tabs = self.query_one("#pane-tabs", Tabs)
        if tabs.active != f"pane-{pane}":
            tabs.active = f"pane-{pane}"
        self._apply_layout()
        if pane == "quotes":
            self.query_one(QuoteBoard).focus()
        elif pane == "log":
            self.query_one(LogPane).focus()
        elif pane == "orders":
            self.query_one(Blotter).focus_table()
        elif pane == "strategies":
            self.query_one(StrategiesPane).focus_list()
        elif pane == "scanner":
            self.query_one(ScannerPane).focus_input()

    # ------------------------------------------------------------------ actions

    def action_add_symbol(self) -> None:
        watchlist = self.current_watchlist()
        if watchlist is None:
            self.notify("create a watchlist first (n)", severity="warning")
            return

        def added(result: AddedSymbol | None) -> None:
            if result is None:
                return
            message = f"added {result.symbol} to {watchlist.name}"
            if result.source == "sim":
                message += " (not in the replay data: synthetic prices)"
            self.notify(message, severity="warning" if result.source == "sim" else "information")
            board = self.query_one(QuoteBoard)
            if result.symbol in board.symbols:
                board.cursor = board.symbols.index(result.symbol)
            else:  # selected when the engine's watchlist change arrives
                self._pending_select = result.symbol

        self.app.push_screen(SymbolSearch(self.client, watchlist.name), added)

    async def action_remove_symbol(self) -> None:
        watchlist = self.current_watchlist()
        symbol = self.query_one(QuoteBoard).selected_symbol
        if watchlist is None or symbol is None:
            return
        try:
            await self.client.remove_symbol(watchlist.name, symbol)
        except CommandError as error:
            self.notify(str(error), severity="error")
            return
        self.notify(f"removed {symbol} from {watchlist.name}")
        await self.pull()

    async def action_move_symbol(self, offset: int) -> None:
        watchlist = self.current_watchlist()
        board = self.query_one(QuoteBoard)
        symbol = board.selected_symbol
        if watchlist is None or symbol is None:
            return
        if board.sort_column is not None:
            self.notify("the board is sorted: press o until the sort is off to reorder",
                        severity="warning")
            return
        try:
            await self.client.move_symbol(watchlist.name, symbol, offset)
        except CommandError as error:
            self.notify(str(error), severity="error")
            return
        await self.pull()

    def action_cycle_watchlist(self, step: int) -> None:
        names = [w.name for w in self.watchlists]
        if not names:
            return
        index = names.index(self.active_watchlist) if self.active_watchlist in names else 0
        self.switch_watchlist(names[(index + step) % len(names)])

    def action_new_watchlist(self) -> None:
        async def create(name: str | None) -> None:
            if not name:
                return
            try:
                await self.client.create_watchlist(name)
            except CommandError as error:
                self.notify(str(error), severity="error")
                return
            await self.pull()
            self.switch_watchlist(name.strip())

        self.app.push_screen(TextPrompt("New watchlist name", placeholder="e.g. Momentum"),
                             create)

    def action_rename_watchlist(self) -> None:
        old = self.active_watchlist

        async def rename(name: str | None) -> None:
            if not name or name == old:
                return
            try:
                await self.client.rename_watchlist(old, name)
            except CommandError as error:
                self.notify(str(error), severity="error")
                return
            self.active_watchlist = name.strip()
            await self.client.set_setting(ACTIVE_WATCHLIST_KEY, self.active_watchlist)
            await self.pull()

        self.app.push_screen(TextPrompt(f"Rename watchlist {old!r} to", value=old), rename)

    def action_delete_watchlist(self) -> None:
        watchlist = self.current_watchlist()
        if watchlist is None:
            return

        async def delete(confirmed: bool | None) -> None:
            if not confirmed:
                return
            try:
                await self.client.delete_watchlist(watchlist.name)
            except CommandError as error:
                self.notify(str(error), severity="error")
                return
            await self.pull()

        self.app.push_screen(
            Confirm(f"Delete watchlist {watchlist.name!r} and its {len(watchlist.symbols)} "
                    "symbols? This cannot be undone.", "Delete"),
            delete,
        )

    def action_toggle_interval(self) -> None:
        chart = self.query_one(ChartPane)
        chart.set_interval_mode("1m" if chart.interval == "1d" else "1d")

    async def action_toggle_pause(self) -> None:
        try:
            await self.client.set_replay_paused(not self._paused)
        except CommandError as error:
            self.notify(str(error), severity="warning")
            return
        self._paused = not self._paused
        await self.pull()

    async def action_replay_speed(self, step: int) -> None:
        steps = SPEED_STEPS
        current = min(range(len(steps)), key=lambda i: abs(steps[i] - self._speed))
        await self.set_replay_speed(steps[max(0, min(len(steps) - 1, current + step))])

    def run_set_speed(self, speed: float) -> None:
        self.run_worker(self.set_replay_speed(speed), exit_on_error=False)

    async def set_replay_speed(self, new: float) -> None:
        try:
            await self.client.set_replay_speed(new)
        except CommandError as error:
            self.notify(str(error), severity="warning")
            return
        self._speed = new
        await self.pull()

    def sort_board(self, column: str | None) -> None:
        self.query_one(QuoteBoard).sort_by(column)
