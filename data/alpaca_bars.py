"""Alpaca's bars and stream messages in the engine's terms, and what its failures mean
for the trader. No I/O here (the feed is `data.alpaca`).

A daily bar is stamped with its session's open (as the replay and the Yahoo feed stamp
them), not with the New York midnight Alpaca puts on it: `Bar.ts_ns` is the bar's start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import msgpack  # type: ignore[import-untyped]
import numpy as np
import pandas as pd

from core.clock import NEW_YORK, ExchangeCalendar
from core.config_venues import KEY_ID_ENV, SECRET_KEY_ENV
from core.model import NS_PER_SECOND, Bar, MarketEvent, Quote, Trade, to_ns
from data.bundle import LoadReport

if TYPE_CHECKING:
    from core.store import BarRow

MINUTE_NS = 60 * NS_PER_SECOND
DAY_NS = 86_400 * NS_PER_SECOND
INTERVAL_SECONDS = {"1d": 86_400, "1m": 60}
_FIELDS = ("o", "h", "l", "c", "v")

KEYS_HELP = (f"check {KEY_ID_ENV} and {SECRET_KEY_ENV} (or key_id and secret_key under "
             "[alpaca] in the config file); keys are on https://app.alpaca.markets under "
             "API keys")
CONNECTION_LIMIT = (
    "Alpaca allows one market-data connection per account on this plan: another program "
    "(or another tapedeck) is connected with these keys; close it, or wait — retrying "
    "with backoff")
CONNECTION_LIMIT_NOTE = "another program holds Alpaca's one data connection: close it, or wait"


# ---------------------------------------------------------------------- history


def time_ns(value: Any) -> int:
    """A message's time as epoch ns: a msgpack Timestamp on the stream, an RFC 3339
    string in REST answers."""
    if isinstance(value, msgpack.Timestamp):
        return int(value.to_unix_nano())
    if isinstance(value, datetime):
        return to_ns(value)
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.value)


def clean_rows(raw: Sequence[Mapping[str, Any]], daily: bool, calendar: ExchangeCalendar
               ) -> tuple[list[BarRow], LoadReport]:
    """Alpaca bar records ({"t", "o", "h", "l", "c", "v", ...}) as bar rows (ts_ns, open,
    high, low, close, volume), oldest first, cleaned as every loader cleans (see
    `data.bundle.clean_daily_bars`): rows with a missing, infinite or negative field are
    dropped as invalid, rows with a zero price as zero-price; of rows with one time the
    last is kept; high and low are swapped where high < low, then widened to take in an
    open or close outside them. The report counts what was done."""
    report = LoadReport()
    if not raw:
        return [], report
    frame = pd.DataFrame.from_records(list(raw), columns=["t", *_FIELDS])
    times = pd.to_datetime(frame["t"], utc=True, errors="coerce", format="ISO8601")
    values = np.column_stack([
        np.asarray(pd.to_numeric(frame[name], errors="coerce"), dtype=np.float64)
        for name in _FIELDS])
    valid = np.asarray(times.notna()) & np.isfinite(values).all(axis=1) & (values >= 0).all(
        axis=1)
    report.invalid_rows_dropped = int((~valid).sum())
    zero = valid & (values[:, :4] == 0).any(axis=1)
    report.zero_price_rows_dropped = int(zero.sum())
    keep = valid & ~zero
    index = pd.DatetimeIndex(times[keep])
    values = values[keep]
    stamps = _session_opens(index, calendar) if daily else np.asarray(
        index.as_unit("ns").asi8, dtype=np.int64)
    order = np.argsort(stamps, kind="stable")
    stamps, values = stamps[order], values[order]
    last_of_its_time = np.r_[stamps[1:] != stamps[:-1], True] if len(stamps) else stamps == 0
    report.duplicates_dropped = int((~last_of_its_time).sum())
    stamps, values = stamps[last_of_its_time], values[last_of_its_time]
    opens, highs, lows, closes = (values[:, i] for i in range(4))
    swapped = highs < lows
    report.high_low_swapped = int(swapped.sum())
    highs, lows = np.where(swapped, lows, highs), np.where(swapped, highs, lows)
    top = np.maximum(highs, np.maximum(opens, closes))
    bottom = np.minimum(lows, np.minimum(opens, closes))
    report.out_of_range_repaired = int(((top != highs) | (bottom != lows)).sum())
    if daily:
        report.zero_volume_rows = int((values[:, 4] == 0).sum())
    rows: list[BarRow] = [
        (int(ts), float(o), float(h), float(lo), float(c), float(v))
        for ts, o, h, lo, c, v in zip(stamps, opens, top, bottom, closes, values[:, 4],
                                      strict=True)]
    return rows, report


def _session_opens(index: pd.DatetimeIndex, calendar: ExchangeCalendar) -> np.ndarray[Any, Any]:
    opens: dict[date, int] = {}
    stamps = np.empty(len(index), dtype=np.int64)
    for i, moment in enumerate(index.tz_convert(NEW_YORK)):
        day = moment.date()
        if day not in opens:
            opens[day] = calendar.open_close_ns(day)[0]
        stamps[i] = opens[day]
    return stamps


def bars_frame(rows: Mapping[str, Sequence[BarRow]]) -> pd.DataFrame:
    """The history frame: symbol, ts (UTC), open, high, low, close, volume, ordered by
    symbol then time."""
    ordered = [(symbol, row) for symbol in sorted(rows) for row in sorted(rows[symbol])]
    stamps = np.array([row[0] for _, row in ordered], dtype=np.int64)
    return pd.DataFrame({
        "symbol": [symbol for symbol, _ in ordered],
        "ts": pd.to_datetime(stamps, unit="ns", utc=True),
        **{name: np.array([row[i] for _, row in ordered], dtype=np.float64)
           for i, name in enumerate(("open", "high", "low", "close", "volume"), start=1)},
    })


# ---------------------------------------------------------------------- live prices


def frame_events(messages: Iterable[Any]) -> tuple[list[MarketEvent], Mapping[str, Any] | None,
                                                   int]:
    """One stream frame's quotes, trades and minute bars; the first error message in it
    (or None); and how many market messages could not be read (skipped)."""
    events: list[MarketEvent] = []
    skipped = 0
    for message in messages:
        if not isinstance(message, dict):
            skipped += 1
            continue
        kind = message.get("T")
        try:
            if kind == "q":
                events.append(Quote(message["S"], time_ns(message["t"]), float(message["bp"]),
                                    float(message["ap"]), float(message["bs"]),
                                    float(message["as"])))
            elif kind == "t":
                events.append(Trade(message["S"], time_ns(message["t"]), float(message["p"]),
                                    float(message["s"])))
            elif kind == "b":
                events.append(Bar(message["S"], time_ns(message["t"]), 60,
                                  float(message["o"]), float(message["h"]),
                                  float(message["l"]), float(message["c"]),
                                  float(message["v"])))
            elif kind == "error":
                return events, message, skipped
        except (KeyError, TypeError, ValueError):
            skipped += 1
    return events, None, skipped


def latest_events(symbol: str, trade: Mapping[str, Any] | None,
                  quote: Mapping[str, Any] | None) -> list[MarketEvent]:
    """A symbol's latest trade and quote from the REST latest endpoints, as events."""
    events: list[MarketEvent] = []
    try:
        if trade:
            events.append(Trade(symbol, time_ns(trade["t"]), float(trade["p"]),
                                float(trade["s"])))
        if quote:
            events.append(Quote(symbol, time_ns(quote["t"]), float(quote["bp"]),
                                float(quote["ap"]), float(quote["bs"]), float(quote["as"])))
    except (KeyError, TypeError, ValueError):
        pass  # a record it cannot read: the stream brings the next one
    return events


