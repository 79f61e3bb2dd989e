"""How commands reach the guild's database: its tables, their fields, keys and query expressions.

Uses only discobase's public API: ``bot.database(guild_id)``, ``db.tables``, ``db.schema()`` and
the field expressions of table classes.
"""

from __future__ import annotations

from typing import Any, Protocol

import discord

import discobase
from cogs._errors import BadInputError
from cogs._grammar import Condition, coerce_value
from cogs._permissions import RoleSettings


class DatabaseBot(Protocol):
    """What the cogs need from the bot (see bot.py's ``DiscobaseBot``)."""

    settings: RoleSettings

    async def database(self, guild_id: int) -> discobase.Database: ...


async def guild_database(interaction: discord.Interaction[Any]) -> discobase.Database:
    """The database of the guild the interaction happened in."""
    assert interaction.guild_id is not None, "commands are guild-only"
    bot: DatabaseBot = interaction.client
    return await bot.database(interaction.guild_id)


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
    return coerce_value(key_type, text, what=f"key {schema.primary_key!r}")


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
