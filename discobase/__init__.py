"""discobase: a database that lives inside a Discord server.

Pydantic models are tables (``class User(discobase.Table)``), records are stored as an
append-only, batched log of messages in the guild's channels, and reads are served from
memory. See ``docs/library.md`` for the guide and ``docs/format.md`` for the storage format.
"""

from . import exceptions
from .codec import FORMAT_VERSION
from .crypto import EncryptionKey, KeyRing
from .cursor import Cursor
from .database import CheckReport, Connection, Database
from .engine.feed import Change, Position
from .engine.schema import TYPE_NAMES, FieldSchema, TableSchema
from .engine.table import Compaction
from .errors import (
    ActiveThreadLimitError,
    AfterHookError,
    AmbiguousResultError,
    ChangeFeedExpiredError,
    ConflictError,
    DatabaseCorruptionError,
    DatabaseLookupError,
    DatabaseStorageError,
    DatabaseTableError,
    DiscobaseError,
    DiscordRejectedError,
    DiscordUnavailableError,
    EncryptionError,
    GuildNotFoundError,
    GuildUnavailableError,
    InvalidKeyError,
    InvalidTokenError,
    MissingKeyError,
    MissingPermissionsError,
    NotATableError,
    NotConnectedError,
    RecordNotFoundError,
    RecordTooLargeError,
    SchemaError,
    SchemaMismatchError,
    StorageCorruptError,
    TableExistsError,
    TableNotFoundError,
    TableNotReadyError,
    TableShardsMissingError,
    UnencryptedMessageError,
    UniqueViolationError,
    UnknownFieldError,
    UnsupportedFormatError,
    V1DataNotFoundError,
    ValidationError,
    WrongKeyError,
)
from .migrate_v1 import MigrationReport, migrate_v1
from .model import Table, field
from .problems import Problem, ProblemKind
from .query import And, Compare, FieldRef, Not, Or, Order, Predicate, Query
from .sealed import KeyRotation
from .transport import RetryPolicy

__version__ = "2.0.0.dev0"
__license__ = "MIT"

__all__ = (
    "FORMAT_VERSION",
    "TYPE_NAMES",
    "ActiveThreadLimitError",
    "AfterHookError",
    "AmbiguousResultError",
    "And",
    "Change",
    "ChangeFeedExpiredError",
    "CheckReport",
    "Compaction",
    "Compare",
    "ConflictError",
    "Connection",
    "Cursor",
    "Database",
    "DatabaseCorruptionError",
    "DatabaseLookupError",
    "DatabaseStorageError",
    "DatabaseTableError",
    "DiscobaseError",
    "DiscordRejectedError",
    "DiscordUnavailableError",
    "EncryptionError",
    "EncryptionKey",
    "FieldRef",
    "FieldSchema",
    "GuildNotFoundError",
    "GuildUnavailableError",
    "InvalidKeyError",
    "InvalidTokenError",
    "KeyRing",
    "KeyRotation",
    "MigrationReport",
    "MissingKeyError",
    "MissingPermissionsError",
    "Not",
    "NotATableError",
    "NotConnectedError",
    "Or",
    "Order",
    "Position",
    "Predicate",
    "Problem",
    "ProblemKind",
    "Query",
    "RecordNotFoundError",
    "RecordTooLargeError",
    "RetryPolicy",
    "SchemaError",
    "SchemaMismatchError",
    "StorageCorruptError",
    "Table",
    "TableExistsError",
    "TableNotFoundError",
    "TableNotReadyError",
    "TableSchema",
    "TableShardsMissingError",
    "UnencryptedMessageError",
    "UniqueViolationError",
    "UnknownFieldError",
    "UnsupportedFormatError",
    "V1DataNotFoundError",
    "ValidationError",
    "WrongKeyError",
    "exceptions",
    "field",
    "migrate_v1",
)
