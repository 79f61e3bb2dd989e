"""Drive the offline page (SimCord's preview) in a real browser the way a person does.

The page is SimCord's preview of ``#general``: a composer where ``/`` opens the command picker,
option pills to fill, replies as messages in the channel, buttons under them, and a "Viewing as"
picker that switches the acting member. ``window.simcordPreview`` reports whether the page is
idle (``ready``) and the receipt of the last action (``lastAction``) with the ids of the messages
it produced; every wait below is on those, never on time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Download, Locator, Page

#: Where every screenshot goes (ignored by git).
SCREENSHOTS = Path(__file__).parent / "screenshots"
#: Where the tutorial's screenshots go when the tests run with ``--tutorial-images``.
TUTORIAL_IMAGES = Path(__file__).parents[2] / "docs" / "images"


@dataclass
class Reply:
    """A message the bot showed, as the page renders it (whitespace runs read as one space)."""

    message_id: str
    text: str


class OfflinePage:
    """The offline page in a browser tab."""

    def __init__(self, page: Page, *, tutorial_images: bool = False) -> None:
        self.page = page
        self.tutorial_images = tutorial_images

    async def ready(self) -> None:
        """Wait until the page has no action in flight."""
        await self.page.wait_for_function("() => window.simcordPreview?.ready === true")

    async def _last_request(self) -> str | None:
        request: str | None = await self.page.evaluate(
            "() => window.simcordPreview.lastAction?.requestId ?? null"
        )
        return request

    async def _settled_after(self, previous: str | None) -> dict[str, Any]:
        """Wait for the receipt of the action after ``previous``; it must have settled."""
        await self.page.wait_for_function(
            """(previous) => {
                const status = window.simcordPreview;
                return status.ready && status.lastAction
                    && status.lastAction.requestId !== previous;
            }""",
            arg=previous,
        )
        receipt: dict[str, Any] = await self.page.evaluate("() => window.simcordPreview.lastAction")
        assert not receipt["rejected"], f"the page refused the action: {json.dumps(receipt)}"
        assert receipt["settlement"] == "settled", f"the bot did not settle: {json.dumps(receipt)}"
        return receipt

    def _article(self, message_id: str) -> Locator:
        return self.page.locator(f'article.channel-message[data-message-id="{message_id}"]')

    async def message(self, message_id: str) -> Reply:
        """A message of the channel as shown (content, embeds, buttons)."""
        article = self._article(message_id)
        await article.scroll_into_view_if_needed()
        return Reply(message_id, " ".join((await article.inner_text()).split()))

    async def view_as(self, name: str) -> None:
        """Switch the acting member with the page's "Viewing as" picker."""
        await self.page.select_option("#viewer-picker", label=name)
        await self.page.wait_for_function(
            """(name) => {
                const picker = document.getElementById("viewer-picker");
                const chosen = picker.options[picker.selectedIndex];
                return chosen && chosen.textContent === name
                    && window.simcordPreview.viewerId === chosen.value
                    && window.simcordPreview.ready;
            }""",
            arg=name,
        )

    async def offered_commands(self, typed: str) -> list[str]:
        """The commands the picker offers after typing ``typed`` (which starts with /)."""
        composer = self.page.locator("#channel-composer-input")
        await composer.click()
        await composer.fill(typed)
        entries = self.page.locator("#command-picker-listbox .command-entry-title strong")
        offered = [text.removeprefix("/") for text in await entries.all_inner_texts()]
        await composer.fill("")
        return offered

    async def compose(self, invocation: str, **options: object) -> None:
        """Type ``/invocation``, pick it, and fill its options (adding optional ones)."""
        composer = self.page.locator("#channel-composer-input")
        await composer.click()
        await composer.fill(f"/{invocation}")
        key = invocation.replace(" ", ".")
        await self.page.locator(f'.command-entry[data-entry-key$=":{key}"]').click()
        for name, value in options.items():
            field = self.page.locator(f'.command-option-input[data-option="{name}"]')
            if not await field.count():
                await self.page.locator(".command-row .command-ghost").click()
                await self.page.locator(f'.command-suggestion[data-value="{name}"]').click()
            await field.fill(str(value))
            # An option with suggestions asks the bot for them; let that answer arrive.
            await self.page.wait_for_function(
                """(name) => {
                    const asked = window.simcordPreview.commandPicker.autocomplete;
                    return asked.option !== name || asked.state !== "loading";
                }""",
                arg=name,
            )
        await self.ready()

    async def slash(self, invocation: str, **options: object) -> Reply:
        """Run a slash command from the composer; return the reply the page shows."""
        await self.compose(invocation, **options)
        return await self.send()

    async def send(self) -> Reply:
        """Send the composed command; return the reply the page shows (empty for a form)."""
        previous = await self._last_request()
        await self.page.locator("#send-message").click()
        receipt = await self._settled_after(previous)
        shown = [o for o in receipt["outcomes"] if o.get("messageId")]
        if not shown:  # the reply is a form (a modal)
            return Reply("", "")
        return await self.message(str(shown[-1]["messageId"]))

    async def click(self, reply: Reply, label: str) -> Reply:
        """Press a button under a message; return that message as it shows afterwards."""
        article = self._article(reply.message_id)
        previous = await self._last_request()
        await article.locator("button.component-button", has_text=label).click()
        await self._settled_after(previous)
        return await self.message(reply.message_id)

    async def submit_form(self, *values: str) -> Reply:
        """Fill the open form's text boxes in order and submit it."""
        inputs = self.page.locator("#modal-root .modal-input")
        assert await inputs.count() == len(values), "the form has other fields"
        for index, value in enumerate(values):
            await inputs.nth(index).fill(value)
        previous = await self._last_request()
        await self.page.locator("#modal-root button.button-primary").click()
        receipt = await self._settled_after(previous)
        [shown] = [o for o in receipt["outcomes"] if o.get("messageId")]
        return await self.message(str(shown["messageId"]))

    async def download(self, reply: Reply, filename: str) -> Download:
        """Download an attachment of a message with its download button."""
        article = self._article(reply.message_id)
        async with self.page.expect_download() as started:
            await article.get_by_role("button", name=f"Download {filename}").click()
        return await started.value

    async def screenshot(self, name: str, *, tutorial: bool = False) -> None:
        """Save the page as ``name``.png; a tutorial image also goes to docs/images (when asked
        to refresh them), cropped to the channel so that it stays small."""
        SCREENSHOTS.mkdir(exist_ok=True)
        await self.page.screenshot(path=SCREENSHOTS / f"{name}.png")
        if tutorial and self.tutorial_images:
            await self.page.locator("#preview-stage").screenshot(
                path=TUTORIAL_IMAGES / f"{name}.png"
            )
