"""The ``discobase`` command line (also ``python -m discobase``): see docs/operations.md.

Every command but ``migrate-v1`` and ``keygen`` opens the database of one guild: ``--guild``
(or ``DISCOBASE_GUILD``), logged in with ``DISCORD_TOKEN`` (from the environment, else ``.env``
in the working directory), or ``--offline`` on SimCord, an in-memory Discord kept in a state
file between runs (for trying the commands). ``DISCOBASE_ENCRYPTION_KEY`` gives the keys of an
encrypted database. It uses only the public API: ``Database``, its tables'
``find``/``all``/``insert_many``, ``create_table``, ``schema``, ``check``, ``compact`` and
``rotate_key``.

Exit codes: 0 done; 1 discobase or Discord refused or failed (the message says what was
written); 2 usage or configuration (no token, no guild, bad option); 3 the input file is invalid
(its bad rows are listed and nothing was written); 4 ``check`` found problems (or ``rotate-key``
left messages it could not read).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import pydantic

from . import transfer
from .crypto import EncryptionKey, KeyRing
from .database import Database
from .engine.schema import TableSchema
from .errors import DiscobaseError, DiscordUnavailableError, InvalidKeyError, TableExistsError
from .migrate_v1 import migrate_v1
from .model import Table
from .offline import OfflineStateError, default_state_path, offline_guild
from .progress import Progress

if TYPE_CHECKING:
    import discord

__all__ = ("main", "parser", "run")

OK, FAILED, USAGE, BAD_INPUT, PROBLEMS = 0, 1, 2, 3, 4
OFFLINE_GUILD = "discobase offline"
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


def _keys() -> KeyRing:
    """The encryption keys from ``DISCOBASE_ENCRYPTION_KEY`` (none: not encrypted)."""
    try:
        return KeyRing.of(_setting("DISCOBASE_ENCRYPTION_KEY"))
    except InvalidKeyError as error:
        raise UsageError(f"DISCOBASE_ENCRYPTION_KEY: {error}") from None


def _required() -> bool:
    """Whether ``DISCOBASE_ENCRYPTION_REQUIRED`` asks to refuse unencrypted storage."""
    value = (_setting("DISCOBASE_ENCRYPTION_REQUIRED") or "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise UsageError(f"DISCOBASE_ENCRYPTION_REQUIRED must be true or false, not {value!r}")


def _encryption(*, required: bool = True) -> dict[str, Any]:
    """``Database``'s encryption options from the environment (``required``: False ignores
    ``DISCOBASE_ENCRYPTION_REQUIRED``)."""
    keys = _keys()
    if _required() and not keys:
        raise UsageError("DISCOBASE_ENCRYPTION_REQUIRED is set: set DISCOBASE_ENCRYPTION_KEY too")
    return {"encryption_key": keys, "encryption_required": required and _required()}


def _guild(value: str) -> int | str:
    """A guild id (digits) or name."""
    return int(value) if value.isdigit() else value


@asynccontextmanager
async def _opened(
    args: argparse.Namespace, client: discord.Client | None
) -> AsyncIterator[Database]:
    """The open database the command works on, closed at the end. ``rotate-key`` opens it
    without ``encryption_required``: sealing what is not encrypted is its job."""
    guild = args.guild if args.guild is not None else _setting("DISCOBASE_GUILD")
    options = _encryption(required=args.run is not _rotate_key)
    options["category"] = args.category
    if args.offline and client is None:
        try:
            import simcord  # noqa: F401
        except ImportError:
            raise UsageError("--offline needs SimCord: pip install 'discobase[offline]'") from None
        name = str(guild) if guild is not None else OFFLINE_GUILD
        db = Database(name, **options)
        state = None if args.offline_state == "-" else Path(args.offline_state)
        try:
            async with offline_guild(db.bot, name, state), db.connect():
                yield db
        except OfflineStateError as error:
            raise UsageError(str(error)) from None
        return
    if guild is None:
        raise UsageError("name the guild: --guild ID or DISCOBASE_GUILD")
    guild_ref = _guild(str(guild)) if not isinstance(guild, int) else guild
    if client is not None:
        async with Database(guild_ref, bot=client, **options).connect() as db:
            yield db
        return
    token = _setting("DISCORD_TOKEN")
    if not token:
        raise UsageError("set DISCORD_TOKEN to the bot's token (or use --offline)")
    async with Database(guild_ref, **options).connect(token) as db:
        yield db


def _table(db: Database, name: str) -> type[Table]:
    db.schema(name)  # TableNotFoundError when there is no such table
    return db.tables[name]


# -------------------------------------------------------------------------- files


def _format_of(path: str, given: str | None) -> str:
    if given is not None:
        return given
    return "csv" if path.lower().endswith(".csv") else "jsonl"


def _read_rows(
    path: str, fmt: str, schema: TableSchema | None
) -> Iterator[tuple[transfer.Row, int]]:
    with open(path, encoding="utf-8", newline="") as file:
        yield from transfer.read_rows(file, fmt, schema)


def _mkdir(path: str) -> None:
    Path(path).mkdir(parents=True, exist_ok=True)


def _writer(path: str) -> TextIO:
    return open(path, "w", encoding="utf-8", newline="")


def _size(path: str) -> int:
    return Path(path).stat().st_size


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
        del data["channels"]  # where it lives (channels, threads) is this guild's business
        data.pop("threads", None)
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
            out.write(transfer.csv_line(schema.field_names))
        async for record in table.all():
            data = record.model_dump(mode="json")
            if fmt == "csv":
                line = transfer.csv_line([transfer.dump_value(data[f]) for f in schema.field_names])
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
            schema = transfer.infer_schema(args.table, good, args.key, fmt == "csv")
            if fmt == "csv":  # cells read before the schema existed: empty ones are None now
                rows = [row for row, _ in _read_rows(args.file, fmt, schema)]
        model: type[pydantic.BaseModel] = table if table is not None else transfer.validator(schema)
        checked = transfer.check_rows(rows, schema, model, await transfer.existing(table, schema))
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
                transfer.fields_of(schema),
                primary_key=schema.primary_key,
                indexes=schema.indexes,
                unique=schema.unique,
            )
            print(f"created table {schema.name}: {json.dumps(transfer.fields_of(schema))}")
        progress = Progress(f"import {args.table}", records=len(checked.records))
        await transfer.insert(table, checked.records, progress.advance)
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
                data.pop("threads", None)
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
) -> tuple[dict[str, Any], list[tuple[TableSchema, list[transfer.Row]]], list[str]]:
    """The header, each table with its rows, and what is wrong with the file's structure."""
    tables: list[tuple[TableSchema, list[transfer.Row]]] = []
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
            tables[-1][1].append(transfer.Row(row.line, row.data["r"]))
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
    checked: dict[str, transfer.Checked] = {}
    for schema, rows in tables:
        result = transfer.check_rows(
            rows, schema, transfer.validator(schema), await transfer.existing(None, schema)
        )
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
                transfer.fields_of(schema),
                primary_key=schema.primary_key,
                indexes=schema.indexes,
                unique=schema.unique,
                shards=schema.shards,
                ttl=None if schema.ttl is None else dt.timedelta(seconds=schema.ttl),
                claim_unique=schema.claim_unique,
            )
            await transfer.insert(table, checked[schema.name].records, progress.advance)
        progress.finish()
        print(f"restored {len(tables)} tables, {total:,} records from {header.get('guild')!r}")
    return OK


