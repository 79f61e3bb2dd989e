"""Key placement and the write path of one table.

A record's key picks its shard (CRC-32 of the key's JSON, modulo the shard count), so all
writes of one key go through one channel in order. A write is checked against the table's
constraints, encoded, split by shard and handed to the shards' writers; each acknowledged
batch is applied to the state at once.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import operator
import os
import secrets
import time
import typing
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any

from ..codec import Entry, encode_entry, encode_puts, pause_collector
from ..errors import (
    ConflictError,
    DiscordUnavailableError,
    RecordTooLargeError,
    ValidationError,
)
from .constraints import Constraints, count_in, count_out
from .core import TableCore, Write
from .horizon import snowflake_ms
from .shard import LogShard
from .storage import StoredMessage
from .writer import BatchWriter, Line, Submission

if TYPE_CHECKING:
    from .claims import Claims

__all__ = ("KeyPlacement", "WritePath")

#: How many times entries whose ids came out below the versions they replaced are sent again.
RESENDS = 3
#: The longest wait before such a send (the skew between Discord's workers is milliseconds).
RESEND_WAIT = 1.0


class KeyPlacement:
    """Which shard a key belongs to, and new keys placed where they will be sent soonest."""

    def __init__(self, shards: list[LogShard]) -> None:
        self.shards = shards
        #: While the table grows (``Database.reshard``): its shard count before.
        self.moving_from: int | None = None

    def index_in(self, key: object, count: int) -> int:
        """The index of ``key``'s shard in a table of ``count`` shards."""
        return _crc_of_json(key) % count

    def claim_shards(self, slot: object) -> list[LogShard]:
        """Where a claim on ``slot`` goes: its shard, and while the table grows also its
        shard before (a process that has not followed the new layout yet claims there)."""
        shard = self.shard_for(slot)
        if self.moving_from is None:
            return [shard]
        before = self.shards[self.index_in(slot, self.moving_from)]
        return [shard] if before is shard else [shard, before]

    def shard_for(self, key: object) -> LogShard:
        if len(self.shards) == 1:
            return self.shards[0]
        return self.shards[_crc_of_json(key) % len(self.shards)]

    def places(self, keys: list[Any]) -> list[int]:
        """The index of each key's shard (what :meth:`shard_for` says, for many keys)."""
        shards = len(self.shards)
        if shards == 1:
            return [0] * len(keys)
        return [_crc_of_json(key) % shards for key in keys]

    def new_key(self) -> str:
        """A generated key, placed on the shard where it will be sent soonest
        (:meth:`placement`)."""
        return self.new_keys_on(self.placement().index, 1)[0]

    def new_keys_on(self, index: int, count: int) -> list[str]:
        """``count`` distinct generated keys on shard ``index``.

        Keys are milliseconds since the epoch (hex) and 40 bits, chosen to hash to the shard
        (:func:`_keys_on`, else drawn until they do): random but for the ``log2(shards)``
        bits the shard fixes, as many as a key drawn until it lands there has."""
        shards = len(self.shards)
        prefix = _key_prefix()
        head = zlib.crc32(f'"{prefix}'.encode())
        pairs = _last_digits(len(prefix), shards - 1) if shards & (shards - 1) == 0 else None
        keys: list[str] = []
        while len(keys) < count:
            draw = count - len(keys)
            if pairs is not None:
                keys.extend(_keys_on(prefix, head, shards - 1, index, pairs, draw))
            else:
                keys.extend(_keys_by_trial(prefix, head, shards, index, draw))
            if len(keys) > 1:
                keys = list(dict.fromkeys(keys))  # random bits may repeat (very rarely)
        return keys[:count]

    def new_keys(self, count: int) -> list[str]:
        """``count`` distinct generated keys, in increasing order, spread evenly over the
        shards (as many on each as ``count`` writes taking turns from where :meth:`new_key`
        would start place there).

        Their 40 bits after the time are a run of numbers from a random start, less the
        numbers whose key hashes to a shard that has its share: keys one call makes cannot
        repeat, and those of two calls in one millisecond meet only if the runs overlap.
        """
        shards = len(self.shards)
        wanted = [0] * shards
        first = self.placement().index
        for turn in range(min(count, shards)):
            wanted[(first + turn) % shards] = (count - turn + shards - 1) // shards
        prefix = _key_prefix()
        head = zlib.crc32(f'"{prefix}'.encode())
        keys: list[str] = []
        number = secrets.randbelow(2**40 - 4 * count - 2**20)
        while len(keys) < count:
            draw = count - len(keys) + 4 * shards
            tails = [f"{n:010x}" for n in range(number, number + draw)]
            number += draw
            places = [zlib.crc32(f'{tail}"'.encode(), head) % shards for tail in tails]
            for tail, place in zip(tails, places, strict=True):
                if wanted[place]:
                    wanted[place] -= 1
                    keys.append(prefix + tail)
        return keys

    def placement(self) -> LogShard:
        """Where a new key goes: a shard whose next message is forming and not blocked
        behind a send (join that batch), else the idle shard used least recently (so
        awaited writes rotate over the channels and their rate limits), else the one that
        started its send first."""
        shards = self.shards
        if len(shards) == 1:
            return shards[0]
        least: LogShard | None = None  # the idle shard used least recently
        for shard in shards:
            writer = shard.writer
            if writer.sending:
                continue
            if writer.forming:
                return shard
            if least is None or writer.last_used < least.writer.last_used:
                least = shard
        return least or min(shards, key=lambda s: s.writer.last_used)


