"""The strict simulated Discord (tests/strict.py) does what it models, knob by knob, observed
through plain discord.py calls."""

from __future__ import annotations

import asyncio

import aiohttp
import discord
import pytest
import simcord
from discord.ext import commands

from tests.conftest import make_bot
from tests.strict import NONCE_WINDOW, STRICT_RUN, Strict


@pytest.fixture
def simcord_bot() -> commands.Bot:
    bot = make_bot()
    events: list[str] = []
    bot.events = events  # type: ignore[attr-defined]

    @bot.tree.command(description="Make REST calls, then answer")
    async def slow(interaction: discord.Interaction, calls: int) -> None:
        assert isinstance(interaction.channel, discord.TextChannel)
        for i in range(calls):
            await interaction.channel.send(f"work {i}")
        await interaction.response.send_message("done")

    @bot.tree.command(description="Defer, wait, then follow up")
    async def late(interaction: discord.Interaction, minutes: int) -> None:
        await interaction.response.defer()
        await asyncio.sleep(minutes * 60)
        await interaction.followup.send("finally")

    async def on_ready() -> None:
        events.append("ready")

    async def on_guild_available(guild: discord.Guild) -> None:
        events.append(f"available {guild.id}")

    async def on_guild_unavailable(guild: discord.Guild) -> None:
        events.append(f"unavailable {guild.id}")

    bot.add_listener(on_ready)
    bot.add_listener(on_guild_available)
    bot.add_listener(on_guild_unavailable)
    return bot


@pytest.fixture
def channel(simcord_env: simcord.Env, guild: simcord.GuildHandle) -> discord.TextChannel:
    text = simcord_env.bot.get_channel(guild.create_text_channel("general").id)
    assert isinstance(text, discord.TextChannel)
    return text


def stored(env: simcord.Env, channel_id: int) -> list[str]:
    """The contents of a channel's messages as Discord holds them, oldest first."""
    messages = env.backend.messages.get(channel_id, {})
    return [messages[i].content for i in sorted(messages)]


def cached(env: simcord.Env) -> list[int]:
    """Ids of the messages the bot's gateway cache has seen, in arrival order."""
    return [m.id for m in env.bot.cached_messages]


# -- always on ---------------------------------------------------------------------------------


async def test_a_repeated_nonce_returns_the_earlier_message_and_creates_nothing(
    simcord_env, strict: Strict, channel
):
    first = await channel.send("one", nonce="n1")
    again = await channel.send("two", nonce="n1")
    other = await channel.send("three", nonce="n2")
    assert again.id == first.id and again.content == "one"
    assert other.id != first.id
    assert stored(simcord_env, channel.id) == ["one", "three"]
    assert strict.nonce_hits == 1


async def test_missing_nonce_is_sent_as_the_literal_three_dots_and_collides(
    simcord_env, strict: Strict, channel
):
    first = await channel.send("one", nonce=discord.utils.MISSING)
    second = await channel.send("two", nonce=discord.utils.MISSING)
    assert simcord_env.http_requests[-1].json["nonce"] == "..."
    assert second.id == first.id
    assert stored(simcord_env, channel.id) == ["one"]


async def test_default_random_nonces_do_not_collide_and_old_nonces_expire(
    simcord_env, strict: Strict, channel
):
    await channel.send("one")
    await channel.send("two")
    await channel.send("three", nonce="n")
    await simcord_env.advance_time(NONCE_WINDOW + 1)
    await channel.send("four", nonce="n")
    assert stored(simcord_env, channel.id) == ["one", "two", "three", "four"]


@pytest.mark.skipif(STRICT_RUN, reason="about plain SimCord; DISCOBASE_STRICT=1 is set")
async def test_plain_simcord_ignores_enforce_nonce(simcord_env, channel):
    await channel.send("one", nonce="n")
    await channel.send("two", nonce="n")
    assert stored(simcord_env, channel.id) == ["one", "two"]


async def test_a_second_process_gets_lower_ids_for_later_messages(
    simcord_env, strict: Strict, channel
):
    other = await strict.second_process()
    mine = await channel.send("first")
    other_channel = other.bot.get_channel(channel.id)
    theirs = await other_channel.send("second")
    assert theirs.id < mine.id  # sent later, sorts earlier
    assert other.bot.user.id == simcord_env.bot.user.id  # the same token
    await simcord_env.settle()
    assert set(cached(simcord_env)) == {mine.id, theirs.id}


