"""Each guild's database: opened once in the background, reached by commands within Discord's
deadlines.

:class:`GuildDatabases` is the bot's registry of them: every guild the bot is in gets its own
:class:`discobase.Database` on the bot's client. Opening one reads the guild's whole storage, so at
startup at most :data:`BACKGROUND_OPENS` guilds open at once (they share the bot's rate limits);
a guild whose member is waiting (a command, a form, autocomplete) opens at once, ahead of that
queue, so a slow guild delays no member of another.

Discord's deadlines bound every path here: an interaction is answered (or deferred) within 3 s,
and its token, which follow-ups and edits of the answer use, lasts 15 minutes
(discord-api-docs, interactions/receiving-and-responding). Paths that cannot defer (forms,
autocomplete) use only a database that is open already; deferred work that could outlast the
token (the first open, ``/check``, ``/compact``) is waited for only while the token lasts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

import discord

import discobase
from discobot.errors import BadInputError
from discobot.permissions import Roles

log = logging.getLogger(__name__)
T = TypeVar("T")

BACKGROUND_OPENS = 4
"""Guilds whose databases open at once in the background (at startup, on joining a guild)."""
INTERACTION_TOKEN_LIFETIME = timedelta(minutes=15)
TOKEN_MARGIN = timedelta(minutes=1)
"""Kept free at the end of the token: clock skew between the bot and Discord, and the answer."""


class DatabaseOpeningError(BadInputError):
    """The guild's database is still opening and this path cannot wait for it."""

    def __init__(self) -> None:
        super().__init__(
            "The database of this server is still opening (it reads its storage once after the "
            "bot starts); try again in a moment"
        )


class GuildDatabases:
    """The bot's databases, one per guild, each opened once (see the module's docstring).

    ``category``, ``roles`` and ``encryption_key`` configure each database: its storage
    category's name, the admin role that may read the storage channels, and the key(s) its
    storage is encrypted with (None: not encrypted); ``encryption_required`` refuses storage
    messages that are not encrypted.
    """

    def __init__(
        self,
        client: discord.Client,
        *,
        category: str,
        roles: Roles,
        background_opens: int = BACKGROUND_OPENS,
        encryption_key: str | None = None,
        encryption_required: bool = False,
    ) -> None:
        self.client = client
        self.category = category
        self.roles = roles
        self.encryption_key = encryption_key
        self.encryption_required = encryption_required
        self.background_opens = background_opens
        self._open: dict[int, discobase.Database] = {}
        self._opening: dict[int, asyncio.Task[discobase.Database]] = {}
        self._queued: dict[int, None] = {}
        """Guilds waiting to open in the background, in order (a dict as an ordered set)."""

    async def get(self, guild_id: int) -> discobase.Database:
        """The open database of a guild; opens it now (or joins the open under way).

        Cancelling the caller leaves the open running. Raises the errors of
        :meth:`discobase.Database.open` (``GuildNotFoundError``, ``MissingPermissionsError``,
        ...); a failed open is retried on the next call.
        """
        database = self._open.get(guild_id)
        if database is not None:
            return database
        return await asyncio.shield(self.start_opening(guild_id))

    def get_open(self, guild_id: int) -> discobase.Database | None:
        """The guild's database if it is open now, else None (and its open starts now).

        Never waits: for the paths that must answer Discord at once (autocomplete, forms).
        """
        database = self._open.get(guild_id)
        if database is None:
            self.start_opening(guild_id)
        return database

    def open_in_background(self, guild_id: int) -> None:
        """Open the guild's database when fewer than ``background_opens`` opens are under way."""
        if guild_id not in self._open and guild_id not in self._opening:
            self._queued[guild_id] = None
            self._start_queued()

    def start_opening(self, guild_id: int) -> asyncio.Task[discobase.Database]:
        """Open the guild's database now (once), queued or not; the task gives the database."""
        self._queued.pop(guild_id, None)
        task = self._opening.get(guild_id)
        if task is None:
            task = asyncio.create_task(self._connect(guild_id), name=f"open database {guild_id}")
            self._opening[guild_id] = task
            task.add_done_callback(lambda done: self._opened(guild_id, done))
        return task

    def _start_queued(self) -> None:
        while self._queued and len(self._opening) < self.background_opens:
            self.start_opening(next(iter(self._queued)))

    async def _connect(self, guild_id: int) -> discobase.Database:
        guild = self.client.get_guild(guild_id)
        admin_role = self.roles.role(guild, "admin") if guild else None
        database = discobase.Database(
            guild_id,
            bot=self.client,
            category=self.category,
            admin_role=admin_role.id if admin_role else None,
            encryption_key=self.encryption_key,
            encryption_required=self.encryption_required,
        )
        await database.connect()
        if guild is not None and self.client.get_guild(guild_id) is None:
            await database.close()
            raise discobase.GuildNotFoundError(guild_id)
        self._open[guild_id] = database
        return database

    def _opened(self, guild_id: int, task: asyncio.Task[discobase.Database]) -> None:
        if self._opening.get(guild_id) is task:
            del self._opening[guild_id]
        self._start_queued()
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, discobase.DiscobaseError):
            log.warning("opening the database of guild %s failed: %s", guild_id, error)
        elif error is not None:
            log.error("opening the database of guild %s failed", guild_id, exc_info=error)

    async def forget(self, guild_id: int) -> None:
        """The bot left the guild: stop its open, close its database."""
        self._queued.pop(guild_id, None)
        task = self._opening.pop(guild_id, None)
        if task is not None:
            task.cancel()
        database = self._open.pop(guild_id, None)
        if database is not None:
            await self._close(database)

    async def close(self) -> None:
        """Stop the opens under way, flush pending writes and close every open database."""
        self._queued.clear()
        opening, self._opening = list(self._opening.values()), {}
        for task in opening:
            task.cancel()
        await asyncio.gather(*opening, return_exceptions=True)
        databases, self._open = list(self._open.values()), {}
        for database in databases:
            await self._close(database)

    @staticmethod
    async def _close(database: discobase.Database) -> None:
        try:
            await database.close()
        except discobase.DiscobaseError:
            log.exception("closing the database of guild %s failed", database.guild_id)


