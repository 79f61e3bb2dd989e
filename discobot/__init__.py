"""discobot: the discobase bot, slash commands that administer a guild's database from Discord.

``python bot.py`` runs it (:func:`discobot.startup.main`). The package holds the bot and what its
commands share; the commands themselves are the extensions in ``cogs/``. Modules:

* :mod:`~discobot.settings`: settings from the environment and ``.env``;
* :mod:`~discobot.client`: the bot (command tree, cogs, command sync, shutdown);
* :mod:`~discobot.databases`: each guild's database, opened in the background, and Discord's
  deadlines on reaching it from a command;
* :mod:`~discobot.slash`: how commands are declared (``@command``, ``@subcommand``);
* :mod:`~discobot.options`, :mod:`~discobot.tables`: the ``table`` option, resolved to the
  table's class and schema before the command runs;
* :mod:`~discobot.permissions`: who may run which command;
* :mod:`~discobot.errors`: every error as a reply, in one place;
* :mod:`~discobot.logs`: no interaction token in a log;
* :mod:`~discobot.grammar`: the small languages of command options (fields, queries, sorts);
* :mod:`~discobot.render`: records and schemas as inert Discord messages;
* :mod:`~discobot.views`: buttons (pages, confirmations);
* :mod:`~discobot.autocomplete`: choices for table names, fields and keys;
* :mod:`~discobot.process`, :mod:`~discobot.startup`, :mod:`~discobot.offline`: exit codes and
  signals, the command line and online runner, the offline world.
"""

from discobot.client import DiscobaseBot, create_bot
from discobot.process import ExitCode
from discobot.settings import CommandSync, Settings, SettingsError
from discobot.startup import main

__all__ = (
    "CommandSync",
    "DiscobaseBot",
    "ExitCode",
    "Settings",
    "SettingsError",
    "create_bot",
    "main",
)