async def _check(args: argparse.Namespace, client: discord.Client | None) -> int:
    async with _opened(args, client) as db:
        report = await db.check()
        print(report)
        return OK if report.ok else PROBLEMS


async def _reset_permissions(args: argparse.Namespace, client: discord.Client | None) -> int:
    async with _opened(args, client) as db:
        changed = await db.reset_permissions()
        print(f"reset the permission overwrites of {len(changed)} storage channels")
    return OK


async def _compact(args: argparse.Namespace, client: discord.Client | None) -> int:
    async with _opened(args, client) as db:
        if args.table is not None:
            db.schema(args.table)
        deleted = await db.compact(args.table)
        print(f"compacted {args.table or 'every table'}: {deleted} old messages deleted")
    return OK


async def _reshard(args: argparse.Namespace, client: discord.Client | None) -> int:
    async with _opened(args, client) as db:
        before = db.schema(args.table).shards
        try:
            grew = await db.reshard(args.table, shards=args.shards)
        except DiscordUnavailableError as error:
            print(
                f"error: {error}\nreshard stopped: nothing is lost and the table reads whole; "
                "run it again to finish",
                file=sys.stderr,
            )
            return FAILED
        if not grew:
            print(f"{args.table}: {before} shards already: nothing to do")
            return OK
        print(f"{args.table}: {before} shards, now {db.schema(args.table).shards}")
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


