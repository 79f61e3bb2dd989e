"""The :class:`Table` base: a pydantic model is a table, its instances are records.

Per-table options live in a nested ``class Settings`` (``name``, ``primary_key``, ``indexes``,
``unique``, ``shards``). Class attributes named like fields (``User.age``) are field
references that build queries. Every verb goes through the table's engine, which the
:class:`~discobase.Database` attaches when the class is registered and the database opens.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import enum
import inspect
import itertools
import math
import operator
import types
import typing
import uuid
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from functools import cache, partial, wraps
from typing import Any, ClassVar, Concatenate, Generic, ParamSpec, Self, TypeVar

import pydantic
import pydantic_core
from pydantic import BaseModel, ConfigDict, PrivateAttr, TypeAdapter
from pydantic_core import SchemaSerializer, SchemaValidator, core_schema

from .codec import pause_collector
from .cursor import Cursor
from .engine.aggregate import Aggregation, aggregate
from .engine.cursor import KeyWalk, index_keys
from .engine.feed import LAST, Position, Watch
from .engine.schema import describe_annotation
from .engine.table import TableEngine, Write
from .errors import (
    AfterHookError,
    AmbiguousResultError,
    NotConnectedError,
    RecordNotFoundError,
    TableNotReadyError,
    TableShardsMissingError,
    UnknownFieldError,
    ValidationError,
)
from .query import And, Compare, FieldRef, Order, Predicate, Query

__all__ = ("Table", "field")

#: The key of a record's revision among its pydantic private values.
_REVISION = "_discobase_revision"

#: Values of these types never change in place, so a shallow copy of a record is a safe copy.
_IMMUTABLE = (
    str, int, float, bool, type(None), datetime.datetime, datetime.date, datetime.time,
    datetime.timedelta, uuid.UUID, decimal.Decimal, enum.Enum,
)  # fmt: skip


#: The write hooks a table class may define: methods taking only the record, sync or async.
HOOKS = ("before_save", "after_save", "before_delete", "after_delete")

P = ParamSpec("P")
R = TypeVar("R")
TableT = TypeVar("TableT", bound="Table")


def _write_verb(
    verb: Callable[Concatenate[TableT, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[TableT, P], Awaitable[R]]:
    """A write that, on a database opened with ``compat="1.0"``, returns a running task (1.0's
    writes ran whether or not they were awaited)."""

    @wraps(verb)
    def call(self: TableT, /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
        work = verb(self, *args, **kwargs)
        database = type(self).__discobase_database__
        if database is not None and database.compat == "1.0":
            return database._v1_write(work)  # type: ignore[no-any-return]
        return work

    return call


def field(name: str) -> FieldRef:
    """A field reference by name, for tables without a Python class: ``field("age") > 3``."""
    return FieldRef(name)


class _FieldAttribute:
    """``User.age`` on a table class: a :class:`FieldRef` that builds queries.

    Records keep their field values in their own ``__dict__``, which Python reads before a
    non-data descriptor like this one, so ``user.age`` stays the record's value.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, record: object, owner: type[BaseModel]) -> FieldRef:
        # While pydantic builds a subclass, an inherited field must look like no attribute
        # (else pydantic would take the reference for the field's default).
        if record is not None or self.name not in owner.__dict__.get("__pydantic_fields__", {}):
            raise AttributeError(self.name)
        return FieldRef(self.name)


