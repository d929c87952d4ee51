"""Settings in words: what is wrong with a value, the commented default file
(`tapedeck config init`) and the dump with secrets hidden (`tapedeck config show`)."""

from __future__ import annotations

import difflib
import json
import re
import textwrap
from collections.abc import Mapping
from datetime import date
from datetime import time as dt_time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from core.config import ENV_PREFIX, Settings, element, field_at, is_model, unwrap
from core.config_notify import redact_url

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_SECRET_WORDS = frozenset({"key", "secret", "token", "password", "passwd", "passphrase"})


# -- explaining validation errors ------------------------------------------------------


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _describe(annotation: Any, info: FieldInfo | None) -> str:
    kind = unwrap(annotation)
    metadata = list(info.metadata) if info is not None else []
    if get_origin(annotation) is Annotated:
        for extra in get_args(annotation)[1:]:
            metadata += extra.metadata if isinstance(extra, FieldInfo) else [extra]
    bounds = {type(m).__name__: m for m in metadata}
    if kind is bool:
        return "true or false"
    if kind in (int, float):
        low = bounds.get("Ge") or bounds.get("Gt")
        high = bounds.get("Le") or bounds.get("Lt")
        noun = "a whole number" if kind is int else "a number"
        if isinstance(low, annotated_types.Ge) and isinstance(high, annotated_types.Le):
            return f"{noun} from {_number(low.ge)} to {_number(high.le)}"
        limits = []
        if isinstance(low, annotated_types.Gt):
            limits.append(f"greater than {_number(low.gt)}")
        elif isinstance(low, annotated_types.Ge):
            limits.append(f"at least {_number(low.ge)}")
        if isinstance(high, annotated_types.Le):
            limits.append(f"at most {_number(high.le)}")
        elif isinstance(high, annotated_types.Lt):
            limits.append(f"less than {_number(high.lt)}")
        return " ".join([noun, " and ".join(limits)]).strip()
    if kind is str:
        return "non-empty text" if "MinLen" in bounds else "text"
    if kind is date:
        return "a date such as 2019-01-02"
    if kind is dt_time:
        return "a time of day such as 11:00"
    if kind is Path:
        return "a file path"
    if get_origin(kind) is Literal:
        return "one of " + ", ".join(repr(choice) for choice in get_args(kind))
    if is_model(kind) or get_origin(kind) is dict:
        return "a table"
    if get_origin(kind) is list:
        return "a list"
    return str(getattr(kind, "__name__", kind))


def _dotted(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = part if _BARE_KEY.match(part) else json.dumps(part)
            text += f".{name}" if text else name
    return text


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, date | dt_time):
        return value.isoformat()
    return repr(value)


def _has(data: Any, loc: tuple[str | int, ...]) -> bool:
    for part in loc:
        in_dict = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and part < len(data)
        if not (in_dict or in_list):
            return False
        data = data[part]
    return True


def explain(
    error: Mapping[str, Any],
    source: Path,
    from_file: dict[str, Any],
    overrides: list[tuple[str, tuple[str, ...], Any]],
) -> str:
    loc: tuple[str | int, ...] = tuple(error["loc"])
    origin = str(source)
    for name, key_path, _ in overrides:
        if loc[: len(key_path)] == key_path:
            origin = name
            break
    else:
        below = [name for name, key_path, _ in overrides if key_path[: len(loc)] == loc]
        if below and not _has(from_file, loc):
            origin = ", ".join(below)
    key = _dotted(loc)
    if error["type"] == "extra_forbidden":
        parent = field_at(loc[:-1])
        known = list(parent[0].model_fields) if parent and is_model(parent[0]) else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "known keys: " + ", ".join(known)
        return f"{origin}: unknown key {key} ({hint})"
    target = field_at(loc)
    if error["type"] in ("value_error", "assertion_error"):
        what = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    elif target is not None:
        what = "expected " + _describe(*target)
    else:
        what = str(error["msg"])
    if target is not None and is_model(unwrap(target[0])) and error["type"] == "value_error":
        return f"{origin}: {key}: {what}"  # a rule across keys: no single value to show
    return f"{origin}: {key}: {what}, got {_shown(error.get('input'))}"


# -- writing ---------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Decimal):
        return str(value)  # a TOML number; read back as the same Decimal
    if isinstance(value, date | dt_time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _comment(text: str | None) -> list[str]:
    return [f"# {line}" for line in textwrap.wrap(text or "", 86)]


def default_config_text() -> str:
    """A commented config.toml holding every key at its default (`tapedeck config init`)."""
    defaults = Settings()
    lines = [
        "# tapedeck configuration. Every key is optional; these are the defaults.",
        f"# Any key can be overridden by an environment variable {ENV_PREFIX}<SECTION>__<KEY>,",
        f"# e.g. {ENV_PREFIX}REPLAY__DAY_SECONDS=60.",
    ]
    for name, info in Settings.model_fields.items():
        value = getattr(defaults, name)
        lines += ["", *_comment(info.description), f"[{name}]"]
        if isinstance(value, BaseModel):
            for key, field in type(value).model_fields.items():
                lines += _comment(field.description)
                current = getattr(value, key)
                if current is None:
                    lines.append(f'# {key} = "..."')
                elif current == {} or (current == [] and is_model(element(field.annotation))):
                    # Left out, so that the user can add it as a table ([notify.targets],
                    # [[notify.rules]]) without defining it twice.
                    lines.append(f"# {key} = {'{}' if current == {} else '[]'}")
                else:
                    lines.append(f"{key} = {_toml_value(current)}")
        else:
            if not value and name == "keys":
                lines.append('# "watchlist.add" = "a"')
            for key, item in value.items():
                lines.append(f"{_toml_key(key)} = {_toml_value(item)}")
    return "\n".join(lines) + "\n"


def _is_secret(name: str) -> bool:
    words = re.split(r"[^a-z0-9]+", name.lower())
    return any(
        word in _SECRET_WORDS or word.endswith(("secret", "token", "password", "apikey"))
        for word in words
    )


def _redact(data: Any) -> Any:
    if isinstance(data, dict):
        return {
            key: "***" if _is_secret(str(key)) and value not in (None, "") else _redact(value)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_redact(item) for item in data]
    return data


def redacted(settings: Settings) -> dict[str, Any]:
    """The settings as JSON-able data, with any key/secret/token/password shown as ***
    (and notification URLs as their scheme only)."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    # Watchlist names are the user's own words ("Key stocks"), never credentials.
    watchlists = data.pop("watchlists", None)
    result: dict[str, Any] = _redact(data)
    # An apprise URL carries its service's token: show only the service.
    targets = result.get("notify", {}).get("targets", {})
    for name, url in targets.items():
        targets[name] = redact_url(url)
    if watchlists is not None:
        result["watchlists"] = watchlists
    return result
