"""Storage on its worst day: foreign messages, future formats, duplicates, faults, compaction,
other processes, and what check() reports."""

from __future__ import annotations

import asyncio

import discord
import pytest
import simcord

import discobase
from discobase.engine.shard import BATCH_ID_MEMORY
from tests.conftest import make_bot, past_horizon, rest_calls


class Note(discobase.Table):
    key: str
    text: str = ""
    n: int = 0

    class Settings:
        primary_key = "key"
        indexes = ["n"]
        shards = 1  # one channel: these tests post into it and count its pages


async def open_db(new_db, **options):
    db = new_db(**options)
    db.table(Note)
    await db.open()
    return db


async def reopen(env, db, new_db, **options):
    await db.close()
    await env.restart_bot(make_bot())
    return await open_db(new_db, **options)


def channel_of(db) -> int:
    return db.schema("note").channels[0]


async def post(env, channel_id: int, content: str) -> discord.Message:
    """Put a message into a storage channel as something other than discobase's writer."""
    return await env.bot.get_partial_messageable(channel_id).send(content)


async def state(table) -> dict[str, tuple[str, int]]:
    return {r.key: (r.text, r.n) for r in await table.find()}


async def test_foreign_and_broken_messages_are_skipped_and_reported(simcord_env, new_db):
    db = await open_db(new_db)
    await Note(key="a", text="first").save()
    big = await Note(key="big", text="x" * 5000).save()  # goes out as an attachment
    channel = channel_of(db)
    await post(simcord_env, channel, "hello, is this the database?")
    await post(
        simcord_env, channel, 'dbs1 batch n=1 crc=00000000 id=trunc\n{"put":"t","rec":{"key":'
    )
    await post(simcord_env, channel, 'dbs3 batch n=1 crc=0 id=future\n{"put":"f","rec":{}}')
    await Note(key="b", text="second").save()
    # someone strips the attachment off the big record's message
    history = [m async for m in simcord_env.bot.get_channel(channel).history(limit=20)]
    [with_file] = [m for m in history if m.attachments]
    await with_file.edit(attachments=[])
    db2 = await reopen(simcord_env, db, new_db)
    assert await state(Note) == {"a": ("first", 0), "b": ("second", 0)}
    before = len(simcord_env.http_requests)
    report = await db2.check()
    assert not any(
        c.startswith(("POST", "PATCH", "DELETE")) for c in rest_calls(simcord_env, before)
    )
    kinds = sorted(p.kind for p in report.problems)
    assert kinds == ["checksum", "foreign", "missing-attachment", "unknown-version"]
    assert not report.ok and report.tables == {"note": 2}
    assert "missing-attachment" in str(report)
    assert big.pk == "big"
    await db2.close()


async def test_a_duplicated_batch_is_applied_once(simcord_env, new_db):
    db = await open_db(new_db)
    await Note(key="k", n=1).save()
    await Note(key="k", n=2).save()
    history = [m async for m in simcord_env.bot.get_channel(channel_of(db)).history(limit=10)]
    first = min(history, key=lambda m: m.id)
    # a retried send that Discord stored twice (SimCord does not honour enforce_nonce)
    await post(simcord_env, channel_of(db), first.content)
    db2 = await reopen(simcord_env, db, new_db)
    assert await state(Note) == {"k": ("", 2)}
    await db2.close()


async def test_server_errors_are_retried_with_the_same_nonce(simcord_env, new_db):
    db = await open_db(new_db)
    simcord_env.inject_error("POST", "/channels/*/messages", status=500, times=2)
    await Note(key="r", n=1).save()
    sends = [
        r for r in simcord_env.http_requests if r.method == "POST" and r.path.endswith("/messages")
    ]
    assert len({r.json["nonce"] for r in sends[-3:]}) == 1
    assert len(sends) >= 3  # two 500s, then the one that went through
    simcord_env.inject_error("POST", "/channels/*/messages", status=429, times=1)
    before = len(simcord_env.http_requests)
    await Note(key="s", n=2).save()
    posts = [c for c in rest_calls(simcord_env, before) if c.startswith("POST /channels/")]
    assert len(posts) == 2 and posts[0] == posts[1]  # refused once, then sent again
    db2 = await reopen(simcord_env, db, new_db)
    assert await state(Note) == {"r": ("", 1), "s": ("", 2)}
    await db2.close()


