"""discobase in one file: a table, a few records, a query.

Run it as it is and it uses SimCord, an in-memory Discord: no token, no network, nothing kept.
Set ``DISCORD_TOKEN`` (your bot's token) and ``DISCOBASE_GUILD`` (the id of a server the bot
is in, with the permissions listed in docs/library.md) and the same code runs on Discord,
where the records stay in the server's hidden ``discobase`` channels.

    python examples/quickstart.py
"""

from __future__ import annotations

import asyncio
import os

import discobase

TOKEN = os.environ.get("DISCORD_TOKEN")
GUILD_ID = os.environ.get("DISCOBASE_GUILD")
#: The server that holds the data: its id on Discord; offline, the name of a simulated one.
GUILD: int | str = int(GUILD_ID) if TOKEN and GUILD_ID else "discobase quickstart"

db = discobase.Database(GUILD)


@db.table
class Pet(discobase.Table):
    name: str
    legs: int = 4
    vip: bool = False

    class Settings:
        primary_key = "name"
        indexes = ["legs"]


async def use_the_database() -> None:
    await Pet(name="rex", legs=4, vip=True).save()  # returns once Discord has the message
    # save() inserts, or replaces the record with that key, so a second run starts over.
    # Writes made together share one message.
    await asyncio.gather(Pet(name="tweety", legs=2).save(), Pet(name="nemo", legs=0).save())
    four_legged = await Pet.find(Pet.legs >= 4)  # from memory: no request to Discord
    print("four legs or more:", [pet.name for pet in four_legged])
    tweety = await Pet.get("tweety")
    await tweety.update(vip=True)
    print("VIPs:", [pet.name for pet in await Pet.find(vip=True, order_by="name")])
    print("pets:", await Pet.count())


async def main() -> None:
    if TOKEN:
        if isinstance(GUILD, str):
            raise SystemExit("set DISCOBASE_GUILD to the id of a server your bot is in")
        async with db.connect(TOKEN):  # logs in, opens the database, closes it at the end
            await use_the_database()
        return
    import simcord  # the offline Discord (installed by requirements.txt)

    async with simcord.run(db.bot) as env:  # the database's own client, logged in to SimCord
        env.create_guild(GUILD)
        async with db.connect():  # no token: the client is logged in already
            await use_the_database()


if __name__ == "__main__":
    asyncio.run(main())
