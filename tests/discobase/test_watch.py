"""The change feed (``Table.watch``): every insert, update and delete in log order, once
settled; positions that resume without gaps in a new process; a bounded history
(docs/library.md, "Change feed")."""

from __future__ import annotations

import asyncio

import pytest

import discobase
from discobase.engine.feed import FEED_HISTORY
from tests.conftest import make_bot, past_horizon


class Doc(discobase.Table):
    key: str
    n: int = 0

    class Settings:
        primary_key = "key"
        shards = 1  # one channel (Spread covers several shards)


class Spread(discobase.Table):
    key: str
    n: int = 0

    class Settings:
        primary_key = "key"
        shards = 2


async def open_with(new_db, cls: type[discobase.Table] | None = Doc, **options):
    options.setdefault("compaction", None)
    db = new_db(**options)
    if cls is not None:
        db.table(cls)
    await db.open()
    return db


async def settled(env, *dbs: discobase.Database) -> None:
    """Time passes the horizon margin and each process reads its tables: all is settled."""
    await past_horizon(env)
    for db in dbs:
        await db.sync()


async def take(watch, count: int) -> list[discobase.Change]:
    """The next ``count`` changes, which must be ready (the guard only turns a hang into a
    failure)."""
    return [await asyncio.wait_for(anext(watch), 10) for _ in range(count)]


def summary(changes) -> list[tuple[str, str, int]]:
    return [(c.op, c.key, c.record.n) for c in changes]


async def test_a_watch_yields_inserts_updates_and_deletes_once_settled(simcord_env, new_db):
    db = await open_with(new_db)
    watch = Doc.watch()
    doc = await Doc(key="a", n=1).save()
    await doc.update(n=2)
    await doc.delete()
    pending = asyncio.ensure_future(anext(watch))
    await simcord_env.settle()
    assert not pending.done()  # not settled yet: an earlier id could still arrive
    await settled(simcord_env, db)
    first = await asyncio.wait_for(pending, 10)
    changes = [first, *await take(watch, 2)]
    assert summary(changes) == [("insert", "a", 1), ("update", "a", 2), ("delete", "a", 2)]
    insert, update, delete = changes
    assert insert.previous is None and update.previous.n == 1 and delete.previous.n == 2
    assert insert.position < update.position < delete.position
    assert update.revision == update.record.revision == update.position.message
    assert delete.revision == 0
    assert watch.position == delete.position
    await db.close()


async def test_conditions_select_changes_by_the_record_before_or_after(simcord_env, new_db):
    db = await open_with(new_db)
    watch = Doc.watch(Doc.n >= 5)
    a = await Doc(key="a", n=1).save()  # never matches: not yielded
    b = await Doc(key="b", n=6).save()
    await b.update(n=2)  # leaves the selection: yielded
    await a.update(n=7)  # enters it
    await a.delete()
    await b.delete()  # deleted while outside it: not yielded
    await settled(simcord_env, db)
    changes = await take(watch, 4)
    assert summary(changes) == [
        ("insert", "b", 6),
        ("update", "b", 2),
        ("update", "a", 7),
        ("delete", "a", 7),
    ]
    more = asyncio.ensure_future(anext(watch))
    await simcord_env.settle()
    assert not more.done()
    more.cancel()
    await db.close()


async def test_changes_of_two_processes_come_in_log_order_whatever_order_events_arrive(
    simcord_env, new_db, guild, strict, fast_retry
):
    p = await open_with(new_db)
    other = await strict.second_process()  # its ids run 5 ms behind ours
    q = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
    await q.open()
    QDoc = q.tables["doc"]
    watch = Doc.watch()
    strict.hold_gateway()  # P hears of Q's writes late and shuffled
    for i in range(5):
        await QDoc(key=f"q{i}", n=i).save()
        await Doc(key=f"p{i}", n=i).save()
    first = asyncio.ensure_future(anext(watch))  # P has applied only its own writes so far
    await simcord_env.settle()
    strict.release_gateway(order="shuffle")
    await settled(simcord_env, p)
    changes = [await asyncio.wait_for(first, 10), *await take(watch, 9)]
    assert changes[0].key == "q0"  # Q's first write has the lowest id, though it came last
    positions = [c.position for c in changes]
    assert positions == sorted(positions) and len(set(positions)) == 10
    assert {c.key for c in changes} == {f"{s}{i}" for s in "pq" for i in range(5)}
    assert all(c.op == "insert" for c in changes)
    q_watch = QDoc.watch(after=changes[0].position)  # Q's feed: the same log, the same order
    await settled(simcord_env, q)
    assert [c.position for c in await take(q_watch, 9)] == positions[1:]
    await q.close()
    await p.close()


