"""Constraints of a write (primary key and unique fields), checked before anything is sent.

A write in flight holds a reservation on each value it makes unique (its key and its unique
fields' values) until it lands or fails, so two writes of one process cannot both pass the
check for the same value while neither is applied yet.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import ConflictError, RecordNotFoundError, UniqueViolationError
from .core import Claim, Write
from .schema import TableSchema
from .state import TableState

__all__ = ("Constraints", "Held", "Reservation", "Slot", "count_in", "count_out")


class Slot(NamedTuple):
    """A value that one record at most may hold: a record's key (``field`` None) or the
    value of a unique field. (A named tuple: checked and hashed on every write.)"""

    field: str | None
    value: Any


@dataclass(slots=True)
class Reservation:
    """Who holds a slot while writes are in flight: the key of the record and how many
    writes in flight hold it."""

    holder: Any
    count: int = 0


#: What :meth:`Constraints.reserve` holds: unique values' slots, and the keys of puts.
Held = tuple[list[Slot], list[Any]]


class Constraints:
    """Checks writes against the state and the writes in flight, and holds their slots."""

    def __init__(self, schema: TableSchema, state: TableState) -> None:
        self.schema = schema
        self.state = state
        #: Unique values of writes in flight, and who holds them.
        self.reserved: dict[Slot, Reservation] = {}
        #: Keys that writes in flight put, and how many of them (a key's slot, held by itself).
        self.keys: dict[Any, int] = {}
        #: Keys of saves queued and not checked yet (:mod:`.saves`): made before any write
        #: checked now, so an insert of one of them finds it taken.
        self.queued: dict[Any, int] = {}

    def revision(self, key: Any) -> int:
        """The key's revision: the id of the message holding its last write; 0 if no record."""
        return self.state.versions.get(key, 0) if key in self.state.records else 0

    def check(
        self, writes: list[Write], *, insert: bool, must_exist: bool, queued: bool = True
    ) -> None:
        """Raise when a write breaks a constraint (nothing is reserved or sent). ``queued``:
        the keys of saves still queued count (not for a queued save's own check: they were
        made after it)."""
        name, pk = self.schema.name, self.schema.primary_key
        unique, records, keys = self.schema.unique, self.state.records, self.keys
        in_batch: dict[Slot, Any] = {}
        batch_keys: set[Any] = set()
        for write in writes:
            key = write.key
            if write.if_revision is not None:
                current = self.revision(key)
                if current != write.if_revision:
                    raise ConflictError(name, key, write.if_revision, current)
            exists = key in records
            if must_exist and not exists:
                raise RecordNotFoundError(name, key)
            if write.data is None:
                continue
            if insert and (exists or key in keys or (queued and key in self.queued)):
                raise UniqueViolationError(name, pk or "pk", key, key)
            for field_name in unique:
                value = self.state.value(write.record, field_name)
                if value is None:
                    continue
                slot = Slot(field_name, value)
                reservation = self.reserved.get(slot)
                holders = [
                    self.state.unique_holder(field_name, value, key),
                    reservation.holder if reservation is not None else None,
                    in_batch.get(slot),
                ]
                for holder in holders:
                    if holder is not None and holder != key:
                        raise UniqueViolationError(name, field_name, value, holder)
                in_batch[slot] = key
            if insert:
                if key in batch_keys:
                    raise UniqueViolationError(name, pk or "pk", key, key)
                batch_keys.add(key)

    def taken(self, writes: list[Write], *, insert: bool) -> list[Claim]:
        """The values ``writes`` take that their records do not hold yet (and the keys of an
        insert), in JSON form, to claim across processes."""
        claims: list[Claim] = []
        for write in writes:
            if write.is_delete:
                continue
            if insert:
                claims.append(Claim(None, write.key, write.key))
            for field_name in self.schema.unique:
                value = self.state.value(write.record, field_name)
                if value is None or write.key in self.state.indexes[field_name].equal(value):
                    continue
                assert write.data is not None
                claims.append(Claim(field_name, write.data[field_name], write.key))
        return claims

    def reserve(self, writes: list[Write]) -> Held:
        """Hold the slots of ``writes`` until :meth:`release`; return them."""
        slots: list[Slot] = []
        puts = [write for write in writes if write.data is not None]
        for name in self.schema.unique:
            position = self.state.positions[name]
            for write in puts:
                value = write.record[position]
                if value is not None:
                    slot = Slot(name, value)
                    self.reserved.setdefault(slot, Reservation(write.key)).count += 1
                    slots.append(slot)
        held = [write.key for write in puts]
        count_in(self.keys, held)
        return slots, held

    def release(self, held: Held) -> None:
        slots, held_keys = held
        for slot in slots:
            reservation = self.reserved[slot]
            reservation.count -= 1
            if reservation.count <= 0:
                del self.reserved[slot]
        count_out(self.keys, held_keys)


def count_in(counts: dict[Any, int], keys: Iterable[Any]) -> None:
    """Count ``keys`` in (each once more in ``counts``)."""
    keys = list(keys)
    if len(keys) > 1 and counts.keys().isdisjoint(keys):
        fresh = dict.fromkeys(keys, 1)
        if len(fresh) == len(keys):  # new and distinct, as a rule: at once
            counts.update(fresh)
            return
    for key in keys:
        counts[key] = counts.get(key, 0) + 1


def count_out(counts: dict[Any, int], keys: Iterable[Any]) -> None:
    """Count ``keys`` out (each once less in ``counts``; a key at 0 leaves it)."""
    keys = list(keys)
    if len(keys) > 1 and all(map((1).__eq__, map(counts.__getitem__, keys))):
        # Each counted once (so each there once): all leave, at once.
        if len(keys) == len(counts):
            counts.clear()  # (they are all there is)
        else:
            collections.deque(map(counts.__delitem__, keys), maxlen=0)
        return
    for key in keys:
        count = counts[key] - 1
        if count:
            counts[key] = count
        else:
            del counts[key]
