"""Discord's interaction deadlines, on every path: first use of a guild, forms, autocomplete, views.

Discord wants an answer (or a deferral) within 3 s, and the interaction's token serves follow-ups
and edits for 15 minutes. Opening a guild's database reads all its storage, so the tests make
that open slow in virtual time (``slow_open``) and check what each path does meanwhile: SimCord
returns from an interaction once the bot's handler waits for time to pass, so an answer present
before the test advances the clock was given at once. They run in strict mode, whose interaction
deadlines turn a late answer into Discord's errors (10062, 50027).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import simcord
from cog_world import World

import discobase
from discobot import DiscobaseBot
from discobot.databases import BACKGROUND_OPENS

pytestmark = pytest.mark.strict

STILL_OPENING = "The database of this server is still opening"
TOKEN_LIFETIME = 15 * 60


@pytest.fixture
def slow_open(monkeypatch: pytest.MonkeyPatch) -> Callable[[int, float], None]:
    """``slow_open(guild_id, seconds)``: that guild's database takes this long to open."""
    delays: dict[int, float] = {}
    real_open = discobase.Database.open

    async def open_slowly(self: discobase.Database) -> None:
        delay = delays.get(int(self.guild_ref), 0.0)
        if delay and not self.is_open:
            await asyncio.sleep(delay)
        await real_open(self)

    monkeypatch.setattr(discobase.Database, "open", open_slowly)
    return delays.__setitem__


async def restarted(world: World, bot: DiscobaseBot) -> None:
    """A new bot process on the same world; its databases open in the background."""
    await world.env.restart_bot(bot)
    world.bot = bot


@pytest.fixture
async def reopening(
    world: World, pets: Any, slow_open: Callable[[int, float], None], settings: Any
) -> World:
    """The guild has a ``pets`` table; the bot restarted and its open takes 10 minutes."""
    for number in range(12):
        await pets(name=f"pet{number:02}", legs=number).save()
    await (await world.database()).flush()
    slow_open(world.guild.id, 600)
    await restarted(world, DiscobaseBot(settings))
    return world


async def test_the_insert_form_answers_at_once_while_the_database_opens(reopening: World) -> None:
    world = reopening
    shown = await world.admin.slash(world.channel, "insert", table="pets")

    assert shown.acknowledged
    assert shown.modal is None
    assert shown.response is not None
    assert shown.response.content.startswith(STILL_OPENING)

    await world.env.advance_time(600)
    shown = await world.admin.slash(world.channel, "insert", table="pets")
    assert shown.modal is not None


async def test_autocomplete_answers_at_once_while_the_database_opens(reopening: World) -> None:
    world = reopening
    sent = len(world.env.http_requests)

    choices = await world.admin.autocomplete(world.channel, "find", "table", "")

    assert choices == []
    callbacks = [r for r in world.env.http_requests[sent:] if r.path.endswith("/callback")]
    assert len(callbacks) == 1
    await world.env.advance_time(600)
    assert await world.admin.autocomplete(world.channel, "find", "table", "") == [
        {"name": "pets", "value": "pets"}
    ]
    keys = await world.admin.autocomplete(world.channel, "update", "key", "pet0", table="pets")
    assert len(keys) == 10


async def test_commands_defer_before_the_open_completes_and_answer_after(
    reopening: World,
) -> None:
    world = reopening

    result = await world.reader.slash(world.channel, "find", table="pets", limit=3)

    assert result.deferred
    assert result.response is not None
    assert result.response.embeds == []
    await world.env.advance_time(600)
    assert result.response.embeds[0].title == "pets: records 1-3 of 14"


async def test_an_open_longer_than_the_token_is_reported_before_it_ends(
    world: World, pets: Any, slow_open: Callable[[int, float], None], settings: Any
) -> None:
    slow_open(world.guild.id, 20 * 60)
    await restarted(world, DiscobaseBot(settings))

    result = await world.reader.slash(world.channel, "table list")
    assert result.deferred
    await world.env.advance_time(TOKEN_LIFETIME - 30)

    assert result.response is not None
    assert result.response.content.startswith(STILL_OPENING)
    await world.env.advance_time(6 * 60)
    listed = await world.reader.slash(world.channel, "table list")
    assert listed.response is not None
    assert listed.response.embeds[0].description == "`pets`: 2 records"


