"""Cursors: ``find()`` and ``all()`` awaited give a list; iterated, they read the records a
batch at a time without copying the table, and keep their promise while the table changes
between batches (docs/library.md, "Cursors")."""

from __future__ import annotations

import asyncio
import gc
import random
import tracemalloc

import pytest

import discobase


class Item(discobase.Table):
    code: str
    n: int = 0
    tags: list[str] = []

    class Settings:
        primary_key = "code"
        indexes = ["n"]


class Row(discobase.Table):
    """A table with generated keys."""

    n: int = 0


@pytest.fixture
async def db(simcord_env, new_db):
    database = new_db(compaction=None)
    database.table(Item)
    database.table(Row)
    await database.open()
    await Item.insert_many([Item(code=f"c{i:02}", n=i % 3, tags=[str(i)]) for i in range(20)])
    yield database
    await database.close()


def codes(items):
    return [item.code for item in items]


async def test_awaiting_find_and_all_still_gives_the_list(db):
    found = await Item.find(Item.n >= 1, order_by="-n", limit=5, offset=1)
    assert isinstance(found, list)
    assert codes(found) == ["c05", "c08", "c11", "c14", "c17"]
    assert codes(await Item.all(n=0)) == [f"c{i:02}" for i in range(0, 20, 3)]
    assert await Item.find(n=1).to_list(2) == (await Item.find(n=1))[:2]
    assert await asyncio.create_task(Item.find(code="c03")) == [await Item.get("c03")]


async def test_to_list_takes_a_whole_number_of_records_or_none(db):
    for cursor in (Item.find(n=1), Item.find(Item.n >= 1), Item.all()):
        assert await cursor.to_list(0) == []
    cursor = Item.find(Item.n >= 0)
    assert codes(await cursor.to_list(1)) == ["c00"]
    assert await cursor.to_list(0) == []  # once iterating, too
    assert codes(await cursor.to_list(2)) == ["c01", "c02"]
    for wrong in (-1, 1.5, "2", True):
        with pytest.raises(discobase.ValidationError, match="to_list takes None or a whole"):
            await Item.find(n=1).to_list(wrong)


@pytest.mark.parametrize(
    ("conditions", "options"),
    [
        ((), {}),
        ((discobase.field("n") == 1,), {}),  # from the index
        ((discobase.field("n").in_([0, 2]),), {"limit": 4, "offset": 3}),
        ((discobase.field("code") >= "c07",), {"limit": 6}),
        ((discobase.field("n") < 2,), {"order_by": ["-n", "code"], "offset": 2}),
        ((), {"fields": ["code", "tags"], "offset": 18}),
    ],
)
@pytest.mark.parametrize("batch_size", [1, 3, 1000])
async def test_iterating_gives_what_awaiting_gives(db, conditions, options, batch_size):
    listed = await Item.find(*conditions, **options)
    streamed = [x async for x in Item.find(*conditions, **options).batch_size(batch_size)]
    assert streamed == listed
    assert [x.revision for x in streamed if isinstance(x, Item)] == [
        x.revision for x in listed if isinstance(x, Item)
    ]


async def test_keys_that_arrived_out_of_order_come_in_key_order(db):
    # After c00..c19: keys that sort before and among them (too few for the table to re-sort)
    for code in ["c05a", "a", "c19a", "c10a", "b"]:
        await Item(code=code, n=1).save()
    expected = [f"c{i:02}" for i in range(20)] + ["c05a", "a", "c19a", "c10a", "b"]
    assert codes(await Item.find()) == sorted(expected)
    for batch_size in (1, 2, 4, 100):
        assert codes([i async for i in Item.all().batch_size(batch_size)]) == sorted(expected)
        assert codes([i async for i in Item.all(n=1).batch_size(batch_size)]) == sorted(
            c for c in expected if len(c) != 3 or int(c[1:]) % 3 == 1
        )
    seen = []
    async for item in Item.all().batch_size(3):
        seen.append(item.code)
        if item.code == "c04":
            await (await Item.get("c05a")).delete()  # out of order, not reached yet: skipped
            await (await Item.get("c10a")).update(n=2)  # comes in its current version
    assert seen == [c for c in sorted(expected) if c != "c05a"]


