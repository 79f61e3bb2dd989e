"""``find(field=value)`` on an indexed field, the usual lookup: its own short way (a cursor of
the field and the value, an index of value -> rows) must return exactly what the general way
returns, a scan of every record, whatever the writes did to the indexed values before it:
updates that change or keep them, deletes, a value held by one record, by a few, by many and
back, a reopen, a ttl, another process's writes, a reshard stopped midway."""

from __future__ import annotations

import datetime
import gc
import random
import tracemalloc
from typing import Any

import pytest

import discobase
from tests.conftest import make_bot, past_horizon
from tests.discobase.test_reshard import die_at, reopened


class Pet(discobase.Table):
    name: str
    n: int = 0
    tags: list[str] = []

    class Settings:
        indexes = ["name", "n"]


class Session(discobase.Table):
    key: str
    user: str

    class Settings:
        primary_key = "key"
        indexes = ["user"]
        ttl = datetime.timedelta(seconds=60)


def seen(records: list[Any]) -> list[tuple[Any, ...]]:
    """What a caller can tell of found records: key, values and revision, in order."""
    return [(r.pk, r.name, r.n, r.tags, r.revision) for r in records]


async def assert_finds_agree(table: type[Pet], names: list[str], numbers: list[int]) -> None:
    """Every ``find(field=value)`` (awaited and iterated) equals the scan's records with that
    value, in the same (key) order, with the same revisions."""
    everything = await table.find()
    for name in names:
        expected = seen([r for r in everything if r.name == name])
        assert seen(await table.find(name=name)) == expected, name
        assert seen([r async for r in table.find(name=name).batch_size(2)]) == expected
    for n in numbers:
        expected = seen([r for r in everything if r.n == n])
        assert seen(await table.find(n=n)) == expected, n
        assert seen(await table.find(n=str(n))) == expected  # converted to the field's type
        assert seen(await table.find(Pet.n == n)) == expected


@pytest.fixture
async def db(simcord_env, new_db):
    database = new_db(compaction=None)
    database.table(Pet)
    await database.open()
    yield database
    await database.close()


async def test_finds_follow_every_write_of_an_indexed_value(simcord_env, new_db, db):
    # n takes few values, so a value's records grow past a few (a set of keys) and back to
    # none; name is mostly distinct, sometimes shared.
    chance = random.Random(12)
    names = [f"pet{i}" for i in range(12)]
    numbers = [0, 1, 2, 3]
    await Pet.insert_many([Pet(name=chance.choice(names), n=i % 2) for i in range(40)])
    assert len(await Pet.find(n=0)) == 20  # past a few: held as a set of keys
    await assert_finds_agree(Pet, names, numbers)
    for step in range(120):
        records = await Pet.find()
        record = chance.choice(records)
        action = chance.random()
        if action < 0.35:
            await record.update(name=chance.choice(names))  # may keep the value
        elif action < 0.6:
            await record.update(n=chance.choice(numbers), tags=[str(step)])
        elif action < 0.8 and len(records) > 5:
            await record.delete()
        else:
            await Pet(name=chance.choice(names), n=chance.choice(numbers)).save()
        await assert_finds_agree(Pet, names[:4], numbers)
    await assert_finds_agree(Pet, names, numbers)
    # Emptied: a value no record holds any more finds nothing.
    for record in await Pet.find(n=numbers[0]):
        await record.delete()
    assert await Pet.find(n=numbers[0]) == []
    await assert_finds_agree(Pet, names, numbers)
    # A new process loads the same records and indexes them at once: the same finds.
    expected = {name: seen(await Pet.find(name=name)) for name in names}
    await db.close()
    await simcord_env.restart_bot(make_bot())
    again = new_db(compaction=None)
    again.table(Pet)
    await again.open()
    assert {name: seen(await Pet.find(name=name)) for name in names} == expected
    await assert_finds_agree(Pet, names, numbers)
    await again.close()


async def test_a_find_right_after_an_update_or_delete_sees_it(db):
    [rex] = [await Pet(name="rex", n=1).save()]
    await Pet(name="ace", n=1).save()
    await rex.update(name="max")
    assert await Pet.find(name="rex") == []
    [found] = await Pet.find(name="max")
    assert found.pk == rex.pk and found.revision == rex.revision
    await rex.update(n=5)  # the name stays: its find gives the record as it is now
    [found] = await Pet.find(name="max")
    assert (found.n, found.revision) == (5, rex.revision)
    assert [p.name for p in await Pet.find(n=1)] == ["ace"]
    await rex.delete()
    assert await Pet.find(name="max") == []
    assert await Pet.find(n=5) == []


