"""Concurrent saves, written together and each on its own.

A ``save()`` (or ``insert()``) of one record, with no condition and no claim, joins the saves
queued in its shard's writer since that writer last took its queue, in one waiter (a
:class:`~.writer.Waiter`); a write of another kind queued after it starts a new one, so writes
keep the order they were made in. When the writer takes the waiter to send it, the records are
made into writes together (dumped and validated in one call each, the keys still to generate
drawn at once) and encoded together. Each save stays a write of its own:

- it is checked against the constraints (and reserves its values) after the saves before it,
  as if they were written one by one, so one that breaks a constraint fails alone with its
  typed error, and two that take one unique value cannot both pass;
- a record that does not validate or encode fails alone;
- it returns once the message that holds it is acknowledged, with its own revision, and fails
  alone with its message's error (another message of the same waiter may have landed).

A burst of concurrent saves spends its CPU on what each save costs alone (a pydantic call,
an encoding, a reservation, a pass over the change feed), which is why they are gathered.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import operator
import typing
from collections.abc import Callable
from typing import Any

from ..codec import Entry, encode_puts, pause_collector
from ..errors import ValidationError
from .constraints import Held, Slot, count_in, count_out
from .core import Write
from .shard import LogShard
from .writes import WritePath

__all__ = ("MakeWrites", "SaveQueue")

log = logging.getLogger(__name__)

#: Makes the writes of records from their field values as their saves were called, under
#: their keys (the model's part): each record's write, or the error that stops it, in the
#: records' order.
MakeWrites = Callable[[list[Any], list[dict[str, Any]], list[Any]], list[Write | Exception]]


class SaveQueue:
    """Where the saves of one table join their shard's writer."""

    def __init__(self, path: WritePath, expire: Callable[[], None]) -> None:
        self.path = path
        self.expire = expire
        #: The waiter of each shard that saves join, while its writer has not taken it.
        self._open: dict[int, _Saves] = {}
        #: Records queued without a key (by ``id``) -> the waiter that generates it.
        self.unkeyed: dict[int, _Saves] = {}
        #: The waiter that a save of a new record joined last.
        self._newest: _Saves | None = None

    def put(
        self,
        record: Any,
        values: dict[str, Any],
        key: Any,
        make: MakeWrites,
        *,
        insert: bool = False,
    ) -> asyncio.Future[int | None]:
        """Queue the save of ``record``, whose field values are ``values`` (a copy, as the
        save was called), under ``key`` (None: generate one; saves of one record without a
        key take one generated key); ``make`` makes the writes of records like it. The
        future resolves to its revision (None: a later save of its key in the same message
        overtook it) or to its error."""
        path = self.path
        replaced = 0
        if key is not None:
            waiter = self._waiter_on(path.placement.shard_for(key), make)
            count_in(path.constraints.queued, (key,))
            path.begin([key])
            replaced = path.core.state.versions.get(key, 0)
        else:
            # Saves of new records join the waiter new ones joined last while it is open (a
            # record queued twice joins the waiter that generates its key, or its shard).
            joined = self.unkeyed.get(id(record))
            newest = joined if joined is not None else self._newest
            if newest is not None and newest.open:
                waiter = newest
            else:
                shard = joined.shard if joined is not None else self._shard_for_new_key()
                waiter = self._waiter_on(shard, make)
            # The first waiter it joined generates its key (later ones find it in the record).
            self.unkeyed.setdefault(id(record), waiter)
            self._newest = waiter
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        waiter.records.append(record)
        waiter.values.append(values)
        waiter.keys.append(key)
        waiter.inserts.append(insert)
        waiter.replaced.append(replaced)
        waiter.futures.append(future)
        return future

    def _waiter_on(self, shard: LogShard, make: MakeWrites) -> _Saves:
        """The open waiter of ``shard``, or a new one queued in its writer."""
        waiter = self._open.get(shard.index)
        if waiter is None or shard.writer.last is not waiter:
            waiter = self._open[shard.index] = _Saves(self, shard, make)
            shard.writer.queue(waiter)
        return waiter

    def _shard_for_new_key(self) -> LogShard:
        """Where :meth:`~.writes.KeyPlacement.new_key` would place a new key (a shard whose
        message is forming and not blocked behind a send, as one that saves join is)."""
        for waiter in self._open.values():
            if waiter.open:
                return waiter.shard
        return self.path.placement.placement()

    def taken(self, waiter: _Saves) -> None:
        """The writer took ``waiter``: saves join a new one."""
        if self._open.get(waiter.shard.index) is waiter:
            del self._open[waiter.shard.index]


