"""The one chokepoint for Discord I/O: the only module that imports :mod:`discord`.

:class:`Transport` implements the engine's storage protocol
(:class:`~discobase.engine.storage.Storage`) over one guild: every REST call the engine makes
passes through it, which counts it by route, retries what is safe to retry (5xx, 429, timeouts,
dropped connections) with backoff, and turns Discord's exceptions into discobase's (a 404 where
something is deleted means it is gone already). Messages come back as
:class:`~discobase.engine.storage.StoredMessage`, plain data that the layers above can read
without knowing discord.py. It also delivers gateway events to the database (:meth:`listen`),
and tells it of a storage channel or thread Discord says is gone
(:attr:`Transport.on_channel_gone`).
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import functools
import io
import logging
import random
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, TypeVar

import aiohttp
import discord

from .engine.storage import StoredAttachment, StoredChannel, StoredMessage, StoredOverwrite
from .errors import (
    ActiveThreadLimitError,
    DiscordRejectedError,
    DiscordUnavailableError,
    GuildNotFoundError,
    GuildUnavailableError,
    InvalidTokenError,
    MissingPermissionsError,
    NotConnectedError,
    StorageCorruptError,
)

__all__ = ("BoundGuild", "RetryPolicy", "Transport", "snowflake_time")

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Permissions the bot needs in the guild, by discord.py's names. Shards that are private
#: threads need the thread bits (discord-api-docs, topics/threads.mdx, "Permissions"):
#: SEND_MESSAGES has no effect in threads, SEND_MESSAGES_IN_THREADS does; creating a private
#: thread needs CREATE_PRIVATE_THREADS; listing a channel's archived private threads, and
#: deleting threads, need MANAGE_THREADS (resources/channel.mdx, "List Private Archived
#: Threads", "Delete/Close Channel").
REQUIRED_PERMISSIONS = (
    "view_channel",
    "send_messages",
    "read_message_history",
    "attach_files",
    "manage_channels",
    "manage_messages",
    "manage_roles",
    "create_private_threads",
    "send_messages_in_threads",
    "manage_threads",
)
#: Discord's error codes (topics/opcodes-and-status-codes.mdx): an operation other than a
#: delete on an archived thread, such as editing a message; a message into a locked thread;
#: the guild's active-thread cap.
ARCHIVED_THREAD = 50083
LOCKED_THREAD = 160005
ACTIVE_THREAD_LIMIT = 160006
#: A 404's code for a channel or thread that does not exist ("Unknown channel"; a message's
#: is 10008).
UNKNOWN_CHANNEL = 10003
#: A private thread (resources/channel.mdx, channel types).
PRIVATE_THREAD: Final = 12
#: The longest a thread may stay active while idle, in minutes: 7 days. Discord archives a
#: thread after a period of inactivity anyway ("usually not below the auto_archive_duration";
#: topics/threads.mdx), so archived shards are a normal state, not an error.
THREAD_ARCHIVE_MINUTES: Final = 10080
#: The system message Discord posts in a parent when a public thread is made from an older
#: message (message type THREAD_CREATED: never for private threads, topics/threads.mdx); it is
#: Discord's bookkeeping, not anyone's data, so readers never see it.
_THREAD_CREATED = 18
_DISCORD_EPOCH_MS = 1420070400000
#: The characters a message's content may hold (discord-api-docs, Create Message).
CONTENT_LIMIT = 2000
_BULK_DELETE_AGE = timedelta(days=13, hours=23)

#: The timeout of each HTTP exchange made by a request the transport is running.
_REQUEST_TIMEOUT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "discobase_request_timeout", default=None
)


async def _timed_request(request: Callable[..., Awaitable[Any]], route: Any, **kwargs: Any) -> Any:
    """``HTTPClient.request`` with an aiohttp timeout per exchange when the transport runs it.

    discord.py passes extra keyword arguments of ``request`` on to aiohttp's
    ``ClientSession.request``, inside its retry loop and after its rate-limit waits; aiohttp
    raises a ``TimeoutError`` when an exchange takes longer. Requests the transport does not run
    (the bot's own) are left as they are.
    """
    timeout = _REQUEST_TIMEOUT.get()
    if timeout is not None and "timeout" not in kwargs:
        kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
    return await request(route, **kwargs)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed request is tried again.

    ``attempts`` counts the first try. The delay before retry ``n`` is
    ``base_delay * 2**(n-1)`` (capped at ``max_delay``, with jitter); a 429 waits its
    ``retry_after`` instead. ``timeout`` bounds each HTTP exchange of a request, not the
    time spent waiting out a rate limit (discord.py waits those inside the request).
    """

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    timeout: float = 30.0

    def delay(self, attempt: int) -> float:
        base: float = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)


