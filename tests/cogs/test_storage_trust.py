"""Through the commands: what the guild owner (who sees the hidden storage channels) posts there
is not storage. A forged batch changes no record ``/find`` shows, and a forged catalog ``create``
naming a channel of another guild the bot is in never makes ``/insert`` post there or ``/drop``
delete it."""

from __future__ import annotations

import json
from typing import Any

from cog_world import World

from discobase.codec import Entry, encode_batch, encode_catalog_event, encode_entry


def mentioning(world: World, content: str) -> str:
    """A mention of the bot in the header line, so the gateway delivers the text without the
    Message Content intent (as on Discord)."""
    header, _, body = content.partition("\n")
    return f"{header} m=<@{world.bot.user.id}>\n{body}"


async def test_a_batch_the_owner_posts_into_storage_changes_nothing(
    world: World, pets: Any
) -> None:
    database = await world.database()
    channel_id = database.schema("pets").channels[0]  # the table's channel, its first shard
    storage = next(c for c in world.guild.channels.values() if c.id == channel_id)
    forged = encode_batch(
        "0123456789abcdef",
        [
            encode_entry(Entry("rex", {"name": "rex", "legs": 99, "email": None})),
            encode_entry(Entry("evil", {"name": "evil", "legs": 1, "email": None})),
        ],
    )
    await world.owner.send(storage, mentioning(world, forged.content))
    await world.env.settle()

    found = await world.reader.slash(world.channel, "find", table="pets")
    shown = json.dumps([e.to_dict() for e in found.response.embeds]) + found.response.content
    assert "evil" not in shown and "99" not in shown
    assert await pets.count() == 2
    checked = await world.admin.slash(world.channel, "check")
    assert "foreign-author" in checked.response.content + json.dumps(
        [e.to_dict() for e in checked.response.embeds]
    )


async def test_a_forged_create_never_points_commands_at_another_guild(world: World) -> None:
    database = await world.database()
    victim = world.env.create_guild("victim")
    general = victim.create_text_channel("general")
    event = {
        "op": "create",
        "table": "stolen",
        "schema": {
            "name": "stolen",
            "fields": [{"name": "text", "type": "str"}],
            "channels": [str(general.id)],
        },
    }
    catalog = world.guild.channels["catalog"]
    await world.owner.send(catalog, mentioning(world, encode_catalog_event(event)))
    await world.env.settle()
    assert "stolen" not in database.tables

    inserted = await world.owner.slash(
        world.channel, "insert", table="stolen", data='{"text": "hello"}'
    )
    dropped = await world.owner.slash(world.channel, "drop", table="stolen")

    assert "stolen" in inserted.response.content and "Inserted" not in inserted.response.content
    assert dropped.response.components == []  # nothing to confirm: there is no such table
    assert general.id in {c.id for c in victim.channels.values()}
    assert general.history() == []
