"""The permission matrix: who may run which command, enforced in code and mirrored in Discord."""

from __future__ import annotations

from typing import Any

import pytest
import simcord
from cog_world import World

from discobot import Settings
from discobot.permissions import Access

READS: list[tuple[str, dict[str, Any]]] = [
    ("table list", {}),
    ("schema", {"table": "pets"}),
    ("find", {"table": "pets", "query": "legs>=2"}),
    ("count", {"table": "pets"}),
    ("export", {"table": "pets", "format": "csv"}),
]
WRITES: list[tuple[str, dict[str, Any]]] = [
    ("table create", {"name": "birds", "fields": "name:str"}),
    ("insert", {"table": "pets", "data": '{"name": "new"}'}),
    ("update", {"table": "pets", "key": "rex", "changes": '{"legs": 3}'}),
    ("delete", {"table": "pets", "key": "rex"}),
    ("drop", {"table": "pets"}),
    ("check", {}),
    ("compact", {"table": "pets"}),
    ("table reshard", {"table": "pets", "shards": 12}),
    ("import", {"table": "pets", "file": ("p.jsonl", b'{"name": "new"}\n')}),
]
GRANTS = {
    "owner": Access.WRITE,
    "manager": Access.WRITE,
    "admin": Access.WRITE,
    "reader": Access.READ,
    "member": None,
}
CASES = [
    pytest.param(actor, name, options, access, id=f"{actor}-{name}")
    for actor in GRANTS
    for access, commands in ((Access.READ, READS), (Access.WRITE, WRITES))
    for name, options in commands
]


def allowed(actor: str, access: Access) -> bool:
    granted = GRANTS[actor]
    return granted is Access.WRITE or granted is access


async def assert_pets_unchanged(world: World, pets: Any) -> None:
    database = await world.database()
    assert sorted(database.tables) == ["pets"]
    assert await pets.count() == 2
    assert (await pets.get("rex")).legs == 4


@pytest.mark.parametrize(("actor", "name", "options", "access"), CASES)
async def test_permission_matrix(
    world: World, pets: Any, *, actor: str, name: str, options: dict[str, Any], access: Access
) -> None:
    result = await getattr(world, actor).slash(world.channel, name, **options)

    assert result.ephemeral
    text = result.response.content
    if allowed(actor, access):
        assert "needs" not in text
    else:
        verb = "Changing" if access is Access.WRITE else "Reading"
        assert text.startswith(f"{verb} the database needs the Manage Server permission")
        assert "the database admin role" in text
        assert ("the database reader role" in text) is (access is Access.READ)
        assert "db-admin" not in text
        assert "db-reader" not in text
        assert not result.response.embeds
        assert not result.response.attachments
        await assert_pets_unchanged(world, pets)


class TestWithoutRoles:
    """With no admin or reader role configured, only Manage Server members use the bot."""

    @pytest.fixture
    def settings(self) -> Settings:
        return Settings()

    async def test_commands_are_hidden_from_members_without_manage_server(
        self, world: World
    ) -> None:
        assert world.member.available_commands(world.channel) == ()
        assert world.reader.available_commands(world.channel) == ()
        assert set(world.manager.available_commands(world.channel)) >= {
            "table create",
            "find",
            "drop",
            "check",
        }
        with pytest.raises(simcord.SetupError, match="not visible"):
            await world.member.slash(world.channel, "table list")

    async def test_roles_grant_nothing_when_not_configured(self, world: World, pets: Any) -> None:
        result = await world.manager.slash(world.channel, "count", table="pets")
        assert "2 records" in result.response.content


class TestDefaultPermissions:
    """``default_permissions`` follows the settings: it only hides what code refuses anyway."""

    @pytest.mark.parametrize(
        ("settings_", "write_hidden", "read_hidden"),
        [
            (Settings(), True, True),
            (Settings(reader_role="r"), True, False),
            (Settings(admin_role="a"), False, False),
        ],
    )
    async def test_default_permissions_follow_the_roles(
        self, settings_: Settings, write_hidden: bool, read_hidden: bool
    ) -> None:
        from discobot import create_bot

        bot = create_bot(settings_)
        async with simcord.run(bot):
            commands = {command.name: command for command in bot.tree.get_commands()}
            for name in ("drop", "insert", "update", "check"):
                assert commands[name].guild_only
                assert (commands[name].default_permissions is not None) is write_hidden
            for name in ("find", "count", "schema", "table"):
                assert (commands[name].default_permissions is not None) is read_hidden
