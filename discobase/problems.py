"""What ``Database.check`` reports: a :class:`Problem` in storage, of a :class:`ProblemKind`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ("Problem", "ProblemKind")


class ProblemKind(StrEnum):
    """Why discobase skipped something in storage. Each is a ``str``: its value is what
    reports and the command line print (``ProblemKind.CHECKSUM == "checksum"``)."""

    #: Not a discobase message.
    FOREIGN = "foreign"
    #: A storage format this version does not read.
    UNKNOWN_VERSION = "unknown-version"
    UNREADABLE = "unreadable"
    #: The body does not match its checksum (truncated or edited).
    CHECKSUM = "checksum"
    #: An encrypted message that does not authenticate: edited, cut, or moved from another
    #: channel or message.
    TAMPERED = "tampered"
    #: An attachment (or a snapshot part) the message needs is gone.
    MISSING_ATTACHMENT = "missing-attachment"
    #: A record that does not fit the table's schema.
    INVALID_RECORD = "invalid-record"
    #: Part of an ``insert_many`` whose other parts never landed.
    INCOMPLETE_GROUP = "incomplete-group"
    #: A channel in the storage category that no table uses.
    ORPHAN_CHANNEL = "orphan-channel"
    #: Written by someone other than the bot, or by a webhook.
    FOREIGN_AUTHOR = "foreign-author"
    #: A catalog event naming a channel outside the storage category.
    FOREIGN_CHANNEL = "foreign-channel"
    #: A second ``create`` of a table that exists (two processes created it at once).
    DUPLICATE_CREATE = "duplicate-create"
    #: A storage channel whose permission overwrites let someone other than the bot read or
    #: change it, or keep the bot out of it.
    CHANNEL_ACCESS = "channel-access"


@dataclass(frozen=True)
class Problem:
    """Something in storage that discobase skipped: reported by ``Database.check``."""

    table: str | None
    channel_id: int | None
    message_id: int | None
    kind: ProblemKind
    detail: str
