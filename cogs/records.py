"""Record commands: ``/insert`` (JSON or a form), ``/find``, ``/count``, ``/update``, ``/delete``, ``/export``."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

import discobase
from discobot.autocomplete import query_fields, record_keys, sort_fields
from discobot.databases import defer
from discobot.errors import BadInputError
from discobot.grammar import (
    Condition,
    coerce_value,
    parse_json_object,
    parse_names,
    parse_query,
    parse_sort,
)
from discobot.options import ChosenTable, InsertTable
from discobot.permissions import Access
from discobot.render import (
    CONTENT_LIMIT,
    code,
    paginate,
    plural,
    record_lines,
    respond,
    table_pages,
    truncate,
)
from discobot.render import share as share_page
from discobot.slash import command
from discobot.tables import TableRef
from discobot.views import Confirmation, Form, RecordPages

Interaction = discord.Interaction[Any]
FORM_FIELD_LIMIT = 5
TEXT_INPUT_LABEL_LIMIT = 45
EXPORT_BATCH = 500
"""Records encoded between two yields to the event loop while exporting."""


def _saved_reply(head: str, table: TableRef, record: discobase.Table) -> str:
    """``head`` (like ``Inserted into `pets` with key `rex`:``), then the other fields."""
    return f"{head}\n" + record_lines(table.fields_of(record), key_field=table.primary_key)


async def _insert(table: TableRef, values: dict[str, Any]) -> discobase.Table:
    """Validate and insert a record; a key that exists already is explained with the way to
    change it."""
    record = table.table.model_validate(values)
    try:
        await record.insert()
    except discobase.UniqueViolationError as error:
        if error.field != (table.primary_key or "pk"):
            raise
        raise BadInputError(
            f"{code(table.name)} has a record with key {code(error.key)} already; use /update "
            "to change it, or /delete it first"
        ) from None
    return record


async def _query_error(
    table: TableRef, conditions: list[Condition], error: discobase.ValidationError
) -> BadInputError | discobase.ValidationError:
    """The condition whose value does not fit its field, named, or ``error`` itself."""
    for condition in conditions:
        try:
            await table.table.count(*table.where([condition]))
        except discobase.ValidationError as single:
            reason = single.errors[0].get("msg", "") if single.errors else str(single)
            return BadInputError(
                f"That does not fit table {code(table.name)}: in {code(str(condition), 200)}, "
                f"{code(condition.field)}: {reason}"
            )
    return error


def _query_note(query: str | None, sort: str | None) -> str:
    parts = []
    if query:
        parts.append(f"where {code(query, 200)}")
    if sort:
        parts.append(f"sorted by {code(sort, 60)}")
    return "".join(f" {part}" for part in parts)


class RecordForm(Form):
    """A form with one text box per field, for tables of up to five fields."""

    def __init__(self, table: TableRef) -> None:
        super().__init__(title=truncate(f"New record in {table.name}", 45), timeout=900)
        self.table = table
        self.inputs: dict[str, discord.ui.TextInput[RecordForm]] = {}
        for field in table.schema.fields:
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

    async def submit(self, interaction: Interaction) -> None:
        types = self.table.field_types()
        nullable = {
            field.name
            for field in self.table.schema.fields
            if field.optional and not field.has_default
        }
        data: dict[str, Any] = {}
        for name, text_input in self.inputs.items():
            if text_input.value.strip():
                data[name] = coerce_value(types[name], text_input.value, what=f"field {code(name)}")
            elif name in nullable:
                data[name] = None
        await defer(interaction)
        record = await _insert(self.table, data)
        await respond(
            interaction,
            _saved_reply(
                f"Inserted into {code(self.table.name)} with key {code(record.pk)}:",
                self.table,
                record,
            ),
        )


class Records(commands.Cog):
    """Insert, find, count, update, delete and export records."""

    def __init__(self) -> None:
        self.exporting: set[int | None] = set()

    @command(
        name="insert",
        description="Add a record (leave data empty for a form)",
        access=Access.WRITE,
    )
    @app_commands.describe(
        table="The table to add to",
        data='The record as a JSON object, like {"name": "rex", "legs": 4}; empty: fill a form',
    )
    async def insert(
        self, interaction: Interaction, table: InsertTable, data: str | None = None
    ) -> None:
        if data is None:
            await self._send_form(interaction, table)
            return
        values = parse_json_object(data)
        await defer(interaction)
        record = await _insert(table, values)
        await respond(
            interaction,
            _saved_reply(
                f"Inserted into {code(table.name)} with key {code(record.pk)}:", table, record
            ),
        )

    async def _send_form(self, interaction: Interaction, table: TableRef) -> None:
        fields = len(table.schema.fields)
        if fields > FORM_FIELD_LIMIT:
            raise BadInputError(
                f"table {code(table.name)} has {fields} fields and a form holds "
                f"{FORM_FIELD_LIMIT}; give the record as JSON in `data`"
            )
        await interaction.response.send_modal(RecordForm(table))

    @command(name="find", description="Find records", access=Access.READ)
    @app_commands.describe(
        table="The table to search",
        query="Conditions like `name=rex, legs>=3, email~@example.org` (all must hold)",
        sort="A field to sort by; `-field` sorts descending",
        limit="At most this many records (1-100, default 25)",
        view="cards (one card a record, the default) or table (aligned columns)",
        share="Also post the first page in the channel for everyone there (default: only you)",
    )
    @app_commands.autocomplete(query=query_fields, sort=sort_fields)
    async def find(
        self,
        interaction: Interaction,
        table: ChosenTable,
        query: str | None = None,
        sort: str | None = None,
        limit: app_commands.Range[int, 1, 100] = 25,
        view: Literal["cards", "table"] = "cards",
        share: bool = False,
    ) -> None:
        conditions = parse_query(query)
        await defer(interaction)
        order_by = parse_sort(sort, table.field_names())
        where = table.where(conditions)
        try:
            found = await table.table.find(*where, order_by=order_by, limit=limit)
            total = await table.table.count(*where) if len(found) == limit else len(found)
        except discobase.ValidationError as error:
            raise await _query_error(table, conditions, error) from None
        if not found:
            await respond(
                interaction, f"No records in {code(table.name)}{_query_note(query, sort)}."
            )
            return
        render = table_pages if view == "table" else paginate
        note = _query_note(query, sort).strip()
        if total > len(found):
            note += f"{' ' if note else ''}(the first {len(found)}; `limit` shows up to 100)"
        pages = render(
            table.name,
            [(record.pk, table.fields_of(record)) for record in found],
            total=total,
            key_field=table.primary_key,
            note=note,
        )
        if share:
            await respond(interaction, "Shared the first page in the channel.")
            await share_page(interaction, pages[0])
            return
        pages_view = RecordPages(interaction, pages) if len(pages) > 1 else None
        await respond(interaction, embed=pages[0], view=pages_view)

    @command(name="count", description="Count records", access=Access.READ)
    @app_commands.describe(
        table="The table to count",
        query="Conditions like `legs>=3` (empty: all records)",
        group_by="Count per value of these fields, comma-separated, like `legs`",
    )
    @app_commands.autocomplete(query=query_fields)
    async def count(
        self,
        interaction: Interaction,
        table: ChosenTable,
        query: str | None = None,
        group_by: str | None = None,
    ) -> None:
        conditions = parse_query(query)
        groups = parse_names(group_by, what="`group_by`", known=table.field_names())
        types = table.field_types()
        for name in groups:
            if types[name] == "json":
                raise BadInputError(
                    f"`group_by` names {code(name)}, a json field, whose values cannot be "
                    "grouped; group by a field of another type"
                )
        await defer(interaction)
        try:
            if groups:
                counted = await table.table.aggregate(*table.where(conditions), group_by=groups)
            else:
                total = await table.table.count(*table.where(conditions))
        except discobase.ValidationError as error:
            raise await _query_error(table, conditions, error) from None
        note = _query_note(query, None)
        if not groups:
            await respond(interaction, f"{code(table.name)} has {plural(total, 'record')}{note}.")
            return
        total = sum(group["count"] for group in counted)
        lines = [
            f"{plural(total, 'record')} of {code(table.name)}{note} in "
            f"{plural(len(counted), 'group')} by {', '.join(code(n) for n in groups)}:"
        ]
        for position, group in enumerate(counted):
            line = (
                ", ".join(f"{code(n)}={code(v, 60)}" for n, v in group["group"].items())
                + f": {group['count']:,}"
            )
            rest = f"… and {plural(len(counted) - position, 'more group')}"
            if sum(len(x) + 1 for x in [*lines, line, rest]) > CONTENT_LIMIT:
                lines.append(rest)
                break
            lines.append(line)
        await respond(interaction, "\n".join(lines))

    @command(name="update", description="Change fields of a record", access=Access.WRITE)
    @app_commands.describe(
        table="The table of the record",
        key="The record's key",
        changes='The new values as a JSON object, like {"legs": 3}',
    )
    @app_commands.autocomplete(key=record_keys)
    async def update(
        self, interaction: Interaction, table: ChosenTable, key: str, changes: str
    ) -> None:
        values = parse_json_object(changes, what="`changes`")
        if not values:
            raise BadInputError('`changes` is empty; give the new values, like {"legs": 3}')
        await defer(interaction)
        if table.primary_key in values:
            raise BadInputError(
                f"the primary key {code(table.primary_key)} cannot change; insert a new "
                "record and delete this one"
            )
        record = await table.table.get(table.parse_key(key))
        await record.update(**values, if_revision=record.revision)
        await respond(
            interaction,
            _saved_reply(f"Updated {code(record.pk)} in {code(table.name)}:", table, record),
        )

    @command(name="delete", description="Delete a record", access=Access.WRITE)
    @app_commands.describe(
        table="The table of the record", key="The record's key (asks you to confirm)"
    )
    @app_commands.autocomplete(key=record_keys)
    async def delete(self, interaction: Interaction, table: ChosenTable, key: str) -> None:
        await defer(interaction)
        record = await table.table.get(table.parse_key(key))

        async def delete_record(_: Interaction) -> str:
            # Only the record the member was shown: not one saved since the question.
            await record.delete(if_revision=record.revision)
            return f"Deleted {code(record.pk)} from {code(table.name)}."

        confirmation = Confirmation(
            interaction,
            confirm_label="Delete",
            action=delete_record,
            timeout_text=f"Not confirmed in time: {code(record.pk)} was not deleted.",
        )
        await respond(
            interaction,
            f"Delete the record with key {code(record.pk)} from {code(table.name)}? Confirm "
            "within a minute.\n"
            + record_lines(table.fields_of(record), key_field=table.primary_key),
            view=confirmation,
        )

    @command(name="export", description="Download a table as a file", access=Access.READ)
    @app_commands.describe(
        table="The table to export", format="jsonl (one JSON object a line) or csv"
    )
    async def export(
        self,
        interaction: Interaction,
        table: ChosenTable,
        format: Literal["jsonl", "csv"] = "jsonl",
    ) -> None:
        guild_id = interaction.guild_id
        if guild_id in self.exporting:
            raise BadInputError(
                "another export of this server is still being built; try again when it is done"
            )
        await defer(interaction)
        limit = interaction.filesize_limit
        self.exporting.add(guild_id)
        try:
            rows = _export_rows(table)
            if format == "jsonl":
                export = await build_export(_jsonl_lines(rows), limit=limit)
            else:
                columns = (["_key"] if table.primary_key is None else []) + table.field_names()
                export = await build_export(
                    _csv_lines(rows, columns), limit=limit, header=_csv_line(columns)
                )
        finally:
            self.exporting.discard(guild_id)
        if export.over_limit:
            raise BadInputError(
                f"the export is over the {limit:,}-byte upload limit Discord gives this reply, "
                f"even compressed (it stopped after {plural(export.rows, 'record')}); export "
                "from a script with the discobase library instead"
            )
        filename = f"{table.name}.{format}" + (".gz" if export.compressed else "")
        how = " (gzip-compressed: it is larger than the upload limit)" if export.compressed else ""
        await respond(
            interaction,
            f"{code(table.name)}: {plural(export.rows, 'record')} as {format}{how}.",
            file=discord.File(io.BytesIO(export.body), filename=filename),
        )


async def _export_rows(table: TableRef) -> AsyncIterator[dict[str, Any]]:
    """Every record as export data (``_key`` first for generated keys), yielding to the event loop
    every :data:`EXPORT_BATCH` records so that other commands run meanwhile."""
    generated = table.primary_key is None
    count = 0
    async for record in table.table.all():
        yield ({"_key": record.pk} if generated else {}) | table.fields_of(record)
        count += 1
        if count % EXPORT_BATCH == 0:
            await asyncio.sleep(0)


async def _jsonl_lines(rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """One JSON object per line, UTF-8."""
    async for row in rows:
        yield (json.dumps(row, ensure_ascii=False) + "\n").encode()


def _csv_line(cells: list[str]) -> bytes:
    """One CSV row, every cell quoted, UTF-8."""
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(cells)
    return buffer.getvalue().encode()


async def _csv_lines(
    rows: AsyncIterator[dict[str, Any]], columns: list[str]
) -> AsyncIterator[bytes]:
    """One row a record, in ``columns`` order; each value through :func:`csv_cell`."""
    async for row in rows:
        yield _csv_line([csv_cell(row.get(name)) for name in columns])


class Export:
    """A built export: its bytes (gzip when ``compressed``), how many records it holds, and
    whether it stopped at the upload limit (``body`` is then incomplete and not sent)."""

    def __init__(self, body: bytes, rows: int, *, compressed: bool, over_limit: bool) -> None:
        self.body = body
        self.rows = rows
        self.compressed = compressed
        self.over_limit = over_limit


async def build_export(lines: AsyncIterator[bytes], *, limit: int, header: bytes = b"") -> Export:
    """Collect ``header`` and ``lines`` (one a record) up to ``limit`` bytes.

    Past the limit the rest is gzip-compressed as it streams; once even the compressed file is
    over the limit, reading stops at once.
    """
    raw: list[bytes] = [header]
    size = len(header)
    compressor: Any = None
    compressed: list[bytes] = []
    compressed_size = 0
    rows = 0
    async for line in lines:
        rows += 1
        if compressor is None:
            raw.append(line)
            size += len(line)
            if size <= limit:
                continue
            compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
            pending = b"".join(raw)
            raw = []
        else:
            pending = line
        chunk = compressor.compress(pending)
        compressed.append(chunk)
        compressed_size += len(chunk)
        if compressed_size > limit:
            return Export(b"", rows, compressed=True, over_limit=True)
    if compressor is None:
        return Export(b"".join(raw), rows, compressed=False, over_limit=size > limit)
    compressed.append(compressor.flush())
    body = b"".join(compressed)
    return Export(body, rows, compressed=True, over_limit=len(body) > limit)


_FORMULA_STARTS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
_CELL_SEPARATORS = frozenset(",;|\t")
_INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff")


def csv_cell(value: Any) -> str:
    """A value as CSV text that a spreadsheet shows and never runs.

    Booleans are ``true``/``false`` and null is empty (like JSON); lists and objects are JSON
    text. In text, wherever a formula could start (at the beginning of the cell or after a
    separator a spreadsheet might split on: ``,`` ``;`` ``|`` or a tab, past any blanks such as
    spaces, no-break spaces, newlines and zero-width characters), a ``'`` goes before the
    ``=`` ``+`` ``-`` ``@`` or its full-width form; a cell starting with a tab or carriage return
    gets a leading ``'`` too.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    pieces: list[str] = ["'"] if text[:1] in ("\t", "\r") else []
    at_start = True
    for character in text:
        if at_start and character in _FORMULA_STARTS:
            pieces.append("'")
            at_start = False
        elif character in _CELL_SEPARATORS:
            at_start = True
        elif not (character.isspace() or character in _INVISIBLE):
            at_start = False
        pieces.append(character)
    return "".join(pieces)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Records())
