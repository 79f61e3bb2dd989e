"""Requests whose outcome is unknown are safe to repeat: every message send carries its own
nonce with ``enforce_nonce`` (Discord answers a repeated nonce with the earlier message), and
channel creates are followed by a read that adopts what was made."""

from __future__ import annotations

import asyncio
import fnmatch
import json
from types import SimpleNamespace
from typing import Any

import discord
import pytest
import simcord

import discobase
from tests.conftest import make_bot


def enforce_nonce(env: simcord.Env) -> list[str]:
    """Model Discord's ``enforce_nonce`` on the bot's HTTP client (SimCord ignores it): a
    message create whose nonce was used before in that channel returns the earlier message
    and creates nothing. Returns the nonces sent, in order."""
    http = env.bot.http
    real = http.request
    earlier: dict[tuple[str, str], Any] = {}
    sent: list[str] = []

    async def request(route: Any, **kwargs: Any) -> Any:
        if route.method != "POST" or not route.path.endswith("/messages"):
            return await real(route, **kwargs)
        payload = kwargs.get("json")
        for part in kwargs.get("form") or ():
            if part["name"] == "payload_json":
                payload = json.loads(part["value"])
        nonce = (payload or {}).get("nonce")
        key = (str(route.channel_id), str(nonce))
        if nonce is not None:
            sent.append(str(nonce))
        if nonce is not None and payload.get("enforce_nonce") and key in earlier:
            return earlier[key]
        response = await real(route, **kwargs)
        if nonce is not None:
            earlier[key] = response
        return response

    http.request = request
    return sent


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


async def test_every_catalog_event_lands_under_enforce_nonce(simcord_env, new_db):
    nonces = enforce_nonce(simcord_env)
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
    nonces += enforce_nonce(simcord_env)
    db2 = new_db()
    db2.table(Owner)
    db2.table(PetWithOwner)  # an alter
    await db2.open()
    await PetWithOwner(name="rex", owner="ann").save()
    await db2.close()

    await simcord_env.restart_bot(make_bot())
    enforce_nonce(simcord_env)
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
    assert len(nonces) == len(set(nonces))  # one nonce per logical message
    assert "..." not in nonces


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
@pytest.mark.parametrize("step", ["category", "catalog", "table", "second shard"])
async def test_a_channel_create_whose_response_is_lost_is_not_made_twice(
    simcord_env, guild, new_db, step, error
):
    if step in ("category", "catalog"):
        lose_responses(simcord_env, error, skip=["category", "catalog"].index(step))
    db = new_db()
    await db.open()
    if step in ("table", "second shard"):
        lose_responses(simcord_env, error, skip=["table", "second shard"].index(step))
    Pets = await db.create_table("pets", {"name": str}, primary_key="name", shards=2)
    await Pets(name="rex").save()
    await Pets(name="tom").save()
    assert db.transport.calls["GET /guilds/{id}/channels"] >= 1  # it looked before retrying
    expected = [
        ("catalog", "discobase"),
        ("discobase", None),
        ("pets", "discobase"),
        ("pets-1", "discobase"),
    ]
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
    Pets = await db.create_table("pets", {"name": str})
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
    # one category, one catalog, one set of table channels: the losers' were removed
    assert storage_layout(simcord_env, guild) == [
        ("catalog", "discobase"),
        ("discobase", None),
        ("t", "discobase"),
        ("t-1", "discobase"),
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