class Table(BaseModel):
    """Base class of tables. Subclass it, declare fields, and register it with ``@db.table``.

    ``Settings`` (a nested class, all optional): ``name`` (table name, default the class
    name lowercased), ``primary_key`` (a str, int or UUID field; default: a generated key),
    ``indexes`` (fields with an index), ``unique`` (fields whose values cannot repeat, indexed
    too), ``shards`` (log channels, 1 to 16: more channels, more writes per second),
    ``claim_unique`` (claim unique values in the log so that they hold across processes, at
    the cost of a wait of about ``Compaction.margin`` per new value; see :mod:`.engine.claims`;
    recorded in the catalog, and a class that leaves it out follows the recorded value),
    ``ttl`` (a ``timedelta``: a record expires that long after its last write).
    """

    model_config = ConfigDict(
        validate_assignment=True, extra="forbid", ser_json_inf_nan="constants"
    )

    __discobase_engine__: ClassVar[TableEngine | None] = None
    __discobase_name__: ClassVar[str] = ""
    #: The Database the class was registered with (``@db.table``); None if never.
    __discobase_database__: ClassVar[Any] = None
    #: The key the record is stored under (None until a table without a primary key saves it).
    _discobase_key: Any = PrivateAttr(default=None)
    #: The :data:`HOOKS` this class (or a base between it and Table) overrides.
    __discobase_hooks__: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.__discobase_hooks__ = frozenset(
            name for name in HOOKS if getattr(cls, name) is not getattr(Table, name)
        )
        for name in cls.__pydantic_fields__:
            if not hasattr(cls, name):  # a field may shadow a method: that stays the method
                setattr(cls, name, _FieldAttribute(name))
        privates = cls.__private_attributes__
        if cls.model_post_init.__qualname__ == "init_private_attributes" and all(
            map(_plain_private, privates.values())
        ):
            cls.model_post_init = _private_defaults(  # type: ignore[method-assign,assignment]
                {name: attr.default for name, attr in privates.items()}
            )

    def __init__(self, /, **data: Any) -> None:
        # What BaseModel.__init__ does, without its frame: its validator fills this record.
        try:
            made = self.__pydantic_validator__.validate_python(data, self_instance=self)
        except pydantic.ValidationError as error:
            raise _validation_error(type(self), error) from None
        if made is not self:
            warnings.warn(
                "A custom validator is returning a value other than `self`.\n"
                "Returning anything other than `self` from a top level model validator isn't "
                "supported when validating via `__init__`.",
                stacklevel=2,
            )

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """Validate ``obj`` as a record; raises :class:`discobase.ValidationError`."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except pydantic.ValidationError as error:
            raise _validation_error(cls, error) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except pydantic.ValidationError as error:
            raise _validation_error(type(self), error) from None

    # -- plumbing ---------------------------------------------------------------------------

    @classmethod
    def _engine(cls) -> TableEngine:
        engine = cls.__discobase_engine__
        if engine is None:
            database = cls.__discobase_database__
            if database is not None and database.is_open:
                missing = database.unusable_tables.get(cls.__discobase_name__)
                if missing is not None:  # a shard deleted since the table was attached
                    raise TableShardsMissingError(cls.__discobase_name__, missing)
            if database is None or database.is_open:
                raise TableNotReadyError(
                    f"{cls.__name__} is not attached to a table: decorate it with @db.table "
                    "(after the database opened, also await db.build_tables()); the class of a "
                    "dropped table stays detached"
                )
            raise NotConnectedError(
                f"{cls.__name__} is not attached to an open database: decorate it with "
                "@db.table and open the database first (async with db.connect(token))"
            )
        return engine

    @property
    def pk(self) -> Any:
        """The record's key: its primary key field, or the key generated on its first save."""
        engine = type(self).__discobase_engine__
        primary_key = (
            engine.schema.primary_key
            if engine is not None
            else settings_of(type(self)).get("primary_key")
        )
        if primary_key is not None:
            return _json_key(type(self), primary_key, getattr(self, primary_key))
        return _private(self)["_discobase_key"]

    @property
    def revision(self) -> int:
        """The stored record's revision when this object was read or last written: the id of
        the log message holding that write (0 for a record never stored). Every write of a
        key gives it a new revision; pass it back as ``if_revision=`` to write only if
        nobody changed the record since (:class:`ConflictError` otherwise)."""
        private = self.__pydantic_private__
        return private.get(_REVISION, 0) if private else 0

    def _set_revision(self, revision: int) -> None:
        # Kept beside the private attributes, undeclared: a declared one costs every model
        # built (every record written or read) a default to set.
        assert self.__pydantic_private__ is not None
        self.__pydantic_private__[_REVISION] = revision

    @classmethod
    def _found(cls, engine: TableEngine, row: tuple[Any, ...]) -> Self:
        """A caller's record made from a stored row, with the key's current revision."""
        revision = engine.state.versions.get(row[0], 0)
        return _rows(cls).record(row, revision)  # type: ignore[no-any-return]

    def _landed(self, revision: int | None) -> None:
        if revision is not None:
            self._set_revision(revision)

    def _write(self, if_revision: int | None = None) -> Write:
        cls = type(self)
        try:
            data = self.model_dump(mode="json")
        except (pydantic_core.PydanticSerializationError, ValueError, RecursionError) as error:
            raise ValidationError(
                cls.__discobase_name__ or cls.__name__.lower(),
                f"the record cannot be stored as JSON: {error}",
            ) from None
        for name, value in data.items():
            if isinstance(value, float) and math.isnan(value):
                raise ValidationError(
                    cls.__discobase_name__ or cls.__name__.lower(),
                    f"{name} is NaN, which equals nothing (not even itself) and does not sort; "
                    "store None for a missing number",
                    [{"loc": (name,), "msg": "NaN is not stored", "type": "nan", "input": value}],
                )
        engine = cls._engine()
        if engine.schema.primary_key is None:
            private = _private(self)
            if private["_discobase_key"] is None:
                private["_discobase_key"] = engine.new_key()
            key = private["_discobase_key"]
        else:
            key = self.pk
        # Validated from what is sent (a record made with model_construct may hold anything),
        # and a private copy, as a reload makes it.
        return Write(key, cls._decode(key, data), data, if_revision)

    @classmethod
    def _writes(
        cls, records: list[Self], values: list[dict[str, Any]] | None = None
    ) -> list[Write]:
        """:meth:`_write` of every record (each with its key), in bulk: one pydantic call
        dumps them all and one validates what is sent. When one of them does not dump,
        validate or store, each is written alone, which raises the error that says why.
        ``values``: each record's field values to write instead of its own (as they were
        when its save was called)."""
        rows = _rows(cls)
        if values is not None and rows.values_serializer is None:
            records, values = list(map(_copy_as, records, values)), None
        serializer = rows.list_serializer if values is None else rows.values_serializer
        if (
            serializer is None
            or rows.list_validator is None
            or len(records) < 2
            or list(map(type, records)).count(cls) != len(records)
        ):
            return [record._write() for record in _as_given(records, values)]
        primary_key = cls._engine().schema.primary_key
        if primary_key is None:
            keys = list(map(_generated_key, map(_privates, records)))
        elif values is None:
            keys = [record.pk for record in records]
        else:
            keys = [_json_key(cls, primary_key, fields[primary_key]) for fields in values]
        try:
            datas = serializer.to_python(records if values is None else values, mode="json")
            made = _validated_rows(rows, keys, datas)
        except (pydantic.ValidationError, pydantic_core.PydanticSerializationError, ValueError):
            return [record._write() for record in _as_given(records, values)]
        if None in keys or any(
            _has_nan(list(map(dict.get, datas, itertools.repeat(name))))
            for name in rows.maybe_float
        ):
            return [record._write() for record in _as_given(records, values)]
        return list(map(Write, keys, made, datas))

    def _queued_key(self, engine: TableEngine) -> Any:
        """The key a save queues the record under: None for a record still to get a
        generated key (its save generates it, on the shard it joins)."""
        if engine.schema.primary_key is None:
            return _private(self)["_discobase_key"]
        return self.pk

    @classmethod
    def _writes_each(
        cls, records: list[Table], values: list[dict[str, Any]], keys: list[Any]
    ) -> list[Write | Exception]:
        """:meth:`_write` of each record with its field ``values`` as its save was called,
        or the error that stops it: in bulk (as :meth:`_writes`) when every record writes,
        else one by one. ``keys``: the records' keys, generated ones included (stored in
        their records here; None: the record's)."""
        engine = cls.__discobase_engine__  # None once detached: each write then says so
        if engine is not None and engine.schema.primary_key is None:
            for private, key in zip(map(_private_of, records), keys, strict=True):
                if key is not None and private["_discobase_key"] is None:
                    private["_discobase_key"] = key  # (another write may have given one)
        try:
            return [*cls._writes(records, values)]
        except Exception:
            pass  # one of them does not write: each alone says which
        made: list[Write | Exception] = []
        for record in _as_given(records, values):
            try:
                made.append(record._write())
            except Exception as error:
                made.append(error)
        return made

    @classmethod
    def _decode(cls, key: Any, data: dict[str, Any]) -> tuple[Any, ...]:
        """The row (the key, then the field values) of a stored record; validates it."""
        rows = _rows(cls)
        validator, validator_take = rows.validator, rows.take_validated
        if validator is not None:
            try:
                values = validator.validate_python(data)
            except pydantic.ValidationError:
                pass  # validating the whole model below raises the error a user sees
            else:
                return (key, *validator_take(values))
        return (key, *_rows(cls).take(super().model_validate(data).__dict__))

    @classmethod
    def _decode_many(
        cls, keys: list[Any], datas: list[dict[str, Any]]
    ) -> list[tuple[Any, ...]] | None:
        """The rows of many stored records, validated in one call; None if one of them does
        not validate (each is then decoded alone, which says which and why)."""
        rows = _rows(cls)
        if rows.list_validator is None:
            return None
        try:
            return _validated_rows(rows, keys, datas)
        except pydantic.ValidationError:
            return None

    @classmethod
    def _encode(cls, row: tuple[Any, ...]) -> dict[str, Any]:
        """The JSON form of a row."""
        return cls._from_row(row).model_dump(mode="json")

    @classmethod
    def _from_row(cls, row: tuple[Any, ...]) -> Self:
        """A new record holding a row's values (copied when they could change in place)."""
        return _rows(cls).record(row, 0)  # type: ignore[no-any-return]

    # -- hooks (docs/library.md, "Hooks") ----------------------------------------------------

    def before_save(self) -> Awaitable[None] | None:
        """Override to run before ``save``/``insert``/``update``/``insert_many`` queue the
        record's write (sync or async); what it sets is saved; raising aborts the write."""
        return None

    def after_save(self) -> Awaitable[None] | None:
        """Override to run once the record's write landed; what it raises comes back as
        :class:`AfterHookError` (the write stays)."""
        return None

    def before_delete(self) -> Awaitable[None] | None:
        """Override to run before ``delete`` queues its write; raising aborts the delete."""
        return None

    def after_delete(self) -> Awaitable[None] | None:
        """Override to run once the delete landed; what it raises comes back as
        :class:`AfterHookError` (the record stays deleted)."""
        return None

    async def _hook(self, name: str) -> None:
        result = getattr(self, name)()
        if inspect.isawaitable(result):
            await result

    @classmethod
    async def _after(cls, records: Sequence[Table], name: str) -> None:
        """Run an after_ hook of every record, all of them even when some raise."""
        errors: list[Exception] = []
        for record in records:
            try:
                await record._hook(name)
            except Exception as error:
                errors.append(error)
        if errors:
            raise AfterHookError(cls._engine().name, name, errors) from errors[0]

    # -- writes -----------------------------------------------------------------------------

    @_write_verb
    async def save(self, *, if_revision: int | None = None) -> Self:
        """Insert the record, or replace the stored record with the same key.

        Returns once Discord has it. With ``if_revision`` (e.g. ``record.revision``), only if
        the stored record is still at that revision (0: only if there is none), else
        :class:`ConflictError`. Raises :class:`ValidationError`,
        :class:`UniqueViolationError`, :class:`RecordTooLargeError`,
        :class:`DiscordUnavailableError` (nothing was applied) or :class:`NotConnectedError`.
        """
        cls = type(self)
        engine, hooks = cls._engine(), cls.__discobase_hooks__
        if "before_save" in hooks:
            await self._hook("before_save")
        schema = engine.schema
        if if_revision is None and not schema.claim_unique:
            key = _private(self)["_discobase_key"] if schema.primary_key is None else self.pk
            revision = await engine.saves.put(self, _as_called(self), key, cls._writes_each)
        else:
            [revision] = await engine.write([self._write(if_revision)], claim=_claims(cls))
        if revision is not None:
            _private(self)[_REVISION] = revision
        if "after_save" in hooks:
            await self._after([self], "after_save")
        return self

    def commit(self) -> Awaitable[Self]:
        """discobase 1.0's name for :meth:`save` (which inserts or replaces)."""
        return self.save()

    @_write_verb
    async def insert(self) -> Self:
        """Like :meth:`save`, but raise :class:`UniqueViolationError` if the key exists."""
        cls = type(self)
        engine, hooks = cls._engine(), cls.__discobase_hooks__
        if "before_save" in hooks:
            await self._hook("before_save")
        if engine.schema.claim_unique:
            [revision] = await engine.write([self._write()], insert=True, claim=True)
        else:
            revision = await engine.saves.put(
                self, _as_called(self), self._queued_key(engine), cls._writes_each, insert=True
            )
        self._landed(revision)
        if "after_save" in hooks:
            await self._after([self], "after_save")
        return self

    @_write_verb
    async def update(self, /, *, if_revision: int | None = None, **changes: Any) -> Self:
        """Change some fields and save; the record must exist (:class:`RecordNotFoundError`).
        ``if_revision`` as for :meth:`save`. The hooks run on the updated copy; what
        ``before_save`` sets is saved and copied back to this record with the changes."""
        cls = type(self)
        hooks = cls.__discobase_hooks__
        for name in changes:
            if name not in cls.model_fields:
                raise UnknownFieldError(cls._engine().name, name, list(cls.model_fields))
        updated = cls.model_validate({**self.model_dump(), **changes})
        updated._discobase_key = self._discobase_key
        if "before_save" in hooks:
            updated._landed(self.revision)
            await updated._hook("before_save")
        if updated.pk != self.pk:
            raise ValidationError(
                cls._engine().name, "update() cannot change the primary key; save a new record"
            )
        [revision] = await cls._engine().write(
            [updated._write(if_revision)], must_exist=True, claim=_claims(cls)
        )
        for name in cls.model_fields if "before_save" in hooks else changes:
            object.__setattr__(self, name, getattr(updated, name))
        self._landed(revision)
        if "after_save" in hooks:
            updated._landed(revision)
            await cls._after([updated], "after_save")
        return self

    @_write_verb
    async def delete(self, *, if_revision: int | None = None) -> None:
        """Delete the record; raise :class:`RecordNotFoundError` if it is not stored.
        ``if_revision`` as for :meth:`save`."""
        engine, hooks = self._engine(), type(self).__discobase_hooks__
        if self.pk is None:
            raise RecordNotFoundError(engine.name, None)
        if "before_delete" in hooks:
            await self._hook("before_delete")
        await engine.write([Write(self.pk, if_revision=if_revision)], must_exist=True)
        self._set_revision(0)
        if "after_delete" in hooks:
            await self._after([self], "after_delete")

    @classmethod
    async def insert_many(cls, records: Iterable[Self | dict[str, Any]]) -> list[Self]:
        """Insert many records, atomically: all land, or none.

        Generated keys are spread evenly over the table's shards (one message each, or a few
        for very large inserts), so later writes to these records use every channel.
        Raises :class:`UniqueViolationError` if a key exists already or repeats.
        ``before_save`` runs for every record, in order, before any is queued (one raising
        stores none); ``after_save`` for every record once all landed.
        """
        engine, hooks = cls._engine(), cls.__discobase_hooks__
        instances = [r if isinstance(r, cls) else cls.model_validate(r) for r in records]
        if "before_save" in hooks:
            for instance in instances:
                await instance._hook("before_save")
        privates = list(map(_privates, instances))
        if engine.schema.primary_key is None:
            unkeyed = [p for p in privates if p["_discobase_key"] is None]
            for private, key in zip(unkeyed, engine.new_keys(len(unkeyed)), strict=True):
                private["_discobase_key"] = key
        with pause_collector(len(instances)):
            writes = cls._writes(instances)
        revisions = await engine.write(writes, insert=True, claim=_claims(cls))
        for private, revision in zip(privates, revisions, strict=True):
            if revision is not None:
                private[_REVISION] = revision
        if "after_save" in hooks:
            await cls._after(instances, "after_save")
        return instances

    # -- reads (from memory: no REST call) ---------------------------------------------------

    @classmethod
    def _query(
        cls,
        expressions: Sequence[Predicate],
        equals: dict[str, Any],
        order_by: Any = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Query:
        query = Query.build(expressions, equals, order_by=order_by, limit=limit, offset=offset)
        known = cls.__pydantic_fields__
        name = cls._engine().name
        for field_name in [*query.where.fields(), *(o.field for o in query.order_by)]:
            if field_name not in known:
                raise UnknownFieldError(name, field_name, list(known))
        query.where = query.where.map_values(lambda f, op, v: _coerce(cls, f, op, v))
        return query

    @classmethod
    @typing.overload
    def find(
        cls,
        *expressions: Predicate,
        order_by: str | FieldRef | Order | Sequence[str | FieldRef | Order] | None = None,
        limit: int | None = None,
        offset: int = 0,
        fields: None = None,
        **equals: Any,
    ) -> Cursor[Self]: ...

    @classmethod
    @typing.overload
    def find(
        cls,
        *expressions: Predicate,
        order_by: str | FieldRef | Order | Sequence[str | FieldRef | Order] | None = None,
        limit: int | None = None,
        offset: int = 0,
        fields: str | FieldRef | Sequence[str | FieldRef],
        **equals: Any,
    ) -> Cursor[dict[str, Any]]: ...

    @classmethod
    def find(
        cls,
        *expressions: Predicate,
        order_by: str | FieldRef | Order | Sequence[str | FieldRef | Order] | None = None,
        limit: int | None = None,
        offset: int = 0,
        fields: str | FieldRef | Sequence[str | FieldRef] | None = None,
        **equals: Any,
    ) -> Cursor[Self] | Cursor[dict[str, Any]]:
        """Records matching every condition (AND), e.g. ``find(User.age >= 3, name="a")``.

        ``await`` it for a list; ``async for`` over it reads the records a batch at a time
        (``.batch_size(n)``) without copying the table, each as it is when reached
        (docs/library.md, "Cursors"). Values are converted to the field's type (``age="3"`` finds ``age == 3``).
        With ``fields`` (names or field references), each match is a dict of only those fields
        (values copied; no record is built). Raises :class:`UnknownFieldError` and
        :class:`ValidationError` for bad fields and values (when awaited or first iterated).
        """
        if (
            len(equals) == 1
            and not expressions
            and order_by is None
            and limit is None
            and fields is None
            and offset == 0
            and type(offset) is int
        ):
            # The usual lookup, find(field=value): its own way, made once per field.
            [(name, value)] = equals.items()
            return _EqualCursor((cls, name, value))
        arguments = (expressions, equals, order_by, limit, offset, fields)
        return Cursor(cls._find_list, cls._reader, arguments, cls.__discobase_name__)

    @classmethod
    def _find_list(
        cls,
        expressions: Sequence[Predicate],
        equals: dict[str, Any],
        order_by: Any,
        limit: int | None,
        offset: int,
        fields: str | FieldRef | Sequence[str | FieldRef] | None,
    ) -> list[Any]:
        """Every match of ``find`` at once."""
        if order_by is None and fields is None:
            found = cls._found_equal(expressions, equals, limit, offset)
            if found is not None:
                return found
        query = cls._query(expressions, equals, order_by, limit, offset)
        engine = cls._engine()
        if fields is not None:
            project = cls._projection(fields)
            engine.expire()
            return [project(record, 0) for record in engine.state.select(query)]
        engine.expire()
        return [cls._found(engine, row) for row in engine.state.select(query)]

    @classmethod
    def _projection(
        cls, fields: str | FieldRef | Sequence[str | FieldRef]
    ) -> Callable[[tuple[Any, ...], int], dict[str, Any]]:
        """What ``fields=`` makes of a row: a dict of those fields, values copied."""
        names = _field_names(cls, "fields", fields)
        engine = cls._engine()
        if not names:
            raise ValidationError(engine.name, "fields names no field; give at least one")
        at = engine.state.positions  # records are rows: a field is read by its position
        get = [(name, operator.itemgetter(at[name])) for name in names]
        return lambda record, _: {name: _copied(value(record)) for name, value in get}

    @classmethod
    def _reader(cls, *arguments: Any) -> _Reader[Any]:
        """A cursor's batches over the matches of ``find`` (its arguments as ``_find_list``
        takes them)."""
        return _Reader(cls, _Find(*arguments))

    @classmethod
    def _found_equal(
        cls,
        expressions: Sequence[Predicate],
        equals: dict[str, Any],
        limit: int | None,
        offset: int,
    ) -> list[Self] | None:
        """``find``'s short way for one equality on an indexed field (the usual lookup),
        with what the general way would return; None when the query is not that."""
        if equals:
            if expressions or len(equals) != 1:
                return None
            [(name, value)] = equals.items()
        elif len(expressions) == 1 and type(expressions[0]) is Compare:
            name, op, value = expressions[0].field, expressions[0].op, expressions[0].value
            if op != "==":
                return None
        else:
            return None
        engine = cls.__discobase_engine__
        if (
            engine is None
            or value is None
            or name not in cls.__pydantic_fields__
            or name not in engine.state.indexes
            or not (limit is None or (type(limit) is int and limit >= 0))
            or type(offset) is not int
            or offset < 0
        ):
            return None
        rows = _rows(cls)
        try:
            value = rows.equal_value(name)(value)
        except Exception:  # _coerce raises it as the general way does
            value = _coerce(cls, name, "==", value)
        engine.expire()
        state = engine.state
        if limit is None and not offset:  # the usual lookup
            return state.equal_reader(name, rows.record)(value)
        found = state.equal_rows(name, value)
        found = found[offset:] if limit is None else found[offset : offset + limit]
        record, versions = rows.record, state.versions
        return [record(row, versions.get(row[0], 0)) for row in found]

    @classmethod
    async def find_one(cls, *expressions: Predicate, **equals: Any) -> Self | None:
        """The first matching record, or None."""
        found = await cls.find(*expressions, limit=1, **equals)
        return found[0] if found else None

    @classmethod
    async def find_unique(
        cls, *expressions: Predicate, strict: bool | None = None, **equals: Any
    ) -> Self | None:
        """The one matching record, None if none; :class:`AmbiguousResultError` if several.

        ``strict=True`` raises :class:`RecordNotFoundError` instead of returning None. On a
        database opened with ``compat="1.0"``, ``strict`` defaults to True and
        ``strict=False`` returns the first of several matches, as in 1.0.
        """
        database = cls.__discobase_database__
        v1 = database is not None and database.compat == "1.0"
        strict = v1 if strict is None else strict
        found = await cls.find(*expressions, limit=2, **equals)
        if len(found) > 1 and (strict or not v1):
            raise AmbiguousResultError(cls._engine().name, await cls.count(*expressions, **equals))
        if not found and strict:
            query = Query.build(expressions, equals)
            raise RecordNotFoundError(cls._engine().name, None, query=repr(query.where))
        return found[0] if found else None

    @classmethod
    async def get(cls, key: Any) -> Self:
        """The record with this key; :class:`RecordNotFoundError` if there is none."""
        engine = cls._engine()
        engine.expire()
        primary_key = engine.schema.primary_key
        lookup = _json_key(cls, primary_key, key) if primary_key is not None else key
        try:
            row = engine.state.records[lookup]
        except (KeyError, TypeError):
            raise RecordNotFoundError(engine.name, key) from None
        return cls._found(engine, row)

    @classmethod
    def watch(
        cls, *conditions: Predicate, after: Position | str | int | None = None
    ) -> Watch[Self]:
        """The table's changes in log order: ``async for change in User.watch(User.age > 3)``.

        Yields a :class:`~discobase.Change` (``op`` "insert", "update" or "delete", ``key``,
        ``record``, ``previous``, ``position``) for every write of a record that matches the
        conditions before or after it, from this process and others, once every shard is
        known complete up to it (about ``Compaction.margin`` seconds after the write). Without
        ``after`` it starts at the point known complete now (so it may first yield writes of
        the last seconds); ``after=change.position`` (or its ``str()``) resumes right after
        that change, in this process or a new one. Raises :class:`ChangeFeedExpiredError`
        when the table no longer holds the changes after ``after`` (compacted, or the watch
        fell too far behind), :class:`ValidationError` for a malformed ``after``.
        """
        engine = cls._engine()
        check = cls._query(conditions, {}).where.compile()
        feed = engine.feed
        if after is None:
            start = max(Position(feed.settled(), LAST), feed.floor)
        else:
            try:
                start = Position.parse(after)
            except ValueError as error:
                raise ValidationError(engine.name, str(error)) from None
        watch = Watch(feed, start, cls._revised, check, lambda: cls._engine().feed)
        watch.check()
        return watch

    @classmethod
    def _revised(cls, stored: tuple[Any, ...], revision: int) -> Self:
        return _rows(cls).record(stored, revision)  # type: ignore[no-any-return]

    @classmethod
    async def aggregate(
        cls,
        *expressions: Predicate,
        group_by: str | FieldRef | Sequence[str | FieldRef] | None = None,
        count: bool = True,
        sum: str | FieldRef | Sequence[str | FieldRef] = (),
        avg: str | FieldRef | Sequence[str | FieldRef] = (),
        min: str | FieldRef | Sequence[str | FieldRef] = (),
        max: str | FieldRef | Sequence[str | FieldRef] = (),
        **equals: Any,
    ) -> Any:
        """Statistics of the matching records, from memory (docs/library.md, "Aggregates").

        Without ``group_by``: one dict ``{"group": {}, "count": n, "sum": {field: total},
        "avg": {...}, "min": {...}, "max": {...}}`` (only the statistics asked for). With
        ``group_by`` (fields): a list of such dicts, one per distinct combination of their
        values (``"group": {field: value}``), in value order. ``None`` values are left out of
        sums, averages, minima and maxima. Raises :class:`UnknownFieldError` for an unknown
        field and :class:`ValidationError` for ``sum``/``avg`` of a field that is not a
        number (int, float, decimal) or ``group_by``/``min``/``max`` of a json field.
        """
        engine = cls._engine()
        query = cls._query(expressions, equals)
        spec = Aggregation(
            group_by=_field_names(cls, "group_by", group_by),
            count=count,
            sum=_field_names(cls, "sum", sum),
            avg=_field_names(cls, "avg", avg),
            min=_field_names(cls, "min", min),
            max=_field_names(cls, "max", max),
        )
        if not isinstance(count, bool):
            raise ValidationError(engine.name, f"count must be True or False, not {count!r}")
        types = {f.name: f.type for f in engine.schema.fields}
        for what, names, allowed in (
            ("sum", spec.sum, _NUMBERS),
            ("avg", spec.avg, _NUMBERS),
            ("group_by", spec.group_by, None),
            ("min", spec.min, None),
            ("max", spec.max, None),
        ):
            for name in names:
                kind = types[name]
                if (allowed is not None and kind not in allowed) or kind == "json":
                    wanted = "a number field (int, float, decimal)" if allowed else "a field"
                    raise ValidationError(
                        engine.name, f"{what} needs {wanted} that is not json; {name} is {kind}"
                    )
        engine.expire()
        results = aggregate(engine.state, query, spec)
        return results if spec.group_by else results[0]

    @classmethod
    async def count(cls, *expressions: Predicate, **equals: Any) -> int:
        """How many records match (all of them with no conditions)."""
        query = cls._query(expressions, equals)
        engine = cls._engine()
        engine.expire()
        return engine.state.count(query.where)

    @classmethod
    def all(
        cls,
        *expressions: Predicate,
        order_by: str | FieldRef | Order | Sequence[str | FieldRef | Order] | None = None,
        **equals: Any,
    ) -> Cursor[Self]:
        """The matching records (all of them by default) as a cursor: ``async for record in
        User.all()`` reads them a batch at a time (``.batch_size(n)``) without copying the
        table, each as it is when reached (with that revision), so stopping early is cheap; ``await`` it for a
        list. See ``find`` and docs/library.md, "Cursors"."""
        return cls.find(*expressions, order_by=order_by, **equals)


class _Find(typing.NamedTuple):
    """The arguments of a ``find``."""

    expressions: Sequence[Predicate]
    equals: dict[str, Any]
    order_by: Any
    limit: int | None
    offset: int
    fields: str | FieldRef | Sequence[str | FieldRef] | None


class _Reader(Generic[R]):
    """A cursor's batches over a table: the walk's keys a batch at a time, then each record
    as it is when the reader reaches it (None when it is gone or stopped matching), after
    ``offset`` such records and up to ``limit`` of them. It reads the memory of the table's
    engine of the moment: after the database was closed and opened again, the new one's
    (the walk takes up after the last key it handed out); when the table is closed or
    dropped, it raises as ``find`` would."""

    def __init__(self, table: type[Table], find: _Find) -> None:
        self.table = table
        self.find = find
        self.walk: KeyWalk | None = None
        self.skip = 0
        self.left: int | None = None
        self._bind(table._engine())

    def _bind(self, engine: TableEngine) -> None:
        find, table = self.find, self.table
        query = table._query(find.expressions, find.equals, find.order_by, find.limit, find.offset)
        self.engine = engine
        self.make: Callable[[tuple[Any, ...], int], Any] = (
            table._revised if find.fields is None else table._projection(find.fields)
        )
        engine.expire()
        state = engine.state
        where = query.where
        self.check = (
            None if isinstance(where, And) and not where.parts else where.compile(state.positions)
        )
        if self.walk is not None:
            self.walk = self.walk.moved(state, self.check)
        elif query.order_by:  # sorted once: a reference per match, in the order asked
            ordered = [row[0] for row in state.select(query)]
            self.walk = KeyWalk(state, self.check, ordered)
        else:
            self.walk = KeyWalk(state, self.check, index_keys(state, where))
            self.skip, self.left = query.offset, query.limit

    def _current(self) -> TableEngine:
        engine = self.table._engine()  # NotConnectedError: closed, or dropped
        if engine is not self.engine:
            self._bind(engine)
        engine.expire()
        return engine

    def next(self, count: int) -> list[Any]:
        if self.left == 0:
            return []
        self._current()
        assert self.walk is not None
        return self.walk.next(count)

    def reach(self, key: Any) -> R | None:
        if self.left == 0:
            return None
        state = self._current().state
        row = state.records.get(key)
        if row is None or (self.check is not None and not self.check(row)):
            return None
        if self.skip:
            self.skip -= 1
            return None
        if self.left is not None:
            self.left -= 1
        return typing.cast(R, self.make(row, state.versions.get(key, 0)))


def _find_equal(cls: type[Table], name: str, value: Any) -> list[Any]:
    """Every match of ``cls.find(name=value)`` at once. On an indexed field, its reader is
    made once (per class and field) and kept with the table's memory: a value of the field's
    own type (str or int) goes to it straight, any other is converted first. A name that is
    not a field keeps nothing (the general way raises)."""
    engine = cls.__discobase_engine__
    if engine is not None:
        made = engine.state.lookups.get(name)
        if made is None or made[0] is not cls:
            made = _equal_finder(cls, engine, name)
            if name in cls.__pydantic_fields__:
                engine.state.lookups[name] = made
        if type(value) is made[1] and engine.expiry is None:
            return made[2](value)
        found = made[3](value)
        if found is not None:
            return found
    return cls._find_list((), {name: value}, None, None, 0, None)


class _EqualCursor(Cursor[Any]):
    """The cursor of ``cls.find(name=value)``, made from ``(cls, name, value)`` alone: the
    usual lookup, made and awaited by the thousand."""

    _everything = staticmethod(_find_equal)

    def __init__(self, arguments: tuple[type[Table], str, Any]) -> None:
        self._arguments = arguments

    @staticmethod
    def _batches(table: type[Table], name: str, value: Any) -> _Reader[Any]:
        return table._reader((), {name: value}, None, None, 0, None)

    def _table_name(self) -> str:
        return str(self._arguments[0].__discobase_name__)


def _equal_finder(
    cls: type[Table], engine: TableEngine, name: str
) -> tuple[type[Table], type | None, Callable[[Any], list[Any]], Callable[[Any], list[Any] | None]]:
    """How :func:`_find_equal` finds by field ``name``: the class; the type of a value
    that needs no conversion (or None) and the reader of such a value; and what
    ``cls.find(name=value)`` returns for any value, as :meth:`Table._found_equal` finds it
    (None for the value None, or when ``name`` is not an indexed field: the general way
    finds it)."""
    if name not in cls.__pydantic_fields__ or name not in engine.state.indexes:
        return (cls, None, list, lambda value: None)
    rows = _rows(cls)
    convert = rows.equal_value(name)
    read = engine.state.equal_reader(name, rows.record)
    # A str for a str field (an int for an int field) converts to itself.
    annotation = cls.model_fields[name].annotation
    same = str if annotation is str else int if annotation is int else None

    def find(value: Any) -> list[Any] | None:
        if value is None:
            return None
        if type(value) is not same:
            try:
                value = convert(value)
            except Exception:  # _coerce raises it as the general way does
                value = _coerce(cls, name, "==", value)
        if engine.expiry is not None:
            engine.expire()
        return read(value)

    return (cls, same, read, find)


def _claims(cls: type[Table]) -> bool:
    """Whether the table claims its unique values across processes (``claim_unique``, as
    the catalog holds it: every process of the table follows one choice)."""
    return cls._engine().schema.claim_unique


def _copied(value: Any) -> Any:
    """A stored value the caller may change without changing the store."""
    return value if isinstance(value, _IMMUTABLE) else copy.deepcopy(value)


#: The field types ``sum`` and ``avg`` take.
_NUMBERS = ("int", "float", "decimal")


def _field_names(
    cls: type[Table], what: str, fields: str | FieldRef | Sequence[str | FieldRef] | None
) -> list[str]:
    """Field names from a name, a field reference or a sequence of them;
    :class:`UnknownFieldError` for a name that is not a field."""
    if fields is None:
        return []
    listed = [fields] if isinstance(fields, str | FieldRef) else list(fields)
    names = []
    for one in listed:
        name = one.name if isinstance(one, FieldRef) else one
        if not isinstance(name, str) or name not in cls.model_fields:
            raise UnknownFieldError(cls._engine().name, str(name), list(cls.model_fields))
        if name not in names:
            names.append(name)
    return names


def settings_of(cls: type[Table]) -> dict[str, Any]:
    """The options of a table class's nested ``Settings`` (empty when it has none)."""
    settings = getattr(cls, "Settings", None)
    return {k: v for k, v in vars(settings).items() if not k.startswith("_")} if settings else {}


def _validation_error(cls: type[BaseModel], error: pydantic.ValidationError) -> ValidationError:
    name = (
        cls.__discobase_name__
        if issubclass(cls, Table) and cls.__discobase_name__
        else cls.__name__.lower()
    )
    details = "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in error.errors()[:5]
    )
    return ValidationError(name, details, [dict(e) for e in error.errors(include_url=False)])


