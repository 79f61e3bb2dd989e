"""A table of a guild's database as commands use it: its class and schema, typed, with what
commands read from them (field names and types, keys, records as data, queries as predicates).

A command's ``table`` option resolves to a :class:`TableRef` (:mod:`discobot.options`). Uses
only discobase's public API: ``db.tables``, ``db.schema()``, ``Compare`` and the records'
``model_dump``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import discobase
from discobot.errors import BadInputError
from discobot.grammar import Condition, coerce_value
from discobot.render import code

COMPARISONS: dict[str, str] = {
    "=": "==",
    "!=": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
    "~": "contains",
}
"""A query condition's operator (:func:`discobot.grammar.parse_query`) → discobase's comparison."""


@dataclass(frozen=True)
class TableRef:
    """A table of the guild's database, as a command option resolves it."""

    database: discobase.Database
    table: type[discobase.Table]
    schema: discobase.TableSchema

    @classmethod
    def named(cls, database: discobase.Database, name: str) -> TableRef:
        """The table called ``name``. Raises ``discobase.TableNotFoundError``, or
        ``discobase.TableShardsMissingError`` for a table left out for a missing shard."""
        table = database.tables.get(name)
        if table is None:
            why = database.unusable_tables.get(name)
            if why is not None:
                raise discobase.TableShardsMissingError(name, why)
            raise discobase.TableNotFoundError(name)
        return cls(database, table, database.schema(name))

    @property
    def name(self) -> str:
        return self.schema.name

    @property
    def primary_key(self) -> str | None:
        """The primary key field, or None when keys are generated."""
        return self.schema.primary_key

    def field_names(self) -> list[str]:
        """The field names, in order."""
        return [field.name for field in self.schema.fields]

    def field_types(self) -> dict[str, str]:
        """Field name → type name (``str``, ``int``, ...)."""
        return {field.name: field.type for field in self.schema.fields}

    def parse_key(self, text: str) -> Any:
        """A record key typed as the primary key field (generated keys stay text).

        Raises :class:`BadInputError`.
        """
        text = text.strip()
        if not text:
            raise BadInputError("give the record's key (autocomplete offers them)")
        if self.primary_key is None:
            return text
        key_type = self.field_types()[self.primary_key]
        return coerce_value(key_type, text, what=f"key {code(self.primary_key)}")

    def fields_of(self, record: discobase.Table) -> dict[str, Any]:
        """A record's field values as JSON-ready data, in schema order."""
        dumped = record.model_dump(mode="json")
        return {name: dumped.get(name) for name in self.field_names()}

    def where(self, conditions: list[Condition]) -> list[discobase.Predicate]:
        """Conditions as discobase predicates; discobase checks the fields and types the values
        (``UnknownFieldError``, ``ValidationError``) when the query runs."""
        return [
            discobase.Compare(condition.field, COMPARISONS[condition.operator], condition.value)
            for condition in conditions
        ]
