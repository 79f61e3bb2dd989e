"""A table's shards as private threads of its channel: what the library does by default.

Each test runs in strict mode, which adds Discord's thread rules that SimCord leaves out
(tests/strict.py: archived threads refuse edits with 50083, a message unarchives a thread,
archived threads are not in GUILD_CREATE, the guild's cap of active threads is 160006)."""

from __future__ import annotations

import asyncio

import discord
import pytest
import simcord

import discobase
from discobase.codec import encode_catalog_event
from discobase.engine.schema import DEFAULT_SHARDS
from tests.conftest import make_bot, past_horizon, reopen, rest_calls
from tests.strict import Strict

pytestmark = pytest.mark.strict


class Note(discobase.Table):
    key: str
    n: int = 0

    class Settings:
        primary_key = "key"


class Event(discobase.Table):
    """Generated keys, library defaults."""

    text: str


async def open_notes(new_db) -> discobase.Database:
    """A database with ``Note`` registered, open, compacting only when asked."""
    db = new_db(compaction=None)
    db.table(Note)
    await db.open()
    return db


def threads_of(env: simcord.Env, parent: int) -> list[tuple[int, str, bool]]:
    """(id, name, archived) of every thread of ``parent`` SimCord holds, by id."""
    return sorted(
        (c.id, c.name, c.thread_metadata.archived)
        for c in env.backend.channels.values()
        if c.parent_id == parent and c.is_thread
    )


async def test_a_default_table_keeps_five_shards_in_private_threads_of_its_channel(
    simcord_env, guild, new_db
):
    db = new_db()
    db.table(Event)
    start = len(simcord_env.http_requests)
    await db.open()
    schema = db.schema("event")
    parent, *threads = schema.channels
    assert schema.shards == DEFAULT_SHARDS == 6 and schema.threads and len(threads) == 5
    made = [r for r in simcord_env.http_requests[start:] if r.method == "POST"]
    assert [r.path for r in made if "threads" in r.path] == [f"/channels/{parent}/threads"] * 5
    for request in made:
        if "threads" in request.path:
            assert request.json["type"] == 12  # private
            assert request.json["auto_archive_duration"] == 10080
            assert request.json["invitable"] is False
    creates = [r.json["name"] for r in made if r.path.endswith("/channels") and r.json["type"] == 0]
    assert creates == ["catalog", "event"]  # one channel for the table, none per shard
    assert threads_of(simcord_env, parent) == [
        (t, f"event-{i}", False) for i, t in enumerate(threads, 1)
    ]
    catalog = simcord_env.bot.get_channel(db._catalog.channel_id)
    [create] = [m.content async for m in catalog.history()]
    assert create.startswith("dbs3 cat ")  # readers from before threads refuse it

    for i in range(30):  # awaited one by one: they spread over the six shards
        await Event(text=f"e{i}").save()
    used = {c for c, n in simcord_env.backend.messages.items() if c in schema.channels and n}
    assert used == set(schema.channels)
    db2 = await reopen(simcord_env, db, new_db, Event)
    assert sorted(e.text for e in await Event.find()) == sorted(f"e{i}" for i in range(30))
    assert (await db2.check()).ok
    await db2.close()


