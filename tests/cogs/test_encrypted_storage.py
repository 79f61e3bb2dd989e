"""The bot with ``DISCOBASE_ENCRYPTION_KEY``: commands work as before, and what it stores in
the guild is sealed under that key."""

from __future__ import annotations

from typing import Any

import pytest
from cog_world import ADMIN_ROLE, READER_ROLE, World

import discobase
from discobot import Settings, SettingsError

KEY = discobase.EncryptionKey.generate()


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(
        {
            "DISCOBASE_ADMIN_ROLE": ADMIN_ROLE,
            "DISCOBASE_READER_ROLE": READER_ROLE,
            "DISCOBASE_ENCRYPTION_KEY": KEY.text(),
        }
    )


async def test_commands_on_an_encrypted_database_store_only_ciphertext(
    world: World, pets: Any
) -> None:
    inserted = await world.admin.slash(
        world.channel, "insert", table="pets", data='{"name": "nemo", "legs": 0}'
    )
    assert inserted.response.content.startswith("Inserted into `pets` with key `nemo`")
    found = await world.reader.slash(world.channel, "find", table="pets", query="legs<3")
    assert found.response.embeds[0].title == "pets: records 1-2 of 2"

    storage = [
        message
        for channel in world.guild.channels.values()
        if channel.name in ("catalog", "pets")
        for shard in (channel, *channel.threads)  # the table's other shards are its threads
        for message in shard.history()
    ]
    assert len(storage) >= 4  # the catalog event and three batches
    for message in storage:
        assert message.content.startswith(f"dbs2 sealed key={KEY.id}")
        assert "nemo" not in message.content and "tweety" not in message.content

    with pytest.raises(discobase.MissingKeyError):
        await discobase.Database(world.guild.id, bot=world.bot).open()
    reader = discobase.Database(world.guild.id, bot=world.bot, encryption_key=KEY.text())
    await reader.open()
    names = sorted([r.name async for r in reader.tables["pets"].all()])  # type: ignore[attr-defined]
    assert names == ["nemo", "rex", "tweety"]
    await reader.close()


def test_a_malformed_key_is_a_settings_error_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="DISCOBASE_ENCRYPTION_KEY"):
        Settings.from_env({"DISCOBASE_ENCRYPTION_KEY": "not a key"})
    assert KEY.text() not in repr(Settings.from_env({"DISCOBASE_ENCRYPTION_KEY": KEY.text()}))


def test_encryption_required_is_a_setting_that_needs_a_key() -> None:
    assert not Settings.from_env({"DISCOBASE_ENCRYPTION_KEY": KEY.text()}).encryption_required
    assert Settings.from_env(
        {"DISCOBASE_ENCRYPTION_KEY": KEY.text(), "DISCOBASE_ENCRYPTION_REQUIRED": "true"}
    ).encryption_required
    with pytest.raises(SettingsError, match="DISCOBASE_ENCRYPTION_KEY too"):
        Settings.from_env({"DISCOBASE_ENCRYPTION_REQUIRED": "true"})
    with pytest.raises(SettingsError, match="true or false"):
        Settings.from_env(
            {"DISCOBASE_ENCRYPTION_KEY": KEY.text(), "DISCOBASE_ENCRYPTION_REQUIRED": "maybe"}
        )
