"""discobase 1.0's API on this version: its names, its errors, and its behaviour behind
``compat="1.0"`` (docs/migrating-from-1.0.md)."""

from __future__ import annotations

import asyncio
import gc
import inspect

import pytest

import discobase
from discobase.exceptions import (
    DatabaseCorruptionError,
    DatabaseLookupError,
    DatabaseStorageError,
    DatabaseTableError,
    DiscobaseError,
    NotConnectedError,
)
from tests.conftest import make_bot


def test_the_exceptions_module_has_1_0s_names_in_this_versions_hierarchy():
    assert DiscobaseError is discobase.DiscobaseError
    assert NotConnectedError is discobase.NotConnectedError
    assert discobase.exceptions.DatabaseTableError is discobase.DatabaseTableError
    caught_by = {
        discobase.SchemaError: DatabaseTableError,
        discobase.TableExistsError: DatabaseTableError,
        discobase.TableNotFoundError: DatabaseTableError,
        discobase.NotATableError: DatabaseTableError,
        discobase.TableNotReadyError: DatabaseTableError,
        discobase.UnknownFieldError: DatabaseLookupError,
        discobase.RecordNotFoundError: DatabaseLookupError,
        discobase.AmbiguousResultError: DatabaseLookupError,
        discobase.ValidationError: DatabaseStorageError,
        discobase.UniqueViolationError: DatabaseStorageError,
        discobase.RecordTooLargeError: DatabaseStorageError,
        discobase.StorageCorruptError: DatabaseCorruptionError,
        discobase.UnsupportedFormatError: DatabaseCorruptionError,
        discobase.SchemaMismatchError: DatabaseCorruptionError,
    }
    for error, category in caught_by.items():
        assert issubclass(error, category), (error, category)
    assert issubclass(discobase.NotATableError, TypeError)
    assert issubclass(discobase.TableNotReadyError, NotConnectedError)
    assert discobase.__license__ == "MIT"


async def test_1_0_except_clauses_catch_what_this_version_raises(new_db):
    db = new_db()

    @db.table
    class Note(discobase.Table):
        text: str

    await db.open()
    note = await Note(text="a").save()
    with pytest.raises(DatabaseLookupError):
        await Note.get("no such key")
    with pytest.raises(DatabaseLookupError):
        await Note.find(colour="red")
    with pytest.raises(DatabaseStorageError):
        await note.update(text=["not", "text"])
    with pytest.raises(DatabaseTableError):
        await db.create_table("note", {"text": str})
    await db.close()

    changed = new_db()

    @changed.table
    class Note(discobase.Table):  # type: ignore[no-redef]
        text: int

    with pytest.raises(DatabaseCorruptionError):
        await changed.open()


async def test_name_and_guild_are_the_bound_guilds(simcord_env, guild, new_db):
    simcord_env.create_guild("another")
    db = new_db()
    assert db.guild is None and db.name is None
    await db.open()
    assert db.guild is not None and db.guild.id == guild.id
    assert db.name == "storage"
    by_name = discobase.Database("storage", bot=simcord_env.bot)
    assert by_name.name == "storage" and by_name.guild is None
    await db.close()


async def test_a_class_registered_after_open_is_attached_by_build_tables(simcord_env, new_db):
    db = new_db(logging=True)
    await db.init()
    await db.create_table("late", {"word": str})
    await db.tables["late"](word="stored before").save()

    @db.table
    class Late(discobase.Table):
        word: str

    @db.table
    class Fresh(discobase.Table):
        n: int

    with pytest.raises(discobase.TableNotReadyError, match="build_tables"):
        await Fresh(n=1).save()
    with pytest.raises(discobase.TableNotReadyError):
        await Late.find()
    await db.build_tables()
    await db.build_tables()  # safe to repeat
    assert db.tables["late"] is Late and db.tables["fresh"] is Fresh
    assert [w.word for w in await Late.find()] == ["stored before"]
    await Fresh(n=1).commit()
    assert [f.n for f in await Fresh.find()] == [1]
    await db.close()
    with pytest.raises(NotConnectedError) as closed:
        await Fresh.find()
    assert not isinstance(closed.value, DatabaseTableError)  # as in 1.0: only "not connected"


async def test_build_tables_opens_a_database_that_is_not_open(new_db):
    db = new_db()

    @db.table
    class Early(discobase.Table):
        n: int

    await db.build_tables()
    assert db.is_open
    await Early(n=3).save()
    assert await Early.count() == 1
    await db.close()


async def test_table_refuses_what_1_0_refused(new_db):
    db = new_db()

    class Bar(discobase.Table):
        name: str

    with pytest.raises(DatabaseTableError):
        await Bar(name="x").save()  # never registered
    with pytest.raises(discobase.NotATableError):
        db.table(dict)  # type: ignore[type-var]
    db.table(Bar)
    with pytest.raises(discobase.TableExistsError):
        db.table(Bar)

    class Other(discobase.Table):
        x: int

        class Settings:
            name = "bar"

    with pytest.raises(discobase.TableExistsError):
        db.table(Other)
    assert db.tables["bar"] is Bar


