"""Tests of the benchmark's Discord model: buckets, the global bucket, latency, SimCord's seam.

Each test runs on its own looptime loop (virtual time starting at 0), so waits cost no real time and
every instant asserted here is exact up to looptime's 1 us resolution.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import discord
import looptime
import pytest
import simcord
from discord.ext import commands

from bench.model import (
    DEFAULT_LATENCY_SECONDS,
    BucketLimit,
    DiscordModel,
    FixedWindowBucket,
    limits_markdown,
    route_name,
)

_T = TypeVar("_T")

CREATE_MESSAGE = ("POST", "/channels/{channel_id}/messages")
EDIT_MESSAGE = ("PATCH", "/channels/{channel_id}/messages/{message_id}")
DELETE_MESSAGE = ("DELETE", "/channels/{channel_id}/messages/{message_id}")


def run_virtual(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` on a fresh looptime loop whose virtual clock starts at 0."""
    loop = looptime.new_event_loop(start=0)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def now() -> float:
    return asyncio.get_running_loop().time()


async def send_times(
    model: DiscordModel, calls: list[tuple[str, str, dict[str, str]]]
) -> list[float]:
    """Issue ``calls`` concurrently through ``model``; return when each reached the server."""
    reached: list[float] = [0.0] * len(calls)

    def sender(index: int) -> Callable[[], Awaitable[None]]:
        async def send() -> None:
            reached[index] = now()

        return send

    await asyncio.gather(
        *(
            model.call(method, template, parameters, sender(index))
            for index, (method, template, parameters) in enumerate(calls)
        )
    )
    return reached


def snowflake_aged(seconds: float, clock_now: datetime.datetime) -> str:
    """The id of a message created ``seconds`` before ``clock_now``."""
    created = clock_now - datetime.timedelta(seconds=seconds)
    return str(discord.utils.time_snowflake(created))


def test_bucket_of_five_per_five_seconds_lets_five_through_then_the_sixth_waits_five_seconds() -> (
    None
):
    async def scenario() -> list[tuple[float, float]]:
        bucket = FixedWindowBucket(BucketLimit(5, 5.0, "channel", "test"))
        results = []
        for _ in range(6):
            waited = await bucket.take()
            results.append((now(), waited))
        return results

    results = run_virtual(scenario())
    assert [at for at, _ in results[:5]] == [0.0] * 5
    assert [waited for _, waited in results[:5]] == [0.0] * 5
    assert results[5][0] == pytest.approx(5.0, abs=1e-6)
    assert results[5][1] == pytest.approx(5.0, abs=1e-6)


def test_bucket_window_opens_with_the_first_request_after_an_idle_period() -> None:
    async def scenario() -> list[float]:
        bucket = FixedWindowBucket(BucketLimit(2, 1.0, "channel", "test"))
        await asyncio.sleep(10.0)
        times = []
        for _ in range(3):
            await bucket.take()
            times.append(now())
        return times

    assert run_virtual(scenario()) == pytest.approx([10.0, 10.0, 11.0], abs=1e-6)


def test_concurrent_waiters_are_served_in_windows_of_five() -> None:
    async def scenario() -> list[float]:
        model = DiscordModel(latency=0.0)
        return await send_times(model, [(*CREATE_MESSAGE, {"channel_id": "1"})] * 12)

    times = run_virtual(scenario())
    assert times == pytest.approx([0.0] * 5 + [5.0] * 5 + [10.0] * 2, abs=1e-6)


def test_rest_waits_until_every_spent_window_closes_so_the_next_calls_wait_nothing() -> None:
    async def scenario() -> tuple[float, float, list[float]]:
        model = DiscordModel(latency=0.0)
        await send_times(model, [(*CREATE_MESSAGE, {"channel_id": "1"})] * 5)
        await asyncio.sleep(2.0)
        await send_times(model, [(*CREATE_MESSAGE, {"channel_id": "2"})] * 3)
        rested = await model.rest()
        rested_at = now()
        before = model.metrics.rate_limit_wait_seconds
        times = await send_times(model, [(*CREATE_MESSAGE, {"channel_id": "1"})] * 5)
        assert model.metrics.rate_limit_wait_seconds == before
        return rested, rested_at, times

    rested, rested_at, times = run_virtual(scenario())
    # Channel 2's window, opened at 2 s, closes last.
    assert rested == pytest.approx(5.0, abs=1e-6)
    assert rested_at == pytest.approx(7.0, abs=1e-6)
    assert times == pytest.approx([7.0] * 5, abs=1e-6)


