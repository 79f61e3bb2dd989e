"""Messages that reach a loaded table after its load: gateway events and catch-up reads.

Each shard has a horizon (see :mod:`.horizon`): every message at or below it is known, because
a REST read returned it. A gateway message is applied when it arrives (its batch id tells a
repeat); a catch-up reads back to the horizon, applies the messages not handled yet (by id,
not "newer than the last id"), then moves the horizon.
"""

from __future__ import annotations

from collections.abc import Callable

from ..codec import FormatProblem, parse_header
from .core import TableCore
from .shard import LogShard
from .storage import StoredMessage

__all__ = ("Ingest",)


class Ingest:
    """Applies messages seen on the gateway or by catch-up reads to one table."""

    def __init__(self, core: TableCore) -> None:
        self.core = core
        #: Gateway messages that arrived while the table loads (applied once it has loaded).
        self._early: list[StoredMessage] | None = None
        #: Told after each read to the horizon: (shard, the read's start, its newest message).
        self.on_read: Callable[[LogShard, int, int], None] | None = None

    def hold(self) -> None:
        """Keep gateway messages back until :meth:`release` (while the table loads)."""
        self._early = []

    def release(self) -> list[StoredMessage]:
        """Stop holding gateway messages back; return those held."""
        early, self._early = self._early or [], None
        return early

    def spawn(self, message: StoredMessage) -> None:
        """Apply a gateway message in the background (it may need a download)."""
        if self._early is not None:
            self._early.append(message)
            return
        self.core.background.spawn(self.ingest(message))

    async def ingest(self, message: StoredMessage, *, confirmed: bool = False) -> None:
        """Apply a message seen on the gateway (another process's write, or our own echo), or
        by a REST read (``confirmed``: Discord has it, so even our own unacknowledged send is
        applied; its acknowledgement then finds it applied)."""
        core = self.core
        shard = core.by_channel[message.channel_id]
        if message.id in shard.handled:
            return
        if not core.is_ours(shard, message):
            shard.handled.add(message.id)
            return
        try:
            header = parse_header(message.content)
        except FormatProblem as problem:
            shard.handled.add(message.id)
            core.problem(shard, message, problem)
            return
        if header.kind == "batch":
            batch_id = header.fields.get("id", "")
            if not confirmed and batch_id in shard.writer.in_flight:
                shard.echoes[batch_id] = message  # our own send: its acknowledgement applies it
                return
            await core.apply_message(shard, message, header)
            shard.handled.add(message.id)
            return
        shard.handled.add(message.id)
        if header.kind == "snap" and header.fields.get("id", "") not in shard.own_snapshots:
            shard.foreign_snapshot = True
        elif header.kind in ("claim", "release") and core.on_claim is not None:
            core.on_claim(shard, message, header)

    def send_failed(self, channel_id: int, batch_id: str) -> None:
        """A send failed after its retries; if Discord has it after all, it counts."""
        shard = self.core.by_channel[channel_id]
        echo = shard.echoes.pop(batch_id, None)
        if echo is not None:
            self.core.background.spawn(self.ingest(echo))

    async def catch_up(self) -> None:
        """Read each shard back to its horizon and apply what was missed (after a reconnect)."""
        for shard in self.core.shards:
            await self.read_to_horizon(shard)

    async def read_to_horizon(self, shard: LogShard) -> None:
        """Apply every message above the horizon not handled yet; move the horizon."""
        core = self.core
        started = core.clock.read_starts()
        newest = 0
        for message in await core.storage.newer_than(shard.channel_id, shard.horizon):
            core.clock.observe(message.id)
            newest = max(newest, message.id)
            await self.ingest(message, confirmed=True)
        shard.advance(core.read_horizon(started, newest))
        if self.on_read is not None:
            self.on_read(shard, started, newest)
