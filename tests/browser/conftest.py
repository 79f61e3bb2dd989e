"""The offline bot as the README starts it (``python bot.py``), and headless Chromium on its page.

Chromium comes from the system (Debian's ``chromium`` package; ``DISCOBASE_CHROMIUM`` names
another binary); Playwright drives it with ``executable_path``, so no browser is downloaded.
Without Chromium the tests skip, except in CI (``CI=true``), where they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from tests.browser.offline_page import OfflinePage

ROOT = Path(__file__).parents[2]
ADDRESS = re.compile(r"http://127\.0\.0\.1:\d+/#\S+")
#: Generous bounds for a slow shared machine; each is a hang guard, not a wait.
START_TIMEOUT = 60.0
ACTION_TIMEOUT_MS = 30_000


@pytest.fixture
def chromium() -> str:
    """The Chromium binary to drive."""
    chromium = os.environ.get("DISCOBASE_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        reason = "the browser test needs Chromium: apt-get install chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI installs it in .ci/run and must run this test)")
        pytest.skip(reason)
    return chromium


@pytest.fixture
async def offline_bot(tmp_path: Path) -> AsyncIterator[str]:
    """Run ``python bot.py`` with no token; yield the page address it prints.

    At the end the bot is stopped with Ctrl+C (SIGINT) and must exit cleanly, without a
    traceback in its log.
    """
    log_path = tmp_path / "bot.log"
    environment = {**os.environ, "DISCORD_TOKEN": "", "PYTHONUNBUFFERED": "1"}
    with log_path.open("w") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "bot.py",
            cwd=ROOT,
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        assert process.stdout is not None
        printed = []
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while not (found := ADDRESS.search("".join(printed))):
                    line = (await process.stdout.readline()).decode()
                    assert line, (
                        f"bot.py exited before printing its address:\n{log_path.read_text()}"
                    )
                    printed.append(line)
            yield found.group(0)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
            async with asyncio.timeout(START_TIMEOUT):
                rest = (await process.stdout.read()).decode()
                code = await process.wait()
    log_text = log_path.read_text()
    assert code == 0, f"bot.py exited with {code}:\n{log_text}"
    assert "Traceback" not in log_text, log_text
    assert "stopping; the in-memory data is discarded" in rest


@pytest.fixture
async def offline_page(chromium: str, offline_bot: str) -> AsyncIterator[OfflinePage]:
    """The offline page open in headless Chromium, acting as the admin (ada)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, headless=True)
        # The page's strict Content-Security-Policy forbids evaluating strings, which is how
        # Playwright runs the wait conditions; bypassing it changes nothing else on the page.
        context = await browser.new_context(
            viewport={"width": 1100, "height": 760}, bypass_csp=True, accept_downloads=True
        )
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        page = await context.new_page()
        await page.goto(offline_bot)
        shown = OfflinePage(
            page, tutorial_images=os.environ.get("DISCOBASE_TUTORIAL_IMAGES") == "1"
        )
        await shown.ready()
        try:
            yield shown
        finally:
            await browser.close()
