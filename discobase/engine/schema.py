"""Table schemas: what the catalog stores about a table, and the rules for names and types."""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import enum
import json
import re
import types
import typing
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, JsonValue, TypeAdapter
from pydantic.fields import FieldInfo

from ..errors import SchemaError

__all__ = (
    "DEFAULT_SHARDS",
    "RESERVED_FIELD_NAMES",
    "TYPE_NAMES",
    "FieldSchema",
    "TableSchema",
    "check_name",
    "check_new_field_names",
    "describe_annotation",
)

#: The field types a table created by name (without a Python class) can use.
TYPE_NAMES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "datetime": dt.datetime,
    "date": dt.date,
    "uuid": uuid.UUID,
    "decimal": decimal.Decimal,
    "json": JsonValue,
}
_NAMES_BY_TYPE = {v: k for k, v in TYPE_NAMES.items() if k != "json"}
#: Factory defaults that must be fresh for each record, by field type.
_FRESH_FACTORIES: dict[str, Callable[[], Any]] = {
    "uuid": uuid.uuid4,
    "datetime": lambda: dt.datetime.now(dt.UTC),
    "date": lambda: dt.datetime.now(dt.UTC).date(),
}
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
#: Names a field cannot have: the Table's verbs and attributes (a field would shadow them),
#: the keywords of ``find`` and its siblings (a field of that name could not be queried by
#: keyword), and pydantic's own (``model_*`` and BaseModel's older methods).
RESERVED_FIELD_NAMES = frozenset(
    {
        "save", "insert", "update", "delete", "insert_many", "get", "find", "find_one",
        "find_unique", "count", "all", "pk", "Settings", "self", "cls", "limit", "offset",
        "order_by", "expressions", "equals", "commit", "revision", "if_revision", "watch",
        "before_save", "after_save", "before_delete", "after_delete", "aggregate",
        "fields",
        *(name for name in dir(BaseModel) if not name.startswith("_")),
    }
)  # fmt: skip
_RESERVED_SUMMARY = (
    "save, insert, update, delete, insert_many, commit, get, find, find_one, find_unique, count, all, "
    "aggregate, watch, pk, revision, if_revision, Settings, before_save, after_save, before_delete, "
    "after_delete, self, cls, limit, offset, order_by, fields, model_* and pydantic's BaseModel methods "
    "(copy, dict, json, schema, validate, ...)"
)
#: Key types: values that JSON keeps exactly and that hash.
_KEY_TYPES = ("str", "int", "uuid")
#: Shards of a new table that does not choose: each shard is about one awaited write per
#: second (a channel's or thread's 5 messages per 5 s), so 6 give 5 or more per second. The
#: first shard is the table's channel, the other five its private threads.
DEFAULT_SHARDS = 6
_INDEXABLE = ("str", "int", "float", "bool", "datetime", "date", "uuid", "decimal")


