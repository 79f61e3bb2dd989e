"""A table's state in memory: the fold of its log, with indexes, and query execution.

Every entry is applied with a version, the id of the message that holds it. A key keeps the
version of its last applied entry (tombstones included), and an entry older than that is
ignored, so the state is the last-writer-wins fold in log order whatever order messages
arrive in, and applying a message twice changes nothing. A snapshot entry carries the version
of the log entry it folded, so a reload gives every key the version it had.

Records are held as rows: tuples of the key and then the field values in the table class's
field order (validated when decoded or written). A row takes a fraction of the memory of a
pydantic model; the model layer builds a model from a row when a read returns it.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import logging
import operator
import typing
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any

from ..codec import Entry, Puts, pause_collector
from ..errors import ValidationError
from ..problems import Problem, ProblemKind
from ..query import COMPARISONS, And, Compare, Predicate, Query
from .index import FieldIndex, several

__all__ = ("Change", "TableState")

log = logging.getLogger(__name__)
#: A change of a record: (message id, entry index, key, record before or None, after or None).
Change = tuple[int, int, Any, Any, Any]


Row = tuple[Any, ...]

_entries_of_run = operator.itemgetter(0)
_channel_of_run = operator.itemgetter(2)
_key_of = operator.attrgetter("key")
_decoded_of = operator.attrgetter("decoded")
_group_of = operator.attrgetter("group")
_group_size_of = operator.attrgetter("group_size")
_version_of = operator.attrgetter("version")
_first = operator.itemgetter(0)
#: A part of a group still to complete: an entry, its version, its channel, its index in
#: its message.
Part = tuple[Entry, int, int, int]


class _Parts:
    """The parts of a group still to complete, as they came: runs of consecutive entries of
    one message, each with its version and channel and the index of its first entry (a
    message of parts is kept as it is, without an object for each of them)."""

    __slots__ = ("count", "runs")

    def __init__(self) -> None:
        self.runs: list[tuple[list[Entry], int, int, int]] = []
        self.count = 0

    def add(self, entries: list[Entry], version: int, channel: int, first: int) -> None:
        self.runs.append((entries, version, channel, first))
        self.count += len(entries)

    def __iter__(self) -> Iterator[Part]:
        for entries, version, channel, first in self.runs:
            for index, entry in enumerate(entries, first):
                yield entry, version, channel, index


class TableState:
    """Records (rows) by key, their versions, secondary indexes and pending ``insert_many``
    groups. ``decode(key, data)`` validates a stored record and makes its row;
    ``decode_many(keys, datas)`` does that for many at once, or returns None (one of them
    does not validate, or it cannot): then each is decoded alone. ``fields`` names the row's
    values after the key."""

    def __init__(
        self,
        table: str,
        decode: Callable[[Any, dict[str, Any]], Row],
        *,
        decode_many: Callable[[list[Any], list[dict[str, Any]]], list[Row] | None] | None = None,
        fields: Sequence[str],
        indexes: list[str],
        unique: list[str],
    ) -> None:
        self.table = table
        self._decode = decode
        self._decode_many = decode_many
        #: Field name -> its position in a row (the key is at 0).
        self.positions = {name: position for position, name in enumerate(fields, 1)}
        self.records: dict[Any, Row] = {}
        #: New keys that arrived out of key order (see "key order" below).
        self._tail: list[Any] = []
        self._last_key: Any = None
        self._mixed_keys = False
        #: Keys removed, and re-sorts of ``records``, so far: a cursor that walks ``records``
        #: resumes by them (engine/cursor.py).
        self.removals = 0
        self.reorders = 0
        #: Too many keys arrived out of order to merge them in: the next ordered read sorts.
        self._unsorted = False
        self.versions: dict[Any, int] = {}
        #: Stored records that do not decode under the table's class, as stored: not readable
        #: here, but a snapshot carries them unchanged.
        self.undecodable: dict[Any, dict[str, Any]] = {}
        self.indexes = {
            name: FieldIndex(name, unique=name in unique) for name in {*indexes, *unique}
        }
        self._indexed = [(index, self.positions[name]) for name, index in self.indexes.items()]
        self._groups: dict[str, _Parts] = {}
        #: Completed groups whose entries span channels -> channels still holding tagged parts
        #: (a compaction of one channel must tell the others' readers the group completed).
        self.done_groups: dict[str, set[int]] = {}
        self.problems: list[Problem] = []
        #: What the layers above make once for this memory and keep with it (the model's
        #: short way of finding by an indexed field, by field name).
        self.lookups: dict[str, Any] = {}
        #: equal_reader's functions by field and what they make of a row.
        self._readers: dict[tuple[str, Callable[[Row, int], Any]], Callable[[Any], list[Any]]]
        self._readers = {}
        #: ``newest`` of the :meth:`apply` under way.
        self._newest: int | None = None

    # -- applying the log ---------------------------------------------------------------

    def apply(
        self,
        entries: list[Entry],
        version: int,
        channel_id: int | None = None,
        changes: list[Change] | None = None,
        newest: int | None = None,
    ) -> None:
        """Apply the entries of one message, whose id is ``version`` (an entry that carries
        its own version, from a snapshot, keeps it). With ``changes``, each change of a
        record is appended to it: (message id, index in the message, key, before, after);
        with ``newest`` too, of a group that completes with more puts than that, only the
        changes of its newest parts (by position), at least ``newest`` of them (the caller
        keeps no more: see ``TableCore.changes_kept``)."""
        self._newest = newest
        with pause_collector(len(entries)):
            self._apply(entries, version, channel_id, changes)

    def _apply(
        self,
        entries: list[Entry],
        version: int,
        channel_id: int | None,
        changes: list[Change] | None,
    ) -> None:
        first = entries[0] if entries else None
        if (
            first is not None
            and first.group is not None
            and first.group_size == len(entries)
            and all(entry.group == first.group for entry in entries)
        ):
            # The whole group is in this message, which makes it atomic by itself (the
            # writer stores such a group untagged): nothing to wait for or carry.
            entries = [Entry(e.key, e.record, None, 1, e.decoded, e.version) for e in entries]
        elif first is not None and self._keep_parts(entries, version, channel_id, changes):
            return
        self._decode_in_bulk(entries)
        run = 0  # entries[run:index] are puts decoded, outside any group, not applied yet
        for index, entry in enumerate(entries):
            if entry.decoded is not None and entry.group is None:
                continue
            if run < index:
                self._put_entries(entries, run, index, version, changes)
            run = index + 1
            entry_version = version if entry.version is None else entry.version
            if entry.group is None:
                self._apply_one(entry, entry_version, channel_id, index, changes)
            elif entry.group_size == 0:
                self._complete(entry.group, self._groups.pop(entry.group, _Parts()), changes)
            elif entry.group in self.done_groups:
                self.done_groups[entry.group].add(channel_id or 0)
                self._apply_one(entry, entry_version, channel_id, index, changes)
            else:
                parts = self._groups.get(entry.group)
                if parts is None:
                    parts = self._groups[entry.group] = _Parts()
                parts.add([entry], entry_version, channel_id or 0, index)
                if parts.count >= entry.group_size:
                    self._complete(entry.group, self._groups.pop(entry.group), changes)
        if run < len(entries):
            self._put_entries(entries, run, len(entries), version, changes)

    def apply_puts(self, puts: Puts, version: int, channel_id: int | None = None) -> None:
        """:meth:`apply` of a message read by column (:func:`~discobase.codec.decode_puts`):
        no :class:`Entry` is made for its puts unless one of their records does not decode
        with the others."""
        keys, records, row_versions, rest = puts
        with pause_collector(len(keys)):
            rows = None
            if self._decode_many is not None and len(keys) >= 2:
                rows = self._decode_many(keys, records)
            if rows is not None:
                self._put_rows(rows, row_versions, version, 0, None)
            else:
                rest = [
                    *(
                        Entry(key, record, None, 1, None, row_version)
                        for key, record, row_version in zip(
                            keys, records, row_versions, strict=True
                        )
                    ),
                    *rest,
                ]
            if rest:
                self._apply(rest, version, channel_id, None)

    def _put_entries(
        self, entries: list[Entry], start: int, end: int, version: int, changes: list[Change] | None
    ) -> None:
        run = entries[start:end]
        rows = [entry.decoded for entry in run]
        self._put_rows(rows, [entry.version for entry in run], version, start, changes)

    def _put_rows(
        self,
        rows: list[Row],
        row_versions: list[int | None],
        version: int,
        first: int,
        changes: list[Change] | None,
    ) -> None:
        """Make each row the current record of its key (``row[0]``), unless the key holds a
        later version: decoded puts outside any group, from entry ``first`` of a message;
        a row's version is its own (from a snapshot) or else the message's, ``version``.
        :meth:`_apply_one` and :meth:`put` do the same, one call per entry."""
        records, versions, indexed = self.records, self.versions, self._indexed
        keys = list(map(_first, rows))
        if (
            len(keys) > 1
            and row_versions.count(None) == len(keys)
            and versions.keys().isdisjoint(keys)
            and len(set(keys)) == len(keys)
            and (not self.undecodable or self.undecodable.keys().isdisjoint(keys))
        ):
            # Keys this state never had (concurrent saves of new records, as a rule): at once.
            versions.update(dict.fromkeys(keys, version))
            if changes is not None:
                changes.extend(
                    zip(
                        itertools.repeat(version),
                        itertools.count(first),
                        keys,
                        itertools.repeat(None),
                        rows,
                    )
                )
            self._add_new(keys, rows)
            return
        for index, (row, row_version) in enumerate(zip(rows, row_versions, strict=True), first):
            entry_version = version if row_version is None else row_version
            key = row[0]
            known = versions.get(key, -1)
            # An entry carrying its version again (a snapshot's, a record moved to its
            # shard) changes nothing.
            if known > entry_version or (known == entry_version and row_version):
                continue
            versions[key] = entry_version
            if self.undecodable:
                self.undecodable.pop(key, None)
            old = records.get(key)
            if changes is not None:
                changes.append((entry_version, index, key, old, row))
            if old is None:
                self._note_new_key(key)
            else:
                self._unindex(key, old)
            records[key] = row
            for field_index, position in indexed:
                field_index.add(row[position], row)

    def _keep_parts(
        self,
        entries: list[Entry],
        version: int,
        channel_id: int | None,
        changes: list[Change] | None,
    ) -> bool:
        """Keep a message's entries at once when they are all parts of one group that is
        still to complete, and complete it when they are its last parts: what the loop of
        :meth:`_apply` does with them one by one. Return False, having done nothing, when
        they are not (other entries among them, or more parts than the group has)."""
        first = entries[0]
        group, size = first.group, first.group_size
        if group is None or size == 0 or group in self.done_groups:
            return False
        parts = self._groups.get(group) or _Parts()
        if (
            parts.count + len(entries) > size
            or set(map(_group_of, entries)) != {group}
            or set(map(_group_size_of, entries)) != {size}
            or set(map(_version_of, entries)) != {None}
        ):
            return False
        parts.add(list(entries), version, channel_id or 0, 0)
        if parts.count == size:
            self._groups.pop(group, None)
            self._complete(group, parts, changes)
        else:
            self._groups[group] = parts
        return True

    def _complete(self, group: str, parts: _Parts, changes: list[Change] | None) -> None:
        channels = self.done_groups.setdefault(group, set())
        if self._put_new(parts, changes):
            channels.update(map(_channel_of_run, parts.runs))
            return
        for part, part_version, part_channel, index in parts:
            channels.add(part_channel)
            self._apply_one(part, part_version, part_channel, index, changes)

    def _put_new(self, parts: _Parts, changes: list[Change] | None) -> bool:
        """Apply the parts of a group at once when they are decoded puts of distinct keys
        that this state never had (an ``insert_many``, as a rule): each index takes
        them in one call. Return False, having done nothing, when they are not."""
        runs = parts.runs
        entries = list(itertools.chain.from_iterable(map(_entries_of_run, runs)))
        if not entries:  # a group that completed elsewhere, none of whose parts are here
            return True
        keys = list(map(_key_of, entries))
        rows = list(map(_decoded_of, entries))
        if None in rows or not self.versions.keys().isdisjoint(keys):
            return False
        versions = list(
            itertools.chain.from_iterable(
                itertools.repeat(version, len(run)) for run, version, _, _ in runs
            )
        )
        held = len(self.versions)
        self.versions.update(zip(keys, versions, strict=True))
        if len(self.versions) - held < len(keys):
            # A key repeats (found without a pass of its own): each key was new, so taking
            # them out again leaves the versions as they were.
            collections.deque(map(self.versions.pop, keys, itertools.repeat(None)), maxlen=0)
            return False
        if changes is not None:
            self._new_changes(runs, keys, rows, changes)
        self._add_new(keys, rows)
        return True

    def _new_changes(
        self,
        runs: list[tuple[list[Entry], int, int, int]],
        keys: list[Any],
        rows: list[Row],
        changes: list[Change],
    ) -> None:
        """Append the changes of the records :meth:`_put_new` adds (``keys``, ``rows``: those
        of ``runs`` in turn): every one, or with ``newest`` those of the runs of the newest
        versions that hold at least that many (whole versions: a position is a version and
        an index, so the changes left out are all older than those appended)."""
        ends = list(itertools.accumulate(map(len, map(_entries_of_run, runs))))
        chosen: Iterable[int] = range(len(runs))
        newest = self._newest
        if newest is not None and len(keys) > newest:
            by_age = sorted(chosen, key=lambda at: runs[at][1], reverse=True)
            taken: list[int] = []
            held = 0
            for at in by_age:
                if held >= newest and runs[at][1] < runs[taken[-1]][1]:
                    break
                taken.append(at)
                held += len(runs[at][0])
            chosen = sorted(taken)
        for at in chosen:
            run, version, _, first = runs[at]
            start, end = ends[at] - len(run), ends[at]
            changes.extend(
                zip(
                    itertools.repeat(version, len(run)),
                    range(first, first + len(run)),
                    keys[start:end],
                    itertools.repeat(None),
                    rows[start:end],
                )
            )

    def groups_to_carry(self, channel_id: int) -> list[str]:
        """Completed groups a snapshot of ``channel_id`` must name: they have tagged parts
        in other channels, whose readers must learn that the group completed."""
        return [g for g, channels in self.done_groups.items() if channels - {channel_id}]

    def snapshot_written(self, channel_id: int, carried: list[str]) -> None:
        """A snapshot of the channel folded its tagged parts: forget them."""
        for group in list(self.done_groups):
            self.done_groups[group].discard(channel_id)
            if not self.done_groups[group] and group not in carried:
                del self.done_groups[group]

    def pending_parts(self, channel_id: int, upto: int) -> list[Entry]:
        """The parts of groups not yet complete that ``channel_id`` holds at or below
        ``upto``, each with its version (a snapshot of the channel carries them)."""
        return [
            Entry(entry.key, entry.record, group, entry.group_size, version=version)
            for group, parts in self._groups.items()
            for entry, version, channel, _ in parts
            if channel == channel_id and version <= upto
        ]

    def report_incomplete_groups(self) -> None:
        for group, parts in self._groups.items():
            entry, version, channel, _ = next(iter(parts))
            self.problems.append(
                Problem(
                    self.table,
                    channel,
                    version,
                    ProblemKind.INCOMPLETE_GROUP,
                    f"insert_many group {group}: {parts.count} of {entry.group_size} entries landed; "
                    "the write failed and is not applied",
                )
            )

    def _decode_in_bulk(self, entries: list[Entry]) -> None:
        """Decode the ungrouped records still to decode, validated in one call, into their
        entries' ``decoded`` (or leave them, and each is decoded as it is applied)."""
        if self._decode_many is None:
            return
        wanted = [
            entry
            for entry in entries
            if entry.group is None and entry.record is not None and entry.decoded is None
        ]
        if len(wanted) < 2:
            return
        decoded = self._decode_many(
            [entry.key for entry in wanted],
            [entry.record for entry in wanted],  # type: ignore[misc]
        )
        if decoded is not None:
            for entry, row in zip(wanted, decoded, strict=True):
                entry.decoded = row

    def _apply_one(
        self,
        entry: Entry,
        version: int,
        channel_id: int | None,
        index: int = 0,
        changes: list[Change] | None = None,
    ) -> None:
        key = entry.key
        versions = self.versions
        known = versions.get(key, -1)
        if known > version or (known == version and entry.version):
            return
        versions[key] = version
        if self.undecodable:
            self.undecodable.pop(key, None)
        if entry.record is None:
            if changes is not None and key in self.records:
                changes.append((version, index, key, self.records[key], None))
            self._remove(key)
            return
        try:
            record = entry.decoded if entry.decoded is not None else self._decode(key, entry.record)
        except Exception as error:  # a record that does not fit the class: keep it as stored
            self.problems.append(
                Problem(
                    self.table,
                    channel_id,
                    version,
                    ProblemKind.INVALID_RECORD,
                    f"key {key!r}: {error}",
                )
            )
            log.warning("table %s: record %r does not fit the class: %s", self.table, key, error)
            self._remove(key)
            self.undecodable[key] = entry.record
            return
        if changes is not None:
            changes.append((version, index, key, self.records.get(key), record))
        self.put(key, record)

    def put(self, key: Any, record: Row) -> None:
        """Make ``record`` the current version of ``key`` (indexes follow)."""
        old = self.records.get(key)
        if old is None:
            self._note_new_key(key)
        else:
            self._unindex(key, old)
        self.records[key] = record  # a key that exists keeps its place
        for index, position in self._indexed:
            index.add(record[position], record)

    def defer_indexes(self) -> None:
        """Leave the indexes empty until :meth:`index_records`: a load applies every message
        and then indexes the records left in one pass per index, which is several times
        cheaper than keeping the indexes up to date record by record (and than indexing
        records that a later message replaces). Nothing may read an index meanwhile."""
        for index, _ in self._indexed:
            index.clear()
        self._indexed = []

    def index_records(self) -> None:
        """Index every record, after :meth:`defer_indexes` (else nothing to do)."""
        if self._indexed or not self.indexes:
            return
        self._indexed = [(index, self.positions[name]) for name, index in self.indexes.items()]
        rows = list(self.records.values())
        for index, position in self._indexed:
            index.add_many([row[position] for row in rows], rows)

    def _remove(self, key: Any) -> None:
        old = self.records.pop(key, None)
        if old is not None:
            self.removals += 1
            self._unindex(key, old)

    def _unindex(self, key: Any, record: Row) -> None:
        for index, position in self._indexed:
            index.remove(record[position], key)

    # -- key order ----------------------------------------------------------------------
    # Results without an order come in key order, which every process and every reload
    # agree on. ``records`` is kept in key order, except for the keys in ``_tail``: new keys
    # that arrived out of order. Reads merge a few of those in; past a sixteenth of the
    # records (a load of several shards, whose keys interleave) the tail is dropped and the
    # next ordered read sorts ``records`` for good. ``_tail`` is a list, a fifth of a set's
    # memory: a key removed since stays in it, and one removed and added again may be in it
    # twice; reads skip the keys no longer held.

    def _note_new_key(self, key: Any) -> None:
        if not self.records:
            self._tail.clear()
            self._unsorted = False
            self._last_key = key
            return
        try:
            in_order = key > self._last_key
        except TypeError:  # keys of mixed types: only a full sort orders them
            self._mixed_keys = True
            in_order = False
        if in_order:
            self._last_key = key
        elif not self._unsorted:
            tail = self._tail
            tail.append(key)
            if len(tail) > max(64, len(self.records) // 16):
                tail.clear()
                self._unsorted = True

    def _add_new(self, keys: list[Any], rows: list[Row]) -> None:
        """Add and index the records of new keys (distinct, none of them held) at once: each
        index takes them in one call."""
        self._hold_new(keys, rows)
        for field_index, position in self._indexed:
            field_index.add_many([row[position] for row in rows], rows)

    def _hold_new(self, keys: list[Any], rows: list[Row]) -> None:
        """Add the records of new keys to ``records``, noting their order as
        :meth:`_note_new_key` does one by one (but for when too long a tail is dropped: once
        all are in, by the count of records then)."""
        records = self.records
        if not records:
            self._note_new_key(keys[0])
            records[keys[0]] = rows[0]
            keys, rows = keys[1:], rows[1:]
        if not self._mixed_keys:
            try:
                # Each key after the highest key before it (else it is out of order).
                highest = list(itertools.accumulate(keys, max, initial=self._last_key))
                behind = list(itertools.compress(keys, map(operator.le, keys, highest)))
            except TypeError:
                pass  # keys of mixed types: one by one
            else:
                records.update(zip(keys, rows, strict=True))
                self._last_key = highest[-1]
                if behind and not self._unsorted:
                    tail = self._tail
                    tail.extend(behind)
                    if len(tail) > max(64, len(records) // 16):
                        tail.clear()
                        self._unsorted = True
                return
        for key, row in zip(keys, rows, strict=True):
            self._note_new_key(key)
            records[key] = row

    def tail_keys(self) -> set[Any]:
        """The keys of ``records`` that are out of key order (none right after a re-sort);
        see :meth:`sort_keys` for when that is not known."""
        records = self.records
        return {key for key in self._tail if key in records}

    def sort_keys(self) -> bool:
        """Sort ``records`` in key order if too many keys are out of order to merge them in
        (or keys of mixed types are); return whether it did."""
        if not (self._unsorted or (self._mixed_keys and self._tail)):
            return False
        records = self.records
        # The keys alone are sorted (runs of keys in order, one per shard loaded or written
        # by an insert_many, merge in linear time), then the records taken in that order:
        # no pair is made per record, and the dict keeps its identity (cursors hold it).
        keys = sorted(records, key=_key_rank) if self._mixed_keys else sorted(records)
        ordered = {key: records[key] for key in keys}
        records.clear()
        records.update(ordered)
        self.reorders += 1
        self._tail.clear()
        self._unsorted = False
        self._last_key = keys[-1] if keys else None
        return True

    def ordered_records(self) -> Iterable[Any]:
        """Every record, in key order (ints by value, strings by code point)."""
        self.sort_keys()
        if not self._tail:
            return self.records.values()
        tail_keys = self.tail_keys()
        if not tail_keys:
            self._tail.clear()
            return self.records.values()
        return self._merged(tail_keys)

    def _merged(self, tail_keys: set[Any]) -> Iterator[Any]:
        records = self.records
        tail = sorted(tail_keys)
        position = 0
        for key, record in records.items():
            if key in tail_keys:
                continue
            while position < len(tail) and tail[position] < key:
                yield records[tail[position]]
                position += 1
            yield record
        for key in tail[position:]:
            yield records[key]

    # -- reading ------------------------------------------------------------------------

    def unique_holder(self, field: str, value: Any, besides: Any = None) -> Any | None:
        """A key whose record has ``field == value``, unless ``besides`` holds it too."""
        return self.indexes[field].holder(value, besides)

    def versions_by_key(self) -> list[tuple[Any, int]]:
        """Every key's version (deleted keys included), in key order: a snapshot written in
        this order loads with its keys in order, with nothing left to sort."""
        return sorted(self.versions.items(), key=_item_rank)

    def value(self, record: Row, field: str) -> Any:
        """The value of ``field`` in a row."""
        return record[self.positions[field]]

    def repeated_values(self, field: str) -> list[tuple[Any, set[Any]]]:
        """Values of an indexed field that several records hold, with their keys."""
        return self.indexes[field].repeated()

    def equal_rows(self, field: str, value: Any) -> list[Row]:
        """The rows whose ``field`` (indexed) equals ``value`` (not None), in key order:
        what :meth:`select` returns for that one condition."""
        bucket = self.indexes[field].bucket(value)
        position = self.positions[field]
        if bucket is None:
            return []
        if type(bucket) is set:  # many: their keys
            records = self.records
            rows = [records[key] for key in sorted(bucket, key=_key_rank) if key in records]
        elif several(bucket):
            rows = sorted(bucket, key=_item_rank)
        else:  # the usual lookup: one row, spared a sort
            rows = [bucket]
        return [row for row in rows if (row[position] == value) is True]

    def equal_reader(
        self, field: str, make: Callable[[Row, int], Any]
    ) -> Callable[[Any], list[Any]]:
        """A function of a value (not None) that returns ``make(row, version)`` for each row
        :meth:`equal_rows` returns for it, with the key's version: the usual lookup by an
        indexed field in one call, made once per field and ``make``."""
        reader = self._readers.get((field, make))
        if reader is None:
            reader = self._readers[(field, make)] = self._equal_reader(field, make)
        return reader

    def _equal_reader(
        self, field: str, make: Callable[[Row, int], Any]
    ) -> Callable[[Any], list[Any]]:
        bucket_of = self.indexes[field].bucket
        position = self.positions[field]

        def read(value: Any) -> list[Any]:
            row = bucket_of(value)
            if type(row) is tuple and not isinstance(key := row[0], tuple):  # one row
                if (row[position] == value) is not True:
                    return []
                return [make(row, self.versions.get(key, 0))]
            if row is None:
                return []
            versions = self.versions  # several (or a row of a tuple's subclass)
            return [make(row, versions.get(row[0], 0)) for row in self.equal_rows(field, value)]

        return read

    def _candidates(self, where: Predicate) -> Collection[Any] | None:
        """Keys that may match, from the most selective usable index; None means scan.

        Equality and ``in`` on an indexed field look up their values; range conditions on
        one indexed field merge into one interval of its sorted values.
        """
        parts = where.parts if isinstance(where, And) else (where,)
        best: Collection[Any] | None = None
        bounds: dict[str, list[tuple[Any, bool] | None]] = {}
        for part in parts:
            if not isinstance(part, Compare) or part.field not in self.indexes:
                continue
            index = self.indexes[part.field]
            found: Collection[Any] | None = None
            if part.op == "==":
                found = index.equal(part.value)
            elif part.op == "in":
                found = index.any_of(part.value)
            elif part.op in ("<", "<=", ">", ">=") and part.value is not None:
                interval = bounds.setdefault(part.field, [None, None])
                interval[0 if part.op in (">", ">=") else 1] = (part.value, "=" in part.op)
            if found is not None and (best is None or len(found) < len(best)):
                best = found
        if best is not None and len(best) <= 64:
            return best
        for name, (lower, upper) in bounds.items():
            found = self.indexes[name].interval(lower, upper)
            if found is not None and (best is None or len(found) < len(best)):
                best = found
        return best

    def select(self, query: Query) -> list[Row]:
        """The rows matching ``query``, ordered and paged.

        Without ``order_by`` records come in key order; with it, records that tie come in key
        order. Raises :class:`ValidationError` for ``order_by`` over values that do not sort.
        """
        if query.limit == 0:
            return []
        candidates = self._candidates(query.where)
        where = query.where
        always = isinstance(where, And) and not where.parts
        check = where.compile(self.positions)
        records = self.records
        if candidates is None:
            pool: Iterable[Any] = self.ordered_records()
        else:
            if len(candidates) > 1:
                candidates = sorted(candidates, key=_key_rank)
            pool = [records[k] for k in candidates if k in records]
        if not query.order_by:
            if query.limit is None:
                matched = list(pool) if always else self._matching(pool, where, check)
                return matched[query.offset :]
            result: list[Any] = []
            stop = query.offset + query.limit
            for record in pool:
                if always or check(record):
                    result.append(record)
                    if len(result) >= stop:
                        break
            return result[query.offset :]
        matched = list(pool) if always else self._matching(pool, where, check)
        for order in reversed(query.order_by):
            try:
                matched.sort(key=_sort_key(self.positions[order.field]), reverse=order.descending)
            except TypeError as error:
                raise ValidationError(
                    self.table,
                    f"cannot order by {order.field}: its values do not compare with each other "
                    f"({error}); order by a field whose values are of one type",
                ) from None
        end = None if query.limit is None else query.offset + query.limit
        return matched[query.offset : end]

    def _matching(
        self, pool: Iterable[Row], where: Predicate, check: Callable[[Row], bool]
    ) -> list[Row]:
        """The rows of ``pool`` for which ``check`` (``where`` compiled) holds.

        A range on one field (``lo <= x < hi``, ``x > v``: the usual scan) is evaluated
        inline, without a call per row, as long as every value compares with the bounds; a
        value that does not (another type) sends the scan the general way, which skips it.
        """
        bounds = _one_field_bounds(where)
        if bounds is None:
            return [row for row in pool if check(row)]
        rows = pool if isinstance(pool, Collection) else list(pool)  # twice if need be
        name, (test1, value1), (test2, value2) = bounds
        position = self.positions[name]
        try:
            return [
                row
                for row in rows
                if (value := row[position]) is not None
                and test1(value, value1)
                and test2(value, value2)
            ]
        except TypeError:
            return [row for row in rows if check(row)]

    def count(self, where: Predicate) -> int:
        if isinstance(where, And) and not where.parts:
            return len(self.records)
        candidates = self._candidates(where)
        check = where.compile(self.positions)
        records = self.records
        keys = records.keys() if candidates is None else candidates
        return sum(1 for key in keys if key in records and check(records[key]))


def _one_field_bounds(
    where: Predicate,
) -> (
    tuple[str, tuple[Callable[[Any, Any], Any], Any], tuple[Callable[[Any, Any], Any], Any]] | None
):
    """``(field, (test, value), (test, value))`` for one or two ordered comparisons on one
    field with values other than None, else None."""
    parts = where.parts if isinstance(where, And) else (where,)
    if not 1 <= len(parts) <= 2:
        return None
    tests = []
    for part in parts:
        if (
            not isinstance(part, Compare)
            or part.op not in ("<", "<=", ">", ">=")
            or part.value is None
            or part.field != getattr(parts[0], "field", None)
        ):
            return None
        tests.append((COMPARISONS[part.op], part.value))
    if len(tests) == 1:
        tests.append(tests[0])
    first = typing.cast(Compare, parts[0])
    return first.field, tests[0], tests[1]


def _key_rank(key: Any) -> tuple[bool, Any]:
    # A table's keys are all ints or all strings; the flag keeps a stray one from raising.
    return (isinstance(key, str), key)


def _item_rank(item: tuple[Any, ...]) -> tuple[bool, Any]:
    """The rank of a (key, value) item or a row by its key."""
    return _key_rank(item[0])


def _sort_key(position: int) -> Callable[[Row], tuple[Any, ...]]:
    def key(record: Row) -> tuple[Any, ...]:
        value = record[position]
        # None sorts first ascending (last descending); it never compares with values.
        # Naive datetimes (no offset) cannot compare with aware ones: they sort before them.
        if value is None:
            return (0, 0)
        if isinstance(value, dt.datetime):
            return (1, 0, value) if value.tzinfo is None else (2, 0, value)
        return (1, 1, value)

    return key
