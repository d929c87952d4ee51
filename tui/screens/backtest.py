"""The backtest screen (B, or "Backtest a strategy" in the palette): pick a strategy,
symbols, dates and parameters, run it over the bundled daily bars, and read its
metrics, equity curve and trades; every run is saved, and saved runs can be reopened.

The run happens in a thread worker (loading the bars, then `run_backtest`), so the
screen keeps responding: the progress callback reports through `call_from_thread`, and
escape cancels (the callback raises `Cancelled` at its next call, a few sessions on).
The result is saved through the engine client, which owns the database.

Tabs: F2 setup, F3 results, F4 trades, F5 saved runs (80x24 shows one at a time;
the results tab scrolls when its chart does not fit).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, tzinfo
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Input,
    ProgressBar,
    Static,
    TabbedContent,
    TabPane,
)
from textual.worker import Worker, WorkerState, get_current_worker

from core.backtest import BacktestError, BacktestResult, run_backtest
from core.backtest_grid import crash_text
from core.client import CommandError, EngineClient
from core.config import Settings
from core.state import StrategyInfo
from core.strategies.registry import StrategyRegistry, discover, strategy_folder
from data.bundle import BundledDailyBars, BundleError
from data.history import HistoryError, load_history
from tui.screens.backtest_form import BacktestForm, BacktestJob, FormDefaults, StrategyChoice
from tui.widgets.backtest_results import (
    ResultsPane,
    ResultView,
    SavedRunsTable,
    TradesTable,
    view_of_result,
    view_of_saved,
)

DEFAULT_START = date(2018, 1, 2)  # the last two years of the bundle
DEFAULT_END = date(2019, 12, 31)
DEFAULT_CASH = Decimal(100_000)
DEFAULT_SYMBOL = "AAPL"
SAVED_LIMIT = 100
TABS = ("setup", "results", "trades", "saved")

SCREEN_CSS = """
BacktestScreen { layout: vertical; }
BacktestScreen #bt-title { height: 1; background: $panel; color: $foreground; }
BacktestScreen #bt-tabs { height: 1fr; }
BacktestScreen #bt-tabs > ContentSwitcher { height: 1fr; }
BacktestScreen #bt-tabs TabPane { height: 1fr; padding: 0; }
BacktestScreen #bt-loading { padding: 1 2; color: $text-muted; }
BacktestScreen #bt-status { height: auto; background: $panel; }
BacktestScreen #bt-progress { width: 34; height: 1; display: none; padding-left: 1; }
BacktestScreen #bt-progress.-running { display: block; }
BacktestScreen #bt-message { width: 1fr; height: auto; max-height: 4; padding: 0 1; }
BacktestScreen ResultsPane { height: 1fr; }
BacktestScreen #bt-summary { height: auto; padding: 0 1; }
BacktestScreen #bt-metrics { height: auto; padding: 0 1; margin-top: 1; }
BacktestScreen #bt-equity { height: 12; margin-top: 1; }
BacktestScreen DataTable { height: 1fr; background: $surface; scrollbar-size-vertical: 1; }
"""


class Cancelled(Exception):
    """The trader cancelled the run: raised from the progress callback."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run in the worker ended."""

    job: BacktestJob
    result: BacktestResult | None = None
    notes: tuple[str, ...] = ()
    error: str = ""
    cancelled: bool = False


def strategy_choices(catalog: Sequence[StrategyInfo], registry: StrategyRegistry
                     ) -> list[StrategyChoice]:
    """The engine's strategies, each with its class from this process's registry; those
    only the registry has (the catalog could not be read) from the class itself."""
    choices = [StrategyChoice(info.name, info.title, info.description, info.defaults,
                              info.schema, registry.classes.get(info.name))
               for info in catalog]
    listed = {info.name for info in catalog}
    for name, strategy_class in sorted(registry.classes.items()):
        if name not in listed:
            params = strategy_class.Params
            choices.append(StrategyChoice(
                name, str(getattr(strategy_class, "title", "") or name),
                str(getattr(strategy_class, "description", "") or ""),
                params().model_dump(mode="json"), params.model_json_schema(), strategy_class))
    return choices


