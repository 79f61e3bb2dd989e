"""Claims: unique values (and the keys of inserts) taken across processes.

Each process checks unique constraints against what it has applied, so two processes that
take one value within the delay of each other's gateway events both succeed. A table whose
class sets ``Settings.claim_unique = True`` closes that gap with the log itself. Before a write
that takes a unique value its record does not hold yet (or inserts a key), the writer posts a
``claim`` message for it, in the channel the value hashes to, so every claim on one value is
in one channel, in id order. It then waits until that channel is known complete up to its
claim (the claim's id is at or below the channel's horizon: see :mod:`.horizon`), reads what
it did not have, and goes on only if no other key's claim on the value has a lower id (and is
younger than :data:`CLAIM_TTL` at the time of ours) and no other record holds the value. Every
process sees the same claims in the same order, so of concurrent claimers only the lowest id
goes on, and a later claimer finds either its claim or the record it wrote.

A claim costs one message and the wait for the horizon (``Compaction.margin``, 15 s by
default, plus one history read). A write whose claiming fails (another write claimed one of its
values first, or Discord failed meanwhile) never writes: it posts a ``release`` in each channel
it claimed in, and a claim released before another claim on its value (a lower id, in the same
channel) does not count against that one. A claim whose writer never wrote and never released
(it died, its write failed) stops counting after :data:`CLAIM_TTL`. Claims and releases are
deleted with the log they are part of.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterable

from ..codec import (
    FormatProblem,
    Header,
    MessageTooLongError,
    decode_claim,
    decode_release,
    encode_claim,
    encode_release,
)
from ..errors import UniqueViolationError, ValidationError
from .core import Claim, TableCore
from .feed import ChangeLog
from .horizon import snowflake_ms
from .shard import LogShard
from .storage import StoredMessage
from .writes import KeyPlacement

__all__ = ("CLAIM_TTL", "Claims")

log = logging.getLogger(__name__)

#: Seconds after which a claim whose record never appeared stops counting.
CLAIM_TTL = 300.0
_TTL_MS = int(CLAIM_TTL * 1000)


class Claims:
    """The claims a table's processes posted, and the claiming of new ones."""

    def __init__(self, core: TableCore, feed: ChangeLog, placement: KeyPlacement) -> None:
        self.core = core
        self.feed = feed
        self.placement = placement
        #: Slot -> every claim on it seen, by message id.
        self.seen: dict[str, dict[int, Claim]] = {}
        #: Claiming write (``by``) -> the id of the first release of its claims seen.
        self.released: dict[str, int] = {}
        self._added = 0
        core.on_claim = self.note

    def note(self, shard: LogShard, message: StoredMessage, header: Header) -> None:
        """A claim (or release) message read from the log or the gateway."""
        try:
            if header.kind == "release":
                self._release_seen(decode_release(header, message.content), message.id)
            else:
                field, value, key, by = decode_claim(header, message.content)
                self._add(Claim(field, value, key, by), message.id)
        except FormatProblem as problem:
            self.core.problem(shard, message, problem)
            return
        shard.log_ids.append(message.id)  # deleted with the log a snapshot folds

    def _release_seen(self, by: str, message_id: int) -> None:
        self.released[by] = min(message_id, self.released.get(by, message_id))

    def _add(self, claim: Claim, message_id: int) -> None:
        self.seen.setdefault(claim.slot, {})[message_id] = claim
        self._added += 1
        if self._added % 1024 == 0:  # forget claims too old to count
            newest = snowflake_ms(max(m for claims in self.seen.values() for m in claims))
            for slot, claims in list(self.seen.items()):
                for old in [m for m in claims if newest - snowflake_ms(m) > 2 * _TTL_MS]:
                    del claims[old]
                if not claims:
                    del self.seen[slot]
            self.released = {
                by: m for by, m in self.released.items() if newest - snowflake_ms(m) <= 2 * _TTL_MS
            }

    async def claim(self, claims: list[Claim]) -> None:
        """Post ``claims``, wait until they are settled, and raise
        :class:`UniqueViolationError` if another key claimed one of them first."""
        core = self.core
        by = secrets.token_hex(6)
        # Every claim must fit one message (sealed, where the storage seals) before the first
        # is posted: a claim posted for a write that then fails counts for CLAIM_TTL.
        encoded: list[tuple[Claim, str]] = []
        for unsigned in claims:
            claim = Claim(unsigned.field, unsigned.value, unsigned.key, by)
            try:
                content = encode_claim(claim.field, claim.value, claim.key, by)
            except MessageTooLongError as error:
                raise ValidationError(core.name, f"cannot claim {claim.field}: {error}") from None
            if not core.storage.fits(content):
                raise ValidationError(
                    core.name, f"cannot claim {claim.field}: too long for one stored message"
                )
            encoded.append((claim, content))
        posted: list[tuple[Claim, int, LogShard]] = []
        try:
            for claim, content in encoded:
                for shard in self.placement.claim_shards([claim.field, claim.value]):
                    sent = await core.storage.send(
                        shard.channel_id, content, nonce=secrets.token_hex(8)
                    )
                    core.clock.observe(sent.id)
                    shard.handled.add(sent.id)
                    shard.log_ids.append(sent.id)
                    self._add(claim, sent.id)
                    posted.append((claim, sent.id, shard))
            await self._settle(posted)
            self._check(posted, by)
        except Exception:
            # The write will not be sent: its claims must not keep other writes out.
            await self._release(by, {shard.index: shard for _, _, shard in posted}.values())
            raise

    async def _settle(self, posted: list[tuple[Claim, int, LogShard]]) -> None:
        """Wait until every posted claim is at or below its channel's horizon."""
        core = self.core
        for _, message_id, shard in posted:
            read = False
            while shard.horizon < message_id:
                delay = self.feed.settles_in(message_id)
                if delay <= 0 and not read:
                    await self.feed.settle()
                    read = True  # a read that did not settle it is not repeated at once
                else:
                    read = False
                    # A plain timer: nothing but time (and the read above) settles the claim,
                    # and a host that tells timers from other waits (SimCord) sees one.
                    await asyncio.sleep(min(max(delay, 1.0), core.margin))

    def _check(self, posted: list[tuple[Claim, int, LogShard]], by: str) -> None:
        """Raise :class:`UniqueViolationError` when another write claimed a value first."""
        core = self.core
        for claim, message_id, _ in posted:
            for other_id, other in sorted(self.seen.get(claim.slot, {}).items()):
                if other_id >= message_id or other.by == by:
                    continue
                if self.released.get(other.by, message_id) < message_id:
                    continue  # that write failed, and said so before this claim
                if claim.field is not None and other.key == claim.key:
                    continue  # the same record keeps its value
                if snowflake_ms(message_id) - snowflake_ms(other_id) < _TTL_MS:
                    field = claim.field or core.schema.primary_key or "pk"
                    raise UniqueViolationError(core.name, field, claim.value, other.key)

    async def _release(self, by: str, shards: Iterable[LogShard]) -> None:
        """Say in each channel the failed write ``by`` claimed in that its claims count no
        more (best effort: a release that fails leaves them to :data:`CLAIM_TTL`)."""
        content = encode_release(by)
        for shard in shards:
            try:
                sent = await self.core.storage.send(
                    shard.channel_id, content, nonce=secrets.token_hex(8)
                )
            except Exception as error:
                log.warning("table %s: cannot release claims (%s)", self.core.name, error)
                return
            self.core.clock.observe(sent.id)
            shard.handled.add(sent.id)
            shard.log_ids.append(sent.id)
            self._release_seen(by, sent.id)