async def test_archived_shard_threads_are_read_by_id_written_compacted_and_resealed(
    simcord_env, guild, new_db, strict: Strict
):
    key = discobase.EncryptionKey.generate()
    db = await open_notes(new_db)
    parent, *threads = db.schema("note").channels
    for i in range(24):
        await Note(key=f"k{i}", n=i).save()
    assert strict.archive_threads() == threads  # a week without writes
    # a new process: the gateway does not announce archived threads
    db2 = await reopen(simcord_env, db, new_db, Note)
    assert not [t for t in simcord_env.bot.get_guild(guild.id).threads if t.id in threads]
    assert {n.key: n.n for n in await Note.find()} == {f"k{i}": i for i in range(24)}
    assert db2.metrics["GET /channels/{id}"] == len(threads)  # each read by its id
    for i in range(24):
        await Note(key=f"k{i}", n=100 + i).save()  # a message unarchives its thread
    assert not any(archived for _, _, archived in threads_of(simcord_env, parent))
    strict.archive_threads()
    await past_horizon(simcord_env)
    assert await db2.compact() > 0  # snapshot parts go in, the folded log is deleted
    strict.archive_threads()
    await db2.close()
    await simcord_env.restart_bot(make_bot())
    # rotating the key edits every message in place: archived threads refuse edits (50083)
    sealed = new_db(encryption_key=key, compaction=None)
    sealed.table(Note)
    await sealed.open()
    strict.archive_threads()
    rotation = await sealed.rotate_key()
    assert rotation.done and rotation.resealed > 0
    assert {n.key: n.n for n in await Note.find()} == {f"k{i}": 100 + i for i in range(24)}
    db3 = await reopen(simcord_env, sealed, lambda: new_db(encryption_key=key), Note)
    assert {n.key: n.n for n in await Note.find()} == {f"k{i}": 100 + i for i in range(24)}
    assert (await db3.check()).ok
    await db3.close()


async def test_a_thread_create_whose_response_is_lost_is_adopted_not_made_twice(
    simcord_env, guild, new_db, strict: Strict
):
    db = new_db()
    await db.open()
    strict.lose_responses("thread_create", times=2, error="drop")
    Pets = await db.create_table("pets", {"name": str}, primary_key="name")
    parent, *threads = db.schema("pets").channels
    assert [name for _, name, _ in threads_of(simcord_env, parent)] == [
        f"pets-{i}" for i in range(1, 6)
    ]
    assert [t for t, _, _ in threads_of(simcord_env, parent)] == threads
    await Pets.insert_many([Pets(name=f"p{i}") for i in range(20)])
    assert (await db.check()).ok
    db2 = await reopen(simcord_env, db, new_db)
    assert await db2.tables["pets"].count() == 20
    await db2.close()


async def test_at_the_guilds_cap_of_active_threads_a_table_gets_channel_shards(
    simcord_env, guild, new_db, strict: Strict
):
    db = new_db()
    await db.open()
    strict.active_thread_cap = 2
    Pets = await db.create_table("pets", {"name": str}, primary_key="name")
    schema = db.schema("pets")
    assert not schema.threads and schema.shards == 6
    assert not threads_of(simcord_env, schema.channels[0])  # the two it made are deleted
    names = {c.name for c in simcord_env.bot.get_guild(guild.id).text_channels}
    assert {f"pets-{i}" for i in range(1, 6)} <= names
    await Pets.insert_many([Pets(name=f"p{i}") for i in range(20)])
    db2 = await reopen(simcord_env, db, new_db)
    assert await db2.tables["pets"].count() == 20
    assert (await db2.check()).ok
    await db2.close()


async def test_a_write_to_an_archived_thread_at_the_cap_is_a_typed_error(
    simcord_env, guild, new_db, strict: Strict
):
    db = new_db()
    db.table(Note)
    await db.open()
    channels = db.schema("note").channels
    strict.archive_threads()
    strict.active_thread_cap = 0
    stuck = None
    for key in [f"k{i}" for i in range(12)]:
        try:
            await Note(key=key, n=1).save()
        except discobase.ActiveThreadLimitError as error:
            stuck = (key, error)
            break
    assert stuck is not None, "some key lands on a thread shard"
    assert isinstance(stuck[1], discobase.DiscordRejectedError) and stuck[1].code == 160006
    assert "cap of active threads" in str(stuck[1])
    assert not await Note.find(Note.key == stuck[0])  # nothing applied
    strict.active_thread_cap = 1000
    await Note(key=stuck[0], n=2).save()
    db2 = await reopen(simcord_env, db, new_db, Note)
    assert {n.key: n.n for n in await Note.find()}[stuck[0]] == 2
    assert db2.schema("note").channels == channels
    await db2.close()


