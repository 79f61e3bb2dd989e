"""A Database with its own client (the 1.0.0 shape): bound by guild name, connected (opened and
closed) both ways, ``async with db.connect(token)`` and ``await db.connect(token)``, and how
connecting fails; 1.0's ``conn`` is an alias of ``connect``."""

from __future__ import annotations

import asyncio

import discord
import pytest

import discobase
from tests.conftest import discobase_tasks
from tests.strict import Strict


@pytest.fixture
def own_db() -> discobase.Database:
    return discobase.Database("my storage", retry=discobase.RetryPolicy(base_delay=0, max_delay=0))


@pytest.fixture
def simcord_bot(own_db):
    # SimCord runs the database's own client in place of a logged-in one.
    return own_db.bot


@pytest.fixture
def offline_start(own_db) -> asyncio.Event:
    """SimCord has connected the client already: ``start(token)`` then only runs until
    the client closes, as it would after logging in, or raises what discord.py's
    ``Client.login`` raises when Discord answers 401 to another token. Returns the event
    set when the client is closed."""
    closed = asyncio.Event()

    async def start(token: str) -> None:
        if token != "secret-token":
            raise discord.LoginFailure("Improper token has been passed.")
        await closed.wait()

    async def close() -> None:
        closed.set()

    own_db.bot.start = start
    own_db.bot.close = close
    return closed


class Entry(discobase.Table):
    text: str


async def test_own_client_binds_by_guild_name_and_needs_no_privileged_intent(simcord_env, own_db):
    simcord_env.create_guild("other storage")
    guild = simcord_env.create_guild("my storage")
    assert not own_db.bot.intents.message_content and not own_db.bot.intents.members
    with pytest.raises(discobase.NotConnectedError):
        await own_db.create_table("t", {"a": str})

    own_db.table(Entry)
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


async def test_async_with_connect_logs_in_opens_and_closes(simcord_env, own_db, offline_start):
    simcord_env.create_guild("my storage")
    own_db.table(Entry)
    async with own_db.connect("secret-token") as db:
        assert db is own_db and db.is_open and not offline_start.is_set()
        await Entry(text="inside").save()
    assert not own_db.is_open and offline_start.is_set()  # closed, and logged out
    assert discobase_tasks() == []
    assert [e.text for e in await (await reader(simcord_env)).tables["entry"].find()] == ["inside"]


async def test_await_connect_returns_the_open_database(simcord_env, own_db, offline_start):
    simcord_env.create_guild("my storage")
    own_db.table(Entry)
    db = await own_db.connect("secret-token")
    assert db is own_db and db.is_open
    await Entry(text="one").save()
    assert await db.connect("secret-token") is db  # open already: no second login
    assert await Entry.count() == 1 and not offline_start.is_set()
    await db.close()
    assert not db.is_open and offline_start.is_set()
    assert discobase_tasks() == []


async def test_conn_is_connect_under_its_1_0_name(simcord_env, own_db, offline_start):
    simcord_env.create_guild("my storage")
    own_db.table(Entry)
    async with own_db.conn("secret-token") as db:
        assert db is own_db and db.is_open
        await Entry(text="inside").save()
    assert not own_db.is_open and offline_start.is_set()


async def test_login_runs_the_client_until_it_closes(simcord_env, own_db, offline_start):
    simcord_env.create_guild("my storage")
    running = asyncio.get_running_loop().create_task(own_db.login("secret-token"))
    await own_db.wait_ready()
    assert own_db.is_open and not running.done()
    await own_db.close()
    assert running.done() and running.exception() is None  # ended with the close


@pytest.mark.parametrize("token", ["secret-token", "stale-token"])
async def test_wait_ready_follows_a_login_that_starts_after_it_began_waiting(
    simcord_env, own_db, offline_start, token
):
    simcord_env.create_guild("my storage")
    # 1.0's shape: the login task has not run yet when wait_ready() is awaited.
    running = asyncio.get_running_loop().create_task(own_db.login(token))
    waiting = asyncio.get_running_loop().create_task(own_db.wait_ready())
    # A guard, not a synchronisation: a wait_ready that misses the login never returns.
    done, _ = await asyncio.wait([waiting], timeout=30)
    assert waiting in done
    if token == "stale-token":
        with pytest.raises(discobase.InvalidTokenError, match="Reset Token"):
            waiting.result()
        with pytest.raises(discobase.InvalidTokenError):
            await running
    else:
        assert waiting.result() is None and own_db.is_open and not running.done()
    await own_db.close()
    assert running.done() and offline_start.is_set()
    assert discobase_tasks() == []


