"""The keys of a table's matching records, a batch at a time, without copying the table.

A :class:`KeyWalk` hands out the keys of the records that match a predicate, in key order (or
in an order given once at the start), a batch at a time. Between batches its reader awaits
and the table may change; the walk resumes after the last key it handed out:

- **A scan** walks ``state.records`` itself. The dict holds its keys in key order, except the
  keys that arrived out of order (``state.tail_keys()``, at most about a sixteenth of them:
  past that, the state sorts the dict), which the walk takes from a sorted list of its own
  and merges in. A new key is appended to the dict, a removed one leaves the others in their
  order, and only the state's re-sort (``state.reorders``) moves keys. So the walk goes on
  with its live iterator while no key was added or removed; after changes it skips again to
  its position less the keys removed since (``state.removals``: the keys it passed can only
  have moved that far back), and after a re-sort, to the first key after the last one it
  handed out. Either way a key at or below the last one handed out is passed over. It holds
  no copy of the table's keys.
- **An index**: an equality or ``in`` condition on an indexed field whose keys number at most
  :data:`INDEX_LIMIT` is read from the index; the walk sorts those keys once.
- **A given order** (``order_by``): the caller passes every matching key in that order,
  sorted once at the start (a reference per match, not the records).

Every key comes out at most once, in increasing key order (or the given order). A record that
exists and matches from the first batch to the last comes out exactly once; one added,
removed or changed meanwhile may come out or not. Each batch is taken in one go, with no
await inside, so the table does not change while it is taken.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

from ..query import And, Compare, Predicate
from .state import Row, TableState

__all__ = ("INDEX_LIMIT", "KeyWalk", "index_keys")

#: A walk reads its keys from an index when an equality or ``in`` condition on an indexed
#: field selects at most this many (sorted once); beyond that it scans in key order.
INDEX_LIMIT = 4096


def _rank(key: Any) -> tuple[bool, Any]:
    # Keys are all ints or all strings; the flag orders a stray key of the other type.
    return (isinstance(key, str), key)


def index_keys(state: TableState, where: Predicate) -> list[Any] | None:
    """The keys an index gives for ``where`` (an equality or ``in`` on an indexed field), in
    key order, when they number at most :data:`INDEX_LIMIT`; else None."""
    parts = where.parts if isinstance(where, And) else (where,)
    best: Any = None
    for part in parts:
        if not isinstance(part, Compare) or part.field not in state.indexes:
            continue
        index = state.indexes[part.field]
        if part.op == "==":
            found: Any = index.equal(part.value)
        elif part.op == "in":
            found = index.any_of(part.value)
        else:
            continue
        if best is None or len(found) < len(best):
            best = found
    if best is None or len(best) > INDEX_LIMIT:
        return None
    return sorted(best, key=_rank)


class KeyWalk:
    """The keys of the records of ``state`` for which ``check`` holds (all: None), a batch
    at a time: in key order, or in the order of ``keys`` when given."""

    def __init__(
        self,
        state: TableState,
        check: Callable[[Row], bool] | None,
        keys: list[Any] | None = None,
    ) -> None:
        self.state = state
        self.check = check
        self._given = keys
        self._given_at = 0
        self._last: tuple[bool, Any] | None = None
        self._done = False
        if keys is not None:
            return
        state.ordered_records()  # sorts the dict when many keys are out of order
        self._records = state.records
        self._tail = sorted(state.tail_keys(), key=_rank)
        self._tail_set = set(self._tail)
        self._tail_at = 0
        self._walk: Iterator[tuple[Any, Row]] = iter(self._records.items())
        self._passed = 0
        self._marks = self._now()

    def moved(self, state: TableState, check: Callable[[Row], bool] | None) -> KeyWalk:
        """The same walk over another state of the table (its database was opened again),
        taking up after the last key it handed out."""
        if self._given is not None:
            walk = KeyWalk(state, check, self._given[self._given_at :])
        else:
            walk = KeyWalk(state, check)
            walk._last = self._last  # the new walk passes over the keys up to it
        walk._done = self._done
        return walk

    def _now(self) -> tuple[int, int, int]:
        state = self.state
        return (len(state.records), state.removals, state.reorders)

    def next(self, count: int) -> list[Any]:
        """The next keys (``count``, or a few more; fewer only at the end)."""
        if self._done:
            return []
        keys = self._from_given(count) if self._given is not None else self._scan(count)
        if len(keys) < count:
            self._done = True
        return keys

    def _from_given(self, count: int) -> list[Any]:
        given, records, check = self._given, self.state.records, self.check
        assert given is not None
        keys: list[Any] = []
        at = self._given_at
        while at < len(given) and len(keys) < count:
            key = given[at]
            at += 1
            row = records.get(key)
            if row is not None and (check is None or check(row)):
                keys.append(key)
        self._given_at = at
        return keys

    def _resume(self) -> None:
        """Take up the walk where it was, after keys were added, removed or moved."""
        state = self.state
        records = state.records
        _, removals, reorders = self._marks
        last = self._last
        if records is not self._records or state.reorders != reorders:
            # Keys moved: the dict is in key order now, but for its new tail.
            self._records = records
            self._tail = [
                k for k in sorted(state.tail_keys(), key=_rank) if last is None or _rank(k) > last
            ]
            self._tail_set = set(self._tail)
            self._tail_at = 0
            start = 0
            if last is not None:
                for key in records:
                    if key not in self._tail_set and _rank(key) > last:
                        break
                    start += 1
        else:
            # Keys were added (at the end) or removed (the ones passed moved back that far).
            start = max(0, self._passed - (state.removals - removals))
        walk = iter(records.items())
        next(itertools.islice(walk, start, start), None)
        self._walk, self._passed, self._marks = walk, start, self._now()

    def _scan(self, count: int) -> list[Any]:
        if self.state.records is not self._records or self._now() != self._marks:
            self._resume()
        check, tail, tail_set = self.check, self._tail, self._tail_set
        last = self._last
        keys: list[Any] = []
        passed = self._passed
        exhausted = True
        for key, row in self._walk:
            passed += 1
            if key in tail_set:
                continue  # merged in from the sorted tail
            rank = _rank(key)
            if last is not None and rank <= last:
                continue  # handed out already, or added after the walk passed its place
            if self._tail_at < len(tail):
                self._last = last
                self._take_tail(keys, rank)
            last = rank
            if check is None or check(row):
                keys.append(key)
                if len(keys) >= count:
                    exhausted = False
                    break
        self._last, self._passed = last, passed
        if exhausted:  # the walk reached the end of the dict: the tail keys after it
            self._take_tail(keys, None, count)
        return keys

    def _take_tail(
        self, keys: list[Any], below: tuple[bool, Any] | None, count: int | None = None
    ) -> None:
        """Hand out the sorted tail's keys after the last key handed out, up to ``below``
        (the end: None), until ``keys`` holds ``count`` (no limit: None)."""
        tail, records, check = self._tail, self._records, self.check
        while self._tail_at < len(tail) and (count is None or len(keys) < count):
            key = tail[self._tail_at]
            rank = _rank(key)
            if below is not None and rank >= below:
                return
            self._tail_at += 1
            if self._last is not None and rank <= self._last:
                continue
            self._last = rank
            row = records.get(key)
            if row is not None and (check is None or check(row)):
                keys.append(key)