@cache
def _adapter(cls: type[Table], name: str) -> TypeAdapter[Any]:
    annotation: Any = cls.model_fields[name].annotation
    return TypeAdapter(annotation)


class _Rows:
    """How a Table class turns into rows (what the engine holds) and back.

    ``plain``: a record is its field values, its key and private attributes that start as a
    constant (no validator on the whole model, no ``__init__`` or ``model_post_init`` of its
    own), so a record can be made from a row without pydantic, and ``validator`` (the
    model's field validation alone, without making a model) validates stored records.
    ``deep_copy``: some field type can change in place (a list, a dict), so values are copied
    into each record a read returns.
    """

    def __init__(self, cls: type[Table]) -> None:
        self.cls = cls
        self.names = tuple(cls.model_fields)
        #: The field values of a record's ``__dict__``, in field order.
        self.take: Callable[[dict[str, Any]], tuple[Any, ...]] = (
            operator.itemgetter(*self.names)
            if len(self.names) > 1
            else lambda values: tuple(values[name] for name in self.names)
        )
        self.deep_copy = not all(_immutable(f.annotation) for f in cls.model_fields.values())
        schema = cls.__pydantic_core_schema__
        self.plain = (
            cls.__init__ is Table.__init__
            and cls.__pydantic_post_init__ in (None, "model_post_init")
            # pydantic's own (which sets private attributes), not one of the class's
            and cls.model_post_init.__qualname__ == "init_private_attributes"
            and all(_plain_private(attr) for attr in cls.__private_attributes__.values())
            and not cls.__pydantic_decorators__.model_validators
            and schema["type"] == "model"
            and schema["schema"]["type"] == "model-fields"
            and not schema.get("root_model", False)
        )
        #: Private attributes as a new record has them.
        self.private = {
            name: getattr(attr, "default", None)
            for name, attr in cls.__private_attributes__.items()
        }
        self._equal_values: dict[str, Callable[[Any], Any]] = {}
        #: A new record holding a row's values (copied when they could change in place),
        #: at a revision (typed Any: it is of the class, which mypy cannot say here).
        self.record: Callable[[tuple[Any, ...], int], Any] = (
            _plain_records(cls, self.names, self.private, self.deep_copy)
            if self.plain
            else partial(_constructed_record, cls, self.names, self.deep_copy)
        )
        #: Fields whose JSON form may be a float (so NaN, which is not stored): all but those
        #: of types that never dump to one, with no serializer of their own.
        serializers = cls.__pydantic_decorators__
        custom = bool(serializers.field_serializers or serializers.model_serializers)
        self.maybe_float = tuple(
            name
            for name, info in cls.model_fields.items()
            if custom or info.metadata or _optional_of(info.annotation) not in _NEVER_FLOAT
        )
        #: Dumps a list of records (of this very class) as :meth:`Table.model_dump` dumps one.
        self.list_serializer = (
            SchemaSerializer(core_schema.list_schema(schema), schema.get("config"))
            if self.plain
            else None
        )
        #: The same, of records given as their field values (dicts); None if the class's
        #: dump needs more than them (a serializer of its own, computed or extra fields).
        self.values_serializer = (
            _values_serializer(schema)
            if self.plain and not custom and cls.model_config.get("extra") != "allow"
            else None
        )
        # The model's field validation alone, without making a model: as a typed dict
        # (values in a dict) when it restates it, else its own (values first in a tuple).
        fields: Any = schema["schema"]
        config = schema.get("config", {})
        typed = _fields_schema(fields, config) if self.plain else None
        self.take_validated: Callable[[Any], tuple[Any, ...]] = self.take
        if typed is not None:
            fields = typed
        else:
            take = self.take
            self.take_validated = lambda validated: take(validated[0])
        self.validator = SchemaValidator(fields, config) if self.plain else None
        self.list_validator = (
            SchemaValidator(core_schema.list_schema(fields), config) if self.plain else None
        )
        #: Validates stored records given as their key and field values in field order (what
        #: :attr:`row_inputs` makes of them) into rows, without a dict per record; None when
        #: a field's validation may depend on more than its own value.
        self.row_validator: SchemaValidator | None = None
        self.row_inputs: Callable[[list[Any], list[dict[str, Any]]], list[tuple[Any, ...]]]
        if typed is not None and _positional(schema["schema"]):
            items: list[Any] = [core_schema.any_schema()]
            items += [field["schema"] for field in schema["schema"]["fields"].values()]
            self.row_validator = SchemaValidator(
                core_schema.list_schema(core_schema.tuple_schema(items)), config
            )
            self.row_inputs = _row_inputs(self.names)

    def equal_value(self, name: str) -> Callable[[Any], Any]:
        """What :func:`_coerce` does to a value compared with ``==`` to the field ``name``,
        without its error handling (pydantic's errors come out as they are)."""
        convert = self._equal_values.get(name)
        if convert is None:
            convert = self._equal_values[name] = _adapter(self.cls, name).validator.validate_python
        return convert


