"""Growing an existing table's shard count: ``Database.reshard``.

The records move to the new shards with their versions; every acknowledged write survives a
crash at any step and writes of other processes made meanwhile (following the new layout or
not yet); another process follows the new layout from the catalog."""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any

import pytest
import simcord

import discobase
from tests.conftest import make_bot, past_horizon
from tests.strict import Strict


class Item(discobase.Table):
    key: str
    n: int = 0

    class Settings:
        primary_key = "key"
        indexes = ["n"]


async def open_db(new_db, **options: Any) -> discobase.Database:
    db = new_db(**options)
    db.table(Item)
    await db.open()
    return db


async def state(table: Any) -> dict[str, int]:
    return {r.key: r.n for r in await table.find()}


async def one_shard_table(env: simcord.Env, db: discobase.Database, name: str, records: int) -> Any:
    """A table of one shard, as discobase made it before threads (or with shards=1), with a
    snapshot, a log after it, updates and deletes."""
    table = await db.create_table(name, {"key": str, "n": int}, primary_key="key", shards=1)
    await table.insert_many([table(key=f"k{i}", n=i) for i in range(records)])
    await past_horizon(env)
    await db.compact(name)  # the records are in a snapshot
    for i in range(0, records, 3):
        await table(key=f"k{i}", n=1000 + i).save()  # updates in the log
    for i in range(1, records, 7):
        await (await table.get(f"k{i}")).delete()
    return table


async def reopened(env: simcord.Env, new_db, **options: Any) -> discobase.Database:
    """A new process on the same guild (the old one died: it is not closed)."""
    await env.restart_bot(make_bot())
    db = new_db(**options)
    await db.open()
    return db


async def test_a_table_of_one_shard_grows_to_six_and_keeps_every_record(simcord_env, new_db):
    db = new_db(compaction=None)
    await db.open()
    table = await one_shard_table(simcord_env, db, "items", 120)
    expected = await state(table)
    channel = db.schema("items").channels[0]
    await db.reshard("items", shards=6)
    schema = db.schema("items")
    assert schema.shards == 6 and schema.threads and schema.channels[0] == channel
    assert schema.resharding is None
    assert await state(table) == expected
    # Each record is now in its shard: writes of one key go through one thread
    for shard, channel_id in enumerate(schema.channels):
        held = simcord_env.backend.messages.get(channel_id, {})
        assert held, f"shard {shard} holds nothing"
    await db.close()
    db2 = await reopened(simcord_env, new_db, compaction=None)
    again = db2.tables["items"]
    assert await state(again) == expected
    assert (await db2.check()).ok
    await db2.close()


async def test_a_reshard_to_the_count_the_table_has_says_there_is_nothing_to_do(
    simcord_env, new_db
):
    db = new_db(compaction=None)
    await db.open()
    table = await one_shard_table(simcord_env, db, "same", 20)
    expected = await state(table)
    schema = db.schema("same")
    calls = dict(db.metrics)
    assert await db.reshard("same", shards=1) is False  # nothing read, nothing written
    assert db.metrics == calls
    assert db.schema("same") == schema and await state(table) == expected
    assert await db.reshard("same", shards=2) is True
    calls = dict(db.metrics)
    assert await db.reshard("same", shards=2) is False
    assert db.metrics == calls
    assert db.schema("same").shards == 2 and await state(table) == expected
    await db.close()


#: The transport calls that change what Discord stores.
MUTATIONS = ("send", "create_thread", "create_channel", "delete_channel", "delete_messages")


