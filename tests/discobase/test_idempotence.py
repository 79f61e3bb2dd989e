"""Requests whose outcome is unknown are safe to repeat: every message send carries its own
nonce with ``enforce_nonce`` (Discord answers a repeated nonce with the earlier message: strict
mode models it), and channel creates are followed by a read that adopts what was made."""

from __future__ import annotations

import asyncio
import fnmatch
from types import SimpleNamespace
from typing import Any

import discord
import pytest
import simcord

import discobase
from tests.conftest import make_bot


class Owner(discobase.Table):
    name: str
    age: int = 0

    class Settings:
        primary_key = "name"


class Pet(discobase.Table):
    name: str
    legs: int = 4

    class Settings:
        primary_key = "name"


class PetWithOwner(discobase.Table):
    name: str
    legs: int = 4
    owner: str | None = None

    class Settings:
        name = "pet"
        primary_key = "name"


def sent_nonces(env: simcord.Env) -> list[str]:
    return [
        r.json["nonce"]
        for r in env.http_requests
        if r.method == "POST" and r.path.endswith("/messages") and r.json and "nonce" in r.json
    ]


async def test_every_catalog_event_lands_under_enforce_nonce(simcord_env, strict, new_db):
    db = new_db()
    db.table(Owner)
    db.table(Pet)
    await db.open()  # two class tables: two catalog events in one channel
    assert set(db.tables) == {"owner", "pet"}
    await Owner(name="ann", age=3).save()
    await db.create_table("tags", {"label": str})
    await db.create_table("notes", {"text": str})
    await db.drop_table("tags")
    assert set(db.tables) == {"owner", "pet", "notes"}
    await db.close()

    await simcord_env.restart_bot(make_bot())
    db2 = new_db()
    db2.table(Owner)
    db2.table(PetWithOwner)  # an alter
    await db2.open()
    await PetWithOwner(name="rex", owner="ann").save()
    await db2.close()

    await simcord_env.restart_bot(make_bot())
    db3 = new_db()
    db3.table(Owner)
    db3.table(PetWithOwner)
    await db3.open()
    assert set(db3.tables) == {"owner", "pet", "notes"}
    assert db3.schema("pet").field_names == ["name", "legs", "owner"]
    assert [(o.name, o.age) for o in await Owner.find()] == [("ann", 3)]
    assert [(p.name, p.owner) for p in await PetWithOwner.find()] == [("rex", "ann")]
    assert (await db3.check()).ok
    await db3.close()
    nonces = sent_nonces(simcord_env)
    assert len(nonces) >= 8
    assert len(nonces) == len(set(nonces))  # one nonce per logical message
    assert strict.nonce_hits == 0


def lose_responses(env: simcord.Env, error: BaseException, *, skip: int = 0, extra: int = 0):
    """Channel creates: let ``skip`` through, then apply the next one and lose its response
    (``error``), once. With ``extra``, Discord applies it ``extra`` more times first (discord.py
    retrying a 5xx by itself, which SimCord's transport does not)."""
    http = env.bot.http
    real = http.request
    seen = {"n": 0}

    async def request(route: Any, **kwargs: Any) -> Any:
        if route.method == "POST" and fnmatch.fnmatch(route.path, "/guilds/*/channels"):
            seen["n"] += 1
            if seen["n"] == skip + 1:
                for _ in range(extra):
                    await real(route, **kwargs)
                response = await real(route, **kwargs)
                if extra:
                    return response
                raise error
        return await real(route, **kwargs)

    http.request = request


def server_error() -> discord.DiscordServerError:
    return discord.DiscordServerError(SimpleNamespace(status=502, reason="Bad Gateway"), "")


def storage_layout(env: simcord.Env, guild: simcord.GuildHandle) -> list[tuple[str, str | None]]:
    """(channel name, category name) of every channel in the guild, sorted."""
    channels = env.bot.get_guild(guild.id).channels
    return sorted((c.name, c.category.name if c.category else None) for c in channels)


