"""The exceptions discobase raises: one hierarchy under :class:`DiscobaseError`.

Every error carries the facts it is about as attributes (``table``, ``field``, ...) and a
message that says what to do about it. Catch :class:`DiscobaseError` to handle them all.

discobase 1.0's four error categories (:class:`DatabaseTableError`, :class:`DatabaseLookupError`,
:class:`DatabaseStorageError`, :class:`DatabaseCorruptionError`) are bases of the errors that
took their place, so an ``except`` clause written for either version catches the same failures.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = (
    "AfterHookError",
    "AmbiguousResultError",
    "ChangeFeedExpiredError",
    "ConflictError",
    "DatabaseCorruptionError",
    "DatabaseLookupError",
    "DatabaseStorageError",
    "DatabaseTableError",
    "DiscobaseError",
    "DiscordRejectedError",
    "DiscordUnavailableError",
    "EncryptionError",
    "GuildNotFoundError",
    "GuildUnavailableError",
    "InvalidKeyError",
    "InvalidTokenError",
    "MissingKeyError",
    "MissingPermissionsError",
    "NotATableError",
    "NotConnectedError",
    "RecordNotFoundError",
    "RecordTooLargeError",
    "SchemaError",
    "SchemaMismatchError",
    "StorageCorruptError",
    "TableExistsError",
    "TableNotFoundError",
    "TableNotReadyError",
    "TableShardsMissingError",
    "UniqueViolationError",
    "UnknownFieldError",
    "UnsupportedFormatError",
    "V1DataNotFoundError",
    "ValidationError",
    "WrongKeyError",
)


class DiscobaseError(Exception):
    """Base class of every error discobase raises on purpose."""


class DatabaseTableError(DiscobaseError):
    """Something is wrong with a table: its class, name or schema (1.0's category)."""


class DatabaseLookupError(DiscobaseError):
    """A lookup found nothing, or more than one record where one was expected (1.0's category)."""


class DatabaseStorageError(DiscobaseError):
    """A record could not be stored (1.0's category)."""


class DatabaseCorruptionError(DiscobaseError):
    """Stored data, or the stored schema, does not fit what reads it (1.0's category)."""


class _TableDetailError(DiscobaseError):
    """An error about the table ``table``; ``detail`` says what is wrong, and the subclass's
    ``template`` (a format string of both) what to do about it."""

    template: ClassVar[str]

    def __init__(self, table: str, detail: str) -> None:
        self.table = table
        self.detail = detail
        super().__init__(self.template.format(table=table, detail=detail))


class NotConnectedError(DiscobaseError):
    """The database is not open, or a table class is not attached to a database.

    Open the database first (``async with db.connect(token):``), and decorate table classes
    with ``@db.table``.
    """


class InvalidTokenError(NotConnectedError):
    """Discord refused the bot token: the database's own client could not log in."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"Discord refused the bot token ({detail}): copy it again from the Developer "
            "Portal (your application, Bot, Reset Token) into DISCORD_TOKEN"
        )


class TableNotReadyError(NotConnectedError, DatabaseTableError):
    """A table class is not attached to a database: it was never registered with ``@db.table``,
    or it was registered after ``open()`` and ``await db.build_tables()`` has not run since."""


class NotATableError(DatabaseTableError, TypeError):
    """``@db.table`` was given something that is not a :class:`discobase.Table` subclass."""


class GuildNotFoundError(DiscobaseError):
    """The bot is not in the guild the database was bound to."""

    def __init__(self, guild: int | str) -> None:
        self.guild = guild
        super().__init__(
            f"the bot is not in a guild {guild!r}: invite it to that server (a person creates the "
            "server; bots cannot since 2025) or pass the right id or name to Database()"
        )


class GuildUnavailableError(DiscobaseError):
    """Discord reports the guild unavailable (an outage on its side): nothing can be read or
    written there until it is available again."""

    def __init__(self, guild: int | str) -> None:
        self.guild = guild
        super().__init__(
            f"the guild {guild!r} is unavailable (a Discord outage); open the database again "
            "once Discord reports it available (the on_guild_available event)"
        )


class MissingPermissionsError(DiscobaseError):
    """The bot lacks permissions it needs in the guild (``guild`` None: a request Discord
    refused outside any guild the database is bound to)."""

    def __init__(self, guild: int | None, missing: list[str]) -> None:
        self.guild = guild
        self.missing = missing
        where = f"in guild {guild}" if guild is not None else "for this request"
        super().__init__(
            f"the bot lacks these permissions {where}: {', '.join(missing)}; "
            "grant them to the bot's role in the server settings"
        )


class TableNotFoundError(DatabaseTableError):
    """No table of that name exists in this database."""

    def __init__(self, table: str) -> None:
        self.table = table
        super().__init__(
            f"no table named {table!r}; create it first (db.create_table or @db.table)"
        )


class TableExistsError(DatabaseTableError):
    """A table of that name exists already."""

    def __init__(self, table: str) -> None:
        self.table = table
        super().__init__(f"a table named {table!r} exists already; pick another name or drop it")


class SchemaError(DatabaseTableError):
    """A table definition is not valid (name, field, type, key or index)."""


class UnknownFieldError(SchemaError, DatabaseLookupError):
    """A query or write names a field the table does not have."""

    def __init__(self, table: str, field: str, known: list[str]) -> None:
        self.table = table
        self.field = field
        self.known = known
        super().__init__(
            f"table {table!r} has no field {field!r}; its fields are: {', '.join(known) or '(none)'}"
        )


class SchemaMismatchError(_TableDetailError, SchemaError, DatabaseCorruptionError):
    """A table class does not match the schema stored in the guild, and its records do not fit."""

    template = (
        "the class for table {table!r} does not match the stored schema: {detail}; make the "
        "change backwards compatible (new fields need defaults) or migrate the data"
    )


class ValidationError(DatabaseStorageError):
    """A value does not fit the table's schema. ``errors`` holds pydantic's error list."""

    def __init__(
        self, table: str, message: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        self.table = table
        self.errors = errors or []
        super().__init__(f"invalid data for table {table!r}: {message}")


class UniqueViolationError(DatabaseStorageError):
    """A write would give two records the same value of a unique field."""

    def __init__(self, table: str, field: str, value: Any, key: Any) -> None:
        self.table = table
        self.field = field
        self.value = value
        self.key = key
        super().__init__(
            f"table {table!r}: {field}={value!r} is taken by the record with key {key!r}; "
            "unique fields cannot repeat"
        )


class ConflictError(DatabaseStorageError):
    """A conditional write (``if_revision=``) found the record at another revision: it changed
    (or was deleted, or created) since the revision was read. Nothing was written."""

    def __init__(self, table: str, key: Any, expected: int, actual: int) -> None:
        self.table = table
        self.key = key
        self.expected = expected
        self.actual = actual
        now = f"revision {actual}" if actual else "no record"
        if actual == expected:  # the write landed before that revision in log order
            what = (
                f"the write got a message id below revision {expected}, which it was based "
                "on (another process's ids ran ahead), so that revision follows and overwrites "
                "it; retry"
            )
        else:
            what = f"it changed since revision {expected} was read (now: {now}); read it again and retry"
        super().__init__(f"table {table!r}, record with key {key!r}: {what}")


class ChangeFeedExpiredError(DiscobaseError):
    """A watch's position is older than the changes the table still holds: a snapshot folded
    the log there, or the watcher fell more than the history's length behind."""

    def __init__(self, table: str, position: str, oldest: str) -> None:
        self.table = table
        self.position = position
        self.oldest = oldest
        super().__init__(
            f"table {table!r}: the change feed no longer holds the changes after {position} "
            f"(it holds those after {oldest}); read the table again (find) and watch from "
            "the table's current position"
        )


class AfterHookError(DiscobaseError):
    """An ``after_save`` or ``after_delete`` hook raised. The write it followed HAD landed (it
    is stored and acknowledged): do not retry the write. ``errors`` holds what each failing
    hook raised (one per record for ``insert_many``), the first one is also ``__cause__``."""

    def __init__(self, table: str, hook: str, errors: list[Exception]) -> None:
        self.table = table
        self.hook = hook
        self.errors = errors
        first = errors[0]
        super().__init__(
            f"table {table!r}: {hook} raised {type(first).__name__}: {first} "
            f"({len(errors)} of the records' hooks failed); the write had landed and stays"
            if len(errors) > 1
            else f"table {table!r}: {hook} raised {type(first).__name__}: {first}; the write "
            "had landed and stays"
        )


class RecordNotFoundError(DatabaseLookupError):
    """No record has that key (``get``, ``update`` or ``delete`` of a missing record), or none
    matches the conditions of ``find_unique(strict=True)`` (then ``key`` is None)."""

    def __init__(self, table: str, key: Any, *, query: str | None = None) -> None:
        self.table = table
        self.key = key
        self.query = query
        what = f"matching {query}" if query is not None else f"with key {key!r}"
        super().__init__(f"table {table!r} has no record {what}")


class AmbiguousResultError(DatabaseLookupError):
    """``find_unique`` matched more than one record."""

    def __init__(self, table: str, count: int) -> None:
        self.table = table
        self.count = count
        super().__init__(
            f"table {table!r}: {count} records match where one was expected; narrow the query"
        )


class RecordTooLargeError(DatabaseStorageError):
    """An encoded record is larger than one Discord attachment may be."""

    def __init__(self, table: str, size: int, limit: int) -> None:
        self.table = table
        self.size = size
        self.limit = limit
        super().__init__(
            f"a record of table {table!r} encodes to {size} bytes, over the limit of {limit} "
            "bytes (the guild's attachment size); store less in one record"
        )


class StorageCorruptError(DatabaseCorruptionError):
    """Stored data cannot be read as discobase data where it must be (e.g. the catalog)."""


class TableShardsMissingError(_TableDetailError, StorageCorruptError):
    """The catalog names a table whose shard channels or threads are gone (deleted by hand) or
    are not this guild's: its records cannot be read, and a new table of that name would hide
    them, so the table is not opened (nor used further by a process that had it open)."""

    template = (
        "table {table!r} cannot be opened: {detail}. Its other shards are kept; restore "
        "the table from a backup or export (docs/operations.md), or create it again "
        "explicitly to start it empty"
    )


class UnsupportedFormatError(StorageCorruptError):
    """Storage written in a format version this discobase does not know."""

    def __init__(self, version: str, where: str) -> None:
        self.version = version
        self.where = where
        super().__init__(
            f"{where} uses storage format {version!r}, which this discobase does not know; "
            "upgrade discobase"
        )


class EncryptionError(DatabaseCorruptionError):
    """Encrypted storage cannot be read with the keys this process was given, or a key is not
    a key. Nothing was read into memory and nothing was written."""


class InvalidKeyError(EncryptionError, ValueError):
    """An encryption key is not 32 bytes in base64 (``discobase keygen`` makes one)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"not an encryption key: {detail}; a key is 32 random bytes in base64, as "
            "`discobase keygen` prints"
        )


class MissingKeyError(EncryptionError):
    """The storage is encrypted and no key was given."""

    def __init__(self, key_id: str, where: str) -> None:
        self.key_id = key_id
        self.where = where
        super().__init__(
            f"{where} is encrypted (key id {key_id}) and no encryption key was given: pass "
            "Database(encryption_key=...) or set DISCOBASE_ENCRYPTION_KEY"
        )


class WrongKeyError(EncryptionError):
    """The storage is encrypted under a key none of the given keys is."""

    def __init__(self, key_id: str, known: list[str], where: str) -> None:
        self.key_id = key_id
        self.known = known
        self.where = where
        super().__init__(
            f"{where} is encrypted under key id {key_id}, and the keys given have ids "
            f"{', '.join(known)}: give that key too (while keys rotate, give the new key "
            "first and the old one after it)"
        )


class UnencryptedMessageError(EncryptionError):
    """The database requires encryption and storage holds a discobase message that is not
    encrypted (a process without the key wrote it, or it predates the key)."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(
            f"{where} is not encrypted, and this database requires encryption "
            "(encryption_required, DISCOBASE_ENCRYPTION_REQUIRED): seal it with `discobase "
            "rotate-key` (or db.rotate_key() on a database opened without encryption_required), "
            "and give every process the key"
        )


