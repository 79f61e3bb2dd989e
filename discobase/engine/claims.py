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
default, plus one history read). A claim whose writer never wrote (it died, its write failed)
stops counting after :data:`CLAIM_TTL`. Claims are deleted with the log they are part of.
"""

from __future__ import annotations

import asyncio
import secrets

from ..codec import FormatProblem, Header, MessageTooLongError, decode_claim, encode_claim
from ..errors import UniqueViolationError, ValidationError
from .core import Claim, TableCore
from .feed import ChangeLog
from .horizon import snowflake_ms
from .shard import LogShard
from .storage import StoredMessage
from .writes import KeyPlacement

__all__ = ("CLAIM_TTL", "Claims")

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
        self._added = 0
        core.on_claim = self.note

    def note(self, shard: LogShard, message: StoredMessage, header: Header) -> None:
        """A claim message read from the log or the gateway."""
        try:
            field, value, key, by = decode_claim(header, message.content)
        except FormatProblem as problem:
            self.core.problem(shard, message, problem)
            return
        self._add(Claim(field, value, key, by), message.id)
        shard.log_ids.append(message.id)  # deleted with the log a snapshot folds

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
        for claim, content in encoded:
            shard = self.placement.shard_for([claim.field, claim.value])
            sent = await core.storage.send(shard.channel_id, content, nonce=secrets.token_hex(8))
            core.clock.observe(sent.id)
            shard.handled.add(sent.id)
            shard.log_ids.append(sent.id)
            self._add(claim, sent.id)
            posted.append((claim, sent.id, shard))
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
        for claim, message_id, _ in posted:
            for other_id, other in sorted(self.seen.get(claim.slot, {}).items()):
                if other_id >= message_id or other.by == by:
                    continue
                if claim.field is not None and other.key == claim.key:
                    continue  # the same record keeps its value
                if snowflake_ms(message_id) - snowflake_ms(other_id) < _TTL_MS:
                    field = claim.field or core.schema.primary_key or "pk"
                    raise UniqueViolationError(core.name, field, claim.value, other.key)