def test_rest_waits_nothing_when_no_window_is_open() -> None:
    async def scenario() -> float:
        model = DiscordModel(latency=0.0)
        await send_times(model, [(*CREATE_MESSAGE, {"channel_id": "1"})])
        await asyncio.sleep(6.0)
        return await model.rest()

    assert run_virtual(scenario()) == 0.0


def test_global_bucket_caps_at_fifty_per_second() -> None:
    async def scenario() -> list[float]:
        model = DiscordModel(latency=0.0)
        # One call per channel: no route bucket is ever short, only the global one limits.
        calls = [(*CREATE_MESSAGE, {"channel_id": str(channel)}) for channel in range(120)]
        return await send_times(model, calls)

    times = run_virtual(scenario())
    per_second = [sum(1 for at in times if second <= at < second + 1) for second in range(4)]
    assert per_second == [50, 50, 20, 0]


def test_buckets_are_kept_per_channel() -> None:
    async def scenario() -> list[float]:
        model = DiscordModel(latency=0.0)
        calls = [(*CREATE_MESSAGE, {"channel_id": "1"})] * 6
        calls += [(*CREATE_MESSAGE, {"channel_id": "2"})] * 6
        return await send_times(model, calls)

    times = run_virtual(scenario())
    assert times[:5] == pytest.approx([0.0] * 5, abs=1e-6)
    assert times[6:11] == pytest.approx([0.0] * 5, abs=1e-6)
    assert times[5] == pytest.approx(5.0, abs=1e-6)
    assert times[11] == pytest.approx(5.0, abs=1e-6)


def test_routes_have_separate_buckets_in_one_channel() -> None:
    async def scenario() -> list[float]:
        model = DiscordModel(latency=0.0)
        history = ("GET", "/channels/{channel_id}/messages", {"channel_id": "1"})
        return await send_times(model, [(*CREATE_MESSAGE, {"channel_id": "1"})] * 5 + [history])

    assert run_virtual(scenario()) == pytest.approx([0.0] * 6, abs=1e-6)


def test_latency_is_a_round_trip_with_the_call_reaching_the_server_half_way() -> None:
    async def scenario() -> tuple[float, float]:
        model = DiscordModel()
        reached = await send_times(model, [(*CREATE_MESSAGE, {"channel_id": "1"})])
        return reached[0], now()

    reached, finished = run_virtual(scenario())
    assert reached == pytest.approx(DEFAULT_LATENCY_SECONDS / 2, abs=1e-6)
    assert finished == pytest.approx(DEFAULT_LATENCY_SECONDS, abs=1e-6)


def test_edits_of_messages_older_than_an_hour_take_the_stricter_bucket() -> None:
    clock_now = discord.utils.utcnow()

    async def scenario(age: float) -> list[float]:
        model = DiscordModel(latency=0.0)
        parameters = {"channel_id": "1", "message_id": snowflake_aged(age, clock_now)}
        return await send_times(model, [(*EDIT_MESSAGE, parameters)] * 4)

    assert run_virtual(scenario(60.0)) == pytest.approx([0.0] * 4, abs=1e-6)
    assert run_virtual(scenario(7200.0)) == pytest.approx([0.0] * 3 + [6.0], abs=1e-6)


