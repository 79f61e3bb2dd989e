"""The bot as a process: its exit codes and the signals that stop it."""

from __future__ import annotations

import asyncio
import signal
from contextlib import suppress
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of ``python bot.py``, documented in docs/commands.md."""

    OK = 0
    UNEXPECTED = 1
    BAD_SETTINGS = 2
    LOGIN_FAILED = 3
    GUILD_NOT_FOUND = 4
    MISSING_PERMISSIONS = 5


def install_stop_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on SIGINT and SIGTERM (where the platform lets us)."""
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(signal_number, stop.set)
