"""What the parts of one table's engine share, and how a message read from a shard is applied.

Loading, gateway ingest and the write path all end in :meth:`TableCore.apply_message` or
:meth:`TableCore.apply_batch`: a batch is applied once (by batch id, whichever path meets it
first); a snapshot part is folded at the snapshot's version. Messages that are not readable
discobase data are reported as problems and skipped, never fatal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..codec import (
    Entry,
    FormatProblem,
    Header,
    decode_body,
    decode_entries,
    decode_puts,
    pause_collector,
)
from ..problems import Problem, ProblemKind
from .horizon import ServerClock
from .schema import TableSchema
from .shard import LogShard
from .state import Change, TableState
from .storage import Storage, StoredMessage
from .tasks import BackgroundTasks

__all__ = ("MAX_PROBLEMS", "TableCore", "Write")

log = logging.getLogger(__name__)
#: Problems a table keeps (and ``check()`` reports) per load; later ones are only logged.
MAX_PROBLEMS = 1000


@dataclass(slots=True)
class Write:
    """One operation of a write: a put of ``record`` (its JSON form in ``data``) or a delete.

    ``if_revision``: write only if the key is at that revision now (0: has no record).
    ``record`` is the row the table's state holds (see :mod:`.state`)."""

    key: Any
    record: Any = None
    data: dict[str, Any] | None = None
    if_revision: int | None = None

    @property
    def is_delete(self) -> bool:
        return self.data is None


@dataclass(frozen=True)
class Claim:
    """A value a write takes, to claim across processes: a unique field's value in JSON form,
    or the key of an insert (``field`` None)."""

    field: str | None
    value: Any
    key: Any
    #: The claiming write's random id.
    by: str = ""

    @property
    def slot(self) -> str:
        return json.dumps([self.field, self.value], sort_keys=True)


@dataclass(eq=False)
class TableCore:
    """One table's schema, storage, state and shards, shared by the parts of its engine."""

    schema: TableSchema
    storage: Storage
    state: TableState
    clock: ServerClock
    #: Seconds a horizon stays behind the start of the read that confirmed it.
    margin: float
    size_limit: int
    background: BackgroundTasks
    shards: list[LogShard] = field(default_factory=list)
    by_channel: dict[int, LogShard] = field(default_factory=dict)
    #: Told of the record changes each applied log batch made (the change feed keeps them).
    on_changes: Callable[[list[Change]], None] | None = None
    #: What ``on_changes`` keeps of one batch's changes at most: the newest (by position)
    #: that many, less one. A batch that completes a group of more puts than that tells it
    #: only the group's newest changes, at least that many (None: every change).
    changes_kept: int | None = None
    #: Told of a snapshot loaded, by its ``upto``: the log before it is not there to replay.
    on_snapshot: Callable[[int], None] | None = None
    #: Forgets the records past the table's ttl (engine/expiry.py); None without a ttl.
    expire: Callable[[], None] | None = None
    #: Told of each claim (and claim release) message read (see :mod:`.claims`).
    on_claim: Callable[[LogShard, StoredMessage, Header], None] | None = None

    @property
    def name(self) -> str:
        return self.schema.name

    def add_shards(self, shards: list[LogShard]) -> None:
        self.shards[:] = shards
        self.by_channel.clear()
        self.by_channel.update((shard.channel_id, shard) for shard in shards)

    def read_horizon(self, started: int, newest: int) -> int:
        """The horizon of a read begun at ``started`` whose newest message was ``newest``:
        never past that message, so a local clock that stepped forward cannot carry a
        snapshot over messages the read did not return (or over its own parts)."""
        return min(self.clock.horizon(started, self.margin), newest)

    def is_ours(self, shard: LogShard, message: StoredMessage) -> bool:
        """Only the bot's own messages are storage; anyone else's is reported and skipped."""
        if self.storage.is_ours(message):
            return True
        self.problem(
            shard,
            message,
            FormatProblem(
                ProblemKind.FOREIGN_AUTHOR, "written by another user or a webhook, not this bot"
            ),
        )
        return False

    def problem(self, shard: LogShard, message: StoredMessage, problem: FormatProblem) -> None:
        log.warning(
            "table %s: skipping message %s in channel %s: %s",
            self.name,
            message.id,
            shard.channel_id,
            problem,
        )
        if len(self.state.problems) < MAX_PROBLEMS:  # e.g. a flood of foreign messages
            self.state.problems.append(
                Problem(self.name, shard.channel_id, message.id, problem.kind, problem.detail)
            )

    async def apply_message(
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
                attachment = await self.storage.read_attachment(message.attachments[0])
            body = decode_body(header, message.content, attachment)
        except FormatProblem as problem:
            self.problem(shard, message, problem)
            return
        # Decoded and applied with the collector paused throughout, and the entries dropped
        # before it runs again: it then finds only the records kept, not every entry too.
        with pause_collector(body.count(b"\n") + 1):
            upto = message.id if version is None else version
            # A snapshot part (puts, as a rule) is read by column, without an Entry a record.
            puts = decode_puts(header, body) if header.kind == "part" else None
            if puts is not None:
                self.state.apply_puts(puts, upto, shard.channel_id)
                del puts
            else:
                try:
                    entries = decode_entries(header, body)
                except FormatProblem as problem:
                    self.problem(shard, message, problem)
                    return
                if header.kind == "batch":
                    self.apply_batch(shard, message.id, batch_id, entries)
                else:
                    self.state.apply(entries, upto, shard.channel_id)
                del entries
        if header.kind != "batch" and version is not None and self.on_snapshot is not None:
            self.on_snapshot(version)

    def apply_batch(
        self, shard: LogShard, message_id: int, batch_id: str, entries: list[Entry]
    ) -> bool:
        """Apply a log batch unless it was applied already; return whether it was new."""
        if batch_id in shard.seen_batches:  # e.g. applied while its attachment downloaded
            return False
        shard.seen_batches[batch_id] = message_id
        shard.log_ids.append(message_id)
        shard.messages_since_snapshot += 1
        shard.entries_since_snapshot += len(entries)
        changes: list[Change] = []
        self.state.apply(entries, message_id, shard.channel_id, changes, self.changes_kept)
        if self.on_changes is not None:
            self.on_changes(changes)
        return True