async def test_a_write_that_fails_for_good_changes_nothing(simcord_env, new_db):
    db = await open_db(new_db)
    await Note(key="keep", n=1).save()
    simcord_env.inject_error("POST", "/channels/*/messages", status=503, times=None)
    with pytest.raises(discobase.DiscordUnavailableError) as error:
        await Note(key="lost", n=2).save()
    assert error.value.attempts == 4
    with pytest.raises(discobase.DiscordUnavailableError):
        await Note.insert_many([Note(key="x"), Note(key="y")])
    assert await state(Note) == {"keep": ("", 1)}
    simcord_env.backend.faults.clear()
    await Note(key="after", n=3).save()
    db2 = await reopen(simcord_env, db, new_db)
    assert await state(Note) == {"keep": ("", 1), "after": ("", 3)}
    await db2.close()


async def test_missing_permission_is_a_typed_error(simcord_env, new_db):
    db = await open_db(new_db)
    simcord_env.inject_error("POST", "/channels/*/messages", status=403, code=50013, times=1)
    with pytest.raises(discobase.MissingPermissionsError) as raised:
        await Note(key="x").save()
    assert raised.value.guild == db.guild_id is not None
    assert f"in guild {db.guild_id}: POST" in str(raised.value)
    assert await Note.count() == 0
    await db.close()


async def test_compaction_keeps_state_and_shrinks_the_log(simcord_env, new_db):
    db = await open_db(new_db, compaction=None)
    for i in range(30):
        await Note(key=f"k{i % 5}", n=i).save()
    await Note(key="k0").delete()
    expected = await state(Note)
    await past_horizon(simcord_env)
    deleted = await db.compact("note")
    assert deleted == 31
    await Note(key="late", n=99).save()
    expected["late"] = ("", 99)
    db2 = await reopen(simcord_env, db, new_db, compaction=None)
    assert await state(Note) == expected
    messages = [m async for m in simcord_env.bot.get_channel(channel_of(db2)).history(limit=None)]
    assert len(messages) == 3  # snapshot part, marker, the late batch
    # compacting again supersedes the first snapshot
    await past_horizon(simcord_env)
    await db2.compact()
    db3 = await reopen(simcord_env, db2, new_db, compaction=None)
    assert await state(Note) == expected
    assert (
        len([m async for m in simcord_env.bot.get_channel(channel_of(db3)).history(limit=None)])
        == 2
    )
    await db3.close()


async def test_compaction_runs_by_itself_after_enough_messages(simcord_env, new_db):
    db = await open_db(new_db, compaction=discobase.Compaction(min_messages=10))
    for i in range(25):
        await Note(key="same", n=i).save()
        await simcord_env.advance_time(2)  # older messages fall behind the horizon
    await db.close()  # waits for background compaction
    await simcord_env.restart_bot(make_bot())
    db2 = await open_db(new_db)
    assert await state(Note) == {"same": ("", 24)}
    messages = [m async for m in simcord_env.bot.get_channel(channel_of(db2)).history(limit=None)]
    assert len(messages) < 25
    await db2.close()


