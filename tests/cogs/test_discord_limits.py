"""Discord's limits on what the bot sends back: autocomplete choices and export attachments.

Autocomplete choices have names and values of 1-100 characters, and one bad choice makes
Discord reject the whole list (discord-api-docs, application-commands: autocomplete). An
interaction's answer may carry files up to its ``attachment_size_limit``
(interactions/receiving-and-responding), which is not the guild's own upload limit.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from typing import Any

import pytest
import simcord.interactions
from cog_world import World


async def test_autocomplete_offers_no_empty_and_no_over_long_key(world: World, pets: Any) -> None:
    await pets(name="", legs=1).save()
    await pets(name="x" * 101, legs=1).save()
    await pets(name="y" * 100, legs=1).save()

    choices = await world.admin.autocomplete(world.channel, "update", "key", "", table="pets")

    values = [choice["value"] for choice in choices]
    assert sorted(values) == sorted(["rex", "tweety", "y" * 100])
    assert all(1 <= len(choice["name"]) <= 100 for choice in choices)


@pytest.fixture
def attachment_size_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Interactions that allow answers with attachments of at most 2,000 bytes."""
    limit = 2000
    real_payload = simcord.interactions.base_payload

    def payload(*args: Any, **kwargs: Any) -> Any:
        record, built = real_payload(*args, **kwargs)
        built["attachment_size_limit"] = limit
        return record, built

    monkeypatch.setattr(simcord.interactions, "base_payload", payload)
    yield limit


async def test_export_keeps_to_the_interactions_attachment_limit(
    world: World, pets: Any, attachment_size_limit: int
) -> None:
    small = await world.reader.slash(world.channel, "export", table="pets")
    assert small.response is not None
    assert len(small.response.attachments) == 1
    rng = random.Random(3)
    for number in range(200):
        await pets(name="".join(rng.choices(string.ascii_letters, k=30)), legs=number).save()

    large = await world.reader.slash(world.channel, "export", table="pets")

    assert large.response is not None
    assert large.response.attachments == []
    assert f"over the {attachment_size_limit:,}-byte upload limit" in large.response.content
