"""Security findings, each pinned: roles by id and unforgeable names, the admin role's storage
overwrite, and no interaction tokens in the logs. See docs/security.md."""

from __future__ import annotations

import logging
from typing import Any

import discord
import pytest
import simcord
from cog_world import ADMIN_ROLE, READER_ROLE, World

from discobot import DiscobaseBot, Settings, create_bot

REFUSED = "Changing the database needs"


async def impostor(world: World, role_name: str, user: str = "mallory") -> simcord.MemberActor:
    """What a member with Manage Roles can do: make a role with any name and hold it."""
    role = world.guild.create_role(role_name)
    member = world.guild.add_member(world.env.create_user(user), roles=[role])
    await world.env.settle()
    return member


async def restart_with(world: World, settings: Settings) -> DiscobaseBot:
    """Restart the bot process with other settings, on the same guild."""
    bot = create_bot(settings)
    await world.env.restart_bot(bot)
    return bot


def storage_overwrites(
    bot: DiscobaseBot, world: World
) -> list[dict[Any, discord.PermissionOverwrite]]:
    """The overwrites of the storage category and of every channel in it."""
    guild = bot.get_guild(world.guild.id)
    assert guild is not None
    category = discord.utils.get(guild.categories, name="discobase")
    assert category is not None
    return [category.overwrites, *(channel.overwrites for channel in category.channels)]


class TestRolesByName:
    """``DISCOBASE_ADMIN_ROLE=db-admin``: a name, resolved once, refused when ambiguous."""

    async def test_a_look_alike_made_later_grants_nothing_and_locks_no_one_out(
        self, world: World, pets: Any
    ) -> None:
        mallory = await impostor(world, ADMIN_ROLE)

        dropped = await mallory.slash(world.channel, "drop", table="pets")
        counted = await world.admin.slash(
            world.channel, "insert", table="pets", data='{"name": "ok"}'
        )

        assert dropped.response.content.startswith(REFUSED)
        assert not dropped.response.components
        assert counted.response.content.startswith("Inserted into `pets`")
        assert sorted(r.name for r in await pets.find()) == ["ok", "rex", "tweety"]

    async def test_a_name_two_roles_share_grants_nothing_and_gets_no_overwrite(
        self, world: World
    ) -> None:
        mallory = await impostor(world, ADMIN_ROLE)
        database = await world.database()
        await database.create_table("pets", {"name": "str"})

        for actor in (world.admin, mallory):
            result = await actor.slash(world.channel, "insert", table="pets", data='{"name": "x"}')
            assert result.response.content.startswith(REFUSED)
        named = {
            role.id for role in world.bot.get_guild(world.guild.id).roles if role.name == ADMIN_ROLE
        }
        for overwrites in storage_overwrites(world.bot, world):
            assert not named & {target.id for target in overwrites}
        listed = await world.manager.slash(world.channel, "table list")
        assert "pets" in listed.response.embeds[0].description

    async def test_refusals_do_not_say_which_role_to_create(self, world: World, pets: Any) -> None:
        read = await world.member.slash(world.channel, "find", table="pets")
        write = await world.reader.slash(world.channel, "drop", table="pets")

        assert read.response.content == (
            "Reading the database needs the Manage Server permission, the database admin role "
            "or the database reader role; a server admin can tell you who has them."
        )
        assert write.response.content == (
            "Changing the database needs the Manage Server permission or the database admin "
            "role; a server admin can tell you who has them."
        )
        for text in (read.response.content, write.response.content):
            assert ADMIN_ROLE not in text
            assert READER_ROLE not in text


class TestRolesById:
    """``DISCOBASE_ADMIN_ROLE=<id>``: only that role, ever."""

    async def test_a_deleted_roles_id_is_not_matched_by_a_role_named_like_it(
        self, world: World
    ) -> None:
        real = world.guild.roles[ADMIN_ROLE]
        await restart_with(world, Settings(admin_role=str(real.id)))
        before = await world.admin.slash(
            world.channel, "table create", name="pets", fields="name:str"
        )
        assert before.response.content.startswith("Created table `pets`")

        world.env.backend.delete_role(world.guild.id, real.id)
        mallory = await impostor(world, str(real.id))

        for actor in (world.admin, mallory):
            result = await actor.slash(world.channel, "drop", table="pets")
            assert result.response.content.startswith(REFUSED)

    @pytest.mark.parametrize("written", ["{id}", "<@&{id}>"])
    async def test_an_id_or_a_pasted_mention_names_the_role(
        self, world: World, written: str
    ) -> None:
        real = world.guild.roles[ADMIN_ROLE]
        await restart_with(world, Settings(admin_role=written.format(id=real.id)))

        allowed = await world.admin.slash(world.channel, "table create", name="t", fields="a:str")
        refused = await world.reader.slash(world.channel, "table create", name="u", fields="a:str")

        assert allowed.response.content.startswith("Created table `t`")
        assert refused.response.content.startswith(REFUSED)

    async def test_the_storage_overwrite_goes_to_the_configured_role_only(
        self, world: World
    ) -> None:
        real = world.guild.roles[ADMIN_ROLE]
        look_alike = world.guild.create_role(ADMIN_ROLE)
        bot = await restart_with(world, Settings(admin_role=str(real.id)))
        database = await bot.database(world.guild.id)
        await database.create_table("pets", {"name": "str"})

        every = storage_overwrites(bot, world)
        assert len(every) >= 3, "the category, the catalog channel and the table channel"
        for overwrites in every:
            targets = {target.id: overwrite for target, overwrite in overwrites.items()}
            assert look_alike.id not in targets
            admin = targets[real.id]
            assert admin.view_channel and admin.read_message_history
            assert admin.send_messages is False
            assert admin.create_public_threads is False
            assert admin.create_private_threads is False
            assert admin.send_messages_in_threads is False


@pytest.mark.parametrize(
    ("logger", "message", "args"),
    [
        (
            "discord.http",
            "%s %s with %s has returned %s",
            ("POST", "https://discord.com/api/v10/interactions/123/{token}/callback", None, 204),
        ),
        (
            "discord.http",
            "%s %s has received %s",
            ("PATCH", "https://discord.com/api/v10/webhooks/456/{token}/messages/@original", {}),
        ),
        (
            "discord.webhook.async_",
            "Webhook ID %s with %s %s has returned status code %s",
            (456, "POST", "https://discord.com/api/v10/webhooks/456/{token}?wait=1", 200),
        ),
    ],
)
def test_debug_logs_carry_no_interaction_tokens(
    caplog: pytest.LogCaptureFixture, logger: str, message: str, args: tuple[Any, ...]
) -> None:
    token = "aW50ZXJhY3Rpb246MTIzOnNlY3JldA"
    create_bot(Settings())
    with caplog.at_level(logging.DEBUG, logger="discord"):
        logging.getLogger(logger).debug(
            message, *(a.format(token=token) if isinstance(a, str) else a for a in args)
        )
        logging.getLogger("discord.http").debug("GET %s", "https://discord.com/api/v10/gateway")

    assert token not in caplog.text
    assert "<redacted>" in caplog.text
    assert "https://discord.com/api/v10/gateway" in caplog.text
