"""``/import``: insert the records of an attached JSON lines or CSV file into a table.

The whole file is validated first (each row against the table's fields, keys and unique values
against the table and the file) and nothing is written unless every row is valid, or
``skip_invalid`` is set. While records are written, the deferred reply is edited with the
progress at most once every :attr:`Imports.progress_interval` seconds: Discord rate-limits each
route per webhook (the interaction token's) and asks clients not to hard-code limits
(discord-api-docs, docs/topics/Rate_Limits.md), so a long import stays far below any limit and
discord.py waits out a 429 if one comes.
"""

from __future__ import annotations

import io
import time
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from discobase import transfer
from discobot.databases import defer
from discobot.errors import BadInputError
from discobot.options import ChosenTable
from discobot.permissions import Access
from discobot.render import code, plural, respond, truncate
from discobot.slash import command
from discobot.tables import TableRef

Interaction = discord.Interaction[Any]
#: Files larger than this are refused before download (the records are held in memory).
MAX_IMPORT_BYTES = 8 * 1024 * 1024
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
BAD_ROWS_SHOWN = 10
MESSAGE_LIMIT = 2000


class Imports(commands.Cog):
    """Import records from a file."""

    #: Seconds between edits of the progress message.
    progress_interval = 2.0

    def __init__(self) -> None:
        self.clock = time.monotonic

    @command(
        name="import",
        description="Insert the records of a JSON lines or CSV file into a table",
        access=Access.WRITE,
    )
    @app_commands.describe(
        table="The table to insert into",
        file="A .jsonl (one JSON object a line) or .csv (a header row of field names) file",
        skip_invalid="Import the valid rows even if some are invalid (default: all or nothing)",
    )
    async def import_file(
        self,
        interaction: Interaction,
        table: ChosenTable,
        file: discord.Attachment,
        skip_invalid: bool = False,
    ) -> None:
        suffix = "." + file.filename.rpartition(".")[2].lower() if "." in file.filename else ""
        fmt = FORMATS.get(suffix)
        if fmt is None:
            raise BadInputError(
                f"{code(file.filename)} is not a .jsonl or .csv file; export one with `/export`"
            )
        if file.size > MAX_IMPORT_BYTES:
            raise BadInputError(
                f"{code(file.filename)} is {file.size:,} bytes; `/import` takes files up to "
                f"{MAX_IMPORT_BYTES:,} bytes (the `discobase import` command line has no limit)"
            )
        await defer(interaction)
        try:
            text = (await file.read()).decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise BadInputError(f"{code(file.filename)} is not UTF-8 text: {error}") from None
        rows = [row for row, _ in transfer.read_rows(io.StringIO(text), fmt, table.schema)]
        checked = transfer.check_rows(
            rows, table.schema, table.table, await transfer.existing(table.table, table.schema)
        )
        if checked.bad and not skip_invalid:
            await respond(interaction, _bad_rows(checked, "Nothing was imported."))
            return
        if not checked.records:
            await respond(interaction, f"{code(file.filename)} holds no records to import.")
            return
        await self._insert(interaction, table, checked.records)
        skipped = f"; skipped {plural(len(checked.bad), 'invalid row')}" if checked.bad else ""
        await respond(
            interaction,
            f"Imported {plural(len(checked.records), 'record')} into {code(table.name)}{skipped}.",
        )

    async def _insert(
        self, interaction: Interaction, table: TableRef, records: list[dict[str, Any]]
    ) -> None:
        """Write the records in chunks, editing the reply at most every progress_interval s."""
        total = len(records)
        written = 0
        shown = self.clock()

        async def advance(count: int, _size: int) -> None:
            nonlocal written, shown
            written += count
            if written < total and self.clock() - shown >= self.progress_interval:
                shown = self.clock()
                await interaction.edit_original_response(
                    content=_progress(table.name, written, total)
                )

        await interaction.edit_original_response(content=_progress(table.name, 0, total))
        await transfer.insert(table.table, records, advance)


def _progress(table: str, written: int, total: int) -> str:
    return f"Importing into {code(table)}: {written:,} of {total:,} records…"


def _bad_rows(checked: transfer.Checked, ending: str) -> str:
    lines = [f"{plural(len(checked.bad), 'row')} of {checked.rows:,} are invalid. {ending}"]
    lines += [f"- {truncate(line, 180)}" for line in checked.bad[:BAD_ROWS_SHOWN]]
    if len(checked.bad) > BAD_ROWS_SHOWN:
        lines.append(f"- … and {len(checked.bad) - BAD_ROWS_SHOWN:,} more")
    lines.append("Fix them, or set `skip_invalid` to import the valid rows.")
    return truncate("\n".join(lines), MESSAGE_LIMIT)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Imports())