class BacktestScreen(Screen[None]):
    DEFAULT_CSS = SCREEN_CSS
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "run", "Run", id="backtest.run"),
        Binding("escape", "back", "Cancel/back", id="backtest.back"),
        Binding("f2", "show_tab('setup')", "Setup", show=False, id="backtest.setup"),
        Binding("f3", "show_tab('results')", "Results", show=False, id="backtest.results"),
        Binding("f4", "show_tab('trades')", "Trades", show=False, id="backtest.trades"),
        Binding("f5", "show_tab('saved')", "Saved runs", show=False, id="backtest.saved"),
        Binding("ctrl+l", "use_watchlist", "Watchlist symbols", show=False,
                id="backtest.watchlist"),
    ]

    def __init__(self, client: EngineClient, settings: Settings, zone: tzinfo,
                 zone_label: str, *, symbols: Sequence[str] = (),
                 watchlist: Callable[[], Sequence[str]] | None = None) -> None:
        """`symbols`: the ones the form starts with; `watchlist`: what ctrl+l asks for
        the current watchlist's symbols."""
        super().__init__()
        self.client = client
        self.settings = settings
        self.zone = zone
        self.zone_label = zone_label
        self._symbols = tuple(symbols) or (DEFAULT_SYMBOL,)
        self._watchlist = watchlist
        self._bundle = BundledDailyBars()
        self._cancel: threading.Event | None = None
        self._worker: Worker[Outcome] | None = None
        self.last_run_id: int | None = None

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Static(" Backtest", id="bt-title")
        with TabbedContent(id="bt-tabs"):
            with TabPane("F2 Setup", id="bt-setup"):
                yield Static("loading the strategies…", id="bt-loading")
            with TabPane("F3 Results", id="bt-results"):
                yield ResultsPane(id="bt-results-pane")
            with TabPane("F4 Trades", id="bt-trades"):
                yield TradesTable(id="bt-trades-table")
            with TabPane("F5 Saved runs", id="bt-saved"):
                yield SavedRunsTable(id="bt-saved-table")
        with Horizontal(id="bt-status"):
            yield ProgressBar(total=None, show_eta=False, id="bt-progress")
            yield Static("", id="bt-message")
        yield Footer()

    def on_mount(self) -> None:
        self._load_setup()
        self._load_saved()

    def on_unmount(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    @property
    def form(self) -> BacktestForm | None:
        return next(iter(self.query(BacktestForm).results(BacktestForm)), None)

    @property
    def running(self) -> bool:
        return self._cancel is not None

    def say(self, message: str, level: str = "info") -> None:
        """The status line: 'info', 'good', 'warn' or 'error'."""
        variables = self.app.theme_variables
        colour = {"error": variables.get("error", "red"), "warn": variables.get("warn", ""),
                  "good": variables.get("up", "")}.get(level, "")
        self.query_one("#bt-message", Static).update(Text(message, style=colour))

    # ------------------------------------------------------------------ set-up

    @work(group="backtest-setup", exit_on_error=False)
    async def _load_setup(self) -> None:
        catalog: list[StrategyInfo] = []
        try:
            catalog = await self.client.strategy_catalog()
        except CommandError as error:
            self.say(f"cannot read the engine's strategies: {error}", "warn")
        registry, known, problem = await asyncio.to_thread(self._discover)
        choices = strategy_choices(catalog, registry)
        if problem:
            self.say(problem, "warn")
        if not choices:
            self.query_one("#bt-loading", Static).update("There are no strategies to run.")
            return
        settings = self.settings.strategies
        defaults = FormDefaults(self._symbols, DEFAULT_START, DEFAULT_END, DEFAULT_CASH,
                                settings.backtest_fill_at, settings.backtest_adjusted)
        form = BacktestForm(choices, defaults, known, id="bt-form")
        await self.query_one("#bt-loading", Static).remove()
        await self.query_one("#bt-setup", TabPane).mount(form)
        if self.query_one("#bt-tabs", TabbedContent).active == "bt-setup":
            form.focus_first()

    def _discover(self) -> tuple[StrategyRegistry, list[str] | None, str]:
        """In a thread: the strategy classes (this installation and the strategy folder)
        and the bundle's symbols."""
        registry = discover(strategy_folder(self.settings.strategies.folder))
        try:
            return registry, self._bundle.symbols(), ""
        except BundleError as error:
            return registry, None, str(error)

    # ------------------------------------------------------------------ actions

    def action_show_tab(self, tab: str) -> None:
        if tab in TABS:
            self.query_one("#bt-tabs", TabbedContent).active = f"bt-{tab}"
            self._focus_tab(tab)

    @on(TabbedContent.TabActivated, "#bt-tabs")
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tab = (event.pane.id or "").removeprefix("bt-")
        self._focus_tab(tab)
        if tab == "saved":
            self._load_saved()

    def _focus_tab(self, tab: str) -> None:
        if tab == "setup":
            form = self.form
            if form is not None and (self.focused is None or form not in
                                     self.focused.ancestors_with_self):
                form.focus_first()
        elif tab == "results":
            self.query_one(ResultsPane).focus()
        elif tab == "trades":
            self.query_one(TradesTable).focus()
        elif tab == "saved":
            self.query_one(SavedRunsTable).focus()

    def action_use_watchlist(self) -> None:
        form = self.form
        symbols = list(self._watchlist()) if self._watchlist is not None else []
        if form is None or not symbols:
            self.say("there is no watchlist to take symbols from", "warn")
            return
        form.set_symbols(symbols)
        self.action_show_tab("setup")
        self.say(f"{len(symbols)} symbols from the watchlist")

    def action_back(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.say("cancelling…", "warn")
            return
        self.app.pop_screen()

    @on(Input.Submitted)
    @on(Button.Pressed, "#bt-run")
    def _run_requested(self) -> None:
        self.action_run()

    def action_run(self) -> None:
        form = self.form
        if form is None:
            self.say("the strategies are still loading", "warn")
            return
        if self.running:
            self.say("a backtest is running: esc cancels it", "warn")
            return
        job = form.check()
        if job is None:
            self.action_show_tab("setup")
            problem = form.first_problem()
            if problem is not None:
                problem.focus()
            self.say("fix the fields marked in red first: nothing was run", "error")
            return
        cancel = threading.Event()
        self._cancel = cancel
        bar = self.query_one("#bt-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.add_class("-running")
        count = len(job.spec.symbols)
        self.say(f"loading bars for {count} symbol{'s' if count != 1 else ''}… (esc cancels)")
        self._worker = self.run_worker(partial(self._execute, self.app, job, cancel),
                                       name="backtest",
                                       group="backtest", thread=True, exit_on_error=False)

    # ------------------------------------------------------------------ the run (a thread)

    def _execute(self, app: App[Any], job: BacktestJob, cancel: threading.Event) -> Outcome:
        spec = job.spec
        worker = get_current_worker()  # cancelled by Textual when the app closes

        def report(callback: Callable[..., None], *args: Any) -> None:
            if cancel.is_set() or worker.is_cancelled:
                raise Cancelled
            try:
                app.call_from_thread(callback, cancel, *args)
            except RuntimeError:  # the app is closing
                raise Cancelled from None

        try:
            # Symbol by symbol first (cached by the bundle), so a long load can be
            # cancelled; load_history then takes them from the cache.
            for number, symbol in enumerate(spec.symbols, start=1):
                if symbol in self._bundle:
                    self._bundle.load(symbol)
                report(self._loaded, number, len(spec.symbols))
            history = load_history(spec.symbols, spec.start, spec.end, adjusted=job.adjusted,
                                   bundle=self._bundle)
            report(self._progress, 0, 0)
            result = run_backtest(job.strategy_class, job.params, history.bars, spec,
                                  paper=self.settings.paper, risk=self.settings.risk,
                                  progress=lambda done, total: report(self._progress, done,
                                                                      total))
        except Cancelled:
            return Outcome(job, cancelled=True)
        except (HistoryError, BundleError, BacktestError) as error:
            return Outcome(job, error=str(error))
        except Exception as error:
            # The strategy's constructor and indicators() are its own code, run before
            # the runner's guard: a sentence, not a traceback.
            return Outcome(job, error=f"{spec.strategy} could not start: {crash_text(error)}")
        if cancel.is_set():
            return Outcome(job, cancelled=True)
        return Outcome(job, result, tuple(history.notes))

    def _current(self, cancel: threading.Event) -> bool:
        """The run reporting is this screen's current one (not one cancelled, nor a
        report arriving as the app closes)."""
        return (self.app.is_running and self.is_mounted and cancel is self._cancel
                and not cancel.is_set())

    def _loaded(self, cancel: threading.Event, done: int, total: int) -> None:
        if self._current(cancel):
            self.query_one("#bt-progress", ProgressBar).update(total=total, progress=done)
            self.say(f"loading bars: {done}/{total} symbols… (esc cancels)")

    def _progress(self, cancel: threading.Event, done: int, total: int) -> None:
        if not self._current(cancel):
            return
        bar = self.query_one("#bt-progress", ProgressBar)
        if total:
            bar.update(total=total, progress=done)
            self.say(f"running: {done:,}/{total:,} sessions… (esc cancels)")
        else:
            bar.update(total=None, progress=0)
            self.say("running… (esc cancels)")

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker is not self._worker or event.state not in (
                WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        self._worker = None
        self._cancel = None
        self.query_one("#bt-progress", ProgressBar).remove_class("-running")
        if event.state == WorkerState.ERROR:
            error = worker.error
            self.say(f"the backtest failed: {crash_text(error) if error else 'unknown error'}",
                     "error")
            return
        outcome = worker.result
        if event.state == WorkerState.CANCELLED or outcome is None or outcome.cancelled:
            self.say("cancelled: nothing was run to the end, nothing was saved", "warn")
            return
        if outcome.error or outcome.result is None:
            self.say(outcome.error or "the backtest gave no result", "error")
            return
        self._finished(outcome.job, outcome.result, outcome.notes)

    def _finished(self, job: BacktestJob, result: BacktestResult, notes: Sequence[str]) -> None:
        view = view_of_result(result, job.adjusted, notes)
        self._show(view)
        sessions = len(result.days)
        summary = f"{sessions:,} session{'s' if sessions != 1 else ''}, " \
                  f"{result.metrics.trades:,} trade{'s' if result.metrics.trades != 1 else ''}"
        if result.failure:
            self.say(f"the strategy failed and stopped trading ({summary}); saving…", "error")
        else:
            self.say(f"done: {summary}; saving…")
        self._save(view, result, summary)

    @work(group="backtest-save", exit_on_error=False)
    async def _save(self, view: ResultView, result: BacktestResult, summary: str) -> None:
        try:
            run_id = await self.client.save_backtest(result)
        except CommandError as error:
            self.say(f"{summary}; the run was not saved: {error}", "error")
            return
        self.last_run_id = run_id
        pane = self.query_one(ResultsPane)
        if pane.view is view:
            pane.set_run_id(run_id)
            self._title(pane.view)
        level = "error" if result.failure else "good"
        self.say(f"saved as run {run_id}: {summary}", level)
        self._load_saved()

    # ------------------------------------------------------------------ results

    def _show(self, view: ResultView) -> None:
        self.query_one(ResultsPane).show(view)
        self.query_one(TradesTable).show(view.trips, self.zone)
        tabs = self.query_one("#bt-tabs", TabbedContent)
        tabs.get_tab("bt-trades").label = f"F4 Trades ({len(view.trips):,})"
        self._title(view)
        self.action_show_tab("results")

    def _title(self, view: ResultView | None) -> None:
        text = " Backtest"
        if view is not None:
            text += f" · {'run ' + str(view.run_id) + ': ' if view.run_id else ''}{view.heading}"
        self.query_one("#bt-title", Static).update(text)

    @work(exclusive=True, group="backtest-saved", exit_on_error=False)
    async def _load_saved(self) -> None:
        try:
            runs = await self.client.backtest_runs(SAVED_LIMIT)
        except CommandError as error:
            self.say(f"cannot read the saved runs: {error}", "error")
            return
        self.query_one(SavedRunsTable).show(runs, self.zone)
        tabs = self.query_one("#bt-tabs", TabbedContent)
        tabs.get_tab("bt-saved").label = f"F5 Saved runs ({len(runs):,})"

    @on(DataTable.RowSelected, "#bt-saved-table")
    def _saved_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self._open_saved(int(event.row_key.value))

    @work(exclusive=True, group="backtest-open", exit_on_error=False)
    async def _open_saved(self, run_id: int) -> None:
        try:
            run = await self.client.backtest_run(run_id)
        except CommandError as error:
            self.say(f"cannot read run {run_id}: {error}", "error")
            return
        if run is None:
            self.say(f"there is no saved run {run_id}", "error")
            return
        self._show(view_of_saved(run, self.zone, self.zone_label))
        self.say(f"reopened run {run_id}")