async def test_a_class_named_catalog_is_refused_and_the_guild_keeps_one_catalog(guild, new_db):
    db = new_db()

    with pytest.raises(discobase.SchemaError, match="reserved"):

        @db.table
        class Catalog(discobase.Table):
            entry: str

    assert "catalog" not in db.tables
    await db.open()
    names = [channel.name for channel in guild.channels.values()]
    assert names.count("catalog") == 1
    await db.close()


async def test_a_dropped_class_leaves_db_tables(new_db):
    db = new_db()

    @db.table
    class Gone(discobase.Table):
        n: int

    await db.open()
    await Gone(n=1).save()
    await db.drop_table("gone")
    assert "gone" not in db.tables
    with pytest.raises(discobase.TableNotReadyError):
        await Gone.find()
    await db.close()


async def test_clean_removes_every_trace_and_open_starts_empty(guild, new_db):
    db = new_db()

    @db.table
    class Item(discobase.Table):
        n: int

    await db.open()
    await db.create_table("runtime", {"x": int})
    await Item(n=1).save()
    before = set(guild.channels)
    await db.clean()
    assert not db.is_open
    assert not any(n in ("discobase", "catalog", "item", "runtime") for n in guild.channels)
    assert set(guild.channels) < before
    assert list(db.tables) == ["item"]  # registered classes stay
    with pytest.raises(NotConnectedError):
        await Item.find()
    await db.open()
    assert await Item.count() == 0 and "runtime" not in db.tables
    await db.close()


async def test_find_unique_strict(new_db):
    db = new_db()

    @db.table
    class Pet(discobase.Table):
        name: str
        kind: str

    await db.open()
    await Pet(name="rex", kind="dog").save()
    await Pet(name="fido", kind="dog").save()
    assert await Pet.find_unique(name="nobody") is None
    assert await Pet.find_unique(name="nobody", strict=False) is None
    with pytest.raises(discobase.RecordNotFoundError, match="nobody") as missing:
        await Pet.find_unique(name="nobody", strict=True)
    assert isinstance(missing.value, DatabaseLookupError)
    for strict in (None, False, True):
        with pytest.raises(discobase.AmbiguousResultError):
            await Pet.find_unique(kind="dog", strict=strict)
    assert (await Pet.find_unique(name="rex", strict=True)).kind == "dog"  # type: ignore[union-attr]
    await db.close()


async def test_compat_1_0_find_unique_raises_on_a_miss_and_takes_the_first_when_not_strict(
    new_db,
):
    db = new_db(compat="1.0")

    @db.table
    class Pet(discobase.Table):
        name: str
        kind: str

    await db.open()
    await Pet(name="rex", kind="dog").save()
    await Pet(name="fido", kind="dog").save()
    with pytest.raises(DatabaseLookupError):
        await Pet.find_unique(name="nobody")
    with pytest.raises(DatabaseLookupError):
        await Pet.find_unique(kind="dog")
    assert await Pet.find_unique(name="nobody", strict=False) is None
    first = await Pet.find_unique(kind="dog", strict=False)
    assert first is not None and first.name in ("rex", "fido")
    await db.close()


async def test_compat_1_0_writes_are_tasks_that_run_unawaited(simcord_env, new_db):
    with pytest.raises(ValueError, match="compat"):
        new_db(compat="0.9")
    plain = new_db()

    @plain.table
    class Plain(discobase.Table):
        n: int

    await plain.open()
    work = Plain(n=1).save()
    assert inspect.iscoroutine(work)
    await work
    await plain.close()

    db = new_db(compat="1.0")

    @db.table
    class Counter(discobase.Table):
        n: int

    await db.open()
    kept = Counter(n=1)
    task = kept.save()
    assert isinstance(task, asyncio.Task)
    assert await task is kept
    Counter(n=2).save()  # never awaited: 1.0 code that forgot the await still wrote
    kept.n = 10
    kept.commit()
    await db.close()  # waits for the writes still running

    await simcord_env.restart_bot(make_bot())
    reopened = new_db()
    reopened.table(Counter)
    await reopened.open()
    assert sorted(c.n for c in await Counter.find()) == [2, 10]
    await reopened.close()


async def test_a_failed_open_on_a_ready_client_leaves_no_unretrieved_error(simcord_env):
    db = discobase.Database("no such guild", retry=discobase.RetryPolicy(base_delay=0))
    await simcord_env.restart_bot(db.bot)  # the database's own client, ready at once
    closed = asyncio.Event()

    async def start(token: str) -> None:
        await closed.wait()

    async def close() -> None:
        closed.set()

    db.bot.start = start  # type: ignore[method-assign]
    db.bot.close = close  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    unhandled: list[str] = []
    loop.set_exception_handler(lambda _, context: unhandled.append(context["message"]))
    failure = None
    try:
        client = db.login_task("token")
        try:
            await db.wait_ready()
        except discobase.GuildNotFoundError as error:
            failure = type(error)
        await db.close()
        await client  # the client ran until close()
        del db, client  # an open() task nobody awaited reports its error when collected
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert failure is discobase.GuildNotFoundError
    assert unhandled == []
