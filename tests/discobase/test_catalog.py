"""The catalog as the source of the set of tables: a deleted catalog is an error, never an
empty database; another process's drop and re-create of a table is followed."""

from __future__ import annotations

import pytest

import discobase
from discobase.codec import encode_catalog_event
from tests.conftest import make_bot


async def test_a_deleted_catalog_channel_is_an_error_not_an_empty_database(simcord_env, new_db):
    db = new_db()
    await db.open()
    Pets = await db.create_table("pets", {"name": str})
    await Pets(name="rex").save()
    catalog_id = db._catalog.channel_id
    await db.close()
    await simcord_env.bot.get_channel(catalog_id).delete()  # by hand, in Discord's UI
    await simcord_env.restart_bot(make_bot())
    channels_before = sorted(c.id for c in simcord_env.bot.get_all_channels())
    db2 = new_db()
    with pytest.raises(discobase.StorageCorruptError, match="catalog"):
        await db2.open()
    assert not db2.is_open
    # nothing was created over the old data
    assert sorted(c.id for c in simcord_env.bot.get_all_channels()) == channels_before


@pytest.mark.parametrize("live", [True, False])
async def test_a_table_dropped_and_created_again_by_another_process_is_followed(
    simcord_env, new_db, live
):
    writer = new_db()
    await writer.open()
    Old = await writer.create_table("t", {"name": str})
    await Old(name="old").save()
    reader = new_db()  # a second process on the same guild (SimCord hosts one bot: share it)
    await reader.open()
    assert [r.name for r in await reader.tables["t"].find()] == ["old"]
    if not live:
        reader.transport.unlisten()  # a gateway outage: the reader sees it all by catch-up
    await writer.drop_table("t")
    New = await writer.create_table("t", {"name": str, "size": int})
    await New(name="new", size=2).save()
    await simcord_env.settle()
    await reader.sync()
    table = reader.tables["t"]
    assert reader.schema("t").field_names == ["name", "size"]
    assert [(r.name, r.size) for r in await table.find()] == [("new", 2)]
    await New(name="newer", size=3).save()
    await reader.sync()  # and it keeps following the new channels
    assert sorted(r.name for r in await reader.tables["t"].find()) == ["new", "newer"]
    await reader.close()
    await writer.close()


async def test_a_table_whose_channel_the_gateway_has_not_announced_is_confirmed_by_rest(
    simcord_env, new_db
):
    db = new_db()
    await db.open()
    Fresh = await db.create_table("fresh", {"name": str}, shards=1)
    await Fresh(name="a").save()
    [channel_id] = db.schema("fresh").channels
    await db.close()
    await simcord_env.restart_bot(make_bot())
    # another process just made the channel: its CHANNEL_CREATE has not reached us yet
    guild = simcord_env.bot.get_channel(channel_id).guild
    guild._remove_channel(guild.get_channel(channel_id))
    db2 = new_db()
    await db2.open()
    assert [r.name for r in await db2.tables["fresh"].find()] == ["a"]
    assert db2.metrics["GET /guilds/{id}/channels"] == 1
    await db2.close()


async def test_a_second_catalog_channel_is_read_live_and_on_open(simcord_env, guild, new_db):
    """Two processes that opened a fresh guild at once can each keep a catalog (snowflakes of
    different workers are only k-sorted): events in either one count."""
    db = new_db()
    await db.open()
    Kept = await db.create_table("kept", {"name": str})
    await Kept(name="a").save()
    cached = simcord_env.bot.get_guild(guild.id)
    [category] = [c for c in cached.categories if c.name == "discobase"]
    other_catalog = await cached.create_text_channel("catalog", category=category)
    table_channel = await cached.create_text_channel("late", category=category)
    schema = {"name": "late", "fields": [{"name": "v", "type": "int"}]}
    schema["channels"] = [str(table_channel.id)]
    await other_catalog.send(
        encode_catalog_event({"op": "create", "table": "late", "schema": schema})
    )
    await simcord_env.settle()
    assert set(db.tables) == {"kept", "late"}
    await db.tables["late"](v=1).save()
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db2 = new_db()
    await db2.open()
    assert set(db2.tables) == {"kept", "late"}
    assert [r.v for r in await db2.tables["late"].find()] == [1]
    assert [r.name for r in await db2.tables["kept"].find()] == ["a"]
    await db2.close()
