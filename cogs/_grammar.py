"""The small languages of the slash commands: field lists, queries, sort orders and JSON objects.

Everything here is pure: text in, plain values out, :class:`~cogs._errors.BadInputError` with a
message that says what to fix. The grammars are documented in docs/commands.md.

* fields: ``name:str, age:int=0, email:str?, tags:json=["a", "b"], note:str="hi, you"``
* query: ``name=rex, legs>=3, email~@example.org`` (conditions joined with AND; ``and`` works too)
* sort: ``legs`` (ascending) or ``-legs`` (descending)
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cogs._errors import BadInputError

FIELD_TYPES = ("str", "int", "float", "bool", "datetime", "date", "json")
QUERY_OPERATORS = ("<=", ">=", "!=", "==", "=", "<", ">", "~")
MAX_JSON_DEPTH = 32

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_FIELD = re.compile(rf"^\s*({_NAME})\s*:\s*([A-Za-z]+)\s*(\?)?\s*(?:=\s*(.*?))?\s*$", re.DOTALL)
_CONDITION = re.compile(rf"^\s*({_NAME})\s*(<=|>=|!=|==|=|<|>|~)\s*(.*?)\s*$", re.DOTALL)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split ``text`` on ``separator`` outside quotes and brackets; empty pieces are dropped."""
    pieces: list[str] = []
    current: list[str] = []
    depth = 0
    quote: str | None = None
    escaped = False
    for character in text:
        if quote is not None:
            current.append(character)
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == quote:
                quote = None
            continue
        if character in "\"'":
            quote = character
        elif character in "[{(":
            depth += 1
        elif character in "]})":
            depth = max(depth - 1, 0)
        elif character == separator and depth == 0:
            pieces.append("".join(current))
            current = []
            continue
        current.append(character)
    if quote is not None:
        raise BadInputError(f"a quote ({quote}) is never closed; close it or remove it")
    pieces.append("".join(current))
    return [piece.strip() for piece in pieces if piece.strip()]


