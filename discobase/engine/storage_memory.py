"""A :class:`~.storage.Storage` held in memory: the engine without Discord (unit tests).

Like TinyDB's ``MemoryStorage``: everything lives in dicts of one process and is gone when it
ends. It keeps what the engine relies on from Discord: message ids are snowflakes of its clock
(which stands still unless :meth:`MemoryStorage.advance` moves it), history is newest first, a
nonce resent to a channel returns the first message sent with it, a deleted message's
attachment is gone. Private threads of a channel hold messages as channels do; an archived
one (:meth:`MemoryStorage.archive`) is not in :meth:`~MemoryStorage.cached_channels` and a
message sent to it unarchives it, as on Discord; deleting a channel deletes its threads. Requests are counted by route in :attr:`MemoryStorage.calls`.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ..codec import CONTENT_LIMIT
from ..errors import DiscordRejectedError, StorageCorruptError
from .access import NEEDED
from .horizon import DISCORD_EPOCH_MS
from .storage import Storage, StoredAttachment, StoredChannel, StoredMessage, StoredOverwrite

__all__ = ("MemoryStorage",)


class MemoryStorage:
    """One guild's channels and messages in memory, written as the user ``user_id``."""

    def __init__(self, *, user_id: int = 1, start: datetime | None = None) -> None:
        self.user_id = user_id
        self._time = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._sequence = itertools.count()
        self.channels: dict[int, StoredChannel] = {}
        #: Channel id -> message id -> message.
        self.messages: dict[int, dict[int, StoredMessage]] = {}
        self._files: dict[str, bytes] = {}
        self._nonces: dict[tuple[int, str], StoredMessage] = {}
        self.calls: Counter[str] = Counter()
        #: Threads that are archived.
        self.archived: set[int] = set()

    # -- the clock ------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._time

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self._time += timedelta(seconds=seconds)

    def _snowflake(self) -> int:
        ms = int(self._time.timestamp() * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (next(self._sequence) & 0x3FFFFF)

    # -- messages -------------------------------------------------------------------------

    def fits(self, content: str) -> bool:
        return len(content) <= CONTENT_LIMIT

    def is_ours(self, message: StoredMessage) -> bool:
        return message.author_id == self.user_id and message.webhook_id is None

    def _channel(self, channel_id: int, route: str) -> dict[int, StoredMessage]:
        self.calls[route] += 1
        try:
            return self.messages[channel_id]
        except KeyError:
            raise StorageCorruptError(f"{route}: channel {channel_id} does not exist") from None

    def post(
        self,
        channel_id: int,
        content: str,
        attachment: bytes | None = None,
        *,
        filename: str = "body",
        author_id: int | None = None,
        webhook_id: int | None = None,
    ) -> StoredMessage:
        """Store a message as anyone (another user: ``author_id``; a webhook: ``webhook_id``),
        not counted as a request of this process."""
        message_id = self._snowflake()
        attachments: tuple[StoredAttachment, ...] = ()
        if attachment:
            url = f"memory://{channel_id}/{message_id}/{filename}"
            self._files[url] = attachment
            attachments = (StoredAttachment(message_id, filename, len(attachment), url),)
        message = StoredMessage(
            message_id,
            channel_id,
            self.user_id if author_id is None else author_id,
            content,
            attachments,
            webhook_id,
        )
        self.messages[channel_id][message_id] = message
        return message

    async def send(
        self,
        channel_id: int,
        content: str,
        attachment: bytes | None = None,
        *,
        filename: str = "body",
        nonce: str | None = None,
    ) -> StoredMessage:
        route = "POST /channels/{id}/messages"
        self._channel(channel_id, route)
        if len(content) > CONTENT_LIMIT:
            raise DiscordRejectedError(route, 400, 50035, "content is over 2000 characters")
        if nonce is not None and (channel_id, nonce) in self._nonces:
            return self._nonces[channel_id, nonce]
        self.archived.discard(channel_id)  # a message unarchives its thread
        message = self.post(channel_id, content, attachment, filename=filename)
        if nonce is not None:
            self._nonces[channel_id, nonce] = message
        return message

    async def history(
        self, channel_id: int, *, before: int | None = None
    ) -> AsyncIterator[StoredMessage]:
        """Newest first, counted as one request per 100 messages (as Discord pages)."""
        route = "GET /channels/{id}/messages"
        cursor = before
        while True:
            messages = self._channel(channel_id, route)
            page = sorted((m for m in messages if cursor is None or m < cursor), reverse=True)[:100]
            for message_id in page:
                if message_id in messages:
                    yield messages[message_id]
            if len(page) < 100:
                return
            cursor = page[-1]

    async def newer_than(self, channel_id: int, last_id: int) -> list[StoredMessage]:
        newer: list[StoredMessage] = []
        async for message in self.history(channel_id):
            if message.id <= last_id:
                break
            newer.append(message)
        return newer[::-1]

    async def read_attachment(self, attachment: StoredAttachment) -> bytes | None:
        self.calls["GET attachment"] += 1
        return self._files.get(attachment.url)

    async def delete_messages(self, channel_id: int, message_ids: list[int]) -> None:
        messages = self._channel(channel_id, "DELETE /channels/{id}/messages")
        for message_id in message_ids:
            message = messages.pop(message_id, None)
            for attachment in message.attachments if message is not None else ():
                self._files.pop(attachment.url, None)

    # -- channels -------------------------------------------------------------------------

    def cached_channels(self) -> list[StoredChannel]:
        return [c for c in self.channels.values() if c.id not in self.archived]

    async def list_channels(self) -> list[StoredChannel]:
        self.calls["GET /guilds/{id}/channels"] += 1
        return [c for c in self.channels.values() if c.kind != "thread"]

    def _create(self, name: str, kind: str, category_id: int | None) -> int:
        self.calls["POST /guilds/{id}/channels"] += 1
        channel_id = self._snowflake()
        if kind == "category":
            self.channels[channel_id] = StoredChannel(channel_id, name, "category")
        else:
            self.channels[channel_id] = StoredChannel(channel_id, name, "text", category_id)
            self.messages[channel_id] = {}
            self.set_overwrites(channel_id, self.hidden())
        return channel_id

    def hidden(self) -> tuple[StoredOverwrite, ...]:
        """The overwrites the transport gives a storage channel: hidden from ``@everyone``
        (the default role's id is the guild's: 0 here), what storage needs for its user."""
        return (
            StoredOverwrite(0, "everyone", deny=frozenset({"view_channel"})),
            StoredOverwrite(self.user_id, "self", allow=frozenset(NEEDED)),
        )

    def set_overwrites(self, channel_id: int, overwrites: tuple[StoredOverwrite, ...]) -> None:
        """Replace a channel's overwrites (as someone with Manage Roles may); its user's
        permissions follow Discord's order: everything storage needs, then ``@everyone``'s
        overwrite, then its own."""
        own = set(NEEDED)
        for target in ("everyone", "self"):
            for overwrite in overwrites:
                if overwrite.target == target:
                    own = (own - overwrite.deny) | overwrite.allow
        self.channels[channel_id] = replace(
            self.channels[channel_id], overwrites=overwrites, own_permissions=frozenset(own)
        )

    async def create_category(self, name: str) -> int:
        return self._create(name, "category", None)

    async def create_channel(self, name: str, category_id: int) -> int:
        return self._create(name, "text", category_id)

    async def hide_channel(self, channel_id: int) -> None:
        self.calls["PATCH /channels/{id}"] += 1
        self.set_overwrites(channel_id, self.hidden())

    async def delete_channel(self, channel_id: int) -> None:
        self.calls["DELETE /channels/{id}"] += 1
        self._delete(channel_id)

    def _delete(self, channel_id: int) -> None:
        self.channels.pop(channel_id, None)
        self.archived.discard(channel_id)
        for message in self.messages.pop(channel_id, {}).values():
            for attachment in message.attachments:
                self._files.pop(attachment.url, None)
        for thread in [c.id for c in self.channels.values() if c.parent_id == channel_id]:
            self._delete(thread)

    # -- threads --------------------------------------------------------------------------

    async def create_thread(self, parent_id: int, name: str) -> int:
        self.calls["POST /channels/{id}/threads"] += 1
        parent = self.channels.get(parent_id)
        if parent is None or parent.kind != "text":
            raise StorageCorruptError(f"channel {parent_id} is not a text channel")
        thread_id = self._snowflake()
        self.channels[thread_id] = StoredChannel(
            thread_id, name, "thread", parent.category_id, parent_id=parent_id
        )
        self.messages[thread_id] = {}
        return thread_id

    async def fetch_thread(self, thread_id: int) -> StoredChannel | None:
        self.calls["GET /channels/{id}"] += 1
        channel = self.channels.get(thread_id)
        return channel if channel is not None and channel.kind == "thread" else None

    async def list_threads(self, parent_id: int) -> list[StoredChannel]:
        self.calls["GET /channels/{id}/threads"] += 1
        return [c for c in self.channels.values() if c.parent_id == parent_id]

    def archive(self, thread_id: int) -> None:
        """Archive a thread (as Discord does after it has been idle)."""
        self.archived.add(thread_id)


if TYPE_CHECKING:
    _implements: Storage = MemoryStorage()  # the type checker holds it to the protocol
