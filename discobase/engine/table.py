"""One table's engine: its shards and state, and the parts that do its five jobs.

- key placement and writes: :mod:`.writes` (``KeyPlacement``, ``WritePath``);
- loading: :mod:`.loading` (``Loader``);
- constraints and reservations: :mod:`.constraints` (``Constraints``);
- compaction: :mod:`.compaction` (``Compactor``);
- ingest of gateway messages and catch-up reads: :mod:`.ingest` (``Ingest``).

They share a :class:`~.core.TableCore` (schema, storage, state, shards, clock), whose
``apply_message`` and ``apply_batch`` are the one way a message reaches the state. This class
wires them together and is what the model and the database call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ..codec import Entry
from .claims import Claims
from .compaction import HORIZON_MARGIN, Compaction, Compactor
from .constraints import Constraints
from .core import TableCore, Write
from .expiry import Expiry, follow_ttl
from .feed import ChangeLog
from .horizon import ServerClock
from .ingest import Ingest
from .loading import Loader
from .saves import SaveQueue
from .schema import TableSchema
from .shard import LogShard
from .state import TableState
from .storage import Storage, StoredMessage
from .tasks import BackgroundTasks
from .writer import BatchWriter
from .writes import KeyPlacement, WritePath

__all__ = ("HANDLED_LIMIT", "HORIZON_MARGIN", "Compaction", "LogShard", "TableEngine", "Write")

#: A shard that holds this many handled ids above its horizon reads to its horizon, which
#: moves the horizon and forgets the ids below it (without compaction or reconnects nothing
#: else moves it, and the ids would pile up).
HANDLED_LIMIT = 10_000


class TableEngine:
    """Storage and state of one table. The model layer turns records into ``Write``s."""

    def __init__(
        self,
        schema: TableSchema,
        storage: Storage,
        size_limit: int,
        decode: Callable[[Any, dict[str, Any]], Any],
        encode: Callable[[Any], dict[str, Any]],
        *,
        compaction: Compaction | None = None,
        clock: ServerClock | None = None,
        fields: Sequence[str] | None = None,
        decode_many: Callable[[list[Any], list[dict[str, Any]]], list[Any] | None] | None = None,
    ) -> None:
        self.schema = schema
        self.storage = storage
        self.size_limit = size_limit
        self.encode = encode
        self.compaction = compaction
        self._decode = decode
        self._decode_many = decode_many
        self._fields = schema.field_names if fields is None else fields
        self.state = self._new_state()
        self.core = TableCore(
            schema,
            storage,
            self.state,
            clock or ServerClock(storage.now),
            compaction.margin if compaction is not None else HORIZON_MARGIN,
            size_limit,
            BackgroundTasks(f"table {schema.name}"),
        )
        self.ingest = Ingest(self.core)
        self.core.add_shards([self._new_shard(i, c) for i, c in enumerate(schema.channels)])
        self.placement = KeyPlacement(self.core.shards)
        self.placement.moving_from = schema.resharding
        self.constraints = Constraints(schema, self.state)
        self.loader = Loader(self.core)
        self.compactor = Compactor(self.core, self.placement, self.ingest, encode, compaction)
        self.writes = WritePath(
            self.core, self.placement, self.constraints, self.compactor.maybe_compact
        )
        self.compactor.move = self.writes.move
        self.feed = ChangeLog(self.core, self.ingest)
        self.writes.claims = Claims(self.core, self.feed, self.placement)
        #: Where ``save()`` and ``insert()`` of one record queue (:mod:`.saves`).
        self.saves = SaveQueue(self.writes, self.expire)
        #: A read to the horizon starts when a shard holds this many handled ids.
        self._handled_mark = HANDLED_LIMIT
        self._settling = False
        self.expiry: Expiry | None = None
        #: Records this memory forgot may be live under the table's ttl: no snapshot of it.
        self.forgot_live = False
        self.follow_ttl(schema.ttl)

    def _new_shard(self, index: int, channel_id: int) -> LogShard:
        writer = BatchWriter(
            self.storage,
            channel_id,
            self.size_limit,
            self._committed,
            functools.partial(self.ingest.send_failed, channel_id),
        )
        return LogShard(index, channel_id, writer)

    @property
    def name(self) -> str:
        return self.schema.name

    @property
    def shards(self) -> list[LogShard]:
        return self.core.shards

    @property
    def clock(self) -> ServerClock:
        return self.core.clock

    def owns(self, channel_id: int) -> bool:
        return channel_id in self.core.by_channel

    def shard_for(self, key: Any) -> LogShard:
        return self.placement.shard_for(key)

    def new_key(self) -> str:
        return self.placement.new_key()

    def new_keys(self, count: int) -> list[str]:
        return self.placement.new_keys(count)

    async def load(self) -> None:
        """Read every shard and fold it into the state.

        Gateway messages that arrive meanwhile wait and are applied after (the database
        listens before it loads, so nothing falls between the read and the gateway)."""
        self.ingest.hold()
        try:
            await self.loader.load(restart=self._forget_loaded)
        finally:
            early = self.ingest.release()
        self.state.report_incomplete_groups()
        for message in early:
            await self.ingest.ingest(message)

    async def follow_layout(self, schema: TableSchema) -> None:
        """Take the layout the catalog gives the table now (``Database.reshard``): the
        channels it grew by, and whether its records are still moving. Writes use the new
        shards at once; what other processes wrote there already is read."""
        own = self.schema
        added = [
            self._new_shard(i, c) for i, c in enumerate(schema.channels) if i >= len(self.shards)
        ]
        own.shards, own.channels, own.threads = schema.shards, list(schema.channels), schema.threads
        own.resharding = self.placement.moving_from = schema.resharding
        if added:
            self.core.add_shards([*self.shards, *added])
            await self.loader.load_added(added)

    def _new_state(self) -> TableState:
        return TableState(
            self.schema.name,
            self._decode,
            decode_many=self._decode_many,
            fields=self._fields,
            indexes=self.schema.indexes,
            unique=self.schema.unique,
        )

    def _forget_loaded(self) -> None:
        """Drop what a load read, to read the table again (before it is published)."""
        core = self.core
        self.state = self._new_state()
        core.state = self.constraints.state = self.state
        if self.expiry is not None:
            self.expiry.track(self.state)
        core.add_shards([LogShard(s.index, s.channel_id, s.writer) for s in core.shards])

    def spawn_ingest(self, message: StoredMessage) -> None:
        self.ingest.spawn(message)
        self._bound_handled(message.channel_id)

    def _bound_handled(self, channel_id: int) -> None:
        """Read to the horizon in the background once a shard holds too many handled ids."""
        shard = self.core.by_channel[channel_id]
        if len(shard.handled) >= self._handled_mark and not self._settling:
            self._settling = True
            self.core.background.spawn(self._settle_handled())

    async def _settle_handled(self) -> None:
        try:
            await self.feed.settle()
        finally:
            self._settling = False
            # Ids inside the horizon's margin stay: when that many remain (a channel written
            # faster than the margin lets the horizon follow), wait for twice as many.
            left = max(len(shard.handled) for shard in self.shards)
            self._handled_mark = max(HANDLED_LIMIT, 2 * left)

    def follow_ttl(self, ttl: float | None) -> None:
        """Expire by ``ttl`` (the schema's; then the catalog's, after another process
        altered the table). After records were forgotten under a shorter ttl, the table is
        compacted no more here (see :mod:`.expiry`)."""
        old, expiry = self.schema.ttl, self.expiry
        if old is not None and (ttl is None or ttl > old) and expiry and expiry.forgotten:
            self.forgot_live = True
            self.compactor.rule = None
        self.schema.ttl = ttl
        self.expiry = follow_ttl(self.expiry, ttl, self.state, self.storage.now)
        self.core.expire = None if self.expiry is None else self.expire

    def expire(self) -> None:
        """Forget the records past the table's ttl (nothing without one): before every read."""
        if self.expiry is not None:
            self.expiry.expire(self.state)

    async def catch_up(self) -> None:
        await self.feed.settle()

    def write(
        self,
        writes: list[Write],
        *,
        insert: bool = False,
        must_exist: bool = False,
        claim: bool = False,
    ) -> Coroutine[Any, Any, list[int | None]]:
        """Write atomically: every put and delete lands, or (after an error) none is applied.
        Returns each write's revision (None: overtaken in its message by a later write of
        the same key). ``claim``: claim new unique values across processes first
        (:mod:`.claims`). (Not a coroutine itself: one frame less for every write.)"""
        self.expire()  # an expired record holds no key or unique value
        return self.writes.write(writes, insert=insert, must_exist=must_exist, claim=claim)

    def _committed(self, message: StoredMessage, batch_id: str, entries: list[Entry]) -> None:
        self.writes.committed(message, batch_id, entries)
        self._bound_handled(message.channel_id)

    async def compact(self) -> int:
        """Snapshot every shard now; return how many old messages were deleted (none while
        records this memory forgot may be live: see :meth:`follow_ttl`)."""
        if self.forgot_live:
            return 0
        return await self.compactor.compact()

    def foreign_snapshots(self, below: int) -> list[int]:
        """Shards among the first ``below`` whose snapshot another process wrote since this
        one loaded them (a compaction here skips them: see :meth:`.Compactor.compact_shard`)."""
        return [shard.index for shard in self.shards[:below] if shard.foreign_snapshot]

    async def flush(self) -> None:
        for shard in self.shards:
            await shard.writer.flush()

    async def close(self) -> None:
        for shard in self.shards:
            await shard.writer.close()
        await self.core.background.wait()
        self.feed.close()
