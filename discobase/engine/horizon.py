"""The horizon of a log channel: the message id at or below which it is known complete.

A message id (a snowflake) begins with the millisecond at which one of Discord's many workers
made it, so ids of messages that two processes send at about the same time are not in the order
Discord stored them, and a gateway event can reach a process after the REST answer to a later
message. "Every message at or below the highest id applied is applied" is therefore false.

What holds instead: a REST read of a channel returns every message stored before the read
began, and a message stored after that was made after it, so its id's time is at most a margin
(the workers' clock skew plus the time a create takes to be stored) before the read began. Every
message made earlier than the read's start minus the margin was in the read: that point is the
read's horizon. Only REST reads move a channel's horizon; gateway events never do.

The read's start is measured on Discord's clock, bounded from below with what the process has
seen: each message id seen at a local time gives ``local - id time``, which is at least the
local clock's lead over Discord's (the message was made before it was seen). The smallest such
lead, taken from the local time at the read's start, is never later than Discord's time then.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

__all__ = ("DISCORD_EPOCH_MS", "ServerClock", "snowflake_ms")

DISCORD_EPOCH_MS = 1420070400000


def snowflake_ms(message_id: int) -> int:
    """The Unix time in milliseconds at which a snowflake was made."""
    return (message_id >> 22) + DISCORD_EPOCH_MS


def _local_ms(now: Callable[[], datetime]) -> int:
    return int(now().timestamp() * 1000)


class ServerClock:
    """A lower bound on Discord's clock, learnt from the ids of messages as they are seen."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        #: The local clock (the storage's: a simulated one substitutes its own).
        self.now = now
        self._lead_ms: int | None = None

    def observe(self, message_id: int) -> None:
        """A message with this id was seen just now (acknowledged, read or received)."""
        lead = _local_ms(self.now) - snowflake_ms(message_id)
        if self._lead_ms is None or lead < self._lead_ms:
            self._lead_ms = lead

    def read_starts(self) -> int:
        """Call before a REST read; pass the result to :meth:`horizon` after it."""
        return _local_ms(self.now)

    def horizon(self, started: int, margin: float) -> int:
        """The highest message id that a read begun at ``started`` (local ms) surely
        returned, given ``margin`` seconds of clock skew and storing delay; 0 when no message
        has been seen yet."""
        if self._lead_ms is None:
            return 0
        ms = started - self._lead_ms - int(margin * 1000) - DISCORD_EPOCH_MS
        return max(0, ((ms + 1) << 22) - 1)