async def test_a_position_resumes_in_a_new_process_without_gaps_or_repeats(simcord_env, new_db):
    db = await open_with(new_db)
    watch = Doc.watch()
    for i in range(5):
        await Doc(key=f"a{i}", n=i).save()
    await settled(simcord_env, db)
    consumed = await take(watch, 2)
    resume_at = str(consumed[-1].position)  # what a consumer stores
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db = await open_with(new_db)
    resumed = Doc.watch(after=resume_at)
    await Doc(key="a5", n=5).save()
    await settled(simcord_env, db)
    assert [c.key for c in await take(resumed, 4)] == ["a2", "a3", "a4", "a5"]
    await db.close()


async def test_a_position_before_the_snapshot_a_process_loaded_is_expired(simcord_env, new_db):
    db = await open_with(new_db)
    watch = Doc.watch()
    for i in range(3):
        await Doc(key=f"a{i}", n=i).save()
    await settled(simcord_env, db)
    [first] = await take(watch, 1)
    await db.compact()  # the log up to the horizon is folded and deleted
    # In this process the history is still there: the watch goes on.
    assert [c.key for c in await take(watch, 2)] == ["a1", "a2"]
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db = await open_with(new_db)
    with pytest.raises(discobase.ChangeFeedExpiredError) as raised:
        Doc.watch(after=first.position)
    assert raised.value.position == str(first.position)
    assert raised.value.table == "doc"
    fresh = Doc.watch()  # the way back: read the table, then watch from now
    await Doc(key="a3", n=3).save()
    await settled(simcord_env, db)
    assert [c.key for c in await take(fresh, 1)] == ["a3"]
    await db.close()


async def test_a_watcher_that_falls_behind_the_history_gets_a_typed_error(simcord_env, new_db):
    db = await open_with(new_db)
    slow = Doc.watch()
    count = FEED_HISTORY * 5 // 4 + 100
    await Doc.insert_many([Doc(key=f"k{i:05}", n=i) for i in range(count)])
    await settled(simcord_env, db)
    assert len(Doc._engine().feed.items) <= FEED_HISTORY * 5 // 4  # memory stays bounded
    with pytest.raises(discobase.ChangeFeedExpiredError):
        await anext(slow)
    caught_up = Doc.watch()
    await Doc(key="late", n=0).save()
    await settled(simcord_env, db)
    assert [c.key for c in await take(caught_up, 1)] == ["late"]
    await db.close()


async def test_a_quiet_shard_does_not_hold_back_the_changes_of_another(simcord_env, new_db):
    db = await open_with(new_db, Spread)
    watch = Spread.watch()
    await Spread(key="only", n=1).save()  # one shard stays empty
    await settled(simcord_env, db)
    assert summary(await take(watch, 1)) == [("insert", "only", 1)]
    await db.close()


@pytest.mark.parametrize("after", ["12", "x.1", "1.x", -1, 1.5, True])
async def test_a_malformed_position_is_a_validation_error(simcord_env, new_db, after):
    db = await open_with(new_db)
    with pytest.raises(discobase.ValidationError, match="not a feed position"):
        Doc.watch(after=after)
    await db.close()


