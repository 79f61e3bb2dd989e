"""``/table create``, ``/table list``, ``/table reshard``, ``/schema``, ``/drop``, ``/check`` and
``/compact``."""

from __future__ import annotations

import json
from typing import Any

import pytest
import simcord
from cog_world import World


async def test_table_create_makes_a_table_the_library_can_use(world: World) -> None:
    result = await world.admin.slash(
        world.channel,
        "table create",
        name="users",
        fields="name:str, age:int=0, email:str?",
        primary_key="name",
        indexes="age",
        unique="email",
    )

    assert result.ephemeral
    assert result.response.content == "Created table `users`."
    embed = result.response.embeds[0]
    assert "`age` int = `0`" in embed.description
    assert "`email` str?" in embed.description
    assert {field.name: field.value for field in embed.fields}["Primary key"] == "`name`"
    database = await world.database()
    schema = database.schema("users")
    assert schema.primary_key == "name"
    assert schema.indexes == ["age"]
    assert schema.unique == ["email"]
    users = database.tables["users"]
    await users(name="ann").save()
    assert (await users.get("ann")).age == 0
    # the library's default: one channel, its other five shards private threads of it
    parent, *threads = schema.channels
    assert schema.shards == 6 and schema.threads
    made = [c for c in world.env.backend.channels.values() if c.parent_id == parent]
    assert sorted(c.id for c in made) == sorted(threads)
    assert {c.type for c in made} == {12}  # private threads
    assert [c.name for c in world.guild.channels.values()].count("users") == 1


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"fields": "name:string"}, "unknown type `string`"),
        ({"fields": "name"}, "is not `name:type`"),
        (
            {"fields": "name:str", "primary_key": "id"},
            "`primary_key` names `id`, which is not a field",
        ),
        ({"fields": "name:str", "indexes": "age"}, "`indexes` names `age`"),
        ({"fields": "a:str, b:str", "primary_key": "a, b"}, "`primary_key` must be one field"),
    ],
)
async def test_table_create_refuses_bad_definitions(
    world: World, options: dict[str, str], complaint: str
) -> None:
    result = await world.admin.slash(world.channel, "table create", name="users", **options)

    assert result.ephemeral
    assert complaint in result.response.content
    assert "Nothing was changed" in result.response.content
    assert "users" not in (await world.database()).tables


async def test_table_create_refuses_an_existing_name(world: World, pets: Any) -> None:
    result = await world.admin.slash(world.channel, "table create", name="pets", fields="x:int")

    assert result.response.content.startswith("A table `pets` exists already")
    assert (await world.database()).schema("pets").record_count == 2


async def test_table_list_shows_tables_and_counts(world: World, pets: Any) -> None:
    empty_world_reply = "There are no tables yet"
    result = await world.reader.slash(world.channel, "table list")

    assert result.ephemeral
    assert empty_world_reply not in result.response.content
    assert result.response.embeds[0].title == "1 table"
    assert result.response.embeds[0].description == "`pets`: 2 records"


async def test_table_list_without_tables(world: World) -> None:
    result = await world.admin.slash(world.channel, "table list")
    assert result.response.content.startswith("There are no tables yet")


async def test_schema_shows_fields_key_indexes_and_count(world: World, pets: Any) -> None:
    result = await world.reader.slash(world.channel, "schema", table="pets")

    embed = result.response.embeds[0]
    assert embed.title == "Table pets"
    assert embed.description.splitlines() == [
        "`name` str",
        "`legs` int = `4`",
        "`email` str? = `null`",
    ]
    fields = {field.name: field.value for field in embed.fields}
    assert fields == {
        "Primary key": "`name`",
        "Indexes": "`legs`",
        "Unique": "`email`",
        "Records": "2",
    }


async def test_schema_of_an_unknown_table(world: World) -> None:
    result = await world.reader.slash(world.channel, "schema", table="nope")
    assert result.ephemeral
    assert result.response.content == "There is no table `nope`; `/table list` shows the tables."


async def test_drop_asks_first_and_drops_on_confirmation(world: World, pets: Any) -> None:
    asked = await world.admin.slash(world.channel, "drop", table="pets")

    assert asked.ephemeral
    assert asked.response.content.startswith("Drop table `pets` and its 2 records?")
    assert "pets" in (await world.database()).tables

    await world.admin.click(asked.response, label="Drop pets")

    assert asked.response.content == "Dropped table `pets` and its 2 records."
    assert asked.response.components == []
    assert "pets" not in (await world.database()).tables


async def test_drop_cancelled_drops_nothing(world: World, pets: Any) -> None:
    asked = await world.admin.slash(world.channel, "drop", table="pets")
    await world.admin.click(asked.response, label="Cancel")

    assert asked.response.content == "Cancelled; nothing was changed."
    assert await (await world.database()).tables["pets"].count() == 2


async def test_drop_cannot_be_confirmed_by_someone_else(world: World, pets: Any) -> None:
    asked = await world.admin.slash(world.channel, "drop", table="pets")
    # The confirmation is ephemeral: only the invoker ever sees the button.
    with pytest.raises(simcord.SetupError, match="not visible to this user"):
        await world.manager.click(asked.response, label="Drop pets")

    assert "pets" in (await world.database()).tables


