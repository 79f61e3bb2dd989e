"""Starting the bot: the command line of ``python bot.py``, the online runner, and ``main``.

With ``DISCORD_TOKEN`` set the bot logs in to Discord; without one (or with ``--offline``) it runs
offline (:mod:`discobot.offline`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import discord

from discobot.client import create_bot
from discobot.offline import run_offline
from discobot.process import ExitCode, install_stop_signals
from discobot.settings import CommandSync, Settings, SettingsError

log = logging.getLogger(__name__)

COMMAND_RECORD = Path(".discobase-commands.json")
"""Where the online bot records what it last synced (beside ``.env``, in the working directory)."""
MAX_PORT = 65535


async def run_online(settings: Settings) -> tuple[ExitCode, str | None]:
    """Log in to Discord and serve until SIGINT/SIGTERM. Returns the exit code and why."""
    assert settings.token is not None
    bot = create_bot(settings, command_record=COMMAND_RECORD)
    stop = asyncio.Event()
    install_stop_signals(stop)

    async def close_on_stop() -> None:
        await stop.wait()
        log.info("stopping: flushing pending writes and closing databases")
        await bot.close()

    stopper = asyncio.create_task(close_on_stop())
    try:
        async with bot:
            await bot.start(settings.token)
    except discord.LoginFailure:
        return ExitCode.LOGIN_FAILED, (
            "Discord rejected DISCORD_TOKEN: copy the token again from the Developer Portal "
            "(Bot → Reset Token)"
        )
    except discord.PrivilegedIntentsRequired:
        return ExitCode.BAD_SETTINGS, "Discord refused the intents; the bot needs no privileged one"
    finally:
        stopper.cancel()
    return bot.exit_code, bot.exit_message


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bot.py",
        description="Run the discobase bot. Without DISCORD_TOKEN it runs offline.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--offline", action="store_true", help="run against SimCord with a browser page"
    )
    mode.add_argument("--online", action="store_true", help="require DISCORD_TOKEN and log in")
    parser.add_argument(
        "--port", type=int, default=0, help="offline page port on 127.0.0.1 (default: any free)"
    )
    parser.add_argument(
        "--sync",
        action="store_true",
        help="send the slash commands to Discord on this start even if they did not change",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bot; returns the process exit code (see :class:`ExitCode`)."""
    arguments = parse_arguments(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"discobase: {error}", file=sys.stderr)
        return ExitCode.BAD_SETTINGS
    if arguments.sync:
        settings = replace(settings, command_sync=CommandSync.ALWAYS)
    offline = arguments.offline or (settings.token is None and not arguments.online)
    if offline and not 0 <= arguments.port <= MAX_PORT:
        print(f"discobase: --port must be 0 to {MAX_PORT}, not {arguments.port}", file=sys.stderr)
        return ExitCode.BAD_SETTINGS
    if arguments.online and settings.token is None:
        print("discobase: DISCORD_TOKEN is not set (put it in .env)", file=sys.stderr)
        return ExitCode.BAD_SETTINGS
    discord.utils.setup_logging(level=logging.getLevelName(settings.log_level))
    runner: Any = run_offline(settings, port=arguments.port) if offline else run_online(settings)
    try:
        code, message = asyncio.run(runner)
    except KeyboardInterrupt:
        return ExitCode.OK
    if message is not None:
        print(f"discobase: {message}", file=sys.stderr)
    return int(code)
