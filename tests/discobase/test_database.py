"""A Database with its own client (the 1.0.0 shape): bound by guild name, opened, closed."""

from __future__ import annotations

import pytest

import discobase

OWN = discobase.Database("my storage", retry=discobase.RetryPolicy(base_delay=0, max_delay=0))


@pytest.fixture
def simcord_bot():
    # SimCord runs the database's own client in place of a logged-in one.
    return OWN.bot


async def test_own_client_binds_by_guild_name_and_needs_no_privileged_intent(simcord_env):
    simcord_env.create_guild("other storage")
    guild = simcord_env.create_guild("my storage")
    assert not OWN.bot.intents.message_content and not OWN.bot.intents.members
    with pytest.raises(discobase.NotConnectedError):
        await OWN.create_table("t", {"a": str})

    @OWN.table
    class Entry(discobase.Table):
        text: str

    await OWN.open()
    await OWN.open()  # idempotent
    assert OWN.is_open and OWN.guild_id == guild.id
    await Entry(text="hello").save()
    assert [e.text for e in await Entry.find()] == ["hello"]
    assert OWN.metrics["POST /channels/{id}/messages"] == 2  # catalog event, then the batch
    await OWN.close()
    assert not OWN.is_open
    with pytest.raises(discobase.NotConnectedError):
        await Entry.find()