#: What a model's fields schema may hold for :func:`_fields_schema` to restate it.
_MODEL_FIELDS_KEYS = {
    "type", "fields", "model_name", "computed_fields", "strict", "extra_behavior", "ref",
    "metadata", "serialization",
}  # fmt: skip
_MODEL_FIELD_KEYS = {
    "type", "schema", "validation_alias", "serialization_alias", "serialization_exclude",
    "frozen", "metadata",
}  # fmt: skip


def _fields_schema(fields: Any, config: Any) -> core_schema.TypedDictSchema | None:
    """A model's field validation (its ``model-fields`` schema, under the model's
    ``config``) as a typed dict: the same field schemas, aliases, strictness and extra
    fields, validated to a plain dict of the values. That is half the work of the model's
    own, which also makes the set of fields given (a row does not keep it). None if the
    schema holds more than that, or the config sets more than its extra fields (a typed
    dict does not apply the rest of it as a model does)."""
    if (
        not fields.keys() <= _MODEL_FIELDS_KEYS
        or not all(field.keys() <= _MODEL_FIELD_KEYS for field in fields["fields"].values())
        or not all(
            name in ("title", "extra_fields_behavior") or name.startswith("ser_") for name in config
        )
    ):
        return None
    typed: dict[str, core_schema.TypedDictField] = {}
    for name, field in fields["fields"].items():
        typed[name] = core_schema.typed_dict_field(
            field["schema"],
            required=field["schema"]["type"] != "default",
            validation_alias=field.get("validation_alias"),
        )
    # A typed dict takes its extra fields' fate from its own schema only.
    return core_schema.typed_dict_schema(
        typed,
        strict=fields.get("strict"),
        extra_behavior=fields.get("extra_behavior", config.get("extra_fields_behavior")),
    )


