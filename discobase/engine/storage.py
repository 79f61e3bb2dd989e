"""The storage the engine writes to and reads from: a :class:`Storage` protocol and its data.

The engine sees storage as channels of messages: it sends messages (text and at most one
attachment), reads a channel's history newest first, reads what is newer than an id, downloads
attachments, deletes messages, and lists, creates and deletes channels and categories of the
one guild the storage is bound to, and private threads of its channels. A thread is read and
written by its id exactly as a channel is (Discord: a thread is a channel object whose
``parent_id`` is the text channel it was made in; discord-api-docs, topics/threads.mdx). :class:`~discobase.transport.Transport` implements it over
Discord; :class:`~.storage_memory.MemoryStorage` keeps everything in memory (unit tests).
Message ids are snowflakes: they grow with the time the message was made.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

__all__ = ("Storage", "StoredAttachment", "StoredChannel", "StoredMessage", "StoredOverwrite")


@dataclass(frozen=True)
class StoredAttachment:
    """An attachment of a stored message (its URL expires: re-fetch the message for a new one)."""

    id: int
    filename: str
    size: int
    url: str


@dataclass(frozen=True)
class StoredMessage:
    """A message as the engine sees it."""

    id: int
    channel_id: int
    author_id: int
    content: str
    attachments: tuple[StoredAttachment, ...] = ()
    #: Set when a webhook posted it (interaction responses too, even the bot's own).
    webhook_id: int | None = None


@dataclass(frozen=True)
class StoredOverwrite:
    """One permission overwrite of a channel: whom it is for (``everyone``: the guild's
    default role; ``self``: this process's own user or its managed role) and the permissions it allows and
    denies, by Discord's names as discord.py spells them (``"send_messages"``)."""

    target_id: int
    target: Literal["everyone", "self", "role", "member"]
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()

    def describe(self) -> str:
        if self.target == "everyone":
            return "@everyone"
        return "the bot" if self.target == "self" else f"{self.target} {self.target_id}"


@dataclass(frozen=True)
class StoredChannel:
    """A channel of the bound guild (a category, a text channel, a private thread or another
    kind) and the id of the category it is in (None: none); a thread's ``parent_id`` is the
    text channel it belongs to."""

    id: int
    name: str
    kind: Literal["category", "text", "thread", "other"] = "text"
    category_id: int | None = None
    #: Its permission overwrites (None: the storage does not say).
    overwrites: tuple[StoredOverwrite, ...] | None = None
    #: What this process's own user may do in it, all things counted (roles, overwrites,
    #: Administrator), by Discord's permission names (None: the storage does not say).
    own_permissions: frozenset[str] | None = None
    #: A thread's channel (threads inherit its permissions and have no overwrites of their own).
    parent_id: int | None = None


class Storage(Protocol):
    """What the engine needs of a storage. Failures raise :mod:`discobase.errors`' errors."""

    def is_ours(self, message: StoredMessage) -> bool:
        """Whether this process's own user wrote ``message`` (only such messages are data)."""
        ...

    def fits(self, content: str) -> bool:
        """Whether a message of ``content`` alone (no attachment) fits one message as this
        storage stores it (sealed, for a storage that seals)."""
        ...

    def now(self) -> datetime:
        """The local clock (aware, UTC), as message ids are compared with."""
        ...

    async def send(
        self,
        channel_id: int,
        content: str,
        attachment: bytes | None = None,
        *,
        filename: str = "body",
        nonce: str | None = None,
    ) -> StoredMessage:
        """Store one message; a retry with the same ``nonce`` stores it at most once."""
        ...

    def history(
        self, channel_id: int, *, before: int | None = None
    ) -> AsyncIterator[StoredMessage]:
        """The channel's messages newest first, older than ``before`` when given."""
        ...

    async def newer_than(self, channel_id: int, last_id: int) -> list[StoredMessage]:
        """The channel's messages after ``last_id``, oldest first."""
        ...

    async def read_attachment(self, attachment: StoredAttachment) -> bytes | None:
        """An attachment's bytes, or None when it is gone."""
        ...

    async def delete_messages(self, channel_id: int, message_ids: list[int]) -> None:
        """Delete messages; those already gone count as deleted."""
        ...

    def cached_channels(self) -> list[StoredChannel]:
        """The bound guild's channels as last announced (no request)."""
        ...

    async def list_channels(self) -> list[StoredChannel]:
        """The bound guild's channels, read from the storage (announcements may lag)."""
        ...

    async def create_category(self, name: str) -> int:
        """Create a hidden category; return its id."""
        ...

    async def create_channel(self, name: str, category_id: int) -> int:
        """Create a hidden text channel in a category; return its id."""
        ...

    async def delete_channel(self, channel_id: int) -> None:
        """Delete a channel, thread or category; one already gone counts as deleted."""
        ...

    async def create_thread(self, parent_id: int, name: str) -> int:
        """Create a private thread of the text channel ``parent_id``; return its id. Names
        are unique among a parent's threads: after an unknown outcome, a thread of that name
        is adopted instead of making a second one."""
        ...

    async def fetch_thread(self, thread_id: int) -> StoredChannel | None:
        """A thread by id, read from the storage (archived threads are in no cache); None when
        it is gone or is not a thread."""
        ...

    async def list_threads(self, parent_id: int) -> list[StoredChannel]:
        """The private threads of a text channel, active and archived, read from the storage."""
        ...

    async def hide_channel(self, channel_id: int) -> None:
        """Give a channel the permission overwrites :meth:`create_channel` gives, in place of
        the ones it has."""
        ...