async def test_gateway_events_can_arrive_after_the_rest_response(
    simcord_env, strict: Strict, channel
):
    strict.late_gateway = 1.0
    late = await channel.send("late")
    assert late.id not in cached(simcord_env)
    await simcord_env.settle()
    assert late.id in cached(simcord_env)
    strict.late_gateway = 0.0
    early = await channel.send("early")
    assert early.id in cached(simcord_env)


async def test_late_events_keep_their_order_on_the_connection(simcord_env, strict: Strict, channel):
    strict.late_gateway = 0.5
    sent = [(await channel.send(f"m{i}")).id for i in range(20)]
    await simcord_env.settle()
    assert cached(simcord_env) == sent


async def test_an_interaction_not_answered_within_3_modelled_seconds_is_unknown(
    simcord_env, strict: Strict, guild, channel
):
    await simcord_env.bot.tree.sync()
    member = guild.add_member(simcord_env.create_user("ann"))
    handle = guild.channels["general"]
    strict.rest_latency = 0.1
    result = await member.slash(handle, "slow", calls=5)
    assert result.response.content == "done"
    late = await member.slash(handle, "slow", calls=40)  # 4 modelled seconds of REST calls
    assert not late.acknowledged
    [error] = simcord_env.errors
    assert isinstance(error.__cause__, discord.NotFound) and error.__cause__.code == 10062
    simcord_env.errors.clear()


async def test_a_followup_after_15_minutes_fails_with_invalid_webhook_token(
    simcord_env, strict: Strict, guild, channel
):
    await simcord_env.bot.tree.sync()
    member = guild.add_member(simcord_env.create_user("ann"))
    await member.slash(guild.channels["general"], "late", minutes=16)
    await simcord_env.advance_time(16 * 60)
    [error] = simcord_env.errors
    cause = error.__cause__
    assert isinstance(cause, discord.HTTPException) and (cause.status, cause.code) == (401, 50027)
    simcord_env.errors.clear()


# -- knobs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", ["timeout", "drop"])
async def test_a_lost_message_create_is_applied_then_raises(
    simcord_env, strict: Strict, channel, error
):
    strict.lose_responses("message_create", error=error)
    expected = aiohttp.ServerTimeoutError if error == "timeout" else aiohttp.ServerDisconnectedError
    with pytest.raises(expected):
        await channel.send("lost")
    assert stored(simcord_env, channel.id) == ["lost"]
    await channel.send("next")  # one time only
    assert stored(simcord_env, channel.id) == ["lost", "next"]


async def test_lost_channel_creates_deletes_and_bulk_deletes_are_applied(
    simcord_env, strict: Strict, guild, channel
):
    strict.lose_responses("channel_create")
    with pytest.raises(TimeoutError):
        await channel.guild.create_text_channel("made")
    assert "made" in [c.name for c in simcord_env.backend.channels.values()]
    messages = [await channel.send(f"m{i}") for i in range(3)]
    strict.lose_responses("bulk_delete")
    with pytest.raises(TimeoutError):
        await channel.delete_messages(messages[:2])
    assert stored(simcord_env, channel.id) == ["m2"]
    strict.lose_responses("delete")
    with pytest.raises(TimeoutError):
        await messages[2].delete()
    assert stored(simcord_env, channel.id) == []
    strict.lose_responses("delete")
    with pytest.raises(TimeoutError):
        await channel.delete()
    assert channel.id not in simcord_env.backend.channels


async def test_held_events_are_released_late_and_out_of_order(simcord_env, strict: Strict, channel):
    strict.hold_gateway()
    sent = [(await channel.send(f"m{i}")).id for i in range(3)]
    await simcord_env.settle()
    assert cached(simcord_env) == []
    assert [event for event, _ in strict.held()] == ["MESSAGE_CREATE"] * 3
    assert strict.release_gateway(order="reverse") == 3
    assert cached(simcord_env) == sent[::-1]


async def test_dropped_events_are_lost_and_a_fresh_ready_follows(
    simcord_env, strict: Strict, channel
):
    await simcord_env.settle()
    readies = simcord_env.bot.events.count("ready")
    strict.hold_gateway()
    lost = await channel.send("never delivered")
    assert strict.drop_gateway() == 1
    await simcord_env.settle()
    assert simcord_env.bot.events.count("ready") == readies + 1
    assert lost.id not in cached(simcord_env)
    assert simcord_env.bot.get_channel(channel.id) is not None  # guilds came back after READY
    delivered = await channel.send("delivered")
    await simcord_env.settle()
    assert delivered.id in cached(simcord_env)


