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
]