def _values_serializer(schema: Any) -> SchemaSerializer | None:
    """A serializer of a list of a model's field values (dicts) that dumps each as the
    model's own serializer dumps a record holding them; None if the model's schema holds
    more than fields."""
    fields = schema["schema"]
    if (
        "serialization" in schema
        or fields.get("computed_fields")
        or not fields.keys() <= _MODEL_FIELDS_KEYS - {"serialization"}
        or not all(field.keys() <= _MODEL_FIELD_KEYS for field in fields["fields"].values())
    ):
        return None
    typed = {
        name: core_schema.typed_dict_field(
            field["schema"],
            serialization_alias=field.get("serialization_alias"),
            serialization_exclude=field.get("serialization_exclude"),
        )
        for name, field in fields["fields"].items()
    }
    return SchemaSerializer(
        core_schema.list_schema(core_schema.typed_dict_schema(typed)), schema.get("config")
    )


def _positional(fields: Any) -> bool:
    """Whether a model's fields (its ``model-fields`` schema) validate the same given as a
    tuple of their values: no field is strict as a whole or read under another name, and
    no validator anywhere in them takes pydantic's ``info`` (it could read other fields)."""
    if fields.get("strict") or any(
        field.get("validation_alias") is not None for field in fields["fields"].values()
    ):
        return False
    pending: list[Any] = [fields["fields"]]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if node.get("type") == "with-info" or node.get("info_arg"):
                return False
            pending.extend(node.values())
        elif isinstance(node, list | tuple):
            pending.extend(node)
    return True


