"""Market state: the engine's hot path.

`MarketState.ingest(batch)` dispatches each event synchronously on the bus to plain
attribute updates of a `SymbolState`, stamped with a change sequence number: no await,
no allocation beyond the event itself, no database write. Consumers read what changed
since their last sequence number (`rows_since`, `bars_since`), so their cost follows
their own refresh rate, not the tick rate.

It is separate from the engine so that anything that needs a market view (the engine,
the `quote` command, a backtest) builds it the same way.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from core.bus import Bus
from core.clock import ExchangeCalendar
from core.model import NS_PER_SECOND, Bar, Instrument, Quote, Trade
from core.state import MINUTE_NS, QuoteRow, SymbolState

log = logging.getLogger(__name__)

BAR_LOG_SIZE = 200_000
DAY_NS = 24 * 3600 * NS_PER_SECOND


class MarketState:
    def __init__(self, bus: Bus | None = None, calendar: ExchangeCalendar | None = None) -> None:
        self.bus = bus or Bus()
        self.calendar = calendar or ExchangeCalendar()
        self.states: dict[str, SymbolState] = {}
        self.seq = 0
        self.bar_seq = 0
        self.stale_count = 0
        self._wall = 0.0
        self._bar_log: deque[tuple[int, Bar]] = deque(maxlen=BAR_LOG_SIZE)
        self.bus.subscribe(Quote, self._on_quote)
        self.bus.subscribe(Trade, self._on_trade)

    def track(self, instrument: Instrument) -> SymbolState:
        state = self.states.get(instrument.symbol)
        if state is None:
            state = self.states[instrument.symbol] = SymbolState(instrument)
            # Silence is judged from the moment a symbol is tracked, not from boot.
            state.wall_updated = time.monotonic()
        return state

    def untrack(self, symbol: str) -> None:
        state = self.states.pop(symbol, None)
        if state is not None and state.stale:
            self.stale_count -= 1

    def rows_since(self, seq: int) -> list[QuoteRow]:
        return [state.row() for state in self.states.values() if state.seq > seq]

    def building_since(self, seq: int) -> list[Bar]:
        return [
            bar for state in self.states.values()
            if state.seq > seq and (bar := state.building_bar()) is not None
        ]

    def bars_since(self, bar_seq: int) -> tuple[list[Bar], bool]:
        """Minute bars completed after `bar_seq`, and whether some were already
        forgotten (the consumer must resynchronise)."""
        if self.bar_seq <= bar_seq:
            return [], False
        lost = bool(self._bar_log) and self._bar_log[0][0] > bar_seq + 1
        return [bar for seq, bar in self._bar_log if seq > bar_seq], lost

    def ingest(self, batch: Sequence[Any]) -> None:
        """Apply a batch of market events from the feed."""
        self._wall = time.monotonic()
        publish = self.bus.publish
        for event in batch:
            if type(event) is Bar:
                self._on_feed_bar(event)
            else:
                publish(event)

    def _on_quote(self, quote: Quote) -> None:
        state = self.states.get(quote.symbol)
        if state is None:
            return
        state.bid = quote.bid
        state.ask = quote.ask
        state.bid_size = quote.bid_size
        state.ask_size = quote.ask_size
        state.ts_ns = quote.ts_ns
        state.wall_updated = self._wall
        if state.stale:
            state.stale = False
            self.stale_count -= 1
        self.seq += 1
        state.seq = self.seq

    def _on_trade(self, trade: Trade) -> None:
        state = self.states.get(trade.symbol)
        if state is None:
            return
        ts = trade.ts_ns
        price = trade.price
        if ts - state.session_start_ns >= DAY_NS:
            self._roll_session(state, ts)
        self.seq += 1
        seq = self.seq
        last = state.last
        if price != last:
            if last == last:  # not NaN: a first print has no direction
                state.tick = 1 if price > last else -1
            state.tick_seq = seq
            state.last = price
        state.last_size = trade.size
        state.ts_ns = ts
        state.wall_updated = self._wall
        if state.stale:
            state.stale = False
            self.stale_count -= 1
        if state.day_open != state.day_open:
            state.day_open = state.day_high = state.day_low = price
        elif price > state.day_high:
            state.day_high = price
        elif price < state.day_low:
            state.day_low = price
        state.volume += trade.size
        start = ts - ts % MINUTE_NS
        if start != state.bar_start_ns:
            if state.bar_start_ns >= 0:
                self._complete_bar(state)
            state.bar_start_ns = start
            bars = state.minute_bars
            if bars and bars[-1].ts_ns == start:
                # The feed backfilled part of this minute: carry on from it.
                partial = bars.pop()
                state.bar_open = partial.open
                state.bar_high = max(partial.high, price)
                state.bar_low = min(partial.low, price)
                state.bar_volume = partial.volume + trade.size
            else:
                state.bar_open = state.bar_high = state.bar_low = price
                state.bar_volume = trade.size
            state.bar_close = price
        else:
            if price > state.bar_high:
                state.bar_high = price
            elif price < state.bar_low:
                state.bar_low = price
            state.bar_close = price
            state.bar_volume += trade.size
        state.seq = seq

    def _complete_bar(self, state: SymbolState) -> None:
        bar = Bar(state.symbol, state.bar_start_ns, 60, state.bar_open, state.bar_high,
                  state.bar_low, state.bar_close, state.bar_volume)
        state.minute_bars.append(bar)
        self.bar_seq += 1
        self._bar_log.append((self.bar_seq, bar))
        self.bus.publish(bar)

    def _roll_session(self, state: SymbolState, ts_ns: int) -> None:
        if state.bar_start_ns >= 0:
            self._complete_bar(state)
        calendar = self.calendar
        state.start_session(calendar.day_bounds(calendar.session_date(ts_ns))[0])

    def _on_feed_bar(self, bar: Bar) -> None:
        """Bars from the feed: a daily bar (at the close, or yesterday's as context)
        sets the reference close when it is an earlier session's and goes on to the
        strategies; minute bars backfill the session before the first trade this engine
        saw."""
        state = self.states.get(bar.symbol)
        if state is None:
            return
        if bar.interval_s >= 86_400:
            if bar.ts_ns < state.session_start_ns or state.session_start_ns == 0:
                state.prev_close = bar.close
                self.seq += 1
                state.seq = self.seq
            # Strategies on daily bars take it from the bus (they ignore one they have).
            self.bus.publish(bar)
            return
        if bar.ts_ns - state.session_start_ns >= DAY_NS:
            self._roll_session(state, bar.ts_ns)
        if state.bar_start_ns >= 0:
            if bar.ts_ns <= state.bar_start_ns:
                return  # this engine has that minute, or is building it from trades
            # Minutes missed while the feed was away: close ours, take the feed's.
            self._complete_bar(state)
            state.bar_start_ns = -1
        if state.minute_bars and bar.ts_ns <= state.minute_bars[-1].ts_ns:
            return
        state.minute_bars.append(bar)
        self.bar_seq += 1
        self._bar_log.append((self.bar_seq, bar))
        if state.day_open != state.day_open:
            state.day_open, state.day_high, state.day_low = bar.open, bar.high, bar.low
        else:
            state.day_high = max(state.day_high, bar.high)
            state.day_low = min(state.day_low, bar.low)
        state.volume += bar.volume
        if bar.ts_ns >= state.ts_ns:
            if state.last == state.last and bar.close != state.last:
                state.tick = 1 if bar.close > state.last else -1
            state.last = bar.close
            state.ts_ns = bar.ts_ns
            state.wall_updated = self._wall
        self.seq += 1
        state.seq = self.seq
        state.tick_seq = state.seq

    def mark_stale(self, now: float, stale_after: float, expects_updates: bool) -> list[str]:
        """Flag symbols with no update for `stale_after` wall seconds while the feed
        should be updating; clear every flag while it should not. Returns the symbols
        that just became stale."""
        newly_stale = []
        for state in self.states.values():
            if state.instrument.source == "unknown":
                continue
            if not expects_updates:
                state.wall_updated = now
                if not state.stale:
                    continue
                state.stale = False
                self.stale_count -= 1
            elif not state.stale and now - state.wall_updated > stale_after:
                state.stale = True
                self.stale_count += 1
                newly_stale.append(state.symbol)
            else:
                continue
            self.seq += 1
            state.seq = self.seq
        return newly_stale
