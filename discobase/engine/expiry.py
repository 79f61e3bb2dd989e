"""Expiry of records (``Settings.ttl``): a record is gone once its last write is older than the
table's ttl, timed from that write's message id (the snowflake's millisecond, which is also its
revision) against the process's clock.

Expired records are forgotten from memory before every read, write and snapshot, so no read
returns them and the next snapshot leaves them out (compaction removes them from Discord). Their
key keeps its version, so an older write of the key that arrives late cannot bring one back.
A heap of (version, key), pushed on every version change, finds them without scanning.

The ttl is the catalog's: when another process changes it (an ``alter``), a process already open
expires by the new one from its next read (:func:`follow_ttl`). A record it forgot under a
shorter ttl stays forgotten there until the table is read again (a reopen): memory keeps no
expired record to bring back. Such a process no longer compacts the table until then: a snapshot
of its memory would delete from Discord records that are live under the longer ttl.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .horizon import snowflake_ms
from .state import TableState

__all__ = ("Expiry", "follow_ttl")


class _TrackedVersions(dict[Any, int]):
    """``TableState.versions`` that pushes every new version of a key onto the expiry heap."""

    def __init__(self, heap: list[tuple[int, int, Any]]) -> None:
        super().__init__()
        self.heap = heap
        self.order = itertools.count()  # ties on a version never compare keys

    def __setitem__(self, key: Any, version: int) -> None:
        super().__setitem__(key, version)
        heapq.heappush(self.heap, (version, next(self.order), key))


class Expiry:
    """The records of one table that are past its ttl."""

    def __init__(self, ttl_seconds: float, now: Callable[[], datetime]) -> None:
        self.ttl_ms = int(ttl_seconds * 1000)
        self.now = now
        self._heap: list[tuple[int, int, Any]] = []
        #: Records forgotten so far (a longer ttl would have kept some of them).
        self.forgotten = 0

    def set_ttl(self, ttl_seconds: float) -> None:
        """Expire by ``ttl_seconds`` from the next :meth:`expire` on."""
        self.ttl_ms = int(ttl_seconds * 1000)

    def track(self, state: TableState) -> None:
        """Follow ``state``'s versions: those it holds, and every one set from now on."""
        self._heap.clear()
        tracked = _TrackedVersions(self._heap)
        for key, version in state.versions.items():
            tracked[key] = version
        state.versions = tracked

    def expire(self, state: TableState) -> int:
        """Forget every record of ``state`` whose last write is older than the ttl; return how
        many were forgotten."""
        heap, versions, records = self._heap, state.versions, state.records
        cutoff = int(self.now().timestamp() * 1000) - self.ttl_ms
        forgotten = 0
        while heap and snowflake_ms(heap[0][0]) <= cutoff:
            version, _, key = heapq.heappop(heap)
            if versions.get(key) == version and key in records:
                state._remove(key)
                forgotten += 1
        self.forgotten += forgotten
        if len(heap) > 2 * len(versions) + 1024:  # drop the entries of overwritten versions
            heap[:] = [(v, n, k) for n, (k, v) in enumerate(versions.items()) if k in records]
            heapq.heapify(heap)
        return forgotten

    @staticmethod
    def untrack(state: TableState) -> None:
        """Stop following ``state``'s versions (a table whose ttl was removed)."""
        state.versions = dict(state.versions)


def follow_ttl(
    expiry: Expiry | None, ttl_seconds: float | None, state: TableState, now: Callable[[], datetime]
) -> Expiry | None:
    """The expiry of a table whose ttl is now ``ttl_seconds`` (None: no ttl), given its current
    one: ``expiry`` itself with the new ttl, a new one tracking ``state``, or None."""
    if ttl_seconds is None:
        if expiry is not None:
            expiry.untrack(state)
        return None
    if expiry is None:
        expiry = Expiry(ttl_seconds, now)
        expiry.track(state)
    else:
        expiry.set_ttl(ttl_seconds)
    return expiry
