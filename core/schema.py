"""The database schema, as the migrations that build it.

Applied by `core.store.Store.open` in order, by SQLite's `user_version`.
"""

from __future__ import annotations

# Index i is the script that takes the schema from version i to i + 1. Append only:
# a released script never changes, because databases in the field already ran it.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE watchlists (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
    CREATE TABLE watchlist_symbols (
        watchlist TEXT NOT NULL
            REFERENCES watchlists (name) ON DELETE CASCADE ON UPDATE CASCADE,
        symbol TEXT NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (watchlist, symbol)
    );
    CREATE TABLE bars (
        symbol TEXT NOT NULL, interval TEXT NOT NULL, ts INTEGER NOT NULL,
        open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL,
        volume REAL NOT NULL, source TEXT NOT NULL,
        PRIMARY KEY (symbol, interval, ts)
    ) WITHOUT ROWID;
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, kind TEXT NOT NULL,
        message TEXT NOT NULL, data TEXT
    );
    CREATE INDEX audit_log_ts ON audit_log (ts);
    """,
    # v2: trading. Money is TEXT holding a Decimal; ts is epoch nanoseconds (UTC).
    """
    CREATE TABLE orders (
        client_order_id TEXT PRIMARY KEY,
        sequence INTEGER NOT NULL UNIQUE,
        created INTEGER NOT NULL,
        symbol TEXT NOT NULL,
        venue TEXT NOT NULL,
        request TEXT NOT NULL,
        parent_id TEXT NOT NULL DEFAULT '',
        oco_group TEXT NOT NULL DEFAULT '',
        replaces TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX orders_created ON orders (created);
    CREATE TABLE order_events (
        id INTEGER PRIMARY KEY,
        client_order_id TEXT NOT NULL REFERENCES orders (client_order_id),
        ts INTEGER NOT NULL,
        status TEXT NOT NULL,
        filled_quantity TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        venue_order_id TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX order_events_order ON order_events (client_order_id, id);
    CREATE TABLE fills (
        venue TEXT NOT NULL,
        fill_id TEXT NOT NULL,
        client_order_id TEXT NOT NULL REFERENCES orders (client_order_id),
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        quantity TEXT NOT NULL,
        price TEXT NOT NULL,
        commission TEXT NOT NULL,
        ts INTEGER NOT NULL,
        PRIMARY KEY (venue, fill_id)
    );
    CREATE INDEX fills_ts ON fills (ts);
    CREATE TABLE positions (
        symbol TEXT PRIMARY KEY,
        quantity TEXT NOT NULL,
        average_cost TEXT NOT NULL,
        realized TEXT NOT NULL,
        updated INTEGER NOT NULL
    );
    CREATE TABLE account_snapshots (
        ts INTEGER PRIMARY KEY,
        cash TEXT NOT NULL,
        equity TEXT NOT NULL,
        gross_exposure TEXT NOT NULL,
        net_exposure TEXT NOT NULL,
        realized TEXT NOT NULL,
        unrealized TEXT NOT NULL,
        day_pnl TEXT NOT NULL
    );
    CREATE TABLE sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    """,
    # v3: the paper venue's own books (it survives a restart like a real broker), and
    # the last mark of each position for readers without a feed (`tapedeck positions`).
    """
    CREATE TABLE paper_orders (
        client_order_id TEXT PRIMARY KEY,
        venue_order_id TEXT NOT NULL UNIQUE,
        symbol TEXT NOT NULL,
        received INTEGER NOT NULL,
        state TEXT NOT NULL
    );
    CREATE TABLE paper_fills (
        fill_id TEXT PRIMARY KEY,
        client_order_id TEXT NOT NULL REFERENCES paper_orders (client_order_id),
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        quantity TEXT NOT NULL,
        price TEXT NOT NULL,
        commission TEXT NOT NULL,
        ts INTEGER NOT NULL
    );
    CREATE TABLE paper_account (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    ALTER TABLE positions ADD COLUMN mark TEXT NOT NULL DEFAULT '';
    """,
    # v4: strategy instances (mode, parameters and symbols survive a restart) and
    # saved backtests with their trades.
    """
    CREATE TABLE strategy_instances (
        id TEXT PRIMARY KEY,
        strategy TEXT NOT NULL,
        params TEXT NOT NULL,
        symbols TEXT NOT NULL,
        mode TEXT NOT NULL,
        position INTEGER NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE TABLE backtest_runs (
        id INTEGER PRIMARY KEY,
        created INTEGER NOT NULL,
        strategy TEXT NOT NULL,
        params TEXT NOT NULL,
        symbols TEXT NOT NULL,
        start TEXT NOT NULL,
        end TEXT NOT NULL,
        cash TEXT NOT NULL,
        fill_at TEXT NOT NULL,
        metrics TEXT NOT NULL,
        equity TEXT NOT NULL
    );
    CREATE TABLE backtest_trades (
        run_id INTEGER NOT NULL REFERENCES backtest_runs (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        symbol TEXT NOT NULL,
        direction TEXT NOT NULL,
        quantity TEXT NOT NULL,
        entry_ts INTEGER NOT NULL,
        entry_price TEXT NOT NULL,
        exit_ts INTEGER NOT NULL,
        exit_price TEXT NOT NULL,
        commission TEXT NOT NULL,
        pnl TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    """,
    # v5: saved scans (the scanner's own, beside its presets).
    """
    CREATE TABLE saved_scans (
        name TEXT PRIMARY KEY COLLATE NOCASE,
        text TEXT NOT NULL,
        universe TEXT NOT NULL,
        created INTEGER NOT NULL,
        updated INTEGER NOT NULL
    );
    """,
    # v6: which stretches of history a real provider has been asked for, so a restart or
    # a second request is served from the bars table (a gap in `bars` alone cannot tell
    # a holiday from a stretch never fetched).
    """
    CREATE TABLE bar_coverage (
        source TEXT NOT NULL,
        symbol TEXT NOT NULL,
        interval TEXT NOT NULL,
        start INTEGER NOT NULL,
        end INTEGER NOT NULL,
        fetched INTEGER NOT NULL,
        PRIMARY KEY (source, symbol, interval, start)
    ) WITHOUT ROWID;
    """,
]
