"""Settings for notifications through apprise (`[notify]`). Part of
`core.config.Settings`; kept apart only for size.

    [notify.targets]              # name = apprise URL
    phone = "ntfy://ntfy.sh/my-topic"
    desktop = "dbus://"

    [[notify.rules]]              # with no rules: every kind to every target
    kinds = ["fill", "reject"]
    targets = ["phone"]
    min_level = "info"

Kinds and levels live here (not in core.notify) so that validating a config file never
imports apprise.
"""

from __future__ import annotations

import difflib
import enum
import re
from datetime import time as dt_time
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from core.config_types import Section

# What the engine tells about; the daemon adds daemon_start and daemon_stop.
KINDS: tuple[str, ...] = (
    "fill", "reject", "risk_state", "kill_switch", "scan_hit", "signal", "feed_down",
    "feed_up", "daemon_start", "daemon_stop", "error",
)
ALL = "*"
# Untagged URLs of an apprise config file form one target of this name.
CONFIG_FILE_TARGET = "config"


class NotifyLevel(enum.IntEnum):
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50

    @property
    def label(self) -> str:
        return self.name.lower()


LevelName = Literal["info", "warning", "error", "critical"]
_TARGET_NAME = re.compile(r"^[a-z0-9_-]{1,40}$")
_QUIET = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def level_of(name: str) -> NotifyLevel:
    return NotifyLevel[name.upper()]


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _check_kind(kind: str) -> str:
    if kind == ALL or kind in KINDS:
        return kind
    close = difflib.get_close_matches(kind, KINDS, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    raise ValueError(f"{hint}expected {ALL!r} or one of " + ", ".join(KINDS))


def _check_target_name(name: str) -> str:
    if name != ALL and not _TARGET_NAME.match(name):
        raise ValueError("expected a target name of letters, digits, '-' or '_'")
    return name


def _check_url(url: str) -> str:
    if not _URL.match(url.strip()):
        raise ValueError('expected an apprise URL such as "ntfy://ntfy.sh/my-topic"')
    return url.strip()


Kind = Annotated[str, BeforeValidator(_lower), AfterValidator(_check_kind)]
TargetName = Annotated[str, BeforeValidator(_lower), AfterValidator(_check_target_name)]
Level = Annotated[LevelName, BeforeValidator(_lower)]
TargetUrl = Annotated[str, AfterValidator(_check_url)]


def parse_quiet_hours(text: str) -> tuple[dt_time, dt_time] | None:
    """"22:00-07:00" -> (22:00, 07:00); "" -> None. Raises ValueError."""
    if not text.strip():
        return None
    found = _QUIET.match(text)
    if found is None:
        raise ValueError('expected a time range such as "22:00-07:00", or "" for none')
    hour1, minute1, hour2, minute2 = (int(part) for part in found.groups())
    try:
        start, end = dt_time(hour1, minute1), dt_time(hour2, minute2)
    except ValueError:
        raise ValueError('expected times of day from 00:00 to 23:59, such as "22:00-07:00"'
                         ) from None
    if start == end:
        raise ValueError("the quiet hours start and end at the same time")
    return start, end


def redact_url(url: str) -> str:
    """An apprise URL holds its service's token: show only which service it is."""
    scheme = urlsplit(url).scheme
    return f"{scheme}://***" if scheme else "***"


class NotifyRule(Section):
    kinds: list[Kind] = Field(
        default_factory=lambda: [ALL], min_length=1,
        description='Event kinds this rule sends, or ["*"] for all.')
    targets: list[TargetName] = Field(
        default_factory=lambda: [ALL], min_length=1,
        description='Target names (from [notify.targets] or the config file\'s tags), '
                    'or ["*"] for all.')
    min_level: Level = Field(
        default="info", description="Least severe message sent: info, warning, error, "
                                    "critical.")
    throttle_s: float | None = Field(
        default=None, ge=0, le=86_400,
        description="Overrides [notify] throttle_s for these kinds and targets.")


class NotifySettings(Section):
    enabled: bool = Field(default=True, description="Send notifications at all.")
    targets: dict[TargetName, TargetUrl] = Field(
        default_factory=dict,
        description='Where messages go, name = apprise URL; add a [notify.targets] table '
                    'such as phone = "ntfy://ntfy.sh/my-topic", desktop = "dbus://".')
    config_file: Path | None = Field(
        default=None,
        description="An apprise config file (YAML or TEXT); each of its tags becomes a "
                    f"target of that name, its untagged URLs the target '{CONFIG_FILE_TARGET}'.")
    timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Seconds one message may take to send.")
    throttle_s: float = Field(
        default=60.0, ge=0, le=86_400,
        description="At most one message per kind and target in this many seconds; the "
                    "ones held back are counted and summed up when it ends. 0 turns it off.")
    dedupe_s: float = Field(
        default=300.0, ge=0, le=86_400,
        description="The same message (kind, title and text) within this many seconds is "
                    "sent once. 0 turns it off.")
    cooldown_s: float = Field(
        default=60.0, ge=0, le=86_400,
        description="A target whose send failed gets nothing but critical messages for "
                    "this long (no retries, so a dead service never causes a storm).")
    quiet_hours: str = Field(
        default="",
        description='Quiet hours in the [ui] timezone, such as "22:00-07:00"; "" for none.')
    quiet_min_level: Level = Field(
        default="critical",
        description="During quiet hours only this level and above are sent.")
    rules: list[NotifyRule] = Field(
        default_factory=list,
        description="[[notify.rules]] tables: kinds, targets, min_level, throttle_s. With "
                    "none, every kind goes to every target.")

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str) -> str:
        parse_quiet_hours(value)
        return value.strip()

    @field_validator("config_file", mode="before")
    @classmethod
    def _unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("config_file")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @model_validator(mode="after")
    def _known_targets(self) -> NotifySettings:
        if self.config_file is not None:
            return self  # its tags are target names too, known only once it is read
        for index, rule in enumerate(self.rules):
            for name in rule.targets:
                if name != ALL and name not in self.targets:
                    known = ", ".join(self.targets) or "none yet"
                    raise ValueError(
                        f"rules[{index}].targets: there is no target {name!r} (the "
                        f"targets are: {known}; add it under [notify.targets])")
        return self

    def quiet_window(self) -> tuple[dt_time, dt_time] | None:
        return parse_quiet_hours(self.quiet_hours)
