"""Revisions and conditional writes (``if_revision=``): within one process a conditional write
is checked after this process's own writes of the key landed; across processes, against the
writes this process has applied (docs/library.md, "Revisions")."""

from __future__ import annotations

import asyncio

import pytest

import discobase
from tests.conftest import make_bot, past_horizon


class Doc(discobase.Table):
    key: str
    n: int = 0

    class Settings:
        primary_key = "key"


async def open_with(new_db, cls: type[discobase.Table] | None = Doc, **options):
    db = new_db(**options)
    if cls is not None:
        db.table(cls)
    await db.open()
    return db


async def reload(env, new_db) -> dict[str, tuple[int, int]]:
    """(n, revision) of every record, as a new process reads them."""
    await env.restart_bot(make_bot())
    db = await open_with(new_db, compaction=None)
    found = {d.key: (d.n, d.revision) for d in await Doc.find()}
    await db.close()
    return found


async def two_processes(simcord_env, new_db, guild, strict, fast_retry):
    """P (this bot) and Q (a second client, its ids 5 ms behind), both holding record "a"."""
    p = await open_with(new_db, compaction=None)
    other = await strict.second_process()
    q = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
    await q.open()
    await Doc(key="a", n=1).save()
    await simcord_env.settle()
    return p, q, other


async def test_every_write_gives_a_new_revision_that_reads_and_reloads_agree_on(
    simcord_env, new_db
):
    db = await open_with(new_db)
    doc = Doc(key="a")
    assert doc.revision == 0
    await doc.save()
    first = doc.revision
    assert first > 0
    assert (await Doc.get("a")).revision == first
    await doc.update(n=1)
    second = doc.revision
    assert second > first
    [found] = await Doc.find()
    assert found.revision == second
    assert [d.revision async for d in Doc.all()] == [second]
    await past_horizon(simcord_env)
    await db.compact()  # the snapshot keeps each key's revision
    await db.close()
    assert await reload(simcord_env, new_db) == {"a": (1, second)}


async def test_a_stale_revision_raises_conflict_and_writes_nothing(simcord_env, new_db):
    db = await open_with(new_db)
    mine = await Doc(key="a", n=1).save()
    theirs = await Doc.get("a")
    await theirs.update(n=2)
    sent = len(simcord_env.http_requests)
    for attempt in (
        mine.save(if_revision=mine.revision),
        mine.update(n=3, if_revision=mine.revision),
        mine.delete(if_revision=mine.revision),
    ):
        with pytest.raises(discobase.ConflictError) as raised:
            await attempt
        assert (raised.value.expected, raised.value.actual) == (mine.revision, theirs.revision)
        assert raised.value.key == "a"
    assert isinstance(raised.value, discobase.DatabaseStorageError)
    assert len(simcord_env.http_requests) == sent  # refused before any REST call
    assert (await Doc.get("a")).n == 2
    await theirs.update(n=4, if_revision=theirs.revision)  # the current revision passes
    await theirs.delete(if_revision=theirs.revision)
    assert theirs.revision == 0
    await db.close()
    assert await reload(simcord_env, new_db) == {}


async def test_revision_zero_means_no_record(simcord_env, new_db):
    db = await open_with(new_db)
    await Doc(key="a", n=1).save(if_revision=0)
    with pytest.raises(discobase.ConflictError) as raised:
        await Doc(key="a", n=2).save(if_revision=0)
    assert raised.value.actual == (await Doc.get("a")).revision
    await (await Doc.get("a")).delete()
    await Doc(key="a", n=3).save(if_revision=0)  # deleted: no record again
    assert (await Doc.get("a")).n == 3
    await db.close()


