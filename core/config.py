"""Settings: built-in defaults, overridden by a TOML file, overridden per key by the
environment.

The file is `platformdirs.user_config_dir("tapedeck")/config.toml`, or whatever
`TAPEDECK_CONFIG` names. A variable `TAPEDECK_<SECTION>__<KEY>=value` overrides one key
(`TAPEDECK_REPLAY__DAY_SECONDS=60`); its value is read as JSON when it parses as JSON
(numbers, booleans, lists) and as plain text otherwise.

Every model forbids unknown keys, so a typo is an error that suggests the right name
instead of a setting silently ignored. Errors name where the bad value came from (the
file or the variable), the dotted key and what was expected.

This module is imported by the CLI before it parses arguments, so it must stay light:
no pandas, textual or aiosqlite.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import types
from collections.abc import Iterator, Mapping
from datetime import date
from datetime import time as dt_time
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from core.config_daemon import DaemonSettings
from core.config_notify import NotifySettings
from core.config_trading import PaperSettings, RiskSettings, StrategySettings, TradingSettings
from core.config_types import Section, SymbolList
from core.config_venues import AlpacaSettings, YahooSettings

ENV_PREFIX = "TAPEDECK_"
CONFIG_ENV = "TAPEDECK_CONFIG"

DEFAULT_WATCHLISTS: dict[str, list[str]] = {
    "Core": ["AAPL", "MSFT", "AMZN", "GOOGL", "FB", "JPM", "XOM", "JNJ", "V", "PG", "NVDA", "DIS"],
    "Tech": ["AAPL", "MSFT", "GOOGL", "FB", "NVDA", "INTC", "CSCO", "ORCL", "IBM", "AMD", "NFLX"],
    "Financials": ["JPM", "BAC", "WFC", "C", "GS", "MS", "V", "MA"],
    "Energy": ["XOM", "CVX", "COP", "SLB"],
}

_PROFILE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")




class ConfigError(Exception):
    """Invalid settings; `str(err)` is one line per problem, each naming its source."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _check_list_name(name: str) -> str:
    if not name.strip():
        raise ValueError("expected a non-empty watchlist name")
    return name.strip()


WatchlistName = Annotated[str, AfterValidator(_check_list_name)]


class FeedSettings(Section):
    provider: str = Field(
        default="replay",
        min_length=1,
        description="Market-data provider: replay (bundled history), sim, yahoo or alpaca.",
    )
    fallback: str = Field(
        default="sim", description='Provider to switch to when the main one fails; "" for none.'
    )
    stale_after_s: float = Field(
        default=5.0, gt=0, description="Seconds without data before prices are shown as stale."
    )
    stall_after_s: float = Field(
        default=15.0, gt=0, description="Seconds without data before the feed is reconnected."
    )
    backoff_initial_s: float = Field(
        default=0.5, gt=0, description="First wait between reconnects."
    )
    backoff_max_s: float = Field(default=30.0, gt=0, description="Longest wait between reconnects.")

    @model_validator(mode="after")
    def _ordered(self) -> FeedSettings:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s:g}) must be at least "
                f"backoff_initial_s ({self.backoff_initial_s:g})"
            )
        if self.stall_after_s < self.stale_after_s:
            raise ValueError(
                f"stall_after_s ({self.stall_after_s:g}) must be at least "
                f"stale_after_s ({self.stale_after_s:g})"
            )
        return self


class ReplaySettings(Section):
    start: date = Field(default=date(2019, 1, 2), description="First trading day to replay.")
    start_time: dt_time = Field(
        default=dt_time(9, 30),
        description="New York time of day the first replayed day starts, 09:30 to 16:00.",
    )
    day_seconds: float = Field(
        default=240.0, gt=0, description="Wall-clock seconds one 6.5-hour trading day takes."
    )
    overnight_seconds: float = Field(
        default=4.0, ge=0, description="Wall-clock seconds the gap between two trading days takes."
    )
    steps_per_day: int = Field(
        default=1560, ge=26, le=23400, description="Price updates per symbol per trading day."
    )
    seed: int = Field(default=7, description="Seed for the intraday path between daily bars.")
    bar_session_seconds: float = Field(
        default=1.0, ge=0, le=3600,
        description="Wall-clock seconds one session takes with the `bars` provider.")
    resume: bool = Field(default=True, description="Continue from where the last session stopped.")
    paused: bool = Field(default=False, description="Start paused.")

    @field_validator("start_time")
    @classmethod
    def _in_session(cls, value: dt_time) -> dt_time:
        if not dt_time(9, 30) <= value <= dt_time(16, 0) or value.tzinfo is not None:
            raise ValueError("expected a New York time of day from 09:30 to 16:00, such as 11:00")
        return value