async def test_tables_with_channel_shards_and_one_shard_tables_keep_working(
    simcord_env, guild, new_db
):
    """Storage written before threads: a table of three channel shards (written by hand as
    the older version wrote it) and a one-channel table whose class sets no shards."""
    db = new_db()
    await db.open()
    Old = await db.create_table("old", {"v": int}, primary_key="v", shards=1)
    cached = simcord_env.bot.get_guild(guild.id)
    [category] = [c for c in cached.categories if c.name == "discobase"]
    made = [await db.transport.create_channel(f"legacy-{i}", category.id) for i in range(3)]
    schema = {
        "name": "legacy",
        "fields": [{"name": "key", "type": "str"}, {"name": "n", "type": "int"}],
        "primary_key": "key",
        "shards": 3,
        "channels": [str(c) for c in made],
    }
    catalog = simcord_env.bot.get_channel(db._catalog.channel_id)
    await catalog.send(encode_catalog_event({"op": "create", "table": "legacy", "schema": schema}))
    await simcord_env.settle()
    await db.sync()
    Legacy = db.tables["legacy"]
    await Legacy.insert_many([Legacy(key=f"l{i}", n=i) for i in range(12)])
    await Old(v=1).save()
    await db.close()
    # an old one-shard table opened by a class that leaves shards to the default
    await simcord_env.restart_bot(make_bot())

    class Old1(discobase.Table):
        v: int

        class Settings:
            name = "old"
            primary_key = "v"

    db2 = new_db()
    db2.table(Old1)
    await db2.open()
    assert db2.schema("old").shards == 1 and not db2.schema("old").threads
    assert [o.v for o in await Old1.find()] == [1]
    assert db2.schema("legacy").channels == made
    assert not db2.schema("legacy").threads
    assert await db2.tables["legacy"].count() == 12
    await db2.tables["legacy"](key="l0", n=99).save()
    assert (await db2.check()).ok
    await db2.drop_table("legacy")
    assert not set(made) & set(simcord_env.backend.channels)
    await db2.close()


async def test_drop_deletes_the_threads_and_check_reports_orphan_and_missing_threads(
    simcord_env, guild, new_db
):
    db = new_db()
    await db.open()
    await db.create_table("kept", {"v": int})
    await db.create_table("gone", {"v": int})
    gone_parent, *gone_threads = db.schema("gone").channels
    await db.drop_table("gone")
    assert not [c for c in gone_threads if c in simcord_env.backend.channels]
    assert gone_parent not in simcord_env.backend.channels
    parent, *threads = db.schema("kept").channels
    stray = await simcord_env.bot.get_channel(parent).create_thread(
        name="stray", type=discord.ChannelType.private_thread
    )
    report = await db.check()
    assert [(p.kind, p.channel_id) for p in report.problems] == [("orphan-channel", stray.id)]
    await stray.delete()
    await simcord_env.bot.get_channel(threads[2]).delete()  # deleted by hand
    await simcord_env.settle()
    report = await db.check()
    [missing] = [p for p in report.problems if p.kind == "foreign-channel"]
    assert str(threads[2]) in missing.detail and "deleted" in missing.detail
    # like a table whose channel was deleted: the table is refused, its other shards unused
    orphans = {p.channel_id for p in report.problems if p.kind == "orphan-channel"}
    assert orphans == {parent, *threads} - {threads[2]}
    await db.close()


async def test_two_processes_see_each_others_writes_to_thread_shards_live(
    simcord_env, guild, new_db, strict: Strict, fast_retry
):
    db = await open_notes(new_db)
    other = await strict.second_process()
    db2 = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)

    class Note2(discobase.Table):
        key: str
        n: int = 0

        class Settings:
            name = "note"
            primary_key = "key"

    db2.table(Note2)
    await db2.open()
    await Note2.insert_many([Note2(key=f"k{i}", n=i) for i in range(18)])
    await simcord_env.settle()  # gateway MESSAGE_CREATE of the threads reach the first
    assert {n.key: n.n for n in await Note.find()} == {f"k{i}": i for i in range(18)}
    for i in range(6):
        await Note(key=f"k{i}", n=50 + i).save()
    await simcord_env.settle()
    assert {n.key: n.n for n in await Note2.find() if n.n >= 50} == {
        f"k{i}": 50 + i for i in range(6)
    }
    await db2.close()
    await db.close()


