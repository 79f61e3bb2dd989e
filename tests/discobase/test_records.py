"""Tables declared as classes: save, find, get, update, delete, keys, constraints, reloads."""

from __future__ import annotations

import asyncio
from typing import Any

import pydantic
import pytest
import simcord

import discobase
from tests.conftest import make_bot, rest_calls


class User(discobase.Table):
    name: str
    age: int = 0
    email: str | None = None

    class Settings:
        indexes = ["age"]
        unique = ["email"]


class Pet(discobase.Table):
    tag: str
    legs: int

    class Settings:
        name = "pets"
        primary_key = "tag"


async def open_db(new_db, *tables):
    db = new_db()
    for table in tables:
        db.table(table)
    await db.open()
    return db


async def reopen(env: simcord.Env, db, new_db, *tables):
    """Close ``db``, restart the bot (a new process), and open a fresh Database."""
    await db.close()
    await env.restart_bot(make_bot())
    return await open_db(new_db, *tables)


async def test_save_then_find_returns_the_record_with_a_generated_key(new_db):
    db = await open_db(new_db, User)
    alice = await User(name="alice", age=30).save()
    assert isinstance(alice.pk, str) and len(alice.pk) >= 16
    found = await User.find(name="alice")
    assert found == [alice]
    assert found[0].pk == alice.pk
    assert await User.get(alice.pk) == alice
    await db.close()


async def test_find_is_an_and_of_all_criteria(new_db):
    db = await open_db(new_db, User)
    await User(name="a", age=1).save()
    await User(name="a", age=2).save()
    await User(name="b", age=1).save()
    assert [(u.name, u.age) for u in await User.find(name="a", age=1)] == [("a", 1)]
    assert await User.find(name="b", age=2) == []
    await db.close()


async def test_expressions_order_limit_offset(new_db):
    db = await open_db(new_db, User)
    for i, name in enumerate(["dave", "carol", "bob", "alice", "anna"]):
        await User(name=name, age=20 + i).save()
    adults = await User.find(User.age >= 22, order_by="name")
    assert [u.name for u in adults] == ["alice", "anna", "bob"]
    assert [u.name for u in await User.find(User.name.startswith("a"), order_by="-age")] == [
        "anna",
        "alice",
    ]
    assert [u.age for u in await User.find(order_by=User.age.desc(), limit=2, offset=1)] == [23, 22]
    assert [u.name for u in await User.find(User.age.in_([20, 24]))] == ["dave", "anna"]
    assert [u.name for u in await User.find(User.name.contains("ro"))] == ["carol"]
    assert [u.name for u in await User.find(User.age != 20, User.age < 22)] == ["carol"]
    either = await User.find((User.name == "bob") | (User.age == 20), order_by="age")
    assert [u.name for u in either] == ["dave", "bob"]
    assert [u.name for u in await User.find(~(User.age <= 23))] == ["anna"]
    assert await User.count(User.age > 21) == 3
    assert await User.count() == 5
    assert (await User.find_one(User.age > 100)) is None
    await db.close()


async def test_a_subclass_queries_by_inherited_fields_and_keeps_their_defaults(new_db):
    class Staff(User):
        role: str = "clerk"

        class Settings:
            name = "staff"

    db = await open_db(new_db, Staff)
    assert (Staff(name="x").age, Staff(name="x").role) == (0, "clerk")
    await Staff(name="ann", age=40).save()
    await Staff(name="bo", age=20, role="boss").save()
    assert [s.name for s in await Staff.find(Staff.age > 30)] == ["ann"]
    assert [s.name for s in await Staff.find(Staff.role == "boss")] == ["bo"]
    found = await Staff.get((await Staff.find_one(name="ann")).pk)  # type: ignore[union-attr]
    assert (found.age, found.role, found.email) == (40, "clerk", None)
    assert isinstance(User.age, discobase.FieldRef)  # the base class's references still work
    await db.close()


