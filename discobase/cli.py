"""The ``discobase`` command line (also ``python -m discobase``): see docs/operations.md.

Every command but ``migrate-v1`` opens the database of one guild: ``--guild`` (or
``DISCOBASE_GUILD``), logged in with ``DISCORD_TOKEN`` (from the environment, else ``.env`` in
the working directory), or ``--offline`` on SimCord, an in-memory Discord whose guild is empty at
each start (for trying the commands). It uses only the public API: ``Database``, its tables'
``find``/``all``/``insert_many``, ``create_table``, ``schema``, ``check`` and ``compact``.

Exit codes: 0 done; 1 discobase or Discord refused or failed (the message says what was
written); 2 usage or configuration (no token, no guild, bad option); 3 the input file is invalid
(its bad rows are listed and nothing was written); 4 ``check`` found problems.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import io
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import pydantic

from .database import Database
from .engine.schema import TYPE_NAMES, FieldSchema, TableSchema
from .errors import DiscobaseError, TableExistsError
from .migrate_v1 import migrate_v1
from .model import Table
from .progress import Progress

if TYPE_CHECKING:
    import discord

__all__ = ("main", "parser", "run")

OK, FAILED, USAGE, BAD_INPUT, PROBLEMS = 0, 1, 2, 3, 4
OFFLINE_GUILD = "discobase offline"
#: Records per ``insert_many`` call (each call lands whole or not at all).
CHUNK = 500
BACKUP_VERSION = 1

Command = Callable[[argparse.Namespace, "discord.Client | None"], Awaitable[int]]


class UsageError(Exception):
    """Configuration the command cannot run with (exit code 2)."""


# -------------------------------------------------------------------------- settings, connecting


def _setting(name: str) -> str | None:
    """An environment variable, else its value in ``.env`` (as the bot reads them)."""
    value = os.environ.get(name)
    if value:
        return value
    if Path(".env").is_file():
        try:
            from dotenv import dotenv_values
        except ImportError:
            return None
        return dotenv_values(".env").get(name) or None
    return None


def _guild(value: str) -> int | str:
    """A guild id (digits) or name."""
    return int(value) if value.isdigit() else value


@asynccontextmanager
async def _opened(
    args: argparse.Namespace, client: discord.Client | None
) -> AsyncIterator[Database]:
    """The open database the command works on, closed at the end."""
    guild = args.guild if args.guild is not None else _setting("DISCOBASE_GUILD")
    if args.offline and client is None:
        try:
            import simcord
        except ImportError:
            raise UsageError("--offline needs SimCord: pip install 'discobase[offline]'") from None
        name = str(guild) if guild is not None else OFFLINE_GUILD
        db = Database(name, category=args.category)
        async with simcord.run(db.bot) as env:
            env.create_guild(name)
            await db.open()
            try:
                yield db
            finally:
                await db.close()
        return
    if guild is None:
        raise UsageError("name the guild: --guild ID or DISCOBASE_GUILD")
    guild_ref = _guild(str(guild)) if not isinstance(guild, int) else guild
    if client is not None:
        db = Database(guild_ref, bot=client, category=args.category)
        await db.open()
        try:
            yield db
        finally:
            await db.close()
        return
    token = _setting("DISCORD_TOKEN")
    if not token:
        raise UsageError("set DISCORD_TOKEN to the bot's token (or use --offline)")
    async with Database(guild_ref, category=args.category).conn(token) as db:
        yield db


def _table(db: Database, name: str) -> type[Table]:
    db.schema(name)  # TableNotFoundError when there is no such table
    return db.tables[name]


# -------------------------------------------------------------------------- files


def _dump_value(value: Any) -> str:
    """A JSON value as a CSV cell: strings as they are, None empty, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _csv_line(values: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


def _format_of(path: str, given: str | None) -> str:
    if given is not None:
        return given
    return "csv" if path.lower().endswith(".csv") else "jsonl"


def _mkdir(path: str) -> None:
    Path(path).mkdir(parents=True, exist_ok=True)


def _writer(path: str) -> TextIO:
    return open(path, "w", encoding="utf-8", newline="")


def _size(path: str) -> int:
    return Path(path).stat().st_size


@dataclass
class Row:
    line: int
    data: dict[str, Any] | None
    error: str | None = None


def _read_rows(path: str, fmt: str, schema: TableSchema | None) -> Iterator[tuple[Row, int]]:
    """Each row of a JSONL or CSV file with the bytes it took (CSV cells converted by the
    schema's field types when there is one: empty cells are None in optional fields)."""
    with open(path, encoding="utf-8", newline="") as file:
        if fmt == "jsonl":
            for number, line in enumerate(file, 1):
                size = len(line.encode())
                if not line.strip():
                    yield Row(number, None), size
                    continue
                try:
                    data = json.loads(line)
                except ValueError as error:
                    yield Row(number, None, f"not JSON: {error}"), size
                    continue
                if not isinstance(data, dict):
                    yield Row(number, None, "not a JSON object"), size
                    continue
                yield Row(number, data), size
            return
        reader = csv.reader(file)
        header = next(reader, None)
        if header is None:
            return
        for values in reader:
            size = len(_csv_line(values).encode())
            number = reader.line_num
            if len(values) != len(header):
                yield Row(number, None, f"{len(values)} cells, the header has {len(header)}"), size
                continue
            data = {}
            problem = None
            for name, cell in zip(header, values, strict=True):
                try:
                    data[name] = _csv_cell(schema, name, cell)
                except ValueError as bad:
                    problem = f"{name}: not JSON: {bad}"
            yield Row(number, data, problem), size


def _csv_cell(schema: TableSchema | None, name: str, cell: str) -> Any:
    if schema is None or name not in schema.field_names:
        return cell
    spec = schema.field(name)
    if cell == "" and (spec.optional or spec.type == "json"):
        return None
    if spec.type == "json":
        return json.loads(cell)
    return cell


def _validator(schema: TableSchema) -> type[pydantic.BaseModel]:
    """A model checking records against a schema, before its table exists in this guild."""
    fields: dict[str, Any] = {}
    for spec in schema.fields:
        annotation = TYPE_NAMES[spec.type]
        if spec.optional:
            annotation = annotation | None
        fields[spec.name] = (annotation, None if spec.has_default else ...)
    return pydantic.create_model(
        f"{schema.name}_record", __config__=pydantic.ConfigDict(extra="forbid"), **fields
    )


def _infer_schema(
    name: str, rows: list[dict[str, Any]], key: str | None, csv_file: bool
) -> TableSchema:
    """A schema for a new table from the file: a JSON type per field (of a CSV cell: the type
    of the JSON it reads as, else str), optional where a row lacks it or holds null or an empty
    cell; mixed types are json."""
    order: list[str] = []
    kinds: dict[str, set[str]] = {}
    for data in rows:
        for fname, value in data.items():
            if fname not in kinds:
                order.append(fname)
                kinds[fname] = set()
            kinds[fname].add(_kind(value, csv_file))
    specs = []
    for fname in order:
        seen = kinds[fname]
        optional = "null" in seen or any(fname not in data for data in rows)
        seen.discard("null")
        if seen == {"int", "float"}:
            seen = {"float"}
        type_name = seen.pop() if len(seen) == 1 else ("str" if not seen else "json")
        specs.append(FieldSchema(fname, type_name, optional, has_default=optional))
    return TableSchema(name, specs, key).validate()


def _kind(value: Any, csv_file: bool) -> str:
    if value is None or (csv_file and value == ""):
        return "null"
    if csv_file:  # a cell that reads as JSON other than a string is of that type
        try:
            value = json.loads(value)
        except ValueError:
            return "str"
        if value is None:
            return "str"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "json"


def _fields_of(schema: TableSchema) -> dict[str, Any]:
    """``create_table``'s ``fields`` for a schema (a factory default keeps its recorded value)."""
    fields: dict[str, Any] = {}
    for spec in schema.fields:
        type_name = spec.type + ("?" if spec.optional else "")
        if spec.has_default and not (spec.factory and spec.default is None):
            fields[spec.name] = (type_name, spec.default)
        else:
            fields[spec.name] = type_name
    return fields


# -------------------------------------------------------------------------- validation


@dataclass
class Checked:
    """A file validated against a table: the records to write and the rows refused."""

    records: list[dict[str, Any]] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    rows: int = 0


def _check_rows(
    rows: list[Row],
    schema: TableSchema,
    model: type[pydantic.BaseModel],
    existing: dict[str, set[Any]],
) -> Checked:
    """Validate every row; refuse repeated or existing keys and unique values."""
    checked = Checked()
    seen: dict[str, set[Any]] = {name: set(values) for name, values in existing.items()}
    for row in rows:
        if row.data is None and row.error is None:
            continue
        checked.rows += 1
        if row.error is not None or row.data is None:
            checked.bad.append(f"line {row.line}: {row.error}")
            continue
        try:
            record = model.model_validate(row.data).model_dump(mode="json")
        except DiscobaseError as error:
            checked.bad.append(f"line {row.line}: {error}")
            continue
        except pydantic.ValidationError as error:
            details = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in error.errors()
            )
            checked.bad.append(f"line {row.line}: {details}")
            continue
        clash = next(
            (
                name
                for name in seen
                if record.get(name) is not None and _hashable(record[name]) in seen[name]
            ),
            None,
        )
        if clash is not None:
            what = "key" if clash == schema.primary_key else "unique value"
            checked.bad.append(
                f"line {row.line}: {what} {clash}={record[clash]!r} is in the table or the file already"
            )
            continue
        for name, values in seen.items():
            if record.get(name) is not None:
                values.add(_hashable(record[name]))
        checked.records.append(record)
    return checked


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


