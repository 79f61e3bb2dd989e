"""Concurrent ``save()``s and ``insert()``s are written together, and each on its own: one that
fails fails alone with its typed error, the others land, and the order of writes holds
(docs/library.md, "Concurrent saves")."""

from __future__ import annotations

import asyncio
import json
import zlib

import pydantic
import pytest

import discobase
from tests.conftest import reopen, rest_calls


class Member(discobase.Table):
    name: str
    n: int = 0
    email: str | None = None

    class Settings:
        name = "members"
        unique = ["email"]
        shards = 4


class Doc(discobase.Table):
    key: str
    n: int = 0

    class Settings:
        name = "docs"
        primary_key = "key"
        shards = 2


async def open_db(new_db, *tables):
    db = new_db(compaction=None)
    for table in tables:
        db.table(table)
    await db.open()
    return db


def channel_of(key: object, channels: list[int]) -> int:
    return channels[zlib.crc32(json.dumps(key).encode()) % len(channels)]


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
async def test_bad_saves_among_concurrent_ones_fail_alone_and_the_rest_survive_a_restart(
    simcord_env, new_db
):
    db = await open_db(new_db, Member)
    taken = await Member(name="old", email="taken@x").save()
    good = [Member(name=f"m{i}", n=i, email=f"m{i}@x") for i in range(30)]
    invalid = Member.model_construct(name="bad", n="not a number")
    clash_in_group = Member(name="second", email="m3@x")  # good[3] takes it first
    clash_stored = Member(name="third", email="taken@x")
    before = len(simcord_env.http_requests)
    outcomes = await asyncio.gather(
        *(m.save() for m in good[:10]),
        invalid.save(),
        *(m.save() for m in good[10:20]),
        clash_in_group.save(),
        clash_stored.save(),
        *(m.save() for m in good[20:]),
        return_exceptions=True,
    )
    assert rest_calls(simcord_env, before) == [
        f"POST /channels/{channel_of(good[0].pk, Member._engine().schema.channels)}/messages"
    ]  # the saves that land, in one message
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 3
    assert isinstance(outcomes[10], discobase.ValidationError)
    assert isinstance(outcomes[21], discobase.UniqueViolationError)
    assert (outcomes[21].field, outcomes[21].value) == ("email", "m3@x")
    assert outcomes[21].key == good[3].pk
    assert isinstance(outcomes[22], discobase.UniqueViolationError)
    assert outcomes[22].key == taken.pk
    assert all(m.revision > 0 for m in good)
    expected = {m.pk: (m.name, m.n, m.email) for m in [taken, *good]}
    assert {m.pk: (m.name, m.n, m.email) for m in await Member.find()} == expected
    db = await reopen(simcord_env, db, new_db, Member)
    assert {m.pk: (m.name, m.n, m.email) for m in await Member.find()} == expected
    # The values the failed saves wanted stay free for later ones.
    assert (await Member(name="later", email="m-free@x").save()).revision > 0
    await db.close()


async def test_concurrent_inserts_of_one_key_let_the_first_in_and_a_stored_key_stays(
    simcord_env, new_db
):
    db = await open_db(new_db, Doc)
    await Doc(key="stored", n=1).save()
    first, second, stored, other = await asyncio.gather(
        Doc(key="k", n=1).insert(),
        Doc(key="k", n=2).insert(),
        Doc(key="stored", n=2).insert(),
        Doc(key="other", n=3).insert(),
        return_exceptions=True,
    )
    assert isinstance(first, Doc) and isinstance(other, Doc)
    assert isinstance(second, discobase.UniqueViolationError) and second.value == "k"
    assert isinstance(stored, discobase.UniqueViolationError) and stored.value == "stored"
    db = await reopen(simcord_env, db, new_db, Doc)
    assert {d.key: d.n for d in await Doc.find()} == {"stored": 1, "k": 1, "other": 3}
    await db.close()


async def test_a_message_that_fails_fails_only_the_saves_it_holds(simcord_env, new_db):
    db = await open_db(new_db, Doc)
    channels = Doc._engine().schema.channels
    keys = [f"d{i}" for i in range(20)]
    lost = {key for key in keys if channel_of(key, channels) == channels[1]}
    assert 0 < len(lost) < len(keys)
    simcord_env.inject_error("POST", f"/channels/{channels[1]}/messages", status=502, times=None)
    outcomes = await asyncio.gather(
        *(Doc(key=key, n=i).save() for i, key in enumerate(keys)), return_exceptions=True
    )
    simcord_env.backend.faults.clear()
    failed = {key for key, o in zip(keys, outcomes, strict=True) if isinstance(o, Exception)}
    assert failed == lost
    assert all(
        isinstance(o, discobase.DiscordUnavailableError)
        for o in outcomes
        if isinstance(o, Exception)
    )
    landed = {key: i for i, key in enumerate(keys) if key not in lost}
    assert {d.key: d.n for d in await Doc.find()} == landed
    db = await reopen(simcord_env, db, new_db, Doc)
    assert {d.key: d.n for d in await Doc.find()} == landed
    await db.close()


