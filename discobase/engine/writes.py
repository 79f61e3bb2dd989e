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

from ..codec import Entry, encode_entry, parse_header
from ..errors import RecordTooLargeError, ValidationError
from ..transport import StoredMessage
from .constraints import Constraints
from .core import TableCore, Write
from .shard import LogShard

__all__ = ("KeyPlacement", "WritePath")


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

    async def write(self, writes: list[Write], *, insert: bool, must_exist: bool) -> None:
        """Write atomically: every put and delete lands, or (after an error) none is applied."""
        if not writes:
            return
        core = self.core
        self.constraints.check(writes, insert=insert, must_exist=must_exist)
        group = secrets.token_hex(6) if len(writes) > 1 else None
        by_shard: dict[int, tuple[list[Entry], list[str]]] = {}
        for write in writes:
            entry = Entry(write.key, write.data, group, len(writes), write.record)
            try:
                line = encode_entry(entry)
            except ValueError as error:  # e.g. an int over Python's 4,300-digit text limit
                raise ValidationError(
                    core.name, f"the record cannot be stored as JSON: {error}"
                ) from None
            if len(line) > core.size_limit:
                raise RecordTooLargeError(core.name, len(line), core.size_limit)
            entries, lines = by_shard.setdefault(
                self.placement.shard_for(write.key).index, ([], [])
            )
            entries.append(entry)
            lines.append(line)
        held = self.constraints.reserve(writes)
        try:
            futures = [
                core.shards[index].writer.submit(entries, lines)
                for index, (entries, lines) in by_shard.items()
            ]
            results = await asyncio.gather(*futures, return_exceptions=True)
        finally:
            self.constraints.release(held)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            # The parts that landed stay pending (and in snapshots): if Discord stored the
            # failed part after all, the group completes wherever both are read.
            raise errors[0]

    def committed(self, message: StoredMessage, entries: list[Entry]) -> None:
        """A batch of ours was acknowledged: apply it (unless its echo applied it first)."""
        shard = self.core.by_channel[message.channel_id]
        self.core.clock.observe(message.id)
        shard.handled.add(message.id)
        batch_id = parse_header(message.content).get("id")
        shard.echoes.pop(batch_id, None)
        if self.core.apply_batch(shard, message.id, batch_id, entries):
            self._on_batch(shard)
