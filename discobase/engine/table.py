"""One table: its log channels (shards), their writers, its state, loading and compaction.

A record's key picks its shard (CRC-32 of the key's JSON, modulo the shard count), so all
writes of one key go through one channel in order. Loading reads each shard newest first
back to its newest snapshot marker, then folds the snapshot and the log after it.

Each shard has a horizon (see :mod:`.horizon`): every message at or below it is known, because
a REST read returned it. Loading, catch-up and compaction read back to the horizon and apply
the messages they have not applied (by id, not "newer than the last id"), then move it. A
snapshot covers the shard up to its horizon and nothing later; a compaction deletes only the
messages its snapshot folded.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import secrets
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..codec import (
    Entry,
    FormatProblem,
    Header,
    decode_body,
    decode_entries,
    encode_entry,
    encode_marker,
    encode_snapshot_part,
    parse_header,
)
from ..errors import (
    RecordNotFoundError,
    RecordTooLargeError,
    UniqueViolationError,
    ValidationError,
)
from ..transport import StoredMessage, Transport
from .horizon import ServerClock
from .schema import TableSchema
from .state import Problem, TableState
from .tasks import BackgroundTasks
from .writer import BatchWriter, split_to_fit

__all__ = ("HORIZON_MARGIN", "Compaction", "LogShard", "TableEngine", "Write")

log = logging.getLogger(__name__)
#: Seconds a shard's horizon stays behind the start of the REST read that confirmed it: covers
#: the skew between the clocks of Discord's workers and the time a create takes to be stored.
HORIZON_MARGIN = 15.0


@dataclass
class Write:
    """One operation of a write: a put of ``record`` (its JSON form in ``data``) or a delete."""

    key: Any
    record: Any = None
    data: dict[str, Any] | None = None

    @property
    def is_delete(self) -> bool:
        return self.data is None


@dataclass(frozen=True)
class Compaction:
    """When a shard compacts by itself: after ``min_messages`` log messages since its last
    compaction, or ``min_entries`` entries when those are more than ``ratio`` times its live
    records. ``Database(compaction=None)`` turns automatic compaction off.

    ``margin``: a snapshot covers only messages made at least this many seconds before the
    REST read that confirmed the shard (the most recent messages stay in the log until the
    next compaction)."""

    min_messages: int = 500
    min_entries: int = 20_000
    ratio: float = 2.0
    margin: float = HORIZON_MARGIN


@dataclass(eq=False)
class LogShard:
    """One log channel of a table and what the engine knows of its messages."""

    index: int
    channel_id: int
    writer: BatchWriter
    #: Batch id -> the message that holds it (a second message with that id is a duplicate).
    seen_batches: dict[str, int] = field(default_factory=dict)
    #: Batch messages of the log since the snapshot (a compaction deletes those it covers).
    log_ids: list[int] = field(default_factory=list)
    #: The current snapshot's parts and marker.
    snapshot_ids: list[int] = field(default_factory=list)
    #: Superseded snapshots, orphan parts and duplicate batches: the next compaction deletes them.
    stale_ids: list[int] = field(default_factory=list)
    #: Set when loading met a message the snapshot covers: an interrupted clean-up left
    #: messages from this id back, which the next compaction looks for and deletes.
    leftovers_from: int | None = None
    #: Every message at or below this id has been handled (a REST read confirmed it).
    horizon: int = 0
    #: Messages above the horizon already handled (applied, skipped or reported).
    handled: set[int] = field(default_factory=set)
    #: Snapshot ids of markers this process wrote or loaded.
    own_snapshots: set[str] = field(default_factory=set)
    #: Another process wrote a snapshot here since this one loaded: compacting could delete
    #: what that snapshot folded, so this process stops compacting the shard.
    foreign_snapshot: bool = False
    #: Log messages and entries since the last compaction (automatic compaction counts them).
    messages_since_snapshot: int = 0
    entries_since_snapshot: int = 0
    #: One compaction of the shard at a time (automatic, manual and /compact alike).
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    compacting: asyncio.Task[int] | None = None
    #: Gateway echoes of our own batches that arrived before their send was acknowledged.
    echoes: dict[str, StoredMessage] = field(default_factory=dict)

    def advance(self, horizon: int) -> None:
        """Every message at or below ``horizon`` is handled."""
        if horizon > self.horizon:
            self.horizon = horizon
            self.handled = {m for m in self.handled if m > horizon}


class TableEngine:
    """Storage and state of one table. The model layer turns records into ``Write``s."""

    def __init__(
        self,
        schema: TableSchema,
        transport: Transport,
        size_limit: int,
        decode: Callable[[Any, dict[str, Any]], Any],
        encode: Callable[[Any], dict[str, Any]],
        *,
        compaction: Compaction | None = None,
        clock: ServerClock | None = None,
    ) -> None:
        self.schema = schema
        self.transport = transport
        self.size_limit = size_limit
        self.encode = encode
        self.compaction = compaction
        self.margin = compaction.margin if compaction is not None else HORIZON_MARGIN
        self.clock = clock or ServerClock()
        #: Gateway messages that arrived while the table loads (applied once it has loaded).
        self._early: list[StoredMessage] | None = None
        self.state = TableState(schema.name, decode, indexes=schema.indexes, unique=schema.unique)
        self.shards = [
            LogShard(
                i,
                channel_id,
                BatchWriter(
                    transport,
                    channel_id,
                    size_limit,
                    self._committed,
                    functools.partial(self._send_failed, channel_id),
                ),
            )
            for i, channel_id in enumerate(schema.channels)
        ]
        self._by_channel = {shard.channel_id: shard for shard in self.shards}
        self._reserved: dict[tuple[str, Any], list[Any]] = {}
        self._background = BackgroundTasks(f"table {schema.name}")

    @property
    def name(self) -> str:
        return self.schema.name

    def shard_for(self, key: Any) -> LogShard:
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

    def owns(self, channel_id: int) -> bool:
        return channel_id in self._by_channel

    # -- loading --------------------------------------------------------------------------

    async def load(self) -> None:
        """Read every shard and fold it into the state.

        Gateway messages that arrive meanwhile wait and are applied after (the database
        listens before it loads, so nothing falls between the read and the gateway)."""
        self._early = []
        try:
            # Shards load side by side: versions make the fold independent of arrival order.
            await asyncio.gather(*(self._load_shard(shard) for shard in self.shards))
        finally:
            early, self._early = self._early, None
        self.state.report_incomplete_groups()
        for message in early:
            await self.ingest(message)

    async def _load_shard(self, shard: LogShard) -> None:
        started = self.clock.read_starts()
        newest_first: list[tuple[StoredMessage, Header]] = []
        marker: tuple[StoredMessage, Header] | None = None
        upto = -1
        async for message in self.transport.history(shard.channel_id):
            self.clock.observe(message.id)
            if not self._is_ours(shard, message):
                shard.handled.add(message.id)
                continue
            try:
                header = parse_header(message.content)
            except FormatProblem as problem:
                self._problem(shard, message, problem)
                shard.handled.add(message.id)
                continue
            if marker is not None and message.id <= upto:
                shard.leftovers_from = message.id  # an unfinished clean-up left it
                break
            newest_first.append((message, header))
            if header.kind == "snap":
                shard.own_snapshots.add(header.fields.get("id", ""))
                # The snapshot reaching furthest wins: two processes compacting at once can
                # write a marker covering less after one covering more.
                if marker is None or _int(header, "upto") > upto:
                    marker, upto = (message, header), _int(header, "upto")
        shard.handled.update(m.id for m, _ in newest_first)
        newest = max((m.id for m, _ in newest_first), default=0)
        shard.advance(max(upto, self._horizon(started, newest)))
        log_messages = sorted(newest_first, key=lambda item: item[0].id)
        if marker is not None:
            marker_message, marker_header = marker
            parts = {int(p) for p in marker_header.get("parts").split(",") if p}
            by_id = {m.id: (m, h) for m, h in log_messages}
            if not parts <= by_id.keys():
                # A marker whose parts are gone cannot be trusted: read the whole log instead.
                self.state.problems.append(
                    Problem(
                        self.name,
                        shard.channel_id,
                        marker_message.id,
                        "missing-attachment",
                        "snapshot parts named by the marker are gone; reading the full log",
                    )
                )
                shard.stale_ids.clear()
                await self._load_full(shard)
                return
            for part_id in sorted(parts):
                await self._apply_message(shard, *by_id[part_id], version=upto)
            shard.snapshot_ids = [*sorted(parts), marker_message.id]
        for message, header in log_messages:
            if header.kind == "batch":
                await self._apply_message(shard, message, header)
            elif message.id not in shard.snapshot_ids:
                shard.stale_ids.append(message.id)  # an older snapshot or an orphan part

    async def _load_full(self, shard: LogShard) -> None:
        started = self.clock.read_starts()
        messages: list[tuple[StoredMessage, Header]] = []
        async for message in self.transport.history(shard.channel_id):
            self.clock.observe(message.id)
            shard.handled.add(message.id)
            if not self.transport.is_ours(message):
                continue
            try:
                messages.append((message, parse_header(message.content)))
            except FormatProblem:
                continue
        shard.advance(self._horizon(started, max(shard.handled, default=0)))
        for message, header in sorted(messages, key=lambda item: item[0].id):
            if header.kind == "batch":
                await self._apply_message(shard, message, header)
            elif header.kind == "snap":
                # A snapshot this read could not use may be another process's, written while
                # this one read: never delete it, and leave compacting the shard to that one.
                shard.foreign_snapshot = True

    async def _apply_message(
        self, shard: LogShard, message: StoredMessage, header: Header, *, version: int | None = None
    ) -> None:
        """Decode one batch or snapshot part (downloading its attachment) and apply it."""
        batch_id = header.fields.get("id", "")
        if header.kind == "batch" and batch_id in shard.seen_batches:
            if shard.seen_batches[batch_id] != message.id:
                shard.stale_ids.append(message.id)  # a duplicate of a retried send
            return
        attachment = None
        try:
            if header.fields.get("att") == "1" and message.attachments:
                attachment = await self.transport.read_attachment(message.attachments[0])
            entries = decode_entries(header, decode_body(header, message.content, attachment))
        except FormatProblem as problem:
            self._problem(shard, message, problem)
            return
        if header.kind == "batch":
            self._apply_batch(shard, message.id, batch_id, entries)
        else:
            self.state.apply(entries, message.id if version is None else version, shard.channel_id)

    def _apply_batch(
        self, shard: LogShard, message_id: int, batch_id: str, entries: list[Entry]
    ) -> bool:
        """Apply a log batch unless it was applied already; return whether it was new."""
        if batch_id in shard.seen_batches:  # e.g. applied while its attachment downloaded
            return False
        shard.seen_batches[batch_id] = message_id
        shard.log_ids.append(message_id)
        shard.messages_since_snapshot += 1
        shard.entries_since_snapshot += len(entries)
        self.state.apply(entries, message_id, shard.channel_id)
        return True

    def _is_ours(self, shard: LogShard, message: StoredMessage) -> bool:
        """Only the bot's own messages are storage; anyone else's is reported and skipped."""
        if self.transport.is_ours(message):
            return True
        self._problem(
            shard,
            message,
            FormatProblem("foreign-author", "written by another user or a webhook, not this bot"),
        )
        return False

    def _problem(self, shard: LogShard, message: StoredMessage, problem: FormatProblem) -> None:
        log.warning(
            "table %s: skipping message %s in channel %s: %s",
            self.name,
            message.id,
            shard.channel_id,
            problem,
        )
        self.state.problems.append(
            Problem(self.name, shard.channel_id, message.id, problem.kind, problem.detail)
        )

    async def ingest(self, message: StoredMessage, *, confirmed: bool = False) -> None:
        """Apply a message seen on the gateway (another process's write, or our own echo), or
        by a REST read (``confirmed``: Discord has it, so even our own unacknowledged send is
        applied; its acknowledgement then finds it applied)."""
        shard = self._by_channel[message.channel_id]
        if message.id in shard.handled:
            return
        if not self._is_ours(shard, message):
            shard.handled.add(message.id)
            return
        try:
            header = parse_header(message.content)
        except FormatProblem as problem:
            shard.handled.add(message.id)
            self._problem(shard, message, problem)
            return
        if header.kind == "batch":
            batch_id = header.fields.get("id", "")
            if not confirmed and batch_id in shard.writer.in_flight:
                shard.echoes[batch_id] = message  # our own send: its acknowledgement applies it
                return
            await self._apply_message(shard, message, header)
            shard.handled.add(message.id)
            return
        shard.handled.add(message.id)
        if header.kind == "snap" and header.fields.get("id", "") not in shard.own_snapshots:
            shard.foreign_snapshot = True

    async def catch_up(self) -> None:
        """Read each shard back to its horizon and apply what was missed (after a reconnect)."""
        for shard in self.shards:
            await self._read_to_horizon(shard)

    async def _read_to_horizon(self, shard: LogShard) -> None:
        """Apply every message above the horizon not handled yet; move the horizon."""
        started = self.clock.read_starts()
        newest = 0
        for message in await self.transport.newer_than(shard.channel_id, shard.horizon):
            self.clock.observe(message.id)
            newest = max(newest, message.id)
            await self.ingest(message, confirmed=True)
        shard.advance(self._horizon(started, newest))

    def _horizon(self, started: int, newest: int) -> int:
        """The horizon of a read begun at ``started`` whose newest message was ``newest``:
        never past that message, so a local clock that stepped forward cannot carry a
        snapshot over messages the read did not return (or over its own parts)."""
        return min(self.clock.horizon(started, self.margin), newest)

    # -- writing --------------------------------------------------------------------------

    def _send_failed(self, channel_id: int, batch_id: str) -> None:
        """A send failed after its retries; if Discord has it after all, it counts."""
        shard = self._by_channel[channel_id]
        echo = shard.echoes.pop(batch_id, None)
        if echo is not None:
            self._background.spawn(self.ingest(echo))

    def _committed(self, message: StoredMessage, entries: list[Entry]) -> None:
        shard = self._by_channel[message.channel_id]
        self.clock.observe(message.id)
        shard.handled.add(message.id)
        batch_id = parse_header(message.content).get("id")
        shard.echoes.pop(batch_id, None)
        if self._apply_batch(shard, message.id, batch_id, entries):
            self._maybe_compact(shard)

    def _check(self, writes: list[Write], *, insert: bool, must_exist: bool) -> None:
        """Constraints, checked before anything is sent (and held while it is in flight)."""
        pk = self.schema.primary_key
        batch_unique: dict[tuple[str, Any], Any] = {}
        for write in writes:
            exists = write.key in self.state.records
            if must_exist and not exists:
                raise RecordNotFoundError(self.name, write.key)
            if write.is_delete:
                continue
            if insert and (exists or (("", write.key) in self._reserved)):
                raise UniqueViolationError(self.name, pk or "pk", write.key, write.key)
            for name in self.schema.unique:
                value = getattr(write.record, name)
                if value is None:
                    continue
                holders = [
                    self.state.unique_holder(name, value, write.key),
                    (self._reserved.get((name, value)) or [None])[0],
                    batch_unique.get((name, value)),
                ]
                for holder in holders:
                    if holder is not None and holder != write.key:
                        raise UniqueViolationError(self.name, name, value, holder)
                batch_unique[(name, value)] = write.key
            if insert:
                if ("", write.key) in batch_unique:
                    raise UniqueViolationError(self.name, pk or "pk", write.key, write.key)
                batch_unique[("", write.key)] = write.key

    def _reserve(self, writes: list[Write]) -> list[tuple[str, Any]]:
        held: list[tuple[str, Any]] = []
        for write in writes:
            if write.is_delete:
                continue
            names = [*self.schema.unique, ""]
            for name in names:
                value = write.key if name == "" else getattr(write.record, name)
                if value is None:
                    continue
                slot = self._reserved.setdefault((name, value), [write.key, 0])
                slot[1] += 1
                held.append((name, value))
        return held

    def _release(self, held: list[tuple[str, Any]]) -> None:
        for slot_key in held:
            slot = self._reserved[slot_key]
            slot[1] -= 1
            if slot[1] <= 0:
                del self._reserved[slot_key]

    async def write(
        self, writes: list[Write], *, insert: bool = False, must_exist: bool = False
    ) -> None:
        """Write atomically: every put and delete lands, or (after an error) none is applied."""
        if not writes:
            return
        self._check(writes, insert=insert, must_exist=must_exist)
        group = secrets.token_hex(6) if len(writes) > 1 else None
        by_shard: dict[int, tuple[list[Entry], list[str]]] = {}
        for write in writes:
            entry = Entry(write.key, write.data, group, len(writes), write.record)
            try:
                line = encode_entry(entry)
            except ValueError as error:  # e.g. an int over Python's 4,300-digit text limit
                raise ValidationError(
                    self.name, f"the record cannot be stored as JSON: {error}"
                ) from None
            if len(line) > self.size_limit:
                raise RecordTooLargeError(self.name, len(line), self.size_limit)
            entries, lines = by_shard.setdefault(self.shard_for(write.key).index, ([], []))
            entries.append(entry)
            lines.append(line)
        held = self._reserve(writes)
        try:
            futures = [
                self.shards[index].writer.submit(entries, lines)
                for index, (entries, lines) in by_shard.items()
            ]
            results = await asyncio.gather(*futures, return_exceptions=True)
        finally:
            self._release(held)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            # The parts that landed stay pending (and in snapshots): if Discord stored the
            # failed part after all, the group completes wherever both are read.
            raise errors[0]

    async def flush(self) -> None:
        for shard in self.shards:
            await shard.writer.flush()

    async def close(self) -> None:
        for shard in self.shards:
            await shard.writer.close()
        await self._background.wait()

    # -- compaction -----------------------------------------------------------------------

    def _maybe_compact(self, shard: LogShard) -> None:
        rule = self.compaction
        if rule is None or shard.lock.locked():
            return
        if shard.compacting is not None and not shard.compacting.done():
            return
        live = len(self.state.records) / len(self.shards)
        if shard.messages_since_snapshot >= rule.min_messages or (
            shard.entries_since_snapshot >= rule.min_entries
            and shard.entries_since_snapshot > rule.ratio * live
        ):
            shard.compacting = self._background.spawn(self._compact_shard(shard))

    def spawn_ingest(self, message: StoredMessage) -> None:
        """Apply a gateway message in the background (it may need a download)."""
        if self._early is not None:
            self._early.append(message)
            return
        self._background.spawn(self.ingest(message))

    async def compact(self) -> int:
        """Snapshot every shard now; return how many old messages were deleted."""
        deleted = 0
        for shard in self.shards:
            await shard.writer.flush()
            deleted += await self._compact_shard(shard)
        return deleted

    async def _compact_shard(self, shard: LogShard) -> int:
        """Write the shard's state up to its horizon as a snapshot, then delete the messages
        the snapshot folded. One at a time per shard: a later one waits for the earlier."""
        async with shard.lock:
            shard.messages_since_snapshot = 0
            shard.entries_since_snapshot = 0
            # Everything at or below the new horizon is then applied, whatever order the
            # gateway delivered it in.
            await self._read_to_horizon(shard)
            if shard.foreign_snapshot:
                log.warning(
                    "table %s: another process compacted channel %s; reopen to compact it here",
                    self.name,
                    shard.channel_id,
                )
                return 0
            upto = shard.horizon
            covered = [m for m in shard.log_ids if m <= upto]
            if not covered and not shard.stale_ids and shard.leftovers_from is None:
                return 0  # nothing to fold or delete
            lines = self._snapshot_lines(shard, upto)
            carried = self.state.groups_to_carry(shard.channel_id)
            lines += [encode_entry(Entry(None, None, group, 0)) for group in carried]
            return await self._write_snapshot(shard, upto, lines, carried, covered)

    def _snapshot_lines(self, shard: LogShard, upto: int) -> list[str]:
        """The shard's state as of ``upto``: every key whose last entry is at or below it
        (later entries stay in the log), records that do not decode under this process's
        class as stored, and the parts of groups not yet complete with the state of their
        keys. Every line carries the version of the entry it folds."""
        state = self.state
        pending = state.pending_parts(shard.channel_id, upto)
        pending_keys = {json.dumps(e.key) for e in pending}
        lines = []
        for key, version in state.versions.items():
            if version > upto or self.shard_for(key) is not shard:
                continue
            record = state.records.get(key)
            if record is not None:
                data: dict[str, Any] | None = self.encode(record)
            elif key in state.undecodable:
                data = state.undecodable[key]
            elif json.dumps(key) in pending_keys:
                data = None  # a tombstone, so that a late group completion stays older
            else:
                continue
            lines.append(encode_entry(Entry(key, data, version=version)))
        lines += [encode_entry(entry) for entry in pending]
        return lines

    async def _write_snapshot(
        self, shard: LogShard, upto: int, lines: list[str], carried: list[str], covered: list[int]
    ) -> int:
        snapshot_id = secrets.token_hex(8)
        shard.own_snapshots.add(snapshot_id)
        parts: list[int] = []
        for _, _, part in split_to_fit(
            lines, self.size_limit, lambda s, e: encode_snapshot_part(snapshot_id, lines[s:e])
        ):
            sent = await self.transport.send(
                shard.channel_id,
                part.content,
                part.attachment,
                filename=part.filename,
                nonce=secrets.token_hex(8),
            )
            shard.handled.add(sent.id)
            parts.append(sent.id)
        marker = await self.transport.send(
            shard.channel_id,
            encode_marker(snapshot_id, upto, len(lines), parts),
            nonce=secrets.token_hex(8),
        )
        shard.handled.add(marker.id)
        # From here a reload uses the new snapshot. Delete what it folded.
        self.state.snapshot_written(shard.channel_id, carried)
        obsolete = [*covered, *shard.stale_ids, *shard.snapshot_ids]
        if shard.leftovers_from is not None:
            obsolete += await self._leftovers(shard, shard.leftovers_from)
            shard.leftovers_from = None
        gone = set(covered)
        shard.log_ids = [m for m in shard.log_ids if m not in gone]
        shard.stale_ids = []
        shard.snapshot_ids = [*parts, marker.id]
        try:
            await self.transport.delete_messages(shard.channel_id, obsolete)
        except BaseException:
            shard.stale_ids = obsolete  # the next compaction tries again
            raise
        log.info(
            "table %s: snapshot of %d entries in %d parts; deleted %d old messages",
            self.name,
            len(lines),
            len(parts),
            len(obsolete),
        )
        return len(obsolete)

    async def _leftovers(self, shard: LogShard, newest: int) -> list[int]:
        """discobase's messages from ``newest`` back (a clean-up that did not finish)."""
        found = [newest]
        async for message in self.transport.history(shard.channel_id, before=newest):
            if not self.transport.is_ours(message):
                continue  # not ours to delete
            try:
                parse_header(message.content)
            except FormatProblem:
                continue  # not ours to delete
            found.append(message.id)
        return found


def _int(header: Header, name: str) -> int:
    try:
        return header.get_int(name)
    except FormatProblem:
        return -1