class DiscordUnavailableError(DiscobaseError):
    """Discord did not accept a request after every retry. Nothing was half-written."""

    def __init__(self, route: str, attempts: int, cause: BaseException | None = None) -> None:
        self.route = route
        self.attempts = attempts
        detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        super().__init__(
            f"Discord did not answer {route} after {attempts} attempts{detail}; "
            "the write was not applied, try again later"
        )


class DiscordRejectedError(DiscobaseError):
    """Discord refused a request for a reason retrying cannot fix (a 4xx other than 429),
    e.g. a guild or category at its channel limit. Nothing was applied."""

    def __init__(self, route: str, status: int, code: int, text: str) -> None:
        self.route = route
        self.status = status
        self.code = code
        self.text = text
        super().__init__(f"Discord refused {route} ({status}, code {code}): {text}")


class ActiveThreadLimitError(DiscordRejectedError):
    """The guild is at Discord's cap of active threads (code 160006): no thread can be created
    or unarchived until others are archived or deleted (discord-api-docs,
    resources/channel.mdx: "Once these are reached additional threads cannot be created or
    unarchived"). A write to a table whose shard thread is archived fails with it; nothing was
    applied. Tables being created fall back to channel shards instead (see
    docs/operations.md)."""

    def __init__(self, route: str, status: int, code: int, text: str) -> None:
        super().__init__(route, status, code, text)
        self.args = (
            f"Discord refused {route}: the guild is at its cap of active threads (code {code}: "
            f"{text}); archive or delete threads the guild no longer needs, then try again",
        )


class V1DataNotFoundError(DiscobaseError):
    """``migrate_v1`` found no discobase 1.0 data: the guild has no ``#_dbmetadata`` channel."""

    def __init__(self, guild: int) -> None:
        self.guild = guild
        super().__init__(
            f"guild {guild} has no #_dbmetadata channel, so no discobase 1.0 data: "
            "pass the guild 1.0 used as the source"
        )
