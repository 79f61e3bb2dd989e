"""Offline mode: the bot, its cogs and its database against SimCord, an in-memory Discord, with
a browser page on 127.0.0.1 where a person runs every command as one of three seeded members."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import discord

from discobot.client import DiscobaseBot, create_bot, silence_voice_warnings
from discobot.process import ExitCode, install_stop_signals
from discobot.settings import CommandSync, Settings

if TYPE_CHECKING:
    import simcord

OFFLINE_ADMIN_ROLE = "db-admin"
OFFLINE_READER_ROLE = "db-reader"
OFFLINE_BOT_NAME = "discobase"


@dataclass
class OfflineSession:
    """A running offline world: SimCord, the seeded guild and its members, the browser page."""

    env: simcord.Env
    bot: DiscobaseBot
    guild: simcord.GuildHandle
    channel: simcord.ChannelHandle
    admin: simcord.MemberActor
    reader: simcord.MemberActor
    member: simcord.MemberActor
    preview: simcord.Preview

    @property
    def url(self) -> str:
        """The page's address; it carries a secret, so only print it to the person running it."""
        return self.preview.url


class OfflineLogFilter(logging.Filter):
    """Drops discord.py lines that are true online but misleading offline.

    SimCord probes discord.py with a client that has no intents (hence "Guilds intent seems to be
    disabled"), and the offline bot logs in with no token at all.
    """

    MISLEADING = (
        "Guilds intent seems to be disabled",
        "logging in using static token",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.MISLEADING)


class PortUnavailableError(Exception):
    """The offline page cannot listen on the port asked for."""

    def __init__(self, port: int) -> None:
        self.port = port
        super().__init__(
            f"port {port} on 127.0.0.1 is in use or not allowed; pick another with --port, "
            "or leave it out for any free port"
        )


def check_port(port: int) -> None:
    """Raise :class:`PortUnavailableError` unless the offline page could listen on ``port``."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise PortUnavailableError(port) from error


@asynccontextmanager
async def offline_session(settings: Settings, *, port: int = 0) -> AsyncIterator[OfflineSession]:
    """Run the bot against SimCord with a seeded guild and serve the preview on 127.0.0.1.

    The bot is named ``discobase``. The guild has a ``#general`` channel, an admin (role
    ``db-admin``, Manage Server), a reader (role ``db-reader``) and a plain member; the bot serves
    it as it serves ``DISCOBASE_GUILD`` (commands synced to it, its database open before the page
    is). Data lives in memory only. The databases are closed (pending writes flushed) before the
    world goes away. Raises :class:`PortUnavailableError` when the page cannot use ``port``.
    """
    check_port(port)
    settings = replace(
        settings,
        token=None,
        guild_id=None,
        admin_role=settings.admin_role or OFFLINE_ADMIN_ROLE,
        reader_role=settings.reader_role or OFFLINE_READER_ROLE,
        command_sync=CommandSync.ALWAYS,
    )
    log_filter = OfflineLogFilter()
    quietened = [logging.getLogger("discord.state"), logging.getLogger("discord.client")]
    for logger in quietened:
        logger.addFilter(log_filter)
    silence_voice_warnings()
    import simcord

    bot = create_bot(settings)
    env = simcord.Env(bot)
    env.backend.bot_user.name = OFFLINE_BOT_NAME
    guild = env.create_guild("discobase offline")
    bot.settings = replace(settings, guild_id=guild.id)
    channel = guild.create_text_channel("general")
    admin_role = guild.create_role(
        settings.admin_role or OFFLINE_ADMIN_ROLE,
        permissions=discord.Permissions(manage_guild=True),
    )
    reader_role = guild.create_role(settings.reader_role or OFFLINE_READER_ROLE)
    admin = guild.add_member(env.create_user("ada"), roles=[admin_role])
    reader = guild.add_member(env.create_user("rita"), roles=[reader_role])
    member = guild.add_member(env.create_user("bob"))
    try:
        await env.start()
        with env.time_context():
            try:
                async with AsyncExitStack() as stack:
                    try:
                        preview = await stack.enter_async_context(
                            env.preview(
                                channel,
                                viewers=[admin, reader, member],
                                layout="channel",
                                port=port,
                            )
                        )
                    except simcord.SetupError as error:
                        raise PortUnavailableError(port) from error
                    yield OfflineSession(env, bot, guild, channel, admin, reader, member, preview)
            finally:
                await bot.close_databases()
                await env.shutdown()
    finally:
        for logger in quietened:
            logger.removeFilter(log_filter)


async def run_offline(settings: Settings, *, port: int = 0) -> tuple[ExitCode, str | None]:
    """Serve the offline world until SIGINT/SIGTERM or until the page ends the session."""
    try:
        async with offline_session(settings, port=port) as session:
            await serve_offline(session)
    except PortUnavailableError as error:
        return ExitCode.BAD_SETTINGS, str(error)
    return ExitCode.OK, None


async def serve_offline(session: OfflineSession) -> None:
    """Print the page's address and wait for SIGINT/SIGTERM or the page's end."""
    print(
        "discobase is running OFFLINE against SimCord, a simulated Discord: no token, no "
        "network.\nData lives in memory and is gone when you stop the bot (Ctrl+C).\n"
        f"Open this address in a browser (it is a secret, served on 127.0.0.1 only):\n"
        f"  {session.url}\n"
        "Switch between ada (admin), rita (reader) and bob (member) in the page; type / to "
        "run commands.",
        flush=True,
    )
    stop = asyncio.Event()
    install_stop_signals(stop)
    waiters = [
        asyncio.ensure_future(stop.wait()),
        asyncio.ensure_future(session.preview.wait_closed()),
    ]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    print("stopping; the in-memory data is discarded", flush=True)
