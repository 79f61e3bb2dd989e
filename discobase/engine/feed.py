"""The change feed of a table: its inserts, updates and deletes in log order, resumable.

Every change is at a :class:`Position`: the id of the log message that holds its entry and
the entry's index in that message (a batch holds many). Positions follow log order: message
id order, which is the order of the fold.

**History.** Each table keeps the changes its state applied from log batches (at load, the log
after the newest snapshot; then every batch applied since), in position order, up to
:data:`FEED_HISTORY` of them. ``floor`` is the position at or below which it holds nothing
(the snapshot's end, or the last change it dropped): a watch cannot resume from before it.

**Settled.** A change is yielded only once every shard of the table is known complete up to
its message (the shard's horizon, :mod:`.horizon`), because message ids are only k-sorted
and gateway events come late and out of order: a change yielded earlier could be followed by
one with a lower id, and a resume from the first would miss it. A watcher waiting on a change
that is not settled yet reads the shards when a read would settle it (``margin`` seconds after
the change was made, on Discord's clock), or sooner when something else read them.

**Backpressure.** Watchers share the history and each holds only its position, so a slow
consumer costs no memory; one that falls more than :data:`FEED_HISTORY` changes behind gets
:class:`~discobase.errors.ChangeFeedExpiredError` and reads the table again.
"""

from __future__ import annotations

import asyncio
import bisect
import operator
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from ..errors import ChangeFeedExpiredError, NotConnectedError
from .core import TableCore
from .horizon import snowflake_ms
from .ingest import Ingest
from .shard import LogShard
from .state import Change as StateChange

__all__ = ("FEED_HISTORY", "Change", "ChangeLog", "Position", "Watch")

#: Changes a table keeps for watchers (a watcher further behind than this expires).
FEED_HISTORY = 10_000
#: Changes added up to this many at once are placed one by one; more are sorted in together.
_FEW = 64
#: An entry index past every entry of a message: ``Position(m, LAST)`` is "after message m".
LAST = 2**31
T = TypeVar("T")


@dataclass(frozen=True, order=True)
class Position:
    """A place in a table's log: a message id and an entry's index in that message.
    ``str()`` gives ``"<message>.<entry>"``, which :meth:`parse` reads back."""

    message: int
    entry: int = 0

    def __str__(self) -> str:
        return f"{self.message}.{self.entry}"

    @classmethod
    def parse(cls, value: object) -> Position:
        """A position from a :class:`Position`, its ``str()``, or a message id (an int:
        after that whole message). Raises ``ValueError`` for anything else."""
        if isinstance(value, Position):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return cls(value, LAST)
        if isinstance(value, str):
            message, dot, entry = value.partition(".")
            if message.isdigit() and dot and entry.isdigit():
                return cls(int(message), int(entry))
        raise ValueError(f"{value!r} is not a feed position (use a change's position)")


@dataclass(frozen=True)
class Change(Generic[T]):
    """One change of a record. ``record`` is the record as written (for a delete, as it was
    when deleted); ``previous`` the record before (None for an insert)."""

    op: Literal["insert", "update", "delete"]
    key: Any
    record: T
    previous: T | None
    position: Position

    @property
    def revision(self) -> int:
        """The record's revision after the change (0 after a delete)."""
        return 0 if self.op == "delete" else self.position.message