def test_deletes_take_the_bucket_of_the_message_age() -> None:
    clock_now = discord.utils.utcnow()

    async def scenario(age: float, count: int) -> list[float]:
        model = DiscordModel(latency=0.0)
        parameters = {"channel_id": "1", "message_id": snowflake_aged(age, clock_now)}
        return await send_times(model, [(*DELETE_MESSAGE, parameters)] * count)

    assert run_virtual(scenario(1.0, 6)) == pytest.approx([0.0] * 5 + [1.0], abs=1e-6)
    assert run_virtual(scenario(60.0, 4)) == pytest.approx([0.0] * 3 + [0.333], abs=1e-6)
    assert run_virtual(scenario(20 * 86400.0, 31)) == pytest.approx([0.0] * 30 + [4.0], abs=1e-6)


def test_failed_calls_are_counted_and_still_pay_the_round_trip() -> None:
    async def scenario() -> tuple[DiscordModel, float]:
        model = DiscordModel()

        async def fail() -> None:
            raise RuntimeError("refused")

        with pytest.raises(RuntimeError):
            await model.call(*CREATE_MESSAGE, {"channel_id": "1"}, fail)
        return model, now()

    model, finished = run_virtual(scenario())
    assert model.metrics.failed_calls_by_route == {"POST /channels/{id}/messages": 1}
    assert model.metrics.rest_calls == 1
    assert finished == pytest.approx(DEFAULT_LATENCY_SECONDS, abs=1e-6)


def test_route_names_make_ids_alike() -> None:
    assert route_name(*EDIT_MESSAGE) == "PATCH /channels/{id}/messages/{id}"


def test_limits_table_lists_every_bucket_with_its_source() -> None:
    table = limits_markdown()
    assert "| every REST call | 50 per 1 s | bot |" in table
    assert "`POST /channels/{channel_id}/messages` | 5 per 5 s | channel" in table
    assert "| round trip | 100 ms" in table


async def _send_messages_through_simcord(count: int) -> tuple[DiscordModel, list[discord.Message]]:
    model = DiscordModel()
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())
    with model.installed():
        async with simcord.run(bot) as env:
            guild = env.create_guild("bench")
            handle = guild.create_text_channel("log")
            channel = bot.get_channel(handle.id)
            assert isinstance(channel, discord.TextChannel)
            before = model.metrics.copy()
            messages = [await channel.send(f"record {index}") for index in range(count)]
            content = (await channel.fetch_message(messages[0].id)).content
            assert content == "record 0"
            model.metrics = model.metrics.since(before)
    return model, messages


def test_simcord_calls_go_through_the_model_and_its_clock_moves_with_the_loop() -> None:
    model, messages = run_virtual(_send_messages_through_simcord(6))
    assert model.metrics.calls_by_route == {
        "POST /channels/{id}/messages": 6,
        "GET /channels/{id}/messages/{id}": 1,
    }
    gaps = [
        (later.created_at - earlier.created_at).total_seconds()
        for earlier, later in itertools.pairwise(messages)
    ]
    # Awaited one by one: a round trip apart, until the sixth waits for the next window.
    assert gaps[:4] == pytest.approx([DEFAULT_LATENCY_SECONDS] * 4, abs=1e-3)
    assert (messages[5].created_at - messages[0].created_at).total_seconds() == pytest.approx(
        5.0, abs=1e-3
    )
    assert model.metrics.rate_limit_wait_seconds == pytest.approx(
        5.0 - 5 * DEFAULT_LATENCY_SECONDS, abs=1e-3
    )


def test_model_is_uninstalled_after_the_block() -> None:
    model, _ = run_virtual(_send_messages_through_simcord(1))
    assert simcord.http.FakeHTTPClient.request.__qualname__ == "FakeHTTPClient.request"
    assert model.metrics.rest_calls == 2


def test_history_pages_forward_past_the_first_hundred_while_the_model_is_installed() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        model = DiscordModel(latency=0.0)
        bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())
        with model.installed():
            async with simcord.run(bot) as env:
                handle = env.create_guild("bench").create_text_channel("log")
                channel = bot.get_channel(handle.id)
                assert isinstance(channel, discord.TextChannel)
                sent = [(await channel.send(f"m{index}")).content for index in range(150)]
                read = [m.content async for m in channel.history(limit=None, oldest_first=True)]
        return sent, read

    sent, read = run_virtual(scenario())
    assert read == sent
