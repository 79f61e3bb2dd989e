"""Nothing acknowledged is lost under Discord's real ordering: gateway events that arrive late,
a second process writing, failed group writes, overlapping compactions and schema drift
between processes. Each test is a sequence that lost an acknowledged record before the shard
horizon (docs/format.md, "Horizon")."""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any

import pydantic
import pytest

import discobase
from discobase.engine import horizon
from tests.conftest import HeldGateway, make_bot, past_horizon


class Note(discobase.Table):
    key: str
    n: int = 0

    class Settings:
        primary_key = "key"
        shards = 1  # one channel: its history pages and snapshots are what these tests pause


class Pair(discobase.Table):
    key: str
    n: int = 0

    class Settings:
        name = "pair"
        primary_key = "key"
        shards = 2


def shard_of(key: str, shards: int = 2) -> int:
    return zlib.crc32(json.dumps(key).encode()) % shards


def keys_on(shard: int, count: int, prefix: str) -> list[str]:
    keys = (f"{prefix}{i}" for i in range(1000))
    return [k for k in keys if shard_of(k) == shard][:count]


async def open_with(new_db, cls: type[discobase.Table] | None = None, **options):
    db = new_db(**options)
    if cls is not None:
        db.table(cls)
    await db.open()
    return db


async def fresh_state(env, new_db, cls=Note) -> dict[str, int]:
    """What a new process opening the guild sees."""
    await env.restart_bot(make_bot())
    db = await open_with(new_db, cls, compaction=None)
    found = {r.key: r.n for r in await cls.find()}
    await db.close()
    return found


async def test_a_late_event_of_another_process_survives_a_compaction(simcord_env, new_db):
    p = await open_with(new_db, Note, compaction=None)
    q = await open_with(new_db)  # a second process on the guild, with a runtime class
    QNote = q.tables["note"]
    gateway = HeldGateway(simcord_env.bot)
    gateway.holding = True
    await QNote(key="q", n=1).save()  # acknowledged to Q; P hears of it late
    await Note(key="p", n=2).save()
    await past_horizon(simcord_env)
    await p.compact()
    assert {r.key: r.n for r in await Note.find()} == {"p": 2, "q": 1}
    gateway.release()
    await simcord_env.settle()
    assert {r.key: r.n for r in await Note.find()} == {"p": 2, "q": 1}
    await q.close()
    await p.close()
    assert await fresh_state(simcord_env, new_db) == {"p": 2, "q": 1}


async def test_catch_up_applies_a_missed_write_with_a_lower_id(simcord_env, new_db):
    p = await open_with(new_db, Note, compaction=None)
    q = await open_with(new_db)
    p.transport.unlisten()  # a gateway outage for P
    await q.tables["note"](key="q", n=1).save()
    await Note(key="p", n=2).save()  # acknowledged after Q's write: a higher id
    await p.sync()  # what a fresh gateway session runs
    assert {r.key: r.n for r in await Note.find()} == {"p": 2, "q": 1}
    await q.close()
    await p.close()


async def test_a_write_during_open_reaches_the_opening_process(simcord_env, new_db):
    first = await open_with(new_db, Note)
    await Note(key="a", n=1).save()
    await first.close()
    q = await open_with(new_db)
    p = new_db(compaction=None)
    p.table(Note)
    real_history = p.transport.history
    note_channel = q.schema("note").channels[0]
    wrote = []

    async def history(channel_id: int, **kwargs: Any):
        async for message in real_history(channel_id, **kwargs):
            yield message
        if channel_id == note_channel and not wrote:
            wrote.append(True)  # Q writes right after P read the table, before P is open
            await q.tables["note"](key="b", n=2).save()

    p.transport.history = history  # type: ignore[method-assign]
    await p.open()
    await simcord_env.settle()
    assert wrote
    assert {r.key: r.n for r in await Note.find()} == {"a": 1, "b": 2}
    await q.close()
    await p.close()