#: Random bytes of a generated key, and its hex digits (the key's last 10).
_TAIL_BYTES = 5
_TAIL_DIGITS = 2 * _TAIL_BYTES


def _keys_by_trial(prefix: str, head: int, shards: int, target: int, count: int) -> list[str]:
    """Keys after ``prefix`` (whose JSON's CRC-32 so far is ``head``) on shard ``target``:
    of ``count * shards`` random tails, those that land there."""
    step = _TAIL_DIGITS + 1
    # Candidate tails, each followed by the key's closing quote: what the CRC reads.
    quoted = (_random_bytes(_TAIL_BYTES * count * shards).hex('"', _TAIL_BYTES) + '"').encode()
    tails = [quoted[at : at + step] for at in range(0, len(quoted), step)]
    places = map(zlib.crc32, tails, itertools.repeat(head))
    tails = list(itertools.compress(tails, [crc % shards == target for crc in places]))
    return [prefix + tail[:-1].decode() for tail in tails]


def _keys_on(
    prefix: str, head: int, mask: int, target: int, pairs: list[list[str]], count: int
) -> list[str]:
    """``count`` keys after ``prefix`` on shard ``target`` of ``mask + 1`` (a power of two),
    without trials: random tails whose last two digits are chosen to land there.

    For messages of one length CRC-32 is affine over GF(2) (the CRCs of two messages differ
    by the CRC-32 of their difference, less that of zeros), so how the last two digits of a
    tail change its low bits does not depend on the rest of it: ``pairs`` lists them by
    that change (:func:`_last_digits`)."""
    raw = _random_bytes(_TAIL_BYTES * count)
    bodies = raw[: 4 * count].hex(" ", 4).split() if count > 1 else [raw[:4].hex()]
    chosen = [pairs[(zlib.crc32(f'{body}00"'.encode(), head) & mask) ^ target] for body in bodies]
    return [
        f"{prefix}{body}{options[pick % len(options)]}"
        for body, options, pick in zip(bodies, chosen, raw[4 * count :], strict=True)
    ]


