"""The one chokepoint for Discord I/O: the only module that imports :mod:`discord`.

Every REST call the engine makes passes through :class:`Transport`, which counts it by route,
retries what is safe to retry (5xx, 429, timeouts, dropped connections) with backoff, and turns
Discord's exceptions into discobase's. Messages come back as :class:`StoredMessage`, plain data
that the layers above can read without knowing discord.py.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import random
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
import discord

from .errors import (
    DiscordRejectedError,
    DiscordUnavailableError,
    GuildNotFoundError,
    MissingPermissionsError,
    NotConnectedError,
    StorageCorruptError,
)

__all__ = (
    "RetryPolicy",
    "StoredAttachment",
    "StoredMessage",
    "Transport",
    "snowflake_time",
    "utcnow",
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Permissions the bot needs in the guild, by discord.py's names.
REQUIRED_PERMISSIONS = (
    "view_channel",
    "send_messages",
    "read_message_history",
    "attach_files",
    "manage_channels",
    "manage_messages",
    "manage_roles",
)
_DISCORD_EPOCH_MS = 1420070400000
#: Channels a category may hold.
CATEGORY_LIMIT = 50
_BULK_DELETE_AGE = timedelta(days=13, hours=23)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed request is tried again.

    ``attempts`` counts the first try. The delay before retry ``n`` is
    ``base_delay * 2**(n-1)`` (capped at ``max_delay``, with jitter); a 429 waits its
    ``retry_after`` instead. ``timeout`` bounds one request.
    """

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    timeout: float = 30.0

    def delay(self, attempt: int) -> float:
        base: float = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)


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

    @classmethod
    def from_payload(cls, data: dict[str, Any], channel_id: int | None = None) -> StoredMessage:
        return cls(
            id=int(data["id"]),
            channel_id=int(data.get("channel_id") or channel_id or 0),
            author_id=int((data.get("author") or {}).get("id") or 0),
            content=data.get("content") or "",
            attachments=tuple(
                StoredAttachment(
                    int(a["id"]), a.get("filename", ""), int(a.get("size", 0)), a["url"]
                )
                for a in data.get("attachments") or ()
            ),
            webhook_id=int(data["webhook_id"]) if data.get("webhook_id") else None,
        )

    @classmethod
    def from_message(cls, message: discord.Message) -> StoredMessage:
        return cls(
            id=message.id,
            channel_id=message.channel.id,
            author_id=message.author.id,
            content=message.content,
            attachments=tuple(
                StoredAttachment(a.id, a.filename, a.size, a.url) for a in message.attachments
            ),
            webhook_id=message.webhook_id,
        )


def snowflake_time(snowflake: int) -> datetime:
    """When a snowflake was made (messages: when they were sent)."""
    return datetime.fromtimestamp(((snowflake >> 22) + _DISCORD_EPOCH_MS) / 1000, tz=UTC)


def utcnow() -> datetime:
    """The local clock, as discord.py reads it (a simulated Discord substitutes its own)."""
    return discord.utils.utcnow()