async def test_a_failed_multi_shard_insert_many_then_compactions_lose_nothing(
    simcord_env, new_db, guild
):
    rule = discobase.Compaction(min_messages=3)
    db = await open_with(new_db, Pair, compaction=rule)
    zero, one = keys_on(0, 8, "z"), keys_on(1, 2, "o")
    await Pair(key=zero[0], n=0).save()
    shard0 = db.schema("pair").channels[0]
    simcord_env.inject_error("POST", f"/channels/{shard0}/messages", status=503, times=None)
    with pytest.raises(discobase.DiscordUnavailableError):
        await Pair.insert_many([Pair(key=zero[1], n=1), Pair(key=one[0], n=1)])
    simcord_env.backend.faults.clear()
    acknowledged = {zero[0]: 0}
    for i, key in enumerate(zero[2:5]):  # shard 0 compacts by itself after these
        await simcord_env.advance_time(6)
        await Pair(key=key, n=10 + i).save()
        acknowledged[key] = 10 + i
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db = await open_with(new_db, Pair, compaction=rule)  # loads the group's landed part
    markers_before = _markers(simcord_env)
    for i in range(20):
        await simcord_env.advance_time(6)
        key = zero[5 + i % 3]
        await Pair(key=key, n=100 + i).save()
        acknowledged[key] = 100 + i
    await db.close()
    # one snapshot per three writes at most, not one per write
    assert _markers(simcord_env) - markers_before <= 20 // 3 + 1
    assert await fresh_state(simcord_env, new_db, Pair) == acknowledged
    report = await _check(simcord_env, new_db, Pair)
    assert [p.kind for p in report.problems] == ["incomplete-group"]


def _markers(env) -> int:
    """Snapshot markers sent so far."""
    return sum(
        1
        for r in env.http_requests
        if r.method == "POST" and str((r.json or {}).get("content", "")).startswith("dbs1 snap")
    )


async def _check(env, new_db, cls):
    db = await open_with(new_db, cls, compaction=None)
    report = await db.check()
    await db.close()
    return report


async def test_overlapping_compactions_of_a_shard_run_one_after_the_other(simcord_env, new_db):
    db = await open_with(new_db, Note, compaction=None)
    for i in range(4):
        await Note(key=f"k{i}", n=i).save()
    await past_horizon(simcord_env)
    real_send = db.transport.send
    gate, uploading = asyncio.Event(), asyncio.Event()

    async def slow_send(channel_id: int, content: str, *args: Any, **kwargs: Any):
        if content.startswith("dbs1 part") and not uploading.is_set():
            uploading.set()
            await gate.wait()  # the first compaction's part upload is slow
        return await real_send(channel_id, content, *args, **kwargs)

    db.transport.send = slow_send  # type: ignore[method-assign]
    first = asyncio.ensure_future(db.compact())
    await uploading.wait()
    await Note(key="late", n=9).save()
    await past_horizon(simcord_env)
    second = asyncio.ensure_future(db.compact())  # manual, /compact or automatic alike
    await simcord_env.settle()
    gate.set()
    await asyncio.gather(first, second)
    expected = {**{f"k{i}": i for i in range(4)}, "late": 9}
    assert {r.key: r.n for r in await Note.find()} == expected
    await db.close()
    assert await fresh_state(simcord_env, new_db) == expected


class Person(discobase.Table):
    key: str
    age: int

    class Settings:
        name = "person"
        primary_key = "key"


class StrictPerson(discobase.Table):
    key: str
    age: int = pydantic.Field(lt=100)

    class Settings:
        name = "person"
        primary_key = "key"


async def test_a_stricter_class_that_refuses_stored_records_is_a_schema_mismatch(
    simcord_env, new_db
):
    db = await open_with(new_db, Person)
    await Person(key="old", age=120).save()
    await Person(key="young", age=20).save()
    await db.close()
    await simcord_env.restart_bot(make_bot())
    strict = new_db()
    strict.table(StrictPerson)
    with pytest.raises(discobase.SchemaMismatchError, match="1 stored records do not fit"):
        await strict.open()
    await strict.close()
    await simcord_env.restart_bot(make_bot())
    db = await open_with(new_db, Person)
    assert {p.key: p.age for p in await Person.find()} == {"old": 120, "young": 20}
    await db.close()


class ItemV1(discobase.Table):
    key: str
    n: int = 0

    class Settings:
        name = "item"
        primary_key = "key"


class ItemV2(discobase.Table):
    key: str
    n: int = 0
    tag: str | None = None

    class Settings:
        name = "item"
        primary_key = "key"


