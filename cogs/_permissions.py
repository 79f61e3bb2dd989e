"""Who may run which command: the permission model, enforced in code and mirrored in Discord.

Every command declares the access it needs with ``extras=requires(Access.READ | WRITE)``:

* **write** (change data or schema): the server owner, members with Manage Server (or
  Administrator), and members with the admin role;
* **read**: everyone who may write, and members with the reader role.

With neither role configured only Manage Server members may use the bot. The bot's command tree
checks this before any command runs. ``default_permissions`` (Manage Server) is set on commands only
where it matches the model exactly, because Discord lets server admins override it and discord.py
ignores it on subcommands; it hides commands, it never grants anything.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol

import discord
from discord import app_commands


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


def find_role(guild: discord.Guild, role: str | None) -> discord.Role | None:
    """The guild's role that ``role`` names by id or by exact name, or None."""
    if role is None:
        return None
    if role.isdigit() and (by_id := guild.get_role(int(role))) is not None:
        return by_id
    return discord.utils.get(guild.roles, name=role)


def member_access(member: discord.Member, settings: RoleSettings) -> Access | None:
    """The most a member may do, or None if they may not use the bot at all."""
    guild = member.guild
    if member.id == guild.owner_id or member.guild_permissions.manage_guild:
        return Access.WRITE
    role_ids = {role.id for role in member.roles}
    admin_role = find_role(guild, settings.admin_role)
    if admin_role is not None and admin_role.id in role_ids:
        return Access.WRITE
    reader_role = find_role(guild, settings.reader_role)
    if reader_role is not None and reader_role.id in role_ids:
        return Access.READ
    return None


def access_denied_message(
    interaction: discord.Interaction[Any], access: Access, settings: RoleSettings
) -> str | None:
    """Why the interaction's user may not do ``access``, or None if they may."""
    member = interaction.user
    if interaction.guild is None or not isinstance(member, discord.Member):
        return "discobase commands work in a server, not in direct messages."
    granted = member_access(member, settings)
    if granted is Access.WRITE or (granted is Access.READ and access is Access.READ):
        return None
    holders = ["the Manage Server permission"]
    if settings.admin_role is not None:
        holders.append(f"the `{settings.admin_role}` role")
    if access is Access.READ and settings.reader_role is not None:
        holders.append(f"the `{settings.reader_role}` role")
    needed = holders[0] if len(holders) == 1 else f"{', '.join(holders[:-1])} or {holders[-1]}"
    if access is Access.WRITE:
        return f"Changing the database needs {needed}."
    return f"Reading the database needs {needed}."


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
