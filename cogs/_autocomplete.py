"""Autocomplete for table names, field names (in sort orders and queries) and record keys.

Autocomplete never raises: when the database cannot answer it offers nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

import discobase
from cogs._database import field_names, guild_database, table_class
from cogs._errors import BadInputError
from cogs._grammar import split_top_level

log = logging.getLogger(__name__)

MAX_CHOICES = 25
CHOICE_LIMIT = 100
KEY_SCAN_LIMIT = 1000


def _choices(values: list[str], current: str) -> list[app_commands.Choice[str]]:
    needle = current.lower()
    starting = [value for value in values if value.lower().startswith(needle)]
    containing = [value for value in values if needle in value.lower() and value not in starting]
    return [
        app_commands.Choice(name=value[:CHOICE_LIMIT], value=value[:CHOICE_LIMIT])
        for value in (starting + containing)[:MAX_CHOICES]
    ]


async def _schema(interaction: discord.Interaction[Any]) -> tuple[Any, Any] | None:
    """The chosen table's class and schema; None when no (known) table is chosen yet."""
    name = getattr(interaction.namespace, "table", None)
    if not name:
        return None
    try:
        database = await guild_database(interaction)
        return table_class(database, name), database.schema(name)
    except discobase.DiscobaseError:
        return None


async def table_names(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """The guild's tables."""
    try:
        database = await guild_database(interaction)
    except discobase.DiscobaseError:
        log.debug("no table names to offer", exc_info=True)
        return []
    return _choices(sorted(database.tables), current)


async def sort_fields(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """``field`` and ``-field`` for each field of the chosen table."""
    found = await _schema(interaction)
    if found is None:
        return []
    names = field_names(found[1])
    return _choices([order for name in names for order in (name, f"-{name}")], current)


async def query_fields(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """Completes the last condition of a query with the chosen table's field names."""
    found = await _schema(interaction)
    if found is None:
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
            for name in field_names(found[1])
            if name.lower().startswith(typing.lower())
        ]
    return [
        app_commands.Choice(name=value, value=value)
        for value in dict.fromkeys(suggestions)
        if len(value) <= CHOICE_LIMIT
    ][:MAX_CHOICES]


async def record_keys(
    interaction: discord.Interaction[Any], current: str
) -> list[app_commands.Choice[str]]:
    """Keys of the chosen table's records that match what was typed."""
    try:
        found = await _schema(interaction)
        if found is None:
            return []
        table, _ = found
        keys: list[str] = []
        scanned = 0
        async for record in table.all():
            scanned += 1
            key = str(record.pk)
            if current.lower() in key.lower():
                keys.append(key)
            if len(keys) >= MAX_CHOICES or scanned >= KEY_SCAN_LIMIT:
                break
    except discobase.DiscobaseError:
        return []
    return _choices(keys, current)
