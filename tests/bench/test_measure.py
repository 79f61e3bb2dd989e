"""Tests of what a phase reports: effective time, and the simulated Discord's CPU kept apart.

CPU figures come from ``time.thread_time``, which counts this thread's CPU only: a loaded
machine makes the busy loops below take longer in real time but not in CPU time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import discord
import looptime
import pytest
import simcord
from discord.ext import commands

from bench.measure import Phase
from bench.model import DEFAULT_LATENCY_SECONDS, DiscordModel
from bench.seam import GATEWAY_CLOCK

CREATE_MESSAGE = ("POST", "/channels/{channel_id}/messages")


def burn(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def run_virtual(coro: Any) -> Any:
    loop = looptime.new_event_loop(start=0)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def test_effective_time_adds_the_clients_cpu_to_simulated_time_but_not_the_servers() -> None:
    async def scenario() -> dict[str, Any]:
        model = DiscordModel()
        phase = Phase("one call", model).start()

        async def server() -> None:
            burn(0.08)

        async def operation() -> None:
            burn(0.05)
            await model.call(*CREATE_MESSAGE, {"channel_id": "1"}, server)

        await phase.op(operation())
        return phase.finish()

    result = run_virtual(scenario())
    assert result["simulated_seconds"] == pytest.approx(DEFAULT_LATENCY_SECONDS, abs=1e-6)
    assert result["server_cpu_seconds"] >= 0.08
    assert 0.05 <= result["client_cpu_seconds"] < 0.075
    assert result["effective_seconds"] == pytest.approx(
        result["simulated_seconds"] + result["client_cpu_seconds"], abs=1e-4
    )
    assert result["ops_per_effective_second"] == pytest.approx(
        1 / result["effective_seconds"], rel=1e-4
    )
    # The operation's own CPU figure leaves the server's share out too.
    assert 0.05 <= result["op_cpu_p50_s"] < 0.075
    assert result["effective_latency_p99_s"] == pytest.approx(
        DEFAULT_LATENCY_SECONDS + result["op_cpu_p50_s"], abs=1e-6
    )


def test_gateway_events_simcord_delivers_during_a_call_count_as_the_clients_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> tuple[float, float]:
        model = DiscordModel()
        bot = commands.Bot(command_prefix="!", intents=discord.Intents.default())
        with model.installed():
            async with simcord.run(bot) as env:
                handle = env.create_guild("bench").create_text_channel("log")
                channel = bot.get_channel(handle.id)
                assert isinstance(channel, discord.TextChannel)
                parsers = bot._connection.parsers
                parse = parsers["MESSAGE_CREATE"]

                def slow_parse(data: Any) -> None:
                    burn(0.06)
                    parse(data)

                monkeypatch.setitem(parsers, "MESSAGE_CREATE", slow_parse)
                server_before, gateway_before = (
                    model.metrics.server_cpu_seconds,
                    GATEWAY_CLOCK.seconds,
                )
                await channel.send("hello")
                await asyncio.sleep(0)
                return (
                    model.metrics.server_cpu_seconds - server_before,
                    GATEWAY_CLOCK.seconds - gateway_before,
                )

    server, gateway = run_virtual(scenario())
    assert gateway >= 0.06
    assert 0 <= server < 0.03
