"""Shared fixtures. Every test runs with its own config, data and database directories,
so nothing touches the user's real files."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from core.config import Settings


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test old code: a source edited after `make native` compiled it would be
    shadowed by its extension (core/native.py)."""
    from core.native import stale

    changed = stale()
    if changed:
        names = ", ".join(str(path.name) for path in changed)
        pytest.exit(f"{names} changed after it was compiled: run `make native` (or "
                    "`TAPEDECK_NATIVE=0 make native` to run pure Python)", returncode=2)


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Module-scoped fixtures are set up before each test's own environment: point the
    cache at a folder of the session's for them (the bundle's cache is written there
    once), never at the user's."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(folder))
        yield folder


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point config, data and cache directories at a temporary folder."""
    home = tmp_path / "home"
    home.mkdir()
    for name in list(__import__("os").environ):
        if name.startswith(("TAPEDECK_", "APCA_")):  # APCA_: Alpaca's keys
            monkeypatch.delenv(name)
    monkeypatch.setenv("TAPEDECK_CONFIG", str(home / "config.toml"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    # A short runtime dir of its own: a Unix socket's path has at most 107 bytes, and
    # tmp_path alone can be longer than that.
    runtime = Path(tempfile.mkdtemp(prefix="td-"))
    runtime.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    yield home
    shutil.rmtree(runtime, ignore_errors=True)


def make_settings(tmp_path: Path, **sections: dict[str, object]) -> Settings:
    """Settings for a test: its own database, a paused replay at a fixed moment, no
    tick flashes (so screens are deterministic)."""
    from core.config import Settings

    data: dict[str, dict[str, object]] = {
        "store": {"path": str(tmp_path / "test.sqlite")},
        "replay": {"start": "2019-03-14", "start_time": "11:00", "paused": True,
                   "resume": False},
        "ui": {"flash_ms": 0},
        "watchlists": {"Core": ["AAPL", "MSFT", "JPM"], "Energy": ["XOM", "CVX"]},
    }
    for section, values in sections.items():
        current = data.setdefault(section, {})
        if isinstance(current, dict) and isinstance(values, dict):
            current.update(values)
        else:
            data[section] = values
    return Settings.model_validate(data)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)
