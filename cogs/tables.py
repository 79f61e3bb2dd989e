"""Schema commands: ``/table create``, ``/table list``, ``/table reshard``, ``/schema``, ``/drop``,
``/check``, ``/compact``."""

from __future__ import annotations

import io
import json
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from discobot.databases import defer, guild_database, within_token
from discobot.errors import BadInputError
from discobot.grammar import FIELD_TYPES, parse_fields, parse_names
from discobot.options import ChosenTable
from discobot.permissions import Access
from discobot.render import (
    EMBED_COLOUR,
    EMBED_DESCRIPTION_LIMIT,
    add_field,
    code,
    plural,
    respond,
    schema_embed,
    shown,
    truncate,
)
from discobot.slash import command, subcommand
from discobot.views import Confirmation

Interaction = discord.Interaction[Any]
MAX_PROBLEMS_SHOWN = 20


class Tables(commands.Cog):
    """Create, list, grow, inspect, drop, check and compact tables."""

    table = app_commands.Group(name="table", description="Create and list database tables")

    @subcommand(table, name="create", description="Create a table", access=Access.WRITE)
    @app_commands.describe(
        name="Table name: lowercase letters, digits and _, starting with a letter",
        fields=f"Fields like `name:str, age:int=0, email:str?`; types: {', '.join(FIELD_TYPES)}",
        primary_key="The field that identifies a record (default: a generated key)",
        indexes="Fields to index for fast queries, comma-separated",
        unique="Fields whose values may not repeat, comma-separated",
    )
    async def create(
        self,
        interaction: Interaction,
        *,
        name: app_commands.Range[str, 1, 100],
        fields: str,
        primary_key: str | None = None,
        indexes: str | None = None,
        unique: str | None = None,
    ) -> None:
        specs = parse_fields(fields)
        known = list(specs)
        keys = parse_names(primary_key, what="`primary_key`", known=known)
        if len(keys) > 1:
            raise BadInputError("`primary_key` must be one field")
        index_names = parse_names(indexes, what="`indexes`", known=known)
        unique_names = parse_names(unique, what="`unique`", known=known)
        await defer(interaction)
        database = await guild_database(interaction)
        await database.create_table(
            name,
            specs,
            primary_key=keys[0] if keys else None,
            indexes=index_names,
            unique=unique_names,
        )
        await respond(
            interaction,
            f"Created table {code(name)}.",
            embed=schema_embed(database.schema(name)),
        )

    @subcommand(
        table,
        name="reshard",
        description="Give a table more shards (faster awaited writes)",
        access=Access.WRITE,
    )
    @app_commands.describe(
        table="The table to grow",
        shards="The new shard count: a multiple of the table's, at most 16",
    )
    async def reshard(
        self, interaction: Interaction, table: ChosenTable, shards: app_commands.Range[int, 2, 16]
    ) -> None:
        await defer(interaction)
        before = table.schema.shards

        grew = await within_token(interaction, table.database.reshard(table.name, shards))
        if grew is None:
            await respond(
                interaction,
                f"Still resharding table {code(table.name)}, longer than Discord lets a command "
                "answer; it goes on in the background (a failure goes to the bot's log, and "
                "running this again finishes it).",
            )
            return
        if not grew:
            await respond(
                interaction,
                f"Table {code(table.name)} has {plural(shards, 'shard')} already: nothing to do.",
            )
            return
        await respond(
            interaction,
            f"Table {code(table.name)} has {plural(shards, 'shard')} now (it had {before}).",
        )

    @subcommand(table, name="list", description="List the tables", access=Access.READ)
    async def list_tables(self, interaction: Interaction) -> None:
        await defer(interaction)
        database = await guild_database(interaction)
        names = sorted(database.tables)
        if not names:
            await respond(interaction, "There are no tables yet; `/table create` makes one.")
            return
        lines = []
        for name in names:
            count = database.schema(name).record_count
            lines.append(f"{code(name)}: {count} record{'' if count == 1 else 's'}")
        embed = discord.Embed(
            title=f"{len(names)} table{'' if len(names) == 1 else 's'}",
            description=truncate("\n".join(lines), EMBED_DESCRIPTION_LIMIT),
            colour=EMBED_COLOUR,
        )
        await respond(interaction, embed=embed)

    @command(
        name="schema",
        description="Show a table's fields, key, indexes and size",
        access=Access.READ,
    )
    @app_commands.describe(
        table="The table to describe",
        format="embed (readable summary) or json (a record's JSON Schema, as a file)",
    )
    async def schema(
        self,
        interaction: Interaction,
        table: ChosenTable,
        format: Literal["embed", "json"] = "embed",
    ) -> None:
        if format == "embed":
            await defer(interaction)
            await respond(interaction, embed=schema_embed(table.schema))
            return
        body = json.dumps(table.schema.json_schema(), indent=2).encode() + b"\n"
        limit = interaction.filesize_limit
        if len(body) > limit:
            raise BadInputError(
                f"the JSON Schema is {len(body):,} bytes, over the {limit:,}-byte upload limit "
                "Discord gives this reply; read it from a script with "
                "`db.schema(name).json_schema()`"
            )
        await defer(interaction)
        await respond(
            interaction,
            f"JSON Schema of a record of {code(table.name)}.",
            file=discord.File(io.BytesIO(body), filename=f"{table.name}.schema.json"),
        )

    @command(name="drop", description="Delete a table and all its records", access=Access.WRITE)
    @app_commands.describe(table="The table to drop (asks you to confirm)")
    async def drop(self, interaction: Interaction, table: ChosenTable) -> None:
        await defer(interaction)
        name = table.name
        count = table.schema.record_count

        async def drop_table(_: Interaction) -> str:
            await table.database.drop_table(name)
            return f"Dropped table {code(name)} and its {plural(count, 'record')}."

        confirmation = Confirmation(
            interaction,
            confirm_label=f"Drop {truncate(name, 60)}",
            action=drop_table,
            timeout_text=f"Not confirmed in time: table {code(name)} was not dropped.",
        )
        await respond(
            interaction,
            f"Drop table {code(name)} and its {plural(count, 'record')}? This cannot be undone. "
            "Confirm within a minute.",
            view=confirmation,
        )

    @command(
        name="check",
        description="Check the stored data for problems (read only)",
        access=Access.WRITE,
    )
    async def check(self, interaction: Interaction) -> None:
        await defer(interaction)
        database = await guild_database(interaction)
        report = await within_token(interaction, database.check())
        if report is None:
            await respond(
                interaction,
                "The check is still running, longer than Discord lets a command answer; "
                "it changes nothing, and its result will not be shown here. Run "
                "`Database.check()` from a script to see the report of a storage this large.",
            )
            return
        if report.ok:
            await respond(interaction, "No problems found: every stored message is readable.")
            return
        embed = discord.Embed(
            title=f"{plural(len(report.problems), 'problem')} found; nothing was changed",
            colour=discord.Colour.orange(),
        )
        for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
            where = (
                f"https://discord.com/channels/{interaction.guild_id}/{problem.channel_id}/"
                f"{problem.message_id}"
                if problem.channel_id and problem.message_id
                else "(no message)"
            )
            add_field(
                embed,
                f"{problem.kind} in {problem.table or 'storage'}",
                f"{shown(problem.detail, 800)}\n{where}",
            )
        if len(report.problems) > MAX_PROBLEMS_SHOWN:
            embed.set_footer(text=f"…and {len(report.problems) - MAX_PROBLEMS_SHOWN} more")
        await respond(interaction, embed=embed)

    @command(
        name="compact",
        description="Rewrite a table's storage as a snapshot",
        access=Access.WRITE,
    )
    @app_commands.describe(table="The table to compact")
    async def compact(self, interaction: Interaction, table: ChosenTable) -> None:
        await defer(interaction)
        deleted = await within_token(interaction, table.database.compact(table.name))
        if deleted is None:
            await respond(
                interaction,
                f"Still compacting table {code(table.name)}, longer than Discord lets a command "
                "answer; it goes on in the background (a failure goes to the bot's log).",
            )
            return
        await respond(
            interaction,
            f"Compacted table {code(table.name)}: it loads from a snapshot now; "
            f"{plural(deleted, 'old storage message')} deleted.",
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Tables())
