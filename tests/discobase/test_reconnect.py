"""Missed gateway events are caught up: after a fresh READY, after one shard of an
AutoShardedClient re-identifies, and after a guild outage; an unavailable guild at open is a
typed error. Another process (same token, on its own connection) writes meanwhile."""

from __future__ import annotations

from collections import Counter
from typing import Any

import discord
import pytest
from discord.ext import commands

import discobase
from tests.conftest import make_bot
from tests.strict import Process, Strict


@pytest.fixture
def simcord_bot(request: pytest.FixtureRequest) -> discord.Client:
    if getattr(request, "param", None) == "plain":
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        return discord.Client(intents=intents)
    if getattr(request, "param", None) == "sharded":
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        return commands.AutoShardedBot(
            command_prefix="!", intents=intents, help_command=None, shard_count=2
        )
    return make_bot()


async def writer_and_reader(
    simcord_env: Any, strict: Strict, guild: Any, retry: discobase.RetryPolicy
) -> tuple[Process, Any, Any, discobase.Database]:
    """A table ``t`` written by a second process and read by a database on the test's bot."""
    other = await strict.second_process()
    writer = discobase.Database(guild.id, bot=other.bot, retry=retry)
    await writer.open()
    written = await writer.create_table("t", {"name": str, "n": int}, primary_key="name")
    await simcord_env.settle()  # the reader's gateway has seen the storage channels
    reader = discobase.Database(guild.id, bot=simcord_env.bot, retry=retry)
    await reader.open()
    await written(name="a", n=1).save()
    await simcord_env.settle()
    assert await seen(reader) == {"a": 1}
    return other, writer, written, reader


async def seen(db: discobase.Database) -> dict[str, int]:
    return {r.name: r.n for r in await db.tables["t"].find()}


async def missed_writes(written: Any) -> None:
    await written(name="b", n=2).save()
    await written(name="a", n=3).save()


async def test_a_fresh_ready_catches_up_what_the_lost_connection_missed(
    simcord_env, strict: Strict, guild, fast_retry
):
    _, writer, written, reader = await writer_and_reader(simcord_env, strict, guild, fast_retry)
    strict.hold_gateway()
    await missed_writes(written)
    assert strict.drop_gateway() >= 2
    await simcord_env.settle()
    assert await seen(reader) == {"a": 3, "b": 2}
    await reader.close()
    await writer.close()


async def test_a_fresh_ready_catches_up_once_although_the_guild_and_the_client_say_ready(
    simcord_env, strict: Strict, guild, fast_retry
):
    _, writer, written, reader = await writer_and_reader(simcord_env, strict, guild, fast_retry)
    bot = simcord_env.bot
    said: list[str] = []

    async def on_connect() -> None:
        # SimCord gap: it sets guild_ready_timeout to 0, so discord.py's _delay_ready gives up
        # before the READY's GUILD_CREATE is queued and dispatches no on_guild_available. On
        # Discord the guild arrives within the timeout: on_guild_available, then on_ready
        # (guild_ready_timeout, 2 s, later). Dispatch what discord.py would.
        bot.dispatch("guild_available", bot.get_guild(guild.id))

    async def on_guild_available(_: Any) -> None:
        said.append("guild_available")

    async def on_ready() -> None:
        said.append("ready")

    for listener in (on_connect, on_guild_available, on_ready):
        bot.add_listener(listener)
    strict.hold_gateway()
    await missed_writes(written)
    before = len(simcord_env.http_requests)
    assert strict.drop_gateway() >= 2
    await simcord_env.settle()
    assert said == ["guild_available", "ready"]
    reads = Counter(
        r.path for r in simcord_env.http_requests[before:] if r.path.endswith("/messages")
    )
    table = {f"/channels/{c}/messages" for c in reader.schema("t").channels}
    # One catch-up read per storage channel: the catalog's and the table's.
    assert table < set(reads) and len(reads) == len(table) + 1
    assert set(reads.values()) == {1}
    assert await seen(reader) == {"a": 3, "b": 2}
    # The next READY catches up again.
    await written(name="c", n=4).save()
    strict.hold_gateway()
    await written(name="c", n=5).save()
    strict.drop_gateway()
    await simcord_env.settle()
    assert await seen(reader) == {"a": 3, "b": 2, "c": 5}
    await reader.close()
    await writer.close()