def _row_inputs(
    names: tuple[str, ...],
) -> Callable[[list[Any], list[dict[str, Any]]], list[tuple[Any, ...]]]:
    """What :attr:`_Rows.row_validator` validates: each stored record as its key, then its
    values in field order. Raises KeyError when a record lacks a field (a default to fill
    in) or holds one more (left to the validation of dicts, which refuses or drops it).

    Generated for the class as :func:`_plain_records` is, the names written as literals."""
    values = "".join(f", data[{name!r}]" for name in names)
    source = (
        "def row_inputs(keys, datas):\n"
        f"    made = [(key{values}) for key, data in zip(keys, datas)]\n"
        f"    if sum(map(len, datas)) != {len(names)} * len(datas):\n"
        "        raise KeyError('a record holds more than the fields')\n"
        "    return made\n"
    )
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # the names are the class's field names, written as literals
    return typing.cast(
        Callable[[list[Any], list[dict[str, Any]]], list[tuple[Any, ...]]],
        namespace["row_inputs"],
    )


def _plain_records(
    cls: type[Table], names: tuple[str, ...], private: dict[str, Any], deep_copy: bool
) -> Callable[[tuple[Any, ...], int], Table]:
    """:attr:`_Rows.record` of a plain class: a record made as pydantic would make it from
    valid values, without pydantic.

    A read returns one per row, so every step counts: the function is generated for the
    class (as :mod:`dataclasses` generates ``__init__``), with its field names written into
    a dict display, which builds the record's ``__dict__`` twice as fast as from names and
    values zipped."""
    values = ", ".join(f"{name!r}: row[{position}]" for position, name in enumerate(names, 1))
    values = f"deepcopy({{{values}}})" if deep_copy else f"{{{values}}}"
    others = "" if private.keys() <= {"_discobase_key"} else "**private, "
    source = (
        "def record(row, revision):\n"
        "    made = new(cls)\n"
        f"    set_dict(made, {values})\n"
        "    set_fields_set(made, fields_set.copy())\n"
        "    set_extra(made, None)\n"
        f"    set_private(made, {{{others}'_discobase_key': row[0], REVISION: revision}})\n"
        "    return made\n"
    )
    # BaseModel's own slots, set through their descriptors: object.__setattr__ looks each
    # one up on the class first.
    slots = BaseModel.__dict__
    namespace: dict[str, Any] = {
        "new": object.__new__,
        "set_dict": slots["__dict__"].__set__,
        "set_fields_set": slots["__pydantic_fields_set__"].__set__,
        "set_extra": slots["__pydantic_extra__"].__set__,
        "set_private": slots["__pydantic_private__"].__set__,
        "deepcopy": copy.deepcopy,
        "cls": cls,
        "fields_set": set(names),
        "private": private,
        "REVISION": _REVISION,
    }
    exec(source, namespace)  # the names are the class's field names, written as literals
    return typing.cast(Callable[[tuple[Any, ...], int], Table], namespace["record"])