async def test_drop_times_out_without_dropping(world: World, pets: Any) -> None:
    asked = await world.admin.slash(world.channel, "drop", table="pets")
    await world.env.advance_time(61)

    assert asked.response.content == "Not confirmed in time: table `pets` was not dropped."
    assert asked.response.components == []
    assert "pets" in (await world.database()).tables


async def test_check_reports_a_clean_database(world: World, pets: Any) -> None:
    result = await world.admin.slash(world.channel, "check")
    assert result.ephemeral
    assert result.response.content == "No problems found: every stored message is readable."


async def test_compact_keeps_the_records(world: World, pets: Any) -> None:
    result = await world.admin.slash(world.channel, "compact", table="pets")

    assert result.response.content.startswith("Compacted table `pets`: it loads from a snapshot")
    assert sorted(record.name for record in await pets.find()) == ["rex", "tweety"]


async def test_compact_of_an_unknown_table(world: World) -> None:
    result = await world.admin.slash(world.channel, "compact", table="nope")
    assert result.response.content.startswith("There is no table `nope`")


async def test_table_reshard_grows_a_table_of_one_shard_and_keeps_its_records(world: World) -> None:
    database = await world.database()
    logs = await database.create_table("logs", {"line": "str"}, shards=1)
    await logs.insert_many([{"line": f"line {i}"} for i in range(50)])

    result = await world.admin.slash(world.channel, "table reshard", table="logs", shards=4)

    assert result.ephemeral
    assert result.response.content == "Table `logs` has 4 shards now (it had 1)."
    schema = database.schema("logs")
    assert schema.shards == 4 and schema.threads and schema.resharding is None
    assert sorted(r.line for r in await logs.find()) == sorted(f"line {i}" for i in range(50))


async def test_table_reshard_refuses_a_count_that_is_not_a_multiple(
    world: World, pets: Any
) -> None:
    database = await world.database()
    channels = database.schema("pets").channels

    result = await world.admin.slash(world.channel, "table reshard", table="pets", shards=9)

    assert result.ephemeral
    assert "it can grow to a multiple of that up to 16 (12), not 9" in result.response.content
    assert database.schema("pets").channels == channels
    assert sorted(record.name for record in await pets.find()) == ["rex", "tweety"]


async def test_table_reshard_to_the_count_a_table_has_says_there_is_nothing_to_do(
    world: World, pets: Any
) -> None:
    database = await world.database()
    schema = database.schema("pets")
    calls = dict(database.metrics)

    result = await world.admin.slash(
        world.channel, "table reshard", table="pets", shards=schema.shards
    )

    assert result.ephemeral
    assert result.response.content == (
        f"Table `pets` has {schema.shards} shards already: nothing to do."
    )
    assert database.schema("pets") == schema and database.metrics == calls
    assert sorted(record.name for record in await pets.find()) == ["rex", "tweety"]


async def test_table_names_autocomplete(world: World, pets: Any) -> None:
    database = await world.database()
    await database.create_table("people", {"name": "str"})

    choices = await world.admin.autocomplete(world.channel, "drop", "table", "pe")

    assert [choice["value"] for choice in choices] == ["people", "pets"]


async def test_an_unexpected_error_is_logged_and_answered_generically(
    world: World, pets: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    database = await world.database()

    async def broken_compact(name: str | None = None) -> int:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(database, "compact", broken_compact)

    result = await world.admin.slash(world.channel, "compact", table="pets")

    assert result.ephemeral
    assert result.response.content.startswith("Something went wrong inside the bot")
    assert "disk on fire" not in result.response.content
    assert "command /compact failed" in caplog.text
    assert "RuntimeError: disk on fire" in caplog.text
    [captured] = world.env.errors
    assert "disk on fire" in str(captured)


async def test_schema_as_json_attaches_the_records_json_schema(world: World, pets: Any) -> None:
    result = await world.reader.slash(world.channel, "schema", table="pets", format="json")

    assert result.ephemeral
    assert result.response.content == "JSON Schema of a record of `pets`."
    [attached] = result.response.attachments
    assert attached.filename == "pets.schema.json"
    schema = json.loads(await attached.read())
    assert schema == (await world.database()).schema("pets").json_schema()
    assert schema["required"] == ["name"]
    assert schema["properties"]["legs"]["type"] == "integer"
    assert schema["properties"]["legs"]["default"] == 4


async def test_schema_as_json_over_the_upload_limit_is_refused(
    world: World, pets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_payload = simcord.interactions.base_payload

    def payload(*args: Any, **kwargs: Any) -> Any:
        record, built = real_payload(*args, **kwargs)
        built["attachment_size_limit"] = 100
        return record, built

    monkeypatch.setattr(simcord.interactions, "base_payload", payload)

    result = await world.reader.slash(world.channel, "schema", table="pets", format="json")

    assert result.ephemeral
    assert result.response.attachments == []
    assert "over the 100-byte upload limit" in result.response.content