async def test_keys_added_ahead_out_of_order_come_once_the_table_re_sorts(db):
    added = [f"c10_{i:02}" for i in range(80)]  # between c10 and c11: ahead, out of key order
    seen = []
    async for item in Item.all().batch_size(3):
        seen.append(item.code)
        if item.code == "c04":
            await Item(code="a0").save()  # behind the cursor: never comes
            await Item.insert_many([Item(code=code) for code in added])
            await Item.find(limit=1)  # an ordered read: that many out of order, it re-sorts
    assert seen == sorted(seen)
    assert "a0" not in seen
    assert [code for code in seen if code in added] == added


async def test_other_tasks_run_between_batches(db):
    ticks = []

    async def ticker():
        for _ in range(100):
            ticks.append(1)
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    seen = [(item.code, len(ticks)) async for item in Item.all().batch_size(5)]
    task.cancel()
    assert [ticked for _, ticked in seen[:5]] == [0] * 5  # one batch runs in one go
    assert seen[-1][1] >= 3  # three batches later, the other task ran three times


async def test_changes_between_batches_keep_the_cursor_promise(db):
    seen = []
    async for item in Item.all().batch_size(4):
        seen.append((item.code, item.n))
        if item.code == "c05":
            await (await Item.get("c02")).delete()  # passed already
            await (await Item.get("c09")).delete()  # not reached yet: skipped
            await (await Item.get("c12")).update(n=7)  # yielded as it is when reached
            await Item(code="c095", n=1).save()  # added meanwhile: may come or not
            await Item(code="a", n=1).save()  # before the position: not yielded
            await Item(code="z", n=1).save()  # at the end
    keys = [code for code, _ in seen]
    assert keys == sorted(keys)  # key order, no key twice
    assert "c09" not in keys and "a" not in keys
    assert {"c00", "c02", "c10", "c19", "z"} <= set(keys)
    assert dict(seen)["c12"] == 7
    assert len(set(keys) - {"c095"}) == 20


async def test_random_changes_never_repeat_or_skip_a_record_present_throughout(db):
    rng = random.Random(7)
    made = iter(rng.sample(range(10**6), 50_000))

    def fresh() -> str:  # a new key, at a random place in key order
        return f"r{next(made):06}"

    await Item.insert_many([Item(code=fresh()) for _ in range(150)])
    for round_ in range(4):
        before = {item.code for item in await Item.find()}
        touched: set[str] = set()
        seen: list[str] = []
        actions = 0
        async for item in Item.all(Item.n < 5).batch_size(7):
            assert item.n < 5  # as it is when reached: it still matches
            assert item == await Item.get(item.code)
            seen.append(item.code)
            pool = sorted(before - touched)
            if rng.random() < 0.3 and pool and actions < 30:
                actions += 1
                action = rng.choice(["insert", "delete", "update", "resort"])
                if action == "insert":  # out of key order: the table's tail
                    code = fresh()
                    await Item(code=code).save()
                    touched.add(code)
                elif action == "delete":
                    victim = rng.choice(pool)
                    touched.add(victim)
                    await (await Item.get(victim)).delete()
                elif action == "update":
                    changed = rng.choice(pool)
                    await (await Item.get(changed)).update(tags=["changed"])
                else:  # many out-of-order keys, then an ordered read: the table re-sorts
                    added = [Item(code=fresh()) for _ in range(80)]
                    await Item.insert_many(added)
                    touched.update(item.code for item in added)
                    await Item.find(limit=1)
        assert len(seen) == len(set(seen)), f"round {round_}: a key came twice"
        assert seen == sorted(seen), f"round {round_}: out of key order"
        missing = (before - touched) - set(seen)
        assert not missing, f"round {round_}: records present throughout were skipped"