def _constructed_record(
    cls: type[Table], names: tuple[str, ...], deep_copy: bool, row: tuple[Any, ...], revision: int
) -> Table:
    """:attr:`_Rows.record` of a class that is not plain: ``model_construct``."""
    values = dict(zip(names, row[1:], strict=True))
    made = cls.model_construct(**(copy.deepcopy(values) if deep_copy else values))
    made._discobase_key = row[0]
    made._set_revision(revision)
    return made


#: Field types whose JSON form is never a float.
_NEVER_FLOAT = (str, int, bool, datetime.datetime, datetime.date, uuid.UUID, decimal.Decimal)


def _optional_of(annotation: Any) -> Any:
    """``X`` for ``X | None``; any other annotation as it is."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


@cache
def _rows(cls: type[Table]) -> _Rows:
    return _Rows(cls)


_private_of = operator.attrgetter("__pydantic_private__")


def _as_called(record: Table) -> dict[str, Any]:
    """The field values of ``record`` as they are now, for a save that sends it later
    (copied when they could change in place: an assignment gives a record a new dict)."""
    values = record.__dict__
    return copy.deepcopy(values) if _rows(type(record)).deep_copy else dict(values)


def _copy_as(record: TableT, values: dict[str, Any]) -> TableT:
    """A copy of ``record`` holding ``values``, and its very private attributes (the key a
    save generates, and its revision, land in the record)."""
    made = object.__new__(type(record))
    _set_attribute(made, "__dict__", values)
    _set_attribute(made, "__pydantic_fields_set__", record.__pydantic_fields_set__)
    _set_attribute(made, "__pydantic_extra__", record.__pydantic_extra__)
    _set_attribute(made, "__pydantic_private__", record.__pydantic_private__)
    return made


def _as_given(records: list[TableT], values: list[dict[str, Any]] | None) -> list[TableT]:
    """``records``, or copies of them holding ``values`` (:func:`_copy_as`)."""
    return records if values is None else list(map(_copy_as, records, values))


_set_attribute = object.__setattr__


#: A record's private attributes: reading one as an attribute goes through pydantic's
#: ``__getattr__``, which costs more than a save's other steps together.
_private: Callable[[Table], dict[str, Any]] = operator.attrgetter("__pydantic_private__")
_privates = _private
_generated_key = operator.itemgetter("_discobase_key")


def _validated_rows(
    rows: _Rows, keys: list[Any], datas: list[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """The rows of records under ``keys`` from their JSON forms, validated in one call: as
    tuples of their values when the class allows it (without a dict per record), else as
    dicts. Raises pydantic's ValidationError."""
    if rows.row_validator is not None:
        try:
            inputs = rows.row_inputs(keys, datas)
        except KeyError:
            pass  # a field to fill in, or one too many: validated as dicts below
        else:
            return rows.row_validator.validate_python(inputs)  # type: ignore[no-any-return]
    assert rows.list_validator is not None
    take = rows.take_validated
    validated = rows.list_validator.validate_python(datas)
    return [(key, *take(values)) for key, values in zip(keys, validated, strict=True)]


