"""Query rules: the order of results without ``order_by``, paging edge cases, values that do
not sort or do not encode, and tables used while the database is still opening."""

from __future__ import annotations

import asyncio

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
