"""Compaction: a shard's state up to its horizon written as a snapshot, then the log it folded
deleted.

A snapshot covers the shard up to its horizon and nothing later; a compaction deletes only the
messages its snapshot folded (and superseded snapshots, orphan parts, duplicate batches and
the leftovers of an interrupted clean-up). A shard where another process wrote a snapshot is
left to that process.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..codec import (
    Entry,
    FormatProblem,
    encode_entry,
    encode_marker,
    encode_snapshot_part,
    parse_header,
)
from .core import TableCore
from .ingest import Ingest
from .reshard import Misplaced
from .shard import LogShard
from .writer import Line, split_to_fit
from .writes import KeyPlacement

__all__ = ("HORIZON_MARGIN", "Compaction", "Compactor")

log = logging.getLogger(__name__)
#: Seconds a shard's horizon stays behind the start of the REST read that confirmed it: covers
#: the skew between the clocks of Discord's workers and the time a create takes to be stored.
HORIZON_MARGIN = 15.0


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


class Compactor:
    """Snapshots and clean-up of one table's shards, automatic (``rule``) or on demand."""

    def __init__(
        self,
        core: TableCore,
        placement: KeyPlacement,
        ingest: Ingest,
        encode: Callable[[Any], dict[str, Any]],
        rule: Compaction | None,
    ) -> None:
        self.core = core
        self.placement = placement
        self.ingest = ingest
        self.encode = encode
        self.rule = rule
        #: Sends entries moved to their shard (the write path's ``move``, set by the engine).
        self.move: Callable[[dict[LogShard, list[Line]]], Awaitable[None]] | None = None

    def maybe_compact(self, shard: LogShard) -> None:
        """Start compacting ``shard`` in the background when the rule says it is due."""
        rule = self.rule
        if rule is None or shard.lock.locked():
            return
        if shard.compacting is not None and not shard.compacting.done():
            return
        live = len(self.core.state.records) / len(self.core.shards)
        if shard.messages_since_snapshot >= rule.min_messages or (
            shard.entries_since_snapshot >= rule.min_entries
            and shard.entries_since_snapshot > rule.ratio * live
        ):
            shard.compacting = self.core.background.spawn(self.compact_shard(shard))

    async def compact(self) -> int:
        """Snapshot every shard now; return how many old messages were deleted."""
        deleted = 0
        for shard in self.core.shards:
            await shard.writer.flush()
            deleted += await self.compact_shard(shard)
        return deleted

    async def compact_shard(self, shard: LogShard) -> int:
        """Write the shard's state up to its horizon as a snapshot, then delete the messages
        the snapshot folded. One at a time per shard: a later one waits for the earlier."""
        async with shard.lock:
            shard.messages_since_snapshot = 0
            shard.entries_since_snapshot = 0
            # Everything at or below the new horizon is then applied, whatever order the
            # gateway delivered it in.
            await self.ingest.read_to_horizon(shard)
            upto = shard.horizon
            covered = [m for m in shard.log_ids if m <= upto]
            grows_from = self.core.schema.resharding
            moving = grows_from is not None and shard.index < grows_from
            if not covered and not shard.stale_ids and shard.leftovers_from is None and not moving:
                return 0  # nothing to fold or delete
            lines, moves = self._snapshot_lines(shard, upto, covered)
            if moves:
                # Acknowledged before anything is deleted: the snapshot leaves them out.
                assert self.move is not None
                await self.move(moves)
            if shard.foreign_snapshot:
                log.warning(
                    "table %s: another process compacted channel %s; reopen to compact it here",
                    self.core.name,
                    shard.channel_id,
                )
                return 0
            carried = self.core.state.groups_to_carry(shard.channel_id)
            lines += [encode_entry(Entry(None, None, group, 0)) for group in carried]
            return await self._write_snapshot(shard, upto, lines, carried, covered)

    def _snapshot_lines(
        self, shard: LogShard, upto: int, covered: list[int]
    ) -> tuple[list[str], dict[LogShard, list[Line]]]:
        """The shard's state as of ``upto``: every key whose last entry is at or below it
        (later entries stay in the log), records that do not decode under this process's
        class as stored, and the parts of groups not yet complete with the state of their
        keys. Every line carries the version of the entry it folds.

        Also the entries to move first: keys of other shards whose last entry this shard
        holds (the table grew, see :mod:`.reshard`), for their shards."""
        if self.core.expire is not None:
            self.core.expire()  # expired records are left out of the snapshot
        state = self.core.state
        pending = state.pending_parts(shard.channel_id, upto)
        pending_keys = {json.dumps(e.key) for e in pending}
        lines = []
        misplaced = Misplaced(self.core, self.placement, shard, covered)
        grows_from = self.core.schema.resharding
        growing_into = grows_from is not None and shard.index >= grows_from
        for key, version in state.versions_by_key():
            if version > upto:
                continue
            if self.placement.shard_for(key) is not shard:
                misplaced.check(key, version)
                continue
            record = state.records.get(key)
            if record is not None:
                data: dict[str, Any] | None = self.encode(record)
            elif key in state.undecodable:
                data = state.undecodable[key]
            elif json.dumps(key) in pending_keys:
                data = None  # a tombstone, so that a late group completion stays older
            elif growing_into:
                # A tombstone: an old shard's snapshot written before the move may still
                # hold the key at an older version, until the reshard has written its own.
                data = None
            else:
                continue
            lines.append(encode_entry(Entry(key, data, version=version)))
        lines += [encode_entry(entry) for entry in pending]
        return lines, misplaced.moves(self.encode)

    async def _write_snapshot(
        self, shard: LogShard, upto: int, lines: list[str], carried: list[str], covered: list[int]
    ) -> int:
        core = self.core
        snapshot_id = secrets.token_hex(8)
        shard.own_snapshots.add(snapshot_id)
        parts: list[int] = []
        for _, _, part in split_to_fit(
            lines, core.size_limit, lambda s, e: encode_snapshot_part(snapshot_id, lines[s:e])
        ):
            sent = await core.storage.send(
                shard.channel_id,
                part.content,
                part.attachment,
                filename=part.filename,
                nonce=secrets.token_hex(8),
            )
            shard.handled.add(sent.id)
            parts.append(sent.id)
        marker = await core.storage.send(
            shard.channel_id,
            encode_marker(snapshot_id, upto, len(lines), parts),
            nonce=secrets.token_hex(8),
        )
        shard.handled.add(marker.id)
        # From here a reload uses the new snapshot. Delete what it folded.
        core.state.snapshot_written(shard.channel_id, carried)
        obsolete = [*covered, *shard.stale_ids, *shard.snapshot_ids]
        if shard.leftovers_from is not None:
            obsolete += await self._leftovers(shard, shard.leftovers_from)
            shard.leftovers_from = None
        gone = set(covered)
        shard.log_ids = [m for m in shard.log_ids if m not in gone]
        shard.stale_ids = []
        shard.snapshot_ids = [*parts, marker.id]
        try:
            await core.storage.delete_messages(shard.channel_id, obsolete)
        except BaseException:
            shard.stale_ids = obsolete  # the next compaction tries again
            raise
        log.info(
            "table %s: snapshot of %d entries in %d parts; deleted %d old messages",
            core.name,
            len(lines),
            len(parts),
            len(obsolete),
        )
        return len(obsolete)

    async def _leftovers(self, shard: LogShard, newest: int) -> list[int]:
        """discobase's messages from ``newest`` back (a clean-up that did not finish)."""
        found = [newest]
        async for message in self.core.storage.history(shard.channel_id, before=newest):
            if not self.core.storage.is_ours(message):
                continue  # not ours to delete
            try:
                parse_header(message.content)
            except FormatProblem:
                continue  # not ours to delete
            found.append(message.id)
        return found
