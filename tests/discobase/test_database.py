"""A Database with its own client (the 1.0.0 shape): bound by guild name, opened, closed."""

from __future__ import annotations

import asyncio

import pytest

import discobase


@pytest.fixture
def own_db() -> discobase.Database:
    return discobase.Database("my storage", retry=discobase.RetryPolicy(base_delay=0, max_delay=0))


@pytest.fixture
def simcord_bot(own_db):
    # SimCord runs the database's own client in place of a logged-in one.
    return own_db.bot


@pytest.fixture
def offline_start(own_db):
    """SimCord has connected the client already: ``start(token)`` then only runs until
    the client closes, as it would after logging in."""
    closed = asyncio.Event()

    async def start(token: str) -> None:
        assert token == "secret-token"
        await closed.wait()

    async def close() -> None:
        closed.set()

    own_db.bot.start = start
    own_db.bot.close = close


async def test_own_client_binds_by_guild_name_and_needs_no_privileged_intent(simcord_env, own_db):
    simcord_env.create_guild("other storage")
    guild = simcord_env.create_guild("my storage")
    assert not own_db.bot.intents.message_content and not own_db.bot.intents.members
    with pytest.raises(discobase.NotConnectedError):
        await own_db.create_table("t", {"a": str})

    @own_db.table
    class Entry(discobase.Table):
        text: str

    await own_db.open()
    await own_db.open()  # idempotent
    assert own_db.is_open and own_db.guild_id == guild.id
    await Entry(text="hello").save()
    assert [e.text for e in await Entry.find()] == ["hello"]
    assert own_db.metrics["POST /channels/{id}/messages"] == 2  # catalog event, then the batch
    await own_db.close()
    assert not own_db.is_open
    with pytest.raises(discobase.NotConnectedError):
        await Entry.find()


async def test_conn_logs_in_opens_and_closes(simcord_env, own_db, offline_start):
    simcord_env.create_guild("my storage")

    @own_db.table
    class Entry(discobase.Table):
        text: str

    async with own_db.conn("secret-token") as db:
        assert db is own_db and db.is_open
        await Entry(text="inside").save()
    assert not own_db.is_open
    assert own_db._login_task is not None
    await own_db._login_task  # the client ran until close()


async def test_conn_raises_why_the_database_could_not_open(simcord_env, own_db, offline_start):
    simcord_env.create_guild("somewhere else")
    with pytest.raises(discobase.GuildNotFoundError) as error:
        async with own_db.conn("secret-token"):
            pytest.fail("the body must not run")
    assert error.value.guild == "my storage"
    assert not own_db.is_open