@dataclass(frozen=True)
class BoundGuild:
    """The guild a transport is bound to, as the database needs it."""

    id: int
    name: str
    #: The largest attachment the guild accepts, in bytes.
    filesize_limit: int


def _thread_from_payload(data: dict[str, Any]) -> StoredChannel | None:
    """A thread as a channel payload describes it; None for any other channel."""
    if int(data.get("type", 0)) not in (10, 11, PRIVATE_THREAD):
        return None
    parent = data.get("parent_id")
    return StoredChannel(
        int(data["id"]),
        data.get("name") or "",
        "thread",
        parent_id=int(parent) if parent else None,
    )


def _from_payload(data: dict[str, Any], channel_id: int) -> StoredMessage:
    return StoredMessage(
        id=int(data["id"]),
        channel_id=int(data.get("channel_id") or channel_id),
        author_id=int((data.get("author") or {}).get("id") or 0),
        content=data.get("content") or "",
        attachments=tuple(
            StoredAttachment(int(a["id"]), a.get("filename", ""), int(a.get("size", 0)), a["url"])
            for a in data.get("attachments") or ()
        ),
        webhook_id=int(data["webhook_id"]) if data.get("webhook_id") else None,
    )


def _from_message(message: discord.Message) -> StoredMessage:
    return StoredMessage(
        id=message.id,
        channel_id=message.channel.id,
        author_id=message.author.id,
        content=message.content,
        attachments=tuple(
            StoredAttachment(a.id, a.filename, a.size, a.url) for a in message.attachments
        ),
        webhook_id=message.webhook_id,
    )


#: discord.py's names of permissions that Discord's documentation names otherwise.
_DOCUMENTED_NAMES = {"read_messages": "view_channel"}


def _names(pairs: Iterable[tuple[str, bool | None]], value: bool) -> frozenset[str]:
    """The permissions set to ``value``, by Discord's names (discord.py iterates its own)."""
    return frozenset(_DOCUMENTED_NAMES.get(name, name) for name, v in pairs if v is value)


def _stored_overwrite(
    target: discord.Role | discord.Member | discord.Object,
    overwrite: discord.PermissionOverwrite,
    guild: discord.Guild,
) -> StoredOverwrite:
    is_role = isinstance(target, discord.Role) or getattr(target, "type", None) is discord.Role
    kind: Literal["everyone", "self", "role", "member"]
    if is_role:
        own_role = guild.self_role
        if target.id == guild.id:
            kind = "everyone"
        else:
            kind = "self" if own_role is not None and target.id == own_role.id else "role"
    else:
        kind = "self" if guild.me is not None and target.id == guild.me.id else "member"
    return StoredOverwrite(
        target.id,
        kind,
        _names(overwrite, True),
        _names(overwrite, False),
    )


def _stored_channel(channel: object) -> StoredChannel:
    if isinstance(channel, discord.CategoryChannel):
        return StoredChannel(channel.id, channel.name, "category")
    if isinstance(channel, discord.Thread):
        return StoredChannel(
            channel.id,
            channel.name,
            "thread",
            channel.category_id,
            parent_id=channel.parent_id,
        )
    if not isinstance(channel, discord.TextChannel):
        return StoredChannel(
            getattr(channel, "id", 0),
            getattr(channel, "name", ""),
            "other",
            getattr(channel, "category_id", None),
        )
    guild, me = channel.guild, channel.guild.me
    return StoredChannel(
        channel.id,
        channel.name,
        "text",
        channel.category_id,
        overwrites=tuple(
            _stored_overwrite(target, overwrite, guild)
            for target, overwrite in channel.overwrites.items()
        ),
        own_permissions=None if me is None else _names(channel.permissions_for(me), True),
    )


