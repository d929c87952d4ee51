"""The market-data side of the fake Alpaca (see `tests.fakes.alpaca_server`): stream
messages, per-connection subscriptions, and the historical REST pages.

Faithful to: the v2 stock stream's wire format (arrays of messages keyed "T"/"S", msgpack
with msgpack Timestamp ext values when the client connects with Content-Type
application/msgpack as alpaca-py does, JSON with RFC 3339 strings otherwise); the
subscription answer listing the connection's whole subscription (corrections and
cancelErrors follow trades, as on the real service); the "*" wildcard; the REST
`{"bars": {symbol: [...]}, "next_page_token"}` pages, symbol by symbol.

Simplified: bars are served as the test stored them whatever the timeframe (no
aggregation); feed, adjustment and asof are ignored; only trades, quotes and minute bars
are ever pushed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgpack

from tests.fakes.alpaca_trading import JSON, ApiError, parse_time, rfc3339

CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
CHANNEL_OF = {"t": "trades", "q": "quotes", "b": "bars"}


def to_ns(ts: datetime | None) -> int:
    """Nanoseconds since the epoch (now if None; naive means UTC)."""
    ts = ts or datetime.now(UTC)
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1_000


def ns_rfc3339(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def quote_msg(symbol: str, bid: float, ask: float, bid_size: int, ask_size: int,
              ns: int) -> JSON:
    return {"T": "q", "S": symbol, "bx": "V", "bp": float(bid), "bs": int(bid_size),
            "ax": "V", "ap": float(ask), "as": int(ask_size), "c": ["R"], "z": "C", "t": ns}


def trade_msg(symbol: str, trade_id: int, price: float, size: int, ns: int) -> JSON:
    return {"T": "t", "S": symbol, "i": trade_id, "x": "V", "p": float(price), "s": int(size),
            "c": ["@"], "z": "C", "t": ns}


def bar_msg(symbol: str, o: float, h: float, low: float, c: float, v: float, ns: int) -> JSON:
    ns -= ns % 60_000_000_000  # a minute bar is stamped with its minute's start
    return {"T": "b", "S": symbol, "o": float(o), "h": float(h), "l": float(low),
            "c": float(c), "v": v, "t": ns, "n": 1, "vw": float(c)}


def encode(msgs: Iterable[JSON], binary: bool) -> bytes | str:
    """One frame: msgpack with Timestamp ext values, or JSON with RFC 3339 strings."""
    if binary:
        packed: bytes = msgpack.packb([
            {k: msgpack.Timestamp.from_unix_nano(v) if k == "t" and isinstance(v, int) else v
             for k, v in msg.items()} for msg in msgs])
        return packed
    return json.dumps([
        {k: ns_rfc3339(v) if k == "t" and isinstance(v, int) else v for k, v in msg.items()}
        for msg in msgs])


def rest_form(msg: JSON) -> JSON:
    """A stream message as the REST latest endpoints write it (no T/S, RFC 3339 time)."""
    return {k: ns_rfc3339(v) if k == "t" else v for k, v in msg.items() if k not in ("T", "S")}


class Subscriptions:
    """One data connection's subscription."""

    def __init__(self) -> None:
        self.channels: dict[str, set[str]] = {name: set() for name in CHANNELS}

    def apply(self, action: str, msg: Mapping[str, Any]) -> None:
        for name, symbols in self.channels.items():
            wanted = msg.get(name) or []
            if isinstance(wanted, str):
                wanted = [wanted]
            if action == "subscribe":
                symbols.update(str(s) for s in wanted)
            else:
                symbols.difference_update(str(s) for s in wanted)

    def wants(self, msg: Mapping[str, Any]) -> bool:
        symbols = self.channels.get(CHANNEL_OF.get(msg["T"], ""), set())
        return msg["S"] in symbols or "*" in symbols

    def ack(self) -> JSON:
        answer: JSON = {"T": "subscription"}
        answer.update({name: sorted(symbols) for name, symbols in self.channels.items()})
        answer["corrections"] = answer["cancelErrors"] = sorted(self.channels["trades"])
        return answer


def _bar_json(bar: Mapping[str, Any]) -> tuple[datetime, JSON]:
    ts = parse_time(bar["t"])
    close = float(bar["c"])
    return ts, {"t": rfc3339(ts), "o": float(bar["o"]), "h": float(bar["h"]),
                "l": float(bar["l"]), "c": close, "v": bar.get("v", 0),
                "n": bar.get("n", 0), "vw": float(bar.get("vw", close))}


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().split(":")[1])
    except (ValueError, IndexError):
        raise ApiError(400, 40010001, "invalid page_token") from None


def bars_page(store: Mapping[str, list[JSON]], query: Mapping[str, str],
              page_size: int) -> JSON:
    """GET /v2/stocks/bars: symbols, timeframe, start, end (inclusive), limit (a page holds
    at most min(limit, page_size) bars, default 1000), sort asc|desc, page_token."""
    symbols = sorted({s.strip().upper() for s in query.get("symbols", "").split(",")
                      if s.strip()})
    if not symbols:
        raise ApiError(400, 40010001, "symbols is required")
    if not query.get("timeframe"):
        raise ApiError(400, 40010001, "timeframe is required")
    start = parse_time(query["start"]) if query.get("start") else None
    end = parse_time(query["end"]) if query.get("end") else None
    limit = max(1, min(int(query.get("limit") or 1000), 10_000))
    rows: list[tuple[str, JSON]] = []
    for symbol in symbols:
        bars = sorted((_bar_json(bar) for bar in store.get(symbol, [])), key=lambda b: b[0])
        picked = [bar for ts, bar in bars
                  if (start is None or ts >= start) and (end is None or ts <= end)]
        if query.get("sort") == "desc":
            picked.reverse()
        rows.extend((symbol, bar) for bar in picked)
    offset = _offset(query.get("page_token"))
    size = min(limit, page_size)
    page: dict[str, list[JSON]] = {}
    for symbol, bar in rows[offset:offset + size]:
        page.setdefault(symbol, []).append(bar)
    more = offset + size < len(rows)
    return {"bars": page, "next_page_token": _token(offset + size) if more else None}