@functools.cache
def _last_digits(prefix_length: int, mask: int) -> list[list[str]] | None:
    """The two-digit endings of a generated key's tail, by how they change the low bits
    (``mask``) of its JSON's CRC-32 from the ending ``00``; None if one change has none."""
    zeros = b'"' + b"0" * (prefix_length + _TAIL_DIGITS) + b'"'
    base = zlib.crc32(zeros)
    pairs: list[list[str]] = [[] for _ in range(mask + 1)]
    for number in range(256):
        pair = f"{number:02x}"
        pairs[(zlib.crc32(zeros[:-3] + pair.encode() + b'"') ^ base) & mask].append(pair)
    return pairs if all(pairs) else None


def _crc_of_json(key: object) -> int:
    """The CRC-32 of ``json.dumps(key)`` (a string's JSON made without json.dumps's overhead)."""
    text = encode_basestring_ascii(key) if type(key) is str else json.dumps(key)
    return zlib.crc32(text.encode())


class _Entropy:
    """Random bytes from the OS, read a block at a time: each read costs microseconds (most
    of it per call), and a generated key takes a few bytes."""

    BLOCK = 4096

    def __init__(self) -> None:
        self._block = b""
        self._used = 0

    def take(self, size: int) -> bytes:
        if self._used + size > len(self._block):
            self._block, self._used = os.urandom(max(size, self.BLOCK)), 0
        self._used += size
        return self._block[self._used - size : self._used]

    def forget(self) -> None:
        """Drop the block (a forked process must not draw what its parent draws)."""
        self._block, self._used = b"", 0


_entropy = _Entropy()
os.register_at_fork(after_in_child=_entropy.forget)
_random_bytes = _entropy.take


def _key_prefix() -> str:
    """A generated key's first 11 hex digits: the milliseconds since the Unix epoch."""
    return f"{time.time_ns() // 1_000_000:011x}"


