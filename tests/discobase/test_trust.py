"""Only the bot's own messages are storage: the guild owner, Administrators, other bots and
webhooks can post into the hidden storage channels (they bypass channel overwrites), and
nothing they post is applied, deletes data, stops an open, or points a table at a channel
outside this guild's storage category. What they post is reported by ``check()``.

Forged messages mention the bot, so that a bot without the Message Content intent reads them
over the gateway too (as it would on Discord)."""

from __future__ import annotations

import dataclasses
import io
import zlib

import discord
import pytest
import simcord

import discobase
from discobase.codec import Entry, encode_batch, encode_catalog_event, encode_entry, encode_marker
from discobase.engine import core
from discobase.transport import StoredMessage
from tests.conftest import make_bot


class Note(discobase.Table):
    key: str
    n: int = 0

    class Settings:
        primary_key = "key"
        shards = 1  # one channel: the forged alter below names one channel for it


async def open_db(new_db):
    db = new_db(compaction=None)
    db.table(Note)
    await db.open()
    return db


async def reopen(env, db, new_db):
    await db.close()
    await env.restart_bot(make_bot())
    return await open_db(new_db)


async def notes() -> dict[str, int]:
    return {r.key: r.n for r in await Note.find()}


def mentioning(env: simcord.Env, content: str) -> str:
    """``content`` with a mention of the bot in its header line (a header may carry extra
    fields), so that the gateway delivers its text without the Message Content intent."""
    header, _, body = content.partition("\n")
    return f"{header} m=<@{env.bot.user.id}>" + (f"\n{body}" if body else "")


def forged_batch(env: simcord.Env) -> str:
    lines = [
        encode_entry(Entry("a", {"key": "a", "n": 999})),
        encode_entry(Entry("evil", {"key": "evil", "n": 1})),
        encode_entry(Entry("b", None)),
    ]
    return mentioning(env, encode_batch("f0f0f0f0f0f0f0f0", lines).content)


@pytest.fixture
def forgers(simcord_env, guild):
    """Who can post into a hidden storage channel, by name: a function that posts as them."""
    admins = guild.create_role("admins", permissions=discord.Permissions(administrator=True))
    administrator = guild.add_member(simcord_env.create_user("administrator"), roles=[admins])
    other_bot = guild.add_member(simcord_env.create_user("helper", bot=True), roles=[admins])
    owner = simcord.MemberActor(simcord_env, guild, guild.owner)

    async def post(who: str, channel_name: str, content: str) -> None:
        channel = guild.channels[channel_name]
        if who == "webhook":
            await guild.create_webhook(channel).send(content)
        else:
            actor = {"owner": owner, "administrator": administrator, "other-bot": other_bot}[who]
            await actor.send(channel, content)

    return post


@pytest.mark.parametrize("who", ["owner", "administrator", "other-bot", "webhook"])
async def test_a_forged_batch_changes_no_record(simcord_env, new_db, forgers, who):
    db = await open_db(new_db)
    await Note(key="a", n=1).save()
    await Note(key="b", n=2).save()
    await forgers(who, "note", forged_batch(simcord_env))
    await simcord_env.settle()
    assert await notes() == {"a": 1, "b": 2}  # live: the gateway event was not applied
    await Note(key="c", n=3).save()
    db2 = await reopen(simcord_env, db, new_db)
    assert await notes() == {"a": 1, "b": 2, "c": 3}
    report = await db2.check()
    assert [p.kind for p in report.problems] == ["foreign-author"]
    assert report.problems[0].channel_id == db2.schema("note").channels[0]
    await db2.close()


async def test_a_forged_snapshot_marker_neither_empties_a_table_nor_lets_compact_delete_it(
    simcord_env, new_db, forgers
):
    db = await open_db(new_db)
    for i in range(5):
        await Note(key=f"k{i}", n=i).save()
    marker = encode_marker("0123456789abcdef", 2**63 - 1, 0, [])
    await forgers("owner", "note", mentioning(simcord_env, marker))
    await simcord_env.settle()
    db2 = await reopen(simcord_env, db, new_db)
    assert await notes() == {f"k{i}": i for i in range(5)}
    await db2.compact()
    db3 = await reopen(simcord_env, db2, new_db)
    assert await notes() == {f"k{i}": i for i in range(5)}
    channel = simcord_env.bot.get_channel(db3.schema("note").channels[0])
    texts = [m.content async for m in channel.history(limit=None)]
    assert any(t.startswith("dbs1 snap id=0123456789abcdef") for t in texts)  # left alone
    assert [p.kind for p in (await db3.check()).problems] == ["foreign-author"]
    await db3.close()


def catalog_line(event: dict, *, version: int = 1) -> str:
    return encode_catalog_event(event).replace("dbs1 ", f"dbs{version} ", 1)


TRUNCATED = b'{"op":"create","table":'
BRICKS = {
    "a field named model_config": catalog_line(
        {
            "op": "create",
            "table": "brick",
            "schema": {
                "name": "brick",
                "fields": [{"name": "model_config", "type": "str"}],
                "channels": [],
            },
        }
    ),
    "an unknown version": catalog_line({"op": "drop", "table": "note"}, version=2),
    "bad JSON": f"dbs1 cat crc={zlib.crc32(TRUNCATED):08x}\n{TRUNCATED.decode()}",
    "a default that does not fit": catalog_line(
        {
            "op": "alter",
            "table": "note",
            "schema": {
                "name": "note",
                "fields": [
                    {"name": "key", "type": "str"},
                    {"name": "n", "type": "int", "default": "x"},
                ],
                "primary_key": "key",
                "channels": ["1"],
            },
        }
    ),
}


