"""Schema rules: key and unique changes, defaults made by factories, reserved names, and
schemas too long for the catalog, each refused before anything is written."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
import warnings

import pydantic
import pytest

import discobase
from tests.conftest import make_bot


async def reopen_with(env, db, new_db, *tables):
    """Close ``db``, restart the bot (a new process) and make a Database with ``tables``."""
    await db.close()
    await env.restart_bot(make_bot())
    fresh = new_db()
    for table in tables:
        fresh.table(table)
    return fresh


def storage_channels(env, guild) -> int:
    found = env.bot.get_guild(guild.id)
    assert found is not None
    return len(found.channels)


# -- the primary key ---------------------------------------------------------------------


class Pet(discobase.Table):
    tag: str
    name: str

    class Settings:
        name = "pets"
        primary_key = "tag"


class PetByName(discobase.Table):
    tag: str
    name: str

    class Settings:
        name = "pets"
        primary_key = "name"


async def test_changing_the_primary_key_is_refused_and_changes_nothing(simcord_env, new_db):
    db = new_db()
    db.table(Pet)
    await db.open()
    await Pet(tag="t1", name="rex").save()
    await Pet(tag="t2", name="tom").save()

    rekeyed = await reopen_with(simcord_env, db, new_db, PetByName)
    before = len(simcord_env.http_requests)
    with pytest.raises(discobase.SchemaMismatchError, match="primary key") as raised:
        await rekeyed.open()
    assert "'tag'" in str(raised.value) and "'name'" in str(raised.value)
    assert "new table" in str(raised.value)  # says what to do instead
    assert all(
        not c.startswith("POST") for c in (r.method for r in simcord_env.http_requests[before:])
    )
    with pytest.raises(discobase.NotConnectedError):
        await PetByName.find()

    original = await reopen_with(simcord_env, rekeyed, new_db, Pet)
    await original.open()
    assert original.schema("pets").primary_key == "tag"
    assert {p.tag: p.name for p in await Pet.find()} == {"t1": "rex", "t2": "tom"}
    assert (await Pet.get("t1")).name == "rex"
    await original.close()


# -- unique fields -----------------------------------------------------------------------


class Member(discobase.Table):
    handle: str
    email: str | None = None
    visits: int = 0

    class Settings:
        name = "members"
        primary_key = "handle"


class UniqueMember(discobase.Table):
    handle: str
    email: str | None = None
    visits: int = 0

    class Settings:
        name = "members"
        primary_key = "handle"
        unique = ["email"]


async def test_adding_unique_over_repeated_values_is_refused(simcord_env, new_db):
    db = new_db()
    db.table(Member)
    await db.open()
    await Member(handle="a", email="x@example.org").save()
    await Member(handle="b", email="x@example.org").save()
    await Member(handle="c", email="y@example.org").save()

    stricter = await reopen_with(simcord_env, db, new_db, UniqueMember)
    with pytest.raises(discobase.SchemaMismatchError, match=r"x@example\.org") as raised:
        await stricter.open()
    assert "email" in str(raised.value)

    original = await reopen_with(simcord_env, stricter, new_db, Member)
    await original.open()
    assert original.schema("members").unique == []
    assert await Member.count() == 3
    await original.close()


async def test_adding_unique_over_distinct_values_keeps_records_updatable(simcord_env, new_db):
    db = new_db()
    db.table(Member)
    await db.open()
    for handle in "abcdefgh":
        await Member(handle=handle, email=f"{handle}@example.org").save()

    stricter = await reopen_with(simcord_env, db, new_db, UniqueMember)
    await stricter.open()
    assert stricter.schema("members").unique == ["email"]
    for record in await UniqueMember.find():
        await record.update(visits=1)  # keeps its own email: never a violation
    assert {m.visits for m in await UniqueMember.find()} == {1}
    with pytest.raises(discobase.UniqueViolationError):
        await (await UniqueMember.get("a")).update(email="b@example.org")
    await stricter.close()


async def test_records_two_processes_raced_onto_one_unique_value_stay_updatable(
    simcord_env, new_db
):
    first = new_db()
    await first.open()
    Accounts = await first.create_table(
        "accounts", {"handle": str, "email": "str?", "visits": ("int", 0)},
        primary_key="handle", unique=["email"],
    )  # fmt: skip
    second = new_db()  # another process on the same guild
    await second.open()
    OtherAccounts = second.tables["accounts"]
    # Each process checks against what it has seen, so both writes pass (documented race).
    await asyncio.gather(
        Accounts(handle="a", email="same@example.org").save(),
        OtherAccounts(handle="b", email="same@example.org").save(),
    )
    await simcord_env.settle()
    assert await Accounts.count(email="same@example.org") == 2

    for table in (Accounts, OtherAccounts):
        for handle in ("a", "b"):
            record = await table.get(handle)
            await record.update(visits=record.visits + 1)
            await simcord_env.settle()
    assert {a.handle: a.visits for a in await Accounts.find()} == {"a": 2, "b": 2}
    # A third record still cannot take the value, and neither can a record that does not hold it.
    await Accounts(handle="c").save()
    with pytest.raises(discobase.UniqueViolationError):
        await Accounts(handle="d", email="same@example.org").save()
    with pytest.raises(discobase.UniqueViolationError):
        await (await Accounts.get("c")).update(email="same@example.org")
    await second.close()
    await first.close()


# -- defaults made by a factory ----------------------------------------------------------


class Ticket(discobase.Table):
    title: str
    ref: uuid.UUID = pydantic.Field(default_factory=uuid.uuid4)
    opened: dt.datetime = pydantic.Field(default_factory=lambda: dt.datetime.now(dt.UTC))
    tags: list[str] = pydantic.Field(default_factory=list)
    meta: dict[str, int] = pydantic.Field(default_factory=lambda: {"priority": 1})

    class Settings:
        name = "tickets"
        primary_key = "ref"


async def test_fields_with_a_default_factory_are_not_required_without_the_class(
    simcord_env, new_db
):
    db = new_db()
    db.table(Ticket)
    await db.open()
    fields = {f.name: f for f in db.schema("tickets").fields}
    assert all(fields[name].has_default for name in ("ref", "opened", "tags", "meta"))

    other = new_db()  # a process without the class (the bot) uses the recorded schema
    await other.open()
    Tickets = other.tables["tickets"]
    first = await Tickets(title="printer").insert()
    second = await Tickets.model_validate({"title": "coffee"}).insert()
    assert first.pk != second.pk  # a fresh uuid each time
    assert first.tags == [] and first.meta == {"priority": 1}
    first.tags.append("changed")  # a fresh copy: the default itself is not shared
    assert (await Tickets(title="third").insert()).tags == []
    assert first.opened.tzinfo is not None
    await simcord_env.settle()
    stored = {t.title: t for t in await Ticket.find()}
    assert set(stored) == {"printer", "coffee", "third"}
    assert stored["printer"].ref == uuid.UUID(first.pk)
    assert stored["coffee"].meta == {"priority": 1}
    await other.close()
    await db.close()


async def test_the_bot_inserts_into_a_table_whose_class_uses_default_factories(simcord_env, new_db):
    db = new_db()
    db.table(Ticket)
    await db.open()
    await db.close()
    await simcord_env.restart_bot(make_bot())
    runtime = new_db()  # what the bot sees: no class, only the catalog
    await runtime.open()
    record = runtime.tables["tickets"].model_validate({"title": "from the bot"})
    await record.insert()
    assert isinstance(record.opened, dt.datetime)
    await runtime.close()


class Shelf(discobase.Table):
    label: str
    tags: list[str] = []
    sizes: dict[str, int] = {"small": 1}
    since: dt.date = dt.date(2024, 1, 2)

    class Settings:
        name = "shelves"


async def test_plain_defaults_are_recorded_as_records_store_them(simcord_env, new_db):
    db = new_db()
    db.table(Shelf)
    await db.open()
    defaults = {f.name: f.default for f in db.schema("shelves").fields}
    assert defaults == {"label": None, "tags": [], "sizes": {"small": 1}, "since": "2024-01-02"}

    other = new_db()  # a process without the class (the bot) uses the recorded schema
    await other.open()
    made = await other.tables["shelves"](label="top").insert()
    assert made.tags == [] and made.sizes == {"small": 1}
    made.tags.append("changed")  # each record has its own list, not the default's
    assert (await other.tables["shelves"](label="low").insert()).tags == []
    await simcord_env.settle()
    stored = {s.label: s for s in await Shelf.find()}
    assert (await db.check()).ok
    assert stored["top"].tags == [] and stored["top"].sizes == {"small": 1}
    assert stored["low"].since == dt.date(2024, 1, 2)
    await other.close()
    await db.close()


# -- reserved names ----------------------------------------------------------------------


RESERVED_FIELD_NAMES = [
    "save", "insert", "update", "delete", "insert_many", "find", "find_one", "find_unique",
    "get", "count", "all", "pk", "self", "cls", "limit", "offset", "order_by", "model_config",
    "model_dump", "copy", "json", "dict", "schema", "validate", "Settings", "revision",
    "if_revision", "watch", "before_save", "after_save", "before_delete", "after_delete",
    "aggregate", "fields",
]  # fmt: skip


def shadowing_class(name: str) -> type[discobase.Table] | None:
    """A table class with a field called ``name``; None if pydantic itself refuses it."""
    namespace = {"__annotations__": {"title": str, name: int}, "__module__": __name__}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic warns of a field that shadows a method
        try:
            return type("Shadowing", (discobase.Table,), namespace)
        except (NameError, ValueError, pydantic.PydanticUserError):
            return None


#: Every public attribute of Table that pydantic lets a class declare as a field.
SHADOWING = sorted(
    name
    for name in {*RESERVED_FIELD_NAMES, *dir(discobase.Table)}
    if not name.startswith("_") and shadowing_class(name) is not None
)


@pytest.mark.parametrize("name", SHADOWING)
def test_reserved_field_names_are_refused_for_classes(new_db, name):
    cls = shadowing_class(name)
    assert cls is not None
    db = new_db()
    with pytest.raises(discobase.SchemaError, match="reserved") as raised:
        db.table(cls)
    assert repr(name) in str(raised.value)
    assert "save" in str(raised.value) and "order_by" in str(raised.value)
    assert db.tables == {}


@pytest.mark.parametrize("name", RESERVED_FIELD_NAMES)
async def test_reserved_field_names_are_refused_for_runtime_tables(simcord_env, new_db, name):
    db = new_db()
    await db.open()
    before = len(simcord_env.http_requests)
    with pytest.raises(discobase.SchemaError, match="reserved"):
        await db.create_table("shadowing", {"title": "str", name: "int"})
    assert len(simcord_env.http_requests) == before
    assert "shadowing" not in db.tables
    await db.close()


# -- the catalog message -----------------------------------------------------------------


def long_fields(count: int) -> dict[str, str]:
    return {f"field_with_a_long_descriptive_name_{i:03d}": "str?" for i in range(count)}


async def test_a_schema_too_long_for_the_catalog_is_refused_before_any_rest_call(
    simcord_env, new_db, guild
):
    db = new_db()
    await db.open()
    channels = storage_channels(simcord_env, guild)
    before = len(simcord_env.http_requests)
    for shards in (1, 4, 4, 4):
        with pytest.raises(discobase.SchemaError, match="too long"):
            await db.create_table("wide", long_fields(60), shards=shards)
    assert len(simcord_env.http_requests) == before
    assert storage_channels(simcord_env, guild) == channels
    assert "wide" not in db.tables
    # a wide schema that fits, over 16 shards, is accepted
    await db.create_table("wide", long_fields(12), shards=16)
    assert len(db.schema("wide").channels) == 16
    await db.close()


async def test_a_class_too_long_for_the_catalog_is_refused_when_registered(new_db):
    Wide = pydantic.create_model(
        "Wide", __base__=discobase.Table, **{n: (str | None, None) for n in long_fields(60)}
    )
    db = new_db()
    with pytest.raises(discobase.SchemaError, match="too long"):
        db.table(Wide)
    assert db.tables == {}
