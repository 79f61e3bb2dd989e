"""Where the other examples run: on Discord when ``DISCORD_TOKEN`` is set, else on SimCord.

On Discord, ``DISCOBASE_GUILD`` is the id of a server the bot is in (with the permissions
listed in docs/library.md). Offline, SimCord (an in-memory Discord) makes a server for the
example, and the data is gone when it ends. ``examples/quickstart.py`` spells this out inline.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import discobase

TOKEN = os.environ.get("DISCORD_TOKEN") or None
GUILD_ID = os.environ.get("DISCOBASE_GUILD")


def guild(offline_name: str) -> int | str:
    """The server to use: ``DISCOBASE_GUILD`` on Discord, else the simulated ``offline_name``."""
    if TOKEN is None:
        return offline_name
    if not GUILD_ID:
        raise SystemExit("set DISCOBASE_GUILD to the id of a server your bot is in")
    return int(GUILD_ID)


@asynccontextmanager
async def connected(db: discobase.Database) -> AsyncIterator[discobase.Database]:
    """Log the database's own client in (to Discord or SimCord), open it, and close it after."""
    if TOKEN is not None:
        async with db.connect(TOKEN):
            yield db
        return
    import simcord

    async with simcord.run(db.bot) as env:
        assert isinstance(db.guild_ref, str)
        env.create_guild(db.guild_ref)
        async with db.connect():  # no token: SimCord logged the client in
            yield db
