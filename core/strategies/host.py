"""Strategies in the running engine: instances, their modes, and what they send.

An instance is a strategy class with its parameters, its symbols and its mode, kept in
the `strategy_instances` table so all three survive a restart. Each runs in a
`StrategyRunner`, the driver the backtester uses too, so live and backtest run the same
code the same way.

The hot path stays synchronous: a completed bar (daily bars at the close, minute bars
as they complete) and, for strategies that want them, quotes reach the runners straight
from the bus. What a strategy asks for collects in its runner's outbox; `flush()` sends
it through the trading desk (risk, the journal, the broker), in the order it was asked
for. The engine's feed supervisor awaits `flush()` after each batch, so the orders of a
bar are sent before the next batch is applied: the same order of events as a backtest.
A sender task flushes what arrives between batches (a fill that makes a strategy act).

Isolation: a handler that raises switches its instance off (its working orders are
canceled, the error goes to the log pane and the traceback to the audit log); every
other instance runs on. Orders on a symbol whose data is stale are not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from core.bus import Bus
from core.clock import ExchangeCalendar
from core.model import (
    NS_PER_SECOND,
    TERMINAL_STATUSES,
    Bar,
    Fill,
    Instrument,
    LogLevel,
    Quote,
    is_well_formed_symbol,
    normalize_symbol,
)
from core.orders import Order, OrderEvent
from core.state import CommandError, StrategyInfo, StrategyView
from core.strategies.base import StrategyMode
from core.strategies.dispatch import IntentSender
from core.strategies.instances import (
    Instance,
    delete_instance,
    describe_params,
    load_instances,
    parameter_errors,
    parse_mode,
    save_instance,
    session_midnight_ns,
    strategy_info,
    validate_params,
)
from core.strategies.registry import StrategyRegistry
from core.strategies.runner import CancelIntent, PlaceIntent, Signal, StrategyRunner

if TYPE_CHECKING:
    from core.feeds import MarketData
    from core.market import MarketState
    from core.store import Store
    from core.trading import TradingDesk

log = logging.getLogger(__name__)

# Calendar days of daily history an instance warms on: about 275 sessions, more when
# an indicator looks further back.
WARMUP_DAYS = 400
MAX_SYMBOLS = 50
MAX_INSTANCES = 100

LogLine = Callable[[LogLevel, str, str], None]
EnsureSymbol = Callable[[str], Awaitable[Instrument | None]]


@dataclass(slots=True)
class _Outgoing:
    instance: Instance
    intent: PlaceIntent | CancelIntent | Signal


class StrategyHost:
    def __init__(
        self,
        registry: StrategyRegistry,
        store: Store,
        desk: TradingDesk,
        market: MarketState,
        *,
        calendar: ExchangeCalendar,
        now_ns: Callable[[], int],
        log_line: LogLine,
        ensure_symbol: EnsureSymbol,
    ) -> None:
        self.registry = registry
        self.store = store
        self.desk = desk
        self.market = market
        self.bus: Bus = market.bus
        self.calendar = calendar
        self.now_ns = now_ns
        self.log_line = log_line
        self.ensure_symbol = ensure_symbol
        self.instances: dict[str, Instance] = {}
        self._by_symbol: dict[str, list[Instance]] = {}
        # Only the instances whose strategy handles quotes: the rest never see one, and
        # a quote for their symbols costs one failed lookup.
        self._quote_takers: dict[str, list[Instance]] = {}
        self._owners: dict[str, Instance] = {}  # client order id -> its instance
        self._feed: MarketData | None = None
        self._ready = False  # warm: bars go to the runners (before: to `_early`)
        self._early: list[Bar] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._sending = asyncio.Event()  # set once the desk can take orders
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: list[Callable[[], None]] = []
        self.sender = IntentSender(desk, market, self.bus, log_line, self._owners)

    # ------------------------------------------------------------------ lifecycle

    async def load(self) -> None:
        """The saved instances (before the feed starts: their symbols must stream)."""
        instances, problems = await load_instances(self.store)
        for problem in problems:
            self.log_line(LogLevel.ERROR, "strategy", problem)
        for instance in instances:
            self.instances[instance.id] = instance
            self._build(instance)
        self._index()

    def symbols(self) -> list[str]:
        """Every instance's symbols: the feed must stream them."""
        return list(dict.fromkeys(s for i in self.instances.values() for s in i.symbols))

    async def start(self, feed: MarketData) -> None:
        """Warm every instance on history and start those that are on, before the feed
        streams (so no bar comes between the history and the first live bar). What they
        ask for waits for `begin_sending`."""
        self._feed = feed
        bus = self.bus
        self._unsubscribe = [bus.subscribe(Bar, self._on_bar), bus.subscribe(Quote, self._on_quote),
                             bus.subscribe(Fill, self._on_fill),
                             bus.subscribe(OrderEvent, self._on_order_event)]
        self._restore_books()
        for instance in self.instances.values():
            if instance.runner is not None:
                await self._warm(instance)
        self._ready = True
        early, self._early = self._early, []
        for bar in early:
            self._on_bar(bar)
        for instance in self.instances.values():
            if instance.runner is not None and instance.mode != StrategyMode.OFF:
                self._start_runner(instance)
        active = sum(1 for i in self.instances.values() if i.mode != StrategyMode.OFF)
        if self.instances:
            self.log_line(LogLevel.INFO, "strategy",
                          f"{len(self.instances)} strategy instances, {active} on")

    async def begin_sending(self) -> None:
        """The desk is up: send what the instances ask for from now on."""
        self._tasks = [asyncio.create_task(self._send_loop(), name="strategy-sender")]
        self._sending.set()
        await self.flush()

    async def stop(self) -> None:
        """Stop every instance; what they ask for while stopping is not sent, and their
        orders stay as they are (a restart picks them up again)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        for instance in self.instances.values():
            runner = instance.runner
            if runner is not None and runner.active:
                runner.stop()
                runner.drain()
        await self._save_pending()

    def _build(self, instance: Instance) -> None:
        """A fresh runner for the instance (its strategy object is new; a book given
        over from an earlier runner is the caller's business)."""
        try:
            strategy_class = self.registry.get(instance.strategy)
        except KeyError:
            instance.runner = None
            instance.mode = StrategyMode.OFF
            instance.error = (f"the strategy {instance.strategy!r} is not installed (see "
                              "the strategy folder and the log)")
            return
        instance.title = strategy_class.title
        try:
            params = strategy_class.Params.model_validate(instance.params)
        except ValidationError as err:
            instance.runner = None
            instance.mode = StrategyMode.OFF
            instance.error = f"its saved parameters are no longer valid: {parameter_errors(err)}"
            return
        instance.runner = StrategyRunner(
            instance.id, strategy_class, params, instance.symbols, instance.mode,
            now_ns=self.now_ns, account_equity=self.desk.portfolio.equity,
            log=lambda message: self.log_line(LogLevel.INFO, "strategy", message),
            round_price=self._round_price)
        instance.error = instance.traceback = ""

    def _round_price(self, symbol: str, price: Decimal | float) -> Decimal:
        state = self.market.states.get(symbol)
        instrument = state.instrument if state is not None else Instrument(symbol)
        return instrument.round_price(price)

    def _index(self) -> None:
        by_symbol: dict[str, list[Instance]] = {}
        for instance in self.instances.values():
            for symbol in instance.symbols:
                by_symbol.setdefault(symbol, []).append(instance)
        self._by_symbol = by_symbol
        self._quote_takers = {
            symbol: takers for symbol, instances in by_symbol.items()
            if (takers := [i for i in instances if i.runner is not None
                           and i.runner.wants_quotes])}

    def _restore_books(self) -> None:
        """Each instance's positions and working orders, from the journal."""
        orders_by_instance: dict[str, list[Order]] = {}
        for order in self.desk.orders.values():
            owner = order.request.strategy
            if owner in self.instances:
                orders_by_instance.setdefault(owner, []).append(order)
                self._owners[order.client_order_id] = self.instances[owner]
        for instance_id, orders in orders_by_instance.items():
            runner = self.instances[instance_id].runner
            if runner is not None:
                ids = {order.client_order_id for order in orders}
                runner.restore(orders, [f for f in self.desk.fills if f.client_order_id in ids])

    async def _warm(self, instance: Instance) -> None:
        """Daily (or today's minute) history up to now into the instance's series, so
        its indicators are warm when it starts. Bars still forming are left out."""
        runner = instance.runner
        if runner is None or self._feed is None:
            return
        daily = runner.strategy_class.interval != "1m"
        lookback = max((indicator.lookback for indicator in runner.indicators), default=1)
        days = max(WARMUP_DAYS, math.ceil(lookback * 7 / 5) + 30) if daily else 5
        now = self.now_ns()
        end = datetime.fromtimestamp(now / NS_PER_SECOND, tz=UTC) + timedelta(days=1)
        start = end - timedelta(days=days)
        try:
            frame = await self._feed.history(list(runner.symbols), start, end,
                                             "1d" if daily else "1m")
        except Exception as err:  # a provider's failure: the instance starts cold
            self.log_line(LogLevel.WARNING, "strategy",
                          f"{instance.id}: no history to warm on ({err}); its indicators "
                          "start cold")
            return
        interval_s = 86_400 if daily else 60
        closes: dict[str, float] = {}
        for symbol, ts, o, h, lo, c, v in zip(
                frame["symbol"], frame["ts"], frame["open"], frame["high"], frame["low"],
                frame["close"], frame["volume"], strict=True):
            ts_ns = int(ts.value)
            if not self._complete(ts_ns, interval_s, now):
                continue
            runner.warm(Bar(symbol, ts_ns, interval_s, float(o), float(h), float(lo),
                            float(c), float(v)))
            closes[symbol] = float(c)
        runner.mark(closes)
        instance.pnl_at_close = runner.book.portfolio.equity()

    def _complete(self, ts_ns: int, interval_s: int, now_ns: int) -> bool:
        if interval_s < 86_400:
            return ts_ns + interval_s * NS_PER_SECOND <= now_ns
        _, close_ns = self.calendar.open_close_ns(self.calendar.session_date(ts_ns))
        return close_ns <= now_ns

    def _start_runner(self, instance: Instance) -> None:
        runner = instance.runner
        if runner is not None and not runner.start():
            self._failed(instance)

    # ------------------------------------------------------------------ the hot path

    def _on_bar(self, bar: Bar) -> None:
        instances = self._by_symbol.get(bar.symbol)
        if not instances:
            return
        if not self._ready:
            self._early.append(bar)
            return
        for instance in instances:
            runner = instance.runner
            if runner is None or runner.series[bar.symbol].interval_s != bar.interval_s:
                continue
            if not runner.on_bar(bar):
                self._failed(instance)
            if bar.interval_s >= 86_400:
                # The close: day P&L counts from here.
                runner.mark({bar.symbol: bar.close})
                instance.pnl_at_close = runner.book.portfolio.equity()
        self._wake.set()

    def _on_quote(self, quote: Quote) -> None:
        instances = self._quote_takers.get(quote.symbol)
        if not instances or not self._ready:
            return
        for instance in instances:
            runner = instance.runner
            if runner is not None and not runner.on_quote(quote):
                self._failed(instance)
        self._wake.set()

    def _on_fill(self, fill: Fill) -> None:
        instance = self._owners.get(fill.client_order_id)
        if instance is None or instance.runner is None:
            return
        if not instance.runner.on_fill(fill):
            self._failed(instance)
        self._wake.set()

    def _on_order_event(self, event: OrderEvent) -> None:
        instance = self._owners.get(event.client_order_id)
        if instance is not None and instance.runner is not None \
                and event.status in TERMINAL_STATUSES:
            instance.runner.order_ended(event.client_order_id)

    def _failed(self, instance: Instance) -> None:
        """A handler raised: the instance is off from now on (saved at the next flush,
        where its working orders are canceled too)."""
        runner = instance.runner
        if runner is None or runner.failure is None:
            return
        if instance.mode == StrategyMode.OFF and instance.error:
            return
        failure = runner.failure
        instance.mode = runner.mode = StrategyMode.OFF
        instance.error, instance.traceback = failure.message, failure.traceback
        instance.pending_save = True
        self.sender.counters.failures += 1
        self.log_line(LogLevel.ERROR, "strategy",
                      f"{failure.message}; {instance.id} is switched off (traceback in the "
                      "audit log and the strategy's details)")
        log.debug("strategy %s failed:\n%s", instance.id, failure.traceback)
        with contextlib.suppress(Exception):
            self.store.audit("strategy failure", failure.message,
                             {"instance": instance.id, "traceback": failure.traceback})
        self._wake.set()

    # ------------------------------------------------------------------ sending

    async def flush(self) -> None:
        """Send everything the instances asked for, oldest first, until none asks for
        more (a fill on arrival may make one ask again)."""
        await self._sending.wait()
        async with self._lock:
            while True:
                outgoing = [_Outgoing(instance, intent)
                            for instance in self.instances.values()
                            if instance.runner is not None and instance.runner.outbox
                            for intent in instance.runner.drain()]
                switched_off = [i for i in self.instances.values() if i.pending_save]
                if not outgoing and not switched_off:
                    return
                for item in outgoing:
                    await self.sender.send(item.instance, item.intent)
                for instance in switched_off:
                    instance.pending_save = False
                    await self.sender.cancel_working(instance)
                    await self._save(instance)

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # never let one bad send end the sender
                log.exception("strategy sender")

    # ------------------------------------------------------------------ commands

    def catalog(self) -> list[StrategyInfo]:
        return [strategy_info(name, cls, self.registry.origins.get(name, ""))
                for name, cls in sorted(self.registry.classes.items())]

    def _instance(self, instance_id: str) -> Instance:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise CommandError(f"there is no strategy instance {instance_id!r}")
        return instance

    async def add(self, strategy: str, symbols: Sequence[str],
                  params: Mapping[str, Any] | None = None,
                  mode: StrategyMode | str = StrategyMode.OBSERVE) -> StrategyView:
        try:
            strategy_class = self.registry.get(strategy)
        except KeyError as err:
            raise CommandError(str(err.args[0])) from None
        mode = parse_mode(mode)
        if len(self.instances) >= MAX_INSTANCES:
            raise CommandError(f"at most {MAX_INSTANCES} strategy instances")
        chosen = await self._checked_symbols(symbols)
        validated = validate_params(strategy_class, params or {})
        numbers = [int(i.id.rpartition("-")[2]) for i in self.instances.values()
                   if i.strategy == strategy and i.id.rpartition("-")[2].isdigit()]
        instance_id = f"{strategy}-{max(numbers, default=0) + 1}"
        position = max((i.position for i in self.instances.values()), default=-1) + 1
        instance = Instance(instance_id, strategy, validated.model_dump(mode="json"), chosen,
                            StrategyMode.OFF, position, self.now_ns())
        self._build(instance)
        self.instances[instance_id] = instance
        self._index()
        await self._warm(instance)
        await self._save(instance)
        self.log_line(LogLevel.INFO, "strategy",
                      f"added {instance_id} on {', '.join(chosen)}")
        if mode != StrategyMode.OFF:
            await self.set_mode(instance_id, mode)
        return self.view(instance)

    async def _checked_symbols(self, symbols: Sequence[str]) -> tuple[str, ...]:
        chosen = tuple(dict.fromkeys(normalize_symbol(s) for s in symbols if s.strip()))
        if not chosen:
            raise CommandError("a strategy instance needs at least one symbol")
        if len(chosen) > MAX_SYMBOLS:
            raise CommandError(f"at most {MAX_SYMBOLS} symbols per instance")
        bad = [s for s in chosen if not is_well_formed_symbol(s)]
        if bad:
            raise CommandError(f"not a symbol: {', '.join(bad)}")
        unknown = [s for s in chosen if await self.ensure_symbol(s) is None]
        if unknown:
            raise CommandError(f"no market data for {', '.join(unknown)}")
        return chosen

    async def set_mode(self, instance_id: str, mode: StrategyMode | str) -> StrategyView:
        instance = self._instance(instance_id)
        mode = parse_mode(mode)
        if instance.runner is None and mode != StrategyMode.OFF:
            raise CommandError(f"{instance_id} cannot run: {instance.error}")
        old = instance.mode
        if mode == old:
            return self.view(instance)
        runner = instance.runner
        if runner is not None and old == StrategyMode.OFF and runner.failure is not None:
            # It failed before: a fresh strategy object, keeping its book and history.
            self._rebuild(instance)
            runner = instance.runner
        instance.mode = mode
        if runner is not None:
            runner.mode = mode
            if old == StrategyMode.OFF:
                self._start_runner(instance)
            elif mode == StrategyMode.OFF:
                runner.stop()
                runner.drain()
        if not mode.trades:
            await self.sender.cancel_working(instance)
        await self._save(instance)
        self.log_line(LogLevel.INFO, "strategy", f"{instance_id}: {old.value} -> {mode.value}")
        await self.flush()
        return self.view(instance)

    async def set_params(self, instance_id: str, params: Mapping[str, Any]) -> StrategyView:
        instance = self._instance(instance_id)
        if instance.runner is None:
            try:
                strategy_class = self.registry.get(instance.strategy)
            except KeyError as err:
                raise CommandError(str(err.args[0])) from None
        else:
            strategy_class = instance.runner.strategy_class
        validated = validate_params(strategy_class, params)
        instance.params = validated.model_dump(mode="json")
        was_on = instance.mode != StrategyMode.OFF and instance.runner is not None
        if instance.runner is not None and was_on:
            instance.runner.stop()
            instance.runner.drain()
        self._rebuild(instance)
        if instance.runner is not None and was_on:
            instance.runner.mode = instance.mode
            self._start_runner(instance)
        await self._save(instance)
        self.log_line(LogLevel.INFO, "strategy",
                      f"{instance_id}: parameters {describe_params(instance.params)}")
        await self.flush()
        return self.view(instance)

    def _rebuild(self, instance: Instance) -> None:
        """A new runner (new parameters, or after a failure) that keeps the old one's
        book, order refs and bars: its positions and working orders are still its own.
        Its indicators are recomputed over the bars it has."""
        old = instance.runner
        mode = instance.mode
        instance.mode = StrategyMode.OFF  # the new runner starts off; the caller starts it
        self._build(instance)
        new = instance.runner
        instance.mode = mode
        if new is None or old is None:
            return
        new.book, new.refs = old.book, old.refs
        for _symbol, series in old.series.items():
            for index in range(len(series.ts_ns)):
                new.warm(series.bar_at(index))

    async def remove(self, instance_id: str) -> None:
        instance = self._instance(instance_id)
        if instance.mode != StrategyMode.OFF:
            raise CommandError(f"switch {instance_id} off before removing it")
        runner = instance.runner
        if runner is not None and runner.book.working:
            raise CommandError(f"{instance_id} still has working orders")
        del self.instances[instance_id]
        self._index()
        await delete_instance(self.store, instance_id)
        held = runner is not None and any(
            p.quantity for p in runner.book.portfolio.positions.values())
        self.log_line(LogLevel.INFO, "strategy", f"removed {instance_id}" + (
            "; its positions stay in the account" if held else ""))

    async def _save(self, instance: Instance) -> None:
        await save_instance(self.store, instance)

    async def _save_pending(self) -> None:
        for instance in self.instances.values():
            if instance.pending_save:
                instance.pending_save = False
                with contextlib.suppress(Exception):
                    await self._save(instance)

    # ------------------------------------------------------------------ views

    def view(self, instance: Instance) -> StrategyView:
        return instance.view(self.market.states,
                             session_midnight_ns(self.now_ns(), self.calendar.zone))

    def views(self) -> list[StrategyView]:
        midnight = session_midnight_ns(self.now_ns(), self.calendar.zone)
        return [instance.view(self.market.states, midnight) for instance in
                sorted(self.instances.values(), key=lambda i: (i.position, i.id))]
