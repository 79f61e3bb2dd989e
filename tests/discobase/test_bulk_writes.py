"""Large writes: ``insert_many``'s generated keys, its change feed entries, and the garbage
collector it pauses (docs/library.md, "Speed")."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import zlib
from collections import Counter

import discord
import pytest

import discobase
from tests.conftest import make_bot, past_horizon, rest_calls


class Reading(discobase.Table):
    n: int
    label: str = ""

    class Settings:
        name = "readings"
        shards = 3


async def open_db(new_db, table=Reading, **options):
    db = new_db(**options)
    db.table(table)
    await db.open()
    return db


def shard_of(key: str, shards: int = 3) -> int:
    return zlib.crc32(json.dumps(key).encode()) % shards


async def test_insert_many_keys_follow_the_records_order_and_spread_evenly(simcord_env, new_db):
    db = await open_db(new_db, compaction=None)
    before = len(simcord_env.http_requests)
    inserted = await Reading.insert_many([Reading(n=i) for i in range(100)])
    channels = {
        f"POST /channels/{channel}/messages" for channel in Reading._engine().schema.channels
    }
    calls = rest_calls(simcord_env, before)
    assert sorted(calls) == sorted(channels)  # one message in each shard
    keys = [r.pk for r in inserted]
    assert keys == sorted(keys) and len(set(keys)) == 100
    assert all(len(key) == 21 and int(key, 16) >= 0 for key in keys)
    assert sorted(Counter(shard_of(key) for key in keys).values()) == [33, 33, 34]
    # Without an order, records come in key order: here, the order they were inserted in.
    assert [r.n for r in await Reading.find()] == list(range(100))
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db = await open_db(new_db, compaction=None)
    assert [r.n for r in await Reading.find()] == list(range(100))
    assert [r.pk for r in await Reading.find()] == keys
    await db.close()


async def test_a_watch_sees_a_large_insert_many_in_log_order_once(simcord_env, new_db):
    db = await open_db(new_db, compaction=None)
    watch = Reading.watch()
    inserted = await Reading.insert_many([Reading(n=i) for i in range(300)])
    await past_horizon(simcord_env)
    await db.sync()
    changes = [await asyncio.wait_for(anext(watch), 10) for _ in range(300)]
    positions = [change.position for change in changes]
    assert positions == sorted(positions) and len(set(positions)) == 300
    assert {change.key: change.record.n for change in changes} == {
        record.pk: record.n for record in inserted
    }
    assert all(change.op == "insert" and change.previous is None for change in changes)
    await db.close()


@pytest.mark.parametrize("enabled", [True, False])
async def test_a_large_insert_many_leaves_the_collector_as_it_found_it(
    simcord_env, new_db, enabled
):
    db = await open_db(new_db, compaction=None)
    was = gc.isenabled()
    if not enabled:
        gc.disable()
    try:
        await Reading.insert_many([Reading(n=i) for i in range(3000)])
        assert gc.isenabled() is enabled
        assert await Reading.count() == 3000
    finally:
        if was:
            gc.enable()
    await db.close()


class Sample(discobase.Table):
    key: str
    n: int

    class Settings:
        name = "samples"
        primary_key = "key"
        shards = 1


async def test_attached_bodies_are_zlib_streams_both_ways(simcord_env, new_db):
    """What is written opens with the standard library's zlib, as every earlier reader opens
    it (format.md: RFC 1950), and a body that zlib compressed at any level still loads."""
    db = await open_db(new_db, Sample, compaction=None)
    await Sample.insert_many([Sample(key=f"new{i:04}", n=i) for i in range(2000)])
    channel = simcord_env.bot.get_channel(db.schema("samples").channels[0])
    [message] = [m async for m in channel.history() if m.attachments]
    header = dict(item.split("=") for item in message.content.split()[2:])
    body = zlib.decompress(simcord_env.backend.cdn.get(message.attachments[0].url))
    assert f"{zlib.crc32(body):08x}" == header["crc"]
    assert [json.loads(line)["rec"]["n"] for line in body.split(b"\n")] == list(range(2000))
    assert header["n"] == "2000" and header["att"] == "1"

    for level in (1, 6, 9):
        lines = [
            json.dumps({"put": f"old{i}", "rec": {"key": f"old{i}", "n": level * 100 + i}})
            for i in range(50)
        ]
        old = "\n".join(lines).encode()
        await channel.send(
            f"dbs1 batch n=50 crc={zlib.crc32(old):08x} id=level{level} att=1",
            file=discord.File(io.BytesIO(zlib.compress(old, level)), filename="body.jsonl.z"),
        )
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db = await open_db(new_db, Sample, compaction=None)
    assert await Sample.count() == 2050
    assert (await Sample.get("old7")).n == 907
    assert (await db.check()).ok
    await db.close()


class Gauge(discobase.Table):
    code: str
    level: int

    class Settings:
        name = "gauges"
        primary_key = "code"
        indexes = ["level"]
        shards = 3


async def test_large_inserts_among_stored_records_keep_key_order_and_indexes(simcord_env, new_db):
    """Two large inserts whose keys interleave, and one that inserts a deleted key again:
    reads come in key order and the index finds every record, before and after a reload."""
    db = await open_db(new_db, Gauge, compaction=None)
    await Gauge.insert_many([Gauge(code=f"k{i:04}", level=i % 7) for i in range(0, 3000, 2)])
    await (await Gauge.get("k0010")).delete()
    await Gauge.insert_many([Gauge(code=f"k{i:04}", level=i % 7) for i in range(1, 3000, 2)])
    await Gauge.insert_many([Gauge(code="k0010", level=99), Gauge(code="k0000a", level=6)])
    levels = {f"k{i:04}": i % 7 for i in range(3000)} | {"k0010": 99, "k0000a": 6}

    async def check() -> None:
        assert [(g.code, g.level) for g in await Gauge.find()] == sorted(levels.items())
        assert {g.code for g in await Gauge.find(level=3)} == {
            code for code, level in levels.items() if level == 3
        }
        assert {g.code for g in await Gauge.find(Gauge.level >= 6)} == {
            code for code, level in levels.items() if level >= 6
        }

    await check()
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db = await open_db(new_db, Gauge, compaction=None)
    await check()
    await db.close()
