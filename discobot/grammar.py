"""The small languages of the slash commands: field lists, queries, sort orders and JSON objects.

Everything here is pure: text in, plain values out, :class:`~discobot.errors.BadInputError` with a
message that says what to fix. The grammars are documented in docs/commands.md.

* fields: ``name:str, age:int=0, email:str?, tags:json=["a", "b"], note:str="hi, you"``
* query: ``name=rex, legs>=3, email~@example.org`` (conditions joined with AND; ``and`` works too)
* sort: ``legs`` (ascending) or ``-legs`` (descending)
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from discobot.errors import BadInputError
from discobot.render import code

FIELD_TYPES = ("str", "int", "float", "bool", "datetime", "date", "json")
QUERY_OPERATORS = ("<=", ">=", "!=", "==", "=", "<", ">", "~")
MAX_JSON_DEPTH = 32
MAX_FIELDS_LENGTH = 4000
MAX_QUERY_LENGTH = 1000

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TYPE = re.compile(r"[A-Za-z]+")
_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})


def split_top_level(text: str, separator: str = ",", *, word: str | None = None) -> list[str]:
    """Split ``text`` on ``separator`` outside quotes and brackets; empty pieces are dropped.

    With ``word`` (like ``and``), that word between blanks separates pieces too (any case).
    One pass over the text: the time grows linearly with its length.
    """
    pieces: list[str] = []
    current: list[str] = []
    depth = 0
    quote: str | None = None
    escaped = False
    index = 0
    length = len(text)
    while index < length:
        character = text[index]
        index += 1
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
        elif word is not None and character.isspace() and depth == 0:
            end = index
            while end < length and text[end].isspace():
                end += 1
            after = end + len(word)
            if text[end:after].lower() == word and after < length and text[after].isspace():
                pieces.append("".join(current))
                current = []
                index = after
                continue
            current.append(text[index - 1 : end])
            index = end
            continue
        current.append(character)
    if quote is not None:
        raise BadInputError(f"a quote ({quote}) is never closed; close it or remove it")
    pieces.append("".join(current))
    return [piece.strip() for piece in pieces if piece.strip()]


def _excerpt(text: str, limit: int = 60) -> str:
    return code(text, limit)


def _check_length(text: str, limit: int, what: str) -> None:
    if len(text) > limit:
        raise BadInputError(
            f"{what} is {len(text):,} characters long; at most {limit:,} are accepted"
        )


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
            f"{what}: {code(text, 60)} is not {examples.get(type_name, type_name)}"
        ) from None
    raise BadInputError(
        f"{what}: unknown type {code(type_name, 60)}; use one of {', '.join(FIELD_TYPES)}"
    )


def parse_fields(text: str) -> dict[str, str | tuple[str, Any]]:
    """Parse a field list into discobase's field specs.

    ``name:str, age:int=0, email:str?`` →
    ``{"name": "str", "age": ("int", 0), "email": ("str?", None)}``.
    A ``?`` makes a field optional: it may be null and defaults to null. ``=value`` gives a
    default (quote strings that contain commas). Raises :class:`BadInputError`.
    """
    _check_length(text, MAX_FIELDS_LENGTH, "the field list")
    specs: dict[str, str | tuple[str, Any]] = {}
    pieces = split_top_level(text)
    if not pieces:
        raise BadInputError("give at least one field, like `name:str, age:int=0`")
    for position, piece in enumerate(pieces, start=1):
        parts = _field_parts(piece)
        if parts is None:
            raise BadInputError(
                f"field {position} ({_excerpt(piece)}) is not `name:type`, `name:type?` or "
                "`name:type=default`; names start with a letter or _"
            )
        name, type_name, optional, default = parts
        type_name = type_name.lower()
        if type_name not in FIELD_TYPES:
            raise BadInputError(
                f"field {code(name, 60)} has unknown type {code(type_name, 60)}; use one of {', '.join(FIELD_TYPES)}"
            )
        if name in specs:
            raise BadInputError(f"field {code(name, 60)} appears twice")
        spec = type_name + ("?" if optional else "")
        if default is None:
            specs[name] = (spec, None) if optional else spec
        elif default.lower() in ("null", "none"):
            if not optional:
                raise BadInputError(
                    f"field {code(name, 60)}: only optional fields (`{name}:{spec}?`) may default to null"
                )
            specs[name] = (spec, None)
        else:
            specs[name] = (
                spec,
                coerce_value(type_name, default, what=f"default of {code(name, 60)}"),
            )
    return specs


def _field_parts(piece: str) -> tuple[str, str, bool, str | None] | None:
    """``name:type?=default`` → (name, type, optional, default text or None); None if malformed."""
    text = piece.strip()
    name = _NAME.match(text)
    if name is None:
        return None
    rest = text[name.end() :].lstrip()
    if not rest.startswith(":"):
        return None
    rest = rest[1:].lstrip()
    type_name = _TYPE.match(rest)
    if type_name is None:
        return None
    rest = rest[type_name.end() :].lstrip()
    optional = rest.startswith("?")
    if optional:
        rest = rest[1:].lstrip()
    if not rest:
        return name.group(), type_name.group(), optional, None
    if not rest.startswith("="):
        return None
    return name.group(), type_name.group(), optional, rest[1:].strip()


def parse_names(text: str | None, *, what: str, known: list[str]) -> list[str]:
    """Parse a comma-separated list of field names, each of which must be in ``known``."""
    if text is None:
        return []
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in known:
            raise BadInputError(
                f"{what} names {code(name, 60)}, which is not a field; fields: {', '.join(code(n) for n in known)}"
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


def _condition_parts(piece: str) -> tuple[str, str, str] | None:
    """``field<op>value`` → (field, operator, value text); None if malformed."""
    text = piece.strip()
    name = _NAME.match(text)
    if name is None:
        return None
    rest = text[name.end() :].lstrip()
    operator = next((op for op in QUERY_OPERATORS if rest.startswith(op)), None)
    if operator is None:
        return None
    return name.group(), operator, rest[len(operator) :].strip()


def parse_query(text: str | None) -> list[Condition]:
    """Parse ``name=rex, legs>=3`` into conditions (joined with AND). Raises :class:`BadInputError`."""
    if text is None or not text.strip():
        return []
    _check_length(text, MAX_QUERY_LENGTH, "the query")
    conditions: list[Condition] = []
    for piece in split_top_level(text, word="and"):
        parts = _condition_parts(piece)
        if parts is None:
            raise BadInputError(
                f"cannot read the condition {_excerpt(piece)}: write `field=value`, or use one of "
                f"{' '.join(QUERY_OPERATORS)} instead of =; join conditions with commas"
            )
        field, operator, raw = parts
        operator = "=" if operator == "==" else operator
        if not raw:
            raise BadInputError(f"the condition {_excerpt(piece)} has no value after {operator}")
        is_null = raw.lower() == "null"
        if is_null and operator not in ("=", "!="):
            raise BadInputError(f"{_excerpt(piece)}: null only works with = and !=")
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
        raise BadInputError(f"sort by one field, like `legs` or `-legs`, not {code(text, 60)}")
    if name not in known:
        raise BadInputError(
            f"cannot sort by {code(name, 60)}: it is not a field; fields: {', '.join(code(n) for n in known)}"
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
    except ValueError:  # an int over Python's limit for numbers written as text
        raise BadInputError(
            f"{what} holds a number over {sys.get_int_max_str_digits():,} digits; "
            "store it as a string"
        ) from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise BadInputError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def parse_json_object(text: str, *, what: str = "`data`") -> dict[str, Any]:
    """Parse a JSON object like ``{"name": "rex", "legs": 4}``. Raises :class:`BadInputError`."""
    value = parse_json(text, what=what)
    if not isinstance(value, dict):
        raise BadInputError(f'{what} must be a JSON object like {{"name": "rex", "legs": 4}}')
    return value
