"""A whole session of slash commands in a row, as a person runs them in the offline page.

Nothing is written before the first command: the first write of the guild happens inside a
command handler, where SimCord counts every task the bot starts as the bot's work. A library
task left waiting there would keep every later command from settling.
"""

from __future__ import annotations

import json

import simcord
from cog_world import World

from tests.conftest import discobase_tasks


def answered(result: simcord.InteractionResult) -> str:
    """Everything a command's answer shows: its text and its embeds, fields included."""
    response = result.response
    assert response is not None, "the command was not answered"
    parts = [response.content or ""]
    for embed in response.embeds:
        parts += [embed.title or "", embed.description or ""]
        parts += [f"{field.name}: {field.value}" for field in embed.fields]
    shown = "\n".join(part for part in parts if part)
    assert shown, "the answer shows nothing"
    return shown


async def test_every_command_answers_in_one_session_whose_first_write_is_a_command(
    world: World,
) -> None:
    admin, reader, channel = world.admin, world.reader, world.channel

    created = await admin.slash(
        channel, "table create", name="pets", fields="name:str, legs:int=4, vip:bool=false"
    )
    assert answered(created).startswith("Created table `pets`")
    for name, legs in [("rex", 4), ("tweety", 2), ("nemo", 0), ("kaa", 0)]:
        inserted = await admin.slash(
            channel, "insert", table="pets", data=json.dumps({"name": name, "legs": legs})
        )
        assert answered(inserted).startswith("Inserted into `pets`")
    counted = await reader.slash(channel, "count", table="pets", query="legs<=2")
    assert "3 records" in answered(counted)
    found = await reader.slash(channel, "find", table="pets", query="legs>=2", sort="-legs")
    shown = answered(found)
    assert shown.index("rex") < shown.index("tweety")
    assert "nemo" not in shown
    pets = (await world.database()).tables["pets"]
    [nemo_key] = [record.pk for record in await pets.find(name="nemo")]
    updated = await admin.slash(
        channel, "update", table="pets", key=nemo_key, changes='{"legs": 8}'
    )
    assert answered(updated).startswith(f"Updated `{nemo_key}`")
    [kaa_key] = [record.pk for record in await pets.find(name="kaa")]
    asked = await admin.slash(channel, "delete", table="pets", key=kaa_key)
    assert answered(asked).startswith("Delete the record with key")
    await admin.click(asked.response, label="Delete")
    assert asked.response.content.startswith("Deleted")
    exported = await reader.slash(channel, "export", table="pets")
    [file] = exported.response.attachments
    rows = [json.loads(line) for line in (await file.read()).decode().splitlines()]
    assert sorted((row["name"], row["legs"]) for row in rows) == [
        ("nemo", 8),
        ("rex", 4),
        ("tweety", 2),
    ]
    asked_drop = await admin.slash(channel, "drop", table="pets")
    await admin.click(asked_drop.response, label="Drop pets")
    assert asked_drop.response.content.startswith("Dropped table `pets`")
    listed = await reader.slash(channel, "table list")
    assert "no tables" in answered(listed)

    await world.env.settle()
    assert discobase_tasks(with_bot=True) == []
