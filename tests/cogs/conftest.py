"""Fixtures for the command tests: a SimCord guild with an owner, a Manage Server member, an
admin-role member, a reader-role member and a plain member, and the bot under test.

The bot's settings name the roles ``db-admin`` and ``db-reader``; a test that needs other settings
overrides the ``settings`` fixture.
"""

from __future__ import annotations

from typing import Any

import discord
import pytest
import simcord
from cog_world import ADMIN_ROLE, READER_ROLE, World

from discobot import DiscobaseBot, Settings, create_bot


@pytest.fixture
def settings() -> Settings:
    return Settings(admin_role=ADMIN_ROLE, reader_role=READER_ROLE)


@pytest.fixture
def simcord_bot(settings: Settings) -> DiscobaseBot:
    return create_bot(settings)


@pytest.fixture
def world(simcord_env: simcord.Env) -> World:
    env = simcord_env
    guild = env.create_guild("discobase tests")
    channel = guild.create_text_channel("general")
    managers = guild.create_role("managers", permissions=discord.Permissions(manage_guild=True))
    admin_role = guild.create_role(ADMIN_ROLE)
    reader_role = guild.create_role(READER_ROLE)
    bot = env.bot
    assert isinstance(bot, DiscobaseBot)
    return World(
        env=env,
        bot=bot,
        guild=guild,
        channel=channel,
        owner=simcord.MemberActor(env, guild, guild.owner),
        manager=guild.add_member(env.create_user("mona"), roles=[managers]),
        admin=guild.add_member(env.create_user("ada"), roles=[admin_role]),
        reader=guild.add_member(env.create_user("rita"), roles=[reader_role]),
        member=guild.add_member(env.create_user("bob")),
    )


@pytest.fixture
async def pets(world: World) -> Any:
    """A ``pets`` table keyed by name, with an int, an optional unique str and two records."""
    database = await world.database()
    table = await database.create_table(
        "pets",
        {"name": "str", "legs": ("int", 4), "email": ("str?", None)},
        primary_key="name",
        indexes=["legs"],
        unique=["email"],
    )
    await table(name="rex", legs=4, email="rex@example.org").save()
    await table(name="tweety", legs=2).save()
    return table