class _Saves:
    """Saves in one shard's writer: each line a write of its own, told how its message went
    (a :class:`~.writer.Waiter`)."""

    def __init__(self, queue: SaveQueue, shard: LogShard, make: MakeWrites) -> None:
        self.queue = queue
        self.shard = shard
        self.make = make
        #: As queued: the records, their field values as their saves were called, their keys
        #: (None: to generate), whether each is an insert.
        self.records: list[Any] = []
        self.values: list[dict[str, Any]] = []
        self.keys: list[Any] = []
        self.inserts: list[bool] = []
        #: Each save's future, and the version of its key it replaces (as applied when it
        #: was queued); after :meth:`prepare`, those of the saves in :attr:`texts`.
        self.futures: list[asyncio.Future[int | None]] = []
        self.replaced: list[int] = []
        #: After :meth:`prepare`: the keys of the saves that are sent, their records' JSON
        #: forms and rows, their lines, and the unique values each reserved (None: none to
        #: reserve). Their entries are made once a message holding them is acknowledged:
        #: objects the garbage collector tracks, kept no longer than they are needed.
        self.sent: list[Any] = []
        self.datas: list[dict[str, Any]] = []
        self.rows: list[Any] = []
        self.texts: list[str] = []
        #: The entries made last (of the lines from a start), which :meth:`landed` meets.
        self._landing: tuple[int, list[Entry]] = (0, [])
        self.held: list[list[Slot]] | None = None
        self.prepared = False
        self.grouped = False

    @property
    def open(self) -> bool:
        """Saves may join: the waiter is the last in its writer, which is not sending."""
        writer = self.shard.writer
        return writer.last is self and not writer.sending

    def prepare(self) -> None:
        queue = self.queue
        queue.taken(self)
        self.prepared = True
        records, values, futures = self.records, self.values, self.futures
        self.records, self.values = [], []
        # Checked now: their keys count no longer as queued (each is reserved as it passes).
        count_out(queue.path.constraints.queued, [key for key in self.keys if key is not None])
        try:
            with pause_collector(len(records)):
                queue.expire()  # an expired record holds no key or unique value
                keys = self._keys(records)
                self._made(self.make(records, values, keys), keys, futures)
        except Exception as error:  # a bug: fail the saves (what they hold stays held)
            log.exception("preparing %d saves failed", len(records))
            self.sent, self.texts, self.futures = [], [], futures
            self._fail_all(error)

    def _abandon(self, error: BaseException) -> None:
        """Fail every save as queued (the writer stopped before it took them) and release
        what they hold since."""
        queue = self.queue
        queue.taken(self)
        keyed = [key for key in self.keys if key is not None]
        count_out(queue.path.constraints.queued, keyed)
        queue.path.end(keyed)
        self._fail_all(error)

    def _fail_all(self, error: BaseException) -> None:
        queue = self.queue
        for number in [i for i, waiter in queue.unkeyed.items() if waiter is self]:
            del queue.unkeyed[number]
        for future in self.futures:
            if not future.done():
                future.set_exception(error)

    def _keys(self, records: list[Any]) -> list[Any]:
        """The key of each save: generated here (on this shard) for the records queued
        without one, once for a record queued twice."""
        keys = self.keys
        if None not in keys:
            return keys
        unkeyed = self.queue.unkeyed
        numbers = list(map(id, records))
        mine = list(map(unkeyed.get, numbers)).count(self)
        if mine == len(numbers) == len(set(numbers)) and keys.count(None) == len(keys):
            # Distinct records, each to get its key here (a burst of new records): at once.
            collections.deque(map(unkeyed.__delitem__, numbers), maxlen=0)
            return self.queue.path.placement.new_keys_on(self.shard.index, len(numbers))
        fresh: dict[int, Any] = {}
        for record in records:
            if unkeyed.get(id(record)) is self:
                del unkeyed[id(record)]
                fresh[id(record)] = None
        generated = iter(self.queue.path.placement.new_keys_on(self.shard.index, len(fresh)))
        for number in fresh:
            fresh[number] = next(generated)
        # A record queued without a key in an earlier waiter of this shard took it there
        # (None: the record's own).
        return [
            key if key is not None else fresh.get(id(record))
            for record, key in zip(records, keys, strict=True)
        ]

    def _made(
        self,
        made: list[Write | Exception],
        keys: list[Any],
        futures: list[asyncio.Future[int | None]],
    ) -> None:
        """Keep the saves that can be sent (checked and reserved one after another) and
        fail the others."""
        path = self.queue.path
        constraints = path.constraints
        table = constraints.schema.name
        queued = self.keys  # as queued (None: generated here)
        lines = _encoded(path, made)
        checked = bool(constraints.schema.unique) or any(self.inserts)
        if not checked and self._all_sent(made, lines, keys, futures):
            return
        sent_keys: list[Any] = []
        datas: list[dict[str, Any]] = []
        rows: list[Any] = []
        texts: list[str] = []
        kept: list[asyncio.Future[int | None]] = []
        held: list[list[Slot]] = []
        dropped: list[Any] = []  # keys counted as writes in flight when queued, not sent
        new: list[Any] = []  # keys generated here, of saves sent
        sent: list[int] = []
        for at, (write, line, future) in enumerate(zip(made, lines, futures, strict=True)):
            error: BaseException | None = None
            if isinstance(write, Exception):
                error = write
            elif write.key != keys[at] and (
                queued[at] is not None or path.placement.shard_for(write.key) is not self.shard
            ):
                # Its primary key changed, or another write gave it a key on another shard.
                error = ValidationError(
                    table, "the record's key changed while its save was queued; save it again"
                )
            elif isinstance(line, Exception):
                error = line
            elif future.done():  # its caller was cancelled
                error = asyncio.CancelledError()
            elif checked:
                try:
                    constraints.check(
                        [write], insert=self.inserts[at], must_exist=False, queued=False
                    )
                except Exception as failed:
                    error = failed
                else:
                    held.append(constraints.reserve([write])[0])
            if error is not None:
                if queued[at] is not None:
                    dropped.append(queued[at])
                if not future.done():
                    future.set_exception(error)
                continue
            assert isinstance(write, Write) and isinstance(line, str)
            if queued[at] is None:
                new.append(write.key)
            sent.append(at)
            sent_keys.append(write.key)
            datas.append(typing.cast(dict[str, Any], write.data))
            rows.append(write.record)
            texts.append(line)
            kept.append(future)
        # Saves sent hold their key (in the constraints and as writes in flight) until they
        # end; the others let go of what they held since they were queued.
        if not checked:
            count_in(constraints.keys, sent_keys)
        path.end(dropped)
        path.begin(new)
        self.replaced = (
            [self.replaced[at] for at in sent] if len(sent) < len(made) else self.replaced
        )
        self.sent, self.datas, self.rows = sent_keys, datas, rows
        self.texts, self.futures = texts, kept
        self.held = held if checked else None

    def _all_sent(
        self,
        made: list[Write | Exception],
        lines: list[str | Exception],
        keys: list[Any],
        futures: list[asyncio.Future[int | None]],
    ) -> bool:
        """Keep every save, when each made its write under its key and its line, and none
        needs a check or was cancelled (as a rule; in one pass)."""
        writes = typing.cast(list[Write], made)
        if (
            list(map(type, made)).count(Write) != len(made)
            or list(map(type, lines)).count(str) != len(lines)
            or list(map(_key_of, writes)) != keys
            or any(map(asyncio.Future.done, futures))
        ):
            return False
        self.datas, self.rows = list(map(_data_of, writes)), list(map(_record_of, writes))
        self.texts = typing.cast(list[str], lines)
        self.sent, self.futures, self.held = keys, futures, None
        new = [key for key, queued in zip(keys, self.keys, strict=True) if queued is None]
        count_in(self.queue.path.constraints.keys, keys)
        self.queue.path.begin(new)
        return True

    def entries(self, start: int, end: int) -> list[Entry]:
        entries = list(
            map(
                Entry,
                self.sent[start:end],
                self.datas[start:end],
                itertools.repeat(None),
                itertools.repeat(1),
                self.rows[start:end],
            )
        )
        self._landing = (start, entries)
        return entries

    def waiting(self, start: int, end: int) -> bool:
        return not all(future.done() for future in self.futures[start:end])

    def expect(self) -> None:
        pass

    def landed(self, start: int, end: int, message_id: int) -> None:
        path = self.queue.path
        made_from, entries = self._landing
        # (Made for these lines, as the writer asks before it tells: else none landed here.)
        revisions: list[int | None] = [None] * (end - start)
        if made_from == start:
            revisions = path.revisions_of(entries)
        self._landing = (0, [])
        del entries
        replaced = self.replaced[start:end]
        behind = (
            [
                at
                for at, (revision, version) in enumerate(
                    zip(revisions, replaced, strict=True), start
                )
                if revision is not None and revision <= version
            ]
            if any(replaced)  # (none is behind a version 0: keys new when queued)
            else []
        )
        futures = self.futures[start:end]
        if behind:
            # Below the version it replaced (Discord's workers' clocks differ): sent again,
            # holding its reservations until then.
            path.core.background.spawn(self._resend(behind, revisions, start))
            resend = set(behind)
            self._release([at for at in range(start, end) if at not in resend])
            for at, (future, revision) in enumerate(zip(futures, revisions, strict=True), start):
                if at not in resend and not future.done():
                    future.set_result(revision)
            return
        self._release(range(start, end))
        for future, revision in zip(futures, revisions, strict=True):
            if not future.done():
                future.set_result(revision)

    def failed(self, start: int, end: int, error: BaseException) -> None:
        if not self.prepared:  # the writer stopped before it took this waiter
            self._abandon(error)
            return
        self._release(range(start, end))
        for future in self.futures[start:end]:
            if not future.done():
                future.set_exception(error)

    async def _resend(self, behind: list[int], revisions: list[int | None], start: int) -> None:
        path = self.queue.path
        writes = [Write(self.sent[at], self.rows[at], self.datas[at]) for at in behind]
        landed = [revisions[at - start] for at in behind]
        try:
            await path.resend_behind(writes, [self.replaced[at] for at in behind], landed)
        except BaseException as error:
            for at in behind:
                if not self.futures[at].done():
                    self.futures[at].set_exception(error)
            if not isinstance(error, Exception):
                raise
        else:
            for at, revision in zip(behind, landed, strict=True):
                if not self.futures[at].done():
                    self.futures[at].set_result(revision)
        finally:
            self._release(behind)

    def _release(self, ats: range | list[int]) -> None:
        """The saves at ``ats`` ended: release what they hold."""
        if type(ats) is range:
            keys = self.sent[ats.start : ats.stop]
        else:
            keys = [self.sent[at] for at in ats]
        slots = [slot for at in ats for slot in self.held[at]] if self.held is not None else []
        held: Held = (slots, keys)
        self.queue.path.constraints.release(held)
        self.queue.path.end(keys)


def _encoded(path: WritePath, made: list[Write | Exception]) -> list[str | Exception]:
    """The line of each write's entry, or the error that says why it cannot be stored (an
    error of the write itself stays in its place)."""
    writes = [write for write in made if not isinstance(write, Exception)]
    lines: list[str] = []
    if writes:
        try:
            lines = encode_puts(
                [w.key for w in writes],
                typing.cast(list[dict[str, Any]], [w.data for w in writes]),
                None,
                1,
            )
        except ValueError:  # each alone below, to say which
            lines = []
        if lines and max(map(len, lines)) > path.core.size_limit:
            lines = []
    if len(writes) == len(made) and lines:
        return [*lines]
    each: list[str | Exception] = []
    fresh = iter(lines)
    for write in made:
        if isinstance(write, Exception):
            each.append(write)
        elif lines:
            each.append(next(fresh))
        else:
            try:
                each.append(path.encoded(Entry(write.key, write.data, None, 1, write.record)))
            except Exception as error:
                each.append(error)
    return each


_key_of = operator.attrgetter("key")
_data_of = operator.attrgetter("data")
_record_of = operator.attrgetter("record")