class Transport:
    """Discord REST and gateway access for one database, through one discord.py client."""

    def __init__(self, client: discord.Client, retry: RetryPolicy | None = None) -> None:
        self.client = client
        self.retry = retry or RetryPolicy()
        #: REST calls made, by route (``"POST /channels/{id}/messages"``); attachment downloads
        #: count under ``"GET attachment"``.
        self.calls: Counter[str] = Counter()
        #: Failed attempts that were retried, by route.
        self.retries: Counter[str] = Counter()
        self._subscriber: tuple[Callable[[StoredMessage], None], Callable[[], None]] | None = None

    @staticmethod
    def create_client() -> discord.Client:
        """A client for a database that runs its own: no privileged intents, no commands."""
        from discord.ext import commands

        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        return commands.Bot(
            command_prefix=commands.when_mentioned, intents=intents, help_command=None
        )

    def is_ours(self, message: StoredMessage) -> bool:
        """Whether this bot's own user wrote ``message`` (not a webhook): only such messages
        are storage. The guild owner and Administrators see and can post in hidden channels,
        and an interaction response in a storage channel is the bot's user with a webhook id."""
        user = self.client.user
        return user is not None and message.author_id == user.id and message.webhook_id is None

    # -- the chokepoint -------------------------------------------------------------------

    async def _call(self, route: str, request: Callable[[], Awaitable[T]]) -> T:
        """Run one REST request with counting, a timeout and retries."""
        policy = self.retry
        last: BaseException | None = None
        for attempt in range(1, policy.attempts + 1):
            self.calls[route] += 1
            try:
                return await asyncio.wait_for(request(), policy.timeout)
            except discord.Forbidden as error:
                raise MissingPermissionsError(
                    0, [f"{route} ({error.text or 'forbidden'})"]
                ) from error
            except discord.NotFound as error:
                raise StorageCorruptError(
                    f"Discord answered 404 to {route}: {error.text or 'not found'} (a storage "
                    "channel or message was deleted by hand?); run db.check()"
                ) from error
            except discord.RateLimited as error:
                last, wait = error, error.retry_after
            except discord.HTTPException as error:
                if error.status != 429 and error.status < 500:
                    raise DiscordRejectedError(
                        route, error.status, error.code, error.text
                    ) from error
                last = error
                retry_after = getattr(error, "retry_after", None)
                wait = retry_after if retry_after else policy.delay(attempt)
            except (TimeoutError, aiohttp.ClientError, OSError) as error:
                last, wait = error, policy.delay(attempt)
            if attempt < policy.attempts:
                self.retries[route] += 1
                log.warning("%s failed (%s), retry %d in %.2fs", route, last, attempt, wait)
                await asyncio.sleep(wait)
        raise DiscordUnavailableError(route, policy.attempts, last)

    # -- guild and channels -----------------------------------------------------------------

    def find_guild(self, guild: int | str) -> discord.Guild:
        """The guild by id, or the first whose name matches exactly."""
        if not self.client.is_ready():
            raise NotConnectedError("the Discord client is not ready; log in first")
        found = (
            self.client.get_guild(guild)
            if isinstance(guild, int)
            else next((g for g in self.client.guilds if g.name == guild), None)
        )
        if found is None:
            raise GuildNotFoundError(guild)
        missing = [
            name for name in REQUIRED_PERMISSIONS if not getattr(found.me.guild_permissions, name)
        ]
        if missing:
            raise MissingPermissionsError(found.id, missing)
        return found

    def storage_categories(self, guild: discord.Guild, name: str) -> list[discord.CategoryChannel]:
        """The storage categories: ``name``, then ``name-2``, ``name-3``... (a category holds
        at most 50 channels, so storage spills over into the next one)."""
        numbered = []
        for category in guild.categories:
            if category.name == name:
                numbered.append((1, category.id, category))
            elif category.name.startswith(f"{name}-") and category.name[len(name) + 1 :].isdigit():
                numbered.append((int(category.name[len(name) + 1 :]), category.id, category))
        return [category for _, _, category in sorted(numbered, key=lambda item: item[:2])]

    def channels_in(self, guild: discord.Guild, category_name: str) -> dict[int, str]:
        """The text channels of the storage categories, id -> name (gateway cache: no REST)."""
        ids = {category.id for category in self.storage_categories(guild, category_name)}
        return {c.id: c.name for c in guild.text_channels if c.category_id in ids}

    async def channel_home(self, channel_id: int) -> tuple[int, int] | None:
        """(guild id, parent category id) of a channel, read by REST (for a channel the
        gateway has not told us about yet); None when it is gone or not a guild channel."""
        try:
            channel = await self._call(
                "GET /channels/{id}", lambda: self.client.fetch_channel(channel_id)
            )
        except (StorageCorruptError, MissingPermissionsError):
            return None
        if not isinstance(channel, discord.TextChannel) or channel.category_id is None:
            return None
        return channel.guild.id, channel.category_id

    def _overwrites(
        self, guild: discord.Guild, admin_role: int | None
    ) -> dict[discord.Role | discord.Member | discord.Object, discord.PermissionOverwrite]:
        overwrites: dict[
            discord.Role | discord.Member | discord.Object, discord.PermissionOverwrite
        ]
        overwrites = {
            guild.default_role: discord.PermissionOverwrite(view_channel=False),
            guild.me: discord.PermissionOverwrite(
                view_channel=True,
                send_messages=True,
                read_message_history=True,
                attach_files=True,
                manage_messages=True,
            ),
        }
        if admin_role is not None:
            role = guild.get_role(admin_role)
            if role is not None:
                overwrites[role] = discord.PermissionOverwrite(
                    view_channel=True, read_message_history=True, send_messages=False
                )
        return overwrites

    async def _create_category(
        self, guild: discord.Guild, name: str, admin_role: int | None
    ) -> discord.CategoryChannel:
        return await self._call(
            "POST /guilds/{id}/channels",
            lambda: guild.create_category(
                name, overwrites=self._overwrites(guild, admin_role), reason="discobase storage"
            ),
        )

    async def ensure_category(
        self, guild: discord.Guild, name: str, admin_role: int | None
    ) -> None:
        """Create the (hidden) storage category ``name`` if it does not exist."""
        if not self.storage_categories(guild, name):
            await self._create_category(guild, name, admin_role)

    async def create_channel(
        self, guild: discord.Guild, category_name: str, name: str, admin_role: int | None
    ) -> int:
        """Create a hidden storage text channel in the first storage category with room (a new
        category when all are full); return its id."""
        categories = self.storage_categories(guild, category_name)
        category = next((c for c in categories if len(c.channels) < CATEGORY_LIMIT), None)
        if category is None:
            category = await self._create_category(
                guild, f"{category_name}-{len(categories) + 1}", admin_role
            )
        channel = await self._call(
            "POST /guilds/{id}/channels",
            lambda: guild.create_text_channel(
                name,
                category=category,
                overwrites=self._overwrites(guild, admin_role),
                reason="discobase storage",
            ),
        )
        return channel.id

    async def delete_channel(self, channel_id: int) -> None:
        """Delete a channel; one that is already gone counts as deleted."""
        try:
            await self._call(
                "DELETE /channels/{id}",
                lambda: self.client.http.delete_channel(channel_id, reason="discobase drop"),
            )
        except StorageCorruptError:
            log.info("channel %s was already deleted", channel_id)

    # -- messages ---------------------------------------------------------------------------

    async def send(
        self,
        channel_id: int,
        content: str,
        attachment: bytes | None = None,
        *,
        filename: str = "body",
        nonce: str | None = None,
    ) -> StoredMessage:
        """Send one message with ``enforce_nonce``; ``nonce`` names the logical message (a
        fresh random one when not given). Every retry reuses it, so Discord keeps at most one
        copy; never reuse a nonce for a different message: Discord would answer with the
        earlier one and store nothing."""
        channel = self.client.get_partial_messageable(channel_id)
        # discord.py sends a MISSING nonce as the string "..." with enforce_nonce, and Discord
        # then returns the first message with that nonce for every later one.
        message_nonce = nonce or secrets.token_hex(8)

        async def request() -> discord.Message:
            file = discord.File(io.BytesIO(attachment), filename=filename) if attachment else None
            return await channel.send(
                content,
                file=file or discord.utils.MISSING,
                nonce=message_nonce,
                allowed_mentions=discord.AllowedMentions.none(),
                suppress_embeds=True,
            )

        message = await self._call("POST /channels/{id}/messages", request)
        return StoredMessage.from_message(message)

    async def history(
        self, channel_id: int, *, before: int | None = None
    ) -> AsyncIterator[StoredMessage]:
        """The channel's messages newest first, 100 per REST call, older than ``before``."""
        cursor = before
        while True:
            page_before = cursor
            page: list[Any] = await self._call(
                "GET /channels/{id}/messages",
                functools.partial(self.client.http.logs_from, channel_id, 100, before=page_before),
            )
            for data in page:
                yield StoredMessage.from_payload(data, channel_id)
            if len(page) < 100:
                return
            cursor = int(page[-1]["id"])

    async def newer_than(self, channel_id: int, last_id: int) -> list[StoredMessage]:
        """The channel's messages after ``last_id``, oldest first (paged newest first)."""
        newer: list[StoredMessage] = []
        async for message in self.history(channel_id):
            if message.id <= last_id:
                break
            newer.append(message)
        return newer[::-1]

    async def read_attachment(self, attachment: StoredAttachment) -> bytes | None:
        """An attachment's bytes, or None when it is gone."""
        try:
            return await self._call(
                "GET attachment", lambda: self.client.http.get_from_cdn(attachment.url)
            )
        except StorageCorruptError:
            return None

    async def delete_messages(self, channel_id: int, message_ids: list[int]) -> None:
        """Delete messages: bulk (100 per call) while young enough, one by one after."""
        cutoff = discord.utils.utcnow() - _BULK_DELETE_AGE
        young = [m for m in message_ids if snowflake_time(m) > cutoff]
        old = [m for m in message_ids if snowflake_time(m) <= cutoff]
        for start in range(0, len(young), 100):
            chunk = young[start : start + 100]
            if len(chunk) == 1:
                old.extend(chunk)
                continue
            await self._call(
                "POST /channels/{id}/messages/bulk-delete",
                lambda chunk=chunk: self.client.http.delete_messages(  # type: ignore[misc]
                    channel_id, [discord.Object(m).id for m in chunk]
                ),
            )
        for message_id in old:
            try:
                await self._call(
                    "DELETE /channels/{id}/messages/{id}",
                    lambda message_id=message_id: self.client.http.delete_message(  # type: ignore[misc]
                        channel_id, message_id
                    ),
                )
            except StorageCorruptError:
                log.debug("message %s was already deleted", message_id)

    # -- gateway ----------------------------------------------------------------------------

    def listen(
        self, on_message: Callable[[StoredMessage], None], on_reconnect: Callable[[], None]
    ) -> bool:
        """Call ``on_message`` for every message created in the client's guilds, and
        ``on_reconnect`` when the client connects afresh (a new READY, whose missed events
        the gateway does not replay).

        Needs a :class:`discord.ext.commands.Bot`-like client (``add_listener``); returns
        False when the client cannot deliver events, in which case ``Database.sync`` catches up.
        """
        add_listener = getattr(self.client, "add_listener", None)
        if add_listener is None:
            return False
        self.unlisten()
        self._subscriber = (on_message, on_reconnect)
        add_listener(self._on_message, "on_message")
        add_listener(self._on_ready, "on_ready")
        return True

    def unlisten(self) -> None:
        """Stop delivering gateway events."""
        remove_listener = getattr(self.client, "remove_listener", None)
        if self._subscriber is not None and remove_listener is not None:
            remove_listener(self._on_message, "on_message")
            remove_listener(self._on_ready, "on_ready")
        self._subscriber = None

    async def _on_message(self, message: discord.Message) -> None:
        if self._subscriber is not None:
            self._subscriber[0](StoredMessage.from_message(message))

    async def _on_ready(self) -> None:
        if self._subscriber is not None:
            self._subscriber[1]()