async def test_a_watch_inside_a_bot_command_waits_as_a_timer_and_yields_once_settled(
    simcord_env, new_db, guild
):
    """Under SimCord a command's task is the bot's work: a watch waiting in it must be a wait
    the host recognises (a timer), or no later command would settle."""
    db = await open_with(new_db)
    tree = simcord_env.bot.tree
    seen: list[str] = []

    @tree.command(name="follow")
    async def follow(interaction) -> None:
        await interaction.response.defer()
        async for change in Doc.watch():
            seen.append(f"{change.op} {change.key} {change.record.n}")
            break
        await interaction.followup.send(seen[-1])

    @tree.command(name="write")
    async def write(interaction, key: str, n: int) -> None:
        await Doc(key=key, n=n).save()
        await interaction.response.send_message(f"wrote {key}")

    await tree.sync()
    channel = guild.create_text_channel("general")
    member = guild.add_member(simcord_env.create_user("user"))

    following = await member.slash(channel, "follow")
    assert following.deferred and following.response.content == ""
    assert seen == []  # the watch waits, parked on its timer
    written = await member.slash(channel, "write", key="a", n=1)
    assert written.response.content == "wrote a"
    assert seen == []  # not settled yet
    await past_horizon(simcord_env)
    await simcord_env.settle()

    assert seen == ["insert a 1"]
    assert following.response.content == "insert a 1"  # the deferred answer, followed up
    await db.close()


async def test_a_waiting_watch_cancelled_by_its_caller_ends_and_others_go_on(simcord_env, new_db):
    db = await open_with(new_db)
    cancelled, kept = Doc.watch(), Doc.watch()
    waiting = asyncio.ensure_future(anext(cancelled))
    going_on = asyncio.ensure_future(anext(kept))
    await simcord_env.settle()
    waiting.cancel()
    await Doc(key="a", n=1).save()  # wakes the watch still waiting
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await settled(simcord_env, db)
    assert summary([await asyncio.wait_for(going_on, 10)]) == [("insert", "a", 1)]
    await db.close()


@pytest.mark.parametrize("gone", ["shard-deleted", "dropped", "database-closed"])
async def test_a_waiting_watch_ends_when_its_table_goes(simcord_env, new_db, gone):
    db = await open_with(new_db, Spread)
    await Spread(key="a", n=1).save()
    waiting = asyncio.ensure_future(anext(Spread.watch()))
    await simcord_env.settle()
    assert not waiting.done()
    if gone == "shard-deleted":
        simcord_env.backend.delete_channel(db.schema("spread").channels[1])
        expected: type[Exception] = discobase.TableShardsMissingError
    elif gone == "dropped":
        await db.drop_table("spread")
        expected = discobase.DiscobaseError
    else:
        await db.close()
        expected = discobase.NotConnectedError
    await simcord_env.settle()
    assert waiting.done()  # woken, not left waiting for a table that is gone
    with pytest.raises(expected):
        await waiting
    if gone != "database-closed":
        await db.close()


class Wide(discobase.Table):
    n: int

    class Settings:
        shards = 3


async def test_an_insert_many_past_the_history_leaves_exactly_its_newest_changes(
    simcord_env, new_db
):
    db = await open_with(new_db, Wide)
    inserted = await Wide.insert_many([Wide(n=i) for i in range(FEED_HISTORY * 2)])
    await settled(simcord_env, db)
    # A record's position: its message (its revision), and its place among that message's.
    places: dict[int, int] = {}
    positions = []
    for record in inserted:
        positions.append((record.revision, places.get(record.revision, 0), record.pk))
        places[record.revision] = places.get(record.revision, 0) + 1
    assert len(places) == 3  # one message a shard
    positions.sort()
    floor = discobase.Position(*positions[-FEED_HISTORY - 1][:2])
    assert Wide._engine().feed.floor == floor
    kept = await take(Wide.watch(after=floor), FEED_HISTORY)
    assert [(c.position.message, c.position.entry, c.key) for c in kept] == positions[
        -FEED_HISTORY:
    ]
    assert all(c.op == "insert" and c.previous is None for c in kept)
    with pytest.raises(discobase.ChangeFeedExpiredError):
        Wide.watch(after=discobase.Position(*positions[-FEED_HISTORY - 2][:2]))
    await db.close()
