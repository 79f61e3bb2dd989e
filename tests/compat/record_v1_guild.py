"""Record ``v1_guild.json``: a guild as the real discobase 1.0.0 leaves it, on SimCord.

discobase 1.0.0 (from PyPI) is named ``discobase`` like this package, so this script runs in the
benchmark's baseline environment, with the benchmark's model of Discord (its clock moves, which
1.0.0's index lookups by message time need) and its way of driving 1.0.0
(``bench/baseline_driver.py``)::

    .venv/bin/python -c "from bench.baseline import ensure_installed; ensure_installed()"
    PYTHONHASHSEED=0 bench/.baseline-venv/bin/python tests/compat/record_v1_guild.py

What 1.0.0 writes here, on purpose including its known failures:

- ``bookmark`` (str, str, int, bool): 110 saves, so its index channels resize five times (1.0.0
  loses index slots when it moves them) and its bool index overflows a 2,000-character message
  at about 97 records per value (from then on each save leaves its record in the table channel
  but fails in the index); one update, one delete, and one save of a record over 1.0.0's size
  cap (its message would exceed 2,000 characters: Discord refuses it and nothing is stored);
- ``tag`` (str, int, a list): three records;
- a member's message typed into ``#bookmark`` (not 1.0.0's: a migration must skip it).

The JSON lists every channel with its messages (oldest first: id, author ``bot`` or ``member``,
content) and, per bookmark title, whether 1.0.0's own ``find`` still returned that record. With
the hash seed above, a run reproduces the file byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "bench"))

import looptime  # noqa: E402
import simcord  # noqa: E402
from baseline_driver import GUILD_NAME, init_database  # noqa: E402
from model import DiscordModel  # noqa: E402

import discobase  # noqa: E402

if discobase.__version__ != "1.0.0":
    raise SystemExit(
        f"run this with bench/.baseline-venv (found discobase {discobase.__version__})"
    )

OUT = HERE / "v1_guild.json"
BOOKMARKS = 110


class Bookmark(discobase.Table):
    title: str
    url: str
    stars: int
    public: bool


class Tag(discobase.Table):
    name: str
    uses: int
    aliases: list[str]


async def attempt(label: str, work: Any, failures: dict[str, str]) -> Any:
    try:
        return await work
    except Exception as error:
        failures[label] = f"{type(error).__name__}: {str(error)[:160]}"
        return None


async def dump(guild: Any, bot_id: int) -> list[dict[str, Any]]:
    channels = []
    for channel in sorted(guild.text_channels, key=lambda c: c.id):
        messages = [m async for m in channel.history(limit=None)]  # newest first, paged by before=
        channels.append(
            {
                "id": channel.id,
                "name": channel.name,
                "messages": [
                    {
                        "id": m.id,
                        "author": "bot" if m.author.id == bot_id else "member",
                        "content": m.content,
                    }
                    for m in reversed(messages)
                ],
            }
        )
    return channels


async def record() -> dict[str, Any]:
    db = discobase.Database(GUILD_NAME)
    db.table(Bookmark)
    db.table(Tag)
    delattr(db.bot, "on_ready")
    failures: dict[str, str] = {}
    with DiscordModel().installed():
        async with simcord.run(db.bot, check_errors=False) as env:
            guild = env.create_guild(GUILD_NAME)
            member = guild.add_member(env.create_user("someone"))
            await init_database(db)
            saved = []
            for number in range(BOOKMARKS):
                mark = Bookmark(
                    title=f"page {number:03d}",
                    url=f"https://example.org/{number}",
                    stars=number % 5,
                    public=True,
                )
                if await attempt(f"save {mark.title}", mark.save(), failures) is not None:
                    saved.append(mark)
            saved[3].stars = 42
            await attempt("update page 003", saved[3].update(), failures)
            await attempt("delete page 004", saved[4].delete(), failures)
            huge = Bookmark(title="x" * 1600, url="https://example.org/huge", stars=0, public=False)
            await attempt("save huge", huge.save(), failures)
            for name, uses in (("news", 3), ("python", 10), ("misc", 0)):
                await attempt(
                    f"save tag {name}",
                    Tag(name=name, uses=uses, aliases=[name[:2], name.upper()]).save(),
                    failures,
                )
            table_channel = next(c for c in guild.channels.values() if c.name == "bookmark")
            await member.send(table_channel, "hello, is this the bookmarks channel?")
            findable = {}
            for mark in saved:
                found: list[Any] = []
                with contextlib.suppress(Exception):
                    found = await Bookmark.find(title=mark.title)
                findable[mark.title] = len(found) == 1
            discord_guild = db.bot.get_guild(guild.id)
            assert db.bot.user is not None
            channels = await dump(discord_guild, db.bot.user.id)
    return {
        "recorded_with": f"discobase {discobase.__version__}",
        "guild": GUILD_NAME,
        "channels": channels,
        "v1_failures": failures,
        "v1_findable": findable,
    }


def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)
    warnings.simplefilter("ignore", DeprecationWarning)
    loop = looptime.new_event_loop(start=0)
    try:
        data = loop.run_until_complete(record())
    finally:
        loop.close()
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    channels = data["channels"]
    print(
        f"wrote {OUT.name}: {len(channels)} channels, "
        f"{sum(len(c['messages']) for c in channels)} messages, "
        f"{len(data['v1_failures'])} failed 1.0 operations, "
        f"{sum(not ok for ok in data['v1_findable'].values())} records 1.0 cannot find"
    )


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
