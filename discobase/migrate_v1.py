"""Move the data discobase 1.0 stored in a guild into this version's storage: :func:`migrate_v1`.

discobase 1.0 kept, as top-level text channels of its guild:

- ``#_dbmetadata``: one JSON message per table (``name``, ``keys``: the field names,
  ``table_channel``, ``index_channels``: ``{"<table>_<field>": channel id}``, counters);
- ``#<table>``: one message per record, ``{"content": "<urlsafe base64 of the record's JSON>"}``;
- ``#<table>_<field>``: a hash index, one message per slot, ``null`` or
  ``{"key": hash, "record_ids": [...], "next_value": ...}``, edited in place.

The table channels hold the records; the indexes are derived, and 1.0 corrupted them (slots
lost when it resized them, slots over 2,000 characters, saves that failed half-way), so the
migration reads every table channel in full and reads the indexes only to report which
records 1.0's own ``find`` could miss. It only reads the 1.0 channels: it never edits,
deletes or sends there. Records are written with keys made from their 1.0 message ids, so
running it again replaces the same records instead of adding copies.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic

from .classes import field_spec, runtime_class
from .database import Database
from .engine.schema import TableSchema, describe_annotation
from .engine.storage import StoredMessage
from .errors import SchemaError, UniqueViolationError, V1DataNotFoundError, ValidationError
from .model import Table

__all__ = ("MigrationReport", "TableReport", "Unreadable", "migrate_v1")

log = logging.getLogger(__name__)

METADATA_CHANNEL = "_dbmetadata"
_DISCORD_EPOCH_MS = 1420070400000
#: Records written to the new table per (atomic) write.
_CHUNK = 1000


@dataclass(frozen=True)
class Unreadable:
    """A 1.0 message the migration could not use, and why."""

    channel_id: int
    message_id: int | None
    reason: str
    table: str | None = None

    def __str__(self) -> str:
        where = f"table {self.table}, " if self.table else ""
        return f"{where}channel {self.channel_id}, message {self.message_id}: {self.reason}"


@dataclass
class TableReport:
    """One 1.0 table: what was read, what was written, what could not be used."""

    name: str
    target: str
    fields: dict[str, str] = field(default_factory=dict)
    created: bool = False
    found: int = 0
    migrated: int = 0
    not_indexed: int = 0
    dangling: int = 0
    unreadable: list[Unreadable] = field(default_factory=list)

    def __str__(self) -> str:
        into = f" into {self.target}" if self.target != self.name else ""
        fields = ", ".join(f"{k}: {v}" for k, v in self.fields.items())
        line = (
            f"table {self.name}{into} ({fields}): {self.found} records read, "
            f"{self.migrated} migrated, {len(self.unreadable)} unreadable"
        )
        if self.not_indexed:
            line += (
                f"; {self.not_indexed} were missing from one or more of 1.0's index channels "
                "(its find by those fields missed them)"
            )
        if self.dangling:
            line += f"; {self.dangling} index entries pointed at no record"
        return line


@dataclass
class MigrationReport:
    """What :func:`migrate_v1` read and wrote. ``ok`` when every 1.0 message was used."""

    source_guild: int
    target_guild: int
    dry_run: bool
    tables: list[TableReport] = field(default_factory=list)
    #: Messages of the metadata channel that could not be used (per table: ``tables``).
    unreadable: list[Unreadable] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(t.migrated for t in self.tables)

    @property
    def ok(self) -> bool:
        return not self.unreadable and not any(t.unreadable for t in self.tables)

    def __str__(self) -> str:
        verb = "would migrate" if self.dry_run else "migrated"
        lines = [
            f"discobase 1.0 data in guild {self.source_guild}: {verb} {len(self.tables)} tables, "
            f"{self.records} records into guild {self.target_guild}"
        ]
        lines += [f"  {t}" for t in self.tables]
        problems = [*self.unreadable, *(u for t in self.tables for u in t.unreadable)]
        if problems:
            lines.append(f"unreadable ({len(problems)}):")
            lines += [f"  {u}" for u in problems]
        return "\n".join(lines)


@dataclass
class _Metadata:
    message_id: int
    name: str
    keys: list[str]
    table_channel: int
    index_channels: dict[str, int]


async def migrate_v1(
    db: Database,
    source: int | str | None = None,
    *,
    author: int | None = None,
    rename: Mapping[str, str] | None = None,
    dry_run: bool = False,
) -> MigrationReport:
    """Copy every table and record discobase 1.0 stored in guild ``source`` into ``db``.

    ``db`` is opened if it is not; ``source`` is the 1.0 guild's id or name (default: ``db``'s guild).
    The bot must be a member of both. Only messages written by ``author`` (default: this
    bot's user, the account 1.0 ran as) are 1.0's; others are reported as unreadable.
    ``rename`` maps 1.0 table names to new ones (e.g. one that is reserved here). A table
    that exists in ``db`` (a class registered with ``@db.table``, or a table created before)
    receives the records under its schema; otherwise it is created, each field typed from
    the values 1.0 stored (str, int, float, bool, or json; optional where a value is null).
    ``dry_run`` reads and reports without writing anything.

    Raises :class:`V1DataNotFoundError`, and what reading Discord raises
    (:class:`GuildNotFoundError`, :class:`DiscordUnavailableError`, ...).
    """
    await db.build_tables()  # classes registered since open() receive their records
    transport = db.transport
    assert db.guild_id is not None
    guild = transport.find_guild(source if source is not None else db.guild_id)
    user = transport.client.user
    assert user is not None, "an open database's client is logged in"
    author_id = author if author is not None else user.id
    channels = {channel.id: channel.name for channel in guild.text_channels}
    metadata_ids = sorted(cid for cid, name in channels.items() if name == METADATA_CHANNEL)
    if not metadata_ids:
        raise V1DataNotFoundError(guild.id)
    report = MigrationReport(guild.id, db.guild_id, dry_run)
    tables: dict[str, _Metadata] = {}
    for channel_id in metadata_ids:
        for message in await _read(db, channel_id):
            meta = _metadata(message, author_id, report.unreadable)
            if meta is None:
                continue
            if meta.name in tables:  # 1.0 used the newest one
                report.unreadable.append(
                    Unreadable(
                        channel_id,
                        tables[meta.name].message_id,
                        "metadata superseded by a newer message for the same table",
                        meta.name,
                    )
                )
            tables[meta.name] = meta
    for meta in tables.values():
        table = TableReport(meta.name, (rename or {}).get(meta.name, meta.name))
        report.tables.append(table)
        if meta.table_channel not in channels:
            table.unreadable.append(
                Unreadable(meta.table_channel, None, "the table's channel is gone", meta.name)
            )
            continue
        await _migrate_table(db, meta, table, author_id, channels, dry_run)
    log.info("%s", report)
    return report


async def _read(db: Database, channel_id: int) -> list[StoredMessage]:
    """Every message of the channel, oldest first."""
    return [message async for message in db.transport.history(channel_id)][::-1]


def _metadata(message: StoredMessage, author_id: int, bad: list[Unreadable]) -> _Metadata | None:
    if message.author_id != author_id:
        bad.append(Unreadable(message.channel_id, message.id, _foreign(message)))
        return None
    try:
        data = json.loads(message.content)
        meta = _Metadata(
            message.id,
            str(data["name"]),
            [str(k) for k in data["keys"]],
            int(data["table_channel"]),
            {str(k): int(v) for k, v in dict(data["index_channels"]).items()},
        )
    except (ValueError, TypeError, KeyError) as error:
        bad.append(Unreadable(message.channel_id, message.id, f"not 1.0 metadata: {error!r}"))
        return None
    return meta


def _foreign(message: StoredMessage) -> str:
    return f"written by user {message.author_id}, not by the discobase 1.0 bot"


def _decode_record(content: str, keys: list[str]) -> dict[str, Any]:
    """A 1.0 record message's fields; ValueError says why it is not one."""
    try:
        wrapper = json.loads(content)
        encoded = wrapper["content"] if isinstance(wrapper, dict) else None
        if not isinstance(encoded, str):
            raise ValueError("no base64 content")
        data = json.loads(base64.urlsafe_b64decode(encoded.encode("ascii")))
    except (ValueError, KeyError, UnicodeError, binascii.Error) as error:
        raise ValueError(f"not a 1.0 record ({error})") from None
    if not isinstance(data, dict):
        raise ValueError("not a 1.0 record (its JSON is not an object)")
    if set(data) != set(keys):
        raise ValueError(
            f"its fields {sorted(data)} are not the table's {sorted(keys)} (edited by hand?)"
        )
    return data


def _index_ids(content: str) -> set[int]:
    """Record ids an index slot names (with its ``next_value`` chain, left by a resize)."""
    ids: set[int] = set()
    try:
        slot = json.loads(content)
    except ValueError:
        return ids
    while isinstance(slot, dict):
        ids.update(i for i in slot.get("record_ids") or () if isinstance(i, int))
        slot = slot.get("next_value")
    return ids


def _infer_type(values: list[Any]) -> str:
    """A type name (``TYPE_NAMES``; ``?`` for optional) that fits every stored value."""
    present = [v for v in values if v is not None]
    optional = "?" if len(present) < len(values) else ""
    kinds = {type(v) for v in present}
    if not kinds or kinds == {str}:
        name = "str"
    elif kinds == {bool}:
        name = "bool"
    elif kinds == {int}:
        name = "int"
    elif kinds <= {int, float}:
        name = "float"
    else:
        name = "json"
    return name + optional


def _key(message_id: int) -> str:
    """The record's key: shaped like a generated key, made from its 1.0 message id."""
    milliseconds = (message_id >> 22) + _DISCORD_EPOCH_MS
    return f"{milliseconds:011x}{message_id & 0xFFFFFFFFFF:010x}"


async def _migrate_table(
    db: Database,
    meta: _Metadata,
    table: TableReport,
    author_id: int,
    channels: dict[int, str],
    dry_run: bool,
) -> None:
    records: list[tuple[int, dict[str, Any]]] = []
    for message in await _read(db, meta.table_channel):
        if message.author_id != author_id:
            table.unreadable.append(
                Unreadable(message.channel_id, message.id, _foreign(message), meta.name)
            )
            continue
        try:
            records.append((message.id, _decode_record(message.content, meta.keys)))
        except ValueError as error:
            table.unreadable.append(
                Unreadable(message.channel_id, message.id, str(error), meta.name)
            )
    table.found = len(records)
    record_ids = {message_id for message_id, _ in records}
    indexed: list[set[int]] = []
    for channel_id in meta.index_channels.values():
        if channel_id not in channels:
            continue
        referenced: set[int] = set()
        for message in await _read(db, channel_id):
            if message.author_id == author_id:
                referenced |= _index_ids(message.content)
        indexed.append(referenced)
        table.dangling += len(referenced - record_ids)
    table.not_indexed = sum(1 for i in record_ids if any(i not in ids for ids in indexed))

    cls = db.tables.get(table.target)
    if cls is not None:
        table.fields = {
            name: _type_name(info.annotation) for name, info in cls.model_fields.items()
        }
    else:
        order = list(records[0][1]) if records else meta.keys  # as declared (1.0 kept a set)
        table.fields = {k: _infer_type([data.get(k) for _, data in records]) for k in order}
    try:
        if dry_run:
            cls = cls or _scratch_class(table)
        elif cls is None:
            cls = await db.create_table(table.target, table.fields)
            table.created = True
    except SchemaError as error:
        table.unreadable.append(
            Unreadable(
                meta.table_channel,
                None,
                f"cannot be a table here: {error} (rename it: rename={{{meta.name!r}: ...}})",
                meta.name,
            )
        )
        return
    valid = _validated(cls, records, table, meta.table_channel)
    if dry_run:
        table.migrated = len(valid)
        return
    for start in range(0, len(valid), _CHUNK):
        chunk = valid[start : start + _CHUNK]
        try:
            await cls._engine().write([record._write() for _, record in chunk])
            table.migrated += len(chunk)
        except UniqueViolationError:
            for message_id, record in chunk:  # find the records that collide
                try:
                    await cls._engine().write([record._write()])
                    table.migrated += 1
                except UniqueViolationError as error:
                    table.unreadable.append(
                        Unreadable(meta.table_channel, message_id, str(error), meta.name)
                    )


def _type_name(annotation: Any) -> str:
    name, optional = describe_annotation(annotation)
    return name + ("?" if optional else "")


def _scratch_class(table: TableReport) -> type[Table]:
    """The class ``create_table`` would make, to validate a dry run's records."""
    schema = TableSchema(
        table.target, [field_spec(table.target, k, v) for k, v in table.fields.items()]
    ).validate()
    return runtime_class(schema)


def _validated(
    cls: type[Table],
    records: list[tuple[int, dict[str, Any]]],
    table: TableReport,
    channel_id: int,
) -> list[tuple[int, Table]]:
    valid = []
    primary_key = _settings_primary_key(cls)
    for message_id, data in records:
        try:
            record = cls.model_validate(data)
        except (ValidationError, pydantic.ValidationError) as error:
            table.unreadable.append(Unreadable(channel_id, message_id, str(error), table.name))
            continue
        if primary_key is None:
            record._discobase_key = _key(message_id)
        valid.append((message_id, record))
    return valid


def _settings_primary_key(cls: type[Table]) -> str | None:
    engine = cls.__discobase_engine__
    if engine is not None:
        return engine.schema.primary_key
    settings = getattr(cls, "Settings", None)
    return getattr(settings, "primary_key", None)
