"""Interactive views and forms: pages of records, confirmation buttons for destructive commands,
and the base of the forms commands open.

Only the member who ran the command may press the buttons, and only while they still hold the
access the command needs (a role taken away in between takes the buttons with it); others get an
ephemeral refusal. A view ends before the command's interaction token does, since its buttons
edit the command's answer through that token. Buttons and forms answer their errors as commands
do (:func:`discobot.errors.answer_error`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from discobot.databases import token_time_left
from discobot.errors import answer_error, answering_expected, error_reply, is_expected
from discobot.permissions import Access, access_denied_message, required_access
from discobot.render import NO_MENTIONS, content

log = logging.getLogger(__name__)


async def still_allowed(interaction: discord.Interaction[Any], access: Access) -> bool:
    """Whether the interaction's member holds ``access`` now; if not, tells them so."""
    denial = access_denied_message(interaction, access, interaction.client.roles)
    if denial is None:
        return True
    await interaction.response.send_message(denial, ephemeral=True, allowed_mentions=NO_MENTIONS)
    return False


def command_access(interaction: discord.Interaction[Any]) -> Access:
    """The access the interaction's command needs (a write when it names none)."""
    command = interaction.command
    if isinstance(command, discord.app_commands.Command):
        return required_access(command)
    return Access.WRITE


class OwnedView(discord.ui.View):
    """A view only the member who ran the command may use; on timeout its buttons go.

    The view times out after ``timeout`` seconds or just before the command's token ends.
    """

    def __init__(self, owner: discord.Interaction[Any], *, timeout: float) -> None:
        super().__init__(timeout=min(timeout, token_time_left(owner)))
        self.owner = owner
        self.access = command_access(owner)

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        if interaction.user.id != self.owner.user.id:
            await interaction.response.send_message(
                "Only the member who ran this command can use these buttons.",
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
            return False
        return await still_allowed(interaction, self.access)

    async def on_error(
        self, interaction: discord.Interaction[Any], error: Exception, item: discord.ui.Item[Any]
    ) -> None:
        await answer_error(interaction, error)


class Form(discord.ui.Modal):
    """A form that changes data. Subclasses implement :meth:`submit`; the submitting member's
    access is checked again first, and its expected errors are answered like a command's."""

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        return await still_allowed(interaction, Access.WRITE)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        async with answering_expected(interaction):
            await self.submit(interaction)

    async def submit(self, interaction: discord.Interaction[Any]) -> None:
        """Act on the submitted values and answer."""
        raise NotImplementedError

    # discord.ui.Modal's on_error takes no item, unlike the View's it inherits from.
    async def on_error(  # type: ignore[override]
        self, interaction: discord.Interaction[Any], error: Exception, /
    ) -> None:
        await answer_error(interaction, error)


class RecordPages(OwnedView):
    """Previous/Next buttons over embeds; the message shows one page at a time."""

    def __init__(self, owner: discord.Interaction[Any], pages: list[discord.Embed]) -> None:
        super().__init__(owner, timeout=600)
        self.pages = pages
        self.index = 0
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        self.previous.disabled = self.index == 0
        self.next.disabled = self.index >= len(self.pages) - 1

    async def _show(self, interaction: discord.Interaction[Any], index: int) -> None:
        self.index = max(0, min(index, len(self.pages) - 1))
        self._sync_buttons()
        await interaction.response.edit_message(embed=self.pages[self.index], view=self)

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary)
    async def previous(
        self, interaction: discord.Interaction[Any], _: discord.ui.Button[Any]
    ) -> None:
        await self._show(interaction, self.index - 1)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction[Any], _: discord.ui.Button[Any]) -> None:
        await self._show(interaction, self.index + 1)

    async def on_timeout(self) -> None:
        try:
            await self.owner.edit_original_response(view=None)
        except discord.HTTPException:
            log.debug("could not remove the page buttons after the timeout", exc_info=True)


class Confirmation(OwnedView):
    """A destructive action that runs only when the command's member presses the button in time.

    ``action`` does the work inside the button's interaction and returns the text to show in
    place of the question; so does an error it raises (:func:`discobot.errors.error_reply`).
    """

    def __init__(
        self,
        owner: discord.Interaction[Any],
        *,
        confirm_label: str,
        action: Callable[[discord.Interaction[Any]], Awaitable[str]],
        timeout: float = 60,
        timeout_text: str,
    ) -> None:
        super().__init__(owner, timeout=timeout)
        self.action = action
        self.timeout_text = timeout_text
        self.confirm.label = confirm_label

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.danger)
    async def confirm(
        self, interaction: discord.Interaction[Any], _: discord.ui.Button[Any]
    ) -> None:
        self.stop()
        await interaction.response.defer()
        try:
            text = await self.action(interaction)
        except Exception as error:
            if not is_expected(error):
                raise
            text = error_reply(interaction, error)
        await self.owner.edit_original_response(content=content(text), embed=None, view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(
        self, interaction: discord.Interaction[Any], _: discord.ui.Button[Any]
    ) -> None:
        self.stop()
        await interaction.response.edit_message(
            content="Cancelled; nothing was changed.", view=None
        )

    async def on_timeout(self) -> None:
        try:
            await self.owner.edit_original_response(content=self.timeout_text, view=None)
        except discord.HTTPException:
            log.debug("could not show the confirmation timeout", exc_info=True)