async def test_concurrent_conditional_writes_from_one_revision_let_exactly_one_through(
    simcord_env, new_db
):
    db = await open_with(new_db)
    base = await Doc(key="a").save()
    copies = [(await Doc.get("a")) for _ in range(5)]
    results = await asyncio.gather(
        *(c.update(n=i + 1, if_revision=base.revision) for i, c in enumerate(copies)),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    assert len(won) == 1
    assert all(isinstance(r, discobase.ConflictError) for r in results if r not in won)
    stored = await Doc.get("a")
    assert (stored.n, stored.revision) == (won[0].n, won[0].revision)
    await db.close()
    assert await reload(simcord_env, new_db) == {"a": (stored.n, stored.revision)}


async def test_a_save_overtaken_in_its_own_batch_keeps_its_old_revision(simcord_env, new_db):
    db = await open_with(new_db)
    await Doc(key="a").save()
    first, second = await Doc.get("a"), await Doc.get("a")
    before = first.revision
    first.n, second.n = 1, 2
    await asyncio.gather(first.save(), second.save())  # group commit: one message
    stored = await Doc.get("a")
    assert (stored.n, stored.revision) == (2, second.revision)
    assert first.revision == before  # its write was never the stored state
    with pytest.raises(discobase.ConflictError):
        await first.save(if_revision=first.revision)
    await db.close()


async def test_insert_many_gives_each_record_its_revision(simcord_env, new_db):
    db = await open_with(new_db)
    docs = await Doc.insert_many([Doc(key=f"k{i}", n=i) for i in range(3)])
    assert {d.key: d.revision for d in docs} == {d.key: d.revision for d in await Doc.find()}
    assert all(d.revision > 0 for d in docs)
    await db.close()


async def test_across_processes_a_write_this_process_applied_makes_a_stale_revision_conflict(
    simcord_env, new_db, guild, strict, fast_retry
):
    p, q, _ = await two_processes(simcord_env, new_db, guild, strict, fast_retry)
    QDoc = q.tables["doc"]
    seen_by_q = await QDoc.get("a")
    mine = await Doc.get("a")
    assert seen_by_q.revision == mine.revision  # one log, one revision in every process
    await mine.update(n=2, if_revision=mine.revision)
    await simcord_env.settle()  # Q applied P's write from the gateway
    with pytest.raises(discobase.ConflictError):
        await seen_by_q.update(n=3, if_revision=seen_by_q.revision)
    latest = await QDoc.get("a")
    # Q's ids run 5 ms behind P's on a clock that stands still: its write lands before the
    # revision it was checked against, so in log order it is overwritten, and it conflicts.
    with pytest.raises(discobase.ConflictError):
        await latest.update(n=3, if_revision=latest.revision)
    assert (await Doc.get("a")).n == (await QDoc.get("a")).n == 2
    await simcord_env.advance_time(1)  # past the skew: Q's next id follows P's
    latest = await QDoc.get("a")
    await latest.update(n=3, if_revision=latest.revision)
    await simcord_env.settle()
    assert (await Doc.get("a")).revision == latest.revision
    await q.close()
    await p.close()
    assert await reload(simcord_env, new_db) == {"a": (3, latest.revision)}


async def test_across_processes_writes_not_yet_applied_race_and_log_order_decides(
    simcord_env, new_db, guild, strict, fast_retry
):
    """The documented limit: a write of another process that has not reached this one does
    not make a conditional write conflict; both land and the later message wins everywhere."""
    p, q, other = await two_processes(simcord_env, new_db, guild, strict, fast_retry)
    QDoc = q.tables["doc"]
    mine, theirs = await Doc.get("a"), await QDoc.get("a")
    await simcord_env.advance_time(1)  # past the skew: both next ids follow the first write
    strict.hold_gateway()  # neither process hears of the other's write yet
    strict.hold_gateway(other)
    await mine.update(n=2, if_revision=mine.revision)
    await theirs.update(n=3, if_revision=theirs.revision)
    strict.release_gateway()
    strict.release_gateway(other)
    await simcord_env.settle()
    last = max(mine, theirs, key=lambda d: d.revision)
    assert (await Doc.get("a")).n == (await QDoc.get("a")).n == last.n
    assert (await Doc.get("a")).revision == (await QDoc.get("a")).revision == last.revision
    await q.close()
    await p.close()
    assert await reload(simcord_env, new_db) == {"a": (last.n, last.revision)}
