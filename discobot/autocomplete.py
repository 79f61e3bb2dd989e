"""Autocomplete for table names (the ``table`` option's, :mod:`discobot.options`), field names
(in sort orders and queries) and record keys.

Autocomplete cannot be deferred, so it answers from the guild's database only when that is open
already, and never raises: otherwise, or when the database cannot answer, it offers nothing.
Discord takes at most 25 choices whose names and values are 1-100 characters, and rejects the
whole list for one bad choice (discord-api-docs, application-commands), so a value that does not
fit is left out rather than cut (a cut key would name no record).
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

import discobase
from discobot.databases import DatabaseOpeningError, open_guild_database
from discobot.errors import BadInputError
from discobot.grammar import split_top_level
from discobot.tables import TableRef

MAX_CHOICES = 25
CHOICE_LIMIT = 100
KEY_SCAN_LIMIT = 1000


def _fits(value: str) -> bool:
    return 1 <= len(value) <= CHOICE_LIMIT


def _choices(values: list[str], current: str) -> list[app_commands.Choice[str]]:
    needle = current.lower()
    offered = [value for value in values if _fits(value)]
    starting = [value for value in offered if value.lower().startswith(needle)]
    containing = [value for value in offered if needle in value.lower() and value not in starting]
    return [
        app_commands.Choice(name=value, value=value)
        for value in (starting + containing)[:MAX_CHOICES]
    ]


def _open_database(interaction: discord.Interaction[Any]) -> discobase.Database | None:
    try:
        return open_guild_database(interaction)
    except DatabaseOpeningError:
        return None


def _chosen(interaction: discord.Interaction[Any]) -> TableRef | None:
    """The table chosen in the ``table`` option; None when no (known) table is chosen yet."""
    name = getattr(interaction.namespace, "table", None)
    database = _open_database(interaction)
    if not name or database is None:
        return None
    try:
        return TableRef.named(database, name)
    except discobase.DiscobaseError:
        return None


async def table_names(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """The guild's tables."""
    database = _open_database(interaction)
    if database is None:
        return []
    return _choices(sorted(database.tables), current)


async def sort_fields(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """``field`` and ``-field`` for each field of the chosen table."""
    chosen = _chosen(interaction)
    if chosen is None:
        return []
    names = chosen.field_names()
    return _choices([order for name in names for order in (name, f"-{name}")], current)


async def query_fields(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """Completes the last condition of a query with the chosen table's field names."""
    chosen = _chosen(interaction)
    if chosen is None:
        return []
    try:
        conditions = split_top_level(current)
    except BadInputError:
        return []
    ended = current.rstrip().endswith(",")
    typing = "" if ended or not conditions else conditions[-1]
    done = conditions if ended else conditions[:-1]
    prefix = "".join(f"{condition}, " for condition in done)
    suggestions = [current.strip()] if current.strip() else []
    if not any(operator in typing for operator in "=<>~!"):
        suggestions += [
            f"{prefix}{name}="
            for name in chosen.field_names()
            if name.lower().startswith(typing.lower())
        ]
    return [
        app_commands.Choice(name=value, value=value)
        for value in dict.fromkeys(suggestions)
        if _fits(value)
    ][:MAX_CHOICES]


async def record_keys(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """Keys of the chosen table's records that match what was typed."""
    try:
        chosen = _chosen(interaction)
        if chosen is None:
            return []
        keys: list[str] = []
        scanned = 0
        async for record in chosen.table.all():
            scanned += 1
            key = str(record.pk)
            if _fits(key) and current.lower() in key.lower():
                keys.append(key)
            if len(keys) >= MAX_CHOICES or scanned >= KEY_SCAN_LIMIT:
                break
    except discobase.DiscobaseError:
        return []
    return _choices(keys, current)
