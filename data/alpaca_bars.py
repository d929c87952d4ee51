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
import numpy.typing as npt
import pandas as pd

from core.clock import NEW_YORK, ExchangeCalendar
from core.config_venues import KEY_ID_ENV, SECRET_KEY_ENV
from core.model import NS_PER_SECOND, Bar, MarketEvent, Quote, Trade, to_ns
from data.bundle import LoadReport
from data.provider_common import clean_bar_rows, numeric_columns

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
    high, low, close, volume), oldest first, cleaned by `clean_bar_rows` (a row without a
    readable time is dropped as invalid too). The report counts what was done."""
    report = LoadReport()
    if not raw:
        return [], report
    frame = pd.DataFrame.from_records(list(raw), columns=["t", *_FIELDS])
    times = pd.to_datetime(frame["t"], utc=True, errors="coerce", format="ISO8601")
    has_time = np.asarray(times.notna())
    report.invalid_rows_dropped = int((~has_time).sum())
    index = pd.DatetimeIndex(times[has_time])
    values = numeric_columns(frame, _FIELDS)[has_time]
    stamps = _session_opens(index, calendar) if daily else np.asarray(
        index.as_unit("ns").asi8, dtype=np.int64)
    return clean_bar_rows(stamps, values, daily=daily, report=report), report


def _session_opens(index: pd.DatetimeIndex, calendar: ExchangeCalendar) -> npt.NDArray[np.int64]:
    opens: dict[date, int] = {}
    stamps = np.empty(len(index), dtype=np.int64)
    for i, moment in enumerate(index.tz_convert(NEW_YORK)):
        day = moment.date()
        if day not in opens:
            opens[day] = calendar.open_close_ns(day)[0]
        stamps[i] = opens[day]
    return stamps


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
