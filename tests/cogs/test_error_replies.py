"""One error path (discobot.errors): a command's table option, its body, a button and a form all
turn their errors into one ephemeral reply. Expected errors are answered where they happen (no
handler failure reaches discord.py, so SimCord records none); a bug is logged and answered with
the generic message wherever it happens."""

from __future__ import annotations

from typing import Any

import pytest
from cog_world import World

import discobase
from discobot.errors import UNEXPECTED_ERROR_REPLY

NO_CATS = "There is no table `cats`; `/table list` shows the tables."

TABLE_COMMANDS: list[tuple[str, dict[str, Any]]] = [
    ("schema", {}),
    ("drop", {}),
    ("compact", {}),
    ("find", {"query": "legs>2"}),
    ("count", {}),
    ("export", {}),
    ("insert", {}),
    ("insert", {"data": '{"name": "tom"}'}),
    ("update", {"key": "rex", "changes": '{"legs": 3}'}),
    ("delete", {"key": "rex"}),
]


async def stored(pets: Any) -> dict[str, dict[str, Any]]:
    return {record.name: record.model_dump() for record in await pets.find()}


@pytest.mark.parametrize(("command", "options"), TABLE_COMMANDS)
async def test_an_unknown_table_is_answered_by_its_option(
    world: World, pets: Any, command: str, options: dict[str, Any]
) -> None:
    before = await stored(pets)

    result = await world.admin.slash(world.channel, command, table="cats", **options)

    assert result.ephemeral
    assert result.response.content == NO_CATS
    assert result.modal is None
    assert await stored(pets) == before
    assert world.env.errors == []


async def test_a_table_option_resolves_the_table_the_member_chose(world: World, pets: Any) -> None:
    database = await world.database()
    await database.create_table("cats", {"name": "str"}, primary_key="name")

    shown = await world.reader.slash(world.channel, "schema", table="cats")
    counted = await world.reader.slash(world.channel, "count", table="pets")

    assert shown.response.embeds[0].title == "Table cats"
    assert counted.response.content == "`pets` has 2 records."


async def test_an_unknown_field_in_update_is_explained_by_the_library_precisely(
    world: World, pets: Any
) -> None:
    before = await stored(pets)

    result = await world.admin.slash(
        world.channel, "update", table="pets", key="rex", changes='{"wings": 2}'
    )

    assert result.response.content == (
        "Table `pets` has no field `wings`; its fields are `name`, `legs`, `email`. "
        "Nothing was changed."
    )
    assert await stored(pets) == before


async def test_a_confirmed_drop_of_a_table_dropped_meanwhile_says_so_in_place(
    world: World, pets: Any
) -> None:
    asked = await world.admin.slash(world.channel, "drop", table="pets")
    await (await world.database()).drop_table("pets")

    await world.admin.click(asked.response, label="Drop pets")

    assert asked.response.content == "There is no table `pets`; `/table list` shows the tables."
    assert asked.response.components == []
    assert world.env.errors == []


async def test_a_bug_behind_a_button_is_logged_and_answered_generically(
    world: World, pets: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_delete(self: discobase.Table, **_: Any) -> None:
        raise RuntimeError("disk on fire")

    asked = await world.admin.slash(world.channel, "delete", table="pets", key="rex")
    monkeypatch.setattr(pets, "delete", broken_delete)

    pressed = await world.admin.click(asked.response, label="Delete")

    [reply] = pressed.followups
    assert reply.content == UNEXPECTED_ERROR_REPLY
    assert "RuntimeError: disk on fire" in caplog.text
    [captured] = world.env.errors
    assert str(captured) == "disk on fire"
    assert "rex" in await stored(pets)


async def test_a_bug_behind_a_form_is_logged_and_answered_generically(
    world: World, pets: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_insert(self: discobase.Table) -> None:
        raise RuntimeError("disk on fire")

    shown = await world.admin.slash(world.channel, "insert", table="pets")
    monkeypatch.setattr(pets, "insert", broken_insert)
    inputs = [component["components"][0] for component in shown.modal["components"]]

    submitted = await world.admin.submit_modal(shown, {inputs[0]["custom_id"]: "dory"})

    assert submitted.response.content == UNEXPECTED_ERROR_REPLY
    assert "modal_submit interaction failed" in caplog.text
    assert "RuntimeError: disk on fire" in caplog.text
    [captured] = world.env.errors
    assert str(captured) == "disk on fire"
    assert "dory" not in await stored(pets)


async def test_a_table_with_a_shard_deleted_by_hand_is_answered_precisely(world: World) -> None:
    database = await world.database()
    cats = await database.create_table("cats", {"name": "str"}, primary_key="name")
    await cats(name="tom").save()
    thread = database.schema("cats").channels[1]
    await world.env.bot.get_channel(thread).delete()
    await world.env.settle()
    await world.bot.databases.forget(world.guild.id)  # the bot restarts: a fresh open

    result = await world.admin.slash(world.channel, "count", table="cats")

    assert result.ephemeral
    reply = result.response.content
    assert reply.startswith("Table `cats` cannot be read:") and str(thread) in reply
    assert "restore" in reply and "Nothing was changed" in reply
    assert "cats" not in (await world.database()).tables
    assert world.env.errors == []


async def test_a_table_whose_shard_is_deleted_while_the_bot_runs_is_answered_the_same_way(
    world: World,
) -> None:
    database = await world.database()
    cats = await database.create_table("cats", {"name": "str"}, primary_key="name")
    await cats(name="tom").save()
    thread = database.schema("cats").channels[1]
    world.env.backend.delete_channel(thread)  # a moderator deletes it; the bot runs on
    await world.env.settle()

    for command, options in [("count", {}), ("insert", {"data": '{"name": "kit"}'})]:
        result = await world.admin.slash(world.channel, command, table="cats", **options)
        assert result.ephemeral
        reply = result.response.content
        assert reply.startswith("Table `cats` cannot be read:") and str(thread) in reply
    assert "cats" not in database.tables
    assert world.env.errors == []