async def _keygen(args: argparse.Namespace, client: discord.Client | None) -> int:
    key = EncryptionKey.generate()
    print(key.text())
    print(
        f"key id {key.id}: set DISCOBASE_ENCRYPTION_KEY to it (in .env, for the bot and this "
        "command). Keep a copy somewhere safe: without it the data cannot be read.",
        file=sys.stderr,
    )
    return OK


async def _rotate_key(args: argparse.Namespace, client: discord.Client | None) -> int:
    if not _keys():
        raise UsageError("set DISCOBASE_ENCRYPTION_KEY to the new key, then the old one: NEW,OLD")
    async with _opened(args, client) as db:
        try:
            report = await db.rotate_key()
        except DiscobaseError as error:
            print(
                f"error: {error}\nrotate-key stopped: every message is under the old or the new "
                "key, both of which you gave; run it again to finish",
                file=sys.stderr,
            )
            return FAILED
        print(report)
        return OK if report.done else PROBLEMS


async def _migrate_v1(args: argparse.Namespace, client: discord.Client | None) -> int:
    target = args.target if args.target is not None else args.source
    db = Database(target, bot=client, category=args.category, **_encryption())
    try:
        if client is None:
            token = _setting("DISCORD_TOKEN")
            if not token:
                raise UsageError("set DISCORD_TOKEN to the bot's token")
            await db.connect(token)
        else:
            await db.connect()
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
        help="run on SimCord, an in-memory Discord kept in --offline-state between runs",
    )  # fmt: skip
    common.add_argument(
        "--offline-state", default=str(default_state_path()), metavar="FILE",
        help="with --offline: the file that keeps the simulated Discord between runs "
        "('-': none, start empty; default $DISCOBASE_OFFLINE_STATE, else %(default)s)",
    )  # fmt: skip
    return common


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="discobase",
        description="Operate a discobase guild: list, export, import, back up, restore, check, "
        "compact, rotate the encryption key. Exit codes: 0 done, 1 failed, 2 usage, 3 invalid "
        "input (nothing written), 4 check (or rotate-key) found problems.",
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
    add(
        "reset-permissions",
        _reset_permissions,
        "give storage channels that others may read or change discobase's overwrites again",
    )
    compact = add("compact", _compact, "snapshot a table (or all) and delete old messages")
    compact.add_argument("table", nargs="?")
    reshard = add(
        "reshard", _reshard, "grow a table to more shards (a multiple of its count, up to 16)"
    )
    reshard.add_argument("table")
    reshard.add_argument("--shards", type=int, required=True, help="the new shard count")
    add("stats", _stats, "records and stored JSON size per table")
    add(
        "rotate-key",
        _rotate_key,
        "seal every stored message under the first key of DISCOBASE_ENCRYPTION_KEY (NEW,OLD)",
    )
    keygen = commands.add_parser(
        "keygen",
        help="print a new encryption key for DISCOBASE_ENCRYPTION_KEY",
        description="Print a new random encryption key (32 bytes, base64) on stdout and its "
        "key id on stderr.",
    )
    keygen.set_defaults(run=_keygen)
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