async def test_a_create_race_leaves_one_set_of_threads(
    simcord_env, guild, strict: Strict, fast_retry
):
    """Two processes create the same table at once: the loser's channel and threads go."""
    first = discobase.Database(guild.id, bot=simcord_env.bot, retry=fast_retry)
    await first.open()
    other = await strict.second_process()
    second = discobase.Database(guild.id, bot=other.bot, retry=fast_retry)
    await second.open()
    strict.hold_gateway()
    strict.hold_gateway(other)
    made = await asyncio.gather(
        first.create_table("race", {"v": int}, primary_key="v"),
        second.create_table("race", {"v": int}, primary_key="v"),
        return_exceptions=True,
    )
    strict.release_gateway()
    strict.release_gateway(other)
    await simcord_env.settle()
    for table in made:
        if not isinstance(table, BaseException):
            await table(v=len(str(table))).save()
    await simcord_env.settle()
    await first.sync()
    await second.sync()
    await simcord_env.settle()
    kept = first.schema("race").channels
    assert second.schema("race").channels == kept
    parents = [
        c.id for c in simcord_env.backend.channels.values() if c.name == "race" and not c.is_thread
    ]
    assert parents == [kept[0]]
    leftover = [
        c.id for c in simcord_env.backend.channels.values() if c.is_thread and c.id not in kept
    ]
    assert leftover == []
    report = await first.check()
    assert not [p for p in report.problems if p.kind != "duplicate-create"]
    await second.close()
    await first.close()


async def test_the_bot_needs_the_thread_permissions(simcord_env, guild, new_db):
    roles = simcord_env.backend.guilds[guild.id].roles
    member = simcord_env.backend.guilds[guild.id].members[simcord_env.bot.user.id]
    for role_id in member.role_ids:
        roles[role_id].permissions &= ~discord.Permissions(manage_threads=True).value
    everyone = roles[guild.id]
    everyone.permissions &= ~discord.Permissions(manage_threads=True).value
    await simcord_env.restart_bot(make_bot())
    db = new_db()
    with pytest.raises(discobase.MissingPermissionsError) as raised:
        await db.open()
    assert "manage_threads" in str(raised.value)
    assert not [r for r in rest_calls(simcord_env) if r.startswith("POST")]  # nothing made


async def test_a_create_naming_threads_of_another_channel_never_uses_them(
    simcord_env, guild, new_db
):
    """Even written with the bot's own token, a thread table's threads must be private threads
    of its own first channel: not another table's, not another guild's."""
    db = new_db()
    await db.open()
    await db.create_table("real", {"v": int})
    real_thread = db.schema("real").channels[1]
    victim = simcord_env.create_guild("victim")
    made = victim.create_text_channel("general")
    await simcord_env.settle()
    general = simcord_env.bot.get_channel(made.id)
    outside = await general.create_thread(name="x", type=discord.ChannelType.private_thread)
    await outside.send("the victim's thread")
    catalog = simcord_env.bot.get_channel(db._catalog.channel_id)
    fields = [{"name": "v", "type": "int"}]
    for name, channels in (
        ("borrowed", [db._catalog.channel_id, real_thread]),  # another channel's thread
        ("stolen", [db.schema("real").channels[0], outside.id]),  # another guild's
    ):
        schema = {"name": name, "fields": fields, "shards": 2, "threads": True}
        schema["channels"] = [str(c) for c in channels]
        await catalog.send(encode_catalog_event({"op": "create", "table": name, "schema": schema}))
    await simcord_env.settle()
    await db.sync()
    assert set(db.tables) == {"real"}
    refused = [p for p in (await db.check()).problems if p.kind == "foreign-channel"]
    assert [str(real_thread) in p.detail for p in refused] == [True, False]
    assert str(outside.id) in refused[1].detail
    assert [m.content async for m in outside.history()] == ["the victim's thread"]
    await db.close()