async def _existing(table: type[Table] | None, schema: TableSchema) -> dict[str, set[Any]]:
    """The values already held by the table's key and unique fields."""
    names = [*([schema.primary_key] if schema.primary_key else []), *schema.unique]
    values: dict[str, set[Any]] = {name: set() for name in names}
    if table is not None and names:
        async for record in table.all():
            data = record.model_dump(mode="json")
            for name in names:
                if data.get(name) is not None:
                    values[name].add(_hashable(data[name]))
    return values


async def _insert(table: type[Table], records: list[dict[str, Any]], progress: Progress) -> None:
    """Insert in chunks of :data:`CHUNK` (each lands whole); a failure says how far it got."""
    done = 0
    try:
        for start in range(0, len(records), CHUNK):
            chunk = records[start : start + CHUNK]
            await table.insert_many(chunk)
            done += len(chunk)
            progress.advance(len(chunk), sum(len(json.dumps(r)) for r in chunk))
    except DiscobaseError as error:
        raise DiscobaseError(
            f"{error} ({done:,} of {len(records):,} records were written before this; "
            "they stay in the table)"
        ) from error


# -------------------------------------------------------------------------- commands


async def _tables(args: argparse.Namespace, client: discord.Client | None) -> int:
    async with _opened(args, client) as db:
        names = sorted(db.tables)
        if not names:
            print("no tables")
        for name in names:
            schema = db.schema(name)
            key = schema.primary_key or "(generated)"
            print(
                f"{name}\t{schema.record_count} records\t{len(schema.fields)} fields\t"
                f"key {key}\t{schema.shards} shards"
            )
    return OK


