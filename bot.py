"""Runs the discobase bot: ``python bot.py [--offline | --online] [--port N] [--sync]``.

With ``DISCORD_TOKEN`` set it logs in to Discord; without one (or with ``--offline``) it runs the
same bot against SimCord, an in-memory Discord, with a browser page on 127.0.0.1. The bot is the
``discobot`` package; its slash commands are the extensions in ``cogs/``. See docs/commands.md.
"""

import sys

from discobot.startup import main

if __name__ == "__main__":
    sys.exit(main())
