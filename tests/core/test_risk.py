"""Risk: the pre-trade checks, the trading state and the limits' utilisation.

The heart of it is a property: random streams of orders, with cancels, fills, state
changes and the clock moving in between, go through `RiskEngine.check`, and after every
accepted order an oracle written here from the limits' definitions (sharing no code with
core/risk.py) finds every enabled limit still held. The oracle also runs the other way:
a refused order must really break the limit the engine named, so the engine cannot pass
the property by refusing everything.

Last prices stay fixed within a stream on purpose: a price move can push a position past
its limit without any order, which no pre-trade check could prevent.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config_trading import RiskSettings
from core.model import OrderRequest, OrderType, Side, TradingState
from core.risk import OpenOrder, RiskBook, RiskDecision, RiskEngine

D = Decimal
ZERO = D(0)
ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
MILDEST_FIRST = [ACTIVE, REDUCING, HALTED]  # the test's own ranking, not risk.SEVERITY
SYMBOLS = ("AAA", "BBB", "CCC", "DDD")
UNPRICED = "DDD"  # the one symbol whose last trade may be unknown
CENT = D("0.01")

EVERY_LIMIT_OFF: dict[str, Any] = {
    "max_order_quantity": ZERO, "max_order_notional": ZERO, "max_position_notional": ZERO,
    "max_gross_exposure": ZERO, "max_open_orders": 0, "rate_limit_orders": 0,
    "price_collar_pct": ZERO, "max_daily_loss": ZERO, "max_drawdown": ZERO,
}


def limits(**values: Any) -> RiskSettings:
    """Every limit off except the ones given, so an example sees only its own check."""
    return RiskSettings(**{**EVERY_LIMIT_OFF, **values})


def order(symbol: str, side: Side, quantity: int | Decimal,
          limit: str | Decimal | None = None) -> OrderRequest:
    if limit is None:
        return OrderRequest(symbol, side, D(quantity))
    return OrderRequest(symbol, side, D(quantity), OrderType.LIMIT, limit_price=D(limit))


def shrinks(position: Decimal, side: Side, quantity: Decimal) -> bool:
    """The order can only bring the position towards zero, never through it."""
    if position > 0:
        return side == Side.SELL and quantity <= position
    if position < 0:
        return side == Side.BUY and quantity <= -position
    return False


# -- the test's own account and the oracle -------------------------------------------------


@dataclass
class Desk:
    """The account as the test keeps it, independently of the engine: positions, fixed
    last prices, the open orders, the times orders were sent and the symbols any order
    was accepted for (`touched`)."""

    positions: dict[str, Decimal]
    prices: dict[str, Decimal]
    state: TradingState = ACTIVE
    open_orders: list[OpenOrder] = field(default_factory=list)
    sends: list[float] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)

    def book(self) -> RiskBook:
        # As the trading desk builds it: flat positions are left out.
        held = {symbol: quantity for symbol, quantity in self.positions.items() if quantity}
        return RiskBook(held, dict(self.prices), tuple(self.open_orders))

    def with_order(self, request: OrderRequest, now: float) -> Desk:
        """The account as it would be if the order were accepted and sent now."""
        resting = OpenOrder(request.symbol, request.side, request.quantity,
                            request.limit_price)
        return Desk(dict(self.positions), self.prices, self.state,
                    [*self.open_orders, resting], [*self.sends, now],
                    self.touched | {request.symbol})

    def worst(self, symbol: str) -> Decimal:
        """Shares held if every open order on one side filled: the larger of the position
        plus every open buy and the position less every open sell, in absolute value."""
        position = self.positions.get(symbol, ZERO)
        buys = sells = ZERO
        for resting in self.open_orders:
            if resting.symbol != symbol:
                continue
            if resting.side == Side.BUY:
                buys += resting.remaining
            else:
                sells += resting.remaining
        return max(abs(position + buys), abs(position - sells))

    def gross(self) -> Decimal:
        # An unpriced symbol never has a position or an accepted order in these tests,
        # so leaving it out leaves out nothing.
        return sum((self.worst(symbol) * last for symbol, last in self.prices.items()), ZERO)

    def largest(self) -> Decimal:
        return max((self.worst(symbol) * last for symbol, last in self.prices.items()),
                   default=ZERO)

    def sent_within(self, now: float, interval: float) -> int:
        return sum(1 for moment in self.sends if moment > now - interval)


def broken(rules: RiskSettings, before: Desk, request: OrderRequest, now: float) -> set[str]:
    """Every check the order fails, judged on the account as it would be with the order
    accepted (named as the engine names its checks). Empty: the order breaks nothing."""
    after = before.with_order(request, now)
    symbol = request.symbol
    found: set[str] = set()
    if before.state == HALTED:
        found.add("trading state")
    if before.state == REDUCING and not shrinks(before.positions.get(symbol, ZERO),
                                                request.side, request.quantity):
        found.add("trading state")
    if rules.allow_symbols and symbol not in rules.allow_symbols:
        found.add("symbols")
    if symbol in rules.deny_symbols:
        found.add("symbols")
    if rules.max_order_quantity and request.quantity > rules.max_order_quantity:
        found.add("order quantity")
    last = before.prices.get(symbol)
    if last is None:
        found.add("price")  # the order's value cannot be known, so it cannot be allowed
    else:
        price = request.limit_price if request.limit_price is not None else last
        collar = rules.price_collar_pct
        # |limit - last| / last * 100 > collar, multiplied out so it is exact.
        if collar and request.limit_price is not None and \
                abs(request.limit_price - last) * 100 > collar * last:
            found.add("price collar")
        if rules.max_order_notional and request.quantity * price > rules.max_order_notional:
            found.add("order notional")
        # Only symbols some order was accepted for: one that started over its limit and
        # was never traded is no failure of the checks (they then refuse every order for
        # it, since an order can only widen the worst case).
        if rules.max_position_notional and any(
                after.worst(name) * after.prices[name] > rules.max_position_notional
                for name in after.touched):
            found.add("position notional")
        if rules.max_gross_exposure and after.gross() > rules.max_gross_exposure:
            found.add("gross exposure")
    if rules.max_open_orders and len(after.open_orders) > rules.max_open_orders:
        found.add("open orders")
    if rules.rate_limit_orders and \
            after.sent_within(now, rules.rate_limit_interval_s) > rules.rate_limit_orders:
        found.add("order rate")
    return found


# -- streams ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    dt: float
    symbol: str
    side: Side
    quantity: Decimal
    limit_bps: int | None  # None: a market order; else the limit's distance from last


@dataclass(frozen=True)
class Cancel:
    dt: float
    pick: int  # which open order, modulo how many there are


@dataclass(frozen=True)
class FillSome:
    dt: float
    pick: int
    whole: bool  # all that is left of it, else half


@dataclass(frozen=True)
class SetState:
    dt: float
    state: TradingState


Step = Place | Cancel | FillSome | SetState


@dataclass(frozen=True)
class Scenario:
    rules: RiskSettings
    state: TradingState
    positions: dict[str, Decimal]
    prices: dict[str, Decimal]
    steps: list[Step]


# Hypothesis's cost is per draw, far above the engine's, and the stream property runs ten
# thousand times: so the strategies are built once, at import, and choices that go
# together are one draw from a table of their combinations (which shrinks towards its
# first row, the simplest).

# Binary fractions of a second, so the rate window's edge is compared exactly.
TIME_STEPS = (0.0, 0.0, 0.25, 0.5, 1.0, 4.0)
# What a step does: mostly place an order; now and then cancel or fill a resting one, or
# the trader sets the state.
KINDS = ("place",) * 16 + ("cancel", "fill", "active", "reducing", "halted")
# A market order (None), or a limit this many basis points from the last trade: either
# side of each collar's edge (0.5%, 1%, 2.5%, 5%, 10%), and now and then far away.
LIMIT_OFFSETS = (None,) * 24 + tuple(
    sign * bps for bps in (0, 1, 49, 50, 51, 99, 100, 101, 249, 250, 251, 499, 500, 501,
                           999, 1_000, 1_001, 2_000)
    for sign in (1, -1))
# Tables stay under a thousand rows: Hypothesis draws an index into a longer one mostly
# near its start.
STEP_HEADS = list(itertools.product(KINDS, TIME_STEPS, SYMBOLS, Side))
# Open orders, orders per window, the window: 0 turns a limit off.
COUNT_LIMITS = list(itertools.product(range(7), range(6), (0.5, 1.0, 2.0, 5.0)))
# Allow and deny lists, each empty four times in five.
ALLOW_LISTS = ((),) * 12 + (("AAA",), ("AAA", "BBB"), ("BBB", "CCC", "DDD"))
DENY_LISTS = ((),) * 12 + (("AAA",), ("CCC",), ("DDD",))
SYMBOL_RULES = list(itertools.product(ALLOW_LISTS, DENY_LISTS))


def off_or(low: int, high: int, unit: int) -> st.SearchStrategy[Decimal]:
    """A limit of up to `high` units, or 0 (off) for the draws below zero: with `low` a
    quarter of `high` below zero, about one time in five."""
    return st.integers(low, high).map(lambda k: D(max(k, 0) * unit))


def flat_or(k: int) -> Decimal:
    """A position from a draw in -1500..1500: flat for the middle third, else 1 to 1,000
    shares long or short (so one in three symbols starts flat)."""
    if k > 500:
        return D(k - 500)
    if k < -500:
        return D(k + 500)
    return ZERO


def make_step(head: tuple[str, float, str, Side], limit_bps: int | None, count: int) -> Step:
    kind, dt, symbol, side = head
    if kind == "place":
        return Place(dt, symbol, side, D(count), limit_bps)
    if kind == "cancel":
        return Cancel(dt, count)
    if kind == "fill":
        return FillSome(dt, count, side == Side.BUY)
    return SetState(dt, TradingState(kind))


states = st.sampled_from([ACTIVE] * 10 + [REDUCING, HALTED])
# Hypothesis draws from a wide range mostly near its low end: most orders are a few
# hundred shares, a few are many thousand.
steps = st.builds(make_step, st.sampled_from(STEP_HEADS), st.sampled_from(LIMIT_OFFSETS),
                  st.integers(1, 20_000))
streams = st.lists(steps, max_size=12)
money_limits = off_or(-50, 200, 1_000)
order_quantity_limits = st.sampled_from(
    [ZERO] * 3 + [D(n) for n in (100, 500, 1_000, 2_500, 5_000, 10_000, 20_000)])
count_limits = st.sampled_from(COUNT_LIMITS)
symbol_rules = st.sampled_from(SYMBOL_RULES)
collars = st.sampled_from([ZERO, D("0.5"), D(1), D("2.5"), D(5), D(10)])
unpriced_odds = st.integers(0, 4)
cents = st.integers(100, 20_000)
starting_positions = st.integers(-1_500, 1_500).map(flat_or)


@st.composite
def risk_settings(draw: st.DrawFn) -> RiskSettings:
    open_orders, rate, window = draw(count_limits)
    allow, deny = draw(symbol_rules)
    return limits(
        max_order_quantity=draw(order_quantity_limits),
        max_order_notional=draw(money_limits),
        max_position_notional=draw(money_limits),
        max_gross_exposure=draw(money_limits),
        max_open_orders=open_orders,
        rate_limit_orders=rate,
        rate_limit_interval_s=window,
        allow_symbols=list(allow),
        deny_symbols=list(deny),
        price_collar_pct=draw(collars),
    )


settings_strategy = risk_settings()


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    positions: dict[str, Decimal] = {}
    prices: dict[str, Decimal] = {}
    for symbol in SYMBOLS:
        if symbol == UNPRICED and draw(unpriced_odds) == 0:
            positions[symbol] = ZERO  # no last trade, and (as in life) nothing held
            continue
        prices[symbol] = D(draw(cents)).scaleb(-2)
        positions[symbol] = draw(starting_positions)
    return Scenario(draw(settings_strategy), draw(states), positions, prices, draw(streams))


def limit_price(last: Decimal, bps: int) -> Decimal:
    return max(CENT, (last * (10_000 + bps) / 10_000).quantize(CENT))


Judge = Callable[[RiskDecision, OrderRequest, Desk, float], None]


def run(scenario: Scenario, on_check: Judge | None = None) -> tuple[RiskEngine, Desk, float]:
    """Play a stream through a fresh engine and the test's own desk; `on_check(decision,
    request, desk_before, now)` sees every decision before the desk moves on."""
    rules = scenario.rules
    now = [0.0]
    engine = RiskEngine(rules, clock=lambda: now[0])
    engine.set_state(scenario.state, "set by the test")
    desk = Desk(dict(scenario.positions), scenario.prices, scenario.state)
    for step in scenario.steps:
        now[0] += step.dt
        if isinstance(step, Place):
            # An unpriced symbol's limit is set off 100.00: any will do, since the order
            # is refused for want of a last trade.
            last = desk.prices.get(step.symbol, D(100))
            price = None if step.limit_bps is None else limit_price(last, step.limit_bps)
            request = order(step.symbol, step.side, step.quantity, price)
            decision = engine.check(request, desk.book())
            if on_check is not None:
                on_check(decision, request, desk, now[0])
            if decision.accepted:
                engine.record_sent()
                desk = desk.with_order(request, now[0])
        elif isinstance(step, SetState):
            engine.set_state(step.state, "set by the trader")
            desk.state = step.state
        elif desk.open_orders:
            index = step.pick % len(desk.open_orders)
            resting = desk.open_orders.pop(index)
            if isinstance(step, FillSome):
                filled = resting.remaining if step.whole else max(D(1), resting.remaining // 2)
                signed = filled if resting.side == Side.BUY else -filled
                desk.positions[resting.symbol] = desk.positions.get(resting.symbol,
                                                                    ZERO) + signed
                if filled < resting.remaining:
                    desk.open_orders.insert(index,
                                            resting._replace(remaining=resting.remaining - filled))
    return engine, desk, now[0]


@settings(max_examples=10_000, deadline=None)
@given(scenarios())
def test_no_stream_of_orders_gets_a_limit_breaking_order_through(scenario: Scenario) -> None:
    """Both ways: an accepted order leaves every enabled limit held (on the account with
    it resting), and a refused one breaks the limit the engine named."""
    rules = scenario.rules

    def judge(decision: RiskDecision, request: OrderRequest, desk: Desk, now: float) -> None:
        failures = broken(rules, desk, request, now)
        if decision.accepted:
            assert failures == set(), f"accepted {request} though it breaks {failures}"
            assert decision.reason == ""
            price = request.limit_price if request.limit_price is not None \
                else desk.prices[request.symbol]
            assert decision.notional == request.quantity * price
        else:
            assert decision.check in failures, (decision, failures)
            assert decision.reason

    run(scenario, judge)


@settings(max_examples=500, deadline=None)
@given(scenarios())
def test_utilisation_agrees_with_the_account_after_any_stream(scenario: Scenario) -> None:
    engine, desk, now = run(scenario)
    rules = scenario.rules
    use = {item.name: item for item in engine.utilisation(desk.book())}
    assert use["gross exposure"].used == desk.gross()
    assert use["gross exposure"].limit == rules.max_gross_exposure
    assert use["largest position"].used == desk.largest()
    assert use["largest position"].limit == rules.max_position_notional
    assert use["open orders"].used == len(desk.open_orders)
    assert use["order rate"].used == desk.sent_within(now, rules.rate_limit_interval_s)


# -- the trading state, one order at a time -----------------------------------------------

any_state = st.sampled_from(list(TradingState))
positions = st.one_of(st.just(ZERO), st.integers(-500, 500).map(D))
sides = st.sampled_from(list(Side))
# A size, or None for exactly the whole position (the edge of shrinking it).
order_quantities = st.one_of(st.integers(1, 1_000).map(D), st.none())


def size(quantity: Decimal | None, position: Decimal) -> Decimal:
    return quantity if quantity is not None else max(abs(position), D(1))


@settings(max_examples=500, deadline=None)
@given(any_state, positions, sides, order_quantities, st.booleans())
def test_halted_accepts_nothing_and_reducing_only_what_shrinks_a_position(
        state: TradingState, position: Decimal, side: Side, drawn: Decimal | None,
        as_limit: bool) -> None:
    quantity = size(drawn, position)
    engine = RiskEngine(limits())  # every limit off: the state is all that can refuse
    engine.set_state(state, "set by the test")
    request = order("AAA", side, quantity, "10.00" if as_limit else None)
    book = RiskBook({"AAA": position} if position else {}, {"AAA": D("10.00")})
    decision = engine.check(request, book)
    if state == HALTED:
        assert not decision.accepted
    elif state == REDUCING:
        assert decision.accepted == shrinks(position, side, quantity)
    else:
        assert decision.accepted
    if not decision.accepted:
        assert decision.check == "trading state"


@settings(max_examples=500, deadline=None)
@given(settings_strategy, any_state, positions, sides, order_quantities, st.integers(0, 8))
def test_flatten_accepts_exactly_the_orders_that_shrink_a_position_whatever_else(
        rules: RiskSettings, state: TradingState, position: Decimal, side: Side,
        drawn: Decimal | None, already_sent: int) -> None:
    quantity = size(drawn, position)
    engine = RiskEngine(rules, clock=lambda: 0.0)
    engine.set_state(state, "set by the test")
    for _ in range(already_sent):  # a busy rate limiter must not stop a flatten
        engine.record_sent()
    book = RiskBook({"AAA": position} if position else {}, {"AAA": D("10.00")})
    decision = engine.check(order("AAA", side, quantity), book, flatten=True)
    assert decision.accepted == shrinks(position, side, quantity)
    if not decision.accepted:
        assert decision.check == "reduce-only"


@settings(max_examples=500, deadline=None)
@given(
    st.integers(0, 4).map(lambda k: D(k * 1_000)),
    st.integers(0, 4).map(lambda k: D(k * 1_000)),
    st.sampled_from(["reducing", "halted"]),
    st.sampled_from(["reducing", "halted"]),
    any_state,
    # Equity and the day's P&L in steps of $500, so limits are often met exactly.
    st.lists(st.tuples(st.integers(190, 210), st.integers(-10, 2)), min_size=1, max_size=8),
)
def test_observe_moves_to_the_breached_limits_state_and_never_to_a_milder_one(
        max_daily_loss: Decimal, max_drawdown: Decimal, on_daily_loss: str,
        on_drawdown: str, start: TradingState, marks: list[tuple[int, int]]) -> None:
    engine = RiskEngine(limits(max_daily_loss=max_daily_loss, max_drawdown=max_drawdown,
                               on_daily_loss=on_daily_loss, on_drawdown=on_drawdown))
    engine.set_state(start, "set by the trader")
    high: Decimal | None = None
    for equity, day_pnl in ((D(e * 500), D(p * 500)) for e, p in marks):
        old = engine.state
        high = equity if high is None else max(high, equity)
        due = [old]
        if max_daily_loss and -day_pnl >= max_daily_loss:
            due.append(TradingState(on_daily_loss))
        if max_drawdown and high - equity >= max_drawdown:
            due.append(TradingState(on_drawdown))
        expected = max(due, key=MILDEST_FIRST.index)
        change = engine.observe(equity, day_pnl)
        assert engine.state == expected, (old, due)
        if expected == old:
            assert change is None
        else:
            assert change is not None
            assert (change.old, change.new, change.automatic) == (old, expected, True)
            assert engine.state_automatic


# -- refusals name their numbers ----------------------------------------------------------

BUY, SELL = Side.BUY, Side.SELL


def resting(symbol: str, side: Side, quantity: int, price: str | None = None) -> OpenOrder:
    return OpenOrder(symbol, side, D(quantity), None if price is None else D(price))


@pytest.mark.parametrize(("rules", "book", "request_", "check", "reason"), [
    (limits(max_order_quantity=500), RiskBook({}, {"AAPL": D(10)}), order("AAPL", BUY, 600),
     "order quantity", "600 shares is over the order limit of 500"),
    (limits(max_order_notional=50_000), RiskBook({}, {"AAPL": D("100.00")}),
     order("AAPL", BUY, 600), "order notional",
     "the order's value $60,000.00 is over the limit of $50,000.00"),
    (limits(max_order_notional=50_000), RiskBook({}, {"AAPL": D("100.00")}),
     order("AAPL", BUY, 600, "90.00"), "order notional",
     "the order's value $54,000.00 is over the limit of $50,000.00"),
    (limits(max_position_notional=100_000),
     RiskBook({"AAPL": D(800)}, {"AAPL": D("100.00")}, (resting("AAPL", BUY, 100),)),
     order("AAPL", BUY, 200), "position notional",
     "AAPL would reach $110,000.00 with its open orders, over the position limit of "
     "$100,000.00"),
    (limits(max_gross_exposure=150_000),
     RiskBook({"AAPL": D(1_000), "MSFT": D(-200)}, {"AAPL": D(100), "MSFT": D(200)}),
     order("AAPL", BUY, 200), "gross exposure",
     "gross exposure would reach $160,000.00 with open orders, over the limit of "
     "$150,000.00"),
    (limits(max_open_orders=2),
     RiskBook({}, {"AAPL": D(10)}, (resting("AAPL", BUY, 1), resting("AAPL", SELL, 1))),
     order("AAPL", BUY, 1), "open orders", "2 orders are open; 1 more would pass the limit of 2"),
    (limits(price_collar_pct=5), RiskBook({}, {"AAPL": D("100.00")}),
     order("AAPL", BUY, 1, "106.00"), "price collar",
     "the limit 106.00 is 6.0% from the last trade 100.00 (collar 5%)"),
    (limits(allow_symbols=["AAPL"]), RiskBook({}, {"MSFT": D(10)}), order("MSFT", BUY, 1),
     "symbols", "MSFT is not in the risk allow list"),
    (limits(deny_symbols=["GME"]), RiskBook({}, {"GME": D(10)}), order("GME", BUY, 1),
     "symbols", "GME is in the risk deny list"),
    (limits(), RiskBook({}, {}), order("AAPL", BUY, 1), "price",
     "no last trade for AAPL yet: the order's value cannot be checked"),
])
def test_each_refusal_names_the_limit_and_its_numbers(rules: RiskSettings, book: RiskBook,
                                                      request_: OrderRequest, check: str,
                                                      reason: str) -> None:
    decision = RiskEngine(rules).check(request_, book)
    assert not decision.accepted
    assert decision.check == check
    assert decision.reason == reason


def test_a_limit_exactly_reached_is_not_breached() -> None:
    rules = limits(max_order_quantity=500, max_order_notional=50_000,
                   max_position_notional=50_000, max_gross_exposure=50_000,
                   max_open_orders=1, price_collar_pct=5)
    book = RiskBook({}, {"AAPL": D("100.00")})
    decision = RiskEngine(rules).check(order("AAPL", BUY, 500, "100.00"), book)
    assert decision.accepted
    assert decision.notional == D(50_000)
    # Exactly 5% from the last trade, either side, is inside a 5% collar.
    collar = RiskEngine(limits(price_collar_pct=5))
    assert collar.check(order("AAPL", BUY, 1, "105.00"), book).accepted
    assert collar.check(order("AAPL", SELL, 1, "95.00"), book).accepted
    assert not collar.check(order("AAPL", SELL, 1, "94.99"), book).accepted


def test_the_rate_limit_names_its_window_and_forgets_sends_that_left_it() -> None:
    now = [0.0]
    engine = RiskEngine(limits(rate_limit_orders=3, rate_limit_interval_s=1.0),
                        clock=lambda: now[0])
    book = RiskBook({}, {"AAPL": D(10)})
    for moment in (0.0, 0.25, 0.5):
        now[0] = moment
        assert engine.check(order("AAPL", BUY, 1), book).accepted
        engine.record_sent()
    now[0] = 0.75
    decision = engine.check(order("AAPL", BUY, 1), book)
    assert decision.check == "order rate"
    assert decision.reason == "3 orders in the last 1 s: the limit is 3"
    now[0] = 1.0  # the send at 0.0 is exactly one interval old: out of the window
    assert engine.check(order("AAPL", BUY, 1), book).accepted


def test_the_trading_state_refusals_say_why_trading_is_held() -> None:
    book = RiskBook({"AAPL": D(100)}, {"AAPL": D(10)})
    engine = RiskEngine(limits())
    engine.set_state(HALTED, "kill switch")
    assert engine.check(order("AAPL", SELL, 100), book).reason == (
        "trading is halted (kill switch): no new orders; cancels still work")
    engine.set_state(REDUCING, "drawdown")
    assert engine.check(order("AAPL", BUY, 1), book).reason == (
        "trading is reducing only (drawdown): this order would not shrink the AAPL "
        "position of 100")
    assert not engine.check(order("AAPL", SELL, 101), book).accepted  # through zero
    assert engine.check(order("AAPL", SELL, 100), book).accepted


def test_a_replaced_order_is_not_counted_twice() -> None:
    old = resting("AAPL", BUY, 500, "100.00")
    book = RiskBook({}, {"AAPL": D("100.00")}, (old,))
    engine = RiskEngine(limits(max_position_notional=60_000, max_open_orders=1))
    bigger = order("AAPL", BUY, 600, "100.00")
    assert not engine.check(bigger, book).accepted
    assert engine.check(bigger, book, replacing=old).accepted


# -- flatten ------------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(TradingState))
def test_flatten_accepts_only_reducing_orders_in_any_state(state: TradingState) -> None:
    engine = RiskEngine(limits(max_order_quantity=10, deny_symbols=["AAPL"]))
    engine.set_state(state, "set by the test")
    book = RiskBook({"AAPL": D(100), "MSFT": D(-50)}, {"AAPL": D(10)})
    # A close is allowed past the limits (size, deny list, even an unknown last price).
    assert engine.check(order("AAPL", SELL, 100), book, flatten=True).accepted
    assert engine.check(order("MSFT", BUY, 50), book, flatten=True).accepted
    for request in (order("AAPL", BUY, 100), order("AAPL", SELL, 101),
                    order("MSFT", SELL, 1), order("XOM", SELL, 1)):
        decision = engine.check(request, book, flatten=True)
        assert not decision.accepted, request
        assert decision.check == "reduce-only"
    assert engine.check(order("AAPL", BUY, 1), book, flatten=True).reason == (
        "AAPL: the order does not reduce the position of 100")


# -- the trading state over a day ---------------------------------------------------------


def test_a_day_loss_moves_the_state_to_on_daily_loss() -> None:
    engine = RiskEngine(limits(max_daily_loss=5_000, on_daily_loss="halted"))
    assert engine.observe(D(100_000), D(-4_999)) is None
    change = engine.observe(D(95_000), D(-5_000))
    assert change is not None
    assert (change.old, change.new, change.automatic) == (ACTIVE, HALTED, True)
    assert change.reason == "day's loss $5,000.00 reached the limit of $5,000.00"
    assert engine.state_reason == change.reason
    assert engine.observe(D(94_000), D(-6_000)) is None  # already there: no new change


def test_a_drawdown_moves_the_state_to_on_drawdown_from_the_days_high() -> None:
    engine = RiskEngine(limits(max_drawdown=7_500, on_drawdown="reducing"))
    assert engine.observe(D(100_000), ZERO) is None
    assert engine.observe(D(102_000), ZERO) is None
    assert engine.observe(D(95_000), ZERO) is None  # 7,000 below the high of 102,000
    change = engine.observe(D(94_500), ZERO)
    assert change is not None
    assert change.new == REDUCING
    assert change.reason == ("equity fell $7,500.00 from the day's high of $102,000.00 "
                             "(limit $7,500.00)")


def test_an_automatic_change_never_makes_the_state_milder() -> None:
    rules = limits(max_daily_loss=1_000, on_daily_loss="reducing",
                   max_drawdown=1_000, on_drawdown="halted")
    engine = RiskEngine(rules)
    engine.set_state(HALTED, "set by the trader")
    assert engine.observe(D(100_000), D(-2_000)) is None
    assert engine.state == HALTED
    assert not engine.state_automatic
    # From active, a loss that breaches both at once goes straight to the harsher state.
    engine = RiskEngine(rules)
    engine.observe(D(100_000), ZERO)
    change = engine.observe(D(98_000), D(-2_000))
    assert change is not None
    assert change.new == HALTED
    # And an automatic reducing state is raised, never lowered, by what follows.
    engine = RiskEngine(limits(max_daily_loss=1_000, on_daily_loss="halted",
                               max_drawdown=1_000, on_drawdown="reducing"))
    engine.observe(D(100_000), ZERO)
    assert engine.observe(D(99_000), ZERO) is not None
    assert engine.state == REDUCING
    change = engine.observe(D(98_900), D(-1_100))
    assert change is not None
    assert (change.old, change.new) == (REDUCING, HALTED)
    assert engine.observe(D(98_900), D(-1_100)) is None
    assert engine.state == HALTED


def test_a_new_session_lifts_an_automatic_state_but_not_a_trader_set_one() -> None:
    engine = RiskEngine(limits(max_daily_loss=1_000, on_daily_loss="halted"))
    engine.observe(D(100_000), D(-1_000))
    assert engine.state == HALTED
    assert engine.state_automatic
    change = engine.begin_day(D(99_000))
    assert change is not None
    assert change.new == ACTIVE
    assert engine.state == ACTIVE
    assert engine.state_reason == ""
    assert engine.day_high == D(99_000)

    engine.set_state(HALTED, "kill switch")
    assert engine.begin_day(D(99_000)) is None
    assert engine.state == HALTED
    assert engine.state_reason == "kill switch"
    engine.set_state(REDUCING, "set by the trader")
    assert engine.begin_day(D(99_000)) is None
    assert engine.state == REDUCING


def test_a_new_session_measures_the_drawdown_from_its_own_opening_equity() -> None:
    engine = RiskEngine(limits(max_drawdown=1_000, on_drawdown="halted"))
    engine.observe(D(100_000), ZERO)
    engine.begin_day(D(90_000))
    assert engine.observe(D(89_500), ZERO) is None  # 500 below the new day's 90,000
    assert engine.observe(D(89_000), ZERO) is not None


# -- the risk panel -----------------------------------------------------------------------


def test_utilisation_lists_each_limit_with_what_is_used() -> None:
    now = [10.0]
    rules = limits(max_daily_loss=5_000, max_drawdown=7_500, max_gross_exposure=200_000,
                   max_position_notional=100_000, max_open_orders=50, rate_limit_orders=10,
                   rate_limit_interval_s=1.0)
    engine = RiskEngine(rules, clock=lambda: now[0])
    engine.observe(D(100_000), ZERO)
    for moment in (8.5, 9.25, 9.5):
        now[0] = moment
        engine.record_sent()
    now[0] = 10.0
    book = RiskBook(
        {"AAPL": D(100), "MSFT": D(-50)}, {"AAPL": D(150), "MSFT": D(300), "XOM": D(80)},
        # XOM has no position, only a resting buy: it is still the largest exposure.
        (resting("AAPL", SELL, 300, "151.00"), resting("XOM", BUY, 1_000, "79.00")),
        equity=D(98_000), day_pnl=D(-1_200))
    use = [(u.name, u.used, u.limit, u.money) for u in engine.utilisation(book)]
    assert use == [
        ("day loss", D(1_200), D(5_000), True),
        ("drawdown", D(2_000), D(7_500), True),
        # AAPL's worst is 100 - 300 = -200 shares; MSFT 50 short; XOM 1,000 to buy.
        ("gross exposure", D(200 * 150 + 50 * 300 + 1_000 * 80), D(200_000), True),
        ("largest position", D(80_000), D(100_000), True),
        ("open orders", D(2), D(50), False),
        ("order rate", D(2), D(10), False),
    ]
    shares = {u.name: u.share for u in engine.utilisation(book)}
    assert shares["drawdown"] == pytest.approx(2_000 / 7_500)
    off = RiskEngine(limits()).utilisation(book)
    assert all(u.limit == 0 for u in off)
    assert all(u.share == 0.0 for u in off)


def test_a_new_session_returns_to_the_state_the_trader_chose() -> None:
    """The trader set REDUCING, a loss limit then halted: the next session lifts the
    halt back to REDUCING, not to ACTIVE."""
    engine = RiskEngine(RiskSettings(max_daily_loss=Decimal(100), on_daily_loss="halted"))
    engine.set_state(TradingState.REDUCING, "cautious today")
    change = engine.observe(Decimal(9_800), Decimal(-200))
    assert change is not None
    assert engine.state == TradingState.HALTED
    lifted = engine.begin_day(Decimal(9_800))
    assert lifted is not None
    assert lifted.new == TradingState.REDUCING
    assert engine.state == TradingState.REDUCING
    assert engine.state_reason == "cautious today"
    assert engine.begin_day(Decimal(9_800)) is None
