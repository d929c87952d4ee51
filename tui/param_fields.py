"""A strategy's parameters as form fields, read from its Params model's JSON schema
(`StrategyInfo.schema`): the type, the bounds, the choices, the description, and the
conversion of what was typed, with the problem in a few words when it does not fit.

The schema is all the editor knows: a rule between two fields (a crossover's fast
average shorter than its slow one) is the engine's to check, and its refusal is shown
field by field (`split_refusal`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["int", "float", "bool", "choice", "text"]
TYPE_KINDS: dict[str, Kind] = {"integer": "int", "number": "float", "boolean": "bool"}
MODEL_ERROR = ""  # the field name of a refusal that concerns no one field


@dataclass(frozen=True, slots=True)
class ParamField:
    name: str
    kind: Kind
    description: str = ""
    default: Any = None
    minimum: float | None = None  # value >= minimum
    maximum: float | None = None
    exclusive_minimum: float | None = None  # value > exclusive_minimum
    exclusive_maximum: float | None = None
    choices: tuple[Any, ...] = ()
    optional: bool = False  # blank means None

    def bounds(self) -> str:
        """'1 ≤ x ≤ 500', '0 < x < 100', 'x ≥ 0' ('' when unbounded)."""
        low = (f"{number(self.minimum)} ≤ " if self.minimum is not None else
               f"{number(self.exclusive_minimum)} < " if self.exclusive_minimum is not None
               else "")
        high = (f" ≤ {number(self.maximum)}" if self.maximum is not None else
                f" < {number(self.exclusive_maximum)}" if self.exclusive_maximum is not None
                else "")
        return f"{low}x{high}" if low or high else ""

    def hint(self) -> str:
        """What the value must be, in a few words: 'whole number, 1 ≤ x ≤ 500'."""
        kind = {"int": "whole number", "float": "number", "bool": "yes or no",
                "choice": "one of " + ", ".join(str(c) for c in self.choices),
                "text": "text"}[self.kind]
        bounds = self.bounds()
        return f"{kind}, {bounds}" if bounds else kind

    def text_of(self, value: Any) -> str:
        """How a value shows in its input."""
        if value is None:
            return ""
        if self.kind == "float" and isinstance(value, float) and value.is_integer():
            return f"{value:.1f}"
        return str(value)

    def parse(self, text: str) -> Any:
        """The typed value of an input, or ValueError saying what is wrong."""
        text = text.strip()
        if not text:
            if self.optional:
                return None
            raise ValueError("required")
        value: Any
        if self.kind == "int":
            cleaned = text.replace(",", "").replace("_", "")
            try:
                value = int(cleaned)
            except ValueError:
                raise ValueError(f"{text!r} is not a whole number") from None
        elif self.kind == "float":
            cleaned = text.replace(",", "").replace("_", "")
            try:
                value = float(cleaned)
            except ValueError:
                raise ValueError(f"{text!r} is not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"{text!r} is not a number")
        else:
            return text
        self.check(value)
        return value

    def check(self, value: float) -> None:
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"must be at least {number(self.minimum)}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"must be at most {number(self.maximum)}")
        if self.exclusive_minimum is not None and value <= self.exclusive_minimum:
            raise ValueError(f"must be more than {number(self.exclusive_minimum)}")
        if self.exclusive_maximum is not None and value >= self.exclusive_maximum:
            raise ValueError(f"must be less than {number(self.exclusive_maximum)}")


def number(value: float | None) -> str:
    if value is None:
        return ""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:g}"


def _resolve(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The property with its $ref followed and an Optional's null branch removed; and
    whether it may be None."""
    merged = dict(prop)
    optional = False
    variants = merged.pop("anyOf", None)
    if isinstance(variants, list):
        kept = [v for v in variants if not (isinstance(v, Mapping) and v.get("type") == "null")]
        optional = len(kept) < len(variants)
        if len(kept) == 1 and isinstance(kept[0], Mapping):
            merged = {**kept[0], **merged}
    ref = merged.pop("$ref", None)
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = defs.get(ref.removeprefix("#/$defs/"), {})
        if isinstance(target, Mapping):
            merged = {**target, **merged}
    return merged, optional


def _bound(prop: Mapping[str, Any], key: str) -> float | None:
    value = prop.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def fields_from_schema(schema: Mapping[str, Any]) -> list[ParamField]:
    """One field per property of a Params model's JSON schema, in its order."""
    properties = schema.get("properties", {})
    defs = schema.get("$defs", {})
    fields: list[ParamField] = []
    if not isinstance(properties, Mapping):
        return fields
    for name, raw in properties.items():
        if not isinstance(raw, Mapping):
            continue
        prop, optional = _resolve(raw, defs if isinstance(defs, Mapping) else {})
        kind: Kind
        choices: tuple[Any, ...] = ()
        if "enum" in prop and isinstance(prop["enum"], list):
            kind, choices = "choice", tuple(prop["enum"])
        elif "const" in prop:
            kind, choices = "choice", (prop["const"],)
        else:
            kind = TYPE_KINDS.get(str(prop.get("type")), "text")
        fields.append(ParamField(
            name=str(name),
            kind=kind,
            description=str(prop.get("description", "")),
            default=prop.get("default"),
            minimum=_bound(prop, "minimum"),
            maximum=_bound(prop, "maximum"),
            exclusive_minimum=_bound(prop, "exclusiveMinimum"),
            exclusive_maximum=_bound(prop, "exclusiveMaximum"),
            choices=choices,
            optional=optional,
        ))
    return fields


def split_refusal(message: str, names: set[str]) -> dict[str, list[str]]:
    """The engine's "field: problem; field: problem" as problems per field; a part that
    names no field (a rule between fields) goes under MODEL_ERROR."""
    problems: dict[str, list[str]] = {}
    for part in (p.strip() for p in message.split("; ")):
        if not part:
            continue
        where, colon, problem = part.partition(": ")
        field = where if colon and where in names else MODEL_ERROR
        text = problem if field else (problem if colon and where == "parameters" else part)
        text = text.removeprefix("Value error, ")
        problems.setdefault(field, []).append(text)
    return problems
