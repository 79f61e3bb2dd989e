"""Slash commands as the bot declares them: ``@command(name=..., description=..., access=...)``
and ``@subcommand(group, ...)`` instead of discord.py's decorators.

Each is a :class:`SlashCommand`: the command tree checks its ``access`` before it runs
(:mod:`discobot.permissions`), and an expected error raised while it runs, by an option's
transformer (an unknown table) or by its body (bad input, a discobase error), is answered inside
the command's invocation (:func:`discobot.errors.answer_error`). discord.py hands any other error
to the tree's ``on_error``, which answers it the same way and logs it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import discord
from discord import app_commands

from discobot.errors import answering_expected
from discobot.permissions import Access, requires

Callback = Callable[..., Coroutine[Any, Any, None]]


class SlashCommand(app_commands.Command[Any, ..., None]):
    """An app command whose expected errors are answered within its invocation."""

    # discord.py runs the options' transformers and the callback here, then hands whatever they
    # raised to the tree's on_error, which SimCord and the offline page count as a crash.
    async def _invoke_with_namespace(
        self, interaction: discord.Interaction[Any], namespace: app_commands.Namespace
    ) -> None:
        async with answering_expected(interaction):
            await super()._invoke_with_namespace(interaction, namespace)


def command(*, name: str, description: str, access: Access) -> Callable[[Callback], SlashCommand]:
    """Declare a top-level slash command that needs ``access``."""

    def declare(callback: Callback) -> SlashCommand:
        return SlashCommand(
            name=name, description=description, callback=callback, extras=requires(access)
        )

    return declare


def subcommand(
    group: app_commands.Group, *, name: str, description: str, access: Access
) -> Callable[[Callback], SlashCommand]:
    """Declare ``/group name``, a subcommand that needs ``access``."""

    def declare(callback: Callback) -> SlashCommand:
        declared = SlashCommand(
            name=name,
            description=description,
            callback=callback,
            parent=group,
            extras=requires(access),
        )
        group.add_command(declared)
        return declared

    return declare