async def test_shards_that_archive_while_open_keep_their_table_when_the_catalog_changes(
    simcord_env, guild, new_db, strict: Strict, fast_retry
):
    db = await open_notes(new_db)
    await Note(key="a", n=1).save()
    db = await reopen(simcord_env, db, new_db, Note)  # it learnt the threads from the gateway
    strict.archive_threads()  # a week later: discord.py drops them from its cache
    await simcord_env.settle()
    other = await strict.second_process()
    there = discobase.Database(guild.id, bot=other.bot, retry=fast_retry)
    await there.open()
    before = db.metrics.get("GET /channels/{id}", 0)
    await there.create_table("other", {"v": int})  # a catalog event reaches this process
    await simcord_env.settle()
    assert set(db.tables) == {"note", "other"}
    assert db.metrics.get("GET /channels/{id}", 0) == before  # nothing to confirm by REST
    assert {n.key: n.n for n in await Note.find()} == {"a": 1}
    await Note(key="b", n=2).save()
    await there.close()
    await db.close()


async def test_a_thread_create_that_meets_a_long_rate_limit_waits_it_out(
    simcord_env, guild, new_db, strict: Strict
):
    """Thread creates have been answered with minutes of retry_after: discord.py sleeps them
    inside the request, beyond the transport's per-exchange timeout, and makes one thread."""
    db = new_db()
    await db.open()
    strict.rate_limit("thread_create", retry_after=240.0)
    Pets = await db.create_table("pets", {"name": str}, primary_key="name")
    assert [(route, seconds) for route, seconds, why in strict.waits if why == "429"] == [
        (f"POST /channels/{db.schema('pets').channels[0]}/threads", 240.0)
    ]
    parent = db.schema("pets").channels[0]
    assert len(threads_of(simcord_env, parent)) == 5
    await Pets(name="rex").save()
    assert (await db.check()).ok
    await db.close()


@pytest.mark.parametrize("threads", [True, False], ids=["thread-shard", "channel-shard"])
async def test_a_table_missing_one_shard_is_refused_never_replaced_by_an_empty_one(
    simcord_env, guild, new_db, strict: Strict, threads
):
    """An admin deletes one shard by hand: opening the declared class raises a typed error
    naming the table and the shard, and makes nothing; the other shards keep their records."""
    if not threads:
        strict.active_thread_cap = 0  # the shards are channels, as older versions made them
    db = await open_notes(new_db)
    for i in range(12):
        await Note(key=f"k{i}", n=i).save()
    channels = db.schema("note").channels
    assert db.schema("note").threads is threads
    await simcord_env.bot.get_channel(channels[2]).delete()
    await simcord_env.settle()
    await db.close()
    await simcord_env.restart_bot(make_bot())
    existing = set(simcord_env.backend.channels)
    db2 = new_db(compaction=None)
    db2.table(Note)
    with pytest.raises(discobase.TableShardsMissingError) as raised:
        await db2.open()
    assert raised.value.table == "note" and str(channels[2]) in str(raised.value)
    assert isinstance(raised.value, discobase.StorageCorruptError)
    assert set(simcord_env.backend.channels) == existing  # no new table was made
    db3 = new_db(compaction=None)
    await db3.open()  # without the class: the table is left out and reported
    assert "note" not in db3.tables
    [refused] = [p for p in (await db3.check()).problems if p.kind == "foreign-channel"]
    assert refused.table == "note" and str(channels[2]) in refused.detail
    assert set(simcord_env.backend.channels) == existing
    # giving the records up is explicit: a create makes a new table of that name
    await db3.create_table("note", {"key": str, "n": int}, primary_key="key")
    await db3.close()
    db4 = new_db(compaction=None)
    db4.table(Note)
    await db4.open()
    assert await Note.find() == [] and db4.schema("note").channels[0] not in channels
    await db4.close()