async def test_private_attributes_and_model_post_init_of_a_table_class_hold(new_db):
    class Tally(discobase.Table):
        name: str
        _seen: list[str] = pydantic.PrivateAttr(default_factory=list)
        _label: str = pydantic.PrivateAttr(default="")

        def model_post_init(self, context: object, /) -> None:
            self._label = self.name.upper()

    class Plain(discobase.Table):
        name: str
        _note: str = pydantic.PrivateAttr(default="n")

    class Sub(Plain):
        size: int = 0
        _extra: int = pydantic.PrivateAttr(default=7)

    db = await open_db(new_db, Tally, Plain, Sub)
    first, second = Tally(name="a"), Tally(name="b")
    first._seen.append("x")
    assert (first._label, second._label, second._seen) == ("A", "B", [])
    plain, sub = Plain(name="p"), Sub(name="s")
    assert (plain._note, sub._note, sub._extra) == ("n", "n", 7)
    await asyncio.gather(*(r.save() for r in (first, second, plain, Plain(name="q"), sub)))
    assert len({first.pk, second.pk, plain.pk, sub.pk}) == 4  # each its own generated key
    assert sorted(t._label for t in await Tally.find()) == ["A", "B"]
    assert [(s.name, s._extra, s.revision > 0) for s in await Sub.find()] == [("s", 7, True)]
    await db.close()


def test_a_validator_that_returns_another_record_is_warned_about_as_pydantic_does() -> None:
    class Odd(discobase.Table):
        name: str

        @pydantic.model_validator(mode="wrap")
        @classmethod
        def other(cls, data: Any, handler: Any) -> Any:
            handler(data)
            return cls.model_construct(name="other")

    with pytest.warns(UserWarning, match="returning a value other than `self`"):
        odd = Odd(name="x")
    assert odd.name == "x"
    with pytest.raises(discobase.ValidationError):
        Odd(name=3)


async def test_a_registered_class_outlives_close_and_a_drop_frees_its_name(new_db):
    db = await open_db(new_db, Pet)
    await db.create_table("notes", {"text": str})
    await Pet(tag="a", legs=4).save()
    await db.close()
    assert db.tables["pets"] is Pet  # still registered while closed
    with pytest.raises(TypeError):
        db.tables["pets"] = User  # type: ignore[index]  # register with @db.table instead
    await db.open()
    assert await Pet.count() == 1 and set(db.tables) == {"pets", "notes"}
    await db.drop_table("pets")
    assert set(db.tables) == {"notes"}
    with pytest.raises(discobase.TableNotReadyError):
        await Pet.count()
    db.table(Pet)  # the name is free again
    with pytest.raises(discobase.TableExistsError):
        db.table(Pet)
    await db.build_tables()
    assert await Pet.count() == 0
    await db.drop_table("notes")
    assert set(db.tables) == {"pets"}
    await db.close()


async def test_query_values_are_converted_to_the_field_type(new_db):
    db = await open_db(new_db, User)
    await User(name="x", age=3).save()
    assert [u.name for u in await User.find(age="3")] == ["x"]
    with pytest.raises(discobase.ValidationError, match="age"):
        await User.find(age="three")
    with pytest.raises(discobase.UnknownFieldError) as error:
        await User.find(height=3)
    assert error.value.field == "height" and "age" in error.value.known
    with pytest.raises(discobase.UnknownFieldError):
        await User.find(order_by="height")
    with pytest.raises(discobase.ValidationError, match="contains works on text"):
        await User.find(User.age.contains(3))
    await db.close()


async def test_all_iterates_and_find_unique_refuses_ambiguity(new_db):
    db = await open_db(new_db, User)
    await User.insert_many([User(name="p", age=1), User(name="q", age=1), User(name="r", age=2)])
    assert [u.name async for u in User.all(order_by="name")] == ["p", "q", "r"]
    assert (await User.find_unique(age=2)).name == "r"
    with pytest.raises(discobase.AmbiguousResultError) as error:
        await User.find_unique(age=1)
    assert error.value.count == 2
    await db.close()


async def test_primary_key_save_replaces_and_insert_refuses(new_db):
    db = await open_db(new_db, Pet)
    rex = await Pet(tag="rex", legs=4).save()
    assert rex.pk == "rex"
    await Pet(tag="rex", legs=3).save()
    assert (await Pet.get("rex")).legs == 3
    assert await Pet.count() == 1
    with pytest.raises(discobase.UniqueViolationError):
        await Pet(tag="rex", legs=5).insert()
    assert (await Pet.get("rex")).legs == 3
    with pytest.raises(discobase.RecordNotFoundError):
        await Pet.get("nobody")
    await db.close()