async def test_a_long_429_is_slept_inside_the_request_unless_over_max_ratelimit_timeout(
    simcord_env, strict: Strict, channel
):
    strict.rate_limit("message_create", retry_after=45.0)
    await channel.send("after the wait")
    assert [(seconds, why) for _, seconds, why in strict.waits] == [(45.0, "429")]
    assert stored(simcord_env, channel.id) == ["after the wait"]
    simcord_env.bot.http.max_ratelimit_timeout = 30.0
    strict.rate_limit("message_create", retry_after=45.0)
    with pytest.raises(discord.RateLimited) as raised:
        await channel.send("refused")
    assert raised.value.retry_after == 45.0
    assert stored(simcord_env, channel.id) == ["after the wait"]


async def test_endless_429s_end_after_discord_py_s_five_tries(simcord_env, strict: Strict, channel):
    strict.rate_limit("message_create", retry_after=1.0, times=None)
    with pytest.raises(discord.HTTPException) as raised:
        await channel.send("never")
    assert raised.value.status == 429
    assert len(strict.waits) == 5
    assert stored(simcord_env, channel.id) == []


async def test_an_applied_502_is_resent_by_discord_py_and_duplicates_a_create(
    simcord_env, strict: Strict, channel
):
    strict.server_errors("channel_create", status=502, applied=True)
    made = await channel.guild.create_text_channel("twice")
    names = [c.name for c in simcord_env.backend.channels.values()]
    assert names.count("twice") == 2
    assert made.name == "twice"
    assert [(s, why) for _, s, why in strict.waits] == [(1, "502")]


async def test_an_unretried_5xx_reaches_the_caller_and_applies_nothing(
    simcord_env, strict: Strict, channel
):
    strict.server_errors("message_create", status=503)
    with pytest.raises(discord.DiscordServerError):
        await channel.send("no")
    assert stored(simcord_env, channel.id) == []
    assert strict.waits == []


async def test_the_owner_and_administrators_can_post_into_hidden_channels(
    simcord_env, strict: Strict, guild
):
    hidden = await simcord_env.bot.get_guild(guild.id).create_text_channel(
        "hidden",
        overwrites={
            simcord_env.bot.get_guild(guild.id).default_role: discord.PermissionOverwrite(
                view_channel=False
            )
        },
    )
    admins = guild.create_role("admins", permissions=discord.Permissions(administrator=True))
    admin = guild.add_member(simcord_env.create_user("ada"), roles=[admins])
    owner = simcord.MemberActor(simcord_env, guild, guild.owner)
    await strict.post_as(owner, hidden.id, "dbs1 batch from the owner")
    await strict.post_as(admin, hidden.id, "from an admin", attachments=(("body", b"x"),))
    assert stored(simcord_env, hidden.id) == ["dbs1 batch from the owner", "from an admin"]
    plain = guild.add_member(simcord_env.create_user("bob"))
    with pytest.raises(simcord.BackendError):
        await strict.post_as(plain, hidden.id, "no")


async def test_a_guild_outage_and_its_end_reach_the_client(simcord_env, strict: Strict, guild):
    await simcord_env.settle()
    strict.guild_outage(guild.id)
    await simcord_env.settle()
    assert simcord_env.bot.get_guild(guild.id).unavailable
    assert f"unavailable {guild.id}" in simcord_env.bot.events
    strict.guild_available(guild.id)
    await simcord_env.settle()
    assert not simcord_env.bot.get_guild(guild.id).unavailable
    assert f"available {guild.id}" in simcord_env.bot.events


async def test_a_guild_left_unavailable_after_a_fresh_ready(simcord_env, strict: Strict, guild):
    strict.drop_gateway(unavailable=(guild.id,))
    await simcord_env.settle()
    found = simcord_env.bot.get_guild(guild.id)
    assert found is not None and found.unavailable and found.me is None


async def test_a_second_process_as_another_bot_user(simcord_env, strict: Strict, guild, channel):
    other = await strict.second_process(another_bot="other", guilds=(guild,))
    assert other.bot.user.id != simcord_env.bot.user.id
    theirs = await other.bot.get_channel(channel.id).send("from the other bot")
    await simcord_env.settle()
    seen = [m for m in simcord_env.bot.cached_messages if m.id == theirs.id]
    assert seen and seen[0].author.id == other.bot.user.id
    assert seen[0].content == ""  # no Message Content intent: another author's text is hidden