async def test_sync_attaches_a_table_whose_threads_archived_while_disconnected(
    simcord_env, guild, new_db, strict: Strict, fast_retry
):
    """Another process creates a table while this one's session is down, and its threads
    archive before the new session's READY (archived threads are in no GUILD_CREATE): sync()
    confirms them by id and attaches the table, with its acknowledged records."""
    db = new_db(compaction=None)
    await db.open()
    other = await strict.second_process()
    there = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
    await there.open()
    strict.hold_gateway()
    fresh = await there.create_table("fresh", {"v": int}, primary_key="v")
    for i in range(6):
        await fresh(v=i).save()
    strict.archive_threads()
    strict.drop_gateway()
    await simcord_env.settle()
    await db.sync()
    assert "fresh" in db.tables
    assert sorted(r.v for r in await db.tables["fresh"].find()) == list(range(6))
    assert db.schema("fresh").channels == there.schema("fresh").channels
    assert (await db.check()).ok
    await there.close()
    await db.close()


async def test_a_write_to_a_thread_a_moderator_archived_and_locked_unlocks_it(
    simcord_env, guild, new_db, strict: Strict
):
    """A locked archived thread refuses messages (160005, no auto-unarchive): the bot, which
    has Manage Threads, unlocks and unarchives it and writes; every write lands once."""
    db = await open_notes(new_db)
    threads = db.schema("note").channels[1:]
    for thread in threads:
        simcord_env.backend.edit_channel(
            thread, {}, thread_metadata={"archived": True, "locked": True}
        )
    await simcord_env.settle()
    for i in range(12):
        await Note(key=f"k{i}", n=i).save()
    written = {t for t in threads if simcord_env.backend.messages.get(t)}
    assert written, "some key lands on a thread shard"
    for thread in written:
        meta = simcord_env.backend.channels[thread].thread_metadata
        assert not meta.archived and not meta.locked
    db2 = await reopen(simcord_env, db, new_db, Note)
    assert {n.key: n.n for n in await Note.find()} == {f"k{i}": i for i in range(12)}
    await db2.close()


def stored_text(env: simcord.Env, channels: list[int]) -> str:
    """Every message's content in ``channels``, as SimCord holds them."""
    return "\n".join(m.content for c in channels for m in env.backend.messages.get(c, {}).values())


@pytest.mark.parametrize("notice", ["thread-delete", "unknown-channel", "channel-delete"])
async def test_a_shard_thread_deleted_while_the_process_runs_leaves_the_table_out_as_open_does(
    simcord_env, guild, new_db, strict: Strict, notice
):
    """Someone deletes a shard thread while the process runs. It notices (the THREAD_DELETE
    event; or, having missed it, Discord's 404 Unknown Channel to a write), sends the writes
    it holds for the other shards, and leaves the table out as a new process would. A shard
    that is a channel (as older versions made them) is noticed by its CHANNEL_DELETE."""
    if notice == "channel-delete":
        strict.active_thread_cap = 0  # the shards are channels
    db = await open_notes(new_db)
    for i in range(12):
        await Note(key=f"k{i}", n=i).save()
    parent, *threads = db.schema("note").channels
    assert db.schema("note").threads is (notice != "channel-delete")
    gone = threads[1]
    if notice == "unknown-channel":
        strict.hold_gateway()  # the THREAD_DELETE does not arrive
    simcord_env.backend.delete_channel(gone)
    await simcord_env.settle()
    written: set[str] = set()
    if notice == "unknown-channel":
        assert db.unusable_tables == {}  # nothing noticed yet
        outcomes = await asyncio.gather(
            *(Note(key=f"w{i}", n=i).save() for i in range(24)), return_exceptions=True
        )
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        assert failed, "some key lands on the deleted thread"
        assert all(isinstance(e, discobase.TableShardsMissingError) for e in failed)
        written = {f"w{i}" for i, o in enumerate(outcomes) if not isinstance(o, BaseException)}
        assert written, "the other shards take theirs"
        strict.release_gateway()  # the event, late, changes nothing more
        await simcord_env.settle()

    assert list(db.unusable_tables) == ["note"] and str(gone) in db.unusable_tables["note"]
    for verb in (Note.find(), Note.get("k0"), Note(key="x", n=1).save(), Note.count()):
        with pytest.raises(discobase.TableShardsMissingError) as raised:
            await verb
        assert raised.value.table == "note"
    stored = stored_text(simcord_env, [parent, *threads])
    assert all(f'"put":"{key}"' in stored for key in written)  # acknowledged, so kept
    assert '"put":"x"' not in stored
    others = new_db(compaction=None)
    await others.open()  # the table is in the state a new process finds it in
    assert others.unusable_tables == db.unusable_tables and "note" not in others.tables
    await others.close()
    await db.close()