@pytest.mark.parametrize("brick", list(BRICKS))
async def test_a_forged_catalog_line_cannot_stop_an_open(simcord_env, new_db, forgers, brick):
    db = await open_db(new_db)
    await Note(key="a", n=1).save()
    await forgers("administrator", "catalog", mentioning(simcord_env, BRICKS[brick]))
    await simcord_env.settle()
    assert await notes() == {"a": 1}
    db2 = await reopen(simcord_env, db, new_db)
    assert set(db2.tables) == {"note"}
    assert await notes() == {"a": 1}
    assert [p.kind for p in (await db2.check()).problems] == ["foreign-author"]
    await db2.close()


@pytest.mark.parametrize(
    "brick", ["a field named model_config", "bad JSON", "a default that does not fit"]
)
async def test_a_malformed_catalog_event_of_our_own_is_skipped_and_reported(
    simcord_env, new_db, brick
):
    db = await open_db(new_db)
    await Note(key="a", n=1).save()
    catalog = simcord_env.bot.get_channel(db._catalog.channel_id)
    await catalog.send(BRICKS[brick])  # the bot's own user, e.g. a buggy process with its token
    await simcord_env.settle()
    db2 = await reopen(simcord_env, db, new_db)
    assert set(db2.tables) == {"note"}
    assert await notes() == {"a": 1}
    kinds = [p.kind for p in (await db2.check()).problems]
    assert kinds == ["unreadable"]
    await db2.close()


@pytest.mark.parametrize(
    "attachment", [b"not a zlib stream", zlib.compress(b'{"put":"b","rec":{"key":"b"}}')[:-3]]
)
async def test_a_batch_of_our_own_whose_attachment_does_not_decompress_is_reported(
    simcord_env, new_db, attachment
):
    db = await open_db(new_db)
    await Note(key="a", n=1).save()
    header = encode_batch("0123456789abcdef", [encode_entry(Entry("b", {"key": "b"}))] * 100)
    assert header.attachment is not None  # too long for the content: attached
    channel = simcord_env.bot.get_channel(db.schema("note").channels[0])
    await channel.send(header.content, file=discord.File(io.BytesIO(attachment), "body.jsonl.z"))
    await simcord_env.settle()
    db2 = await reopen(simcord_env, db, new_db)
    assert await notes() == {"a": 1}
    problems = (await db2.check()).problems
    assert [(p.kind, "does not decompress" in p.detail) for p in problems] == [("unreadable", True)]
    await db2.close()


async def test_a_create_naming_another_guilds_channel_never_uses_it(simcord_env, new_db, forgers):
    victim = simcord_env.create_guild("victim")
    general = victim.create_text_channel("general")
    db = await open_db(new_db)
    in_victim = simcord_env.bot.get_channel(general.id)
    await in_victim.send("the victim's history")
    event = {
        "op": "create",
        "table": "stolen",
        "schema": {
            "name": "stolen",
            "fields": [{"name": "text", "type": "str"}],
            "channels": [str(general.id)],
        },
    }
    await forgers("owner", "catalog", mentioning(simcord_env, catalog_line(event)))
    await simcord_env.settle()
    assert "stolen" not in db.tables  # live
    # even written with the bot's own token, a create outside the storage category is refused
    catalog = simcord_env.bot.get_channel(db._catalog.channel_id)
    await catalog.send(catalog_line(event))
    move = {
        "op": "alter",
        "table": "note",
        "schema": {**db.schema("note").to_dict(), "channels": [str(general.id)]},
    }
    await catalog.send(catalog_line(move))
    await simcord_env.settle()
    assert "stolen" not in db.tables
    await Note(key="a", n=1).save()
    await db.sync()
    db2 = await reopen(simcord_env, db, new_db)
    assert "stolen" not in db2.tables
    assert db2.schema("note").channels != [general.id]
    await Note(key="b", n=2).save()
    with pytest.raises(discobase.TableNotFoundError):
        await db2.drop_table("stolen")
    kinds = sorted(p.kind for p in (await db2.check()).problems)
    assert kinds == ["foreign-author", "foreign-channel", "foreign-channel"]
    assert [m.content async for m in in_victim.history(limit=None)] == ["the victim's history"]
    assert await notes() == {"a": 1, "b": 2}
    await db2.close()


async def test_the_bots_own_interaction_response_in_a_storage_channel_is_not_storage(
    simcord_env, new_db
):
    """Discord gives a slash command's response and follow-ups the bot's user as author and
    the application's id as ``webhook_id`` (discord-api-docs, resources/message.mdx: "if the
    message is generated by a webhook, this is the webhook's id"). The owner can run a command
    in a hidden storage channel, so such a message there is the bot's user but not storage.
    SimCord leaves ``webhook_id`` out of interaction responses: the payload is Discord's."""
    db = await open_db(new_db)
    response = StoredMessage(
        id=1456074443980800099,
        channel_id=db.schema("note").channels[0],
        author_id=simcord_env.bot.user.id,
        content=forged_batch(simcord_env),
        webhook_id=simcord_env.bot.application_id,
    )
    assert not db.transport.is_ours(response)
    assert db.transport.is_ours(dataclasses.replace(response, webhook_id=None))
    await db.close()


async def test_a_flood_of_foreign_messages_keeps_a_bounded_list_of_problems(
    simcord_env, new_db, forgers, monkeypatch
):
    monkeypatch.setattr(core, "MAX_PROBLEMS", 3)
    db = await open_db(new_db)
    await Note(key="a", n=1).save()
    for _ in range(6):
        await forgers("owner", "note", forged_batch(simcord_env))
    await simcord_env.settle()
    assert len(Note._engine().state.problems) == 3  # the gateway's: logged, three kept
    assert await notes() == {"a": 1}
    report = await db.check()
    assert [p.kind for p in report.problems] == ["foreign-author"] * 3
    await db.close()