async def _schema(args: argparse.Namespace, client: discord.Client | None) -> int:
    async with _opened(args, client) as db:
        data = db.schema(args.table).to_dict()
        del data["channels"]
        print(json.dumps(data, indent=2, ensure_ascii=False))
    return OK


async def _export(args: argparse.Namespace, client: discord.Client | None) -> int:
    async with _opened(args, client) as db:
        names = sorted(db.tables) if args.all else [args.table]
        if args.table is None and not args.all:
            raise UsageError("name a TABLE or give --all")
        if args.all and args.output in (None, "-"):
            raise UsageError("--all writes one file per table: give -o DIRECTORY")
        for name in names:
            table = _table(db, name)
            fmt = args.format or ("jsonl" if args.output in (None, "-") else None)
            if args.all:
                fmt = args.format or "jsonl"
                _mkdir(args.output)
                path: str | None = str(Path(args.output) / f"{name}.{fmt}")
            else:
                path = None if args.output in (None, "-") else args.output
                fmt = fmt or _format_of(args.output, None)
            await _export_table(db, table, name, fmt, path)
    return OK


async def _export_table(
    db: Database, table: type[Table], name: str, fmt: str, path: str | None
) -> None:
    schema = db.schema(name)
    progress = Progress(f"export {name}", records=schema.record_count)
    out = _writer(path) if path else sys.stdout
    try:
        if fmt == "csv":
            out.write(_csv_line(schema.field_names))
        async for record in table.all():
            data = record.model_dump(mode="json")
            if fmt == "csv":
                line = _csv_line([_dump_value(data[f]) for f in schema.field_names])
            else:
                line = json.dumps(data, ensure_ascii=False) + "\n"
            out.write(line)
            progress.advance(1, len(line.encode()))
    finally:
        if path:
            out.close()
        else:
            out.flush()
    progress.finish()