async def test_a_ready_that_leaves_the_guild_unavailable_catches_up_when_it_comes_back(
    simcord_env, strict: Strict, guild, fast_retry
):
    _, writer, written, reader = await writer_and_reader(simcord_env, strict, guild, fast_retry)
    strict.drop_gateway(unavailable=(guild.id,))
    await simcord_env.settle()  # on_ready has fired, with the guild still unavailable
    await missed_writes(written)  # no events: the guild is unavailable
    await simcord_env.settle()
    assert await seen(reader) == {"a": 1}
    strict.guild_available(guild.id)
    await simcord_env.settle()
    assert await seen(reader) == {"a": 3, "b": 2}
    await reader.close()
    await writer.close()


@pytest.mark.parametrize("simcord_bot", ["sharded"], indirect=True)
async def test_one_shard_re_identifying_catches_up_its_guild(
    simcord_env, strict: Strict, guild, fast_retry
):
    _, writer, written, reader = await writer_and_reader(simcord_env, strict, guild, fast_retry)
    shard = simcord_env.bot.get_guild(guild.id).shard_id
    readies: list[str] = []

    async def on_ready() -> None:
        readies.append("ready")

    simcord_env.bot.add_listener(on_ready)
    strict.hold_gateway()
    await missed_writes(written)
    assert strict.drop_gateway(shard=shard) >= 2
    await simcord_env.settle()
    assert readies == []  # discord.py fires only on_shard_ready for one shard
    assert await seen(reader) == {"a": 3, "b": 2}
    await reader.close()
    await writer.close()


@pytest.mark.parametrize("simcord_bot", ["sharded"], indirect=True)
async def test_another_shard_re_identifying_does_not_read_the_guild_again(
    simcord_env, strict: Strict, guild, fast_retry
):
    _, writer, _, reader = await writer_and_reader(simcord_env, strict, guild, fast_retry)
    shard = simcord_env.bot.get_guild(guild.id).shard_id
    before = len(simcord_env.http_requests)
    strict.drop_gateway(shard=1 - shard)
    await simcord_env.settle()
    assert simcord_env.http_requests[before:] == []
    await reader.close()
    await writer.close()


async def test_a_guild_outage_is_caught_up_when_the_guild_is_available_again(
    simcord_env, strict: Strict, guild, fast_retry
):
    _, writer, written, reader = await writer_and_reader(simcord_env, strict, guild, fast_retry)
    strict.guild_outage(guild.id, process=strict.bot)
    await missed_writes(written)
    await simcord_env.settle()
    assert await seen(reader) == {"a": 1}  # nothing arrived during the outage
    strict.guild_available(guild.id, process=strict.bot)
    await simcord_env.settle()
    assert await seen(reader) == {"a": 3, "b": 2}
    await reader.close()
    await writer.close()


async def test_opening_during_a_guild_outage_is_a_typed_error(
    simcord_env, strict: Strict, guild, new_db
):
    strict.guild_outage(guild.id)
    await simcord_env.settle()
    db = new_db()
    with pytest.raises(discobase.GuildUnavailableError) as raised:
        await db.open()
    assert raised.value.guild == guild.id
    assert not db.is_open
    strict.guild_available(guild.id)
    await simcord_env.settle()
    await db.open()
    assert db.is_open
    await db.close()


async def test_a_guild_left_unavailable_by_ready_is_a_typed_error_at_open(
    simcord_env, strict: Strict, guild, new_db
):
    strict.drop_gateway(unavailable=(guild.id,))
    await simcord_env.settle()
    with pytest.raises(discobase.GuildUnavailableError):
        await new_db().open()
    assert [c.name for c in simcord_env.backend.channels.values()] == []  # nothing was made


@pytest.mark.parametrize("simcord_bot", ["plain"], indirect=True)
async def test_a_client_that_cannot_deliver_events_is_said_so_and_sync_still_catches_up(
    simcord_env: Any, guild: Any, fast_retry: discobase.RetryPolicy, caplog: Any
) -> None:
    reader = discobase.Database(guild.id, bot=simcord_env.bot, retry=fast_retry)
    with caplog.at_level("WARNING", logger="discobase.transport"):
        await reader.open()
    assert "Client cannot deliver gateway events" in caplog.text
    writer = discobase.Database(guild.id, bot=simcord_env.bot, retry=fast_retry)
    await writer.open()
    table = await writer.create_table("t", {"n": int})
    await table(n=1).save()
    await simcord_env.settle()
    assert "t" not in reader.tables  # nothing arrives by itself
    await reader.sync()
    assert [r.n for r in await reader.tables["t"].find()] == [1]
    await writer.close()
    await reader.close()
