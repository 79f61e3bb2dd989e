"""Tables created by name at runtime behave like class-defined ones."""

from __future__ import annotations

import datetime as dt

import pytest

import discobase
from tests.conftest import make_bot, rest_calls


async def test_create_insert_find_schema_drop_and_reload(simcord_env, new_db):
    db = new_db()
    await db.open()
    Pets = await db.create_table(
        "pets",
        {
            "name": str,
            "legs": "int",
            "email": "str?",
            "born": ("datetime?", None),
            "note": ("str", ""),
        },
        primary_key="name",
        indexes=["legs"],
        unique=["email"],
    )
    assert db.tables["pets"] is Pets
    await Pets(name="rex", legs=4, born="2020-01-02T03:04:05+00:00").save()
    await Pets.model_validate({"name": "tweety", "legs": 2, "email": "t@x"}).save()
    assert [p.name for p in await Pets.find(Pets.legs > 2)] == ["rex"]
    assert (await Pets.get("rex")).born == dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    with pytest.raises(discobase.UniqueViolationError):
        await Pets(name="polly", legs=2, email="t@x").save()
    schema = db.schema("pets")
    assert (
        schema.primary_key == "name" and schema.indexes == ["legs"] and schema.unique == ["email"]
    )
    assert schema.record_count == 2
    assert [(f.name, f.type, f.optional) for f in schema.fields] == [
        ("name", "str", False),
        ("legs", "int", False),
        ("email", "str", True),
        ("born", "datetime", True),
        ("note", "str", False),
    ]
    await db.close()

    await simcord_env.restart_bot(make_bot())
    db2 = new_db()
    await db2.open()
    Pets2 = db2.tables["pets"]
    assert {p.name: p.legs for p in await Pets2.find()} == {"rex": 4, "tweety": 2}
    assert db2.schema("pets").to_dict() == schema.to_dict()
    await db2.drop_table("pets")
    assert "pets" not in db2.tables
    with pytest.raises(discobase.TableNotFoundError):
        db2.schema("pets")
    with pytest.raises(discobase.NotConnectedError):
        await Pets2.find()
    await db2.close()

    await simcord_env.restart_bot(make_bot())
    db3 = new_db()
    await db3.open()
    assert "pets" not in db3.tables
    await db3.close()


@pytest.mark.parametrize(
    ("name", "fields", "options", "message"),
    [
        ("Bad Name", {"a": str}, {}, "invalid table name"),
        ("catalog", {"a": str}, {}, "reserved"),
        ("t", {}, {}, "no fields"),
        ("t", {"a b": str}, {}, "invalid field name"),
        ("t", {"pk": str}, {}, "reserved"),
        ("t", {"a": "complex"}, {}, "unknown type"),
        ("t", {"a": ("int", "x")}, {}, "default"),
        ("t", {"a": str}, {"primary_key": "b"}, "not a field"),
        ("t", {"a": float}, {"primary_key": "a"}, "primary key"),
        ("t", {"a": str}, {"indexes": ["zz"]}, "unknown field"),
        ("t", {"a": "json"}, {"unique": ["a"]}, "cannot index"),
        ("t", {"a": str}, {"shards": 0}, "shards"),
    ],
)
async def test_bad_definitions_are_refused_before_anything_is_written(
    simcord_env, new_db, name, fields, options, message
):
    db = new_db()
    await db.open()
    before = len(simcord_env.http_requests)
    with pytest.raises(discobase.SchemaError, match=message):
        await db.create_table(name, fields, **options)
    assert len(simcord_env.http_requests) == before
    assert set(db.tables) == set()
    await db.close()


async def test_duplicate_table_is_refused(new_db, simcord_env):
    db = new_db()
    await db.open()
    before = len(simcord_env.http_requests)
    await db.create_table("t", {"a": str})
    # one channel and five private threads of it (the default six shards), one catalog event,
    # one read of the catalog (a racing create may win)
    parent, catalog = db.schema("t").channels[0], db._catalog.channel_id
    assert rest_calls(simcord_env, before) == [
        f"POST /guilds/{db.guild_id}/channels",
        *[f"POST /channels/{parent}/threads"] * 5,
        f"POST /channels/{catalog}/messages",
        f"GET /channels/{catalog}/messages",
    ]
    await simcord_env.settle()  # the catalog event's gateway echo changes nothing
    assert len(simcord_env.http_requests) == before + 8
    with pytest.raises(discobase.TableExistsError):
        await db.create_table("t", {"b": int})
    assert [f.name for f in db.schema("t").fields] == ["a"]
    await db.close()


async def test_class_schema_changes_are_checked_against_stored_records(simcord_env, new_db):
    class Item(discobase.Table):
        title: str

    db = new_db()
    db.table(Item)
    await db.open()
    await Item(title="a").save()
    await db.close()

    class ItemV2(discobase.Table):  # a new field with a default: compatible
        title: str
        stock: int = 0

        class Settings:
            name = "item"

    await simcord_env.restart_bot(make_bot())
    db2 = new_db()
    db2.table(ItemV2)
    await db2.open()
    assert [(i.title, i.stock) for i in await ItemV2.find()] == [("a", 0)]
    assert [f.name for f in db2.schema("item").fields] == ["title", "stock"]
    await db2.close()

    class ItemV3(discobase.Table):  # a new required field: the stored record does not fit
        title: str
        owner: str

        class Settings:
            name = "item"

    await simcord_env.restart_bot(make_bot())
    db3 = new_db()
    db3.table(ItemV3)
    with pytest.raises(discobase.SchemaMismatchError, match="owner"):
        await db3.open()


async def test_storage_spills_into_a_new_category_past_fifty_channels(simcord_env, new_db):
    db = new_db()
    await db.open()
    for i in range(55):
        await db.create_table(f"t{i}", {"a": str})
    guild = simcord_env.bot.get_guild(db.guild_id)
    categories = {c.name: c for c in guild.categories}
    assert len(categories["discobase"].channels) == 50  # the catalog and 49 tables
    assert len(categories["discobase-2"].channels) == 6
    assert categories["discobase-2"].overwrites_for(guild.default_role).view_channel is False
    await db.tables["t54"](a="last").save()
    assert (await db.check()).ok
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db2 = new_db()
    await db2.open()
    assert len(db2.tables) == 55
    assert [r.a for r in await db2.tables["t54"].find()] == ["last"]
    await db2.close()
