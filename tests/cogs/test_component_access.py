"""Buttons and forms check access again when they are used, not only when the command ran.

A confirmation stays pressable for a minute and a form for fifteen; a member whose role was taken
away in between is refused, and nothing changes.
"""

from __future__ import annotations

from typing import Any

import simcord
from cog_world import ADMIN_ROLE, READER_ROLE, World


def take_role(world: World, member: simcord.MemberActor, role: str) -> None:
    world.env.backend.remove_member_role(world.guild.id, member.id, world.guild.roles[role].id)


async def test_drop_is_refused_to_an_admin_who_lost_the_role(world: World, pets: Any) -> None:
    asked = await world.admin.slash(world.channel, "drop", table="pets")
    take_role(world, world.admin, ADMIN_ROLE)
    await world.env.settle()

    pressed = await world.admin.click(asked.response, label="Drop pets")

    assert pressed.response is not None
    assert pressed.response.content.startswith("Changing the database needs")
    assert pressed.ephemeral
    assert "pets" in (await world.database()).tables
    assert await pets.count() == 2


async def test_the_insert_form_is_refused_to_an_admin_who_lost_the_role(
    world: World, pets: Any
) -> None:
    shown = await world.admin.slash(world.channel, "insert", table="pets")
    assert shown.modal is not None
    inputs = [component["components"][0] for component in shown.modal["components"]]
    take_role(world, world.admin, ADMIN_ROLE)
    await world.env.settle()

    submitted = await world.admin.submit_modal(shown, {inputs[0]["custom_id"]: "dory"})

    assert submitted.response is not None
    assert submitted.response.content.startswith("Changing the database needs")
    assert await pets.count() == 2
    assert "dory" not in [record.name async for record in pets.all()]


async def test_page_buttons_are_refused_to_a_reader_who_lost_the_role(
    world: World, pets: Any
) -> None:
    for number in range(6):
        await pets(name=f"pet{number}", legs=number).save()
    result = await world.reader.slash(world.channel, "find", table="pets")
    assert result.response is not None
    first_page = result.response.embeds[0].title
    take_role(world, world.reader, READER_ROLE)
    await world.env.settle()

    pressed = await world.reader.click(result.response, label="Next")

    assert pressed.response is not None
    assert pressed.response.content.startswith("Reading the database needs")
    assert result.response.embeds[0].title == first_page


async def test_a_member_who_keeps_the_role_can_still_confirm(world: World, pets: Any) -> None:
    asked = await world.admin.slash(world.channel, "drop", table="pets")
    take_role(world, world.reader, READER_ROLE)
    await world.env.settle()

    await world.admin.click(asked.response, label="Drop pets")

    assert "pets" not in (await world.database()).tables
