"""The daemon's health record: what `tapedeck status` shows.

The daemon writes one every `[daemon] heartbeat_s` into the profile's database (the
settings table, key `daemon.health`), and a last one, marked stopped, on its way out.
So `tapedeck status` can say how the daemon was when it was last heard of, even after
it died: a record that is not marked stopped and whose heartbeat is old means the
daemon did not stop cleanly.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.model import NS_PER_SECOND

if TYPE_CHECKING:
    from core.engine import Engine
    from core.store import Store

HEALTH_KEY = "daemon.health"


@dataclass(frozen=True, slots=True)
class HealthRecord:
    pid: int
    version: str
    profile: str
    started_ns: int  # wall clock
    heartbeat_ns: int  # wall clock of this record
    running: bool  # False in the record written on a clean stop
    feed: str
    feed_state: str
    feed_message: str
    # Market clock minus the newest quote's time: how far behind the data runs.
    feed_lag_s: float | None
    # Wall seconds since the feed last delivered anything (None: nothing yet).
    last_quote_age_s: float | None
    stale_symbols: int
    broker: str
    broker_connection: str
    open_orders: int
    positions: int
    trading_state: str
    trading_reason: str
    equity: str
    day_pnl: str
    clients: int  # screens attached
    socket: str
    heartbeat_s: float

    def age_s(self, now_ns: int | None = None) -> float:
        return ((now_ns or time.time_ns()) - self.heartbeat_ns) / NS_PER_SECOND

    def lost(self, now_ns: int | None = None) -> bool:
        """Marked running, but silent for three heartbeats: the daemon died."""
        return self.running and self.age_s(now_ns) > 3 * self.heartbeat_s + 1


def health_of(engine: Engine, *, started_ns: int, clients: int, socket: str,
              heartbeat_s: float, version: str, running: bool = True) -> HealthRecord:
    status = engine.status()
    states = engine.market.states.values()
    newest_ts = max((s.ts_ns for s in states), default=0)
    lag = (status.market_ns - newest_ts) / NS_PER_SECOND if newest_ts else None
    age = time.monotonic() - engine.last_data_at if engine.last_data_at else None
    desk = engine.desk
    account = desk.account()
    risk = desk.risk_view()
    return HealthRecord(
        pid=os.getpid(), version=version, profile=engine.settings.store.profile,
        started_ns=started_ns, heartbeat_ns=time.time_ns(), running=running,
        feed=status.feed_name, feed_state=status.feed_state.value,
        feed_message=status.feed_message,
        feed_lag_s=None if lag is None else round(max(lag, 0.0), 3),
        last_quote_age_s=None if age is None else round(age, 3),
        stale_symbols=status.stale_symbols, broker=engine.broker.name,
        broker_connection=engine.broker.connection(),
        open_orders=sum(1 for order in desk.orders.values() if order.is_open),
        positions=len(desk.positions()), trading_state=risk.state.value,
        trading_reason=risk.reason, equity=str(account.equity),
        day_pnl=str(account.day_pnl), clients=clients, socket=socket,
        heartbeat_s=heartbeat_s,
    )


async def save_health(store: Store, record: HealthRecord) -> None:
    await store.set_setting(HEALTH_KEY, _jsonable(record))


def _jsonable(record: HealthRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    for key, value in data.items():
        if isinstance(value, float) and not math.isfinite(value):
            data[key] = None
    return data


def parse_health(value: Any) -> HealthRecord | None:
    """The record from its stored JSON; None for nothing or something unreadable (an
    older or newer tapedeck's record)."""
    if not isinstance(value, dict):
        return None
    names = {f.name for f in dataclasses.fields(HealthRecord)}
    if not names <= value.keys():
        return None
    try:
        return HealthRecord(**{name: value[name] for name in names})
    except TypeError:
        return None


async def load_health(path: Path) -> HealthRecord | None:
    """The last record in the database at `path`, read-only (no lock: the daemon may be
    running). StoreError when the database cannot be read."""
    from core.store import Store

    store = await Store.open(path, read_only=True)
    try:
        return parse_health(await store.get_setting(HEALTH_KEY))
    finally:
        await store.close()