async def test_a_cursor_holds_no_copy_of_the_table(db, simcord_env):
    await Row.insert_many([Row(n=i % 10) for i in range(40_000)])
    await simcord_env.settle()  # the gateway echoes of its messages (late in strict mode)
    gc.collect()

    async def peak_while_reading(reads):
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            count = await reads()
            return count, tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()

    async def stream():
        count = 0
        async for _ in Row.all().batch_size(100):
            count += 1
        return count

    async def stream_matching():
        count = 0
        async for _ in Row.find(Row.n >= 5).batch_size(100):
            count += 1
        return count

    async def listed():
        return len(await Row.find())

    # Generated keys arrived out of key order: the first read in key order sorts the table's
    # order once, for every later read (find and cursors alike).
    await Row.find(limit=1)
    count, streamed = await peak_while_reading(stream)
    assert count == 40_000
    matching, filtered = await peak_while_reading(stream_matching)
    assert matching == 20_000
    _, whole = await peak_while_reading(listed)
    # A list of the table holds a reference per record (and the records); a cursor holds a
    # batch of keys and one record at a time.
    assert whole > 40_000 * 8
    assert streamed < 40_000 * 8 / 10, streamed
    assert filtered < 40_000 * 8 / 10, filtered


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "10"])
async def test_a_bad_batch_size_is_a_validation_error(db, simcord_env, bad):
    before = len(simcord_env.http_requests)
    with pytest.raises(discobase.ValidationError, match="batch_size"):
        Item.find().batch_size(bad)
    with pytest.raises(discobase.ValidationError, match="batch_size"):
        Item.all(n=1).batch_size(bad)
    assert len(simcord_env.http_requests) == before


async def test_errors_surface_when_the_cursor_is_read(db):
    cursor = Item.find(nope=1)
    with pytest.raises(discobase.UnknownFieldError):
        await cursor
    with pytest.raises(discobase.UnknownFieldError):
        async for _ in Item.all(order_by="nope"):
            pass


async def test_a_field_named_batch_size_is_an_ordinary_field(simcord_env, new_db):
    class Job(discobase.Table):
        batch_size: int

    database = new_db(compaction=None)
    database.table(Job)
    await database.open()
    await Job.insert_many([Job(batch_size=n % 3) for n in range(9)])
    assert [job.batch_size for job in await Job.find(batch_size=2)] == [2, 2, 2]
    assert [job.batch_size async for job in Job.all(batch_size=1).batch_size(2)] == [1, 1, 1]
    await database.close()


async def test_a_cursor_reads_on_after_its_database_opened_again(db, new_db):
    seen = {}
    async for item in Item.all().batch_size(2):
        seen[item.code] = (item.n, item.revision)
        if item.code == "c01":
            await db.close()
            reopened = new_db(compaction=None)
            reopened.table(Item)
            await reopened.open()
            await (await Item.get("c05")).update(n=50)
    current = await Item.get("c05")
    assert seen["c05"] == (50, current.revision)  # as it is when reached, in the new process
    assert list(seen) == [f"c{i:02}" for i in range(20)]
    await reopened.close()


async def test_a_cursor_of_a_closed_or_dropped_table_raises_as_find_does(db):
    pets = await db.create_table("pets", {"name": str}, primary_key="name")
    await pets.insert_many([{"name": f"p{i}"} for i in range(6)])
    seen = []
    with pytest.raises(discobase.NotConnectedError):
        async for pet in pets.all().batch_size(2):
            seen.append(pet.name)
            if pet.name == "p1":
                await db.drop_table("pets")
    assert seen == ["p0", "p1"]
    with pytest.raises(discobase.NotConnectedError):
        await pets.find()
    cursor = Item.all().batch_size(2)
    assert (await cursor.__anext__()).code == "c00"
    await db.close()
    with pytest.raises(discobase.NotConnectedError):
        await cursor.__anext__()
