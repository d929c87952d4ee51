"""The control socket's encoding: the engine's value types to JSON and back.

One message is one line of JSON. The engine's views are frozen dataclasses, named
tuples, enums and `Decimal`s; plain JSON would lose what they are, so each travels
tagged with its class name and is rebuilt on the other side:

    {"$t": "Fill", "f": {...fields}}       a dataclass
    {"$t": "QuoteRow", "v": [...]}         a named tuple, positionally (the hot one)
    {"$e": "Side", "v": "buy"}             an enum
    {"$d": "187.25"}                       a Decimal, exactly
    {"$tu": [...]}  {"$m": [[k, v], ...]}  a tuple; a dict whose keys are not plain strings
    {"$date": "2019-03-14"}  {"$dt": "..."}

Only the classes of a fixed list of modules can be rebuilt (`registry()`): a line never
names an arbitrary class, and nothing is ever evaluated. Floats go as Python's json
writes them, NaN included: both ends are tapedeck.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import typing
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

import numpy as np

# The modules whose value types cross the socket. A class added to one of them can be
# sent at once; one defined elsewhere must have its module listed here.
WIRE_MODULES = (
    "core.model",
    "core.state",
    "core.risk",
    "core.orders",
    "core.trading",
    "core.health",
    "core.scan_service",
    "core.scanner",
    "core.scan_syntax",
    "core.saved_scans",
    "core.metrics",
    "core.backtest_result",
    "core.backtest_runs",
    "core.strategies.runner",
)

_PLAIN = (str, int, float, bool, type(None))


class WireError(ValueError):
    """A value that cannot be sent, or a line that does not decode."""


@cache
def registry() -> dict[str, type]:
    """Every dataclass, named tuple and enum of `WIRE_MODULES`, by class name."""
    found: dict[str, type] = {}
    for module_name in WIRE_MODULES:
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if not isinstance(value, type) or value.__module__ != module_name:
                continue
            if not (dataclasses.is_dataclass(value) or _is_named_tuple(value)
                    or issubclass(value, enum.Enum)):
                continue
            other = found.get(name)
            if other is not None and other is not value:
                raise WireError(f"two wire types are named {name}: {other.__module__} and "
                                f"{module_name}")
            found[name] = value
    return found


def _is_named_tuple(cls: type) -> bool:
    return issubclass(cls, tuple) and hasattr(cls, "_fields")


_FIELDS: dict[type, tuple[str, ...]] = {}


def _init_fields(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.init)
    return names


# ---------------------------------------------------------------------------- encoding

_FLAT: dict[type, bool] = {}


def _flat(cls: type) -> bool:
    """A named tuple whose fields are all str, int, float or bool: json writes its
    values as they are, with no walk over them (the rows and bars of every delta)."""
    flat = _FLAT.get(cls)
    if flat is None:
        try:
            hints = typing.get_type_hints(cls)
        except Exception:  # annotations that do not resolve: walk it
            hints = {}
        fields: tuple[str, ...] = getattr(cls, "_fields", ())
        flat = _FLAT[cls] = bool(hints) and all(
            hints.get(name) in (str, int, float, bool) for name in fields)
    return flat



def encode(value: Any) -> Any:
    """`value` as JSON-ready data (dicts, lists, plain scalars)."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is list:
        return [encode(item) for item in value]
    if kind is dict:
        if all(type(key) is str and not key.startswith("$") for key in value):
            return {key: encode(item) for key, item in value.items()}
        return {"$m": [[encode(key), encode(item)] for key, item in value.items()]}
    if kind is Decimal:
        return {"$d": str(value)}
    if isinstance(value, enum.Enum):
        return {"$e": kind.__name__, "v": value.value}
    if isinstance(value, tuple):
        if hasattr(value, "_fields"):
            if _flat(kind):  # QuoteRow, Bar: the bulk of a delta, as they are
                return {"$t": kind.__name__, "v": list(value)}
            return {"$t": kind.__name__, "v": [encode(item) for item in value]}
        return {"$tu": [encode(item) for item in value]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"$t": kind.__name__,
                "f": {name: encode(getattr(value, name)) for name in _init_fields(kind)}}
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, (set, frozenset)):
        return {"$set": [encode(item) for item in value]}
    if isinstance(value, np.generic):  # numpy scalars from a scan's values
        return value.item()
    for plain in (bool, int, float, str):  # subclasses of the plain types
        if isinstance(value, plain):
            return plain(value)
    raise WireError(f"a {kind.__name__} cannot be sent over the control socket")


def dumps(message: Mapping[str, Any]) -> bytes:
    """One message as a line (encoded, JSON, newline-terminated)."""
    try:
        return json.dumps(encode(dict(message)), separators=(",", ":")).encode() + b"\n"
    except (TypeError, ValueError) as err:  # a value of a type its field does not say
        raise WireError(f"cannot encode the message: {err}") from None


# ---------------------------------------------------------------------------- decoding


def _rebuild(obj: dict[str, Any]) -> Any:
    if len(obj) > 2:
        return obj
    try:
        if "$t" in obj:
            cls = registry().get(obj["$t"])
            if cls is None:
                raise WireError(f"unknown type {obj['$t']!r}")
            if "v" in obj:
                return cls(*obj["v"])
            return cls(**obj["f"])
        if "$d" in obj:
            return Decimal(obj["$d"])
        if "$e" in obj:
            enum_cls = registry().get(obj["$e"])
            if enum_cls is None or not issubclass(enum_cls, enum.Enum):
                raise WireError(f"unknown enum {obj['$e']!r}")
            return enum_cls(obj["v"])
        if "$tu" in obj:
            return tuple(obj["$tu"])
        if "$m" in obj:
            return {_hashable(key): value for key, value in obj["$m"]}
        if "$date" in obj:
            return date.fromisoformat(obj["$date"])
        if "$dt" in obj:
            return datetime.fromisoformat(obj["$dt"])
        if "$set" in obj:
            return set(obj["$set"])
    except WireError:
        raise
    except (TypeError, ValueError, KeyError, InvalidOperation) as err:
        raise WireError(f"malformed value {_clip(obj)}: {err}") from None
    return obj


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def _clip(obj: Any, size: int = 120) -> str:
    text = repr(obj)
    return text if len(text) <= size else text[:size] + "..."


def loads(line: bytes | str) -> Any:
    """Decode one line; WireError for anything that is not a well-formed message."""
    try:
        return json.loads(line, object_hook=_rebuild)
    except WireError:
        raise
    except (ValueError, RecursionError) as err:  # json's errors are ValueErrors
        raise WireError(f"malformed JSON: {err}") from None
