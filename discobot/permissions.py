"""Who may run which command: the permission model, enforced in code and mirrored in Discord.

Every command declares the access it needs with ``extras=requires(Access.READ | WRITE)``:

* **write** (change data or schema): the server owner, members with Manage Server (or
  Administrator), and members with the admin role;
* **read**: everyone who may write, and members with the reader role.

The roles are configured by id, or by a name that :class:`Roles` resolves once per guild and
refuses when two roles share it (see docs/security.md). Refusals never name a role, so they do not
tell anyone which role to create.

With neither role configured only Manage Server members may use the bot. The bot's command tree
checks this before any command runs. ``default_permissions`` (Manage Server) is set on commands only
where it matches the model exactly, because Discord lets server admins override it and discord.py
ignores it on subcommands; it hides commands, it never grants anything.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any, Literal, Protocol

import discord
from discord import app_commands

log = logging.getLogger(__name__)

RoleKind = Literal["admin", "reader"]
ROLE_SETTINGS: dict[RoleKind, str] = {
    "admin": "DISCOBASE_ADMIN_ROLE",
    "reader": "DISCOBASE_READER_ROLE",
}


class Access(StrEnum):
    """What a command does to the database."""

    READ = "read"
    WRITE = "write"


class RoleSettings(Protocol):
    """The part of the bot's settings the permission model reads."""

    @property
    def admin_role(self) -> str | None: ...

    @property
    def reader_role(self) -> str | None: ...


def requires(access: Access) -> dict[str, Any]:
    """``extras`` for an app command that needs ``access``."""
    return {"access": access}


def required_access(command: app_commands.Command[Any, ..., Any]) -> Access:
    """The access a command declared; commands that declare none are treated as writes."""
    return Access(command.extras.get("access", Access.WRITE))


class Roles:
    """The configured admin and reader roles of each guild, resolved the same way for every check
    and for the storage overwrites.

    A setting of digits (or a pasted role mention, ``<@&id>``) is a role id and only ever matches
    the role with that id: once that role is
    deleted the setting matches nothing, never a role *named* like the id. Any other setting is an
    exact role name, resolved to one role id the first time a guild needs it and kept for the life
    of the process, so a role created or renamed to that name later grants nothing. A name that
    two or more roles share matches nothing (and is logged) until only one role has it.
    """

    def __init__(self, settings: RoleSettings) -> None:
        self.settings = settings
        self._resolved: dict[tuple[int, RoleKind], int] = {}

    def configured(self, kind: RoleKind) -> str | None:
        """The setting of the ``admin`` or ``reader`` role, as written."""
        return self.settings.admin_role if kind == "admin" else self.settings.reader_role

    def role(self, guild: discord.Guild, kind: RoleKind) -> discord.Role | None:
        """The guild's ``admin`` or ``reader`` role, or None (not set, deleted or ambiguous)."""
        setting = self.configured(kind)
        if setting is None:
            return None
        role_id = setting.removeprefix("<@&").removesuffix(">")
        if role_id.isdigit():
            return guild.get_role(int(role_id))
        resolved = self._resolved.get((guild.id, kind))
        if resolved is not None:
            return guild.get_role(resolved)
        named = [role for role in guild.roles if role.name == setting]
        if len(named) > 1:
            log.warning(
                "%s names %d roles of guild %s, so it grants nothing; set it to the role's id",
                ROLE_SETTINGS[kind],
                len(named),
                guild.id,
            )
            return None
        if not named:
            return None
        self._resolved[(guild.id, kind)] = named[0].id
        log.info("%s is role %s in guild %s", ROLE_SETTINGS[kind], named[0].id, guild.id)
        return named[0]

    def member_access(self, member: discord.Member) -> Access | None:
        """The most a member may do, or None if they may not use the bot at all."""
        guild = member.guild
        if member.id == guild.owner_id or member.guild_permissions.manage_guild:
            return Access.WRITE
        role_ids = {role.id for role in member.roles}
        admin_role = self.role(guild, "admin")
        if admin_role is not None and admin_role.id in role_ids:
            return Access.WRITE
        reader_role = self.role(guild, "reader")
        if reader_role is not None and reader_role.id in role_ids:
            return Access.READ
        return None


def access_denied_message(
    interaction: discord.Interaction[Any], access: Access, roles: Roles
) -> str | None:
    """Why the interaction's user may not do ``access``, or None if they may.

    The message names no role: a role's name is what someone with Manage Roles would copy.
    """
    member = interaction.user
    if interaction.guild is None or not isinstance(member, discord.Member):
        return "discobase commands work in a server, not in direct messages."
    granted = roles.member_access(member)
    if granted is Access.WRITE or (granted is Access.READ and access is Access.READ):
        return None
    holders = ["the Manage Server permission"]
    if roles.configured("admin") is not None:
        holders.append("the database admin role")
    if access is Access.READ and roles.configured("reader") is not None:
        holders.append("the database reader role")
    needed = holders[0] if len(holders) == 1 else f"{', '.join(holders[:-1])} or {holders[-1]}"
    verb = "Changing" if access is Access.WRITE else "Reading"
    ask = "; a server admin can tell you who has them" if len(holders) > 1 else ""
    return f"{verb} the database needs {needed}{ask}."


def only_managers_may(access: Access, settings: RoleSettings) -> bool:
    """True when exactly the Manage Server members hold ``access`` (no role widens it)."""
    if access is Access.WRITE:
        return settings.admin_role is None
    return settings.admin_role is None and settings.reader_role is None


def apply_default_permissions(tree: app_commands.CommandTree[Any], settings: RoleSettings) -> None:
    """Make every top-level command guild-only and hide it from members who could never run it.

    A group gets the default of its least demanding subcommand. Call before syncing.
    """
    for command in tree.get_commands(type=discord.AppCommandType.chat_input):
        if isinstance(command, app_commands.Group):
            leaves = [
                leaf for leaf in command.walk_commands() if isinstance(leaf, app_commands.Command)
            ]
        elif isinstance(command, app_commands.Command):
            leaves = [command]
        else:
            continue
        least = (
            Access.READ if any(required_access(c) is Access.READ for c in leaves) else Access.WRITE
        )
        command.guild_only = True
        command.default_permissions = (
            discord.Permissions(manage_guild=True) if only_managers_may(least, settings) else None
        )
