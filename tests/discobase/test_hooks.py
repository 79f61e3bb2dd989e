"""Write hooks: ``before_save``/``after_save``/``before_delete``/``after_delete``, sync or async,
in the order docs/library.md ("Hooks") gives; a before_ hook that raises stores nothing."""

from __future__ import annotations

from typing import ClassVar

import pytest

import discobase
from tests.conftest import rest_calls


class Note(discobase.Table):
    key: str
    text: str = ""
    slug: str = ""
    events: ClassVar[list[tuple[str, str, int]]] = []
    fail: ClassVar[set[tuple[str, str]]] = set()

    class Settings:
        primary_key = "key"
        unique = ["text"]

    def before_save(self) -> None:  # sync
        Note.events.append(("before_save", self.key, self.revision))
        if ("before_save", self.key) in Note.fail:
            raise RuntimeError(f"no {self.key}")
        self.slug = self.text.lower().replace(" ", "-")

    async def after_save(self) -> None:  # async
        stored = await Note.get(self.key)
        Note.events.append(("after_save", self.key, stored.revision))
        if ("after_save", self.key) in Note.fail:
            raise RuntimeError(f"after {self.key}")

    async def before_delete(self) -> None:
        Note.events.append(("before_delete", self.key, self.revision))
        if ("before_delete", self.key) in Note.fail:
            raise RuntimeError(f"keep {self.key}")

    def after_delete(self) -> None:
        Note.events.append(("after_delete", self.key, self.revision))


@pytest.fixture
async def db(simcord_env, new_db):
    Note.events = []
    Note.fail = set()
    database = new_db()
    database.table(Note)
    await database.open()
    yield database
    await database.close()


def posts(env, since: int) -> list[str]:
    return [call for call in rest_calls(env, since) if call.startswith("POST")]


async def test_save_runs_before_save_then_writes_then_after_save(simcord_env, db):
    note = Note(key="a", text="Hello World")

    await note.save()

    stored = await Note.get("a")
    assert stored.slug == "hello-world"  # what before_save set was stored
    assert note.slug == "hello-world"
    # before_save saw no revision yet; after_save found the write stored, at its revision
    assert Note.events == [("before_save", "a", 0), ("after_save", "a", note.revision)]
    assert note.revision > 0


async def test_a_before_save_that_raises_writes_nothing(simcord_env, db):
    Note.fail.add(("before_save", "a"))
    since = len(simcord_env.http_requests)

    with pytest.raises(RuntimeError, match="no a"):
        await Note(key="a", text="x").save()
    with pytest.raises(RuntimeError, match="no a"):
        await Note(key="a", text="x").insert()

    assert posts(simcord_env, since) == []
    assert await Note.count() == 0
    assert [e[0] for e in Note.events] == ["before_save", "before_save"]


async def test_an_after_save_that_raises_is_an_after_hook_error_and_the_write_stays(
    simcord_env, new_db, db
):
    Note.fail.add(("after_save", "a"))

    with pytest.raises(discobase.AfterHookError) as raised:
        await Note(key="a", text="kept").save()

    assert raised.value.hook == "after_save"
    assert raised.value.table == "note"
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert "the write had landed" in str(raised.value)
    assert (await Note.get("a")).text == "kept"


async def test_a_failed_write_runs_no_after_save(simcord_env, db):
    await Note(key="a", text="taken").save()
    Note.events = []

    with pytest.raises(discobase.UniqueViolationError):
        await Note(key="b", text="taken").save()

    assert Note.events == [("before_save", "b", 0)]


async def test_update_runs_the_hooks_on_the_updated_record(simcord_env, db):
    note = await Note(key="a", text="one").save()
    first = note.revision
    Note.events = []

    await note.update(text="Two Words")

    assert note.slug == "two-words"  # set by before_save, copied back
    assert (await Note.get("a")).slug == "two-words"
    assert Note.events == [("before_save", "a", first), ("after_save", "a", note.revision)]


async def test_an_update_whose_before_save_raises_changes_nothing(simcord_env, db):
    note = await Note(key="a", text="one").save()
    Note.fail.add(("before_save", "a"))
    since = len(simcord_env.http_requests)

    with pytest.raises(RuntimeError):
        await note.update(text="two")

    assert posts(simcord_env, since) == []
    assert note.text == "one"
    assert (await Note.get("a")).text == "one"


async def test_a_before_save_may_not_change_the_key_of_an_update(simcord_env, db):
    class Renamer(discobase.Table):
        key: str
        n: int = 0

        class Settings:
            primary_key = "key"

        def before_save(self) -> None:
            self.key += "!"

    db.table(Renamer)
    await db.build_tables()
    record = await Renamer(key="x").save()  # save: the key the hook gives is the key
    assert record.key == "x!"
    assert [r.key for r in await Renamer.find()] == ["x!"]
    since = len(simcord_env.http_requests)

    with pytest.raises(discobase.ValidationError, match="cannot change the primary key"):
        await record.update(n=1)
    assert posts(simcord_env, since) == []
    assert (record.key, record.n) == ("x!", 0)
    assert [(r.key, r.n) for r in await Renamer.find()] == [("x!", 0)]


async def test_delete_hooks_and_a_before_delete_that_raises(simcord_env, db):
    note = await Note(key="a", text="x").save()
    revision = note.revision
    Note.fail.add(("before_delete", "a"))
    Note.events = []
    since = len(simcord_env.http_requests)

    with pytest.raises(RuntimeError, match="keep a"):
        await note.delete()
    assert posts(simcord_env, since) == []
    assert await Note.count() == 1

    Note.fail.clear()
    await note.delete()
    assert await Note.count() == 0
    assert Note.events == [
        ("before_delete", "a", revision),
        ("before_delete", "a", revision),
        ("after_delete", "a", 0),
    ]


async def test_insert_many_runs_every_before_save_first_and_one_raising_stores_none(
    simcord_env, db
):
    Note.fail.add(("before_save", "c"))
    since = len(simcord_env.http_requests)

    with pytest.raises(RuntimeError, match="no c"):
        await Note.insert_many([Note(key=k, text=k.upper()) for k in "abcd"])

    assert posts(simcord_env, since) == []
    assert await Note.count() == 0
    assert [e[:2] for e in Note.events] == [("before_save", k) for k in "abc"]


async def test_insert_many_after_save_errors_are_collected(simcord_env, db):
    Note.fail |= {("after_save", "a"), ("after_save", "c")}

    with pytest.raises(discobase.AfterHookError) as raised:
        await Note.insert_many([{"key": k, "text": f"Text {k}"} for k in "abc"])

    assert [str(error) for error in raised.value.errors] == ["after a", "after c"]
    assert {n.key: n.slug for n in await Note.find()} == {
        "a": "text-a",
        "b": "text-b",
        "c": "text-c",
    }
    assert [e[:2] for e in Note.events] == [
        *[("before_save", k) for k in "abc"],
        *[("after_save", k) for k in "abc"],
    ]


async def test_hook_names_are_reserved_field_names(simcord_env, db):
    with pytest.raises(discobase.SchemaError, match="reserved"):
        await db.create_table("bad", {"after_save": str})