def _has_nan(values: list[Any]) -> bool:
    """Whether one of the JSON values is NaN: the one value that is not equal to itself."""
    return any(map(operator.ne, values, values))


def _private_defaults(defaults: dict[str, Any]) -> Callable[[Table, Any], None]:
    """What pydantic's ``init_private_attributes`` does for a class whose private attributes
    start as constants (:func:`_plain_private`), without its pass over their declarations
    each time a record is made (that pass, run twice for a subclass, costs a third of
    making a record)."""

    def init_private_attributes(self: Table, context: Any, /) -> None:
        if getattr(self, "__pydantic_private__", None) is None:
            _set_attribute(self, "__pydantic_private__", defaults.copy())

    # Named as pydantic's own: the class still has no model_post_init of its own (_Rows).
    init_private_attributes.__qualname__ = "init_private_attributes"
    return init_private_attributes


def _plain_private(attr: Any) -> bool:
    return getattr(attr, "default_factory", None) is None and isinstance(
        getattr(attr, "default", None), _IMMUTABLE
    )


def _immutable(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return all(_immutable(arg) for arg in typing.get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, _IMMUTABLE)


def _json_key(cls: type[Table], field_name: str, value: Any) -> Any:
    adapter = _adapter(cls, field_name)
    try:
        return adapter.dump_python(adapter.validate_python(value), mode="json")
    except pydantic.ValidationError as error:
        raise _validation_error(cls, error) from None


def _coerce(cls: type[Table], field_name: str, op: str, value: Any) -> Any:
    """Convert a query value to the field's type, so comparisons compare like with like."""
    if value is None and op in ("==", "!="):
        return None
    adapter = _adapter(cls, field_name)
    try:
        if op == "in":
            return [adapter.validate_python(v) for v in value]
        if op == "startswith":
            return str(value)
        if op == "contains":
            type_name, _ = describe_annotation(cls.model_fields[field_name].annotation)
            if type_name == "str":
                return str(value)
            if type_name != "json":
                raise ValidationError(
                    cls._engine().name,
                    f"{field_name} is a {type_name} field: contains works on text, lists and json",
                )
            return value
        return adapter.validate_python(value)
    except pydantic.ValidationError as error:
        raise ValidationError(
            cls._engine().name,
            f"{field_name} {op} {value!r}: {error.errors()[0]['msg']}",
            [dict(e) for e in error.errors(include_url=False)],
        ) from None
    except TypeError:
        raise ValidationError(
            cls._engine().name, f"{field_name} in needs a list of values"
        ) from None
