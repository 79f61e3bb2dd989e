"""discobase 1.0's module of errors, kept so that 1.0 imports work unchanged.

Its names are those of :mod:`discobase.errors`: 1.0's categories are bases of the errors that
took their place (``SchemaError`` is a ``DatabaseTableError``, ``RecordNotFoundError`` a
``DatabaseLookupError``, ...), so ``except`` clauses written for 1.0 catch what this version
raises. docs/migrating-from-1.0.md has the full table.
"""

from .errors import (
    DatabaseCorruptionError,
    DatabaseLookupError,
    DatabaseStorageError,
    DatabaseTableError,
    DiscobaseError,
    NotConnectedError,
)

__all__ = (
    "DatabaseCorruptionError",
    "DatabaseLookupError",
    "DatabaseStorageError",
    "DatabaseTableError",
    "DiscobaseError",
    "NotConnectedError",
)
