"""In-memory secondary indexes: a hash of value -> rows, with a sorted view for ranges.

Indexes are derived data: rebuilt from the records on load, never stored. The rows they hold
are the state's current rows (the state replaces a row in its indexes whenever it replaces it
in its records), and every candidate they return is checked against the full predicate.

A value held by one record maps to that record's row itself (a tuple: the key, then the
values), by a few to a tuple of their rows (told apart from a row by its first item: a row's
is its key, an int or a string), by many to a set of their keys. Most values of an indexed
field are distinct or nearly so, so the usual lookup reaches its row in one step, without
going through the key. A set costs some 200 bytes more than a tuple (a tuple is made anew when
a record joins or leaves, which a few make cheap; it holds no spare room, as a list would), a
set of rows could not hold a row with an unhashable value, and plain tuples of plain values
leave the cyclic garbage collector's tracking (so that a full collection passes over them). A
set shrinks to no key, never back to rows. Keys are ints or strings.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable, Collection, Iterable
from typing import Any

__all__ = ("FieldIndex", "several")


#: A value's rows are a tuple up to this many, then a set of their keys.
_TUPLE_LIMIT = 16
#: The sorted view of the values is kept up to date while it holds at most this many; past
#: that it is dropped, and made again by the next range read.
_SORTED_LIMIT = 4096
#: Stands for "no bucket" (a row is never this object).
_ABSENT = object()

_key_of = operator.itemgetter(0)


def several(bucket: Any) -> bool:
    """Whether a bucket (other than a set) is the tuple of the rows of several records rather
    than one record's row (whose first item is its key)."""
    return type(bucket) is tuple and isinstance(bucket[0], tuple)


def _keys_of(bucket: Any) -> Collection[Any]:
    if type(bucket) is set:
        return bucket
    if several(bucket):
        return list(map(_key_of, bucket))
    return (bucket[0],)


def _size(bucket: Any) -> int:
    return len(bucket) if type(bucket) is set or several(bucket) else 1


def _bucket(rows: list[tuple[Any, ...]]) -> Any:
    """The bucket of a value held by these rows (at least one)."""
    if len(rows) == 1:
        return rows[0]
    return tuple(rows) if len(rows) <= _TUPLE_LIMIT else set(map(_key_of, rows))


