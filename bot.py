"""The discobase bot: slash commands that administer a guild's database from Discord itself.

``python bot.py`` runs it. With ``DISCORD_TOKEN`` set it logs in to Discord; without one (or with
``--offline``) it runs the same bot, cogs and database against SimCord, an in-memory Discord, and
serves a browser page on 127.0.0.1 where you can run every command.

Sections: settings (from the environment and ``.env``), the bot (one database per guild, cogs,
command sync, shutdown), the online runner with its exit codes, the offline runner, ``main``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands
from dotenv import dotenv_values

import discobase
from cogs._errors import redact_tokens_in_logs, reply_unexpected_error
from cogs._permissions import (
    Roles,
    access_denied_message,
    apply_default_permissions,
    required_access,
)

if TYPE_CHECKING:
    import simcord

log = logging.getLogger("discobase.bot")

COGS_DIRECTORY = Path(__file__).resolve().parent / "cogs"
COMMAND_RECORD = Path(".discobase-commands.json")
"""Where the online bot records what it last synced (beside ``.env``, in the working directory)."""


# --------------------------------------------------------------------------- settings


class ExitCode(IntEnum):
    """Process exit codes of ``python bot.py``, documented in docs/commands.md."""

    OK = 0
    UNEXPECTED = 1
    BAD_SETTINGS = 2
    LOGIN_FAILED = 3
    GUILD_NOT_FOUND = 4
    MISSING_PERMISSIONS = 5


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable and what to set."""


class CommandSync(StrEnum):
    """When the bot sends its slash commands to Discord (``DISCOBASE_SYNC``).

    Syncing is rate limited, and discord.py's maintainers advise against doing it on every start:
    ``auto`` syncs when the command set differs from what this bot last synced (or when it has
    no record of that), ``always`` on every start, ``never`` not at all.
    """

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


@dataclass(frozen=True)
class Settings:
    """Everything the bot is configured with. Read by :meth:`from_env`; see ``.env.example``.

    ``admin_role`` and ``reader_role`` name a role by id (digits) or by an exact name that only one
    role has (see :class:`cogs._permissions.Roles`).
    """

    token: str | None = field(default=None, repr=False)
    guild_id: int | None = None
    admin_role: str | None = None
    reader_role: str | None = None
    log_level: str = "INFO"
    category: str = "discobase"
    command_sync: CommandSync = CommandSync.AUTO

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, dotenv_path: str | Path | None = ".env"
    ) -> Settings:
        """Read settings from ``environ`` (default: the process environment over ``.env``).

        Raises :class:`SettingsError` for a malformed value.
        """
        if environ is None:
            values: dict[str, str | None] = {}
            if dotenv_path is not None and Path(dotenv_path).is_file():
                values.update(dotenv_values(dotenv_path))
            values.update(os.environ)
        else:
            values = dict(environ)

        def text(name: str) -> str | None:
            value = (values.get(name) or "").strip()
            return value or None

        token = text("DISCORD_TOKEN")
        if token is not None and any(character.isspace() for character in token):
            raise SettingsError("DISCORD_TOKEN contains whitespace; paste the bot token alone")
        guild = text("DISCOBASE_GUILD")
        if guild is not None and not guild.isdigit():
            raise SettingsError(f"DISCOBASE_GUILD must be a server id (digits), not {guild!r}")
        log_level = (text("DISCOBASE_LOG_LEVEL") or "INFO").upper()
        if not isinstance(logging.getLevelName(log_level), int):
            raise SettingsError(
                f"DISCOBASE_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {log_level!r}"
            )
        sync = (text("DISCOBASE_SYNC") or CommandSync.AUTO).lower()
        if sync not in set(CommandSync):
            raise SettingsError(f"DISCOBASE_SYNC must be auto, always or never, not {sync!r}")
        return cls(
            token=token,
            guild_id=int(guild) if guild is not None else None,
            admin_role=text("DISCOBASE_ADMIN_ROLE"),
            reader_role=text("DISCOBASE_READER_ROLE"),
            log_level=log_level,
            category=text("DISCOBASE_CATEGORY") or "discobase",
            command_sync=CommandSync(sync),
        )


# --------------------------------------------------------------------------- the bot


