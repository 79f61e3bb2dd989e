"""``python -m discobase COMMAND``: the command line of :mod:`discobase.cli`.

Commands: ``tables``, ``schema``, ``export``, ``import``, ``backup``, ``restore``, ``check``,
``compact``, ``stats`` and ``migrate-v1`` (see docs/operations.md, docs/migrating-from-1.0.md).
"""

from __future__ import annotations

import sys

from .cli import add_migrate_v1, main, parser, run

__all__ = ("add_migrate_v1", "main", "parser", "run")

if __name__ == "__main__":
    sys.exit(main())
