"""Queries as plain data: field references, predicates, ordering.

``User.age >= 3`` builds a :class:`Compare`; ``&``, ``|`` and ``~`` combine predicates into
:class:`And`, :class:`Or` and :class:`Not`. Nothing here knows about storage: the engine binds
a predicate to a table's schema (checking field names, coercing values to the field's type)
and evaluates it against records, using indexes where it can.
"""

from __future__ import annotations

import operator
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = (
    "And",
    "Compare",
    "FieldRef",
    "Not",
    "Or",
    "Order",
    "Predicate",
    "Query",
)

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
OPERATORS = (*COMPARISONS, "in", "contains", "startswith")


class Predicate:
    """A condition on one record. Combine with ``&`` (and), ``|`` (or) and ``~`` (not)."""

    def __and__(self, other: Predicate) -> Predicate:
        return And((self, other))

    def __or__(self, other: Predicate) -> Predicate:
        return Or((self, other))

    def __invert__(self) -> Predicate:
        return Not(self)

    def matches(self, record: Any) -> bool:
        """Whether ``record`` (an object with the fields as attributes) satisfies this."""
        return self.compile()(record)

    def compile(self, positions: Mapping[str, int] | None = None) -> Callable[[Any], bool]:
        """A function that tells whether a record satisfies this (fast, for scans).

        With ``positions`` (field name -> index) it reads records that are tuples of values
        (how the engine holds them); without, objects with the fields as attributes."""
        raise NotImplementedError

    def fields(self) -> Iterable[str]:
        """The field names this predicate reads."""
        raise NotImplementedError

    def map_values(self, coerce: Callable[[str, str, Any], Any]) -> Predicate:
        """A copy whose comparison values went through ``coerce(field, op, value)``."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class Compare(Predicate):
    """``field op value``; ``op`` is one of ``== != < <= > >= in contains startswith``."""

    field: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"unknown operator {self.op!r}; use one of {', '.join(OPERATORS)}")

    def compile(self, positions: Mapping[str, int] | None = None) -> Callable[[Any], bool]:
        name, op, expected = self.field, self.op, self.value
        get = _getter(name, positions)
        if op in ("==", "!="):
            wanted = op == "=="
            if expected is None:
                return lambda record: (get(record) is None) is wanted
            return lambda record: (get(record) == expected) is wanted
        if op in COMPARISONS:
            if expected is None:
                return lambda record: False
            test = COMPARISONS[op]

            def ordered(record: Any) -> bool:
                actual = get(record)
                if actual is None:
                    return False
                try:
                    return bool(test(actual, expected))
                except TypeError:
                    return False

            return ordered
        return lambda record: compare(get(record), op, expected)

    def fields(self) -> Iterable[str]:
        return (self.field,)

    def map_values(self, coerce: Callable[[str, str, Any], Any]) -> Predicate:
        return Compare(self.field, self.op, coerce(self.field, self.op, self.value))

    def __repr__(self) -> str:
        return f"({self.field} {self.op} {self.value!r})"


@dataclass(frozen=True, eq=False)
class _Junction(Predicate):
    parts: tuple[Predicate, ...]

    def fields(self) -> Iterable[str]:
        return [name for part in self.parts for name in part.fields()]

    def map_values(self, coerce: Callable[[str, str, Any], Any]) -> Predicate:
        return type(self)(tuple(part.map_values(coerce) for part in self.parts))


def _getter(name: str, positions: Mapping[str, int] | None) -> Callable[[Any], Any]:
    if positions is None:
        return operator.attrgetter(name)
    return operator.itemgetter(positions[name])


def _one_field_range(
    parts: tuple[Predicate, ...], positions: Mapping[str, int] | None
) -> Callable[[Any], bool] | None:
    """``lo <= field < hi`` and the like as one function (the common scan), or None.

    Same result as the parts one by one: None and values that do not compare match nothing.
    """
    if len(parts) != 2 or not all(isinstance(part, Compare) for part in parts):
        return None
    first, second = typing.cast(tuple[Compare, Compare], parts)
    ordered = ("<", "<=", ">", ">=")
    if first.field != second.field or first.op not in ordered or second.op not in ordered:
        return None
    if first.value is None or second.value is None:
        return None
    get = _getter(first.field, positions)
    test1, expected1 = COMPARISONS[first.op], first.value
    test2, expected2 = COMPARISONS[second.op], second.value

    def between(record: Any) -> bool:
        actual = get(record)
        if actual is None:
            return False
        try:
            return bool(test1(actual, expected1)) and bool(test2(actual, expected2))
        except TypeError:
            return False

    return between


class And(_Junction):
    """All of ``parts`` hold (an empty And always holds)."""

    def compile(self, positions: Mapping[str, int] | None = None) -> Callable[[Any], bool]:
        bounded = _one_field_range(self.parts, positions)
        if bounded is not None:
            return bounded
        checks = [part.compile(positions) for part in self.parts]
        if not checks:
            return lambda record: True
        if len(checks) == 1:
            return checks[0]
        if len(checks) == 2:
            first, second = checks
            return lambda record: first(record) and second(record)
        return lambda record: all(check(record) for check in checks)

    def __repr__(self) -> str:
        return " & ".join(map(repr, self.parts)) if self.parts else "(all)"


class Or(_Junction):
    """At least one of ``parts`` holds."""

    def compile(self, positions: Mapping[str, int] | None = None) -> Callable[[Any], bool]:
        checks = [part.compile(positions) for part in self.parts]
        return lambda record: any(check(record) for check in checks)

    def __repr__(self) -> str:
        return "(" + " | ".join(map(repr, self.parts)) + ")"


@dataclass(frozen=True, eq=False)
class Not(Predicate):
    """``part`` does not hold."""

    part: Predicate

    def compile(self, positions: Mapping[str, int] | None = None) -> Callable[[Any], bool]:
        check = self.part.compile(positions)
        return lambda record: not check(record)

    def fields(self) -> Iterable[str]:
        return self.part.fields()

    def map_values(self, coerce: Callable[[str, str, Any], Any]) -> Predicate:
        return Not(self.part.map_values(coerce))

    def __repr__(self) -> str:
        return f"~{self.part!r}"


def compare(actual: Any, op: str, expected: Any) -> bool:
    """Evaluate one comparison. Values that cannot be compared (None, mixed types) do not match."""
    try:
        if op in COMPARISONS:
            if actual is None or expected is None:
                return (
                    COMPARISONS[op](actual is None, expected is None)
                    if op in ("==", "!=")
                    else False
                )
            return bool(COMPARISONS[op](actual, expected))
        if op == "in":
            return actual in expected
        if op == "startswith":
            return isinstance(actual, str) and actual.startswith(expected)
        # contains: substring of a string, member of a list, key of a dict
        return actual is not None and expected in actual
    except TypeError:
        return False


class FieldRef:
    """A reference to a table's field, as ``User.age`` or ``discobase.field("age")``.

    Comparison operators and the methods below build predicates; ``.asc()``/``.desc()``
    (or ``-User.age``) build orderings.
    """

    __slots__ = ("name",)
    __hash__ = None  # type: ignore[assignment]  # == builds a predicate, so no hashing

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, value: object) -> Compare:  # type: ignore[override]
        return Compare(self.name, "==", value)

    def __ne__(self, value: object) -> Compare:  # type: ignore[override]
        return Compare(self.name, "!=", value)

    def __lt__(self, value: Any) -> Compare:
        return Compare(self.name, "<", value)

    def __le__(self, value: Any) -> Compare:
        return Compare(self.name, "<=", value)

    def __gt__(self, value: Any) -> Compare:
        return Compare(self.name, ">", value)

    def __ge__(self, value: Any) -> Compare:
        return Compare(self.name, ">=", value)

    def in_(self, values: Iterable[Any]) -> Compare:
        """The field equals one of ``values``."""
        return Compare(self.name, "in", list(values))

    def contains(self, value: Any) -> Compare:
        """The field (a string, list or dict) contains ``value``."""
        return Compare(self.name, "contains", value)

    def startswith(self, prefix: str) -> Compare:
        """The field (a string) starts with ``prefix``."""
        return Compare(self.name, "startswith", prefix)

    def asc(self) -> Order:
        """Order by this field, smallest first."""
        return Order(self.name, descending=False)

    def desc(self) -> Order:
        """Order by this field, largest first."""
        return Order(self.name, descending=True)

    def __neg__(self) -> Order:
        return self.desc()

    def __repr__(self) -> str:
        return f"FieldRef({self.name!r})"


@dataclass(frozen=True)
class Order:
    """One sort key: a field and a direction. ``"-age"`` parses as ``Order("age", True)``."""

    field: str
    descending: bool = False

    @classmethod
    def parse(cls, spec: str | FieldRef | Order) -> Order:
        """Read an ordering from ``"age"``, ``"-age"``, ``User.age`` or ``User.age.desc()``."""
        if isinstance(spec, Order):
            return spec
        if isinstance(spec, FieldRef):
            return cls(spec.name)
        if not isinstance(spec, str) or not spec.lstrip("+-"):
            raise TypeError(f"cannot order by {spec!r}: give a field name like 'age' or '-age'")
        if spec.startswith("-"):
            return cls(spec[1:], descending=True)
        return cls(spec.lstrip("+"))


@dataclass
class Query:
    """A predicate with ordering and paging: what ``find`` runs."""

    where: Predicate = field(default_factory=lambda: And(()))
    order_by: Sequence[Order] = ()
    limit: int | None = None
    offset: int = 0

    @classmethod
    def build(
        cls,
        expressions: Iterable[Predicate],
        equals: dict[str, Any],
        *,
        order_by: str | FieldRef | Order | Sequence[str | FieldRef | Order] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Query:
        """Combine positional predicates and ``field=value`` keywords with AND."""
        parts: list[Predicate] = []
        for expression in expressions:
            if not isinstance(expression, Predicate):
                raise TypeError(
                    f"{expression!r} is not a query expression; write e.g. User.age >= 3 or age=3"
                )
            parts.append(expression)
        parts.extend(Compare(name, "==", value) for name, value in equals.items())
        if order_by is None:
            orders: tuple[Order, ...] = ()
        elif isinstance(order_by, str | FieldRef | Order):
            orders = (Order.parse(order_by),)
        else:
            orders = tuple(Order.parse(spec) for spec in order_by)
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a whole number >= 0, not {limit!r}")
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a whole number >= 0, not {offset!r}")
        where = parts[0] if len(parts) == 1 else And(tuple(parts))
        return cls(where, orders, limit, offset)