async def test_gateway_knobs_apply_per_process(simcord_env, strict: Strict, channel):
    other = await strict.second_process()
    strict.hold_gateway(other)
    sent = await channel.send("hello")
    await simcord_env.settle()
    assert sent.id in cached(simcord_env)
    assert sent.id not in [m.id for m in other.bot.cached_messages]
    strict.release_gateway(other)
    assert sent.id in [m.id for m in other.bot.cached_messages]


async def test_faults_can_target_one_process(simcord_env, strict: Strict, channel):
    other = await strict.second_process()
    strict.lose_responses("message_create", process=other)
    await channel.send("mine is fine")
    with pytest.raises(TimeoutError):
        await other.bot.get_channel(channel.id).send("theirs is lost")
    assert stored(simcord_env, channel.id) == ["theirs is lost", "mine is fine"]


@pytest.mark.strict
async def test_the_marker_turns_strict_mode_on(simcord_env, channel):
    await channel.send("one", nonce="n")
    await channel.send("two", nonce="n")
    assert stored(simcord_env, channel.id) == ["one"]


async def test_a_rate_limit_by_time_answers_429_until_its_window_ends(
    simcord_env, strict: Strict, channel
):
    strict.rate_limited_for("message_create", 100)
    await channel.send("waited")
    assert [(seconds, why) for _, seconds, why in strict.waits] == [(100, "429")]
    await channel.send("at once")
    assert len(strict.waits) == 1
    assert stored(simcord_env, channel.id) == ["waited", "at once"]


async def test_a_hung_request_times_out_after_aiohttp_s_timeout(
    simcord_env, strict: Strict, channel
):
    strict.hang("message_create", applied=True)
    with pytest.raises(TimeoutError):
        await channel.send("applied, never answered")
    assert [(seconds, why) for _, seconds, why in strict.waits] == [(300, "hang")]
    assert stored(simcord_env, channel.id) == ["applied, never answered"]


async def private_thread(channel: discord.TextChannel, name: str = "t") -> discord.Thread:
    return await channel.create_thread(name=name, type=discord.ChannelType.private_thread)


async def test_an_archived_thread_refuses_edits_and_a_message_unarchives_it(
    simcord_env, strict: Strict, guild, channel
):
    thread = await private_thread(channel)
    message = await thread.send("first")
    assert strict.archive_threads() == [thread.id]
    await simcord_env.settle()
    assert simcord_env.bot.get_guild(guild.id).get_thread(thread.id) is None  # not cached
    with pytest.raises(discord.HTTPException) as refused:
        await message.edit(content="changed")
    assert refused.value.code == 50083
    await thread.send("second")  # sending unarchives
    assert not simcord_env.backend.channels[thread.id].thread_metadata.archived
    await message.edit(content="changed")
    assert stored(simcord_env, thread.id) == ["changed", "second"]
    strict.archive_threads(thread.id)
    await simcord_env.bot.http.delete_message(thread.id, message.id)  # deletes still work
    assert stored(simcord_env, thread.id) == ["second"]


async def test_at_the_active_thread_cap_threads_are_neither_made_nor_unarchived(
    simcord_env, strict: Strict, channel
):
    first = await private_thread(channel, "first")
    strict.active_thread_cap = 1
    with pytest.raises(discord.HTTPException) as refused:
        await private_thread(channel, "second")
    assert refused.value.code == 160006
    strict.archive_threads(first.id)
    second = await private_thread(channel, "second")
    for attempt in (first.send("x"), first.edit(archived=False)):
        with pytest.raises(discord.HTTPException) as refused:
            await attempt
        assert refused.value.code == 160006
    assert [c.name for c in simcord_env.backend.active_threads(channel.guild.id)] == [second.name]


async def test_a_fresh_ready_announces_active_threads_only_and_no_thread_created_message(
    simcord_env, strict: Strict, guild, channel
):
    active, archived = await private_thread(channel, "a"), await private_thread(channel, "b")
    strict.archive_threads(archived.id)
    strict.drop_gateway()
    await simcord_env.settle()
    cached = simcord_env.bot.get_guild(guild.id)
    assert [t.id for t in cached.threads] == [active.id]
    assert stored(simcord_env, channel.id) == []  # Discord posts none for a private thread
