"""The simulated world the command tests run in (built by the ``world`` fixture in conftest)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import simcord

from discobot import DiscobaseBot

ADMIN_ROLE = "db-admin"
READER_ROLE = "db-reader"


@dataclass
class World:
    """The simulated guild, its members and the bot."""

    env: simcord.Env
    bot: DiscobaseBot
    guild: simcord.GuildHandle
    channel: simcord.ChannelHandle
    owner: simcord.MemberActor
    manager: simcord.MemberActor
    admin: simcord.MemberActor
    reader: simcord.MemberActor
    member: simcord.MemberActor

    async def database(self) -> Any:
        """The guild's database, through the bot (as scripts and commands get it)."""
        return await self.bot.database(self.guild.id)
