"""Aggregates over a table's records in memory: counts, sums, averages, minima and maxima,
optionally per group of equal field values (``Table.aggregate``).

Records come from :meth:`TableState.select` (which uses indexes for the conditions); a plain
grouped count with no conditions reads the sizes of the group field's index instead of the
records. ``None`` values are left out of sums, averages, minima and maxima (as SQL and MongoDB
do); a group whose values are all ``None`` gets ``None``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..query import And, Query
from .state import TableState

__all__ = ("Aggregation", "aggregate")


@dataclass
class Aggregation:
    """What to compute: fields by statistic (checked by the caller)."""

    group_by: list[str] = field(default_factory=list)
    count: bool = True
    sum: list[str] = field(default_factory=list)
    avg: list[str] = field(default_factory=list)
    min: list[str] = field(default_factory=list)
    max: list[str] = field(default_factory=list)


class _Group:
    __slots__ = ("count", "maxima", "minima", "numbers", "sums")

    def __init__(self, sums: int, extrema_min: int, extrema_max: int) -> None:
        self.count = 0
        self.sums: list[Any] = [0] * sums
        self.numbers = [0] * sums  # values that were not None, per summed field
        self.minima: list[Any] = [None] * extrema_min
        self.maxima: list[Any] = [None] * extrema_max


def aggregate(state: TableState, query: Query, spec: Aggregation) -> list[dict[str, Any]]:
    """One result per group (one in all without ``group_by``), groups in value order."""
    summed = list(dict.fromkeys([*spec.sum, *spec.avg]))
    if _index_count_only(state, query, spec):
        return _from_index(state, spec)
    at = state.positions  # records are rows: a field is read by its position
    get_group = _tuple_getter([at[name] for name in spec.group_by])
    get_summed = [operator.itemgetter(at[name]) for name in summed]
    get_min = [operator.itemgetter(at[name]) for name in spec.min]
    get_max = [operator.itemgetter(at[name]) for name in spec.max]
    groups: dict[tuple[Any, ...], _Group] = {}
    for record in state.select(query):
        values = get_group(record)
        group = groups.get(values)
        if group is None:
            group = groups[values] = _Group(len(summed), len(spec.min), len(spec.max))
        group.count += 1
        for position, get in enumerate(get_summed):
            value = get(record)
            if value is not None:
                group.sums[position] += value
                group.numbers[position] += 1
        for position, get in enumerate(get_min):
            value = get(record)
            if value is not None:
                best = group.minima[position]
                if best is None or value < best:
                    group.minima[position] = value
        for position, get in enumerate(get_max):
            value = get(record)
            if value is not None:
                best = group.maxima[position]
                if best is None or value > best:
                    group.maxima[position] = value
    if not spec.group_by and not groups:
        groups[()] = _Group(len(summed), len(spec.min), len(spec.max))
    results = []
    for values, group in sorted(groups.items(), key=_group_rank):
        result: dict[str, Any] = {"group": dict(zip(spec.group_by, values, strict=True))}
        if spec.count:
            result["count"] = group.count
        sums = dict(zip(summed, zip(group.sums, group.numbers, strict=True), strict=True))
        if spec.sum:
            result["sum"] = {name: sums[name][0] for name in spec.sum}
        if spec.avg:
            result["avg"] = {
                name: sums[name][0] / sums[name][1] if sums[name][1] else None for name in spec.avg
            }
        if spec.min:
            result["min"] = dict(zip(spec.min, group.minima, strict=True))
        if spec.max:
            result["max"] = dict(zip(spec.max, group.maxima, strict=True))
        results.append(result)
    return results


def _index_count_only(state: TableState, query: Query, spec: Aggregation) -> bool:
    """A count per value of one indexed field, of every record: the index holds the answer."""
    return (
        len(spec.group_by) == 1
        and spec.group_by[0] in state.indexes
        and not (spec.sum or spec.avg or spec.min or spec.max)
        and isinstance(query.where, And)
        and not query.where.parts
    )


def _from_index(state: TableState, spec: Aggregation) -> list[dict[str, Any]]:
    [name] = spec.group_by
    sizes = state.indexes[name].sizes()
    results = []
    for (value,), size in sorted((((v,), n) for v, n in sizes.items() if n), key=_group_rank):
        result: dict[str, Any] = {"group": {name: value}}
        if spec.count:
            result["count"] = size
        results.append(result)
    return results


def _tuple_getter(positions: Sequence[int]) -> Callable[[Any], tuple[Any, ...]]:
    if not positions:
        return lambda record: ()
    if len(positions) == 1:
        get = operator.itemgetter(positions[0])
        return lambda record: (get(record),)
    return operator.itemgetter(*positions)


def _group_rank(item: tuple[tuple[Any, ...], Any]) -> tuple[tuple[bool, str, Any], ...]:
    """Groups in value order: None first, then values by type name and value (mixed types in
    one field, such as a json field's, still sort)."""
    return tuple(
        (value is not None, type(value).__name__, value if value is not None else 0)
        for value in item[0]
    )
