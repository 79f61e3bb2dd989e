"""Moving records in and out of tables: JSON lines and CSV rows, validated before anything is
written (the command line's ``import``/``restore`` and the bot's ``/import`` use it)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import pydantic

from .engine.schema import TYPE_NAMES, FieldSchema, TableSchema
from .errors import DiscobaseError
from .model import Table

__all__ = (
    "CHUNK",
    "Checked",
    "Row",
    "check_rows",
    "csv_line",
    "dump_value",
    "existing",
    "fields_of",
    "infer_schema",
    "insert",
    "read_rows",
    "validator",
)

#: Records per ``insert_many`` call (each call lands whole or not at all).
CHUNK = 500


def dump_value(value: Any) -> str:
    """A JSON value as a CSV cell: strings as they are, None empty, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def csv_line(values: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


@dataclass
class Row:
    line: int
    data: dict[str, Any] | None
    error: str | None = None


def read_rows(file: TextIO, fmt: str, schema: TableSchema | None) -> Iterator[tuple[Row, int]]:
    """Each row of a JSONL or CSV text (``fmt``) with the bytes it took (CSV cells converted by
    the schema's field types when there is one: empty cells are None in optional and json
    fields, json cells are parsed)."""
    if fmt == "jsonl":
        for number, line in enumerate(file, 1):
            size = len(line.encode())
            if not line.strip():
                yield Row(number, None), size
                continue
            try:
                data = json.loads(line)
            except ValueError as error:
                yield Row(number, None, f"not JSON: {error}"), size
                continue
            if not isinstance(data, dict):
                yield Row(number, None, "not a JSON object"), size
                continue
            yield Row(number, data), size
        return
    reader = csv.reader(file)
    header = next(reader, None)
    if header is None:
        return
    for values in reader:
        size = len(csv_line(values).encode())
        number = reader.line_num
        if len(values) != len(header):
            yield Row(number, None, f"{len(values)} cells, the header has {len(header)}"), size
            continue
        data = {}
        problem = None
        for name, cell in zip(header, values, strict=True):
            try:
                data[name] = csv_cell(schema, name, cell)
            except ValueError as bad:
                problem = f"{name}: not JSON: {bad}"
        yield Row(number, data, problem), size


def csv_cell(schema: TableSchema | None, name: str, cell: str) -> Any:
    if schema is None or name not in schema.field_names:
        return cell
    spec = schema.field(name)
    if cell == "" and (spec.optional or spec.type == "json"):
        return None
    if spec.type == "json":
        return json.loads(cell)
    return cell


def validator(schema: TableSchema) -> type[pydantic.BaseModel]:
    """A model checking records against a schema, before its table exists in this guild."""
    fields: dict[str, Any] = {}
    for spec in schema.fields:
        annotation = TYPE_NAMES[spec.type]
        if spec.optional:
            annotation = annotation | None
        fields[spec.name] = (annotation, None if spec.has_default else ...)
    return pydantic.create_model(
        f"{schema.name}_record", __config__=pydantic.ConfigDict(extra="forbid"), **fields
    )


def infer_schema(
    name: str, rows: list[dict[str, Any]], key: str | None, csv_file: bool
) -> TableSchema:
    """A schema for a new table from the file: a JSON type per field (of a CSV cell: the type
    of the JSON it reads as, else str), optional where a row lacks it or holds null or an empty
    cell; mixed types are json."""
    order: list[str] = []
    kinds: dict[str, set[str]] = {}
    for data in rows:
        for fname, value in data.items():
            if fname not in kinds:
                order.append(fname)
                kinds[fname] = set()
            kinds[fname].add(kind(value, csv_file))
    specs = []
    for fname in order:
        seen = kinds[fname]
        optional = "null" in seen or any(fname not in data for data in rows)
        seen.discard("null")
        if seen == {"int", "float"}:
            seen = {"float"}
        type_name = seen.pop() if len(seen) == 1 else ("str" if not seen else "json")
        specs.append(FieldSchema(fname, type_name, optional, has_default=optional))
    return TableSchema(name, specs, key).validate()


def kind(value: Any, csv_file: bool) -> str:
    if value is None or (csv_file and value == ""):
        return "null"
    if csv_file:  # a cell that reads as JSON other than a string is of that type
        try:
            value = json.loads(value)
        except ValueError:
            return "str"
        if value is None:
            return "str"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "json"


def fields_of(schema: TableSchema) -> dict[str, Any]:
    """``create_table``'s ``fields`` for a schema (a factory default keeps its recorded value)."""
    fields: dict[str, Any] = {}
    for spec in schema.fields:
        type_name = spec.type + ("?" if spec.optional else "")
        if spec.has_default and not (spec.factory and spec.default is None):
            fields[spec.name] = (type_name, spec.default)
        else:
            fields[spec.name] = type_name
    return fields


@dataclass
class Checked:
    """A file validated against a table: the records to write and the rows refused."""

    records: list[dict[str, Any]] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    rows: int = 0


def check_rows(
    rows: list[Row],
    schema: TableSchema,
    model: type[pydantic.BaseModel],
    existing: dict[str, set[Any]],
) -> Checked:
    """Validate every row; refuse repeated or existing keys and unique values."""
    checked = Checked()
    seen: dict[str, set[Any]] = {name: set(values) for name, values in existing.items()}
    for row in rows:
        if row.data is None and row.error is None:
            continue
        checked.rows += 1
        if row.error is not None or row.data is None:
            checked.bad.append(f"line {row.line}: {row.error}")
            continue
        if schema.primary_key is None:  # an export's generated keys: new ones are made
            row.data.pop("_key", None)
        try:
            record = model.model_validate(row.data).model_dump(mode="json")
        except DiscobaseError as error:
            checked.bad.append(f"line {row.line}: {error}")
            continue
        except pydantic.ValidationError as error:
            details = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in error.errors()
            )
            checked.bad.append(f"line {row.line}: {details}")
            continue
        clash = next(
            (
                name
                for name in seen
                if record.get(name) is not None and hashable(record[name]) in seen[name]
            ),
            None,
        )
        if clash is not None:
            what = "key" if clash == schema.primary_key else "unique value"
            checked.bad.append(
                f"line {row.line}: {what} {clash}={record[clash]!r} is in the table or the file already"
            )
            continue
        for name, values in seen.items():
            if record.get(name) is not None:
                values.add(hashable(record[name]))
        checked.records.append(record)
    return checked


def hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


async def existing(table: type[Table] | None, schema: TableSchema) -> dict[str, set[Any]]:
    """The values already held by the table's key and unique fields."""
    names = [*([schema.primary_key] if schema.primary_key else []), *schema.unique]
    values: dict[str, set[Any]] = {name: set() for name in names}
    if table is not None and names:
        async for record in table.all():
            data = record.model_dump(mode="json")
            for name in names:
                if data.get(name) is not None:
                    values[name].add(hashable(data[name]))
    return values


async def insert(
    table: type[Table],
    records: list[dict[str, Any]],
    done_chunk: Callable[[int, int], Awaitable[None] | None],
) -> None:
    """Insert in chunks of :data:`CHUNK` (each lands whole), calling ``done_chunk(records,
    bytes)`` (awaited if it returns an awaitable) after each; a failure says how many were
    written before it."""
    done = 0
    try:
        for start in range(0, len(records), CHUNK):
            chunk = records[start : start + CHUNK]
            await table.insert_many(chunk)
            done += len(chunk)
            reported = done_chunk(len(chunk), sum(len(json.dumps(r)) for r in chunk))
            if reported is not None:
                await reported
    except DiscobaseError as error:
        raise DiscobaseError(
            f"{error} ({done:,} of {len(records):,} records were written before this; "
            "they stay in the table)"
        ) from error
