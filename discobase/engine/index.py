"""In-memory secondary indexes: a hash of value -> keys, with a sorted view for ranges.

Indexes are derived data: rebuilt from the records on load, never stored, never trusted over
the records (every candidate they return is checked against the full predicate).

A value held by one key maps to that key itself, by a few keys to a tuple of them, by many to a
set: most values of an indexed field are distinct or nearly so, and a set costs some 200 bytes
more than a tuple (a tuple is made anew when a key joins or leaves, which a few keys make
cheap; it holds no spare room, as a list would). Keys are ints or strings, never tuples or sets.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection, Iterable
from typing import Any

__all__ = ("FieldIndex",)


#: A value's keys are a tuple up to this many, then a set.
_TUPLE_LIMIT = 16
#: The sorted view of the values is kept up to date while it holds at most this many; past
#: that it is dropped, and made again by the next range read.
_SORTED_LIMIT = 4096
#: Stands for "no bucket" (a key is never this object).
_ABSENT = object()


def _keys_of(bucket: Any) -> Collection[Any]:
    return bucket if type(bucket) in (tuple, set) else (bucket,)


class FieldIndex:
    """Keys by value of one field. ``None`` values are kept apart and never range-matched."""

    def __init__(self, field: str, *, unique: bool = False) -> None:
        self.field = field
        self.unique = unique
        #: Value -> its one key, or a tuple or set of its keys when several hold it.
        self._keys: dict[Any, Any] = {}
        #: A value's bucket as held: None, its one key, or a tuple or set of its keys (the
        #: fastest way to a value's key, for the lookups a read makes most).
        self.bucket: Callable[[Any], Any] = self._keys.get
        self._sorted: list[Any] | None = []

    def clear(self) -> None:
        """Forget every value."""
        self._keys.clear()
        self._sorted = []

    def add(self, value: Any, key: Any) -> None:
        keys = self._keys
        if value not in keys:
            keys[value] = key
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
        bucket = keys[value]
        if type(bucket) is set:
            bucket.add(key)
        elif type(bucket) is tuple:
            if key not in bucket:
                keys[value] = (*bucket, key) if len(bucket) < _TUPLE_LIMIT else {*bucket, key}
        elif bucket != key:
            keys[value] = (bucket, key)

    def add_many(self, values: Iterable[Any], keys: Iterable[Any]) -> None:
        """:meth:`add` of each value with its key, for keys the index does not hold yet, in
        one call: the index ends up as the calls one by one would leave it. A value's keys
        gather in a list while the pairs are read, and become its bucket once at the end
        (adding keys to a tuple one by one makes a tuple per key); new values join the
        sorted view in one sort."""
        held = self._keys
        new_values: list[Any] = []
        gathered: list[Any] = []  # values whose keys are a list for now
        for value, key in zip(values, keys, strict=True):
            bucket = held.get(value, _ABSENT)
            if bucket is _ABSENT:
                held[value] = key
                new_values.append(value)
            elif type(bucket) is list:
                bucket.append(key)
            elif type(bucket) is set:
                bucket.add(key)
            else:
                held[value] = [*bucket, key] if type(bucket) is tuple else [bucket, key]
                gathered.append(value)
        for value in gathered:
            bucket = held[value]
            held[value] = tuple(bucket) if len(bucket) <= _TUPLE_LIMIT else set(bucket)
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
        keys = self._keys
        if value not in keys:
            return
        bucket = keys[value]
        if type(bucket) is set:
            if key in bucket:
                bucket.remove(key)
                if len(bucket) == 1:
                    keys[value] = next(iter(bucket))
            return
        if type(bucket) is tuple:
            if key in bucket:
                rest = tuple(k for k in bucket if k != key)
                keys[value] = rest[0] if len(rest) == 1 else rest
            return
        if bucket == key:
            del keys[value]
            if self._sorted is not None and value is not None:
                position = bisect.bisect_left(self._sorted, value)
                if position < len(self._sorted) and self._sorted[position] == value:
                    del self._sorted[position]

    def holder(self, value: Any, besides: Any = None) -> Any | None:
        """For a unique index: a key other than ``besides`` holding ``value``, if any.

        None when ``besides`` holds the value itself: a record keeps a value it has, even
        where two processes raced onto one value and it has several holders.
        """
        if value not in self._keys:
            return None
        bucket = _keys_of(self._keys[value])
        if besides in bucket:
            return None
        return next(iter(bucket))

    def repeated(self) -> list[tuple[Any, set[Any]]]:
        """Values (other than None) held by more than one key, with their keys."""
        return [
            (v, set(keys))
            for v, keys in self._keys.items()
            if v is not None and type(keys) in (tuple, set)
        ]

    def sizes(self) -> dict[Any, int]:
        """How many keys hold each value (None included)."""
        return {value: len(_keys_of(keys)) for value, keys in self._keys.items()}

    def equal(self, value: Any) -> Collection[Any]:
        bucket = self._keys.get(value)  # keys are never None
        if bucket is None:
            return ()
        return bucket if type(bucket) is tuple or type(bucket) is set else (bucket,)

    def any_of(self, values: Iterable[Any]) -> set[Any]:
        found: set[Any] = set()
        for value in values:
            found.update(self.equal(value))
        return found

    def _sorted_values(self) -> list[Any] | None:
        if self._sorted is None:
            try:
                self._sorted = sorted(v for v in self._keys if v is not None)
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
        held = self._keys
        for selected_value in values[start:end]:
            bucket = held[selected_value]
            if type(bucket) in (tuple, set):
                keys.update(bucket)
            else:
                keys.add(bucket)
        return keys

    def __len__(self) -> int:
        return sum(len(_keys_of(bucket)) for bucket in self._keys.values())