async def reader(env) -> discobase.Database:
    """Another database on the same guild, opened on SimCord's client, to see what is stored."""
    db = discobase.Database("my storage", bot=env.bot)
    await db.open()
    return db


@pytest.mark.parametrize("form", ["async with", "await"])
async def test_a_token_discord_refuses_is_a_typed_error(simcord_env, own_db, offline_start, form):
    simcord_env.create_guild("my storage")
    with pytest.raises(discobase.InvalidTokenError, match="Reset Token") as raised:
        if form == "await":
            await own_db.connect("stale-token")
        else:
            async with own_db.connect("stale-token"):
                pytest.fail("the body must not run")
    assert isinstance(raised.value, discobase.NotConnectedError)
    assert not own_db.is_open and offline_start.is_set()  # its own client is logged out
    assert discobase_tasks() == []  # the open that waited for the login is stopped too


async def test_connecting_while_the_guild_is_unavailable_is_a_typed_error(
    simcord_env, own_db, offline_start, strict: Strict
):
    guild = simcord_env.create_guild("my storage")
    await simcord_env.settle()
    strict.guild_outage(guild.id)
    await simcord_env.settle()
    with pytest.raises(discobase.GuildUnavailableError) as raised:
        async with own_db.connect("secret-token"):
            pytest.fail("the body must not run")
    assert raised.value.guild == guild.id
    assert not own_db.is_open and offline_start.is_set()
    assert discobase_tasks() == []


async def test_an_error_inside_async_with_closes_and_keeps_acknowledged_writes(
    simcord_env, own_db, offline_start
):
    simcord_env.create_guild("my storage")
    own_db.table(Entry)
    loop = asyncio.get_running_loop()
    with pytest.raises(RuntimeError, match="the caller's own failure"):
        async with own_db.connect("secret-token"):
            await Entry(text="first").save()
            await asyncio.gather(*(Entry(text=f"batch {i}").save() for i in range(5)))
            unawaited = [loop.create_task(Entry(text=f"late {i}").save()) for i in range(2)]
            raise RuntimeError("the caller's own failure")
    assert not own_db.is_open and offline_start.is_set()
    assert discobase_tasks() == []
    with pytest.raises(discobase.NotConnectedError):
        await Entry.find()
    stored = sorted(e.text for e in await (await reader(simcord_env)).tables["entry"].find())
    # A write the block started but never awaited either went out before the close, or
    # raises NotConnectedError: none is lost without a word.
    landed = []
    for task in unawaited:
        if isinstance(task.exception(), discobase.NotConnectedError):
            continue
        landed.append(task.result().text)
    assert stored == [*(f"batch {i}" for i in range(5)), "first", *landed]


async def test_connect_without_a_token_uses_a_client_that_runs_elsewhere(simcord_env, new_db):
    async with new_db().connect() as db:
        assert db.is_open
        await db.create_table("notes", {"text": str})
    assert not db.is_open
    assert not simcord_env.bot.is_closed()  # a shared client keeps running
    db2 = await new_db().connect()
    assert "notes" in db2.tables
    await db2.close()


async def test_connect_without_a_token_refuses_an_own_client_that_is_not_running():
    db = discobase.Database("anywhere")
    with pytest.raises(discobase.NotConnectedError, match="pass the bot token"):
        await db.connect()
    assert not db.is_open


async def test_a_database_sharing_a_client_refuses_a_token(simcord_env, new_db):
    db = new_db()
    with pytest.raises(discobase.NotConnectedError, match="without a token"):
        await db.connect("secret-token")
    assert not db.is_open and not simcord_env.bot.is_closed()


async def test_connect_raises_why_the_database_could_not_open(simcord_env, own_db, offline_start):
    simcord_env.create_guild("somewhere else")
    with pytest.raises(discobase.GuildNotFoundError) as error:
        async with own_db.connect("secret-token"):
            pytest.fail("the body must not run")
    assert error.value.guild == "my storage"
    assert not own_db.is_open and offline_start.is_set()