async def test_writes_made_together_keep_the_order_they_were_made_in(simcord_env, new_db):
    db = await open_db(new_db, Doc)
    await Doc.insert_many([Doc(key="a"), Doc(key="b")])
    await asyncio.gather(Doc(key="a", n=1).save(), Doc(key="a").delete())
    await asyncio.gather(Doc(key="b", n=2).save(), Doc(key="b").delete(), Doc(key="b", n=3).save())
    assert {d.key: d.n for d in await Doc.find()} == {"b": 3}
    stored = await Doc.get("b")
    saved, conditional = await asyncio.gather(
        Doc(key="b", n=4).save(),
        stored.update(n=5, if_revision=stored.revision),
        return_exceptions=True,
    )  # the update waits for the save before it, which changed the record: a conflict
    assert isinstance(saved, Doc) and isinstance(conditional, discobase.ConflictError)
    db = await reopen(simcord_env, db, new_db, Doc)
    assert {d.key: d.n for d in await Doc.find()} == {"b": 4}
    await db.close()


async def test_a_record_saved_twice_at_once_gets_one_generated_key(simcord_env, new_db):
    db = await open_db(new_db, Member)
    record = Member(name="twice")
    first, second = await asyncio.gather(record.save(), record.save())
    assert first is record and second is record and record.pk is not None
    assert [m.pk for m in await Member.find()] == [record.pk]
    db = await reopen(simcord_env, db, new_db, Member)
    assert [m.pk for m in await Member.find()] == [record.pk]
    await db.close()


async def test_a_save_sends_the_record_as_it_was_when_save_was_called(simcord_env, new_db):
    db = await open_db(new_db, Doc)
    record = Doc(key="before", n=1)
    saving = asyncio.ensure_future(record.save())
    other = asyncio.ensure_future(Doc(key="other").save())
    await asyncio.sleep(0)  # both are queued; their writer has not taken them yet
    record.key, record.n = "after", 2
    assert (await saving) is record and record.revision > 0
    await other
    assert {d.key: d.n for d in await Doc.find()} == {"before": 1, "other": 0}
    await db.close()


class Note(discobase.Table):
    text: str

    class Settings:
        name = "notes"
        shards = 1  # the other write is queued between the two saves, in their writer


async def test_a_new_record_saved_around_other_writes_is_stored_once(simcord_env, new_db):
    db = await open_db(new_db, Note)
    other = await Note(text="other").save()
    record = Note(text="r")
    first, conditional, second = await asyncio.gather(
        record.save(), other.save(if_revision=other.revision), record.save()
    )  # the second save joins a new waiter: the key is the first one's
    assert first is record and second is record and isinstance(conditional, Note)
    db = await reopen(simcord_env, db, new_db, Note)
    assert sorted(n.text for n in await Note.find()) == ["other", "r"]
    await db.close()


async def test_an_insert_is_not_refused_for_a_save_of_its_key_made_after_it(simcord_env, new_db):
    db = await open_db(new_db, Doc)
    other = await Doc(key="other").save()
    inserted, _, saved = await asyncio.gather(
        Doc(key="k", n=1).insert(),
        other.save(if_revision=other.revision),  # the insert's and the save's waiters part
        Doc(key="k", n=2).save(),
        return_exceptions=True,
    )
    assert isinstance(inserted, Doc) and isinstance(saved, Doc)
    db = await reopen(simcord_env, db, new_db, Doc)
    assert {d.key: d.n for d in await Doc.find()} == {"other": 0, "k": 2}
    await db.close()


class Shown(discobase.Table):
    name: str
    secret: str = pydantic.Field(default="", exclude=True)  # never stored
    n: int = 0

    class Settings:
        name = "shown"


class Scaled(discobase.Table):
    name: str
    secret: str = ""
    n: int = 0

    class Settings:
        name = "scaled"

    @pydantic.field_serializer("n")
    def tenfold(self, n: int) -> int:
        return n * 10


@pytest.mark.parametrize("table", [Shown, Scaled])
async def test_concurrent_saves_store_what_a_save_alone_stores(simcord_env, new_db, table):
    """Saves written together dump their records as ``model_dump`` does, as one alone does."""
    db = await open_db(new_db, table)
    alone = await table(name="alone", secret="s", n=1).save()
    together = await asyncio.gather(
        *(table(name=f"t{i}", secret="s", n=i).save() for i in range(5))
    )
    stored = [table.model_validate(r.model_dump(mode="json")) for r in [alone, *together]]
    expected = {
        r.pk: (s.name, s.secret, s.n) for r, s in zip([alone, *together], stored, strict=True)
    }
    assert {r.pk: (r.name, r.secret, r.n) for r in await table.find()} == expected
    db = await reopen(simcord_env, db, new_db, table)
    assert {r.pk: (r.name, r.secret, r.n) for r in await table.find()} == expected
    await db.close()