async def _import(args: argparse.Namespace, client: discord.Client | None) -> int:
    fmt = _format_of(args.file, args.format)
    async with _opened(args, client) as db:
        table = db.tables.get(args.table)
        schema = db.schema(args.table) if table is not None else None
        size = _size(args.file)
        reading = Progress(f"read {args.file}", size=size)
        rows = []
        for row, taken in _read_rows(args.file, fmt, schema):
            rows.append(row)
            reading.advance(1, taken)
        reading.finish()
        if schema is None:
            if not args.create:
                raise UsageError(
                    f"there is no table {args.table!r}: give --create (and --key FIELD) to make it"
                )
            good = [row.data for row in rows if row.data is not None and row.error is None]
            if not good:
                print(f"{args.file} holds no records to make a table from", file=sys.stderr)
                return BAD_INPUT
            schema = _infer_schema(args.table, good, args.key, fmt == "csv")
            if fmt == "csv":  # cells read before the schema existed: empty ones are None now
                rows = [row for row, _ in _read_rows(args.file, fmt, schema)]
        model: type[pydantic.BaseModel] = table if table is not None else _validator(schema)
        checked = _check_rows(rows, schema, model, await _existing(table, schema))
        if checked.bad:
            print(f"{len(checked.bad)} of {checked.rows} rows are invalid:", file=sys.stderr)
            for line in checked.bad[: args.show]:
                print(f"  {line}", file=sys.stderr)
            if len(checked.bad) > args.show:
                print(f"  ... and {len(checked.bad) - args.show} more", file=sys.stderr)
            if not args.skip_invalid:
                print(
                    "nothing was imported (--skip-invalid imports the valid rows)", file=sys.stderr
                )
                return BAD_INPUT
        if table is None:
            table = await db.create_table(
                schema.name,
                _fields_of(schema),
                primary_key=schema.primary_key,
                indexes=schema.indexes,
                unique=schema.unique,
            )
            print(f"created table {schema.name}: {json.dumps(_fields_of(schema))}")
        progress = Progress(f"import {args.table}", records=len(checked.records))
        await _insert(table, checked.records, progress)
        progress.finish()
        skipped = f", skipped {len(checked.bad)} invalid rows" if checked.bad else ""
        print(f"imported {len(checked.records):,} records into {args.table}{skipped}")
    return OK


async def _backup(args: argparse.Namespace, client: discord.Client | None) -> int:
    async with _opened(args, client) as db:
        names = sorted(db.tables)
        schemas = {name: db.schema(name) for name in names}
        progress = Progress(
            f"backup to {args.file}", records=sum(s.record_count for s in schemas.values())
        )
        partial = args.file + ".partial"
        with _writer(partial) as out:
            header = {
                "discobase_backup": BACKUP_VERSION,
                "guild": db.name,
                "made": dt.datetime.now(dt.UTC).isoformat(),
                "tables": {name: s.record_count for name, s in schemas.items()},
            }
            out.write(json.dumps(header) + "\n")
            for name in names:
                data = schemas[name].to_dict()
                del data["channels"]
                out.write(json.dumps({"table": data}) + "\n")
                async for record in db.tables[name].all():
                    line = json.dumps({"r": record.model_dump(mode="json")}, ensure_ascii=False)
                    out.write(line + "\n")
                    progress.advance(1, len(line.encode()) + 1)
        os.replace(partial, args.file)
        progress.finish()
        print(f"backed up {len(names)} tables to {args.file}")
    return OK


