"""Query rules: the order of results without ``order_by``, paging edge cases, values that do
not sort or do not encode, and tables used while the database is still opening."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import sys

import pydantic
import pytest

import discobase
from tests.conftest import make_bot


class Item(discobase.Table):
    code: str
    size: int = 0
    weight: float | None = None

    class Settings:
        name = "items"
        primary_key = "code"
        indexes = ["size", "weight"]
        shards = 3


async def open_items(new_db, **options):
    db = new_db(**options)
    db.table(Item)
    await db.open()
    return db


async def restart(env, db, new_db, **options):
    await db.close()
    await env.restart_bot(make_bot())
    return await open_items(new_db, **options)


# -- opening -----------------------------------------------------------------------------


async def test_a_table_is_unusable_until_open_has_loaded_it(simcord_env, new_db):
    db = await open_items(new_db)
    codes = [f"k{i:02d}" for i in range(30)]
    for code in codes:
        await Item(code=code, size=1).save()
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db2 = new_db()
    db2.table(Item)
    opening = asyncio.get_running_loop().create_task(db2.open())
    refused = 0
    while True:  # ask on every turn of the loop, as a careless caller would
        try:
            found = await Item.find()
        except discobase.NotConnectedError:
            refused += 1
            await asyncio.sleep(0)
            continue
        break
    assert refused > 0  # the open was still under way at first
    assert sorted(i.code for i in found) == codes  # the first answer is the whole table
    while True:
        try:
            await Item(code="k00", size=99).insert()
        except discobase.NotConnectedError:
            await asyncio.sleep(0)
            continue
        except discobase.UniqueViolationError:
            break
        pytest.fail("insert() of an existing key was accepted while the table loaded")
    await opening
    assert (await Item.get("k00")).size == 1
    await db2.close()


# -- paging ------------------------------------------------------------------------------


async def test_limit_zero_returns_nothing_on_every_path(new_db):
    db = await open_items(new_db)
    await Item.insert_many([Item(code=f"c{i}", size=i % 3) for i in range(9)])
    assert await Item.find(limit=0) == []
    assert await Item.find(Item.size == 1, limit=0) == []
    assert await Item.find(Item.code.startswith("c"), limit=0) == []
    assert await Item.find(order_by="size", limit=0) == []
    assert await Item.find(limit=0, offset=3) == []
    assert len(await Item.find(limit=1)) == 1
    await db.close()


# -- order without order_by ----------------------------------------------------------------


async def test_results_without_order_by_come_in_key_order_across_restarts(simcord_env, new_db):
    db = await open_items(new_db, compaction=None)
    codes = ["m", "b", "x", "a", "q", "c", "z", "k", "e", "r", "d", "t"]
    for code in codes:
        await Item(code=code, size=len(code) + (code > "k")).save()
    await Item(code="a", size=5).save()  # a later write does not move a record
    await (await Item.get("x")).delete()
    await Item(code="x", size=1).save()  # nor does a delete and re-insert
    expected = sorted(codes)
    big = sorted(c for c in codes if c > "k")

    async def observed():
        return (
            [i.code for i in await Item.find()],
            [i.code for i in await Item.find(Item.size == 2)],  # the index path
            [i.code for i in await Item.find(Item.code.startswith(""), limit=4, offset=2)],
            [i.code async for i in Item.all()],
            (await Item.find_one(Item.size >= 1)).code,
            [i.code for i in await Item.find(order_by="size")],  # ties in key order
        )

    before = await observed()
    assert before[0] == expected and before[3] == expected
    assert before[1] == [c for c in big if c != "x"]
    assert before[2] == expected[2:6]
    assert before[4] == "a"
    sizes = {i.code: i.size for i in await Item.find()}
    assert sizes["a"] == 5 and sizes["x"] == 1
    assert before[5] == sorted(expected, key=lambda c: (sizes[c], c))
    db = await restart(simcord_env, db, new_db, compaction=None)
    assert await observed() == before
    await db.compact()
    db = await restart(simcord_env, db, new_db, compaction=None)
    assert await observed() == before
    await db.close()


# -- values that do not sort or do not encode --------------------------------------------


async def test_nan_is_refused_and_the_sorted_index_stays_whole(new_db):
    db = await open_items(new_db)
    for i in range(8):
        await Item(code=f"w{i}", weight=float(i)).save()
    for value in (math.nan, float("nan"), -math.nan):
        with pytest.raises(discobase.ValidationError, match="NaN") as raised:
            await Item(code="bad", weight=value).save()
        assert raised.value.errors[0]["loc"] == ("weight",)
        with pytest.raises(discobase.ValidationError, match="NaN"):
            await (await Item.get("w3")).update(weight=value)
        with pytest.raises(discobase.ValidationError, match="NaN"):
            await Item.insert_many([Item(code="ok", weight=1.0), Item(code="bad", weight=value)])
    assert await Item.count() == 8
    assert [i.code for i in await Item.find(Item.weight >= 2.0, Item.weight < 6.0)] == [
        "w2", "w3", "w4", "w5",
    ]  # fmt: skip
    await (await Item.get("w3")).update(weight=10.0)
    assert [i.code for i in await Item.find(Item.weight > 6.0)] == ["w3", "w7"]
    await Item(code="inf", weight=math.inf).save()  # infinities still sort, and are kept
    assert [i.code for i in await Item.find(order_by="-weight", limit=2)] == ["inf", "w3"]
    await db.close()


class Event(discobase.Table):
    title: str
    at: dt.datetime
    extra: pydantic.JsonValue = None

    class Settings:
        name = "events"
        primary_key = "title"


async def test_order_by_mixed_naive_and_aware_datetimes_has_a_rule(new_db):
    db = new_db()
    db.table(Event)
    await db.open()
    await Event(title="aware-late", at=dt.datetime(2026, 1, 3, tzinfo=dt.UTC)).save()
    await Event(title="naive-late", at=dt.datetime(2026, 1, 2)).save()
    await Event(title="aware-early", at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).save()
    await Event(title="naive-early", at=dt.datetime(2025, 1, 1)).save()
    ascending = [e.title for e in await Event.find(order_by="at")]
    assert ascending == ["naive-early", "naive-late", "aware-early", "aware-late"]
    assert [e.title for e in await Event.find(order_by="-at")] == ascending[::-1]
    await db.close()


async def test_order_by_values_that_do_not_compare_raises_a_validation_error(new_db):
    db = new_db()
    db.table(Event)
    await db.open()
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    await Event(title="a", at=when, extra=1).save()
    await Event(title="b", at=when, extra="one").save()
    await Event(title="c", at=when, extra=[1]).save()
    with pytest.raises(discobase.ValidationError, match="cannot order by extra"):
        await Event.find(order_by="extra")
    assert [e.title for e in await Event.find(order_by="title")] == ["a", "b", "c"]
    await db.close()


async def test_ints_round_trip_up_to_the_digit_limit_and_are_refused_beyond(simcord_env, new_db):
    class Big(discobase.Table):
        n: int
        blob: pydantic.JsonValue = None

    db = new_db()
    db.table(Big)
    await db.open()
    limit = sys.get_int_max_str_digits()
    largest = 10**limit - 1  # ``limit`` digits
    kept = await Big(n=-largest, blob={"deep": [largest]}).save()
    for value, blob in ((10**limit, None), (1, [10**limit]), (-(10**limit), None)):
        with pytest.raises(discobase.ValidationError, match="digits"):
            await Big(n=value, blob=blob).save()
        with pytest.raises(discobase.ValidationError):
            await Big.insert_many([Big(n=1), Big(n=value, blob=blob)])
    assert await Big.count() == 1
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db = new_db()
    db.table(Big)
    await db.open()
    reloaded = await Big.get(kept.pk)
    assert reloaded.n == -largest and reloaded.blob == {"deep": [largest]}
    await db.close()


class Counter(discobase.Table):
    n: int

    class Settings:
        primary_key = "n"


async def test_key_order_holds_through_many_out_of_order_inserts_and_deletes(new_db):
    db = new_db()
    db.table(Counter)
    await db.open()
    shuffled = list(range(400))
    random.Random(7).shuffle(shuffled)
    stored: set[int] = set()
    for step, n in enumerate(shuffled):
        await Counter(n=n).save()
        stored.add(n)
        if n % 5 == 0:
            await (await Counter.get(n)).delete()
            stored.discard(n)
        if stored and (step % 40 == 0 or step == len(shuffled) - 1):
            assert [c.n for c in await Counter.find()] == sorted(stored)
            assert [c.n for c in await Counter.find(limit=3, offset=1)] == sorted(stored)[1:4]
            assert (await Counter.find_one()).n == min(stored)
    await db.close()


async def test_key_order_holds_when_keys_leave_and_come_back_out_of_order(new_db):
    db = new_db()
    db.table(Counter)
    await db.open()

    async def keys() -> list[int]:
        found = [c.n for c in await Counter.find()]
        assert [c.n async for c in Counter.all()] == found
        return found

    for n in (10, 20, 30, 5):  # 5 arrives out of order
        await Counter(n=n).save()
    assert await keys() == [5, 10, 20, 30]
    await (await Counter.get(5)).delete()
    await Counter(n=40).save()
    await Counter(n=5).save()  # out of order again
    await (await Counter.get(30)).delete()
    await Counter(n=30).save()  # back, below the highest key
    assert await keys() == [5, 10, 20, 30, 40]
    await (await Counter.get(5)).delete()
    assert await keys() == [10, 20, 30, 40]
    await Counter(n=50).save()
    await Counter(n=5).save()
    assert await keys() == [5, 10, 20, 30, 40, 50]
    assert (await Counter.find_one()).n == 5  # type: ignore[union-attr]
    await db.close()