@pytest.mark.parametrize("failing", ["part", "marker", "delete"])
async def test_a_crash_during_compaction_loses_nothing(simcord_env, new_db, failing):
    db = await open_db(new_db, compaction=None)
    for i in range(12):
        await Note(key=f"k{i % 4}", n=i).save()
    expected = await state(Note)
    await past_horizon(simcord_env)
    if failing == "delete":
        simcord_env.inject_error("POST", "/channels/*/messages/bulk-delete", status=500, times=None)
    else:
        skip = 0 if failing == "part" else 1
        real_send = db.transport.send
        calls = {"n": 0}

        async def send(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] > skip:
                raise discobase.DiscordUnavailableError("POST /channels/{id}/messages", 4)
            return await real_send(*args, **kwargs)

        db.transport.send = send  # the process dies at this point of the compaction
    with pytest.raises(discobase.DiscordUnavailableError):
        await db.compact("note")
    simcord_env.backend.faults.clear()
    db.transport.send = db.transport.__class__.send.__get__(db.transport)
    db2 = await reopen(simcord_env, db, new_db, compaction=None)
    assert await state(Note) == expected
    await Note(key="k1", n=100).save()
    await past_horizon(simcord_env)
    await db2.compact()
    # the next compaction also cleans up what the interrupted one left behind
    messages = [m async for m in simcord_env.bot.get_channel(channel_of(db2)).history(limit=None)]
    assert len(messages) == 2  # one snapshot part and its marker
    db3 = await reopen(simcord_env, db2, new_db, compaction=None)
    expected["k1"] = ("", 100)
    assert await state(Note) == expected
    await db3.close()


async def test_another_process_writes_are_applied_live_and_by_sync(simcord_env, new_db):
    writer = await open_db(new_db)
    reader = new_db()  # a second process on the same guild (SimCord hosts one bot: share it)
    await reader.open()
    ReaderNote = reader.tables["note"]
    await Note(key="a", n=1).save()
    await Note(key="a", n=2).save()
    await Note.insert_many([Note(key="b", n=3), Note(key="c", n=4)])
    await simcord_env.settle()
    assert {r.key: r.n for r in await ReaderNote.find()} == {"a": 2, "b": 3, "c": 4}
    Tags = await writer.create_table("tags", {"label": str})
    await Tags(label="x").save()
    await simcord_env.settle()
    assert "tags" in reader.tables
    # a gateway outage: events are missed, then the client connects afresh (a new READY)
    reader.transport.unlisten()
    await Note(key="d", n=5).save()
    await Note(key="a").delete()
    await writer.create_table("late", {"v": int})
    assert {r.key: r.n for r in await ReaderNote.find()} == {"a": 2, "b": 3, "c": 4}
    reader.transport.listen(reader._on_message, reader._on_reconnect)
    simcord_env.bot.dispatch("ready")
    await simcord_env.settle()
    assert {r.key: r.n for r in await ReaderNote.find()} == {"b": 3, "c": 4, "d": 5}
    assert "late" in reader.tables
    # and sync() does the same on demand
    reader.transport.unlisten()
    await Note(key="e", n=6).save()
    await reader.sync()
    assert {r.key: r.n for r in await ReaderNote.find()} == {"b": 3, "c": 4, "d": 5, "e": 6}
    assert [t.label for t in await reader.tables["tags"].find()] == ["x"]
    await reader.close()
    await writer.close()


async def test_storage_is_hidden_from_members(simcord_env, new_db, guild):
    admin_role = guild.create_role("db-admin")
    db = await open_db(new_db, admin_role=admin_role.id)
    member = guild.add_member(simcord_env.create_user("member"))
    guild.add_member(simcord_env.create_user("admin"), roles=[admin_role])
    storage = simcord_env.bot.get_channel(channel_of(db))
    everyone = storage.overwrites_for(storage.guild.default_role)
    assert everyone.view_channel is False
    admins = storage.overwrites_for(storage.guild.get_role(admin_role.id))
    assert admins.view_channel is True and admins.send_messages is False
    assert storage.permissions_for(storage.guild.me).send_messages
    with pytest.raises(simcord.BackendError, match="Missing Access"):
        await member.send(guild.channels["note"], "can I write here?")
    assert await Note.count() == 0
    await db.close()