def check_name(name: object) -> str:
    """A table name: 1-63 of a-z, 0-9 and _, starting with a letter (it names channels)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SchemaError(
            f"invalid table name {name!r}: use 1 to 63 lowercase letters, digits and _, "
            "starting with a letter"
        )
    return name


def check_field_name(table: str, name: object) -> str:
    """A field name: 1-63 of letters, digits and _, starting with a letter; not ``pk`` or
    ``model_*`` (the rule for every stored schema, old ones included)."""
    if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
        raise SchemaError(
            f"table {table!r}: invalid field name {name!r}: use letters, digits and _, "
            "starting with a letter (at most 63)"
        )
    if name == "pk" or name.startswith("model_"):
        raise _reserved(table, name)
    return name


def check_new_field_names(table: str, names: Iterable[str], taken: Iterable[str] = ()) -> None:
    """The names of a table being defined: none may be reserved (:data:`RESERVED_FIELD_NAMES`)
    or in ``taken`` (the Table class's own public attributes)."""
    reserved = RESERVED_FIELD_NAMES | set(taken)
    for name in names:
        check_field_name(table, name)
        if name in reserved:
            raise _reserved(table, name)


def _reserved(table: str, name: str) -> SchemaError:
    return SchemaError(
        f"table {table!r}: field name {name!r} is reserved; these names are reserved: "
        f"{_RESERVED_SUMMARY}; rename the field"
    )


def describe_annotation(annotation: Any) -> tuple[str, bool]:
    """(type name, optional) for an annotation; types outside :data:`TYPE_NAMES` are "json"."""
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            annotation = args[0]
        else:
            return "json", optional
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "json", optional
    return _NAMES_BY_TYPE.get(annotation, "json"), optional


@dataclass(frozen=True)
class FieldSchema:
    """One field: its name, type name, whether None is allowed, and its default.

    ``factory`` marks a default made fresh for each record (a class's ``default_factory``):
    a fresh uuid4 for ``uuid`` fields, the time (UTC) for ``datetime``, today (UTC) for
    ``date``, and otherwise a copy of ``default``, the value the factory gave when the schema
    was recorded.
    """

    name: str
    type: str
    optional: bool = False
    has_default: bool = False
    default: Any = None
    annotation: str = ""
    factory: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.optional:
            data["optional"] = True
        if self.factory:
            data["factory"] = True
        if self.has_default and not (self.factory and self.type in _FRESH_FACTORIES):
            data["default"] = self.default
        if self.annotation and self.annotation != self.type:
            data["annotation"] = self.annotation
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FieldSchema:
        return cls(
            name=data["name"],
            type=data["type"] if data["type"] in TYPE_NAMES else "json",
            optional=bool(data.get("optional", False)),
            has_default="default" in data or bool(data.get("factory")),
            default=data.get("default"),
            annotation=data.get("annotation", ""),
            factory=bool(data.get("factory", False)),
        )

    def default_factory(self) -> Callable[[], Any]:
        """For a ``factory`` field: what makes its default for one record."""
        fresh = _FRESH_FACTORIES.get(self.type)
        if fresh is not None:
            return fresh
        sample = self.default
        return lambda: copy.deepcopy(sample)

    def same_shape(self, other: FieldSchema) -> bool:
        """Same name, type, optionality and default: nothing to migrate."""
        return self.to_dict() == other.to_dict()


@dataclass
class TableSchema:
    """A table as the catalog knows it."""

    name: str
    fields: list[FieldSchema]
    primary_key: str | None = None
    indexes: list[str] = field(default_factory=list)
    unique: list[str] = field(default_factory=list)
    shards: int = 1
    #: The log channels, one per shard (filled in when the table is created in the guild).
    channels: list[int] = field(default_factory=list)
    #: Whether ``channels[1:]`` are private threads of ``channels[0]`` (a text channel in the
    #: storage category) rather than text channels of their own.
    threads: bool = False
    #: Whether ``shards`` was chosen (``Settings.shards``, ``create_table(shards=)``) rather
    #: than left to the default: an existing table keeps its stored count then.
    shards_chosen: bool = field(default=True, repr=False, compare=False)
    #: Seconds a record lives after its last write (``Settings.ttl``); None: for ever.
    ttl: float | None = None
    #: Writes claim their new unique values in the log (``Settings.claim_unique``).
    claim_unique: bool = False
    #: While the table's shard count grows (``Database.reshard``): the count before, whose
    #: placement its first shards' snapshots still follow; None otherwise.
    resharding: int | None = None
    #: Records in the table right now (filled in by ``Database.schema``).
    record_count: int = 0
    #: The table's class (filled in by ``Database.schema``); :meth:`json_schema` describes it.
    model: type[BaseModel] | None = field(default=None, repr=False, compare=False)

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> FieldSchema:
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    def json_schema(
        self, mode: typing.Literal["validation", "serialization"] = "validation"
    ) -> dict[str, Any]:
        """The JSON Schema of one record: pydantic's ``model_json_schema`` of the table's class
        (``mode="serialization"`` describes records as ``model_dump(mode="json")`` writes them).
        Raises :class:`SchemaError` for a schema that is not bound to a class (one built by hand
        or read from the catalog; ``Database.schema`` returns bound ones)."""
        if self.model is None:
            raise SchemaError(
                f"table {self.name!r}: this schema has no table class; use Database.schema(name)"
            )
        return self.model.model_json_schema(mode=mode)

    def to_dict(self) -> dict[str, Any]:
        """The catalog form (also what ``/schema`` shows)."""
        return (
            {
                "name": self.name,
                "fields": [f.to_dict() for f in self.fields],
                "primary_key": self.primary_key,
                "indexes": list(self.indexes),
                "unique": list(self.unique),
                "shards": self.shards,
                "channels": [str(c) for c in self.channels],
            }
            | ({} if self.ttl is None else {"ttl": self.ttl})
            | ({"claim_unique": True} if self.claim_unique else {})
            | ({"threads": True} if self.threads else {})
            | ({} if self.resharding is None else {"resharding": self.resharding})
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableSchema:
        return cls(
            name=check_name(data["name"]),
            fields=[FieldSchema.from_dict(f) for f in data["fields"]],
            primary_key=data.get("primary_key"),
            indexes=list(data.get("indexes", [])),
            unique=list(data.get("unique", [])),
            shards=int(data.get("shards", 1)),
            channels=[int(c) for c in data.get("channels", [])],
            ttl=data.get("ttl"),
            claim_unique=data.get("claim_unique", False),
            threads=data.get("threads", False),
            resharding=data.get("resharding"),
        )

    def same_shape(self, other: TableSchema) -> bool:
        """Same fields, key, indexes and shards (channels aside)."""
        return (
            len(self.fields) == len(other.fields)
            and all(a.same_shape(b) for a, b in zip(self.fields, other.fields, strict=True))
            and (self.primary_key, sorted(self.indexes), sorted(self.unique), self.shards)
            == (other.primary_key, sorted(other.indexes), sorted(other.unique), other.shards)
            and self.ttl == other.ttl
            and self.claim_unique == other.claim_unique
        )

    def validate(self) -> TableSchema:
        """Check key, index and unique declarations against the fields; return self."""
        check_name(self.name)
        names = self.field_names
        if not names:
            raise SchemaError(f"table {self.name!r} has no fields")
        if len(set(names)) != len(names):
            raise SchemaError(f"table {self.name!r} declares a field twice")
        for name in names:
            check_field_name(self.name, name)
        if self.primary_key is not None:
            if self.primary_key not in names:
                raise SchemaError(
                    f"table {self.name!r}: primary key {self.primary_key!r} is not a field"
                )
            key = self.field(self.primary_key)
            if key.type not in _KEY_TYPES or key.optional:
                raise SchemaError(
                    f"table {self.name!r}: primary key {key.name!r} must be a required "
                    f"{', '.join(_KEY_TYPES)} field, not {key.type}"
                )
        for kind, declared in (("index", self.indexes), ("unique", self.unique)):
            if len(set(declared)) != len(declared):
                raise SchemaError(f"table {self.name!r}: a field is named twice in {kind}")
            for name in declared:
                if name not in names:
                    raise SchemaError(f"table {self.name!r}: {kind} on unknown field {name!r}")
                if self.field(name).type not in _INDEXABLE:
                    raise SchemaError(
                        f"table {self.name!r}: cannot index {name!r} of type "
                        f"{self.field(name).type}; index {', '.join(_INDEXABLE)} fields"
                    )
        if not isinstance(self.shards, int) or not 1 <= self.shards <= 16:
            raise SchemaError(f"table {self.name!r}: shards must be 1 to 16")
        if not isinstance(self.threads, bool) or (self.threads and self.shards < 2):
            raise SchemaError(
                f"table {self.name!r}: threads must be true (2 shards or more) or absent"
            )
        if self.resharding is not None and (
            type(self.resharding) is not int
            or not 1 <= self.resharding < self.shards
            or self.shards % self.resharding
        ):
            raise SchemaError(
                f"table {self.name!r}: resharding must be a shard count that divides shards"
            )
        if self.ttl is not None and (
            isinstance(self.ttl, bool)
            or not isinstance(self.ttl, int | float)
            or not 0.001 <= self.ttl < 1e11
        ):
            raise SchemaError(
                f"table {self.name!r}: ttl must be a positive datetime.timedelta of at least "
                f"a millisecond, not {self.ttl!r}"
            )
        if type(self.claim_unique) is not bool:
            raise SchemaError(
                f"table {self.name!r}: claim_unique must be True or False, not "
                f"{self.claim_unique!r}"
            )
        return self

    @classmethod
    def of_model(
        cls,
        name: str,
        model: type[BaseModel],
        *,
        primary_key: str | None,
        indexes: list[str],
        unique: list[str],
        shards: int | None,
        ttl: float | None = None,
        claim_unique: bool = False,
    ) -> TableSchema:
        """Describe a pydantic model's fields as a schema (``shards`` None: the default)."""
        fields = [_field_schema(fname, info) for fname, info in model.model_fields.items()]
        schema = cls(
            name,
            fields,
            primary_key,
            list(indexes),
            list(unique),
            DEFAULT_SHARDS if shards is None else shards,
            ttl=ttl,
            claim_unique=claim_unique,
            shards_chosen=shards is not None,
        )
        return schema.validate()


def _field_schema(name: str, info: FieldInfo) -> FieldSchema:
    type_name, optional = describe_annotation(info.annotation)
    annotation = getattr(info.annotation, "__name__", None) or str(info.annotation)
    annotation = annotation.replace("typing.", "")
    if info.default_factory is not None:
        if type_name in _FRESH_FACTORIES:
            return FieldSchema(name, type_name, optional, True, None, annotation, factory=True)
        sample = _factory_sample(info)
        if sample is _NO_SAMPLE:  # nothing to record: tables without the class require it
            return FieldSchema(name, type_name, optional, False, None, annotation)
        return FieldSchema(name, type_name, optional, True, sample, annotation, factory=True)
    has_default = not info.is_required()
    default = info.default if has_default else None
    if has_default and not isinstance(default, str | int | float | bool | type(None)):
        # Recorded in its JSON form, as a record stores it: a list default as a list (not
        # its str()), a date as its ISO text. One JSON cannot hold: not recorded.
        default = _json_form(info, default)
        if default is _NO_SAMPLE:
            return FieldSchema(name, type_name, optional, False, None, annotation)
    return FieldSchema(name, type_name, optional, has_default, default, annotation)


_NO_SAMPLE = object()


def _factory_sample(info: FieldInfo) -> Any:
    """The JSON form of what a field's ``default_factory`` makes, or ``_NO_SAMPLE``."""
    if getattr(info, "default_factory_takes_data", False):
        return _NO_SAMPLE
    try:
        factory = typing.cast(Callable[[], Any], info.default_factory)
        value = factory()
    except Exception:  # a factory that fails
        return _NO_SAMPLE
    return _json_form(info, value)


def _json_form(info: FieldInfo, value: Any) -> Any:
    """``value`` of the field as JSON holds it, or ``_NO_SAMPLE`` when JSON cannot."""
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(typing.cast(Any, info.annotation))
        sample = adapter.dump_python(value, mode="json")
        json.dumps(sample, allow_nan=False)
    except Exception:  # something JSON cannot hold
        return _NO_SAMPLE
    return sample
