"""Table classes and table schemas, both ways: the schema a :class:`Table` class declares, and
the class a stored table gets when it has no Python class (runtime tables, the bot).

Beside :mod:`discobase.model`: the :class:`~discobase.Database` registers classes and attaches
engines; what a class means as a schema, and a schema as a class, is decided here.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import pydantic
from pydantic import JsonValue

from .codec import CONTENT_LIMIT, encode_catalog_event, seal_message
from .crypto import KeyRing
from .engine.schema import (
    TYPE_NAMES,
    FieldSchema,
    TableSchema,
    check_new_field_names,
    describe_annotation,
)
from .errors import SchemaError
from .model import Table, settings_of

__all__ = (
    "TABLE_ATTRIBUTES",
    "check_catalog_fits",
    "field_spec",
    "runtime_class",
    "schema_of",
    "ttl_seconds",
)

#: A record's public attributes: a field of one of these names would shadow it.
TABLE_ATTRIBUTES = frozenset(name for name in dir(Table) if not name.startswith("_"))


def schema_of(cls: type[Table]) -> TableSchema:
    """The schema a Table class declares (its fields and ``Settings``); raises
    :class:`SchemaError` for a bad definition."""
    name = cls.__name__.lower()
    # before Settings is read: a field may shadow it
    check_new_field_names(name, cls.model_fields, TABLE_ATTRIBUTES)
    settings = settings_of(cls)
    name = settings.get("name") or name
    check_stored_shape(name, cls)
    schema = TableSchema.of_model(
        name,
        cls,
        primary_key=settings.get("primary_key"),
        indexes=list(settings.get("indexes", ())),
        unique=list(settings.get("unique", ())),
        shards=settings.get("shards"),
        ttl=ttl_seconds(name, settings.get("ttl")),
        claim_unique=settings.get("claim_unique", False),
    )
    check_catalog_fits(schema)
    return schema


def check_stored_shape(table: str, cls: type[Table]) -> None:
    """Refuse a class whose records would not read back as they were saved: a table stores
    its declared fields and nothing else."""
    if cls.model_config.get("extra") == "allow":
        raise SchemaError(
            f"table {table!r}: extra='allow' is not supported: a table stores its declared "
            "fields only, so the extra ones would be lost; declare them as fields (a dict "
            "field holds free-form data)"
        )
    if cls.model_computed_fields:
        names = ", ".join(sorted(cls.model_computed_fields))
        raise SchemaError(
            f"table {table!r}: computed fields ({names}) are not supported: a table stores "
            "its declared fields only; use a plain property instead"
        )


def ttl_seconds(table: str, ttl: object) -> float | None:
    """``Settings.ttl`` (a positive ``timedelta``, or None) in seconds; :class:`SchemaError`
    for anything else."""
    if ttl is None:
        return None
    if not isinstance(ttl, datetime.timedelta) or ttl < datetime.timedelta(milliseconds=1):
        raise SchemaError(
            f"table {table!r}: ttl must be a positive datetime.timedelta of at least a "
            f"millisecond, not {ttl!r}"
        )
    return ttl.total_seconds()


def field_spec(table: str, name: str, spec: Any) -> FieldSchema:
    """A field of ``create_table`` from a type, a type name, or ``(type, default)``."""
    default: Any = None
    has_default = False
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise SchemaError(f"table {table!r}: field {name!r}: give (type, default)")
        spec, default = spec
        has_default = True
    if isinstance(spec, str):
        optional = spec.endswith("?")
        type_name = spec.removesuffix("?")
        if type_name not in TYPE_NAMES:
            raise SchemaError(
                f"table {table!r}: field {name!r} has unknown type {spec!r}; use one of "
                f"{', '.join(TYPE_NAMES)} (add ? for optional)"
            )
    else:
        type_name, optional = describe_annotation(spec)
        if type_name == "json" and spec not in (Any, JsonValue, dict, list):
            raise SchemaError(
                f"table {table!r}: field {name!r}: type {spec!r} is not supported by runtime "
                f"tables; use one of {', '.join(TYPE_NAMES)} or a Table class"
            )
    if has_default and default is None:
        optional = True
    if optional and not has_default:
        has_default = True  # an optional field may be left out: it is None then
    return FieldSchema(name, type_name, optional, has_default, default)


def runtime_class(schema: TableSchema) -> type[Table]:
    """Build the Table class of a table that has no Python class; raises :class:`SchemaError`
    when a default does not fit its field's type."""
    definitions: dict[str, Any] = {}
    for f in schema.fields:
        annotation = TYPE_NAMES[f.type]
        if f.optional and annotation is not Any:
            annotation = annotation | None
        if f.factory:
            default = pydantic.Field(default_factory=f.default_factory())
        elif f.has_default:
            _check_default(schema.name, f.name, annotation, f.default)
            default = pydantic.Field(default=f.default, validate_default=True)
        else:
            default = ...
        definitions[f.name] = (annotation, default)
    settings = type(
        "Settings",
        (),
        {
            "name": schema.name,
            "primary_key": schema.primary_key,
            "indexes": list(schema.indexes),
            "unique": list(schema.unique),
            "shards": schema.shards,
            "ttl": None if schema.ttl is None else datetime.timedelta(seconds=schema.ttl),
            "claim_unique": schema.claim_unique,
        },
    )
    class_name = "".join(part.capitalize() for part in schema.name.split("_")) or "Record"
    cls: type[Table] = pydantic.create_model(class_name, __base__=Table, **definitions)
    cls.Settings = settings  # type: ignore[attr-defined]
    cls.__discobase_name__ = schema.name
    return cls


def _check_default(table: str, name: str, annotation: Any, default: Any) -> None:
    try:
        pydantic.TypeAdapter(annotation).validate_python(default)
        json.dumps(default, allow_nan=False)
    except (pydantic.ValidationError, TypeError, ValueError) as error:
        detail = error.errors()[0]["msg"] if isinstance(error, pydantic.ValidationError) else error
        raise SchemaError(
            f"table {table!r}: the default of {name!r} does not fit its type: {detail}"
        ) from None


def check_catalog_fits(schema: TableSchema, keys: KeyRing | None = None) -> None:
    """Refuse a schema whose catalog event would not fit one message (sealed under ``keys``
    when given), before any REST call.

    Its channels do not exist yet: each is counted at the longest id a snowflake can have.
    """
    stored = schema.to_dict()
    stored["channels"] = [str(2**64 - 1)] * schema.shards
    stored["threads"] = schema.shards > 1
    event = {"op": "create", "table": schema.name, "schema": stored}
    try:
        content = encode_catalog_event(event)
        if keys:
            seal_message(keys, 2**64 - 1, content, None)
    except ValueError:
        raise SchemaError(
            f"the schema of {schema.name!r} is too long for one catalog message "
            f"({CONTENT_LIMIT} characters); use fewer fields or shorter names"
        ) from None
