"""The bot's settings: read once from the environment and ``.env``, checked, typed.

``.env.example`` lists the variables and docs/commands.md explains them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from dotenv import dotenv_values

import discobase


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
    role has (see :class:`discobot.permissions.Roles`).
    """

    token: str | None = field(default=None, repr=False)
    guild_id: int | None = None
    admin_role: str | None = None
    reader_role: str | None = None
    log_level: str = "INFO"
    category: str = "discobase"
    command_sync: CommandSync = CommandSync.AUTO
    #: ``DISCOBASE_ENCRYPTION_KEY``: the key(s) every guild's database is encrypted with.
    encryption_key: str | None = field(default=None, repr=False)
    #: ``DISCOBASE_ENCRYPTION_REQUIRED``: refuse storage messages that are not encrypted.
    encryption_required: bool = False

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
        encryption_key = text("DISCOBASE_ENCRYPTION_KEY")
        if encryption_key is not None:
            try:
                discobase.KeyRing.of(encryption_key)
            except discobase.InvalidKeyError as error:
                raise SettingsError(f"DISCOBASE_ENCRYPTION_KEY: {error}") from None
        required = (text("DISCOBASE_ENCRYPTION_REQUIRED") or "false").lower()
        if required not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise SettingsError(
                f"DISCOBASE_ENCRYPTION_REQUIRED must be true or false, not {required!r}"
            )
        encryption_required = required in ("true", "1", "yes", "on")
        if encryption_required and encryption_key is None:
            raise SettingsError(
                "DISCOBASE_ENCRYPTION_REQUIRED is set: set DISCOBASE_ENCRYPTION_KEY too"
            )
        return cls(
            token=token,
            guild_id=int(guild) if guild is not None else None,
            admin_role=text("DISCOBASE_ADMIN_ROLE"),
            reader_role=text("DISCOBASE_READER_ROLE"),
            log_level=log_level,
            category=text("DISCOBASE_CATEGORY") or "discobase",
            command_sync=CommandSync(sync),
            encryption_key=encryption_key,
            encryption_required=encryption_required,
        )
