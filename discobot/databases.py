"""How commands reach the guild's database: its tables, their fields, keys and query expressions.

Uses only discobase's public API: ``bot.database(guild_id)``, ``db.tables``, ``db.schema()`` and
the field expressions of table classes.

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
from discobot.grammar import Condition, coerce_value
from discobot.permissions import RoleSettings
from discobot.render import code

log = logging.getLogger(__name__)
T = TypeVar("T")

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


class DatabaseBot(Protocol):
    """What the cogs need from the bot (see :class:`discobot.client.DiscobaseBot`)."""

    settings: RoleSettings

    async def database(self, guild_id: int) -> discobase.Database: ...

    def open_database(self, guild_id: int) -> discobase.Database | None: ...


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
    database = bot.open_database(interaction.guild_id)
    if database is None:
        database = await within_token(interaction, bot.database(interaction.guild_id))
    if database is None:
        raise DatabaseOpeningError()
    return database


def open_guild_database(interaction: discord.Interaction[Any]) -> discobase.Database:
    """The guild's database if it is open now, for paths that must answer at once.

    Raises :class:`DatabaseOpeningError` otherwise (and the open starts in the background).
    """
    assert interaction.guild_id is not None, "commands are guild-only"
    bot: DatabaseBot = interaction.client
    database = bot.open_database(interaction.guild_id)
    if database is None:
        raise DatabaseOpeningError()
    return database


def table_class(database: discobase.Database, name: str) -> Any:
    """The table class named ``name``. Raises ``discobase.TableNotFoundError``."""
    table = database.tables.get(name)
    if table is None:
        raise discobase.TableNotFoundError(name)
    return table


def field_names(schema: Any) -> list[str]:
    """The schema's field names, in order."""
    return [field.name for field in schema.fields]


def field_types(schema: Any) -> dict[str, str]:
    """Field name → type name (``str``, ``int``, ...)."""
    return {field.name: field.type for field in schema.fields}


def parse_key(schema: Any, text: str) -> Any:
    """A record key typed as the primary key field (generated keys stay text)."""
    text = text.strip()
    if not text:
        raise BadInputError("give the record's key (autocomplete offers them)")
    if schema.primary_key is None:
        return text
    key_type = field_types(schema)[schema.primary_key]
    return coerce_value(key_type, text, what=f"key {code(schema.primary_key)}")


def record_fields(schema: Any, record: Any) -> dict[str, Any]:
    """A record's field values as JSON-ready data, in schema order."""
    dumped = record.model_dump(mode="json")
    return {name: dumped.get(name) for name in field_names(schema)}


def query_expressions(table: Any, schema: Any, conditions: list[Condition]) -> list[Any]:
    """Conditions as the table's field expressions (values are typed by discobase).

    Raises ``discobase.UnknownFieldError`` for a field the table does not have.
    """
    known = field_names(schema)
    expressions = []
    for condition in conditions:
        if condition.field not in known:
            raise discobase.UnknownFieldError(schema.name, condition.field, known)
        field = getattr(table, condition.field)
        value = condition.value
        operator = condition.operator
        if operator == "~":
            expressions.append(field.contains(value))
        elif operator == "=":
            expressions.append(field == value)
        elif operator == "!=":
            expressions.append(field != value)
        elif operator == "<":
            expressions.append(field < value)
        elif operator == "<=":
            expressions.append(field <= value)
        elif operator == ">":
            expressions.append(field > value)
        else:
            expressions.append(field >= value)
    return expressions