async def test_a_database_opened_again_leaves_out_a_table_whose_shard_went_while_closed(
    simcord_env, guild, new_db
):
    db = await open_notes(new_db)
    Cats = await db.create_table("cats", {"name": str}, primary_key="name")
    await Cats(name="tom").save()
    await Note(key="x", n=1).save()
    gone = db.schema("cats").channels[2]
    await db.close()
    simcord_env.backend.delete_channel(gone)  # while this database is closed
    await simcord_env.settle()

    await db.open()  # the same Database object, as a new one would

    assert list(db.unusable_tables) == ["cats"] and str(gone) in db.unusable_tables["cats"]
    assert "cats" not in db.tables
    assert [n.key for n in await Note.find()] == ["x"]
    await db.close()


async def test_sync_catches_up_every_other_table_past_one_whose_shard_was_deleted(
    simcord_env, guild, new_db, strict: Strict, fast_retry
):
    db = await open_notes(new_db)  # "note" is attached first: sync() reaches it first
    Cats = await db.create_table("cats", {"name": str}, primary_key="name")
    await Note(key="a", n=1).save()
    other = await strict.second_process()
    writer = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
    await writer.open()
    strict.hold_gateway()  # this process hears neither the write nor the deletion
    await writer.tables["cats"](name="tom").save()
    gone = db.schema("note").channels[1]
    simcord_env.backend.delete_channel(gone)
    await simcord_env.settle()
    assert [c.name for c in await Cats.find()] == []

    missing = await db.sync()

    assert list(missing) == ["note"] and str(gone) in missing["note"]
    assert [c.name for c in await Cats.find()] == ["tom"]  # caught up all the same
    await simcord_env.settle()
    assert list(db.unusable_tables) == ["note"]
    with pytest.raises(discobase.TableShardsMissingError):
        await Note.get("a")
    assert await db.sync() == {}  # the table is left out: nothing more to report
    strict.release_gateway()
    await simcord_env.settle()
    assert [c.name for c in await Cats.find()] == ["tom"]
    await writer.close()
    await db.close()


async def test_check_reports_a_shard_deleted_while_its_event_is_on_the_way_and_changes_nothing(
    simcord_env, guild, new_db, strict: Strict
):
    db = await open_notes(new_db)
    await Note(key="a", n=1).save()
    gone = db.schema("note").channels[1]
    strict.hold_gateway()  # the THREAD_DELETE has not arrived yet
    simcord_env.backend.delete_channel(gone)
    await simcord_env.settle()

    report = await db.check()

    [refused] = [p for p in report.problems if p.kind == "foreign-channel"]
    assert refused.table == "note" and str(gone) in refused.detail
    assert db.unusable_tables == {}  # a check changes nothing: the table is still attached
    assert "note" in db.tables and db.schema("note").record_count == 1
    strict.release_gateway()
    await simcord_env.settle()
    assert list(db.unusable_tables) == ["note"]  # the event, once it arrives, leaves it out
    await db.close()