class ChangeLog:
    """A table's recent changes, shared by its watchers, and when they are settled."""

    def __init__(self, core: TableCore, ingest: Ingest, capacity: int = FEED_HISTORY) -> None:
        self.core = core
        self.ingest = ingest
        self.capacity = capacity
        #: (message id, entry index, key, record before or None, after or None), in order.
        self.items: list[StateChange] = []
        self.floor = Position(0, -1)
        #: Per shard: the horizon of the last settling read that found nothing newer (the
        #: shard's own horizon moves only with a message: a quiet shard would hold others).
        self._quiet: dict[int, int] = {}
        #: Tasks in :meth:`wait`, which :meth:`_wake` ends early.
        self._sleepers: set[asyncio.Task[Any]] = set()
        #: The table's engine closed (closed, dropped, left out, replaced): watchers move on.
        self.closed = False
        self._lock: asyncio.Lock | None = None
        core.on_changes = self.add
        # More than this many changes at once leave only the newest ``capacity`` (add).
        core.changes_kept = capacity * 5 // 4 + 1
        core.on_snapshot = self.covered_to
        ingest.on_read = self._read

    def covered_to(self, upto: int) -> None:
        """A snapshot folded the log up to ``upto``: nothing before it is in the history."""
        self.floor = max(self.floor, Position(upto, LAST))

    def add(self, changes: list[StateChange]) -> None:
        """Changes the state applied: (message id, entry index, key, before, after)."""
        if not changes:
            return
        items = self.items
        floor = (self.floor.message, self.floor.entry)
        if len(changes) > _FEW:
            self._merge(changes, floor)
            items = self.items
        else:
            for change in changes:
                message, entry = change[0], change[1]
                if message < floor[0] or (message == floor[0] and entry <= floor[1]):
                    continue
                if items:
                    last = items[-1]
                    if message < last[0] or (message == last[0] and entry <= last[1]):
                        self._insert(change)
                        continue
                items.append(change)
        if len(items) > self.capacity * 5 // 4:
            drop = len(items) - self.capacity
            self.floor = Position(items[drop - 1][0], items[drop - 1][1])
            del items[:drop]
        self._wake()

    def _merge(self, changes: list[StateChange], floor: tuple[int, int]) -> None:
        """Many changes at once (a large batch, or the parts of a large group, completed in
        the order their messages were acknowledged): sorted in together, each over an equal
        one, where inserting them one by one would move the list's tail for each."""
        fresh = sorted(changes, key=_position)  # stable: of equal positions, the last added last
        fresh = fresh[bisect.bisect_right(fresh, floor, key=_position) :]
        if not fresh:
            return
        items = self.items
        if items and _position(fresh[0]) <= _position(items[-1]):
            fresh = sorted(items + fresh, key=_position)
            items = []
        # A dict keeps the first place and the last value of each position.
        items.extend(dict(zip(map(_position, fresh), fresh, strict=True)).values())
        self.items = items

    def _insert(self, change: StateChange) -> None:
        """A change that arrived after later ones: into its place (or over an equal one)."""
        items = self.items
        at = bisect.bisect_left(items, change[:2], key=_position)
        if at < len(items) and items[at][:2] == change[:2]:
            items[at] = change
        else:
            items.insert(at, change)

    def close(self) -> None:
        """The engine closed: wake every watcher to find out what became of its table."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._sleepers:
            sleepers, self._sleepers = self._sleepers, set()
            for task in sleepers:
                task.cancel()

    def settled(self) -> int:
        """The message id up to which every shard is known complete."""
        return min(max(s.horizon, self._quiet.get(s.index, 0)) for s in self.core.shards)

    def _read(self, shard: LogShard, started: int, newest: int) -> None:
        """A read of ``shard`` back to its horizon ended (``newest``: 0 if it found nothing
        after the horizon, which is then complete up to the read's start minus the margin)."""
        if newest:
            self._quiet.pop(shard.index, None)
        else:
            self._quiet[shard.index] = self.core.clock.horizon(started, self.core.margin)
        self._wake()

    async def settle(self) -> None:
        """Read every shard back to its horizon, apply what was missed, move the horizons
        (one settling read at a time: watchers that ask meanwhile wait for it)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self.ingest.catch_up()

    def settles_in(self, message: int) -> float:
        """Seconds until a read would settle ``message`` (0: now)."""
        clock = self.core.clock
        now = clock.horizon(clock.read_starts(), self.core.margin)
        if now == 0:
            return self.core.margin
        return max(0.0, (snowflake_ms(message) - snowflake_ms(now)) / 1000)

    async def wait(self, seconds: float) -> None:
        """Until a change is added or the shards were read, or ``seconds`` have passed.

        A plain timer that :meth:`_wake` cancels: a host that tells timers from other waits
        sees one (SimCord counts a watch in a command's task as parked on it, where a wait on
        an event would be work that never settles). A cancellation from elsewhere propagates.
        """
        task = asyncio.current_task()
        assert task is not None
        self._sleepers.add(task)
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            # Ours only if _wake took the task out, and nobody else asked to cancel it too.
            if task in self._sleepers or task.uncancel() > 0:
                raise
        finally:
            self._sleepers.discard(task)


#: A change's position: (message id, entry index).
_position: Callable[[StateChange], tuple[int, int]] = operator.itemgetter(0, 1)


class Watch(AsyncIterator[Change[T]]):
    """An async iterator over a table's settled changes after a position (see the module)."""

    def __init__(
        self,
        log: ChangeLog,
        after: Position,
        copy: Callable[[Any, int], T],
        match: Callable[[T], bool],
        current: Callable[[], ChangeLog] | None = None,
    ) -> None:
        self.log = log
        #: The table's change log now (its engine's; raises when the table is gone): a watch
        #: follows its table to a new engine when its own log closes.
        self._current = current
        #: The position of the last change yielded (or passed over): resume from it.
        self.position = after
        self._copy = copy
        self._match = match

    def __aiter__(self) -> Watch[T]:
        return self

    def check(self) -> None:
        """Raise :class:`ChangeFeedExpiredError` if the changes after the position are gone."""
        if self.position < self.log.floor:
            log = self.log
            raise ChangeFeedExpiredError(log.core.name, str(self.position), str(log.floor))

    async def __anext__(self) -> Change[T]:
        log = self.log
        settling_failed = False
        while True:
            if log.closed:
                log = self._follow()
            self.check()
            settled = log.settled()
            items = log.items
            mark = (self.position.message, self.position.entry)
            at = bisect.bisect_right(items, mark, key=_position)
            while at < len(items) and items[at][0] <= settled:
                message, entry, key, before, after = items[at]
                at += 1
                self.position = Position(message, entry)
                change = self._change(self.position, key, before, after)
                if change is not None:
                    return change
            if at < len(items):
                target = items[at][0]
                delay = log.settles_in(target)
                if delay <= 0 and not settling_failed:
                    await log.settle()
                    # A read that could not settle it (a message of the log gone meanwhile)
                    # is not repeated at once: the next try waits a second.
                    settling_failed = log.settled() < target
                    continue
                settling_failed = False
                await log.wait(min(max(delay, 1.0), log.core.margin))
            else:
                await log.wait(log.core.margin)

    def _follow(self) -> ChangeLog:
        """The log of the table's engine now, once this watch's own closed; raises what the
        table's verbs raise when it is gone, :class:`NotConnectedError` while it closes."""
        log = self._current() if self._current is not None else self.log
        if log.closed:
            raise NotConnectedError(f"table {log.core.name!r} was closed while watched")
        self.log = log
        return log

    def _change(self, position: Position, key: Any, before: Any, after: Any) -> Change[T] | None:
        previous = None if before is None else self._copy(before, 0)
        if after is None:
            if previous is None or not self._match(previous):
                return None
            return Change("delete", key, previous, previous, position)
        record = self._copy(after, position.message)
        if not self._match(record) and (previous is None or not self._match(previous)):
            return None
        return Change("insert" if previous is None else "update", key, record, previous, position)
