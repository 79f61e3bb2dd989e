"""The bot: a discord.py client that holds one discobase database per guild, loads the cogs in
``cogs/``, checks access before every command, syncs its commands and shuts down cleanly."""

from __future__ import annotations

import hashlib
import json
import logging
import pkgutil
from pathlib import Path

import discord
from discord import app_commands
from discord.ext import commands

import discobase
from discobot.databases import GuildDatabases
from discobot.errors import answer_error
from discobot.logs import redact_tokens_in_logs
from discobot.permissions import (
    Roles,
    access_denied_message,
    apply_default_permissions,
    required_access,
)
from discobot.process import ExitCode
from discobot.settings import CommandSync, Settings

log = logging.getLogger(__name__)

COGS_DIRECTORY = Path(__file__).resolve().parents[1] / "cogs"
"""The bot's extensions: every module in ``cogs/`` is one (``async def setup(bot)``)."""


class DiscobaseTree(app_commands.CommandTree["DiscobaseBot"]):
    """The command tree: checks access before any command runs, answers every error."""

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
        await answer_error(interaction, error)


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
    """The bot. Holds one :class:`discobase.Database` per guild (:attr:`databases`).

    Every guild's database opens in the background when the bot is ready or joins the guild (or
    on first use), and closes when the bot leaves the guild. When ``settings.guild_id`` is set,
    the bot syncs its commands to that guild only and opens its database before serving; a guild
    it is not in or missing permissions stop it with :attr:`exit_code` set.
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
        self.databases = GuildDatabases(
            self,
            category=settings.category,
            roles=self.roles,
            encryption_key=settings.encryption_key,
            encryption_required=settings.encryption_required,
        )
        self._checked_startup = False

    async def database(self, guild_id: int) -> discobase.Database:
        """The open database of a guild; opens it (or joins the open under way) on first use.

        Raises the errors of :meth:`discobase.Database.open`; see :meth:`GuildDatabases.get`.
        """
        return await self.databases.get(guild_id)

    def open_database(self, guild_id: int) -> discobase.Database | None:
        """The guild's database if it is open now, else None (and its open starts at once)."""
        return self.databases.get_open(guild_id)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        if self.settings.guild_id is None:
            self.databases.open_in_background(guild.id)

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """The bot left (or was removed from) a guild: close its database, stop its open."""
        await self.databases.forget(guild.id)

    async def setup_hook(self) -> None:
        for extension in sorted(
            module.name for module in pkgutil.iter_modules([str(COGS_DIRECTORY)])
        ):
            await self.load_extension(f"cogs.{extension}")
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
                self.databases.open_in_background(guild.id)

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
        await self.databases.close()

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
