"""In-memory secondary indexes: a hash of value -> keys, with a sorted view for ranges.

Indexes are derived data: rebuilt from the records on load, never stored, never trusted over
the records (every candidate they return is checked against the full predicate).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

__all__ = ("FieldIndex",)


class FieldIndex:
    """Keys by value of one field. ``None`` values are kept apart and never range-matched."""

    def __init__(self, field: str, *, unique: bool = False) -> None:
        self.field = field
        self.unique = unique
        self._keys: dict[Any, set[Any]] = {}
        self._sorted: list[Any] | None = []

    def add(self, value: Any, key: Any) -> None:
        bucket = self._keys.get(value)
        if bucket is None:
            self._keys[value] = {key}
            if self._sorted is not None and value is not None:
                # Keep the sorted view while it is cheap; rebuild lazily once it is not.
                if len(self._sorted) < 4096:
                    try:
                        bisect.insort(self._sorted, value)
                    except TypeError:
                        self._sorted = None
                else:
                    self._sorted = None
        else:
            bucket.add(key)

    def remove(self, value: Any, key: Any) -> None:
        bucket = self._keys.get(value)
        if bucket is None:
            return
        bucket.discard(key)
        if not bucket:
            del self._keys[value]
            if self._sorted is not None and value is not None:
                position = bisect.bisect_left(self._sorted, value)
                if position < len(self._sorted) and self._sorted[position] == value:
                    del self._sorted[position]

    def holder(self, value: Any, besides: Any = None) -> Any | None:
        """For a unique index: a key other than ``besides`` holding ``value``, if any.

        None when ``besides`` holds the value itself: a record keeps a value it has, even
        where two processes raced onto one value and it has several holders.
        """
        bucket = self._keys.get(value, set())
        if besides in bucket:
            return None
        return next(iter(bucket), None)

    def repeated(self) -> list[tuple[Any, set[Any]]]:
        """Values (other than None) held by more than one key, with their keys."""
        return [(v, keys) for v, keys in self._keys.items() if v is not None and len(keys) > 1]

    def sizes(self) -> dict[Any, int]:
        """How many keys hold each value (None included)."""
        return {value: len(keys) for value, keys in self._keys.items()}

    def equal(self, value: Any) -> set[Any]:
        return self._keys.get(value, set())

    def any_of(self, values: Iterable[Any]) -> set[Any]:
        found: set[Any] = set()
        for value in values:
            found |= self._keys.get(value, set())
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
        for selected_value in values[start:end]:
            keys |= self._keys[selected_value]
        return keys

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._keys.values())
