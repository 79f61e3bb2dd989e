"""``find(..., fields=[...])``: only the named fields of each match, as dicts."""

from __future__ import annotations

import pytest

import discobase


class Pet(discobase.Table):
    name: str
    legs: int = 4
    toys: list[str] = []
    note: str = ""

    class Settings:
        primary_key = "name"
        indexes = ["legs"]


@pytest.fixture
async def db(simcord_env, new_db):
    database = new_db()
    database.table(Pet)
    await database.open()
    await Pet.insert_many(
        [
            {"name": "rex", "legs": 4, "toys": ["ball"], "note": "x" * 100},
            {"name": "tweety", "legs": 2},
            {"name": "spot", "legs": 4},
        ]
    )
    yield database
    await database.close()


async def test_find_with_fields_returns_only_those_fields(db):
    found = await Pet.find(Pet.legs == 4, fields=["name", Pet.toys], order_by="name")

    assert found == [{"name": "rex", "toys": ["ball"]}, {"name": "spot", "toys": []}]
    assert await Pet.find(fields="legs", limit=1, offset=1) == [{"legs": 4}]  # key order
    assert await Pet.find(fields=["legs"], legs=3) == []


async def test_projected_values_are_copies(db):
    [rex] = await Pet.find(name="rex", fields=["toys"])
    rex["toys"].append("bone")

    assert (await Pet.get("rex")).toys == ["ball"]


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        (["name", "colour"], discobase.UnknownFieldError, "colour"),
        ([], discobase.ValidationError, "at least one"),
    ],
)
async def test_bad_fields_are_typed_errors(simcord_env, db, fields, error, message):
    before = len(simcord_env.http_requests)

    with pytest.raises(error, match=message):
        await Pet.find(fields=fields)

    assert len(simcord_env.http_requests) == before


async def test_all_yields_each_record_as_it_is_when_reached(db):
    seen = []
    async for pet in Pet.all(Pet.legs >= 2):
        seen.append((pet.name, pet.legs))
        if pet.name == "rex":
            await (await Pet.get("spot")).update(note="changed")  # after rex in key order
            await (await Pet.get("tweety")).delete()
        if pet.name == "spot":
            assert pet.note == "changed"
            assert pet.revision == (await Pet.get("spot")).revision
            await pet.save(if_revision=pet.revision)  # its revision is that of its content

    assert seen == [("rex", 4), ("spot", 4)]


async def test_all_skips_a_record_that_stopped_matching(db):
    seen = []
    async for pet in Pet.all(legs=4):
        seen.append(pet.name)
        if pet.name == "rex":
            await (await Pet.get("spot")).update(legs=3)

    assert seen == ["rex"]
