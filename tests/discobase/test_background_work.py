"""The library leaves no idle background task: its writers, compactions and catch-ups run while
they have work and end, and start again on demand.

Under SimCord every task a command handler starts counts as the bot's work, and a command's
result waits until that work is done; a task left waiting for more work would keep every later
command from settling. These tests make the library's first writes inside command handlers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import discord
import pytest
import simcord
from discord import app_commands

import discobase
from discobase.codec import Entry, encode_entry
from discobase.engine.storage import StoredMessage
from discobase.engine.writer import BatchWriter
from tests.conftest import discobase_tasks, make_bot


class Pet(discobase.Table):
    name: str
    legs: int = 4

    class Settings:
        primary_key = "name"


def add_commands(bot: discord.Client, db: discobase.Database, second: discobase.Database) -> None:
    """Slash commands that use the library the way a bot's handlers do."""
    tree: app_commands.CommandTree[Any] = bot.tree

    @tree.command(name="adopt")
    async def adopt(interaction: discord.Interaction, name: str, legs: int) -> None:
        await Pet(name=name, legs=legs).save()
        await interaction.response.send_message(f"adopted {name}")

    @tree.command(name="litter")
    async def litter(interaction: discord.Interaction, prefix: str, size: int) -> None:
        await interaction.response.defer()
        await Pet.insert_many([Pet(name=f"{prefix}{i}", legs=i) for i in range(size)])
        await interaction.followup.send(f"{size} born")

    @tree.command(name="rehome")
    async def rehome(interaction: discord.Interaction, name: str) -> None:
        pet = await Pet.get(name)
        await pet.delete()
        await interaction.response.send_message(f"rehomed {name}")

    @tree.command(name="tidy")
    async def tidy(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        deleted = await db.compact()
        await interaction.followup.send(f"{deleted} deleted")

    @tree.command(name="catchup")
    async def catchup(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await second.sync()
        await interaction.followup.send("caught up")


@pytest.fixture
async def member(simcord_env: simcord.Env, guild: simcord.GuildHandle) -> simcord.MemberActor:
    return guild.add_member(simcord_env.create_user("user"))


async def test_writes_compactions_and_catch_ups_started_in_commands_end_with_their_work(
    simcord_env: simcord.Env,
    guild: simcord.GuildHandle,
    member: simcord.MemberActor,
    new_db: Callable[..., discobase.Database],
) -> None:
    db = new_db(compaction=discobase.Compaction(min_messages=3))
    db.table(Pet)
    await db.open()
    second = new_db()  # another process on the same guild, following the first through events
    await second.open()
    add_commands(simcord_env.bot, db, second)
    await simcord_env.bot.tree.sync()
    channel = guild.create_text_channel("general")

    for name, legs in [("rex", 4), ("tweety", 2), ("nemo", 0), ("kaa", 0)]:
        adopted = await member.slash(channel, "adopt", name=name, legs=legs)
        assert adopted.response.content == f"adopted {name}"
        assert discobase_tasks() == []
    born = await member.slash(channel, "litter", prefix="pup", size=3)
    assert born.response.content == "3 born"
    rehomed = await member.slash(channel, "rehome", name="kaa")
    assert rehomed.response.content == "rehomed kaa"
    second.transport.unlisten()  # the second process misses what comes next, then catches up
    await member.slash(channel, "adopt", name="late", legs=3)
    assert "late" not in {pet.name for pet in await second.tables["pet"].find()}
    caught_up = await member.slash(channel, "catchup")
    assert caught_up.response.content == "caught up"
    tidied = await member.slash(channel, "tidy")
    assert tidied.response.content.endswith("deleted")

    expected = {"rex": 4, "tweety": 2, "nemo": 0, "pup0": 0, "pup1": 1, "pup2": 2, "late": 3}
    assert {pet.name: pet.legs for pet in await Pet.find()} == expected
    assert {pet.name: pet.legs for pet in await second.tables["pet"].find()} == expected
    assert discobase_tasks() == []
    await second.close()
    await db.close()


async def test_writes_after_the_writer_ended_start_it_again(
    simcord_env: simcord.Env, new_db: Callable[..., discobase.Database]
) -> None:
    db = new_db()
    db.table(Pet)
    await db.open()
    for legs in range(5):  # each save finds the writer of the one before it gone
        await Pet(name="rex", legs=legs).save()
        await simcord_env.settle()  # the gateway echo of the save may still be on its way
        assert discobase_tasks() == []
    waiting = [asyncio.ensure_future(Pet(name=f"p{i}", legs=i).save()) for i in range(20)]
    await asyncio.gather(*waiting)
    await simcord_env.settle()
    assert discobase_tasks() == []
    await db.close()
    await simcord_env.restart_bot(make_bot())
    reloaded = new_db()
    reloaded.table(Pet)
    await reloaded.open()
    assert len(await Pet.find()) == 21
    assert (await Pet.get("rex")).legs == 4
    await reloaded.close()


class RecordingTransport:
    """A transport that acknowledges every send at once and remembers what it sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, channel_id: int, content: str, attachment: Any, **_: Any) -> Any:
        self.sent.append(content.split("\n", 1)[1])
        return StoredMessage(len(self.sent), channel_id, 1, content)


def one_entry(key: str) -> list[tuple[Entry, str]]:
    entry = Entry(key, {})
    return [(entry, encode_entry(entry))]


async def test_a_write_submitted_while_the_writer_finishes_is_still_sent() -> None:
    transport = RecordingTransport()
    submitted: list[asyncio.Future[list[int]]] = []

    def on_commit(message: StoredMessage, batch_id: str, entries: list[Entry]) -> None:
        # Runs right after Discord acknowledged a message, just before the writer looks at its
        # queue for the last time; the first commit submits one more write from here.
        if len(transport.sent) == 1:
            submitted.append(writer.submit(one_entry("during-commit")))

    writer = BatchWriter(transport, 1, 10_000, on_commit, lambda _: None)
    first = writer.submit(one_entry("first"))
    # The first write's caller writes again as soon as it hears back: by then the writer has
    # ended, so this write has to start it again.
    first.add_done_callback(lambda _: submitted.append(writer.submit(one_entry("after"))))

    assert await first == [1]
    await writer.flush()
    await asyncio.gather(*submitted)
    await writer.flush()

    assert [await future for future in submitted] == [[2], [3]]
    assert transport.sent == [
        '{"put":"first","rec":{}}',
        '{"put":"during-commit","rec":{}}',
        '{"put":"after","rec":{}}',
    ]
    assert discobase_tasks() == []


class BlockingTransport(RecordingTransport):
    """Holds every send until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.waiting = asyncio.Event()

    async def send(self, channel_id: int, content: str, attachment: Any, **_: Any) -> Any:
        self.waiting.set()
        await self.release.wait()
        return await super().send(channel_id, content, attachment)


async def test_a_writer_stopped_mid_send_fails_its_queue_and_the_next_write_restarts_it() -> None:
    transport = BlockingTransport()
    writer = BatchWriter(transport, 1, 10_000, lambda *_: None, lambda _: None)
    in_flight = writer.submit(one_entry("in-flight"))
    await transport.waiting.wait()
    queued = writer.submit(one_entry("queued"))
    [task] = discobase_tasks()
    task.cancel()  # as a host does when it shuts down

    with pytest.raises(discobase.NotConnectedError, match="while this write was being sent"):
        await in_flight  # (its caller was not cancelled: the writer was)
    with pytest.raises(discobase.NotConnectedError, match="before this write was sent"):
        await queued
    await writer.flush()
    assert discobase_tasks() == []
    transport.release.set()
    assert await writer.submit(one_entry("after")) == [1]
    assert transport.sent == ['{"put":"after","rec":{}}']
    assert discobase_tasks() == []
