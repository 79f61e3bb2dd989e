"""``db.schema(name).json_schema()``: pydantic's JSON Schema of a record, for class-defined and
runtime tables."""

from __future__ import annotations

import datetime as dt

import pytest

import discobase


class Pet(discobase.Table):
    name: str
    legs: int = 4
    born: dt.date | None = None

    class Settings:
        primary_key = "name"


async def test_json_schema_of_a_class_defined_table_is_pydantics(simcord_env, new_db):
    db = new_db()
    db.table(Pet)
    await db.open()

    schema = db.schema("pet").json_schema()

    assert schema == Pet.model_json_schema()
    assert schema["required"] == ["name"]
    assert schema["properties"]["legs"] == {"default": 4, "title": "Legs", "type": "integer"}
    assert {"type": "string", "format": "date"} in schema["properties"]["born"]["anyOf"]
    await db.close()


async def test_json_schema_of_a_runtime_table_follows_its_fields(simcord_env, new_db):
    db = new_db()
    await db.open()
    await db.create_table(
        "tasks", {"title": str, "done": ("bool", False), "due": "datetime?"}, primary_key="title"
    )

    schema = db.schema("tasks").json_schema()

    assert schema["title"] == "Tasks"
    assert list(schema["properties"]) == ["title", "done", "due"]
    assert schema["required"] == ["title"]
    assert schema["properties"]["done"]["type"] == "boolean"
    assert schema["properties"]["done"]["default"] is False
    due = schema["properties"]["due"]["anyOf"]
    assert {"type": "string", "format": "date-time"} in due
    assert {"type": "null"} in due
    await db.close()


async def test_serialization_mode_is_passed_to_pydantic(simcord_env, new_db):
    db = new_db()
    db.table(Pet)
    await db.open()

    assert db.schema("pet").json_schema(mode="serialization") == Pet.model_json_schema(
        mode="serialization"
    )
    await db.close()


def test_a_schema_without_a_class_has_no_json_schema():
    schema = discobase.TableSchema.from_dict(
        {"name": "loose", "fields": [{"name": "a", "type": "int"}]}
    )

    with pytest.raises(discobase.SchemaError, match=r"Database\.schema"):
        schema.json_schema()