async def test_update_and_delete(new_db):
    db = await open_db(new_db, User)
    bob = await User(name="bob", age=1).save()
    await bob.update(age=2)
    assert bob.age == 2
    assert (await User.get(bob.pk)).age == 2
    with pytest.raises(discobase.UnknownFieldError):
        await bob.update(height=3)
    with pytest.raises(discobase.ValidationError):
        await bob.update(age="old")
    assert (await User.get(bob.pk)).age == 2
    await bob.delete()
    assert await User.find(name="bob") == []
    with pytest.raises(discobase.RecordNotFoundError):
        await bob.delete()
    with pytest.raises(discobase.RecordNotFoundError):
        await bob.update(age=5)
    assert await User.count() == 0
    await db.close()


async def test_returned_records_are_copies(new_db):
    db = await open_db(new_db, User)
    alice = await User(name="alice", age=1).save()
    alice.age = 99  # not saved
    assert (await User.get(alice.pk)).age == 1
    found = (await User.find(name="alice"))[0]
    found.age = 50
    assert (await User.get(alice.pk)).age == 1
    await db.close()


async def test_unique_constraint_is_enforced_and_changes_nothing(new_db, simcord_env):
    db = await open_db(new_db, User)
    await User(name="a", email="a@x").save()
    before = len(simcord_env.http_requests)
    with pytest.raises(discobase.UniqueViolationError) as error:
        await User(name="b", email="a@x").save()
    assert (error.value.field, error.value.value) == ("email", "a@x")
    assert len(simcord_env.http_requests) == before  # refused before any REST call
    assert await User.count() == 1
    # two concurrent saves of one unique value: exactly one wins
    results = await asyncio.gather(
        User(name="c", email="c@x").save(),
        User(name="d", email="c@x").save(),
        return_exceptions=True,
    )
    assert sum(isinstance(r, discobase.UniqueViolationError) for r in results) == 1
    assert await User.count(email="c@x") == 1
    with pytest.raises(discobase.UniqueViolationError):
        await User.insert_many([User(name="e", email="e@x"), User(name="f", email="e@x")])
    assert await User.count() == 2
    await db.close()


async def test_bad_input_raises_typed_errors_and_writes_nothing(new_db, simcord_env):
    db = await open_db(new_db, User)
    await User(name="keep", age=1).save()
    before = len(simcord_env.http_requests)
    with pytest.raises(discobase.ValidationError) as error:
        User(name="x", age="not a number")
    assert error.value.errors and error.value.errors[0]["loc"] == ("age",)
    with pytest.raises(discobase.ValidationError):
        User(name="x", shoe_size=3)  # unknown field
    user = User(name="y")
    with pytest.raises(discobase.ValidationError):
        user.age = "nope"
    with pytest.raises(discobase.RecordTooLargeError) as too_large:
        await User(name="z" * (db.size_limit + 1)).save()
    assert too_large.value.limit == db.size_limit
    assert len(simcord_env.http_requests) == before
    assert [u.name for u in await User.find()] == ["keep"]
    await db.close()


async def test_reload_shows_exactly_the_acknowledged_state(simcord_env, new_db):
    db = await open_db(new_db, User, Pet)
    users = [await User(name=f"u{i}", age=i).save() for i in range(5)]
    await users[1].delete()
    await users[2].update(age=42)
    await Pet.insert_many([Pet(tag="a", legs=1), Pet(tag="b", legs=2)])
    await Pet(tag="a", legs=7).save()
    db2 = await reopen(simcord_env, db, new_db, User, Pet)
    assert sorted((u.name, u.age, u.pk) for u in await User.find()) == sorted(
        (u.name, u.age, u.pk) for u in [users[0], users[2], users[3], users[4]]
    )
    assert (await User.get(users[2].pk)).age == 42
    assert {p.tag: p.legs for p in await Pet.find()} == {"a": 7, "b": 2}
    await db2.close()


