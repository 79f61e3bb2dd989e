"""Stored values are inert in every reply: no link, mention, channel or command link, timestamp,
emoji or markdown in them does anything, whichever command shows them."""

from __future__ import annotations

import json
import re
from typing import Any

import discord
import pytest
from cog_world import World

HOSTILE = [
    "[docs](https://a) [Re-verify your account](https://evil.example)",
    "<#123456789012345678> </drop:123456789012345678> <t:1618953630:R>",
    "<@123456789012345678> <@&123456789012345678> @everyone @here",
    "<:pepe:123456789012345678> <a:dance:123456789012345678>",
    "**bold** __under__ *it* ~~gone~~ ||spoiler|| -# subtext",
    "# heading\n> quote\n- item",
    "```block``` `tick` \\`escaped\\`",
    "https://evil.example/login <https://evil.example/hidden>",
]
MARKERS = [
    "Re-verify",
    "evil",
    "123456789012345678",
    "1618953630",
    "everyone",
    "bold",
    "spoiler",
    "heading",
    "quote",
    "tick",
    "subtext",
    "dance",
]


def outside_code(text: str) -> str:
    """``text`` without its code blocks and inline code, where Discord renders nothing."""
    return re.sub(r"```[^`]*```|`[^`]*`", "", text)


def texts(message: Any) -> str:
    """Everything a reply shows: its content and every part of its embeds."""
    parts = [message.content or ""]
    for embed in message.embeds:
        parts += [embed.title or "", embed.description or "", embed.footer.text or ""]
        parts += [field.name + "\n" + field.value for field in embed.fields]
    return "\n".join(parts)


def assert_inert(message: Any) -> None:
    shown = texts(message)
    rest = outside_code(shown)
    assert "`" not in rest, f"an unbalanced backtick in {shown!r}"
    for marker in MARKERS:
        assert marker not in rest, f"{marker!r} is live in {shown!r}"


@pytest.fixture
async def hostile(world: World) -> Any:
    database = await world.database()
    table = await database.create_table(
        "notes",
        {"title": "str", "body": "str", "extra": ("json", {"k": HOSTILE[0]}), "n": ("int", 0)},
        primary_key="title",
    )
    for number, value in enumerate(HOSTILE):
        await table(title=f"{value} #{number}", body=value, extra={"v": value}).save()
    return table


async def test_find_shows_stored_values_inertly_as_cards_and_as_a_table(
    world: World, hostile: Any
) -> None:
    for view in ("cards", "table"):
        result = await world.reader.slash(world.channel, "find", table="notes", view=view)
        pages = len(HOSTILE) if view == "cards" else 1
        for _ in range(pages):
            assert_inert(result.response)
            assert any(marker in texts(result.response) for marker in MARKERS)
            if result.response.components and view == "cards":
                button = {
                    c["label"]: c for row in result.response.components for c in row["components"]
                }
                if button["Next"].get("disabled"):
                    break
                await world.reader.click(result.response, label="Next")


@pytest.mark.parametrize("value", HOSTILE)
async def test_writes_and_schema_show_stored_values_inertly(
    world: World, hostile: Any, value: str
) -> None:
    data = json.dumps({"title": "x" + value, "body": value, "extra": [value]})
    inserted = await world.admin.slash(world.channel, "insert", table="notes", data=data)
    updated = await world.admin.slash(
        world.channel, "update", table="notes", key="x" + value, changes=json.dumps({"body": value})
    )
    duplicate = await world.admin.slash(world.channel, "insert", table="notes", data=data)
    deleting = await world.admin.slash(world.channel, "delete", table="notes", key="x" + value)
    schema = await world.reader.slash(world.channel, "schema", table="notes")

    assert inserted.response.content.startswith("Inserted into `notes`")
    assert updated.response.content.startswith("Updated `x")
    assert "use /update" in duplicate.response.content
    assert deleting.response.content.startswith("Delete the record with key `x")
    for result in (inserted, updated, duplicate, deleting, schema):
        assert_inert(result.response)


async def test_a_table_view_fits_a_message_and_pages(world: World, pets: Any) -> None:
    for number in range(60):
        await pets(name=f"pet{number:02}" + "y" * 30, legs=number, email=f"p{number}@x.org").save()

    result = await world.reader.slash(
        world.channel, "find", table="pets", query="name~pet", sort="legs", limit=100, view="table"
    )

    first = result.response.embeds[0]
    assert len(first.description) <= 2000
    lines = first.description.split("\n")
    assert lines[:2] == ["where `name~pet` sorted by `legs`", "```"]
    assert lines[-1] == "```"
    header, rule, *rows = lines[2:-1]
    assert rule == "-" * 24 + "-+-" + "-" * 4 + "-+-" + "-" * 9
    assert header.split() == ["name", "|", "legs", "|", "email"]
    assert rows[0] == "pet00" + "y" * 18 + "… | 0    | p0@x.org"
    columns = {tuple(m.start() for m in re.finditer(r" \| ", line)) for line in [header, *rows]}
    assert columns == {(24, 31)}, "the columns line up"
    shown = len(rows)
    assert first.title == f"pets: records 1-{shown} of 60"
    await world.reader.click(result.response, label="Next")
    assert result.response.embeds[0].title.startswith(f"pets: records {shown + 1}-")


async def test_share_posts_the_results_for_the_channel(world: World, pets: Any) -> None:
    before = len(world.channel.history(viewer=world.member))
    result = await world.reader.slash(world.channel, "find", table="pets", share=True)

    assert result.ephemeral
    assert result.response.content == "Shared the first page in the channel."
    [shared] = world.channel.history(viewer=world.member)[before:]
    assert shared.embeds[0].title == "pets: records 1-2 of 2"
    assert shared.embeds[0].fields[0].name == "name: `rex`"
    assert shared.mentions == []


async def test_results_stay_private_by_default(world: World, pets: Any) -> None:
    before = len(world.channel.history(viewer=world.member))
    result = await world.reader.slash(world.channel, "find", table="pets")
    assert result.ephemeral
    assert result.response.embeds[0].title == "pets: records 1-2 of 2"
    assert len(world.channel.history(viewer=world.member)) == before


def test_discord_escape_markdown_alone_leaves_a_masked_link() -> None:
    escaped = discord.utils.escape_markdown(HOSTILE[0])
    assert "](https://evil.example)" in escaped