async def test_history_paging_reads_past_the_first_page(simcord_env, new_db):
    db = await open_db(new_db, compaction=None)
    for i in range(250):
        await Note(key=f"p{i}", n=i).save()
    db2 = await reopen(simcord_env, db, new_db, compaction=None)
    assert await Note.count() == 250
    pages = [c for c in rest_calls(simcord_env) if c == f"GET /channels/{channel_of(db2)}/messages"]
    assert len(pages) >= 3
    await db2.close()


async def test_unknown_guild_and_closed_database(simcord_env, fast_retry):
    db = discobase.Database(999, bot=simcord_env.bot, retry=fast_retry)
    with pytest.raises(discobase.GuildNotFoundError):
        await db.open()
    with pytest.raises(discobase.NotConnectedError):
        await db.create_table("t", {"a": str})
    assert not db.is_open


async def test_concurrent_saves_across_shards_survive_a_reload(simcord_env, new_db):
    class Hot(discobase.Table):
        n: int

        class Settings:
            shards = 4

    db = new_db()
    db.table(Hot)
    await db.open()
    assert len(db.schema("hot").channels) == 4
    await asyncio.gather(*(Hot(n=i).save() for i in range(400)))
    await Hot.insert_many([Hot(n=1000 + i) for i in range(50)])
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db2 = new_db()
    db2.table(Hot)
    await db2.open()
    assert sorted(h.n for h in await Hot.find()) == [*range(400), *range(1000, 1050)]
    await db2.close()


async def test_generated_keys_rotate_awaited_writes_and_batch_concurrent_ones(simcord_env, new_db):
    class Spread(discobase.Table):
        n: int

        class Settings:
            shards = 4

    db = new_db()
    db.table(Spread)
    await db.open()
    channels = db.schema("spread").channels
    posts = [f"POST /channels/{c}/messages" for c in channels]
    before = len(simcord_env.http_requests)
    for i in range(8):
        await Spread(n=i).save()
    calls = rest_calls(simcord_env, before)
    # each channel has its own rate limit: awaited writes take turns
    assert sorted(calls) == sorted(posts * 2)
    before = len(simcord_env.http_requests)
    await asyncio.gather(*(Spread(n=100 + i).save() for i in range(200)))
    assert len(rest_calls(simcord_env, before)) == 1  # one batch on one channel
    before = len(simcord_env.http_requests)
    await Spread.insert_many([Spread(n=1000 + i) for i in range(50)])
    # spread evenly, one message per channel, so later writes to them use every channel
    assert sorted(rest_calls(simcord_env, before)) == sorted(posts)
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db2 = new_db()
    db2.table(Spread)
    await db2.open()
    assert sorted(s.n for s in await Spread.find()) == [
        *range(8),
        *range(100, 300),
        *range(1000, 1050),
    ]
    await db2.close()


async def test_a_running_process_forgets_batch_ids_far_below_its_horizon(simcord_env, new_db):
    db = await open_db(new_db, compaction=None)
    for i in range(5):
        await Note(key=f"k{i}", n=i).save()
    history = [m async for m in simcord_env.bot.get_channel(channel_of(db)).history(limit=10)]
    first = min(history, key=lambda m: m.id)
    await Note(key="k0", n=5).save()
    shard = Note._engine().shards[0]
    assert len(shard.seen_batches) == 6
    await post(simcord_env, channel_of(db), first.content)  # a retried send stored twice
    await simcord_env.settle()
    assert (await Note.get("k0")).n == 5  # the copy of k0's first write is skipped
    await simcord_env.advance_time(BATCH_ID_MEMORY + 60)
    await Note(key="k0", n=10).save()
    await db.sync()  # a REST read moves the horizon up to the margin before now
    assert list(shard.seen_batches.values()) == list(shard.handled)  # only the last save's
    db2 = await reopen(simcord_env, db, new_db)
    assert await state(Note) == {"k0": ("", 10), **{f"k{i}": ("", i) for i in range(1, 5)}}
    await db2.close()
