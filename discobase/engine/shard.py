"""One log channel of a table and what the engine knows of its messages."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .storage import StoredMessage
from .writer import BatchWriter

__all__ = ("BATCH_ID_MEMORY", "LogShard")

#: Seconds: a send retried after Discord stored it (a second copy of its batch) is made within
#: this time of the first copy (the transport's retries end within a few minutes).
BATCH_ID_MEMORY = 600.0


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
        """Every message at or below ``horizon`` is handled: forget those ids, and the batch
        ids of messages made ``BATCH_ID_MEMORY`` before it (a second copy of such a batch is
        at or below the horizon too, so it was met while the first was still known)."""
        if horizon > self.horizon:
            self.horizon = horizon
            self.handled = {m for m in self.handled if m > horizon}
            forget = horizon - (int(BATCH_ID_MEMORY * 1000) << 22)
            self.seen_batches = {b: m for b, m in self.seen_batches.items() if m > forget}
