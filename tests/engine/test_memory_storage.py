"""The engine on the in-memory storage: writes, loading, compaction, catch-up and the storage
layout, without SimCord or discord.py (each test runs in milliseconds)."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

import pytest

from discobase.codec import encode_marker, parse_header
from discobase.engine import table as table_module
from discobase.engine.compaction import Compaction
from discobase.engine.core import Write
from discobase.engine.layout import CATEGORY_LIMIT, StorageLayout
from discobase.engine.schema import FieldSchema, TableSchema
from discobase.engine.storage import StoredChannel
from discobase.engine.storage_memory import MemoryStorage
from discobase.engine.table import TableEngine
from discobase.errors import UniqueViolationError

MARGIN = 15.0


class Pet(NamedTuple):
    """A record as the engine holds it: a row of the key, then the fields in schema order."""

    key: str
    name: str
    age: int


def decode(key: Any, data: dict[str, Any]) -> Pet:
    return Pet(key, **data)


def encode(pet: Pet) -> dict[str, Any]:
    return {"name": pet.name, "age": pet.age}


def put(key: str, name: str, age: int) -> Write:
    pet = Pet(key, name, age)
    return Write(key, pet, encode(pet))


async def make_table(storage: MemoryStorage, shards: int = 1) -> TableSchema:
    layout = StorageLayout(storage, "discobase")
    await layout.ensure_category()
    return TableSchema(
        "pet",
        [FieldSchema("name", "str"), FieldSchema("age", "int")],
        unique=["name"],
        shards=shards,
        channels=[await layout.create_channel(f"pet-{i}") for i in range(shards)],
    )


def engine(storage: MemoryStorage, schema: TableSchema, **options: Any) -> TableEngine:
    return TableEngine(schema, storage, 10 * 1024 * 1024, decode, encode, **options)


def kinds(storage: MemoryStorage, channel_id: int) -> list[str]:
    messages = storage.messages[channel_id]
    return [parse_header(messages[i].content).kind for i in sorted(messages)]


async def test_concurrent_writes_go_out_as_few_batches_and_apply_on_acknowledgement() -> None:
    storage = MemoryStorage()
    schema = await make_table(storage)
    table = engine(storage, schema, compaction=None)
    await table.load()
    await asyncio.gather(*(table.write([put(f"k{i}", f"pet{i}", i)]) for i in range(20)))
    assert {k: r.age for k, r in table.state.records.items()} == {f"k{i}": i for i in range(20)}
    # All 20 were queued before the writer's first send: one message holds them.
    assert kinds(storage, schema.channels[0]) == ["batch"]
    assert storage.calls["POST /channels/{id}/messages"] == 1


async def test_a_second_process_loads_what_the_first_wrote_and_catches_up_later() -> None:
    storage = MemoryStorage()
    schema = await make_table(storage, shards=3)
    first = engine(storage, schema, compaction=None)
    await first.load()
    await first.write([put(f"k{i}", f"pet{i}", i) for i in range(30)])
    second = engine(storage, schema, compaction=None)
    await second.load()
    assert second.state.records == first.state.records
    await first.write([put("k0", "pet0", 100), Write("k1")])
    assert second.state.records["k0"].age == 0  # no gateway here: nothing arrives by itself
    await second.catch_up()
    assert second.state.records == first.state.records
    assert second.state.records["k0"].age == 100 and "k1" not in second.state.records


async def test_compaction_folds_the_log_up_to_the_horizon_and_a_reload_reads_the_snapshot() -> None:
    storage = MemoryStorage()
    schema = await make_table(storage)
    channel = schema.channels[0]
    table = engine(storage, schema, compaction=None)
    await table.load()
    for i in range(5):
        await table.write([put(f"k{i}", f"pet{i}", i)])
    storage.advance(MARGIN + 1)
    await table.write([put("late", "late", 9)])  # within the margin: stays in the log
    assert await table.compact() == 5
    assert kinds(storage, channel) == ["batch", "part", "snap"]
    reloaded = engine(storage, schema, compaction=None)
    before = dict(storage.calls)
    await reloaded.load()
    assert reloaded.state.records == table.state.records
    assert storage.calls["GET attachment"] - before.get("GET attachment", 0) == 1


async def test_automatic_compaction_starts_after_the_rule_s_message_count() -> None:
    storage = MemoryStorage()
    schema = await make_table(storage)
    table = engine(storage, schema, compaction=Compaction(min_messages=4, margin=0))
    await table.load()
    for i in range(4):
        storage.advance(1)
        await table.write([put(f"k{i}", f"pet{i}", i)])
    await table.close()  # waits for the background compaction
    assert "snap" in kinds(storage, schema.channels[0])
    assert len(table.state.records) == 4


async def test_a_value_held_by_a_write_in_flight_is_refused_to_another_write() -> None:
    storage = MemoryStorage()
    schema = await make_table(storage)
    table = engine(storage, schema, compaction=None)
    await table.load()
    first = asyncio.ensure_future(table.write([put("a", "rex", 1)], insert=True))
    await asyncio.sleep(0)  # the first write is in flight, not applied yet
    assert "a" not in table.state.records
    with pytest.raises(UniqueViolationError):
        await table.write([put("b", "rex", 2)], insert=True)
    with pytest.raises(UniqueViolationError):
        await table.write([put("a", "other", 3)], insert=True)
    await first
    assert table.constraints.reserved == {}
    await table.write([put("b", "max", 2)], insert=True)
    assert sorted(table.state.records) == ["a", "b"]


async def test_messages_of_other_authors_are_reported_and_skipped() -> None:
    storage = MemoryStorage()
    schema = await make_table(storage)
    writer = engine(storage, schema, compaction=None)
    await writer.load()
    await writer.write([put("a", "rex", 1)])
    channel = schema.channels[0]
    [batch] = storage.messages[channel].values()
    storage.post(channel, batch.content.replace("rex", "evil"), author_id=99)
    storage.post(channel, batch.content.replace("rex", "hook"), webhook_id=7)
    reader = engine(storage, schema, compaction=None)
    await reader.load()
    assert reader.state.records["a"].name == "rex"
    assert [p.kind for p in reader.state.problems] == ["foreign-author"] * 2


async def test_a_marker_with_an_unreadable_upto_is_reported_and_nothing_is_deleted() -> None:
    storage = MemoryStorage()
    schema = await make_table(storage)
    channel = schema.channels[0]
    table = engine(storage, schema, compaction=None)
    await table.load()
    await table.write([put("a", "rex", 1)])
    marker = encode_marker("feed", 5, 0, []).replace("upto=5", "upto=x")
    storage.post(channel, marker)
    storage.advance(MARGIN + 1)
    reader = engine(storage, schema, compaction=None)
    await reader.load()
    assert reader.state.records["a"].name == "rex"
    assert [p.kind for p in reader.state.problems] == ["unreadable"]
    count = len(storage.messages[channel])
    await reader.compact()  # the shard is left alone: the marker may be another process's
    assert len(storage.messages[channel]) == count


async def test_storage_spills_into_a_numbered_category_when_the_first_is_full() -> None:
    storage = MemoryStorage()
    layout = StorageLayout(storage, "discobase")
    await layout.ensure_category()
    await layout.ensure_category()
    assert [c.name for c in layout.categories(storage.cached_channels())] == ["discobase"]
    ids = [await layout.create_channel(f"t{i}") for i in range(CATEGORY_LIMIT + 1)]
    categories = layout.categories(storage.cached_channels())
    assert [c.name for c in categories] == ["discobase", "discobase-2"]
    assert storage.channels[ids[-1]].category_id == categories[1].id
    assert set(layout.channels()) == set(ids)
    catalog = await layout.create_catalog()
    assert catalog == [max(storage.channels)]
    assert layout.catalog_ids() == set(catalog)
    await layout.delete_all()
    assert storage.channels == {}


class LaggingStorage(MemoryStorage):
    """Channel announcements lag: the cache shows the channels as of ``freeze``."""

    frozen: list[StoredChannel] | None = None

    def cached_channels(self) -> list[StoredChannel]:
        return super().cached_channels() if self.frozen is None else list(self.frozen)


async def test_storage_deleted_by_clean_up_is_gone_while_its_announcement_lags() -> None:
    storage = LaggingStorage()
    layout = StorageLayout(storage, "discobase")
    await layout.ensure_category()
    await layout.create_catalog()
    await layout.create_channel("pets")
    storage.frozen = storage.cached_channels()
    await layout.delete_all()
    assert storage.channels == {}
    assert layout.channels() == {} and layout.catalog_ids() == set()
    await layout.ensure_category()  # a new, empty database
    [category] = [c for c in storage.channels.values() if c.kind == "category"]
    storage.frozen = None
    catalog = await layout.create_catalog()
    assert storage.channels[catalog[0]].category_id == category.id


@pytest.mark.parametrize("limit", [50, 200])
async def test_handled_ids_stay_bounded_without_compaction_or_reconnects(
    monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    """Only a REST read moves a shard's horizon; a process that never compacts and never
    reconnects reads to it by itself once its handled ids reach the limit."""
    monkeypatch.setattr(table_module, "HANDLED_LIMIT", limit)
    storage = MemoryStorage()
    schema = await make_table(storage)
    writer = engine(storage, schema, compaction=None)
    await writer.load()
    reader = engine(storage, schema, compaction=None)  # another process, fed by its gateway
    await reader.load()
    writes = 5 * limit
    channel = storage.messages[schema.channels[0]]
    held: list[int] = []
    for i in range(writes):
        storage.advance(1)  # a write a second: the margin keeps the last 15 above the horizon
        await writer.write([put(f"k{i % 40}", f"pet{i % 40}", i)])
        reader.spawn_ingest(channel[max(channel)])
        await asyncio.sleep(0)  # the reader applies it
        held.append(max(len(writer.shards[0].handled), len(reader.shards[0].handled)))
    await writer.close()
    await reader.close()
    assert max(held) <= limit + 2
    assert held[-1] < limit
    assert reader.state.records == writer.state.records
    assert {k: r.age for k, r in writer.state.records.items()} == {
        f"k{i % 40}": i for i in range(writes - 40, writes)
    }
    # A read to the horizon every (limit - margin) writes, of one page per 100 messages, in
    # each process; and the two loads.
    per_process = writes // (limit - int(MARGIN) - 1) + 1
    reads = storage.calls["GET /channels/{id}/messages"]
    assert reads <= 2 * per_process * (limit // 100 + 1) + 2


async def test_a_table_whose_shards_are_threads_writes_compacts_and_reloads_when_archived() -> None:
    storage = MemoryStorage()
    layout = StorageLayout(storage, "discobase")
    await layout.ensure_category()
    parent = await layout.create_channel("pet")
    threads = [await storage.create_thread(parent, f"pet-{i}") for i in range(1, 4)]
    schema = TableSchema(
        "pet",
        [FieldSchema("name", "str"), FieldSchema("age", "int")],
        shards=4,
        channels=[parent, *threads],
        threads=True,
    )
    assert layout.threads() == dict.fromkeys(threads, parent)
    assert set(layout.channels()) == {parent}  # threads are no channels of the category
    table = engine(storage, schema, compaction=None)
    await table.load()
    await table.write([put(f"k{i}", f"pet{i}", i) for i in range(12)])
    assert all(storage.messages[t] for t in threads)  # every thread holds a shard
    for thread in threads:
        storage.archive(thread)  # idle for a week
    assert layout.threads() == {}  # archived threads are in no cache
    assert await layout.read_threads() == {
        t: (parent, f"pet-{i}") for i, t in enumerate(threads, 1)
    }
    await table.write([put(f"k{i}", f"pet{i}", 100 + i) for i in range(12)])
    touched = {t for t in threads if len(storage.messages[t]) == 2}
    assert touched and not storage.archived & touched  # a message unarchives its thread
    storage.advance(MARGIN + 1)
    assert await table.compact() > 0
    reloaded = engine(storage, schema, compaction=None)
    await reloaded.load()
    assert {k: r.age for k, r in reloaded.state.records.items()} == {
        f"k{i}": 100 + i for i in range(12)
    }
    listed = storage.calls["GET /guilds/{id}/channels"]
    for i in range(CATEGORY_LIMIT - 1):  # threads take none of the category's places
        await layout.create_channel(f"other-{i}")
    assert len({c.category_id for c in storage.channels.values() if c.kind != "category"}) == 1
    assert storage.calls["GET /guilds/{id}/channels"] == listed  # it never looked for room
    await storage.delete_channel(parent)
    assert not any(t in storage.channels for t in threads)  # a channel's threads go with it