class _NotFound(Exception):
    """Discord answered 404: the channel, message or attachment does not exist."""

    def __init__(self, route: str, text: str, code: int) -> None:
        super().__init__(route)
        self.text = text
        self.code = code


class _Gone(enum.Enum):
    GONE = "gone"


#: What a request whose target was already gone returns.
GONE = _Gone.GONE


class _OutcomeUnknown(Exception):
    """A request that is not idempotent failed in a way that leaves unknown whether Discord
    applied it (a 5xx, a timeout, a dropped connection): find out before repeating it."""


def snowflake_time(snowflake: int) -> datetime:
    """When a snowflake was made (messages: when they were sent)."""
    return datetime.fromtimestamp(((snowflake >> 22) + _DISCORD_EPOCH_MS) / 1000, tz=UTC)


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
        self._subscriber: (
            tuple[Callable[[StoredMessage], None], Callable[[], Awaitable[object]]] | None
        ) = None
        self._guild_id: int | None = None
        #: Whether an ``on_reconnect`` succeeded since the guild's connection last got a READY
        #: (or the guild last went unavailable): its other signals of that READY are then
        #: redundant. ``_round`` counts those READYs and outages; ``_catching`` is the round
        #: whose catch-up is under way.
        self._caught_up = False
        self._round = 0
        self._catching: int | None = None
        #: The guild :meth:`bind` bound, and the role that may read the storage channels.
        self._bound: int | None = None
        self._admin_role: int | None = None
        #: Categories as a REST read or a create returned them (the gateway cache may lag).
        self._categories: dict[int, discord.CategoryChannel] = {}
        #: Told of a channel or thread Discord says is gone: deleted (THREAD_DELETE or
        #: CHANNEL_DELETE while listening), or 404 Unknown Channel to a message sent to it or a
        #: read of its history. Returns the error such a request raises instead of
        #: :class:`StorageCorruptError` (None: that one).
        self.on_channel_gone: Callable[[int], Exception | None] | None = None

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

    def now(self) -> datetime:
        """The local clock, as discord.py reads it (a simulated Discord substitutes its own)."""
        return discord.utils.utcnow()

    def fits(self, content: str) -> bool:
        """Whether ``content`` fits one message (Discord's limit is 2,000 characters)."""
        return len(content) <= CONTENT_LIMIT

    def is_ours(self, message: StoredMessage) -> bool:
        """Whether this bot's own user wrote ``message`` (not a webhook): only such messages
        are storage. The guild owner and Administrators see and can post in hidden channels,
        and an interaction response in a storage channel is the bot's user with a webhook id."""
        user = self.client.user
        return user is not None and message.author_id == user.id and message.webhook_id is None

    # -- the chokepoint -------------------------------------------------------------------

    async def _attempt(self, request: Callable[[], Awaitable[T]]) -> T:
        """One attempt of a request, bounded by the policy's timeout.

        The bound applies to each HTTP exchange with Discord (an aiohttp timeout that
        :func:`_timed_request` adds to the client's requests made here), not to the time
        discord.py spends waiting out a rate limit before or between them: a 429 with
        ``retry_after`` over the timeout is waited for, not cut off and re-sent. Work that
        does not go through ``HTTPClient.request`` (attachment downloads) gets a plain
        timeout."""
        http = self.client.http
        if getattr(http.request, "__wrapped__", None) is None:
            http.request = functools.update_wrapper(  # type: ignore[method-assign]
                functools.partial(_timed_request, http.request), http.request
            )
        token = _REQUEST_TIMEOUT.set(self.retry.timeout)
        try:
            return await request()
        finally:
            _REQUEST_TIMEOUT.reset(token)

    async def _call(
        self,
        route: str,
        request: Callable[[], Awaitable[T]],
        *,
        idempotent: bool = True,
        channel_id: int | None = None,
    ) -> T:
        """Run one REST request (see :meth:`_request`); a 404 means storage someone deleted
        by hand: :class:`StorageCorruptError`, or what :attr:`on_channel_gone` gives for
        ``channel_id`` when that channel is the one gone."""
        try:
            return await self._request(route, request, idempotent=idempotent)
        except _NotFound as missing:
            if channel_id is not None and missing.code == UNKNOWN_CHANNEL:
                error = self._channel_gone(channel_id)
                if error is not None:
                    raise error from missing.__cause__
            raise StorageCorruptError(
                f"Discord answered 404 to {route}: {missing.text or 'not found'} (a storage "
                "channel or message was deleted by hand?); run db.check()"
            ) from missing.__cause__

    async def _call_unless_gone(
        self, route: str, request: Callable[[], Awaitable[T]]
    ) -> T | Literal[_Gone.GONE]:
        """Run one REST request whose target may be gone already (a 404: :data:`GONE`)."""
        try:
            return await self._request(route, request)
        except _NotFound:
            return GONE

    async def _request(
        self, route: str, request: Callable[[], Awaitable[T]], *, idempotent: bool = True
    ) -> T:
        """Run one REST request with counting, a timeout and retries. A request that is not
        ``idempotent`` is not repeated after an unknown outcome: that raises
        :class:`_OutcomeUnknown` (its cause is the failure) for the caller to find out; a 404
        raises :class:`_NotFound`."""
        policy = self.retry
        last: BaseException | None = None
        for attempt in range(1, policy.attempts + 1):
            self.calls[route] += 1
            try:
                return await self._attempt(request)
            except discord.Forbidden as error:
                raise MissingPermissionsError(
                    self._guild_id, [f"{route} ({error.text or 'forbidden'})"]
                ) from error
            except discord.NotFound as error:
                raise _NotFound(route, error.text, error.code) from error
            except discord.RateLimited as error:
                last, wait = error, error.retry_after
            except discord.HTTPException as error:
                if error.code == ACTIVE_THREAD_LIMIT:
                    raise ActiveThreadLimitError(
                        route, error.status, error.code, error.text
                    ) from error
                if error.status != 429 and error.status < 500:
                    raise DiscordRejectedError(
                        route, error.status, error.code, error.text
                    ) from error
                last = error
                if error.status >= 500 and not idempotent:
                    raise _OutcomeUnknown(route) from error
                retry_after = getattr(error, "retry_after", None)
                wait = retry_after if retry_after else policy.delay(attempt)
            except (TimeoutError, aiohttp.ClientError, OSError) as error:
                if not idempotent:
                    raise _OutcomeUnknown(route) from error
                last, wait = error, policy.delay(attempt)
            if attempt < policy.attempts:
                self.retries[route] += 1
                log.warning("%s failed (%s), retry %d in %.2fs", route, last, attempt, wait)
                await asyncio.sleep(wait)
        raise DiscordUnavailableError(route, policy.attempts, last)

    async def run(self, token: str) -> None:
        """Log the client in and run it until it closes. A token Discord refuses (discord.py's
        ``Client.login`` raises ``LoginFailure`` on the 401) is :class:`InvalidTokenError`."""
        try:
            await self.client.start(token)
        except discord.LoginFailure as error:
            raise InvalidTokenError(str(error)) from error

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
        if found.unavailable or found.me is None:
            raise GuildUnavailableError(found.id)
        missing = [
            name for name in REQUIRED_PERMISSIONS if not getattr(found.me.guild_permissions, name)
        ]
        if missing:
            raise MissingPermissionsError(found.id, missing)
        return found

    def bind(self, guild: int | str, admin_role: int | None = None) -> BoundGuild:
        """Bind to the guild (by id, or the first whose name matches exactly) after checking
        that it is available and the bot has the permissions storage needs. Channels created
        afterwards are hidden from everyone but the bot and ``admin_role`` (read only)."""
        found = self.find_guild(guild)
        self._bound = found.id
        self._admin_role = admin_role
        return BoundGuild(found.id, found.name, found.filesize_limit)

    def _guild(self) -> discord.Guild:
        if self._bound is None:
            raise NotConnectedError("the transport is not bound to a guild")
        return self.find_guild(self._bound)

    def _overwrites(
        self, guild: discord.Guild
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
        if self._admin_role is not None:
            role = guild.get_role(self._admin_role)
            if role is not None:
                overwrites[role] = discord.PermissionOverwrite(
                    view_channel=True,
                    read_message_history=True,
                    send_messages=False,
                    create_public_threads=False,
                    create_private_threads=False,
                    send_messages_in_threads=False,
                )
        return overwrites

    def cached_channels(self) -> list[StoredChannel]:
        """The bound guild's channels and active threads from the gateway cache (no REST);
        none when the guild is not in the cache. Archived threads are never in it: the
        gateway syncs active threads only (topics/threads.mdx), and discord.py drops a
        thread from its cache when it is archived."""
        guild = self.client.get_guild(self._bound) if self._bound is not None else None
        if guild is None:
            return []
        return [_stored_channel(c) for c in [*guild.channels, *guild.threads]]

    async def _fetch_channels(self) -> list[discord.abc.GuildChannel]:
        guild = self._guild()
        channels: list[discord.abc.GuildChannel] = list(
            await self._call("GET /guilds/{id}/channels", guild.fetch_channels)
        )
        self._categories.update(
            (c.id, c) for c in channels if isinstance(c, discord.CategoryChannel)
        )
        return channels

    async def list_channels(self) -> list[StoredChannel]:
        """The bound guild's channels, read by REST (the gateway cache may lag another
        process)."""
        return [_stored_channel(c) for c in await self._fetch_channels()]

    async def _create(
        self,
        name: str,
        parent: int | None,
        create: Callable[[], Awaitable[discord.abc.GuildChannel]],
    ) -> int:
        """Create a channel (a category when ``parent`` is None) and return its id.

        A channel create is not idempotent: after an unknown outcome the guild's channels are
        read again, and a channel of that name, kind and parent that was not there before is
        adopted instead of creating a second one (discord-api-docs: a request can be applied
        although its response is lost)."""
        route = "POST /guilds/{id}/channels"
        kind = discord.CategoryChannel if parent is None else discord.TextChannel

        def made(channels: Iterable[object]) -> set[int]:
            return {
                c.id
                for c in channels
                if isinstance(c, kind)
                and c.name == name
                and (parent is None or c.category_id == parent)
            }

        before = made(self._guild().channels)

        async def created() -> int:
            channel = await self._call(route, create, idempotent=False)
            if isinstance(channel, discord.CategoryChannel):
                self._categories[channel.id] = channel
            return channel.id

        async def adoptable() -> set[int]:
            return made(await self._fetch_channels()) - before

        return await self._create_once(route, f"#{name}", created, adoptable)

    async def _create_once(
        self,
        route: str,
        what: str,
        create: Callable[[], Awaitable[int]],
        made: Callable[[], Awaitable[set[int]]],
    ) -> int:
        """Run a create that is not idempotent (``create`` raises :class:`_OutcomeUnknown` when
        its outcome is unknown); after an unknown outcome read what ``made`` finds (what the
        lost request made) and adopt it, or try again when it made nothing."""
        last: BaseException | None = None
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return await create()
            except _OutcomeUnknown as unknown:
                last = unknown.__cause__
            adopted = await made()
            if adopted:
                log.warning("%s: outcome unknown (%s); adopting %s", route, last, what)
                return min(adopted)
            if attempt < self.retry.attempts:
                self.retries[route] += 1
                log.warning("%s failed (%s) and made nothing, retry %d", route, last, attempt)
                await asyncio.sleep(self.retry.delay(attempt))
        raise DiscordUnavailableError(route, self.retry.attempts, last)

    async def create_category(self, name: str) -> int:
        """Create a hidden category; return its id."""
        guild = self._guild()
        overwrites = self._overwrites(guild)
        return await self._create(
            name,
            None,
            lambda: guild.create_category(name, overwrites=overwrites, reason="discobase storage"),
        )

    async def _category(self, category_id: int) -> discord.CategoryChannel:
        """A category by id: from the gateway cache, else as last read or created, else
        fetched."""
        category = self._guild().get_channel(category_id) or self._categories.get(category_id)
        if isinstance(category, discord.CategoryChannel):
            return category
        fetched = await self._call(
            "GET /channels/{id}", lambda: self.client.fetch_channel(category_id)
        )
        assert isinstance(fetched, discord.CategoryChannel)
        return fetched

    async def create_channel(self, name: str, category_id: int) -> int:
        """Create a hidden text channel in a category; return its id."""
        guild = self._guild()
        category = await self._category(category_id)
        overwrites = self._overwrites(guild)
        return await self._create(
            name,
            category_id,
            lambda: guild.create_text_channel(
                name, category=category, overwrites=overwrites, reason="discobase storage"
            ),
        )

    async def hide_channel(self, channel_id: int) -> None:
        """Give a channel the overwrites :meth:`create_channel` gives, in place of the ones it
        has (an edit to given overwrites is idempotent, so it is retried like a read)."""
        guild = self._guild()
        overwrites = self._overwrites(guild)
        channel: object = guild.get_channel(channel_id)
        if channel is None:
            channel = await self._call(
                "GET /channels/{id}", lambda: self.client.fetch_channel(channel_id)
            )
        assert isinstance(channel, discord.TextChannel)
        await self._call(
            "PATCH /channels/{id}",
            lambda: channel.edit(overwrites=overwrites, reason="discobase storage"),
        )

    async def delete_channel(self, channel_id: int) -> None:
        """Delete a channel or thread; one that is already gone counts as deleted."""
        outcome = await self._call_unless_gone(
            "DELETE /channels/{id}",
            lambda: self.client.http.delete_channel(channel_id, reason="discobase drop"),
        )
        if outcome is GONE:
            log.info("channel %s was already deleted", channel_id)

    # -- threads ----------------------------------------------------------------------------

    async def create_thread(self, parent_id: int, name: str) -> int:
        """Create a private thread of ``parent_id`` that never archives by itself sooner than
        Discord allows (``auto_archive_duration`` 10080 minutes, the longest) and that only
        moderators may add members to (``invitable`` false); return its id.

        A thread create is not idempotent: after an unknown outcome the parent's threads,
        active and archived, are read, and one named ``name`` is adopted (the caller gives
        each thread of a parent its own name) instead of making a second one. A guild at its
        cap of active threads raises :class:`ActiveThreadLimitError`."""
        route = "POST /channels/{id}/threads"

        async def created() -> int:
            data = await self._call(
                route,
                lambda: self.client.http.start_thread_without_message(
                    parent_id,
                    name=name,
                    auto_archive_duration=THREAD_ARCHIVE_MINUTES,
                    type=PRIVATE_THREAD,
                    invitable=False,
                    reason="discobase storage",
                ),
                idempotent=False,
            )
            return int(data["id"])

        async def adoptable() -> set[int]:
            return {t.id for t in await self.list_threads(parent_id) if t.name == name}

        return await self._create_once(route, f"thread {name}", created, adoptable)

    async def fetch_thread(self, thread_id: int) -> StoredChannel | None:
        """A thread by id (``GET /channels/{id}``: archived threads are in no cache); None
        when it is gone or is not a thread."""
        data = await self._call_unless_gone(
            "GET /channels/{id}", lambda: self.client.http.get_channel(thread_id)
        )
        return None if data is GONE else _thread_from_payload(dict(data))

    async def list_threads(self, parent_id: int) -> list[StoredChannel]:
        """The private threads of a text channel: the guild's active ones whose parent it is
        (``GET /guilds/{id}/threads/active``) and its archived private ones (``GET
        /channels/{id}/threads/archived/private``, 100 a page, newest archive first; needs
        MANAGE_THREADS and READ_MESSAGE_HISTORY)."""
        guild_id = self._guild().id
        active: Any = await self._call(
            "GET /guilds/{id}/threads/active",
            lambda: self.client.http.get_active_threads(guild_id),
        )
        threads = [_thread_from_payload(t) for t in active.get("threads", ())]
        before: str | None = None
        while True:
            page: Any = await self._call(
                "GET /channels/{id}/threads/archived/private",
                functools.partial(
                    self.client.http.get_private_archived_threads, parent_id, before, 100
                ),
            )
            listed = page.get("threads", ())
            threads += [_thread_from_payload(t) for t in listed]
            if not page.get("has_more") or not listed:
                break
            before = listed[-1].get("thread_metadata", {}).get("archive_timestamp")
            if before is None:
                break
        found = {t.id: t for t in threads if t is not None and t.parent_id == parent_id}
        return sorted(found.values(), key=lambda t: t.id)

    async def unarchive(self, thread_id: int) -> None:
        """Unarchive and unlock a thread (``PATCH /channels/{id}`` with ``archived`` and
        ``locked`` false: a moderator may have locked it, and only members with Manage
        Threads, as the bot has, may then unarchive it: resources/channel.mdx, thread
        metadata; topics/threads.mdx, "Editing & Deleting Threads"). At the guild's cap of
        active threads this raises :class:`ActiveThreadLimitError`."""
        await self._call(
            "PATCH /channels/{id}",
            lambda: self.client.http.edit_channel(
                thread_id, archived=False, locked=False, reason="discobase storage"
            ),
        )

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

        # A message unarchives an archived thread unless a moderator locked it (160005):
        # unlock and unarchive it, send again (the same nonce: at most one copy).
        message = await self._unarchiving_on(
            LOCKED_THREAD,
            channel_id,
            functools.partial(
                self._call, "POST /channels/{id}/messages", request, channel_id=channel_id
            ),
        )
        return _from_message(message)

    async def edit(
        self,
        channel_id: int,
        message_id: int,
        content: str,
        attachment: bytes | None = None,
        *,
        filename: str = "body",
    ) -> StoredMessage | None:
        """Replace a message's content and attachments (none when ``attachment`` is None);
        None when the message is gone. An edit to given content is idempotent, so it is
        retried like a read."""
        message = self.client.get_partial_messageable(channel_id).get_partial_message(message_id)

        async def request() -> discord.Message:
            files = [discord.File(io.BytesIO(attachment), filename=filename)] if attachment else []
            return await message.edit(content=content, attachments=files)

        # Messages in an archived thread cannot be edited (50083; only deletes work there,
        # topics/threads.mdx "Active & Archived Threads"): unarchive (and unlock, if a
        # moderator locked it), edit again.
        edited = await self._unarchiving_on(
            ARCHIVED_THREAD,
            channel_id,
            functools.partial(
                self._call_unless_gone, "PATCH /channels/{id}/messages/{id}", request
            ),
        )
        return None if edited is GONE else _from_message(edited)

    async def _unarchiving_on(
        self, code: int, thread_id: int, attempt: Callable[[], Awaitable[T]]
    ) -> T:
        """``attempt()``; when Discord refuses it with ``code`` (the thread is archived, or
        locked), unarchive and unlock the thread and attempt once more (a second refusal is
        raised as it is)."""
        try:
            return await attempt()
        except DiscordRejectedError as error:
            if error.code != code:
                raise
            log.warning("thread %s refused a request (%s): unarchiving it", thread_id, code)
            await self.unarchive(thread_id)
            return await attempt()

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
                channel_id=channel_id,
            )
            for data in page:
                if data.get("type") != _THREAD_CREATED:
                    yield _from_payload(data, channel_id)
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
        data = await self._call_unless_gone(
            "GET attachment",
            lambda: asyncio.wait_for(
                self.client.http.get_from_cdn(attachment.url), self.retry.timeout
            ),
        )
        return None if data is GONE else data

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
            outcome = await self._call_unless_gone(
                "DELETE /channels/{id}/messages/{id}",
                lambda message_id=message_id: self.client.http.delete_message(  # type: ignore[misc]
                    channel_id, message_id
                ),
            )
            if outcome is GONE:
                log.debug("message %s was already deleted", message_id)

    # -- gateway ----------------------------------------------------------------------------

    def listen(
        self,
        on_message: Callable[[StoredMessage], None],
        on_reconnect: Callable[[], Awaitable[object]],
        *,
        guild_id: int | None = None,
    ) -> None:
        """Call ``on_message`` for every message created in the client's guilds, and
        ``on_reconnect`` whenever events of the guild ``guild_id`` (any guild: None) may have
        been missed, which the gateway never replays:

        - a new READY (``on_ready``): the client connected afresh;
        - a shard's new READY (``on_shard_ready``, an ``AutoShardedClient`` re-identifying one
          shard fires no ``on_ready``), for the shard that holds the guild;
        - the guild available again after an outage (``on_guild_available``; Discord sends
          none of its events while it is unavailable).

        One READY calls it once: discord.py announces a fresh READY with ``on_connect``
        (``on_shard_connect`` per shard), then dispatches ``on_guild_available`` for each
        guild that arrives within ``guild_ready_timeout`` and ``on_ready`` (or
        ``on_shard_ready``) after it; the first of those catches up, the rest are skipped
        until the next READY or outage (``on_guild_unavailable``) of the guild. A catch-up
        counts once the awaitable ``on_reconnect`` returned has completed without raising;
        none starts while the guild is unavailable (a READY can leave it so: its
        ``on_guild_available`` follows), and a failed one leaves the READY's next signal to
        try again. A resumed session (``on_resumed``) needs nothing: Discord replays what it
        missed.

        Needs a :class:`discord.ext.commands.Bot`-like client (``add_listener``); with any
        other client nothing is delivered (a warning says so) and only ``Database.sync``
        catches up.
        """
        add_listener = getattr(self.client, "add_listener", None)
        if add_listener is None:
            log.warning(
                "%s cannot deliver gateway events (it has no add_listener: use a "
                "discord.ext.commands.Bot); other processes' writes arrive only by db.sync()",
                type(self.client).__name__,
            )
            return
        self.unlisten()
        self._subscriber = (on_message, on_reconnect)
        self._guild_id = guild_id
        self._new_round()
        for handler, event in self._handlers():
            add_listener(handler, event)

    def unlisten(self) -> None:
        """Stop delivering gateway events."""
        remove_listener = getattr(self.client, "remove_listener", None)
        if self._subscriber is not None and remove_listener is not None:
            for handler, event in self._handlers():
                remove_listener(handler, event)
        self._subscriber = None

    def _handlers(self) -> list[tuple[Callable[..., Awaitable[None]], str]]:
        return [
            (self._on_message, "on_message"),
            (self._on_connect, "on_connect"),
            (self._on_shard_connect, "on_shard_connect"),
            (self._on_ready, "on_ready"),
            (self._on_shard_ready, "on_shard_ready"),
            (self._on_guild_available, "on_guild_available"),
            (self._on_guild_unavailable, "on_guild_unavailable"),
            (self._on_raw_thread_delete, "on_raw_thread_delete"),
            (self._on_guild_channel_delete, "on_guild_channel_delete"),
        ]

    async def _on_message(self, message: discord.Message) -> None:
        if self._subscriber is not None and message.type is not discord.MessageType.thread_created:
            self._subscriber[0](_from_message(message))

    def _channel_gone(self, channel_id: int) -> Exception | None:
        return None if self.on_channel_gone is None else self.on_channel_gone(channel_id)

    def _is_our_guild(self, guild_id: int | None) -> bool:
        return self._guild_id is None or guild_id == self._guild_id

    async def _on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        # THREAD_DELETE is "sent when a thread relevant to the current user is deleted"
        # (events/gateway-events.mdx); the raw event, because archived threads are in no
        # cache and their deletes count too.
        if self._subscriber is not None and self._is_our_guild(payload.guild_id):
            self._channel_gone(payload.thread_id)

    async def _on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        if self._subscriber is not None and self._is_our_guild(channel.guild.id):
            self._channel_gone(channel.id)

    def _is_our_shard(self, shard_id: int) -> bool:
        guild = self.client.get_guild(self._guild_id) if self._guild_id is not None else None
        return guild is None or guild.shard_id == shard_id

    def _new_round(self) -> None:
        self._caught_up = False
        self._round += 1

    async def _on_connect(self) -> None:
        # A sharded client also says which shard got the READY (on_shard_connect).
        if not isinstance(self.client, discord.AutoShardedClient):
            self._new_round()

    async def _on_shard_connect(self, shard_id: int) -> None:
        if self._is_our_shard(shard_id):
            self._new_round()

    async def _on_guild_unavailable(self, guild: discord.Guild) -> None:
        if self._is_our_guild(guild.id):
            self._new_round()

    async def _on_ready(self) -> None:
        if self._subscriber is None or self._caught_up or self._catching == self._round:
            return
        guild = self.client.get_guild(self._guild_id) if self._guild_id is not None else None
        if guild is not None and guild.unavailable:
            return  # nothing can be read yet: its on_guild_available catches up
        this_round = self._catching = self._round
        try:
            await self._subscriber[1]()
        except Exception as error:  # logged by whoever ran it; the next signal tries again
            log.info("gateway catch-up failed (%s); the next READY signal retries", error)
        else:
            if self._round == this_round:
                self._caught_up = True
        finally:
            if self._catching == this_round:
                self._catching = None

    async def _on_shard_ready(self, shard_id: int) -> None:
        if self._is_our_shard(shard_id):
            await self._on_ready()

    async def _on_guild_available(self, guild: discord.Guild) -> None:
        if self._is_our_guild(guild.id):
            await self._on_ready()
