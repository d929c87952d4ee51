"""The Textual app: themes, app-wide keys, the palette, and the workstation screen.

`create_app` is the one factory the CLI and the tests use.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.dom import DOMNode

from core.client import EngineClient, InProcessEngineClient
from core.clock import Clock
from core.config import Settings
from core.engine import Engine
from themes import DEFAULT_THEME, STYLESHEET, THEMES
from tui import format as fmt
from tui.commands import WorkstationCommands
from tui.screens.help import HelpScreen
from tui.screens.workstation import WorkstationScreen

THEME_SETTING_KEY = "ui.theme"


class TapedeckApp(App[int]):
    TITLE = "tapedeck"
    CSS_PATH = STYLESHEET
    COMMANDS = App.COMMANDS | {WorkstationCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark,f1", "help", "Help", id="app.help"),
        # Not in the footer's list: the footer shows the palette key at its right already.
        Binding("ctrl+p", "command_palette", "Commands", show=False, id="app.palette"),
        Binding("t", "next_theme", "Theme", show=False, id="app.theme"),
        Binding("B", "backtest", "Backtest a strategy", show=False, id="app.backtest"),
    ]

    def __init__(
        self,
        settings: Settings,
        client: EngineClient | None = None,
        *,
        wall_clock: Clock | None = None,
        tune_gc: bool = False,
    ) -> None:
        """With no `client`, the app runs its own in-process engine for the life of the
        app (the tests do this); the CLI opens the engine first so that a database
        error is reported before the screen is taken over.

        `tune_gc`: this app is the process (the CLI's case, not a test's): once the first
        quotes are on screen, freeze the start-up heap and raise the collector's
        thresholds (`core.runtime.settle_heap`)."""
        super().__init__()
        self.settings = settings
        self._tune_gc = tune_gc
        self._client = client
        self._wall_clock = wall_clock
        self._owned_engine: Engine | None = None
        self.zone, self.zone_label = fmt.display_zone(settings.ui.timezone)
        self.workstation: WorkstationScreen | None = None
        self.tapedeck_themes = list(THEMES)
        for theme in THEMES.values():
            self.register_theme(theme)

    def first_quotes_shown(self) -> None:
        """The workstation has drawn its first prices: start-up is over."""
        if self._tune_gc:
            self._tune_gc = False
            from core.runtime import settle_heap

            self.call_after_refresh(settle_heap)

    @property
    def client(self) -> EngineClient:
        if self._client is None:
            raise RuntimeError("the engine is not running yet")
        return self._client

    async def _start_own_engine(self) -> None:
        engine = await Engine.open(self.settings, wall_clock=self._wall_clock)
        await engine.start()
        self._owned_engine = engine
        self._client = InProcessEngineClient(engine)

    async def on_unmount(self) -> None:
        if self._owned_engine is not None:
            await self._owned_engine.stop()
            self._owned_engine = None

    async def on_mount(self) -> None:
        if self._client is None:
            await self._start_own_engine()
        stored = await self.client.get_setting(THEME_SETTING_KEY)
        wanted = stored if stored in THEMES else self.settings.ui.theme
        if wanted not in THEMES:
            self.notify(f"unknown theme {wanted!r}: using {DEFAULT_THEME}", severity="warning")
            wanted = DEFAULT_THEME
        self.theme = wanted
        # Textual refreshes `theme_variables` on the next tick; widgets that bake colours
        # into what they write (the log) must see this theme's from their first line.
        self.get_css_variables()
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.workstation = WorkstationScreen(self.client, self.zone, self.zone_label)
        # After the workstation exists: [keys] may remap its bindings and its widgets'.
        self._apply_keymap()
        await self.push_screen(self.workstation)

    def get_theme_variable_defaults(self) -> dict[str, str]:
        """Values for the semantic variables under a theme that does not set them (the
        stylesheet is parsed before any of ours is active)."""
        return dict(THEMES[DEFAULT_THEME].variables)

    def _apply_keymap(self) -> None:
        keys = self.settings.keys
        if not keys:
            return
        known = {binding_id for binding_id, *_ in self.action_catalogue()}
        unknown = sorted(set(keys) - known)
        if unknown:
            self.notify(
                f"[keys] in the config names unknown binding ids: {', '.join(unknown)} "
                "(press ? for the list)",
                severity="warning",
                timeout=10,
            )
        self.set_keymap({k: v for k, v in keys.items() if k in known})

    def _theme_changed(self, theme: object) -> None:
        if self.workstation is not None and self.workstation.is_mounted:
            from tui.widgets.chart import ChartPane
            from tui.widgets.quote_board import QuoteBoard

            self.workstation.query_one(QuoteBoard).theme_changed()
            self.workstation.query_one(ChartPane).redraw()  # candle colours are the theme's
        if self.theme in THEMES:
            self.run_worker(self.client.set_setting(THEME_SETTING_KEY, self.theme),
                            exit_on_error=False)

    def set_theme(self, name: str) -> None:
        self.theme = name

    def action_next_theme(self) -> None:
        names = self.tapedeck_themes
        index = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(index + 1) % len(names)]
        self.notify(f"theme {self.theme}")

    def action_backtest(self) -> None:
        """Open the backtest screen (one per app: its form and results stay between
        visits)."""
        from tui.screens.backtest import BacktestScreen
        from tui.widgets.quote_board import QuoteBoard

        if isinstance(self.screen, BacktestScreen) or self._client is None:
            return
        if not self.is_screen_installed("backtest"):
            station = self.workstation
            selected = None
            if station is not None and station.is_mounted:
                selected = station.query_one(QuoteBoard).selected_symbol

            def watchlist() -> list[str]:
                current = station.current_watchlist() if station is not None else None
                return list(current.symbols) if current is not None else []

            self.install_screen(BacktestScreen(
                self.client, self.settings, self.zone, self.zone_label,
                symbols=(selected,) if selected else watchlist(), watchlist=watchlist),
                "backtest")
        self.push_screen("backtest")

    def action_catalogue(self) -> Iterator[tuple[str, str, str, str, DOMNode]]:
        """(binding id, keys, description, action, namespace) of every bound action of
        the app, the workstation and its widgets, for the help screen and palette."""
        from tui.widgets.blotter import Blotter
        from tui.widgets.quote_board import QuoteBoard

        seen: set[str] = set()
        sources: list[tuple[DOMNode, list[BindingType]]] = [(self, list(self.BINDINGS))]
        if self.workstation is not None:
            sources.append((self.workstation, list(self.workstation.BINDINGS)))
            if self.workstation.is_mounted:
                board = self.workstation.query_one(QuoteBoard)
                sources.append((board, list(board.BINDINGS)))
                blotter = self.workstation.query_one(Blotter)
                sources.append((blotter, list(blotter.BINDINGS)))
            else:  # before the first frame (the keymap): the classes' bindings
                sources.append((self.workstation, list(QuoteBoard.BINDINGS)))
                sources.append((self.workstation, list(Blotter.BINDINGS)))
        for namespace, bindings in sources:
            for binding in bindings:
                if not isinstance(binding, Binding) or not binding.id or binding.id in seen:
                    continue
                seen.add(binding.id)
                keys = self._keymap.get(binding.id, binding.key)
                display = ", ".join(self.get_key_display(Binding(k.strip(), "")) for k in
                                    keys.split(","))
                yield binding.id, display, binding.description, binding.action, namespace

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        rows = [(keys, description, binding_id)
                for binding_id, keys, description, _, _ in self.action_catalogue()]
        legend = (
            "Quote board: ▲/▼ and +/- signs mark direction in every theme; * marks a symbol "
            "with synthetic prices (not in the replay data); ⚠ marks a stale symbol (no "
            "update while the market is open). Change colours with t or the palette."
        )
        self.push_screen(HelpScreen(rows, legend))


def create_app(
    settings: Settings,
    client: EngineClient | None = None,
    *,
    wall_clock: Clock | None = None,
    tune_gc: bool = False,
) -> TapedeckApp:
    return TapedeckApp(settings, client, wall_clock=wall_clock, tune_gc=tune_gc)