async def test_a_slow_guild_delays_no_other_guild(
    world: World, pets: Any, slow_open: Callable[[int, float], None], settings: Any
) -> None:
    other = world.env.create_guild("other")
    channel = other.create_text_channel("general")
    owner = simcord.MemberActor(world.env, other, other.owner)
    slow_open(world.guild.id, 600)
    await restarted(world, DiscobaseBot(settings))

    result = await owner.slash(channel, "table list")

    assert result.response is not None
    assert result.response.content == "There are no tables yet; `/table create` makes one."
    assert world.bot.open_database(world.guild.id) is None


async def test_startup_opens_a_few_guilds_at_a_time_and_a_waited_for_guild_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    guilds = [world.env.create_guild(f"other {number}") for number in range(2 * BACKGROUND_OPENS)]
    await world.env.settle()
    opening = 0
    most = 0
    real_open = discobase.Database.open

    async def open_slowly(self: discobase.Database) -> None:
        nonlocal opening, most
        opening += 1
        most = max(most, opening)
        try:
            await asyncio.sleep(60)
            await real_open(self)
        finally:
            opening -= 1

    monkeypatch.setattr(discobase.Database, "open", open_slowly)
    await restarted(world, DiscobaseBot(settings))
    waited_for = guilds[-1]
    channel = waited_for.create_text_channel("general")
    owner = simcord.MemberActor(world.env, waited_for, waited_for.owner)

    result = await owner.slash(channel, "table list")
    assert result.deferred
    await world.env.advance_time(61)

    assert result.response is not None
    assert result.response.content == "There are no tables yet; `/table create` makes one."
    await world.env.advance_time(3 * 60)
    assert most == BACKGROUND_OPENS + 1
    for guild in [world.guild, *guilds]:
        assert world.bot.open_database(guild.id) is not None


async def test_page_buttons_end_before_the_token(reopening: World) -> None:
    world = reopening
    result = await world.admin.slash(world.channel, "find", table="pets", query="name~pet")
    await world.env.advance_time(600)
    assert result.response is not None
    assert result.response.embeds[0].title == "pets: records 1-5 of 12"
    assert result.response.components != []

    await world.env.advance_time(TOKEN_LIFETIME - 600 - 30)

    assert result.response.components == []
    assert result.response.embeds[0].title == "pets: records 1-5 of 12"


async def test_leaving_a_guild_closes_its_database(world: World, pets: Any) -> None:
    database = await world.database()
    assert database.is_open

    world.env.backend.remove_guild(world.guild.id)
    await world.env.settle()

    assert not database.is_open


async def test_a_big_guild_opens_at_startup_so_the_first_form_answers_in_time(
    world: World, pets: Any, settings: Any
) -> None:
    database = await world.database()
    for number in range(40):
        await database.create_table(f"t{number:02}", {"name": "str"}, primary_key="name")
    await restarted(world, DiscobaseBot(settings))

    shown = await world.admin.slash(world.channel, "insert", table="pets")

    assert shown.acknowledged
    assert shown.modal is not None


@pytest.fixture
def slow_work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``Database.check`` and ``Database.compact`` take 20 minutes; the list says what finished."""
    finished: list[str] = []
    real_check = discobase.Database.check
    real_compact = discobase.Database.compact

    async def check_slowly(self: discobase.Database) -> Any:
        await asyncio.sleep(20 * 60)
        report = await real_check(self)
        finished.append("check")
        return report

    async def compact_slowly(self: discobase.Database, name: str | None = None) -> int:
        await asyncio.sleep(20 * 60)
        deleted = await real_compact(self, name)
        finished.append("compact")
        return deleted

    monkeypatch.setattr(discobase.Database, "check", check_slowly)
    monkeypatch.setattr(discobase.Database, "compact", compact_slowly)
    return finished


async def test_a_compaction_longer_than_the_token_says_so_and_goes_on(
    world: World, pets: Any, slow_work: list[str]
) -> None:
    result = await world.admin.slash(world.channel, "compact", table="pets")
    await world.env.advance_time(TOKEN_LIFETIME - 30)

    assert result.response is not None
    assert result.response.content.startswith("Still compacting table `pets`")
    assert slow_work == []
    await world.env.advance_time(6 * 60)
    assert slow_work == ["compact"]
    assert await pets.count() == 2


async def test_a_check_longer_than_the_token_says_so(
    world: World, pets: Any, slow_work: list[str]
) -> None:
    result = await world.admin.slash(world.channel, "check")
    await world.env.advance_time(TOKEN_LIFETIME - 30)

    assert result.response is not None
    assert result.response.content.startswith("The check is still running")
    await world.env.advance_time(6 * 60)
    assert slow_work == ["check"]
    assert result.response.content.startswith("The check is still running")