@pytest.mark.parametrize("error", [TimeoutError(), server_error()], ids=["timeout", "502"])
@pytest.mark.parametrize("step", ["category", "catalog", "table"])
async def test_a_channel_create_whose_response_is_lost_is_not_made_twice(
    simcord_env, guild, new_db, step, error
):
    if step in ("category", "catalog"):
        lose_responses(simcord_env, error, skip=["category", "catalog"].index(step))
    db = new_db()
    await db.open()
    if step == "table":
        lose_responses(simcord_env, error)
    # (its second shard is a thread: test_threads.py loses a thread create's response)
    Pets = await db.create_table("pets", {"name": str}, primary_key="name", shards=2)
    await Pets(name="rex").save()
    await Pets(name="tom").save()
    assert db.transport.calls["GET /guilds/{id}/channels"] >= 1  # it looked before retrying
    expected = [("catalog", "discobase"), ("discobase", None), ("pets", "discobase")]
    assert storage_layout(simcord_env, guild) == expected
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db2 = new_db()
    await db2.open()
    assert sorted(p.name for p in await db2.tables["pets"].find()) == ["rex", "tom"]
    assert (await db2.check()).ok
    await db2.close()


async def test_a_channel_discord_made_twice_is_reported_and_unused(simcord_env, guild, new_db):
    db = new_db()
    await db.open()
    lose_responses(simcord_env, server_error(), extra=1)
    Pets = await db.create_table("pets", {"name": str}, shards=1)
    await Pets(name="rex").save()
    [used] = db.schema("pets").channels
    report = await db.check()
    [orphan] = report.problems
    assert orphan.kind == "orphan-channel" and orphan.channel_id != used
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db2 = new_db()
    await db2.open()
    assert [p.name for p in await db2.tables["pets"].find()] == ["rex"]
    await db2.close()


async def test_two_processes_opening_a_fresh_guild_and_creating_a_table_at_once_converge(
    simcord_env, guild, new_db
):
    first, second = new_db(), new_db()  # two processes (SimCord hosts one bot: they share it)
    await asyncio.gather(first.open(), second.open())
    A, B = await asyncio.gather(
        first.create_table("t", {"name": str}, primary_key="name", shards=2),
        second.create_table("t", {"name": str}, primary_key="name", shards=2),
    )
    assert first.schema("t").channels == second.schema("t").channels
    await asyncio.gather(*(A(name=f"a{i}").save() for i in range(5)))
    await asyncio.gather(*(B(name=f"b{i}").save() for i in range(5)))
    await simcord_env.settle()
    everything = sorted([f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)])
    assert sorted(r.name for r in await A.find()) == everything
    assert sorted(r.name for r in await B.find()) == everything
    await first.close()
    await second.close()
    # one category, one catalog, one table channel: the losers' were removed
    assert storage_layout(simcord_env, guild) == [
        ("catalog", "discobase"),
        ("discobase", None),
        ("t", "discobase"),
    ]
    await simcord_env.restart_bot(make_bot())
    third = new_db()
    await third.open()
    assert sorted(r.name for r in await third.tables["t"].find()) == everything
    report = await third.check()
    assert all(p.kind == "duplicate-create" for p in report.problems), report
    await third.close()


async def test_two_processes_opening_a_fresh_guild_with_the_same_class_converge(
    simcord_env, guild, new_db
):
    class PetsHere(discobase.Table):
        name: str

        class Settings:
            name = "pets"
            primary_key = "name"

    class PetsThere(discobase.Table):  # the same class, in the other process
        name: str

        class Settings:
            name = "pets"
            primary_key = "name"

    first, second = new_db(), new_db()
    first.table(PetsHere)
    second.table(PetsThere)
    await asyncio.gather(first.open(), second.open())
    assert first.schema("pets").channels == second.schema("pets").channels
    await PetsHere(name="rex").save()
    await PetsThere(name="tom").save()
    await simcord_env.settle()
    assert sorted(p.name for p in await PetsHere.find()) == ["rex", "tom"]
    assert sorted(p.name for p in await PetsThere.find()) == ["rex", "tom"]
    await first.close()
    await second.close()
    assert storage_layout(simcord_env, guild) == [
        ("catalog", "discobase"),
        ("discobase", None),
        ("pets", "discobase"),
    ]