async def test_a_process_on_the_old_schema_compacts_without_losing_new_records(simcord_env, new_db):
    old = await open_with(new_db, ItemV1, compaction=None)
    await ItemV1(key="a", n=1).save()
    await ItemV1(key="b", n=2).save()
    new = await open_with(new_db, ItemV2, compaction=None)  # alters the table: adds "tag"
    await ItemV2(key="b", n=3, tag="x").save()
    await ItemV2(key="c", n=4, tag="y").save()
    await simcord_env.settle()
    await past_horizon(simcord_env)
    await old.compact()  # the old process cannot read b and c as they are now
    assert {i.key: i.n for i in await ItemV1.find()} == {"a": 1}
    report = await old.check()
    assert {p.kind for p in report.problems} == {"invalid-record"}
    await new.close()
    await old.close()
    await simcord_env.restart_bot(make_bot())
    db = await open_with(new_db, ItemV2, compaction=None)
    assert {i.key: (i.n, i.tag) for i in await ItemV2.find()} == {
        "a": (1, None),
        "b": (3, "x"),
        "c": (4, "y"),
    }
    await db.close()


async def test_a_group_whose_failed_part_discord_stored_after_all_stays_whole(simcord_env, new_db):
    db = await open_with(new_db, Pair, compaction=None)
    zero, one = keys_on(0, 1, "z"), keys_on(1, 1, "o")
    shard0 = db.schema("pair").channels[0]
    http = simcord_env.bot.http
    real = http.request

    async def request(route: Any, **kwargs: Any) -> Any:
        response = await real(route, **kwargs)
        if route.method == "POST" and route.channel_id == shard0:
            raise TimeoutError  # Discord stored it; the answer is lost on the way back
        return response

    http.request = request
    gateway = HeldGateway(simcord_env.bot)
    gateway.holding = True  # the stored part's event comes after the write failed
    with pytest.raises(discobase.DiscordUnavailableError):
        await Pair.insert_many([Pair(key=zero[0], n=1), Pair(key=one[0], n=2)])
    del http.request
    gateway.release()
    await simcord_env.settle()
    whole = {zero[0]: 1, one[0]: 2}
    assert {p.key: p.n for p in await Pair.find()} == whole  # the late event completed it
    await past_horizon(simcord_env)
    await db.compact()
    await db.close()
    assert await fresh_state(simcord_env, new_db, Pair) == whole


async def test_a_second_process_with_lower_ids_and_a_late_gateway_loses_nothing(
    simcord_env, new_db, guild, strict, fast_retry
):
    p = await open_with(new_db, Note, compaction=None)
    other = await strict.second_process()  # a second client: its ids run 5 ms behind ours
    q = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
    await q.open()
    strict.hold_gateway()  # this process hears of everything late, and out of order
    expected = {}
    for i in range(5):
        await q.tables["note"](key=f"q{i}", n=i).save()
        await Note(key=f"p{i}", n=i).save()
        expected |= {f"q{i}": i, f"p{i}": i}
    await past_horizon(simcord_env)
    await p.compact()
    strict.release_gateway(order="shuffle")
    await simcord_env.settle()
    assert {r.key: r.n for r in await Note.find()} == expected
    await q.close()
    await p.close()
    assert await fresh_state(simcord_env, new_db) == expected


async def test_a_session_lost_while_opening_is_caught_up_once_open(simcord_env, new_db, strict):
    first = await open_with(new_db, Note)
    await Note(key="a", n=1).save()
    await first.close()
    q = await open_with(new_db)
    p = new_db(compaction=None)
    p.table(Note)
    real_history = p.transport.history
    note_channel = q.schema("note").channels[0]
    lost = []
    fresh_session = asyncio.Event()

    async def on_ready() -> None:
        fresh_session.set()

    simcord_env.bot.add_listener(on_ready)

    async def history(channel_id: int, **kwargs: Any):
        async for message in real_history(channel_id, **kwargs):
            yield message
        if channel_id == note_channel and not lost:
            # right after P read the table: Q writes, and the session that carried the
            # event dies before it is delivered; the fresh READY comes while P still opens
            strict.hold_gateway()
            await q.tables["note"](key="b", n=2).save()
            lost.append(strict.drop_gateway())
            await fresh_session.wait()

    p.transport.history = history  # type: ignore[method-assign]
    await p.open()
    await simcord_env.settle()
    assert lost == [1]
    assert {r.key: r.n for r in await Note.find()} == {"a": 1, "b": 2}
    await q.close()
    await p.close()