def die_at(
    db: discobase.Database, cut: int | None, made: list[str], after: str | None = None
) -> None:
    """The process dies at its ``cut``-th request that changes storage (counted in ``made``),
    or at the first one after a request ``after``: that one and every later one never reach
    Discord. Neither: none fails."""
    for name in MUTATIONS:
        real = getattr(db.transport, name)

        async def request(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            if (cut is not None and len(made) >= cut) or (after is not None and after in made):
                raise discobase.DiscordUnavailableError(_name, 1)
            made.append(_name)
            return await _real(*args, **kwargs)

        setattr(db.transport, name, request)


async def test_a_crash_at_any_step_of_a_reshard_loses_nothing_and_running_it_again_finishes(
    simcord_env, new_db
):
    db = new_db(compaction=None)
    await db.open()
    await one_shard_table(simcord_env, db, "whole", 60)
    steps: list[str] = []
    die_at(db, None, steps)
    await db.reshard("whole", shards=6)
    # five threads, the reshard's start, the records moved into each new thread, the old
    # shard's snapshot (a part and its marker), the log it folded deleted, the reshard's end
    assert steps == [
        *["create_thread"] * 5, "send", *["send"] * 5, "send", "send", "delete_messages", "send",
    ]  # fmt: skip
    for cut in range(len(steps)):
        name = f"cut{cut}"
        db = await reopened(simcord_env, new_db, compaction=None)
        table = await one_shard_table(simcord_env, db, name, 60)
        expected = await state(table)
        die_at(db, cut, [])
        with pytest.raises(discobase.DiscordUnavailableError):
            await db.reshard(name, shards=6)
        db = await reopened(simcord_env, new_db, compaction=None)  # it was not closed: it died
        table = db.tables[name]
        assert await state(table) == expected, cut
        await table(key="meanwhile", n=-1).save()
        expected["meanwhile"] = -1
        await db.reshard(name, shards=6)  # again: it finishes
        schema = db.schema(name)
        assert (schema.shards, schema.resharding) == (6, None)
        assert await state(table) == expected, cut
        await past_horizon(simcord_env)
        await db.compact(name)  # the move is over: the old shard keeps only its own records
        db = await reopened(simcord_env, new_db, compaction=None)
        assert await state(db.tables[name]) == expected, cut
        report = await db.check()
        assert report.ok, (cut, str(report))
    await db.close()


async def other_process(strict: Strict, guild, fast_retry) -> tuple[discobase.Database, Any]:
    """Another process of the database (its own client, gateway and snowflake worker)."""
    process = await strict.second_process()
    db = discobase.Database(guild.id, bot=process.bot, retry=fast_retry, compaction=None)
    await db.open()
    return db, process


async def in_two_processes(
    env: simcord.Env, new_db, guild, strict: Strict, fast_retry, name: str, records: int
) -> tuple[discobase.Database, discobase.Database, Any]:
    """A table of one shard (:func:`one_shard_table`) open in this process and another."""
    db = new_db(compaction=None)
    await db.open()
    await one_shard_table(env, db, name, records)
    other, process = await other_process(strict, guild, fast_retry)
    await env.advance_time(1)  # its snowflake worker's clock runs 5 ms behind ours
    return db, other, process


async def test_another_process_writing_throughout_follows_the_new_layout_and_loses_nothing(
    simcord_env, new_db, guild, strict: Strict, fast_retry
):
    db, other, _ = await in_two_processes(
        simcord_env, new_db, guild, strict, fast_retry, "shared", 60
    )
    theirs = other.tables["shared"]
    acknowledged: dict[str, int] = {}
    resharded = asyncio.Event()

    async def write_throughout() -> None:
        i = 0
        while not resharded.is_set() or i < 40:  # before, during and after
            key = f"k{i % 80}"  # updates of moving records and new ones
            await theirs(key=key, n=-i).save()
            acknowledged[key] = -i
            i += 1

    writing = asyncio.ensure_future(write_throughout())
    await asyncio.sleep(0)
    await db.reshard("shared", shards=6)
    resharded.set()
    await writing
    await simcord_env.settle()
    assert other.schema("shared").shards == 6  # it followed the catalog
    assert other.schema("shared").resharding is None
    mine = await state(db.tables["shared"])
    assert acknowledged.items() <= mine.items()
    assert await state(theirs) == mine
    # its writes after the reshard went to the new threads
    new_threads = set(db.schema("shared").channels[1:])
    posted = [
        r.path.split("/")[2]
        for r in simcord_env.http_requests
        if r.method == "POST" and r.path.endswith("/messages")
    ]
    assert new_threads & {int(c) for c in posted[-20:]}
    await other.close()
    await past_horizon(simcord_env)
    await db.compact("shared")
    db = await reopened(simcord_env, new_db, compaction=None)
    assert await state(db.tables["shared"]) == mine
    await db.close()


async def test_writes_of_a_process_that_has_not_heard_of_the_reshard_are_moved_not_lost(
    simcord_env, new_db, guild, strict: Strict, fast_retry
):
    db, other, process = await in_two_processes(
        simcord_env, new_db, guild, strict, fast_retry, "late", 30
    )
    strict.hold_gateway(process)
    await db.reshard("late", shards=6)
    theirs = other.tables["late"]
    assert other.schema("late").shards == 1  # it has not heard: it writes the old layout
    for i in range(30):
        await theirs(key=f"k{i}", n=500 + i).save()  # all into the table's channel
    await simcord_env.settle()
    expected = await state(db.tables["late"])
    assert expected == {f"k{i}": 500 + i for i in range(30)}
    await past_horizon(simcord_env)
    # The table's channel compacts first: it folds their writes (those of other shards move
    # there first), then the process dies before the other shards compact.
    die_at(db, None, [], after="delete_messages")
    with pytest.raises(discobase.DiscordUnavailableError):
        await db.compact("late")
    db = await reopened(simcord_env, new_db, compaction=None)
    assert await state(db.tables["late"]) == expected
    strict.release_gateway(process)
    await simcord_env.settle()
    assert other.schema("late").shards == 6  # and it follows once it hears
    await other.close()
    await db.close()


async def test_a_watcher_sees_each_write_once_and_no_change_for_records_that_moved(
    simcord_env, new_db
):
    db = new_db(compaction=None)
    await db.open()
    table = await db.create_table("watched", {"key": str, "n": int}, primary_key="key", shards=1)
    start = await table(key="start", n=0).save()
    for i in range(12):
        await table(key=f"k{i}", n=i).save()
    feed = table.watch(after=start.revision)
    await past_horizon(simcord_env)
    await db.reshard("watched", shards=6)  # most move, with their versions
    await table(key="new", n=-1).save()
    await past_horizon(simcord_env)
    seen = [(change.op, change.key) for change in [await anext(feed) for _ in range(13)]]
    assert seen == [*(("insert", f"k{i}") for i in range(12)), ("insert", "new")]
    await db.close()


async def test_two_processes_resharding_at_once_end_with_one_layout_and_every_record(
    simcord_env, new_db, guild, strict: Strict, fast_retry
):
    db, other, process = await in_two_processes(
        simcord_env, new_db, guild, strict, fast_retry, "race", 40
    )
    expected = await state(db.tables["race"])
    parent = db.schema("race").channels[0]
    strict.hold_gateway()
    strict.hold_gateway(process)
    outcomes = await asyncio.gather(
        db.reshard("race", shards=6), other.reshard("race", shards=2), return_exceptions=True
    )
    strict.release_gateway()
    strict.release_gateway(process)
    await simcord_env.settle()
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], discobase.SchemaError), outcomes
    schema = db.schema("race")
    assert schema.shards == (6 if outcomes[0] is None else 2) and schema.resharding is None
    assert other.schema("race").channels == schema.channels  # both follow the winner
    threads = sorted(c.id for c in simcord_env.backend.channels.values() if c.parent_id == parent)
    assert threads == sorted(schema.channels[1:])  # the loser's threads are gone
    assert await state(db.tables["race"]) == expected
    assert await state(other.tables["race"]) == expected
    await other.close()
    db = await reopened(simcord_env, new_db, compaction=None)
    assert await state(db.tables["race"]) == expected
    report = await db.check()
    # the reshard that lost stays in the catalog, skipped
    assert [(p.kind, "does not follow" in p.detail) for p in report.problems] == [
        ("unreadable", True)
    ]
    await db.close()