async def test_two_clients_of_one_token_open_a_fresh_guild_and_create_a_table_at_once(
    simcord_env, guild, strict, fast_retry
):
    """The same race between two real discord.py clients, whose snowflakes are skewed (the
    second one's later channels and messages can have lower ids) and whose gateway events
    arrive before or after their REST responses."""
    other = await strict.second_process()
    here = discobase.Database(guild.id, bot=simcord_env.bot, retry=fast_retry)
    there = discobase.Database(guild.id, bot=other.bot, retry=fast_retry)
    await asyncio.gather(here.open(), there.open())
    Here, There = await asyncio.gather(
        here.create_table("t", {"name": str}, primary_key="name", shards=2),
        there.create_table("t", {"name": str}, primary_key="name", shards=2),
    )
    # Each may think it won (a later create can have a lower id): both take writes at once
    await asyncio.gather(*(Here(name=f"a{i}").save() for i in range(5)))
    await asyncio.gather(*(There(name=f"b{i}").save() for i in range(5)))
    await simcord_env.settle()
    everything = sorted([f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)])
    await here.sync()
    await there.sync()
    await simcord_env.settle()
    assert here.schema("t").channels == there.schema("t").channels
    Here, There = here.tables["t"], there.tables["t"]
    assert sorted(r.name for r in await Here.find()) == everything
    assert sorted(r.name for r in await There.find()) == everything
    used = here.schema("t").channels
    await here.close()
    await there.close()
    await simcord_env.restart_bot(make_bot())
    third = discobase.Database(guild.id, bot=simcord_env.bot, retry=fast_retry)
    await third.open()
    assert sorted(r.name for r in await third.tables["t"].find()) == everything
    assert third.schema("t").channels == used
    # With skewed ids each may have kept its own storage for a moment: any table channel left
    # over is unused and reported (never silently holding writes)
    report = await third.check()
    assert {p.kind for p in report.problems} <= {"orphan-channel", "duplicate-create"}
    assert not {p.channel_id for p in report.problems if p.kind == "orphan-channel"} & set(used)
    await third.close()


async def test_a_process_whose_gateway_has_not_seen_the_storage_yet_opens_and_reads_it(
    simcord_env, guild, strict, fast_retry
):
    """Another process made the storage a moment ago and its channel creates have not reached
    our gateway cache yet: our open makes a category and catalog of its own, finds the other
    one's by REST, removes its own and reads the other's table."""
    other = await strict.second_process()
    writer = discobase.Database(guild.id, bot=other.bot, retry=fast_retry)
    await writer.open()
    written = await writer.create_table("t", {"name": str, "n": int}, primary_key="name")
    reader = discobase.Database(guild.id, bot=simcord_env.bot, retry=fast_retry)
    await reader.open()  # no settle: the cache may lag behind the other process's creates
    await written(name="a", n=1).save()
    await simcord_env.settle()
    assert [(r.name, r.n) for r in await reader.tables["t"].find()] == [("a", 1)]
    await simcord_env.settle()
    report = await reader.check()
    assert not [p for p in report.problems if p.kind != "orphan-channel"]
    await reader.close()
    await writer.close()


@pytest.mark.parametrize("fault", ["lost", "applied 502"])
async def test_strict_channel_create_faults_make_one_set_of_channels(
    simcord_env, guild, strict, new_db, fault
):
    db = new_db()
    await db.open()
    if fault == "lost":
        strict.lose_responses("channel_create", times=2)
    else:
        strict.server_errors("channel_create", applied=True)  # discord.py makes it again
    Pets = await db.create_table("pets", {"name": str}, primary_key="name", shards=2)
    await Pets(name="rex").save()
    names = [name for name, _ in storage_layout(simcord_env, guild)]
    report = await db.check()
    if fault == "lost":
        assert names == ["catalog", "discobase", "pets"]
        assert report.ok
    else:  # discord.py's own resend is invisible to discobase: the copy is reported, unused
        assert sorted(set(names)) == ["catalog", "discobase", "pets"]
        assert [p.kind for p in report.problems] == ["orphan-channel"]
        assert report.problems[0].channel_id not in db.schema("pets").channels
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db2 = new_db()
    await db2.open()
    assert [p.name for p in await db2.tables["pets"].find()] == ["rex"]
    await db2.close()