class DiscobaseTree(app_commands.CommandTree["DiscobaseBot"]):
    """The command tree: checks access before any command runs, logs what nothing else caught."""

    async def interaction_check(self, interaction: discord.Interaction[DiscobaseBot], /) -> bool:
        command = interaction.command
        if not isinstance(command, app_commands.Command):
            return True
        denial = access_denied_message(interaction, required_access(command), self.client.roles)
        if denial is None:
            return True
        if interaction.type is discord.InteractionType.autocomplete:
            await interaction.response.autocomplete([])
        else:
            await interaction.response.send_message(denial, ephemeral=True)
        return False

    async def on_error(
        self, interaction: discord.Interaction[DiscobaseBot], error: app_commands.AppCommandError, /
    ) -> None:
        await reply_unexpected_error(interaction, error)


def bot_intents() -> discord.Intents:
    """Guilds and guild messages only: slash commands and the bot's own storage need no more.

    No privileged intent (members, presences, message content) is requested.
    """
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    return intents


def silence_voice_warnings() -> None:
    """The bot never joins voice: discord.py's warnings about missing voice libraries (logged
    once, by the first client made) do not concern it."""
    discord.VoiceClient.warn_nacl = False
    discord.VoiceClient.warn_dave = False


class DiscobaseBot(commands.Bot):
    """The bot. Holds one :class:`discobase.Database` per guild.

    Every guild's database opens in the background when the bot is ready or joins the guild (or
    on first use), each on its own, and closes when the bot leaves the guild. When
    ``settings.guild_id`` is set, the bot syncs its commands to that guild only and opens its
    database before serving; a guild it is not in or missing permissions stop it with
    :attr:`exit_code` set.
    """

    def __init__(self, settings: Settings, *, command_record: Path | None = None) -> None:
        silence_voice_warnings()
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=bot_intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=DiscobaseTree,
        )
        self.settings = settings
        self.roles = Roles(settings)
        redact_tokens_in_logs()
        self.command_record = command_record
        self.exit_code = ExitCode.OK
        self.exit_message: str | None = None
        self._databases: dict[int, discobase.Database] = {}
        self._opening: dict[int, asyncio.Task[discobase.Database]] = {}
        self._checked_startup = False

    async def database(self, guild_id: int) -> discobase.Database:
        """The open database of a guild; opens it (or joins the open under way) on first use.

        Each guild opens on its own, so a slow guild delays no other. Cancelling the caller
        leaves the open running. Raises the errors of :meth:`discobase.Database.open`
        (``GuildNotFoundError``, ``MissingPermissionsError``, ...); a failed open is retried on
        the next call.
        """
        database = self._databases.get(guild_id)
        if database is not None:
            return database
        return await asyncio.shield(self.start_opening(guild_id))

    def open_database(self, guild_id: int) -> discobase.Database | None:
        """The guild's database if it is open now, else None (and its open starts in the background).

        Never waits: for the paths that must answer Discord at once (autocomplete, forms).
        """
        database = self._databases.get(guild_id)
        if database is None:
            self.start_opening(guild_id)
        return database

    def start_opening(self, guild_id: int) -> asyncio.Task[discobase.Database]:
        """Open the guild's database in the background (once); the task gives the database."""
        task = self._opening.get(guild_id)
        if task is None:
            task = asyncio.create_task(self._open(guild_id), name=f"open database {guild_id}")
            self._opening[guild_id] = task
            task.add_done_callback(lambda done: self._opened(guild_id, done))
        return task

    async def _open(self, guild_id: int) -> discobase.Database:
        guild = self.get_guild(guild_id)
        admin_role = self.roles.role(guild, "admin") if guild else None
        database = discobase.Database(
            guild_id,
            bot=self,
            category=self.settings.category,
            admin_role=admin_role.id if admin_role else None,
        )
        try:
            await database.open()
        except BaseException:
            await self._close_database(database)
            raise
        if guild is not None and self.get_guild(guild_id) is None:
            await database.close()
            raise discobase.GuildNotFoundError(guild_id)
        self._databases[guild_id] = database
        return database

    def _opened(self, guild_id: int, task: asyncio.Task[discobase.Database]) -> None:
        if self._opening.get(guild_id) is task:
            del self._opening[guild_id]
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, discobase.DiscobaseError):
            log.warning("opening the database of guild %s failed: %s", guild_id, error)
        elif error is not None:
            log.error("opening the database of guild %s failed", guild_id, exc_info=error)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        if self.settings.guild_id is None:
            self.start_opening(guild.id)

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """The bot left (or was removed from) a guild: close its database, stop its open."""
        task = self._opening.pop(guild.id, None)
        if task is not None:
            task.cancel()
        database = self._databases.pop(guild.id, None)
        if database is not None:
            await self._close_database(database)

    async def setup_hook(self) -> None:
        for extension in sorted(COGS_DIRECTORY.glob("[!_]*.py")):
            await self.load_extension(f"cogs.{extension.stem}")
        apply_default_permissions(self.tree, self.settings)
        guild = None
        if self.settings.guild_id is not None:
            guild = discord.Object(self.settings.guild_id)
            self.tree.copy_global_to(guild=guild)
        await self.sync_commands(guild)

    async def sync_commands(self, guild: discord.abc.Snowflake | None) -> None:
        """Send the command tree to Discord (to ``guild`` only, if given) as the settings say.

        With ``auto`` the tree's payload is hashed and compared with :attr:`command_record`, a
        JSON file of the hashes last synced per application and scope; without a record file
        (offline, tests) the bot syncs every time.
        """
        where = f"to server {guild.id}" if guild is not None else "globally"
        if self.settings.command_sync is CommandSync.NEVER:
            log.info("not syncing commands (DISCOBASE_SYNC=never)")
            return
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands(guild=guild)]
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        scope = f"{self.application_id}/{guild.id if guild is not None else 'global'}"
        record = self._read_command_record()
        if self.settings.command_sync is CommandSync.AUTO and record.get(scope) == digest:
            log.info("commands unchanged since they were last synced %s; not syncing", where)
            return
        synced = await self.tree.sync(guild=guild)
        if guild is None:
            log.info(
                "synced %d commands globally (Discord may take a while to show changes)",
                len(synced),
            )
        else:
            log.info("synced %d commands %s", len(synced), where)
        if self.command_record is not None:
            record[scope] = digest
            try:
                self.command_record.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
            except OSError as error:
                log.warning(
                    "could not record the synced commands in %s: %s", self.command_record, error
                )

    def _read_command_record(self) -> dict[str, str]:
        if self.command_record is None or not self.command_record.is_file():
            return {}
        try:
            record = json.loads(self.command_record.read_text())
        except (OSError, ValueError):
            log.warning("%s is unreadable; syncing the commands again", self.command_record)
            return {}
        if not isinstance(record, dict):
            return {}
        return {str(key): str(value) for key, value in record.items()}

    async def on_ready(self) -> None:
        if self._checked_startup:
            return
        self._checked_startup = True
        log.info("logged in as %s, in %d guild(s)", self.user, len(self.guilds))
        problem = await self.startup_problem()
        if problem is not None:
            await self.stop_with(*problem)
        elif self.settings.guild_id is None:
            for guild in self.guilds:
                self.start_opening(guild.id)

    async def startup_problem(self) -> tuple[ExitCode, str] | None:
        """Why the bot cannot serve its configured guild, or None (also None without one).

        Opens the configured guild's database, so its storage is ready before the first command.
        """
        guild_id = self.settings.guild_id
        if guild_id is None:
            return None
        not_in_guild = (
            ExitCode.GUILD_NOT_FOUND,
            f"the bot is not in server {guild_id} (DISCOBASE_GUILD): invite it with the "
            "bot and applications.commands scopes, or fix the id",
        )
        if self.get_guild(guild_id) is None:
            return not_in_guild
        try:
            await self.database(guild_id)
        except discobase.MissingPermissionsError as error:
            return (
                ExitCode.MISSING_PERMISSIONS,
                f"the bot lacks permissions in server {guild_id}: {', '.join(error.missing)}; "
                "grant them to its role in Server Settings → Roles",
            )
        except discobase.GuildNotFoundError:
            return not_in_guild
        return None

    async def stop_with(self, code: ExitCode, message: str) -> None:
        """Record why the bot stops and close it; :func:`main` prints the message once."""
        self.exit_code = code
        self.exit_message = message
        await self.close()

    async def close_databases(self) -> None:
        """Stop the opens under way, flush pending writes and close every open database."""
        opening, self._opening = list(self._opening.values()), {}
        for task in opening:
            task.cancel()
        await asyncio.gather(*opening, return_exceptions=True)
        databases, self._databases = list(self._databases.values()), {}
        for database in databases:
            await self._close_database(database)

    @staticmethod
    async def _close_database(database: discobase.Database) -> None:
        try:
            await database.close()
        except discobase.DiscobaseError:
            log.exception("closing the database of guild %s failed", database.guild_id)

    async def close(self) -> None:
        await self.close_databases()
        await super().close()


