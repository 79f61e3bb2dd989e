"""Command options resolved before the command runs: the ``table`` option.

Commands declare ``table: ChosenTable``. Before the command runs, :class:`TableOption` resolves
the name the member chose to a :class:`~discobot.tables.TableRef` (the guild's database, the
table's class and its schema), and it offers the guild's table names as autocomplete. An unknown
name raises ``discobase.TableNotFoundError``, answered like every error (:mod:`discobot.errors`):
"There is no table ``cats``; ``/table list`` shows the tables."

A command answers within Discord's 3 s: when the guild's database is still opening, the option
defers the interaction ("thinking…") and waits for the open while the token lasts
(:func:`discobot.databases.guild_database`). A command that answers with a form instead
(``/insert`` without ``data``) cannot defer, so there the option answers at once that the
database is still opening.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from discobot.autocomplete import table_names
from discobot.databases import (
    DatabaseOpeningError,
    defer,
    guild_database,
    open_guild_database,
)
from discobot.tables import TableRef


class TableOption(app_commands.Transformer):
    """Resolves a ``table`` option to a :class:`TableRef`, and autocompletes table names.

    ``form_unless``: the command answers with a form when this option is empty, so it must not
    defer (see the module's docstring).
    """

    def __init__(self, *, form_unless: str | None = None) -> None:
        self.form_unless = form_unless

    async def transform(self, interaction: discord.Interaction[Any], value: str) -> TableRef:
        if self._answers_with_form(interaction):
            return TableRef.named(open_guild_database(interaction), value)
        try:
            database = open_guild_database(interaction)
        except DatabaseOpeningError:
            await defer(interaction)
            database = await guild_database(interaction)
        return TableRef.named(database, value)

    def _answers_with_form(self, interaction: discord.Interaction[Any]) -> bool:
        return (
            self.form_unless is not None
            and getattr(interaction.namespace, self.form_unless, None) is None
        )

    # discord.py types an option's value and choices for every option type; this one is text.
    async def autocomplete(  # type: ignore[override]
        self, interaction: discord.Interaction[Any], value: str
    ) -> list[app_commands.Choice[str]]:
        return await table_names(interaction, value)


ChosenTable = app_commands.Transform[TableRef, TableOption]
"""A ``table`` option: the command receives a :class:`TableRef`."""
InsertTable = app_commands.Transform[TableRef, TableOption(form_unless="data")]
"""``/insert``'s ``table`` option, which answers with a form when ``data`` is empty."""