async def test_reads_make_no_rest_call(new_db, simcord_env):
    db = await open_db(new_db, User)
    await User.insert_many([User(name=f"n{i}", age=i % 7) for i in range(300)])
    before = len(simcord_env.http_requests)
    assert await User.count(age=3) == len([i for i in range(300) if i % 7 == 3])
    await User.find(User.age > 2, order_by="-age", limit=10)
    await User.find(User.name.contains("9"))
    [u async for u in User.all()]
    await User.find_one(name="n5")
    assert rest_calls(simcord_env, before) == []
    await db.close()


async def test_thousand_concurrent_saves_batch_into_few_calls(new_db, simcord_env):
    db = await open_db(new_db, User)
    before = len(simcord_env.http_requests)
    saved = await asyncio.gather(*(User(name=f"c{i}", age=i).save() for i in range(1000)))
    calls = rest_calls(simcord_env, before)
    assert len(calls) < 100, calls
    assert await User.count() == 1000
    db2 = await reopen(simcord_env, db, new_db, User)
    assert {u.pk for u in await User.find()} == {u.pk for u in saved}
    await db2.close()


async def test_each_awaited_save_costs_one_call(new_db, simcord_env):
    db = await open_db(new_db, User)
    before = len(simcord_env.http_requests)
    for i in range(10):
        await User(name=f"s{i}").save()
    sends = {f"POST /channels/{s.channel_id}/messages" for s in db.tables["user"]._engine().shards}
    calls = rest_calls(simcord_env, before)
    assert len(calls) == 10 and set(calls) <= sends
    assert len(set(calls)) == len(sends) == 6  # awaited saves take turns over the default shards
    await db.close()


async def test_a_table_class_must_be_attached(new_db):
    class Loose(discobase.Table):
        x: int

    with pytest.raises(discobase.NotConnectedError):
        await Loose(x=1).save()
    with pytest.raises(discobase.NotConnectedError):
        await Loose.find()
    db = new_db()
    with pytest.raises(TypeError):
        db.table(int)


async def test_nested_values_of_returned_records_are_copies_too(new_db):
    class Bag(discobase.Table):
        tags: list[str]
        meta: dict[str, int] | None = None

    db = await open_db(new_db, Bag)
    bag = await Bag(tags=["a"], meta={"x": 1}).save()
    found = await Bag.get(bag.pk)
    found.tags.append("b")
    found.meta["x"] = 2
    bag.tags.append("c")
    stored = await Bag.get(bag.pk)
    assert stored.tags == ["a"] and stored.meta == {"x": 1}
    await db.close()


class Guest(discobase.Table):
    name: str

    class Settings:
        shards = 4


@pytest.mark.parametrize("save_forms_first", [False, True])
async def test_a_save_racing_insert_many_of_the_same_new_record_stores_it_once(
    simcord_env, new_db, save_forms_first
):
    """docs/library.md, "Records": one of the two may fail, with its typed error; the
    record is never stored under two keys."""
    db = await open_db(new_db, Guest)
    outcomes: list[object] = []
    for i in range(8):
        guest = Guest(name=f"g{i}")
        busy = [asyncio.ensure_future(Guest(name="other").save()) for _ in range(i % 4)]
        saving = asyncio.ensure_future(guest.save())
        if save_forms_first:
            await asyncio.sleep(0)  # the save's message forms: the record has its key
        inserting = asyncio.ensure_future(Guest.insert_many([guest]))
        done = await asyncio.gather(saving, inserting, return_exceptions=True)
        await asyncio.gather(*busy)
        assert not all(isinstance(o, Exception) for o in done), done
        for outcome in done:
            if isinstance(outcome, Exception):
                assert isinstance(
                    outcome, (discobase.UniqueViolationError, discobase.ValidationError)
                ), outcome
        outcomes += done
        [stored] = await Guest.find(name=f"g{i}")
        assert stored.pk == guest.pk
    if save_forms_first:  # the insert finds the key taken by the save
        assert sum(isinstance(o, discobase.UniqueViolationError) for o in outcomes) == 8
    db = await reopen(simcord_env, db, new_db, Guest)
    assert sorted(g.name for g in await Guest.find(Guest.name != "other")) == [
        f"g{i}" for i in range(8)
    ]
    await db.close()
