"""The command palette (ctrl+p): every action of the workstation, every watchlist,
theme, sort column and replay speed, searchable by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from core.model import TradingState
from tui.widgets.quote_board import COLUMNS


class WorkstationCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        from tui.app import TapedeckApp
        from tui.screens.strategy_actions import (
            PANE_BINDING_IDS,
            StrategyActions,
            strategy_commands,
        )
        from tui.screens.workstation import SPEED_STEPS, WorkstationScreen

        app = self.app
        assert isinstance(app, TapedeckApp)
        commands: list[tuple[str, str, Callable[[], object]]] = []
        for binding_id, key, description, action, namespace in app.action_catalogue():
            callback: Callable[[], object] = partial(app.run_action, action, namespace)
            if binding_id in PANE_BINDING_IDS and isinstance(namespace, StrategyActions):
                callback = partial(namespace.run_pane_action, action)  # shows the pane
            commands.append((description, f"{key}  ·  {binding_id}", callback))
        screen = app.workstation
        if isinstance(screen, WorkstationScreen):
            for watchlist in screen.watchlists:
                commands.append((f"Watchlist: {watchlist.name}",
                                 f"{len(watchlist.symbols)} symbols",
                                 partial(screen.switch_watchlist, watchlist.name)))
            for column in COLUMNS:
                if column.sort_key is not None:
                    commands.append((f"Sort by {column.title}", "highest first",
                                     partial(screen.sort_board, column.key)))
            commands.append(("Sort: watchlist order", "as the list is arranged",
                             partial(screen.sort_board, None)))
            descriptions = {
                TradingState.ACTIVE: "resume: new orders allowed",
                TradingState.REDUCING: "only orders that shrink a position",
                TradingState.HALTED: "no new orders; cancels still work",
            }
            for state, description in descriptions.items():
                commands.append((f"Trading state: {state.value}", description,
                                 partial(screen.run_set_trading_state, state)))
            for speed in SPEED_STEPS:
                commands.append((f"Replay speed {speed:g}x", "how fast the replay runs",
                                 partial(screen.run_set_speed, speed)))
        if isinstance(screen, StrategyActions):
            commands.extend(strategy_commands(screen))
        for name in app.tapedeck_themes:
            commands.append((f"Theme: {name}", "switch and remember",
                             partial(app.set_theme, name)))
        return commands

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