async def test_while_records_move_a_unique_value_is_claimed_where_either_layout_looks(
    simcord_env, new_db, guild, strict: Strict, fast_retry
):
    db = new_db(compaction=None)
    await db.open()
    await db.create_table(
        "members",
        {"key": str, "email": str},
        primary_key="key",
        unique=["email"],
        shards=1,
        claim_unique=True,
    )
    other, process = await other_process(strict, guild, fast_retry)
    strict.hold_gateway(process)  # it will not hear of the reshard
    # a value whose claim goes to a new shard: crc32 of its JSON (format.md, claims)
    email = next(
        f"v{i}@example.com"
        for i in range(100)
        if zlib.crc32(json.dumps(["email", f"v{i}@example.com"]).encode()) % 6
    )
    die_at(db, 6, [])  # threads and the reshard's start, then the process dies
    with pytest.raises(discobase.DiscordUnavailableError):
        await db.reshard("members", shards=6)
    db = await reopened(simcord_env, new_db, compaction=None)
    assert db.schema("members").resharding == 1  # the move is under way
    strict.hold_gateway()
    mine = asyncio.ensure_future(db.tables["members"](key="a", email=email).save())
    await simcord_env.settle()
    await simcord_env.advance_time(1)  # its claim comes first
    theirs = asyncio.ensure_future(other.tables["members"](key="b", email=email).save())
    await simcord_env.settle()
    assert not mine.done() and not theirs.done()  # each waits for its claim to settle
    strict.release_gateway()
    await past_horizon(simcord_env)  # every claim settles
    await db.sync()
    outcomes = await asyncio.gather(mine, theirs, return_exceptions=True)
    # the other process reads claims in the table's channel only (it has not heard of the
    # reshard): ours is there too
    strict.release_gateway(process)
    assert not isinstance(outcomes[0], BaseException), outcomes
    assert isinstance(outcomes[1], discobase.UniqueViolationError), outcomes
    await db.reshard("members", shards=6)
    holders = [m.key for m in await db.tables["members"].find() if m.email == email]
    assert holders == ["a"]
    await other.close()
    await db.close()