async def test_a_found_record_is_the_caller_s_to_change(db):
    await Pet(name="rex", tags=["a"]).save()
    [first] = await Pet.find(name="rex")
    first.tags.append("b")
    first.n = 9
    [again] = await Pet.find(name="rex")
    assert (again.tags, again.n) == (["a"], 0)


async def test_the_usual_lookup_keeps_find_s_errors_and_cursor(db):
    await Pet(name="rex").save()
    cursor = Pet.find(nope="rex")  # nothing is checked before the cursor is read
    with pytest.raises(discobase.UnknownFieldError):
        await cursor
    with pytest.raises(discobase.ValidationError, match=r"pet.*batch_size"):
        Pet.find(name="rex").batch_size(0)
    with pytest.raises(discobase.ValidationError):
        await Pet.find(n="not a number")
    assert await Pet.find(name=None) == []
    assert [p.name for p in await Pet.find(tags=[])] == ["rex"]  # an unindexed field: a scan
    assert [p.name async for p in Pet.find(name="rex")] == ["rex"]


async def test_finds_by_names_that_are_no_field_keep_no_memory(db):
    for attempt in range(100):  # what the first finds make once
        with pytest.raises(discobase.UnknownFieldError):
            await Pet.find(**{f"warm{attempt}": 1})
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for attempt in range(5000):
            with pytest.raises(discobase.UnknownFieldError):
                await Pet.find(**{f"nofield{attempt}": 1})
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100_000, f"{grown} bytes kept by 5,000 finds of names that are no field"


async def test_another_process_s_write_of_an_indexed_value_is_found(
    simcord_env, db, guild, strict, fast_retry
):
    rex = await Pet(name="rex", n=1).save()
    other = await strict.second_process()
    q = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
    await q.open()
    QPet = q.tables["pet"]
    [theirs] = await QPet.find(name="rex")
    await simcord_env.advance_time(1)  # its ids run 5 ms behind ours
    await theirs.update(name="max")
    await QPet(name="rex", n=2, tags=[]).save()
    await simcord_env.settle()
    [moved] = await Pet.find(name="max")
    assert moved.pk == rex.pk and moved.revision == theirs.revision
    assert [p.n for p in await Pet.find(name="rex")] == [2]
    await assert_finds_agree(Pet, ["rex", "max"], [1, 2])
    await q.close()


async def test_an_expired_record_is_no_longer_found(simcord_env, new_db):
    db = new_db(compaction=None)
    db.table(Session)
    await db.open()
    await Session(key="a", user="ann").save()
    await simcord_env.advance_time(30)
    await Session(key="b", user="ann").save()
    assert [s.key for s in await Session.find(user="ann")] == ["a", "b"]
    await simcord_env.advance_time(31)
    assert [s.key for s in await Session.find(user="ann")] == ["b"]
    await simcord_env.advance_time(30)
    assert await Session.find(user="ann") == []
    await db.close()


async def test_finds_on_a_table_whose_reshard_stopped_midway(simcord_env, new_db):
    db = new_db(compaction=None)
    await db.open()
    table = await db.create_table(
        "moving", {"key": str, "n": int}, primary_key="key", indexes=["key", "n"], shards=1
    )
    await table.insert_many([table(key=f"k{i}", n=i % 7) for i in range(60)])
    await past_horizon(simcord_env)
    await db.compact("moving")  # the records are in a snapshot
    for i in range(0, 60, 3):
        await table(key=f"k{i}", n=100 + i % 5).save()  # indexed values changed in the log
    for i in range(1, 60, 7):
        await (await table.get(f"k{i}")).delete()
    expected = {r.key: (r.n, r.revision) for r in await table.find()}
    steps: list[str] = []
    die_at(db, 8, steps)  # the threads, the start, some of the moves
    with pytest.raises(discobase.DiscordUnavailableError):
        await db.reshard("moving", shards=6)
    assert "send" in steps  # records had started to move
    db = await reopened(simcord_env, new_db, compaction=None)
    table = db.tables["moving"]
    assert db.schema("moving").resharding is not None

    async def agree() -> None:
        everything = await table.find()
        assert {r.key: (r.n, r.revision) for r in everything} == expected
        for key, (n, revision) in expected.items():
            assert [(r.n, r.revision) for r in await table.find(key=key)] == [(n, revision)]
        for n in {n for n, _ in expected.values()} | {3, 99}:
            assert [r.key for r in await table.find(n=n)] == [r.key for r in everything if r.n == n]

    await agree()
    await db.reshard("moving", shards=6)  # finishes the move
    assert db.schema("moving").resharding is None
    await agree()
    await db.close()