class SimSettings(Section):
    seed: int = Field(default=42, description="Seed for the synthetic market.")


class UiSettings(Section):
    theme: str = Field(default="tapedeck-dark", min_length=1, description="Colour theme.")
    refresh_hz: float = Field(default=10.0, ge=1, le=60, description="Screen updates per second.")
    timezone: str = Field(
        default="America/New_York",
        description='Time zone for displayed times: an IANA name, or "local".',
    )
    flash_ms: int = Field(
        default=600, ge=0, le=5000, description="How long a changed price flashes; 0 turns it off."
    )
    compact_width: int = Field(
        default=100, ge=0, le=1000, description="Below this many columns the layout turns compact."
    )
    compact_height: int = Field(
        default=30, ge=0, le=1000, description="Below this many rows the layout turns compact."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value == "local":
            return value
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                "expected an IANA time zone such as 'America/New_York', or 'local'"
            ) from None
        return value


class StoreSettings(Section):
    profile: str = Field(
        default="default",
        description="Database name: each profile keeps its own watchlists and state.",
    )
    path: Path | None = Field(
        default=None,
        description="Database file; when unset, <profile>.sqlite in the user data dir.",
    )

    @field_validator("profile")
    @classmethod
    def _profile_name(cls, value: str) -> str:
        if not _PROFILE_PATTERN.match(value):
            raise ValueError("expected 1-64 letters, digits, '-' or '_'")
        return value

    @field_validator("path")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()


LogLevelName = Literal["debug", "info", "warning", "error"]


def _log_level(value: Any) -> Any:
    # Checked here rather than by the Literal so that an error shows what the user typed.
    levels = get_args(LogLevelName)
    if not isinstance(value, str) or value.lower() not in levels:
        raise ValueError("expected one of " + ", ".join(repr(level) for level in levels))
    return value.lower()


class LoggingSettings(Section):
    level: Annotated[LogLevelName, BeforeValidator(_log_level)] = Field(
        default="info", description="Least severe message that is logged."
    )


class ScannerSettings(Section):
    refresh_s: float = Field(
        default=1.0, ge=0.1, le=3600,
        description="Seconds between live rescans (each reads only the newest bars).")
    hit_debounce_s: float = Field(
        default=900.0, ge=0,
        description="A symbol that starts matching again within this many seconds is not "
                    "announced again.")
    stream_limit: int = Field(
        default=100, ge=0, le=2000,
        description="Universes up to this many symbols stream live; larger ones scan "
                    "the streamed symbols live and the rest on their last close.")


