"""Key placement and the write path of one table.

A record's key picks its shard (CRC-32 of the key's JSON, modulo the shard count), so all
writes of one key go through one channel in order. A write is checked against the table's
constraints, encoded, split by shard and handed to the shards' writers; each acknowledged
batch is applied to the state at once.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..codec import Entry, encode_entry
from ..errors import (
    ConflictError,
    DiscordUnavailableError,
    RecordTooLargeError,
    ValidationError,
)
from .constraints import Constraints
from .core import TableCore, Write
from .horizon import snowflake_ms
from .shard import LogShard
from .storage import StoredMessage
from .writer import Line

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

    def shard_for(self, key: object) -> LogShard:
        if len(self.shards) == 1:
            return self.shards[0]
        return self.shards[zlib.crc32(json.dumps(key).encode()) % len(self.shards)]

    def new_key(self) -> str:
        """A generated key, placed on the shard where it will be sent soonest.

        Keys are milliseconds since the epoch (hex) and 40 random bits; the random part is
        drawn until the key hashes to the chosen shard: one whose next message is forming and
        not blocked behind a send (join that batch), else the idle shard used least recently
        (so awaited writes rotate over the channels and their rate limits), else the one that
        started its send first.
        """
        return self._key_on(self._placement())

    def new_keys(self, count: int) -> list[str]:
        """``count`` generated keys spread evenly over the shards, starting where
        :meth:`new_key` would."""
        first = self._placement().index
        return [self._key_on(self.shards[(first + i) % len(self.shards)]) for i in range(count)]

    def _key_on(self, target: LogShard) -> str:
        prefix = f"{time.time_ns() // 1_000_000:011x}"
        while True:
            key = prefix + secrets.token_hex(5)
            if self.shard_for(key) is target:
                return key

    def _placement(self) -> LogShard:
        if len(self.shards) == 1:
            return self.shards[0]
        idle = [s for s in self.shards if not s.writer.sending]
        forming = [s for s in idle if s.writer.forming]
        if forming:
            return forming[0]
        return min(idle or self.shards, key=lambda s: s.writer.last_used)


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
        #: replaced) whenever one of those writes ends: a conditional write waits for them.
        self._writing: dict[Any, int] = {}
        self._write_ended = asyncio.Event()
        #: The revision each entry of ours landed at, by ``id(entry)``, until write() takes it.
        self._landed: dict[int, int] = {}
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
            await self._write_ended.wait()
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
        replaced = [core.state.versions.get(w.key, 0) for w in writes]
        held = self.constraints.reserve(writes)
        keys = [w.key for w in writes]
        for key in keys:
            self._writing[key] = self._writing.get(key, 0) + 1
        try:
            landed = await self._send(writes)
            for attempt in range(RESENDS + 1):
                behind = [
                    i
                    for i, (write, revision) in enumerate(zip(writes, landed, strict=True))
                    if write.if_revision is None
                    and revision is not None
                    and revision <= replaced[i]
                ]
                if not behind:
                    break
                if attempt == RESENDS:
                    raise DiscordUnavailableError(
                        "POST /channels/{id}/messages",
                        attempt + 1,
                        TimeoutError("message ids stayed below the version the write replaced"),
                    )
                gap = max(snowflake_ms(replaced[i]) - snowflake_ms(landed[i] or 0) for i in behind)
                await _wait(gap + 1, core.clock.now)
                again = await self._send([writes[i] for i in behind])
                for i, revision in zip(behind, again, strict=True):
                    landed[i] = revision
        finally:
            self.constraints.release(held)
            for key in keys:
                self._writing[key] -= 1
                if not self._writing[key]:
                    del self._writing[key]
            self._write_ended.set()
            self._write_ended = asyncio.Event()
        for write, revision in zip(writes, landed, strict=True):
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

    async def _send(self, writes: list[Write]) -> list[int | None]:
        """Send one atomic write through the shards' writers; return where each write
        landed (None: a later write of its key in the same message overtook it)."""
        core = self.core
        group = secrets.token_hex(6) if len(writes) > 1 else None
        by_shard: dict[int, list[Line]] = {}
        made: list[Entry] = []
        for write in writes:
            entry = Entry(write.key, write.data, group, len(writes), write.record)
            made.append(entry)
            try:
                line = encode_entry(entry)
            except ValueError as error:  # e.g. an int over Python's 4,300-digit text limit
                raise ValidationError(
                    core.name, f"the record cannot be stored as JSON: {error}"
                ) from None
            if len(line) > core.size_limit:
                raise RecordTooLargeError(core.name, len(line), core.size_limit)
            by_shard.setdefault(self.placement.shard_for(write.key).index, []).append((entry, line))
        try:
            futures = [core.shards[index].writer.submit(lines) for index, lines in by_shard.items()]
            results = await _outcomes(futures)
        finally:
            landed = [self._landed.pop(id(entry), None) for entry in made]
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            # The parts that landed stay pending (and in snapshots): if Discord stored the
            # failed part after all, the group completes wherever both are read.
            raise errors[0]
        return landed

    def committed(self, message: StoredMessage, batch_id: str, entries: list[Entry]) -> None:
        """A batch of ours was acknowledged: apply it (unless its echo applied it first)."""
        shard = self.core.by_channel[message.channel_id]
        self.core.clock.observe(message.id)
        shard.handled.add(message.id)
        shard.echoes.pop(batch_id, None)
        # An entry is the key's revision unless a later entry of the message overtook it.
        last = {entry.key: entry for entry in entries}
        for entry in last.values():
            self._landed[id(entry)] = message.id
        if self.core.apply_batch(shard, message.id, batch_id, entries):
            self._on_batch(shard)


async def _outcomes(futures: list[asyncio.Future[list[int]]]) -> list[object]:
    """Each future's result or exception (one future, the common case, without a gather)."""
    if len(futures) != 1:
        return await asyncio.gather(*futures, return_exceptions=True)
    try:
        return [await futures[0]]
    except Exception as error:
        return [error]


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