def create_bot(
    settings: Settings | None = None, *, command_record: Path | None = None
) -> DiscobaseBot:
    """Build the bot without logging in. ``settings=None`` reads the environment and ``.env``.

    ``command_record`` is the file that remembers the last command sync (see
    :meth:`DiscobaseBot.sync_commands`); without one, ``auto`` syncs on every start.
    """
    return DiscobaseBot(
        settings if settings is not None else Settings.from_env(), command_record=command_record
    )


# --------------------------------------------------------------------------- online


def install_stop_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on SIGINT and SIGTERM (where the platform lets us)."""
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(signal_number, stop.set)


async def run_online(settings: Settings) -> tuple[ExitCode, str | None]:
    """Log in to Discord and serve until SIGINT/SIGTERM. Returns the exit code and why."""
    assert settings.token is not None
    bot = create_bot(settings, command_record=COMMAND_RECORD)
    stop = asyncio.Event()
    install_stop_signals(stop)

    async def close_on_stop() -> None:
        await stop.wait()
        log.info("stopping: flushing pending writes and closing databases")
        await bot.close()

    stopper = asyncio.create_task(close_on_stop())
    try:
        async with bot:
            await bot.start(settings.token)
    except discord.LoginFailure:
        return ExitCode.LOGIN_FAILED, (
            "Discord rejected DISCORD_TOKEN: copy the token again from the Developer Portal "
            "(Bot → Reset Token)"
        )
    except discord.PrivilegedIntentsRequired:
        return ExitCode.BAD_SETTINGS, "Discord refused the intents; the bot needs no privileged one"
    finally:
        stopper.cancel()
    return bot.exit_code, bot.exit_message


# --------------------------------------------------------------------------- offline


OFFLINE_ADMIN_ROLE = "db-admin"
OFFLINE_READER_ROLE = "db-reader"
OFFLINE_BOT_NAME = "discobase"
MAX_PORT = 65535


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


# --------------------------------------------------------------------------- main


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bot.py",
        description="Run the discobase bot. Without DISCORD_TOKEN it runs offline.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--offline", action="store_true", help="run against SimCord with a browser page"
    )
    mode.add_argument("--online", action="store_true", help="require DISCORD_TOKEN and log in")
    parser.add_argument(
        "--port", type=int, default=0, help="offline page port on 127.0.0.1 (default: any free)"
    )
    parser.add_argument(
        "--sync",
        action="store_true",
        help="send the slash commands to Discord on this start even if they did not change",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bot; returns the process exit code (see :class:`ExitCode`)."""
    arguments = parse_arguments(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"discobase: {error}", file=sys.stderr)
        return ExitCode.BAD_SETTINGS
    if arguments.sync:
        settings = replace(settings, command_sync=CommandSync.ALWAYS)
    offline = arguments.offline or (settings.token is None and not arguments.online)
    if offline and not 0 <= arguments.port <= MAX_PORT:
        print(f"discobase: --port must be 0 to {MAX_PORT}, not {arguments.port}", file=sys.stderr)
        return ExitCode.BAD_SETTINGS
    if arguments.online and settings.token is None:
        print("discobase: DISCORD_TOKEN is not set (put it in .env)", file=sys.stderr)
        return ExitCode.BAD_SETTINGS
    discord.utils.setup_logging(level=logging.getLevelName(settings.log_level))
    runner: Any = run_offline(settings, port=arguments.port) if offline else run_online(settings)
    try:
        code, message = asyncio.run(runner)
    except KeyboardInterrupt:
        return ExitCode.OK
    if message is not None:
        print(f"discobase: {message}", file=sys.stderr)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