class WritePath:
    """Atomic writes of one table through its shards' writers; ``on_batch`` is told of each
    batch of ours applied (automatic compaction counts them)."""

    def __init__(
        self,
        core: TableCore,
        placement: KeyPlacement,
        constraints: Constraints,
        on_batch: Callable[[LogShard], None],
    ) -> None:
        self.core = core
        self.placement = placement
        self.constraints = constraints
        self._on_batch = on_batch
        #: Keys with a write of this process in flight (how many), and an event set (then
        #: dropped) when one of those writes ends, made when a conditional write waits on them.
        self._writing: dict[Any, int] = {}
        self._write_ended: asyncio.Event | None = None
        #: Claims of unique values across processes (set by the engine).
        self.claims: Claims | None = None

    async def write(
        self, writes: list[Write], *, insert: bool, must_exist: bool, claim: bool = False
    ) -> list[int | None]:
        """Write atomically: every put and delete lands, or (after an error) none is applied.

        Returns each write's revision, or None for one that a later write of the same key
        in the same message overtook (it was never the key's state).

        A write gets a higher revision than the version of its key that this process had
        applied when it wrote. Discord's workers' clocks differ by a few milliseconds, so a
        message can get a lower id than one stored before it, and its entries would lose to
        the versions they replaced: those are sent again once the clock has passed the gap
        (when that never happens, :class:`DiscordUnavailableError`: the write lost to them).
        A conditional write is not sent again; it raises :class:`ConflictError`."""
        if not writes:
            return []
        core = self.core
        conditional = {w.key for w in writes if w.if_revision is not None}
        while conditional & self._writing.keys():
            # Our own writes of these keys land first: the condition is checked after them.
            if self._write_ended is None:
                self._write_ended = asyncio.Event()
            await self._write_ended.wait()
        with pause_collector(len(writes)):
            self.constraints.check(writes, insert=insert, must_exist=must_exist)
        taken = self.constraints.taken(writes, insert=insert) if claim else []
        if taken and self.claims is not None:
            held = self.constraints.reserve(writes)
            try:
                await self.claims.claim(taken)
            finally:
                self.constraints.release(held)
            # What the settling read brought in (another process's record) counts too.
            self.constraints.check(writes, insert=insert, must_exist=must_exist)
        with pause_collector(len(writes)):
            keys = [w.key for w in writes]
            replaced = list(map(core.state.versions.get, keys, itertools.repeat(0)))
            held = self.constraints.reserve(writes)
            self.begin(keys)
        try:
            landed = await self._send(writes)
            await self.resend_behind(writes, replaced, landed)
        finally:
            self.constraints.release(held)
            self.end(keys)
        for write, revision in zip(writes, landed, strict=True) if conditional else ():
            # An id below the revision the write was checked against (snowflakes of two
            # processes are only k-sorted) puts it first in log order, where that revision
            # follows and overwrites it: the condition did not hold where it landed.
            if (
                write.if_revision is not None
                and revision is not None
                and revision < write.if_revision
            ):
                raise ConflictError(
                    core.name, write.key, write.if_revision, self.constraints.revision(write.key)
                )
        return landed

    def begin(self, keys: list[Any]) -> None:
        """Writes of ``keys`` are in flight (conditional writes of them wait)."""
        count_in(self._writing, keys)

    def end(self, keys: list[Any]) -> None:
        """Writes of ``keys`` begun with :meth:`begin` ended (landed or failed)."""
        count_out(self._writing, keys)
        if self._write_ended is not None:
            self._write_ended.set()
            self._write_ended = None

    async def resend_behind(
        self, writes: list[Write], replaced: list[int], landed: list[int | None]
    ) -> None:
        """Send again the writes that landed at or below the version they replaced
        (``replaced``), until they land above it; ``landed`` is updated in place.
        Raises :class:`DiscordUnavailableError` when they never do."""
        lowest = min(filter(None, landed), default=None)
        if lowest is None or lowest > max(replaced, default=0):
            return  # every write landed above what it replaced, or none landed
        for attempt in range(RESENDS + 1):
            behind = [
                i
                for i, (write, revision) in enumerate(zip(writes, landed, strict=True))
                if write.if_revision is None and revision is not None and revision <= replaced[i]
            ]
            if not behind:
                return
            if attempt == RESENDS:
                raise DiscordUnavailableError(
                    "POST /channels/{id}/messages",
                    attempt + 1,
                    TimeoutError("message ids stayed below the version the write replaced"),
                )
            gap = max(snowflake_ms(replaced[i]) - snowflake_ms(landed[i] or 0) for i in behind)
            await _wait(gap + 1, self.core.clock.now)
            again = await self._send([writes[i] for i in behind])
            for i, revision in zip(behind, again, strict=True):
                landed[i] = revision

    def revisions_of(self, entries: list[Entry]) -> list[int | None]:
        """Where entries of ours landed (None: a later entry of its key in the same message
        overtook it, or it has not landed)."""
        return list(map(_landed_of, entries))

    async def _send(self, writes: list[Write]) -> list[int | None]:
        """Send one atomic write through the shards' writers; return where each write
        landed (None: a later write of its key in the same message overtook it)."""
        core = self.core
        with pause_collector(len(writes)):
            made, by_shard = self._lines(writes)
        try:
            futures = [
                _submit(core.shards[index].writer, entries, texts)
                for index, (entries, texts) in by_shard.items()
            ]
            if len(futures) == 1:  # the common case, without a gather
                try:
                    results: list[object] = [await futures[0]]
                except Exception as error:
                    results = [error]
            else:
                results = await asyncio.gather(*futures, return_exceptions=True)
        finally:
            landed = self.revisions_of(made)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            # The parts that landed stay pending (and in snapshots): if Discord stored the
            # failed part after all, the group completes wherever both are read.
            raise errors[0]
        return landed

    async def move(self, lines: dict[LogShard, list[Line]]) -> None:
        """Send entries that carry their own version (records moved to the shard their key
        belongs to since the table grew: :mod:`.reshard`). They change no record: a reader
        applies them at that version, so any later write of the key still wins."""
        results = await asyncio.gather(
            *(shard.writer.submit(part) for shard, part in lines.items()), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    def _lines(
        self, writes: list[Write]
    ) -> tuple[list[Entry], dict[int, tuple[list[Entry], list[str]]]]:
        """The entries of ``writes``, and by shard index (in the order the shards first
        appear) their entries and lines. Raises :class:`ValidationError` or
        :class:`RecordTooLargeError` for the first write that cannot be stored."""
        if len(writes) == 1:
            [write] = writes
            entry = Entry(write.key, write.data, None, 1, write.record)
            return [entry], {
                self.placement.shard_for(write.key).index: ([entry], [self.encoded(entry)])
            }
        group = secrets.token_hex(6)
        keys = list(map(_key_of, writes))
        datas = list(map(_data_of, writes))
        made = list(
            map(
                Entry,
                keys,
                datas,
                itertools.repeat(group),
                itertools.repeat(len(writes)),
                map(_record_of, writes),
            )
        )
        try:
            if None in datas:  # deletes
                lines = list(map(encode_entry, made))
            else:
                lines = encode_puts(
                    keys, typing.cast(list[dict[str, Any]], datas), group, len(writes)
                )
        except ValueError:  # each alone, to raise the first write's error
            lines = list(map(self.encoded, made))
        limit = self.core.size_limit
        if max(map(len, lines)) > limit:
            lines = list(map(self.encoded, made))
        places = self.placement.places(keys)
        if len(set(places)) == 1:
            return made, {places[0]: (made, lines)}
        # Two lists a shard (no pair a line): what a large write makes here lives until it
        # lands, and the collector would look at every object of it meanwhile.
        by_shard: dict[int, tuple[list[Entry], list[str]]] = {place: ([], []) for place in places}
        for place, entry, line in zip(places, made, lines, strict=True):
            shard_entries, shard_lines = by_shard[place]
            shard_entries.append(entry)
            shard_lines.append(line)
        return made, by_shard

    def encoded(self, entry: Entry) -> str:
        """The line of one entry, or the error that says why it cannot be stored."""
        core = self.core
        try:
            line = encode_entry(entry)
        except ValueError as error:  # e.g. an int over Python's 4,300-digit text limit
            raise ValidationError(
                core.name, f"the record cannot be stored as JSON: {error}"
            ) from None
        if len(line) > core.size_limit:
            raise RecordTooLargeError(core.name, len(line), core.size_limit)
        return line

    def committed(self, message: StoredMessage, batch_id: str, entries: list[Entry]) -> None:
        """A batch of ours was acknowledged: apply it (unless its echo applied it first)."""
        shard = self.core.by_channel[message.channel_id]
        self.core.clock.observe(message.id)
        shard.handled.add(message.id)
        shard.echoes.pop(batch_id, None)
        # An entry is the key's revision unless a later entry of the message overtook it.
        last = dict(zip(map(_key_of, entries), entries, strict=True))
        for entry in last.values():
            entry.landed = message.id
        with pause_collector(len(entries)):  # the change feed's part included
            applied = self.core.apply_batch(shard, message.id, batch_id, entries)
        if applied:
            self._on_batch(shard)


def _submit(
    writer: BatchWriter, entries: list[Entry], texts: list[str]
) -> asyncio.Future[list[int]]:
    """:meth:`BatchWriter.submit` of entries and their lines given apart."""
    future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
    writer.queue(Submission(entries, texts, future))
    return future


_key_of = operator.attrgetter("key")
_landed_of = operator.attrgetter("landed")
_data_of = operator.attrgetter("data")
_record_of = operator.attrgetter("record")


async def _wait(ms: int, now: Callable[[], datetime]) -> None:
    """Wait until the clock ``now`` has moved ``ms`` milliseconds on (at most ``RESEND_WAIT``
    seconds of the event loop's time, should the clock stand still)."""
    loop = asyncio.get_running_loop()
    deadline, give_up = now() + timedelta(milliseconds=ms), loop.time() + RESEND_WAIT
    while True:
        left = (deadline - now()).total_seconds()
        if left <= 0 or loop.time() >= give_up:
            return
        await asyncio.sleep(min(left, RESEND_WAIT))
