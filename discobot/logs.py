"""What the bot does to logging: interaction tokens never reach a log.

The bot configures logging itself (``discord.utils.setup_logging`` in :mod:`discobot.startup`); the
library never does.
"""

from __future__ import annotations

import logging
import re

TOKEN_LOGGERS = ("discord.http", "discord.webhook.async_", "discord.webhook.sync")
_TOKEN_IN_URL = re.compile(r"(/(?:interactions|webhooks)/\d+/)[^/\s?#'\"]+")


class RedactTokens(logging.Filter):
    """Replaces the token in interaction and webhook URLs with ``<redacted>``.

    At DEBUG level discord.py logs every request URL; an interaction's callback and follow-up URLs
    (``/interactions/<id>/<token>/callback``, ``/webhooks/<application id>/<token>/…``) carry a
    token that lets anyone answer or edit the bot's reply for 15 minutes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _TOKEN_IN_URL.sub(r"\1<redacted>", message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


def redact_tokens_in_logs() -> None:
    """Install :class:`RedactTokens` on discord.py's HTTP and webhook loggers (once)."""
    for name in TOKEN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactTokens) for existing in logger.filters):
            logger.addFilter(RedactTokens())