class DatabaseBot(Protocol):
    """What commands need from the bot (see :class:`discobot.client.DiscobaseBot`)."""

    databases: GuildDatabases


def token_time_left(interaction: discord.Interaction[Any]) -> float:
    """Seconds the interaction's token still serves follow-ups and edits, less a margin."""
    expires = interaction.created_at + INTERACTION_TOKEN_LIFETIME - TOKEN_MARGIN
    return max(0.0, (expires - discord.utils.utcnow()).total_seconds())


async def within_token(interaction: discord.Interaction[Any], work: Awaitable[T]) -> T | None:
    """The result of ``work``, or None when the token ends first.

    The work goes on in the background then, and its failure is logged; the caller tells the
    member that it is still running.
    """
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=token_time_left(interaction))
    if task in done:
        return task.result()
    task.add_done_callback(_log_late_failure)
    return None


def _log_late_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("work that outlasted its interaction failed", exc_info=task.exception())


async def guild_database(interaction: discord.Interaction[Any]) -> discobase.Database:
    """The database of the guild the interaction happened in (call after deferring).

    Waits for an open under way while the interaction's token lasts, then raises
    :class:`DatabaseOpeningError` (the open goes on).
    """
    assert interaction.guild_id is not None, "commands are guild-only"
    bot: DatabaseBot = interaction.client
    database = bot.databases.get_open(interaction.guild_id)
    if database is None:
        database = await within_token(interaction, bot.databases.get(interaction.guild_id))
    if database is None:
        raise DatabaseOpeningError()
    return database


def open_guild_database(interaction: discord.Interaction[Any]) -> discobase.Database:
    """The guild's database if it is open now, for paths that must answer at once.

    Raises :class:`DatabaseOpeningError` otherwise (and the open starts in the background).
    """
    assert interaction.guild_id is not None, "commands are guild-only"
    bot: DatabaseBot = interaction.client
    database = bot.databases.get_open(interaction.guild_id)
    if database is None:
        raise DatabaseOpeningError()
    return database


async def defer(interaction: discord.Interaction[Any]) -> None:
    """Answer "thinking…" (ephemerally) now, unless the interaction was answered already (a table
    option defers before it waits for the database to open)."""
    if not interaction.response.is_done():
        await interaction.response.defer(ephemeral=True, thinking=True)