class FieldIndex:
    """Rows by value of one field. ``None`` values are kept apart and never range-matched."""

    def __init__(self, field: str, *, unique: bool = False) -> None:
        self.field = field
        self.unique = unique
        #: Value -> its one row, the tuple of several's rows, or the set of many's keys.
        self._held: dict[Any, Any] = {}
        #: A value's bucket as held: None, its one row, a tuple of rows (:func:`several`),
        #: or a set of keys (the fastest way to a value's row, for the lookups a read makes
        #: most).
        self.bucket: Callable[[Any], Any] = self._held.get
        self._sorted: list[Any] | None = []

    def clear(self) -> None:
        """Forget every value."""
        self._held.clear()
        self._sorted = []

    def add(self, value: Any, row: tuple[Any, ...]) -> None:
        """Hold ``row`` (its key first) under ``value``, in place of a row of its key held
        there before."""
        held = self._held
        bucket = held.get(value, _ABSENT)
        if bucket is _ABSENT:
            held[value] = row
            if self._sorted is not None and value is not None:
                # Keep the sorted view while it is cheap; rebuild lazily once it is not.
                if len(self._sorted) < _SORTED_LIMIT:
                    try:
                        bisect.insort(self._sorted, value)
                    except TypeError:
                        self._sorted = None
                else:
                    self._sorted = None
            return
        key = row[0]
        if type(bucket) is set:
            bucket.add(key)
        elif several(bucket):
            held[value] = _bucket([*(r for r in bucket if r[0] != key), row])
        else:
            held[value] = row if bucket[0] == key else (bucket, row)

    def add_many(self, values: Iterable[Any], rows: Iterable[tuple[Any, ...]]) -> None:
        """:meth:`add` of each value with its row, for keys the index does not hold yet, in
        one call: the index ends up as the calls one by one would leave it. A value's rows
        gather in a list while the pairs are read, and become its bucket once at the end
        (adding rows to a tuple one by one makes a tuple per row); new values join the
        sorted view in one sort."""
        held = self._held
        new_values: list[Any] = []
        gathered: list[Any] = []  # values whose rows are a list for now
        for value, row in zip(values, rows, strict=True):
            bucket = held.get(value, _ABSENT)
            if bucket is _ABSENT:
                held[value] = row
                new_values.append(value)
                continue
            kind = type(bucket)
            if kind is list:
                bucket.append(row)
            elif kind is set:
                bucket.add(row[0])
            else:
                held[value] = [*bucket, row] if several(bucket) else [bucket, row]
                gathered.append(value)
        for value in gathered:
            held[value] = _bucket(held[value])
        view = self._sorted
        if view is None or not new_values:
            return
        new_values = [value for value in new_values if value is not None]
        if len(view) + len(new_values) > _SORTED_LIMIT:
            self._sorted = None
            return
        try:
            view.extend(new_values)
            view.sort()
        except TypeError:
            self._sorted = None

    def remove(self, value: Any, key: Any) -> None:
        """Stop holding the row of ``key`` under ``value``."""
        held = self._held
        bucket = held.get(value, _ABSENT)
        if bucket is _ABSENT:
            return
        if type(bucket) is set:
            bucket.discard(key)
            if bucket:
                return
        elif several(bucket):
            rest = [row for row in bucket if row[0] != key]
            if len(rest) < len(bucket):
                held[value] = _bucket(rest)
            return
        elif bucket[0] != key:
            return
        del held[value]
        if self._sorted is not None and value is not None:
            position = bisect.bisect_left(self._sorted, value)
            if position < len(self._sorted) and self._sorted[position] == value:
                del self._sorted[position]

    def holder(self, value: Any, besides: Any = None) -> Any | None:
        """For a unique index: a key other than ``besides`` holding ``value``, if any.

        None when ``besides`` holds the value itself: a record keeps a value it has, even
        where two processes raced onto one value and it has several holders.
        """
        if value not in self._held:
            return None
        keys = _keys_of(self._held[value])
        if besides in keys:
            return None
        return next(iter(keys))

    def repeated(self) -> list[tuple[Any, set[Any]]]:
        """Values (other than None) held by more than one key, with their keys."""
        return [
            (value, set(_keys_of(bucket)))
            for value, bucket in self._held.items()
            if value is not None and _size(bucket) > 1
        ]

    def sizes(self) -> dict[Any, int]:
        """How many keys hold each value (None included)."""
        return {value: _size(bucket) for value, bucket in self._held.items()}

    def equal(self, value: Any) -> Collection[Any]:
        """The keys holding ``value``."""
        bucket = self._held.get(value)  # a bucket is never None
        return () if bucket is None else _keys_of(bucket)

    def any_of(self, values: Iterable[Any]) -> set[Any]:
        found: set[Any] = set()
        for value in values:
            found.update(self.equal(value))
        return found

    def _sorted_values(self) -> list[Any] | None:
        if self._sorted is None:
            try:
                self._sorted = sorted(v for v in self._held if v is not None)
            except TypeError:
                return None
        return self._sorted

    def interval(
        self, lower: tuple[Any, bool] | None, upper: tuple[Any, bool] | None
    ) -> set[Any] | None:
        """Keys whose value lies between ``lower`` and ``upper``, each ``(value, inclusive)``
        or None for unbounded; None when the values do not sort."""
        values = self._sorted_values()
        if values is None:
            return None
        try:
            start, end = 0, len(values)
            if lower is not None:
                find = bisect.bisect_left if lower[1] else bisect.bisect_right
                start = find(values, lower[0])
            if upper is not None:
                find = bisect.bisect_right if upper[1] else bisect.bisect_left
                end = find(values, upper[0])
        except TypeError:
            return None
        keys: set[Any] = set()
        held = self._held
        for selected_value in values[start:end]:
            keys.update(_keys_of(held[selected_value]))
        return keys

    def __len__(self) -> int:
        return sum(map(_size, self._held.values()))