async def test_at_the_guilds_cap_of_active_threads_a_reshard_changes_nothing(
    simcord_env, new_db, strict: Strict
):
    db = new_db(compaction=None)
    await db.open()
    table = await one_shard_table(simcord_env, db, "capped", 20)
    expected = await state(table)
    before = db.schema("capped").to_dict()
    strict.active_thread_cap = len(simcord_env.backend.active_threads(db.guild_id)) + 2
    with pytest.raises(discobase.ActiveThreadLimitError):
        await db.reshard("capped", shards=6)
    assert db.schema("capped").to_dict() == before
    parent = db.schema("capped").channels[0]
    assert not [c for c in simcord_env.backend.channels.values() if c.parent_id == parent]
    assert await state(table) == expected
    strict.active_thread_cap = 1000
    await db.reshard("capped", shards=6)  # once there is room
    assert db.schema("capped").shards == 6
    assert await state(table) == expected
    await db.close()


async def test_an_encrypted_table_grows_and_reads_back_with_its_key(simcord_env, new_db):
    key = discobase.EncryptionKey.generate()
    db = new_db(compaction=None, encryption_key=key)
    await db.open()
    table = await one_shard_table(simcord_env, db, "sealed", 30)
    expected = await state(table)
    await db.reshard("sealed", shards=6)
    catalog = [m.content for m in simcord_env.backend.messages[db._catalog.channel_id].values()]
    assert all(c.startswith("dbs2 sealed ") for c in catalog)  # the reshard's events too
    db = await reopened(simcord_env, new_db, compaction=None, encryption_key=key)
    assert db.schema("sealed").shards == 6
    assert await state(db.tables["sealed"]) == expected
    assert (await db.check()).ok
    await db.close()


def shard_of(key: Any, shards: int) -> int:
    """The shard a key's records go to (format.md: crc32 of its JSON)."""
    return zlib.crc32(json.dumps(key).encode()) % shards


