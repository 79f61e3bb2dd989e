"""Loading a table: each shard read newest first back to its snapshot, then folded.

A shard is read back to the snapshot marker that reaches furthest (two processes compacting
at once can write a marker covering less after one covering more); the snapshot's parts are
folded at the marker's version, then the log after it. A marker whose parts are gone is not
trusted: the whole log is read instead. The read moves the shard's horizon. A load that another
process's compaction straddled (a marker it did not read appeared above its horizon) starts
over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..codec import FormatProblem, Header, parse_header
from ..problems import Problem, ProblemKind
from .core import TableCore
from .shard import LogShard
from .storage import StoredMessage

__all__ = ("LOAD_ATTEMPTS", "Loader")

log = logging.getLogger(__name__)
#: Reads of a table that another process's compactions may restart; after the last one the
#: table opens with what it read and leaves compacting the shards that moved to that process.
LOAD_ATTEMPTS = 3


class Loader:
    """Reads the shards of one table and folds them into its state."""

    def __init__(self, core: TableCore) -> None:
        self.core = core

    async def load(self, restart: Callable[[], None]) -> None:
        """Read every shard side by side (versions make the fold independent of arrival
        order).

        Another process may compact a shard while this one reads it page by page: its new
        snapshot is then above the pages read, and the messages it folded are deleted before
        their pages are read. Its marker is stored before it deletes anything, so a REST read
        made after the load finds it; when one does, ``restart`` drops what was read (fresh
        state and shards) and the table is read again."""
        core = self.core
        try:
            await self._load(restart)
        finally:
            core.state.index_records()

    async def _load(self, restart: Callable[[], None]) -> None:
        core = self.core
        for attempt in range(1, LOAD_ATTEMPTS + 1):
            if attempt > 1:
                restart()
            # Indexed once every shard is read (see TableState.defer_indexes): nothing reads
            # them before the table is published.
            core.state.defer_indexes()
            started = core.clock.read_starts()
            read: list[set[int]] = [set() for _ in core.shards]
            await asyncio.gather(
                *(self._load_shard(s, seen) for s, seen in zip(core.shards, read, strict=True))
            )
            compacted = await asyncio.gather(
                *(
                    self._compacted_meanwhile(shard, started, seen)
                    for shard, seen in zip(core.shards, read, strict=True)
                )
            )
            moved = [s for s, c in zip(core.shards, compacted, strict=True) if c]
            if not moved:
                return
            log.info(
                "table %s: another process compacted channels %s while they loaded; %s",
                core.name,
                [shard.channel_id for shard in moved],
                "reading again" if attempt < LOAD_ATTEMPTS else "leaving them to it",
            )
        for shard in moved:
            shard.foreign_snapshot = True

    async def load_added(self, shards: list[LogShard]) -> None:
        """Read shards added to the loaded table (it grew: ``Database.reshard``)."""
        await asyncio.gather(*(self._load_shard(shard, set()) for shard in shards))

    async def _compacted_meanwhile(self, shard: LogShard, started: int, seen: set[int]) -> bool:
        """Whether the shard holds a snapshot marker made after its load began (above that
        read's horizon) that the load did not read."""
        storage = self.core.storage
        since = self.core.clock.horizon(started, self.core.margin)
        for message in await storage.newer_than(shard.channel_id, since):
            if message.id in seen or not storage.is_ours(message):
                continue
            try:
                if parse_header(message.content).kind == "snap":
                    return True
            except FormatProblem:
                continue
        return False

    async def _load_shard(self, shard: LogShard, seen: set[int]) -> None:
        """Load one shard; ``seen`` gets the id of every message the read returned (not
        those of a full re-read, whose markers this read did not use)."""
        core = self.core
        started = core.clock.read_starts()
        newest_first: list[tuple[StoredMessage, Header]] = []
        marker: tuple[StoredMessage, Header] | None = None
        upto = -1
        marker_parts: set[int] = set()
        async for message in core.storage.history(shard.channel_id):
            core.clock.observe(message.id)
            seen.add(message.id)
            if not core.is_ours(shard, message):
                shard.handled.add(message.id)
                continue
            try:
                header = parse_header(message.content)
            except FormatProblem as problem:
                core.problem(shard, message, problem)
                shard.handled.add(message.id)
                continue
            if marker is not None and message.id <= upto:
                shard.leftovers_from = message.id  # an unfinished clean-up left it
                break
            newest_first.append((message, header))
            if header.kind == "snap":
                try:
                    covers, parts = header.get_int("upto"), _part_ids(header)
                except FormatProblem as problem:
                    # What it covers is unknown: read the whole log, delete nothing.
                    core.problem(shard, message, problem)
                    await self._load_full(shard)
                    return
                shard.own_snapshots.add(header.fields.get("id", ""))
                # The snapshot reaching furthest wins: two processes compacting at once can
                # write a marker covering less after one covering more.
                if marker is None or covers > upto:
                    marker, upto, marker_parts = (message, header), covers, parts
        shard.handled.update(m.id for m, _ in newest_first)
        newest = max((m.id for m, _ in newest_first), default=0)
        shard.advance(max(upto, core.read_horizon(started, newest)))
        log_messages = sorted(newest_first, key=lambda item: item[0].id)
        if marker is not None:
            marker_message, _ = marker
            parts = marker_parts
            by_id = {m.id: (m, h) for m, h in log_messages}
            if not parts <= by_id.keys():
                # A marker whose parts are gone cannot be trusted: read the whole log instead.
                core.state.problems.append(
                    Problem(
                        core.name,
                        shard.channel_id,
                        marker_message.id,
                        ProblemKind.MISSING_ATTACHMENT,
                        "snapshot parts named by the marker are gone; reading the full log",
                    )
                )
                shard.stale_ids.clear()
                await self._load_full(shard)
                return
            for part_id in sorted(parts):
                await core.apply_message(shard, *by_id[part_id], version=upto)
            shard.snapshot_ids = [*sorted(parts), marker_message.id]
        for message, header in log_messages:
            if header.kind == "batch":
                await core.apply_message(shard, message, header)
            elif header.kind in ("claim", "release") and core.on_claim is not None:
                core.on_claim(shard, message, header)
            elif message.id not in shard.snapshot_ids:
                shard.stale_ids.append(message.id)  # an older snapshot or an orphan part

    async def _load_full(self, shard: LogShard) -> None:
        core = self.core
        started = core.clock.read_starts()
        messages: list[tuple[StoredMessage, Header]] = []
        async for message in core.storage.history(shard.channel_id):
            core.clock.observe(message.id)
            shard.handled.add(message.id)
            if not core.storage.is_ours(message):
                continue
            try:
                messages.append((message, parse_header(message.content)))
            except FormatProblem:
                continue
        shard.advance(core.read_horizon(started, max(shard.handled, default=0)))
        for message, header in sorted(messages, key=lambda item: item[0].id):
            if header.kind == "batch":
                await core.apply_message(shard, message, header)
            elif header.kind in ("claim", "release") and core.on_claim is not None:
                core.on_claim(shard, message, header)
            elif header.kind == "snap":
                # A snapshot this read could not use may be another process's, written while
                # this one read: never delete it, and leave compacting the shard to that one.
                shard.foreign_snapshot = True


def _part_ids(marker: Header) -> set[int]:
    """The ids of a snapshot marker's parts."""
    listed = [p for p in marker.get("parts").split(",") if p]
    if not all(p.isdigit() for p in listed):
        raise FormatProblem(ProblemKind.UNREADABLE, "header parts= is not a list of message ids")
    return {int(p) for p in listed}