def unquote(text: str) -> str:
    """``"a, b"`` or ``'a, b'`` → ``a, b``; anything else unchanged."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        if text[0] == '"':
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                raise BadInputError(f"{text} is not a valid quoted string: {error.msg}") from None
            return str(value)
        return text[1:-1]
    return text


def coerce_value(type_name: str, text: str, *, what: str) -> Any:
    """Turn command text into a value of a schema type (``what`` names it in errors)."""
    text = unquote(text.strip()) if type_name != "json" else text.strip()
    try:
        if type_name == "str":
            return text
        if type_name == "int":
            return int(text)
        if type_name == "float":
            return float(text)
        if type_name == "bool":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(text)
        if type_name == "datetime":
            return datetime.fromisoformat(text)
        if type_name == "date":
            return date.fromisoformat(text)
        if type_name == "json":
            return parse_json(text, what=what)
    except ValueError:
        examples = {
            "int": "a whole number like 42",
            "float": "a number like 4.2",
            "bool": "true or false",
            "datetime": "an ISO date and time like 2026-11-26T20:45:00+00:00",
            "date": "an ISO date like 2026-11-26",
        }
        raise BadInputError(
            f"{what}: {text!r} is not {examples.get(type_name, type_name)}"
        ) from None
    raise BadInputError(f"{what}: unknown type {type_name!r}; use one of {', '.join(FIELD_TYPES)}")


def parse_fields(text: str) -> dict[str, str | tuple[str, Any]]:
    """Parse a field list into discobase's field specs.

    ``name:str, age:int=0, email:str?`` →
    ``{"name": "str", "age": ("int", 0), "email": ("str?", None)}``.
    A ``?`` makes a field optional: it may be null and defaults to null. ``=value`` gives a
    default (quote strings that contain commas). Raises :class:`BadInputError`.
    """
    specs: dict[str, str | tuple[str, Any]] = {}
    pieces = split_top_level(text)
    if not pieces:
        raise BadInputError("give at least one field, like `name:str, age:int=0`")
    for position, piece in enumerate(pieces, start=1):
        match = _FIELD.match(piece)
        if match is None:
            raise BadInputError(
                f"field {position} ({piece!r}) is not `name:type`, `name:type?` or "
                "`name:type=default`; names start with a letter or _"
            )
        name, type_name, optional, default = match.groups()
        type_name = type_name.lower()
        if type_name not in FIELD_TYPES:
            raise BadInputError(
                f"field {name!r} has unknown type {type_name!r}; use one of {', '.join(FIELD_TYPES)}"
            )
        if name in specs:
            raise BadInputError(f"field {name!r} appears twice")
        spec = type_name + ("?" if optional else "")
        if default is None:
            specs[name] = (spec, None) if optional else spec
        elif default.lower() in ("null", "none"):
            if not optional:
                raise BadInputError(
                    f"field {name!r}: only optional fields (`{name}:{spec}?`) may default to null"
                )
            specs[name] = (spec, None)
        else:
            specs[name] = (spec, coerce_value(type_name, default, what=f"default of {name!r}"))
    return specs


def parse_names(text: str | None, *, what: str, known: list[str]) -> list[str]:
    """Parse a comma-separated list of field names, each of which must be in ``known``."""
    if text is None:
        return []
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in known:
            raise BadInputError(
                f"{what} names {name!r}, which is not a field; fields: {', '.join(known)}"
            )
    if len(set(names)) != len(names):
        raise BadInputError(f"{what} names a field twice")
    return names


@dataclass(frozen=True)
class Condition:
    """One ``field <operator> value`` of a query. ``value`` is None for ``=null``/``!=null``."""

    field: str
    operator: str
    value: str | None

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{'null' if self.value is None else self.value}"


def parse_query(text: str | None) -> list[Condition]:
    """Parse ``name=rex, legs>=3`` into conditions (joined with AND). Raises :class:`BadInputError`."""
    if text is None or not text.strip():
        return []
    conditions: list[Condition] = []
    for piece in split_top_level(_AND.sub(",", text)):
        match = _CONDITION.match(piece)
        if match is None:
            raise BadInputError(
                f"cannot read the condition {piece!r}: write `field=value`, or use one of "
                f"{' '.join(QUERY_OPERATORS)} instead of =; join conditions with commas"
            )
        field, operator, raw = match.groups()
        operator = "=" if operator == "==" else operator
        if not raw:
            raise BadInputError(f"the condition {piece!r} has no value after {operator}")
        is_null = raw.lower() == "null"
        if is_null and operator not in ("=", "!="):
            raise BadInputError(f"{piece!r}: null only works with = and !=")
        conditions.append(Condition(field, operator, None if is_null else unquote(raw)))
    return conditions


def parse_sort(text: str | None, known: list[str]) -> str | None:
    """``legs`` or ``-legs`` (also ``legs desc``) → discobase's ``order_by`` string, or None."""
    if text is None or not text.strip():
        return None
    words = text.split()
    descending = words[0].startswith("-")
    name = words[0].lstrip("-+")
    if len(words) == 2 and words[1].lower() in ("asc", "desc"):
        descending = words[1].lower() == "desc"
    elif len(words) != 1:
        raise BadInputError(f"sort by one field, like `legs` or `-legs`, not {text!r}")
    if name not in known:
        raise BadInputError(
            f"cannot sort by {name!r}: it is not a field; fields: {', '.join(known)}"
        )
    return f"-{name}" if descending else name


def _depth(value: Any) -> int:
    depth = 0
    level = [value]
    while level:
        containers = [item for item in level if isinstance(item, (dict, list))]
        if not containers:
            return depth
        depth += 1
        level = [
            child
            for container in containers
            for child in (container.values() if isinstance(container, dict) else container)
        ]
    return depth


def _reject_constant(name: str) -> Any:
    raise BadInputError(f"{name} is not a JSON number; use null or a finite number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise BadInputError(f"{literal} is not a JSON number a float can hold; use a finite number")
    return value


def parse_json(text: str, *, what: str) -> Any:
    """Parse JSON text; NaN/Infinity and nesting deeper than 32 levels are refused."""
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as error:
        raise BadInputError(
            f"{what} is not valid JSON: {error.msg} at character {error.pos + 1}"
        ) from None
    except RecursionError:
        raise BadInputError(f"{what} is nested too deeply") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise BadInputError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def parse_json_object(text: str, *, what: str = "data") -> dict[str, Any]:
    """Parse a JSON object like ``{"name": "rex", "legs": 4}``. Raises :class:`BadInputError`."""
    value = parse_json(text, what=what)
    if not isinstance(value, dict):
        raise BadInputError(f'{what} must be a JSON object like {{"name": "rex", "legs": 4}}')
    return value