async def test_a_record_deleted_after_a_reshard_stopped_midway_stays_deleted(simcord_env, new_db):
    # The old shard's snapshot from before the reshard still holds every moved record at its
    # old version: a delete in a new shard must survive that shard's compaction.
    db = new_db(compaction=None)
    await db.open()
    table = await one_shard_table(simcord_env, db, "res", 60)
    expected = await state(table)
    steps: list[str] = []
    die_at(db, 11, steps)  # 5 threads, the start, 5 move batches: the old shard's snapshot fails
    with pytest.raises(discobase.DiscordUnavailableError):
        await db.reshard("res", shards=6)
    assert steps[-5:] == ["send"] * 5
    db = await reopened(simcord_env, new_db, compaction=discobase.Compaction(min_messages=3))
    table = db.tables["res"]
    assert db.schema("res").resharding == 1
    victim = next(key for key in sorted(expected) if shard_of(key, 6) != 0)
    await (await table.get(victim)).delete()
    del expected[victim]
    await past_horizon(simcord_env)
    # More writes into the victim's new shard: its own compaction folds the delete.
    new_shard = shard_of(victim, 6)
    for key in [f"x{i}" for i in range(200) if shard_of(f"x{i}", 6) == new_shard][:4]:
        await table(key=key, n=7).save()
        expected[key] = 7
    await simcord_env.settle()
    await db.flush()
    await simcord_env.settle()
    assert await state(table) == expected
    db = await reopened(simcord_env, new_db, compaction=None)
    assert await state(db.tables["res"]) == expected
    await db.reshard("res", shards=6)  # finishes the move
    await past_horizon(simcord_env)
    await db.compact("res")
    db = await reopened(simcord_env, new_db, compaction=None)
    assert db.schema("res").resharding is None
    assert await state(db.tables["res"]) == expected


async def test_a_reshard_over_another_process_s_snapshot_finishes_after_a_reopen(
    simcord_env, new_db, guild, strict, fast_retry
):
    # A script compacted the table since the bot loaded it: the bot's compaction leaves that
    # snapshot alone (it holds the moved records), so its reshard cannot end there.
    db = new_db(compaction=None)
    await db.open()
    table = await one_shard_table(simcord_env, db, "fs", 40)
    other, _ = await other_process(strict, guild, fast_retry)
    await past_horizon(simcord_env)
    await other.compact("fs")
    await other.close()
    await simcord_env.settle()
    expected = await state(table)
    with pytest.raises(discobase.SchemaError, match="another process compacted shards"):
        await db.reshard("fs", shards=4)
    assert db.schema("fs").resharding == 1
    assert await state(table) == expected
    victim = next(key for key in sorted(expected) if shard_of(key, 4))
    await (await table.get(victim)).delete()
    del expected[victim]
    await past_horizon(simcord_env)
    await db.compact("fs")
    db = await reopened(simcord_env, new_db, compaction=None)
    assert await state(db.tables["fs"]) == expected
    await db.reshard("fs", shards=4)
    assert db.schema("fs").resharding is None
    await past_horizon(simcord_env)
    await db.compact("fs")
    db = await reopened(simcord_env, new_db, compaction=None)
    assert await state(db.tables["fs"]) == expected


async def test_a_reshard_without_the_thread_permissions_is_refused_and_changes_nothing(
    simcord_env, new_db, guild
):
    db = new_db(compaction=None)
    await db.open()
    table = await one_shard_table(simcord_env, db, "perm", 20)
    expected = await state(table)
    channel = simcord_env.bot.get_channel(db.schema("perm").channels[0])
    me = simcord_env.bot.get_guild(guild.id).me
    own = channel.overwrites_for(me)
    own.update(send_messages_in_threads=False)
    await channel.set_permissions(me, overwrite=own)
    await simcord_env.settle()
    db = await reopened(simcord_env, new_db, compaction=None)  # one channel: it opens
    with pytest.raises(discobase.MissingPermissionsError, match="send_messages_in_threads"):
        await db.reshard("perm", shards=4)
    assert db.schema("perm").shards == 1
    assert not [c for c in simcord_env.backend.channels.values() if c.parent_id == channel.id]
    db = await reopened(simcord_env, new_db, compaction=None)
    assert await state(db.tables["perm"]) == expected