async def test_a_gateway_batch_whose_download_failed_is_applied_by_the_next_read(
    simcord_env, new_db, guild, strict, fast_retry
):
    p = await open_with(new_db, Note, compaction=None)
    other = await strict.second_process()
    q = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
    await q.open()
    QNote = q.tables["note"]
    real = p.transport.read_attachment
    failures = []

    async def flaky(attachment):
        if not failures:
            failures.append(attachment)
            raise discobase.DiscordUnavailableError("GET attachment", 4)
        return await real(attachment)

    p.transport.read_attachment = flaky  # type: ignore[method-assign]
    await QNote.insert_many([QNote(key=f"m{i}", n=i) for i in range(60)])  # one attachment
    await simcord_env.settle()
    assert len(failures) == 1
    await p.sync()  # the next read applies what the gateway could not
    assert len(await Note.find()) == 60
    await Note(key="p", n=0).save()
    await past_horizon(simcord_env)
    await p.compact()
    await q.close()
    await p.close()
    assert len(await fresh_state(simcord_env, new_db)) == 61


async def test_two_processes_compacting_at_once_lose_nothing(
    simcord_env, new_db, guild, strict, fast_retry
):
    p = await open_with(new_db, Note, compaction=None)
    other = await strict.second_process()
    q = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
    await q.open()
    QNote = q.tables["note"]
    expected = {}
    for i in range(3):
        await Note(key=f"a{i}", n=i).save()
        expected[f"a{i}"] = i
    await past_horizon(simcord_env)
    gate, marking = asyncio.Event(), asyncio.Event()
    real_send = p.transport.send

    async def slow_send(channel_id: int, content: str, *args: Any, **kwargs: Any):
        if content.startswith("dbs1 snap"):
            marking.set()
            await gate.wait()  # P's marker is slow (a lost response and its retry)
        return await real_send(channel_id, content, *args, **kwargs)

    p.transport.send = slow_send  # type: ignore[method-assign]
    p_compacts = asyncio.ensure_future(p.compact())
    await marking.wait()
    for i in range(3):  # meanwhile Q writes, time passes, Q compacts further than P
        await QNote(key=f"b{i}", n=i).save()
        expected[f"b{i}"] = i
    await past_horizon(simcord_env)
    await q.compact()
    gate.set()
    await p_compacts  # P's marker is now the newest, and covers less than Q's
    await simcord_env.settle()
    assert {r.key: r.n for r in await Note.find()} == expected
    await q.close()
    await p.close()
    assert await fresh_state(simcord_env, new_db) == expected


async def test_a_local_clock_that_steps_forward_does_not_carry_a_snapshot_past_its_read(
    simcord_env, new_db, monkeypatch
):

    p = await open_with(new_db, Note, compaction=None)
    for i in range(3):
        await Note(key=f"a{i}", n=i).save()
    await past_horizon(simcord_env)
    real = horizon._local_ms
    monkeypatch.setattr(
        horizon, "_local_ms", lambda now: real(now) + 60_000
    )  # an NTP step, a resume
    await p.compact()
    await p.close()
    assert await fresh_state(simcord_env, new_db) == {"a0": 0, "a1": 1, "a2": 2}


async def test_a_process_whose_load_met_a_half_deleted_snapshot_never_deletes_the_new_one(
    simcord_env, new_db, guild, strict, fast_retry
):
    p = await open_with(new_db, Note, compaction=None)
    expected = {}
    for i in range(5):
        await Note(key=f"b{i}", n=i).save()
        expected[f"b{i}"] = i
    await past_horizon(simcord_env)
    await p.compact()  # the old snapshot: its marker ends the first page of history
    for i in range(99):
        await Note(key=f"c{i:03}", n=i).save()
        expected[f"c{i:03}"] = i
    await past_horizon(simcord_env)
    other = await strict.second_process()
    channel = p.schema("note").channels[0]
    real_logs_from = other.bot.http.logs_from
    paused, resume = asyncio.Event(), asyncio.Event()

    async def logs_from(channel_id: int, limit: int = 100, before: Any = None, **kw: Any):
        if channel_id == channel and before is not None and not resume.is_set():
            paused.set()
            await resume.wait()  # P compacts between two of Q's page reads
        return await real_logs_from(channel_id, limit, before=before, **kw)

    other.bot.http.logs_from = logs_from
    q = discobase.Database(guild.id, bot=other.bot, retry=fast_retry, compaction=None)
    opening = asyncio.ensure_future(q.open())
    await paused.wait()
    await p.compact()
    resume.set()
    await opening
    await past_horizon(simcord_env)
    assert await q.compact() == 0  # it leaves the shard to the process that compacted it
    await q.close()
    await p.close()
    assert await fresh_state(simcord_env, new_db) == expected
