"""Record commands: ``/insert`` (JSON or a form), ``/find``, ``/count``, ``/update``, ``/delete``, ``/export``."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from cogs._autocomplete import query_fields, record_keys, sort_fields, table_names
from cogs._database import (
    field_names,
    field_types,
    guild_database,
    open_guild_database,
    parse_key,
    query_expressions,
    record_fields,
    table_class,
)
from cogs._errors import BadInputError, answer_errors
from cogs._grammar import coerce_value, parse_json_object, parse_query, parse_sort
from cogs._permissions import Access, requires
from cogs._render import code, paginate, record_lines, respond, truncate
from cogs._views import Confirmation, RecordPages, still_allowed

Interaction = discord.Interaction[Any]
FORM_FIELD_LIMIT = 5
TEXT_INPUT_LABEL_LIMIT = 45


def _query_note(query: str | None, sort: str | None) -> str:
    parts = []
    if query:
        parts.append(f"where {code(query, 200)}")
    if sort:
        parts.append(f"sorted by {code(sort, 60)}")
    return "".join(f" {part}" for part in parts)


class RecordForm(discord.ui.Modal):
    """A form with one text box per field, for tables of up to five fields."""

    def __init__(self, table: Any, schema: Any, database: Any) -> None:
        super().__init__(title=truncate(f"New record in {schema.name}", 45), timeout=900)
        self.table = table
        self.schema = schema
        self.database = database
        self.inputs: dict[str, discord.ui.TextInput[RecordForm]] = {}
        for field in schema.fields:
            label = f"{field.name} ({field.type}{', optional' if field.optional else ''})"
            text_input: discord.ui.TextInput[RecordForm] = discord.ui.TextInput(
                label=truncate(label, TEXT_INPUT_LABEL_LIMIT),
                required=not (field.optional or field.has_default),
                style=discord.TextStyle.paragraph
                if field.type == "json"
                else discord.TextStyle.short,
                placeholder=truncate(f"default: {field.default}", 100)
                if field.has_default
                else None,
            )
            self.inputs[field.name] = text_input
            self.add_item(text_input)

    async def interaction_check(self, interaction: Interaction) -> bool:
        return await still_allowed(interaction, Access.WRITE)

    async def on_submit(self, interaction: Interaction) -> None:
        async with answer_errors(interaction):
            types = field_types(self.schema)
            nullable = {
                field.name
                for field in self.schema.fields
                if field.optional and not field.has_default
            }
            data: dict[str, Any] = {}
            for name, text_input in self.inputs.items():
                if text_input.value.strip():
                    data[name] = coerce_value(types[name], text_input.value, what=f"field {name!r}")
                elif name in nullable:
                    data[name] = None
            await interaction.response.defer(ephemeral=True, thinking=True)
            record = self.table.model_validate(data)
            await record.insert()
            await respond(
                interaction,
                f"Inserted into {code(self.schema.name)} with key {code(record.pk)}:\n"
                + record_lines(record_fields(self.schema, record)),
            )


class Records(commands.Cog):
    """Insert, find, count, update, delete and export records."""

    @app_commands.command(
        name="insert",
        description="Add a record (leave data empty for a form)",
        extras=requires(Access.WRITE),
    )
    @app_commands.describe(
        table="The table to add to",
        data='The record as a JSON object, like {"name": "rex", "legs": 4}; empty: fill a form',
    )
    @app_commands.autocomplete(table=table_names)
    async def insert(self, interaction: Interaction, table: str, data: str | None = None) -> None:
        async with answer_errors(interaction):
            if data is None:
                await self._send_form(interaction, table)
                return
            values = parse_json_object(data)
            await interaction.response.defer(ephemeral=True, thinking=True)
            database = await guild_database(interaction)
            cls = table_class(database, table)
            schema = database.schema(table)
            record = cls.model_validate(values)
            await record.insert()
            await respond(
                interaction,
                f"Inserted into {code(table)} with key {code(record.pk)}:\n"
                + record_lines(record_fields(schema, record)),
            )

    async def _send_form(self, interaction: Interaction, table: str) -> None:
        database = open_guild_database(interaction)
        cls = table_class(database, table)
        schema = database.schema(table)
        if len(schema.fields) > FORM_FIELD_LIMIT:
            raise BadInputError(
                f"table {code(table)} has {len(schema.fields)} fields and a form holds "
                f"{FORM_FIELD_LIMIT}; give the record as JSON in `data`"
            )
        await interaction.response.send_modal(RecordForm(cls, schema, database))

    @app_commands.command(name="find", description="Find records", extras=requires(Access.READ))
    @app_commands.describe(
        table="The table to search",
        query="Conditions like `name=rex, legs>=3, email~@example.org` (all must hold)",
        sort="A field to sort by; `-field` sorts descending",
        limit="At most this many records (1-100, default 25)",
    )
    @app_commands.autocomplete(table=table_names, query=query_fields, sort=sort_fields)
    async def find(
        self,
        interaction: Interaction,
        table: str,
        query: str | None = None,
        sort: str | None = None,
        limit: app_commands.Range[int, 1, 100] = 25,
    ) -> None:
        async with answer_errors(interaction):
            conditions = parse_query(query)
            await interaction.response.defer(ephemeral=True, thinking=True)
            database = await guild_database(interaction)
            cls = table_class(database, table)
            schema = database.schema(table)
            order_by = parse_sort(sort, field_names(schema))
            expressions = query_expressions(cls, schema, conditions)
            found = await cls.find(*expressions, order_by=order_by, limit=limit)
            if not found:
                await respond(
                    interaction, f"No records in {code(table)}{_query_note(query, sort)}."
                )
                return
            pages = paginate(
                table,
                [(record.pk, record_fields(schema, record)) for record in found],
                note=_query_note(query, sort).strip(),
            )
            view = RecordPages(interaction, pages) if len(pages) > 1 else None
            await respond(interaction, embed=pages[0], view=view)

    @app_commands.command(name="count", description="Count records", extras=requires(Access.READ))
    @app_commands.describe(
        table="The table to count", query="Conditions like `legs>=3` (empty: all records)"
    )
    @app_commands.autocomplete(table=table_names, query=query_fields)
    async def count(self, interaction: Interaction, table: str, query: str | None = None) -> None:
        async with answer_errors(interaction):
            conditions = parse_query(query)
            await interaction.response.defer(ephemeral=True, thinking=True)
            database = await guild_database(interaction)
            cls = table_class(database, table)
            schema = database.schema(table)
            total = await cls.count(*query_expressions(cls, schema, conditions))
            noun = "record" if total == 1 else "records"
            await respond(
                interaction, f"{code(table)} has {total} {noun}{_query_note(query, None)}."
            )

    @app_commands.command(
        name="update", description="Change fields of a record", extras=requires(Access.WRITE)
    )
    @app_commands.describe(
        table="The table of the record",
        key="The record's key",
        changes='The new values as a JSON object, like {"legs": 3}',
    )
    @app_commands.autocomplete(table=table_names, key=record_keys)
    async def update(self, interaction: Interaction, table: str, key: str, changes: str) -> None:
        async with answer_errors(interaction):
            values = parse_json_object(changes, what="changes")
            if not values:
                raise BadInputError('changes is empty; give the new values, like {"legs": 3}')
            await interaction.response.defer(ephemeral=True, thinking=True)
            database = await guild_database(interaction)
            cls = table_class(database, table)
            schema = database.schema(table)
            known = field_names(schema)
            for name in values:
                if name not in known:
                    raise BadInputError(
                        f"table {code(table)} has no field {code(name)}; its fields are "
                        + ", ".join(code(field) for field in known)
                    )
            if schema.primary_key in values:
                raise BadInputError(
                    f"the primary key {code(schema.primary_key)} cannot change; insert a new "
                    "record and delete this one"
                )
            record = await cls.get(parse_key(schema, key))
            await record.update(**values)
            await respond(
                interaction,
                f"Updated {code(record.pk)} in {code(table)}:\n"
                + record_lines(record_fields(schema, record)),
            )

    @app_commands.command(
        name="delete", description="Delete a record", extras=requires(Access.WRITE)
    )
    @app_commands.describe(
        table="The table of the record", key="The record's key (asks you to confirm)"
    )
    @app_commands.autocomplete(table=table_names, key=record_keys)
    async def delete(self, interaction: Interaction, table: str, key: str) -> None:
        async with answer_errors(interaction):
            await interaction.response.defer(ephemeral=True, thinking=True)
            database = await guild_database(interaction)
            cls = table_class(database, table)
            schema = database.schema(table)
            record = await cls.get(parse_key(schema, key))

            async def delete_record(_: Interaction) -> str:
                await record.delete()
                return f"Deleted {code(record.pk)} from {code(table)}."

            confirmation = Confirmation(
                interaction,
                confirm_label="Delete",
                action=delete_record,
                timeout_text=f"Not confirmed in time: {code(record.pk)} was not deleted.",
            )
            await respond(
                interaction,
                f"Delete this record from {code(table)}? Confirm within a minute.\n"
                + record_lines(record_fields(schema, record)),
                view=confirmation,
            )

    @app_commands.command(
        name="export", description="Download a table as a file", extras=requires(Access.READ)
    )
    @app_commands.describe(
        table="The table to export", format="jsonl (one JSON object a line) or csv"
    )
    @app_commands.autocomplete(table=table_names)
    async def export(
        self, interaction: Interaction, table: str, format: Literal["jsonl", "csv"] = "jsonl"
    ) -> None:
        async with answer_errors(interaction):
            await interaction.response.defer(ephemeral=True, thinking=True)
            database = await guild_database(interaction)
            cls = table_class(database, table)
            schema = database.schema(table)
            rows = [
                ({"_key": record.pk} if schema.primary_key is None else {})
                | record_fields(schema, record)
                async for record in cls.all()
            ]
            body = export_jsonl(rows) if format == "jsonl" else export_csv(rows, schema)
            limit = interaction.filesize_limit
            if len(body) > limit:
                raise BadInputError(
                    f"the export is {len(body):,} bytes, over the {limit:,}-byte upload limit "
                    "Discord gives this reply; export from a script with the discobase library "
                    "instead"
                )
            await respond(
                interaction,
                f"{code(table)}: {len(rows)} record(s) as {format}.",
                file=discord.File(io.BytesIO(body), filename=f"{table}.{format}"),
            )


def export_jsonl(rows: list[dict[str, Any]]) -> bytes:
    """One JSON object per line, UTF-8."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def export_csv(rows: list[dict[str, Any]], schema: Any) -> bytes:
    """A header row, then one row per record; json values as JSON text. UTF-8.

    Text that a spreadsheet would run as a formula (starting with = + - @, a tab or a
    carriage return) gets a leading ' so that opening the export runs nothing.
    """
    columns = (["_key"] if schema.primary_key is None else []) + field_names(schema)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: _csv_cell(value) for name, value in row.items()})
    return buffer.getvalue().encode()


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        value = json.dumps(value)
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Records())