def _read_backup(
    path: str,
) -> tuple[dict[str, Any], list[tuple[TableSchema, list[Row]]], list[str]]:
    """The header, each table with its rows, and what is wrong with the file's structure."""
    tables: list[tuple[TableSchema, list[Row]]] = []
    problems: list[str] = []
    header: dict[str, Any] = {}
    for row, _ in _read_rows(path, "jsonl", None):
        if row.data is None:
            if row.error is not None:
                problems.append(f"line {row.line}: {row.error}")
            continue
        if row.line == 1:
            header = row.data
            if header.get("discobase_backup") != BACKUP_VERSION:
                problems.append(f"line 1: not a discobase backup (version {BACKUP_VERSION})")
                break
        elif "table" in row.data:
            try:
                tables.append((TableSchema.from_dict(row.data["table"]).validate(), []))
            except (DiscobaseError, KeyError, TypeError, ValueError) as error:
                problems.append(f"line {row.line}: bad table schema: {error}")
                break
        elif "r" in row.data and tables and isinstance(row.data["r"], dict):
            tables[-1][1].append(Row(row.line, row.data["r"]))
        else:
            problems.append(f"line {row.line}: neither a table nor a record of one")
    if not header and not problems:
        problems.append("the file is empty")
    counts = header.get("tables", {})
    for schema, rows in tables:
        if counts.get(schema.name) != len(rows):
            problems.append(
                f"table {schema.name}: the header says {counts.get(schema.name)} records, "
                f"the file holds {len(rows)} (cut short?)"
            )
    if isinstance(counts, dict) and set(counts) != {s.name for s, _ in tables}:
        problems.append("the header's tables and the file's tables differ (cut short?)")
    return header, tables, problems


async def _restore(args: argparse.Namespace, client: discord.Client | None) -> int:
    header, tables, problems = _read_backup(args.file)
    checked: dict[str, Checked] = {}
    for schema, rows in tables:
        result = _check_rows(rows, schema, _validator(schema), await _existing(None, schema))
        checked[schema.name] = result
        problems += [f"table {schema.name}: {line}" for line in result.bad]
    if problems:
        print(f"{args.file} cannot be restored:", file=sys.stderr)
        for line in problems[: args.show]:
            print(f"  {line}", file=sys.stderr)
        print("nothing was restored", file=sys.stderr)
        return BAD_INPUT
    async with _opened(args, client) as db:
        present = sorted(s.name for s, _ in tables if s.name in db.tables)
        if present:
            raise TableExistsError(
                ", ".join(present) + " (restore creates every table: drop them or restore "
                "into another guild)"
            )
        total = sum(len(c.records) for c in checked.values())
        progress = Progress(f"restore {args.file}", records=total)
        for schema, _ in tables:
            table = await db.create_table(
                schema.name,
                _fields_of(schema),
                primary_key=schema.primary_key,
                indexes=schema.indexes,
                unique=schema.unique,
                shards=schema.shards,
            )
            await _insert(table, checked[schema.name].records, progress)
        progress.finish()
        print(f"restored {len(tables)} tables, {total:,} records from {header.get('guild')!r}")
    return OK


async def _check(args: argparse.Namespace, client: discord.Client | None) -> int:
    async with _opened(args, client) as db:
        report = await db.check()
        print(report)
        return OK if report.ok else PROBLEMS


async def _compact(args: argparse.Namespace, client: discord.Client | None) -> int:
    async with _opened(args, client) as db:
        if args.table is not None:
            db.schema(args.table)
        deleted = await db.compact(args.table)
        print(f"compacted {args.table or 'every table'}: {deleted} old messages deleted")
    return OK


async def _stats(args: argparse.Namespace, client: discord.Client | None) -> int:
    async with _opened(args, client) as db:
        total_records = total_bytes = 0
        for name in sorted(db.tables):
            records = size = 0
            async for record in db.tables[name].all():
                records += 1
                size += len(record.model_dump_json())
            total_records += records
            total_bytes += size
            print(f"{name}\t{records:,} records\t{size:,} bytes of JSON")
        print(f"total\t{total_records:,} records\t{total_bytes:,} bytes of JSON")
        calls = sum(db.metrics.values())
        print(f"REST calls to open and read: {calls}")
    return OK


async def _migrate_v1(args: argparse.Namespace, client: discord.Client | None) -> int:
    target = args.target if args.target is not None else args.source
    db = Database(target, bot=client, category=args.category)
    try:
        if client is None:
            token = _setting("DISCORD_TOKEN")
            if not token:
                raise UsageError("set DISCORD_TOKEN to the bot's token")
            db.login_task(token)
            await db.wait_ready()
        else:
            await db.open()
        report = await migrate_v1(
            db, args.source, author=args.author, rename=dict(args.rename), dry_run=args.dry_run
        )
    finally:
        await db.close()
    print(report)
    return OK


