"""``python -m discobase COMMAND``: maintenance commands for a discobase guild.

``migrate-v1``: copy the tables and records discobase 1.0 stored in a guild into this version's
storage (see :func:`discobase.migrate_v1`). The bot logs in with the token in ``DISCORD_TOKEN``.
Add a command by writing ``add_<name>(subparsers)`` that registers a subparser whose
``run`` default is an ``async`` function of the parsed arguments and the client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from .database import Database
from .errors import DiscobaseError
from .migrate_v1 import migrate_v1

if TYPE_CHECKING:
    import discord

Command = Callable[[argparse.Namespace, "discord.Client | None"], Awaitable[int]]


def _guild(value: str) -> int | str:
    """A guild id (digits) or name."""
    return int(value) if value.isdigit() else value


def _rename(value: str) -> tuple[str, str]:
    old, sep, new = value.partition("=")
    if not sep or not old or not new:
        raise argparse.ArgumentTypeError(f"expected OLD=NEW, got {value!r}")
    return old, new


async def _migrate_v1(args: argparse.Namespace, client: discord.Client | None) -> int:
    target = args.target if args.target is not None else args.source
    db = Database(target, bot=client, category=args.category)
    try:
        if client is None:
            db.login_task(os.environ["DISCORD_TOKEN"])
            await db.wait_ready()
        else:
            await db.open()
        report = await migrate_v1(
            db, args.source, author=args.author, rename=dict(args.rename), dry_run=args.dry_run
        )
    finally:
        await db.close()
    print(report)
    return 0


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


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m discobase", description="Maintenance commands for a discobase guild."
    )
    subparsers = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_migrate_v1(subparsers)
    return top


async def run(argv: Sequence[str], client: discord.Client | None = None) -> int:
    """Run a command; ``client`` is a logged-in client to use instead of logging one in."""
    args = parser().parse_args(argv)
    if client is None and not os.environ.get("DISCORD_TOKEN"):
        print("set DISCORD_TOKEN to the bot's token", file=sys.stderr)
        return 2
    command: Command = args.run
    try:
        return await command(args, client)
    except DiscobaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