def reference_bar(symbol: str, rows: Sequence[BarRow], before: date,
                  calendar: ExchangeCalendar) -> Bar | None:
    """The last daily bar of a session before `before`: the close the day's change is
    measured from."""
    for ts, o, h, lo, c, v in reversed(rows):
        if calendar.session_date(ts) < before:
            return Bar(symbol, ts, 86_400, o, h, lo, c, v)
    return None


def reference_day(latest_trade_ns: int | None, now_ns: int, calendar: ExchangeCalendar) -> date:
    """The session whose change the screen shows: the latest trade's (after hours and at
    weekends that is the last session, not today), else the latest session begun."""
    if latest_trade_ns is not None:
        return calendar.session_date(latest_trade_ns)
    today = calendar.session_date(now_ns)
    day = today if calendar.is_session(today) else calendar.previous_session(today)
    if calendar.open_close_ns(day)[0] > now_ns:
        day = calendar.previous_session(day)
    return day


# ---------------------------------------------------------------------- failures


def stream_problem(code: int | None, text: str, feed: str, symbols: int) -> tuple[str, str]:
    """What an error from the market-data stream means: (the message, a short note for
    the status bar). `text` is Alpaca's own ("connection limit exceeded")."""
    lowered = text.lower()
    if code == 406 or "connection limit" in lowered:
        return CONNECTION_LIMIT, CONNECTION_LIMIT_NOTE
    if code == 402 or "auth failed" in lowered or "failed to authenticate" in lowered:
        return (f"Alpaca refused the API keys ({text}): {KEYS_HELP}",
                f"Alpaca refused the API keys: check {KEY_ID_ENV} and {SECRET_KEY_ENV}")
    if code == 409 or "insufficient subscription" in lowered:
        return (f"the Alpaca plan of these keys does not include {feed.upper()} data ({text}): "
                'set data_feed = "iex" under [alpaca], or upgrade the plan',
                f"no {feed.upper()} data on this Alpaca plan: set data_feed = \"iex\"")
    if code == 405 or "symbol limit" in lowered:
        return (f"the Alpaca plan limits how many symbols one connection streams ({text}, "
                f"{symbols} asked for): watch fewer symbols",
                f"Alpaca symbol limit: {symbols} symbols is too many for this plan")
    shown = f"{text} ({code})" if code is not None else text
    return f"Alpaca market data error: {shown}", f"Alpaca market data: {shown}"
