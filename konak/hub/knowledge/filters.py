"""The metadata filter: JSON in, a small validated AST out, compiled by each backend.

``{"field": value}`` is equality; ``{"field": {"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte": v}}``
and ``{"field": {"$in": [v, ...]}}`` the rest; several fields (and several operators on one
field) are ANDed. A list-valued metadata field matches when any element does; ``$ne`` also
matches passages without the field. Values of different JSON types never compare equal or
ordered (``true`` is not ``1``); ranges take numbers or strings (code point order).
Everything else is :class:`InvalidFilter` with a message naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from konak.hub.knowledge.types import InvalidFilter, JsonScalar, Metadata

Op = Literal["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in"]
RANGES: Final = ("$gt", "$gte", "$lt", "$lte")
OPS: Final = ("$eq", "$ne", "$in", *RANGES)
MAX_CONDITIONS: Final = 32
MAX_IN_VALUES: Final = 256
MAX_KEY_CHARS: Final = 100
MAX_STRING_CHARS: Final = 1000
INT_BOUND: Final = 1 << 63  # SQLite's integers; larger numbers are refused
Kind = Literal["b", "n", "s", "z"]  # bool, number, string, null


@dataclass(frozen=True, slots=True)
class Condition:
    """One test of one field; ``values`` has one value except for ``$in``."""

    field: str
    op: Op
    values: tuple[JsonScalar, ...]


@dataclass(frozen=True, slots=True)
class Filter:
    """Conditions that must all hold."""

    conditions: tuple[Condition, ...]


def kind(value: JsonScalar) -> Kind:
    """The JSON type of a scalar, as filters compare them."""
    if value is None:
        return "z"
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int | float):
        return "n"
    return "s"


def check_key(key: object, what: str) -> str:
    """A metadata key (or filter field): a non-empty string not starting with '$'."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"{what}: keys must be non-empty strings")
    if key.startswith("$"):
        raise ValueError(f"{what}: key {key[:40]!r} must not start with '$'")
    if len(key) > MAX_KEY_CHARS:
        raise ValueError(f"{what}: key {key[:40]!r}... is longer than {MAX_KEY_CHARS} characters")
    check_text(key, what)
    return key


def check_text(text: str, what: str) -> None:
    """Text every backend can store: UTF-8 without NUL characters."""
    if "\x00" in text:
        raise ValueError(f"{what}: NUL characters are not allowed")
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what}: not valid Unicode text ({exc.reason})") from exc


def check_scalar(value: object, what: str) -> JsonScalar:
    """A JSON scalar every backend stores and compares the same way."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -INT_BOUND <= value < INT_BOUND:
            raise ValueError(f"{what}: integer out of the 64-bit range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{what}: numbers must be finite")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise ValueError(f"{what}: strings are at most {MAX_STRING_CHARS} characters")
        check_text(value, what)
        return value
    raise ValueError(f"{what}: must be a string, number, boolean or null, not {_json_type(value)}")


def _json_type(value: object) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def parse_filter(raw: object) -> Filter | None:
    """Validate a filter (a JSON object); None for no filter (or an empty object)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidFilter(f"filter: must be a JSON object, not {_json_type(raw)}")
    conditions: list[Condition] = []
    try:
        for field, spec in raw.items():
            check_key(field, "filter")
            where = f"filter.{field}"
            if isinstance(spec, Mapping):
                if not spec:
                    raise ValueError(f"{where}: give at least one operator")
                for op, operand in spec.items():
                    conditions.append(_condition(field, op, operand, where))
            elif isinstance(spec, list | tuple):
                raise ValueError(f'{where}: a list needs an operator: {{"$in": [...]}}')
            else:
                conditions.append(Condition(field, "$eq", (check_scalar(spec, where),)))
    except ValueError as exc:
        raise InvalidFilter(str(exc)) from None
    if len(conditions) > MAX_CONDITIONS:
        raise InvalidFilter(f"filter: at most {MAX_CONDITIONS} conditions")
    return Filter(tuple(conditions)) if conditions else None


def _condition(field: str, op: object, operand: object, where: str) -> Condition:
    if op not in OPS:
        raise ValueError(
            f"{where}: unknown operator {str(op)[:40]!r} (use one of {', '.join(OPS)})"
        )
    where = f"{where}.{op}"
    if op == "$in":
        if not isinstance(operand, list | tuple) or not operand:
            raise ValueError(f"{where}: must be a non-empty list of values")
        if len(operand) > MAX_IN_VALUES:
            raise ValueError(f"{where}: at most {MAX_IN_VALUES} values")
        return Condition(field, "$in", tuple(check_scalar(v, where) for v in operand))
    value = check_scalar(operand, where)
    if op in RANGES and kind(value) not in ("n", "s"):
        raise ValueError(f"{where}: ranges compare numbers or strings, not {_describe(value)}")
    return Condition(field, op, (value,))


def _describe(value: JsonScalar) -> str:
    return "null" if value is None else "a boolean"


def check_metadata(raw: object, what: str = "metadata") -> dict[str, JsonScalar | list[JsonScalar]]:
    """A document's metadata: a flat object of scalars and lists of scalars (ValueError)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{what}: must be a JSON object, not {_json_type(raw)}")
    out: dict[str, JsonScalar | list[JsonScalar]] = {}
    for key, value in raw.items():
        check_key(key, what)
        if isinstance(value, list | tuple):
            out[key] = [check_scalar(v, f"{what}.{key}") for v in value]
        else:
            out[key] = check_scalar(value, f"{what}.{key}")
    return out


def _same(a: JsonScalar, b: JsonScalar) -> bool:
    return kind(a) == kind(b) and a == b


def _ordered(a: JsonScalar, op: str, b: JsonScalar) -> bool:
    if kind(a) != kind(b):
        return False
    x: Any = a
    if op == "$gt":
        return bool(x > b)
    if op == "$gte":
        return bool(x >= b)
    if op == "$lt":
        return bool(x < b)
    return bool(x <= b)


def matches(where: Filter | None, metadata: Metadata) -> bool:
    """Whether metadata passes the filter: the reference both backends are tested against.
    Each condition holds for some value of a list-valued field, except that a field's
    range bounds ($gt, $gte, $lt, $lte) must all hold for one and the same value."""
    if where is None:
        return True
    ranges: dict[str, list[Condition]] = {}
    for cond in where.conditions:
        raw = metadata.get(cond.field, [])
        values: Sequence[JsonScalar] = raw if isinstance(raw, list) else [raw]
        if cond.op == "$eq":
            ok = any(_same(v, cond.values[0]) for v in values)
        elif cond.op == "$ne":
            ok = not any(_same(v, cond.values[0]) for v in values)
        elif cond.op == "$in":
            ok = any(_same(v, w) for v in values for w in cond.values)
        else:
            ranges.setdefault(cond.field, []).append(cond)
            continue
        if not ok:
            return False
    for field, bounds in ranges.items():
        raw = metadata.get(field, [])
        values = raw if isinstance(raw, list) else [raw]
        if not any(all(_ordered(v, b.op, b.values[0]) for b in bounds) for v in values):
            return False
    return True
