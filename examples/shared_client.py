"""A discord.py bot whose slash commands use a database on the bot's own client.

``Database(guild, bot=bot)`` shares the bot's connection: no second login. The first command
opens the database after deferring its answer (opening reads the server's storage, which can
take longer than the 3 seconds Discord gives a command to answer). Closing the bot sends any
pending writes first.

    python examples/shared_client.py      # offline: simulated members run the commands
    DISCORD_TOKEN=... DISCOBASE_GUILD=... python examples/shared_client.py   # serve on Discord
"""

from __future__ import annotations

import asyncio

import discord
from connect import TOKEN, guild
from discord import app_commands
from discord.ext import commands

import discobase

#: The simulated server of the offline demo (on Discord, DISCOBASE_GUILD names the server).
OFFLINE_SERVER = "discobase pets"


class Pet(discobase.Table):
    name: str
    legs: int = 4
    owner: int  # the id of the member who adopted it

    class Settings:
        primary_key = "name"
        indexes = ["owner"]


class PetBot(commands.Bot):
    def __init__(self, guild: int | str) -> None:
        intents = discord.Intents.none()  # slash commands and storage need no privileged intent
        intents.guilds = True
        intents.guild_messages = True
        super().__init__(command_prefix=commands.when_mentioned, intents=intents, help_command=None)
        self.db = discobase.Database(guild, bot=self)
        self.db.table(Pet)
        self.guild_ref = guild

    async def database(self) -> discobase.Database:
        await self.db.connect()  # the first call opens it; later ones return at once
        return self.db

    async def setup_hook(self) -> None:
        self.tree.add_command(adopt)
        self.tree.add_command(my_pets)
        # Syncing on every start keeps the example short; bot.py syncs only when they changed.
        if isinstance(self.guild_ref, int):  # on Discord: commands show at once in that server
            server = discord.Object(self.guild_ref)
            self.tree.copy_global_to(guild=server)
            await self.tree.sync(guild=server)
        else:
            await self.tree.sync()

    async def close(self) -> None:
        await self.db.close()  # pending writes go out before the connection does
        await super().close()


@app_commands.command(description="Adopt a pet")
@app_commands.describe(name="Its name", legs="How many legs it has")
async def adopt(interaction: discord.Interaction[PetBot], name: str, legs: int = 4) -> None:
    await interaction.response.defer(ephemeral=True)
    await interaction.client.database()
    try:
        await Pet(name=name, legs=legs, owner=interaction.user.id).insert()
    except discobase.UniqueViolationError:
        await interaction.followup.send(f"{name} already has a home.")
        return
    await interaction.followup.send(f"You adopted {name}.")


@app_commands.command(name="my-pets", description="List your pets")
async def my_pets(interaction: discord.Interaction[PetBot]) -> None:
    await interaction.response.defer(ephemeral=True)
    await interaction.client.database()
    pets = await Pet.find(owner=interaction.user.id, order_by="name")  # from memory
    listed = ", ".join(f"{pet.name} ({pet.legs} legs)" for pet in pets) or "none yet"
    await interaction.followup.send(f"Your pets: {listed}")


async def offline_demo() -> None:
    """Members of a simulated server run the commands; their replies are printed."""
    import simcord

    bot = PetBot(guild(OFFLINE_SERVER))
    async with simcord.run(bot) as env:
        server = env.create_guild(OFFLINE_SERVER)
        channel = server.create_text_channel("general")
        ada = server.add_member(env.create_user("ada"))
        bob = server.add_member(env.create_user("bob"))
        for member, command, options in [
            (ada, "adopt", {"name": "rex"}),
            (ada, "adopt", {"name": "tweety", "legs": 2}),
            (bob, "adopt", {"name": "rex"}),
            (bob, "adopt", {"name": "nemo", "legs": 0}),
            (ada, "my-pets", {}),
            (bob, "my-pets", {}),
        ]:
            result = await member.slash(channel, command, **options)
            print(f"{member.name}: /{command} -> {result.response.content}")
        await bot.close()


def main() -> None:
    if TOKEN is None:
        asyncio.run(offline_demo())
    else:
        PetBot(guild(OFFLINE_SERVER)).run(TOKEN)  # until Ctrl+C


if __name__ == "__main__":
    main()
