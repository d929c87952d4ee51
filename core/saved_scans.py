"""Saved scans: a trader's own scans, by name, in the profile database (table
`saved_scans`, schema v5), beside the presets (`core.scan_presets`).

A scan is saved as its text, exactly as typed (the canonical render would lose the
trader's spacing and names), after it parses: what is stored always runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from core.scan_language import parse
from core.scan_presets import BY_NAME
from core.store import Store

MAX_NAME_LENGTH = 40


@dataclass(frozen=True, slots=True)
class SavedScan:
    name: str
    text: str
    universe: str  # a universe spec: "bundled", a watchlist's name, or symbols
    updated_ns: int


def check_name(name: str) -> str:
    """The name stripped; ValueError saying what is wrong with it otherwise."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ValueError("a saved scan needs a name")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ValueError(f"a scan's name is at most {MAX_NAME_LENGTH} characters")
    if cleaned.lower().replace(" ", "-") in BY_NAME:
        raise ValueError(f"{cleaned!r} is a preset's name: choose another")
    return cleaned


async def save_scan(store: Store, name: str, text: str, universe: str) -> SavedScan:
    """Create or replace the scan called `name` (names are case-insensitive).
    ValueError for a bad name, ScanError for a scan that does not parse."""
    cleaned = check_name(name)
    parse(text)
    now = time.time_ns()
    await store.execute(
        "INSERT INTO saved_scans (name, text, universe, created, updated) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET name = excluded.name, text = excluded.text, "
        "universe = excluded.universe, updated = excluded.updated",
        (cleaned, text, universe, now, now))
    return SavedScan(cleaned, text, universe, now)


async def saved_scans(store: Store) -> list[SavedScan]:
    rows = await store.fetchall(
        "SELECT name, text, universe, updated FROM saved_scans ORDER BY name COLLATE NOCASE")
    return [SavedScan(row["name"], row["text"], row["universe"], int(row["updated"]))
            for row in rows]


async def delete_scan(store: Store, name: str) -> bool:
    """Delete the scan called `name`; whether there was one."""
    found = await store.fetchone("SELECT 1 FROM saved_scans WHERE name = ?", (name.strip(),))
    if found is None:
        return False
    await store.execute("DELETE FROM saved_scans WHERE name = ?", (name.strip(),))
    return True