class Settings(Section):
    feed: FeedSettings = Field(default_factory=FeedSettings)
    replay: ReplaySettings = Field(default_factory=ReplaySettings)
    sim: SimSettings = Field(default_factory=SimSettings)
    ui: UiSettings = Field(default_factory=UiSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    trading: TradingSettings = Field(default_factory=TradingSettings)
    paper: PaperSettings = Field(default_factory=PaperSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    strategies: StrategySettings = Field(default_factory=StrategySettings)
    scanner: ScannerSettings = Field(default_factory=ScannerSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    yahoo: YahooSettings = Field(default_factory=YahooSettings)
    alpaca: AlpacaSettings = Field(default_factory=AlpacaSettings)
    keys: dict[str, Annotated[str, Field(min_length=1)]] = Field(
        default_factory=dict,
        description='Key bindings, binding id = key; e.g. "watchlist.add" = "a".',
    )
    watchlists: dict[WatchlistName, SymbolList] = Field(
        default_factory=lambda: {
            name: list(symbols) for name, symbols in DEFAULT_WATCHLISTS.items()
        },
        description="Watchlists seeded into a new database (later edits live in the database).",
    )

    def database_path(self) -> Path:
        if self.store.path is not None:
            return self.store.path
        # Imported here so that loading settings never imports aiosqlite.
        from core.store import default_database_path

        return default_database_path(self.store.profile)


# -- loading ---------------------------------------------------------------------------


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if override := env.get(CONFIG_ENV):
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir("tapedeck")) / "config.toml"


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults < the file (missing is fine) < `TAPEDECK_<SECTION>__<KEY>` variables."""
    env = os.environ if environ is None else environ
    source = config_path(env) if path is None else Path(path)
    from_file = _read_toml(source)
    data = _copy(from_file)
    overrides = list(_env_entries(env))
    for _, key_path, value in overrides:
        field = Settings.model_fields.get(key_path[0])
        if field is not None and key_path[0] not in data and not is_model(field.annotation):
            # A variable overrides one entry of a table such as [watchlists]; the rest of
            # the table is still the default, not empty.
            data[key_path[0]] = _copy(field.get_default(call_default_factory=True))
        _set_path(data, key_path, value)
    try:
        return Settings.model_validate(data)
    except ValidationError as err:
        # Imported here: config_text builds on this module's models.
        from core.config_text import explain

        problems = [explain(error, source, from_file, overrides) for error in err.errors()]
        raise ConfigError(list(dict.fromkeys(problems))) from err


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The `TAPEDECK_<SECTION>__<KEY>` variables as a nested dict of parsed values."""
    data: dict[str, Any] = {}
    for _, key_path, value in _env_entries(environ):
        _set_path(data, key_path, value)
    return data


def _copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _copy(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_copy(value) for value in data]
    return data


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as err:
        raise ConfigError([f"{path}: cannot read the file: not UTF-8 text ({err.reason})"]) from err
    except OSError as err:
        raise ConfigError([f"{path}: cannot read the file: {err.strerror or err}"]) from err
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        if found := re.search(r"\s*\(at line (\d+), column (\d+)\)$", message):
            where = f"line {found[1]}, column {found[2]}"
            message = message[: found.start()]
        else:
            lines = text.splitlines() or [""]
            where = f"line {len(lines)}, column {len(lines[-1]) + 1} (end of file)"
            message = message.replace(" (at end of document)", "")
        raise ConfigError([f"{path}: {where}: invalid TOML: {message}"]) from err


def _env_entries(environ: Mapping[str, str]) -> Iterator[tuple[str, tuple[str, ...], Any]]:
    """(variable, key path, parsed value) for each override variable, in name order."""
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if "__" not in rest:
            continue  # TAPEDECK_CONFIG and any non-setting variables
        parts = rest.split("__")
        if not all(parts):
            raise ConfigError(
                [f"{name}: not a setting name (expected {ENV_PREFIX}<SECTION>__<KEY>)"]
            )
        key_path = _env_key_path(parts)
        yield name, key_path, _parse_env_value(environ[name], key_path)


def _env_key_path(parts: list[str]) -> tuple[str, ...]:
    # Field names are matched case-insensitively; keys inside tables (watchlist names,
    # binding ids) are the user's own and keep their case.
    key_path: list[str] = []
    annotation: Any = Settings
    for part in parts:
        if is_model(annotation):
            name = part.lower()
            info = annotation.model_fields.get(name)
            annotation = info.annotation if info is not None else None
        else:
            name, annotation = part, element(annotation)
        key_path.append(name)
    return tuple(key_path)


def _parse_env_value(raw: str, key_path: tuple[str, ...]) -> Any:
    target = field_at(key_path)
    kind = unwrap(target[0]) if target is not None else None
    if kind in (str, Path, date, dt_time):
        return raw  # a profile named 123 stays the text "123"
    try:
        return json.loads(raw)
    except ValueError:
        if get_origin(kind) is list:
            return [item.strip() for item in raw.split(",") if item.strip()]
        return raw


def _set_path(data: dict[str, Any], key_path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in key_path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[key_path[-1]] = value


# -- walking the settings types (env parsing and error messages) ----------------------


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and `| None` down to the underlying type."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [arg for arg in get_args(annotation) if arg is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
            if len(args) != 1:
                return annotation
        else:
            return annotation


def element(annotation: Any) -> Any:
    kind = unwrap(annotation)
    args = get_args(kind)
    if get_origin(kind) is dict:
        return args[1]
    if get_origin(kind) is list:
        return args[0]
    return None


def field_at(loc: tuple[str | int, ...]) -> tuple[Any, FieldInfo | None] | None:
    """The type (and field, if loc ends on one) that a location in Settings holds."""
    annotation: Any = Settings
    info: FieldInfo | None = None
    for part in loc:
        if is_model(annotation):
            info = annotation.model_fields.get(part) if isinstance(part, str) else None
            if info is None:
                return None
            annotation = info.annotation
        else:
            annotation, info = element(annotation), None
            if annotation is None:
                return None
    return annotation, info