# -------------------------------------------------------------------------- the parser


def _rename(value: str) -> tuple[str, str]:
    old, sep, new = value.partition("=")
    if not sep or not old or not new:
        raise argparse.ArgumentTypeError(f"expected OLD=NEW, got {value!r}")
    return old, new


def add_migrate_v1(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "migrate-v1",
        help="copy discobase 1.0's tables and records into this version's storage",
        description="Copy every table and record discobase 1.0 stored in SOURCE (its "
        "#_dbmetadata, table and index channels, which are only read) into this version's "
        "storage in TARGET (default: the same guild), and print a report.",
    )
    parser.add_argument("--source", type=_guild, required=True, help="1.0's guild: id or name")
    parser.add_argument("--target", type=_guild, help="the guild to store into (default SOURCE)")
    parser.add_argument("--category", default="discobase", help="storage category (discobase)")
    parser.add_argument(
        "--author", type=int, help="user id 1.0 ran as, if not this bot's (its messages only)"
    )
    parser.add_argument(
        "--rename", type=_rename, action="append", default=[], metavar="OLD=NEW",
        help="store 1.0 table OLD as NEW (repeatable)",
    )  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="read and report, write nothing")
    parser.set_defaults(run=_migrate_v1)


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--guild", type=_guild, help="guild id or name (default DISCOBASE_GUILD)")
    common.add_argument("--category", default="discobase", help="storage category (discobase)")
    common.add_argument(
        "--offline", action="store_true",
        help="run on SimCord, an in-memory Discord (its guild is empty at each start)",
    )  # fmt: skip
    return common


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="discobase",
        description="Operate a discobase guild: list, export, import, back up, restore, check, "
        "compact. Exit codes: 0 done, 1 failed, 2 usage, 3 invalid input (nothing written), "
        "4 check found problems.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common()]

    def add(name: str, run: Command, help: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(
            name, parents=common, help=help, description=help
        )
        sub.set_defaults(run=run)
        return sub

    add("tables", _tables, "list the tables with their record counts")
    add("schema", _schema, "print a table's schema as JSON").add_argument("table")
    export = add("export", _export, "write a table (or all) as JSON lines or CSV")
    export.add_argument("table", nargs="?")
    export.add_argument("--all", action="store_true", help="every table, one file each")
    export.add_argument("-o", "--output", help="file (or directory with --all); default stdout")
    export.add_argument("--format", choices=("jsonl", "csv"), help="default: from the file name")
    imp = add("import", _import, "insert the records of a JSON lines or CSV file, all or none")
    imp.add_argument("table")
    imp.add_argument("file")
    imp.add_argument("--format", choices=("jsonl", "csv"), help="default: from the file name")
    imp.add_argument("--create", action="store_true", help="make the table if it is missing")
    imp.add_argument("--key", help="with --create: the primary key field")
    imp.add_argument(
        "--skip-invalid", action="store_true", help="import the valid rows even if some are not"
    )
    imp.add_argument("--show", type=int, default=20, help="invalid rows listed (20)")
    backup = add("backup", _backup, "write every table and its schema into one file")
    backup.add_argument("file")
    restore = add("restore", _restore, "create the tables of a backup file and their records")
    restore.add_argument("file")
    restore.add_argument("--show", type=int, default=20, help="problems listed (20)")
    add("check", _check, "re-read all storage and report problems (exit 4 if any)")
    compact = add("compact", _compact, "snapshot a table (or all) and delete old messages")
    compact.add_argument("table", nargs="?")
    add("stats", _stats, "records and stored JSON size per table")
    add_migrate_v1(commands)
    return top


async def run(argv: Sequence[str], client: discord.Client | None = None) -> int:
    """Run a command; ``client`` is a logged-in client to use instead of logging one in."""
    args = parser().parse_args(argv)
    command: Command = args.run
    try:
        return await command(args, client)
    except UsageError as error:
        print(f"discobase: {error}", file=sys.stderr)
        return USAGE
    except OSError as error:
        print(f"discobase: {error}", file=sys.stderr)
        return USAGE
    except DiscobaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return FAILED


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(sys.argv[1:] if argv is None else argv))
