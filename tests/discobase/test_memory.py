"""How loaded records are held: compact rows, with records built on read that behave as before.

A loaded table holds each record as a row of its values, and an index maps a value held by one
record to that record's row alone; reads build a fresh record each time. These tests pin the memory a
loaded record costs and the behaviours that building records from rows must keep: copies
independent of storage, classes whose validation does more than check fields, private
attributes, index buckets of every size, and stored text Python's JSON parser alone reads.
"""

from __future__ import annotations

import datetime as dt
import gc
import tracemalloc

import pydantic
import pytest

import discobase
from tests.conftest import make_bot, past_horizon, reopen

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Reading(discobase.Table):
    name: str
    n: int
    x: float
    flag: bool
    at: dt.datetime

    class Settings:
        indexes = ["name"]


def reading(number: int) -> Reading:
    return Reading(
        name=f"reading-{number:06d}",
        n=number * 7919,
        x=number / 7,
        flag=number % 2 == 0,
        at=EPOCH + dt.timedelta(seconds=number),
    )


async def refused_open(
    simcord_env, new_db, cls: type[discobase.Table], match: str
) -> discobase.SchemaMismatchError:
    """What a new process's open of the database with ``cls`` raises: the stored records
    do not fit it."""
    await simcord_env.restart_bot(make_bot())
    db = new_db()
    db.table(cls)
    with pytest.raises(discobase.SchemaMismatchError, match=match) as raised:
        await db.open()
    await db.close()
    return raised.value


async def compacted_then_restarted(
    simcord_env, new_db, records: list[discobase.Table]
) -> discobase.Database:
    """A new process's database (not open yet) over a compacted table of ``records`` (of one
    class), stored by a first process."""
    cls = type(records[0])
    db = new_db()
    db.table(cls)
    await db.open()
    await cls.insert_many(records)
    await past_horizon(simcord_env)
    await db.compact(cls.__discobase_name__)
    await db.close()
    await simcord_env.restart_bot(make_bot())
    db = new_db()
    db.table(cls)
    return db


async def held_per_record(
    simcord_env, new_db, cls: type[discobase.Table], total: int
) -> tuple[float, discobase.Database]:
    """Bytes a new process holds per record after opening a compacted table of ``total``
    records like :func:`reading`'s, and that process's database (open)."""
    db = await compacted_then_restarted(
        simcord_env, new_db, [cls(**reading(number).model_dump()) for number in range(total)]
    )
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        await db.open()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert await cls.count() == total
    return held / total, db


async def test_a_loaded_record_holds_under_700_bytes(simcord_env, new_db):
    # Five fields and an index, as the benchmark's records (with a shorter name): held as
    # pydantic models, such a record cost about 1,800 bytes; as a row about 500.
    held, db = await held_per_record(simcord_env, new_db, Reading, 3000)
    assert held < 700, f"{held:.0f} bytes per loaded record"
    assert (await Reading.find(name="reading-001234"))[0].n == 1234 * 7919
    await db.close()


class Grouped(Reading):
    """Reading with a second index whose values are each shared by a few records."""

    class Settings:
        indexes = ["name", "n"]


def grouped(number: int) -> Grouped:
    return Grouped(**{**reading(number).model_dump(), "n": number // 3})


async def test_loaded_rows_and_index_buckets_leave_the_collectors_tracking(simcord_env, new_db):
    # A full collection walks every object the cyclic collector tracks; rows and the index
    # buckets that hold several rows are plain tuples of plain values, which it stops tracking,
    # so they add nothing to a full collection's walk.
    total = 3000
    db = await compacted_then_restarted(
        simcord_env, new_db, [grouped(number) for number in range(total)]
    )
    gc.collect()
    gc.collect()
    before = len(gc.get_objects())
    await db.open()
    gc.collect()
    gc.collect()
    tracked = len(gc.get_objects()) - before
    assert await Grouped.count() == total
    assert [r.name for r in await Grouped.find(n=5)] == [f"reading-{i:06d}" for i in (15, 16, 17)]
    assert tracked < total // 3, f"{tracked} more objects tracked for {total} records"
    await db.close()


class Spread(Reading):
    """Reading's fields over eight shards."""

    class Settings:
        indexes = ["name"]
        shards = 8


async def test_a_table_of_eight_shards_holds_under_510_bytes_a_record(simcord_env, new_db):
    # Each shard's keys span the whole key range, so a load of several shards brings most
    # keys out of key order; keeping each of them in a set for later reads cost some 40 bytes
    # a record (about 525 in all here).
    held, db = await held_per_record(simcord_env, new_db, Spread, 4000)
    assert held < 510, f"{held:.0f} bytes per loaded record"
    keys = [s.pk for s in await Spread.find()]
    assert keys == sorted(keys) and len(keys) == 4000
    await db.close()


async def test_a_class_of_strict_config_refuses_on_load_what_its_model_refuses(simcord_env, new_db):
    # Stored records are validated by the class's fields alone, without making a model;
    # strict mode set in the class's config applies to that too (a stored datetime is text).
    class Event(discobase.Table):
        at: dt.datetime
        size: int

    class StrictEvent(discobase.Table):
        model_config = pydantic.ConfigDict(strict=True)
        at: dt.datetime
        size: int

        class Settings:
            name = "event"

    db = new_db()
    db.table(Event)
    await db.open()
    await Event.insert_many([Event(at=EPOCH, size=1), Event(at=EPOCH, size=2)])
    await db.close()
    await refused_open(simcord_env, new_db, StrictEvent, "2 stored records do not fit")


async def test_records_read_are_copies_of_what_is_stored(simcord_env, new_db):
    class Basket(discobase.Table):
        owner: str
        items: list[str]
        counts: dict[str, int]

        class Settings:
            primary_key = "owner"

    db = new_db()
    db.table(Basket)
    await db.open()
    await Basket(owner="ann", items=["apple"], counts={"apple": 1}).save()
    first = await Basket.get("ann")
    first.items.append("pear")
    first.counts["apple"] = 99
    first.owner = "bob"
    [found] = await Basket.find()
    assert found.items == ["apple"] and found.counts == {"apple": 1}
    assert found.owner == "ann" and found.pk == "ann"
    assert (await Basket.get("ann")) is not found
    found.items.append("plum")  # a find result is a copy too
    assert (await Basket.get("ann")).items == ["apple"]
    await db.close()


async def test_a_saved_record_changed_later_leaves_the_stored_one(simcord_env, new_db):
    db = new_db()
    db.table(Reading)
    await db.open()
    record = await reading(1).save()
    record.n = -5  # validated on assignment; not saved
    assert (await Reading.get(record.pk)).n == 7919
    assert await Reading.count(n=-5) == 0
    await db.close()


async def test_a_record_made_without_validation_is_validated_before_it_is_sent(simcord_env, new_db):
    db = new_db()
    db.table(Reading)
    await db.open()
    fields = reading(1).model_dump()
    unchecked = Reading.model_construct(**{**fields, "n": "many"})
    # pydantic warns that it serialises a value of the wrong type; the save must refuse it.
    with pytest.warns(UserWarning), pytest.raises(discobase.ValidationError, match="n"):
        await unchecked.save()
    with pytest.warns(UserWarning), pytest.raises(discobase.ValidationError):
        await Reading.insert_many([reading(2), Reading.model_construct(**{**fields, "x": "far"})])
    assert await Reading.count() == 0
    db = await reopen(simcord_env, db, new_db, Reading)
    assert await Reading.count() == 0
    await db.close()


async def test_classes_whose_validation_does_more_keep_it_on_load(simcord_env, new_db):
    class Tagged(discobase.Table):
        label: str
        size: int
        _seen: int = pydantic.PrivateAttr(default=7)

        @pydantic.field_validator("label")
        @classmethod
        def lower(cls, value: str) -> str:
            return value.lower()

    class Derived(discobase.Table):
        width: int
        height: int
        area: int = 0

        @pydantic.model_validator(mode="after")
        def compute(self) -> Derived:
            object.__setattr__(self, "area", self.width * self.height)
            return self

    db = new_db()
    db.table(Tagged)
    db.table(Derived)
    await db.open()
    await Tagged(label="MiXed", size=3).save()
    await Derived(width=3, height=4).save()
    db = await reopen(simcord_env, db, new_db, Tagged, Derived)
    [tagged] = await Tagged.find()
    assert tagged.label == "mixed" and tagged.size == 3
    assert tagged._seen == 7
    [derived] = await Derived.find(area=12)
    assert (derived.width, derived.height, derived.area) == (3, 4, 12)
    derived.width = 5  # a record built from a row still validates on assignment
    assert derived.area == 20
    await db.close()


async def test_a_stored_record_that_no_longer_fits_is_reported_not_loaded(simcord_env, new_db):
    class Item(discobase.Table):
        code: str

    db = new_db()
    db.table(Item)
    await db.open()
    # One message (validated in one call on load), the long one in the middle.
    await Item.insert_many([Item(code="ok"), Item(code="x" * 30), Item(code="fine")])
    await db.close()

    class Strict(discobase.Table):
        code: str = pydantic.Field(max_length=10)

        class Settings:
            name = "item"

    refused = await refused_open(simcord_env, new_db, Strict, "at most 10 characters")
    assert "1 stored records do not fit" in str(refused)


async def test_index_buckets_of_every_size_answer_like_a_scan(simcord_env, new_db):
    class Vote(discobase.Table):
        voter: int
        choice: int
        weight: float

        class Settings:
            primary_key = "voter"
            indexes = ["choice"]

    # choice 0: one voter; 1: a few; 2: many (past a list's limit); then moves between them.
    choices = {voter: 0 if voter == 0 else 1 if voter < 6 else 2 for voter in range(60)}
    db = new_db()
    db.table(Vote)
    await db.open()
    await Vote.insert_many([Vote(voter=v, choice=c, weight=v / 3) for v, c in choices.items()])

    async def check() -> None:
        for choice in (0, 1, 2, 3):
            expected = sorted(v for v, c in choices.items() if c == choice)
            assert [v.voter for v in await Vote.find(choice=choice)] == expected
            assert await Vote.count(choice=choice) == len(expected)
        in_two = sorted(v for v, c in choices.items() if c in (0, 2))
        assert [v.voter for v in await Vote.find(Vote.choice.in_([0, 2]))] == in_two
        ranged = sorted(v for v, c in choices.items() if 1 <= c < 3)
        assert [v.voter for v in await Vote.find((Vote.choice >= 1) & (Vote.choice < 3))] == (
            ranged
        )

    await check()
    for voter in range(6, 50):  # the many shrink to a few, then to one
        await (await Vote.get(voter)).update(choice=3)
        choices[voter] = 3
    await check()
    for voter in range(50, 59):
        await (await Vote.get(voter)).delete()
        del choices[voter]
    await check()
    for voter in (1, 2, 3, 4):
        await (await Vote.get(voter)).update(choice=0)
        choices[voter] = 0
    await (await Vote.get(0)).delete()
    del choices[0]
    await check()
    db = await reopen(simcord_env, db, new_db, Vote)
    await check()
    await db.close()


async def test_range_scans_on_an_unindexed_field_skip_none_and_other_types(simcord_env, new_db):
    class Sample(discobase.Table):
        value: float | None
        other: int | str

    db = new_db()
    db.table(Sample)
    await db.open()
    await Sample.insert_many(
        [Sample(value=v, other=o) for v, o in [(1.0, 1), (None, 2), (2.5, "b"), (4.0, 4)]]
    )
    assert sorted(s.value for s in await Sample.find((Sample.value >= 1) & (Sample.value < 4))) == [
        1.0,
        2.5,
    ]
    # ints and strings do not compare: a mixed column matches only what compares
    assert sorted(s.other for s in await Sample.find((Sample.other > 0) & (Sample.other <= 4))) == [
        1,
        2,
        4,
    ]
    await db.close()


async def test_text_only_pythons_json_parser_reads_still_loads(simcord_env, new_db):
    class Note(discobase.Table):
        text: str

    db = new_db()
    db.table(Note)
    await db.open()
    await Note(text="lone \ud800 surrogate").save()
    await Note(text="plain").save()
    db = await reopen(simcord_env, db, new_db, Note)
    assert sorted(n.text for n in await Note.find()) == ["lone \ud800 surrogate", "plain"]
    assert not [p for p in (await db.check()).problems if p.table == "note"]
    await db.close()


async def test_finding_by_an_indexed_field_answers_like_the_general_way(simcord_env, new_db):
    class Pet(discobase.Table):
        tag: int
        kind: str
        age: int | None = None

        class Settings:
            primary_key = "tag"
            indexes = ["kind", "age"]

    db = new_db()
    db.table(Pet)
    await db.open()
    kinds = ["cat", "dog", "cat", "eel", "cat", "dog"]
    await Pet.insert_many(
        [
            Pet(tag=tag, kind=kind, age=None if tag % 3 == 0 else tag)
            for tag, kind in enumerate(kinds)
        ]
    )
    assert [p.tag for p in await Pet.find(kind="cat")] == [0, 2, 4]
    assert [p.tag for p in await Pet.find(Pet.kind == "cat")] == [0, 2, 4]
    assert [p.tag for p in await Pet.find(kind="cat", limit=2)] == [0, 2]
    assert [p.tag for p in await Pet.find(kind="cat", offset=1)] == [2, 4]
    assert [p.tag for p in await Pet.find(kind="cat", limit=1, offset=2)] == [4]
    assert await Pet.find(kind="cat", limit=0) == []
    assert await Pet.find(kind="bird") == []
    assert [p.tag for p in await Pet.find(age="4")] == [4]  # converted to the field's type
    assert [p.tag for p in await Pet.find(age=None)] == [0, 3]
    assert [p.tag for p in await Pet.find(kind="cat", order_by="-tag")] == [4, 2, 0]
    assert (await Pet.find_one(kind="dog")).tag == 1  # type: ignore[union-attr]
    with pytest.raises(discobase.AmbiguousResultError):
        await Pet.find_unique(kind="dog")
    with pytest.raises(discobase.UnknownFieldError):
        await Pet.find(colour="red")
    with pytest.raises(discobase.ValidationError):
        await Pet.find(age="old")
    with pytest.raises(ValueError):
        await Pet.find(kind="cat", limit=-1)
    found = (await Pet.find(kind="eel"))[0]
    assert found.revision == (await Pet.get(3)).revision != 0
    found.kind = "ray"  # a copy
    assert [p.tag for p in await Pet.find(kind="eel")] == [3]
    await db.close()


async def test_a_large_load_leaves_the_garbage_collector_as_it_found_it(simcord_env, new_db):
    total = 1500  # enough for the collector to pause while a body is decoded
    db = new_db()
    db.table(Reading)
    await db.open()
    await Reading.insert_many([reading(number) for number in range(total)])
    await db.close()
    assert gc.isenabled()
    db = await reopen(simcord_env, None, new_db, Reading)
    assert gc.isenabled() and await Reading.count() == total
    await db.close()
    gc.disable()  # a host that turned it off keeps it off
    try:
        db = await reopen(simcord_env, None, new_db, Reading)
        assert not gc.isenabled() and await Reading.count() == total
        await db.close()
    finally:
        gc.enable()


async def test_indexes_a_load_builds_answer_like_a_scan_and_follow_later_writes(
    simcord_env, new_db
):
    # A load indexes its records in one pass at the end: values held by one record, by a
    # few (a tuple), by more than sixteen (a set) and None, across several shards, part of
    # them from a snapshot and part from the log; writes after the load move records between
    # those buckets and the unique index still refuses a value taken.
    class Ticket(discobase.Table):
        number: int
        code: str
        queue: int | None
        weight: float

        class Settings:
            primary_key = "number"
            indexes = ["queue", "weight"]
            unique = ["code"]
            shards = 3

    def queue_of(number: int) -> int | None:
        if number % 11 == 0:
            return None
        return 0 if number < 2 else 1 if number < 10 else 2 if number < 30 else number % 7 + 3

    tickets = {n: (f"c{n:04d}", queue_of(n), (n * 37 % 101) / 4) for n in range(300)}
    db = new_db()
    db.table(Ticket)
    await db.open()
    await Ticket.insert_many(
        [Ticket(number=n, code=c, queue=q, weight=w) for n, (c, q, w) in tickets.items()]
    )
    await past_horizon(simcord_env)
    await db.compact()
    for number in range(200, 260):  # in the log after the snapshot: updates and deletes
        code, _, weight = tickets[number]
        if number % 2:
            await (await Ticket.get(number)).delete()
            del tickets[number]
        else:
            await (await Ticket.get(number)).update(queue=2)
            tickets[number] = (code, 2, weight)

    async def check() -> None:
        for queue in (None, 0, 1, 2, *range(3, 11)):
            expected = sorted(n for n, (_, q, _) in tickets.items() if q == queue)
            assert [t.number for t in await Ticket.find(queue=queue)] == expected
        for low, high in ((0.0, 3.0), (5.25, 5.25), (10.0, 30.0)):
            expected = sorted(n for n, (_, _, w) in tickets.items() if low <= w <= high)
            found = await Ticket.find((Ticket.weight >= low) & (Ticket.weight <= high))
            assert [t.number for t in found] == expected
        for number in (0, 150, 298):
            assert [t.number for t in await Ticket.find(code=tickets[number][0])] == [number]

    await check()
    db = await reopen(simcord_env, db, new_db, Ticket)
    await check()
    for number in range(30, 60):  # into the bucket of many, out of the small ones
        code, _, weight = tickets[number]
        await (await Ticket.get(number)).update(queue=2)
        tickets[number] = (code, 2, weight)
    for number in range(0, 12):
        code, _, weight = tickets[number]
        await (await Ticket.get(number)).update(queue=number % 2, weight=weight + 100)
        tickets[number] = (code, number % 2, weight + 100)
    await check()
    with pytest.raises(discobase.UniqueViolationError):
        await Ticket(number=1000, code=tickets[5][0], queue=1, weight=0.0).insert()
    await (await Ticket.get(299)).delete()
    del tickets[299]
    await Ticket(number=1000, code="c0299", queue=None, weight=1.0).insert()
    tickets[1000] = ("c0299", None, 1.0)
    await check()
    db = await reopen(simcord_env, db, new_db, Ticket)
    await check()
    await db.close()


async def test_bulk_loads_validate_each_record_as_its_class_does(simcord_env, new_db):
    # A load validates a message's records in one call, as tuples of their values where
    # that validates the same as the class; these records must not be validated that way:
    # a validator that reads another field, a field added since (its default fills in), a
    # field removed since (refused, or dropped by a class that ignores extra fields).
    class Line(discobase.Table):
        unit: str
        price: int
        note: str = ""

        class Settings:
            shards = 1  # every record in one message

    db = new_db()
    db.table(Line)
    await db.open()
    await Line.insert_many(
        [Line(unit="eur", price=5), Line(unit="usd", price=7), Line(unit="eur", price=9)]
    )
    await db.close()

    class Priced(discobase.Table):
        unit: str
        price: int
        note: str = ""

        class Settings:
            name = "line"
            shards = 1

        @pydantic.field_validator("price")
        @classmethod
        def in_cents(cls, value: int, info: pydantic.ValidationInfo) -> int:
            return value * 100 if info.data["unit"] == "eur" else value

    db = await reopen(simcord_env, None, new_db, Priced)
    assert sorted((p.unit, p.price) for p in await Priced.find()) == [
        ("eur", 500),
        ("eur", 900),
        ("usd", 7),
    ]
    await db.close()

    class Grown(discobase.Table):
        unit: str
        price: int
        note: str = ""
        quantity: int = 1

        class Settings:
            name = "line"
            shards = 1

    db = await reopen(simcord_env, None, new_db, Grown)
    assert sorted((g.price, g.quantity) for g in await Grown.find()) == [(5, 1), (7, 1), (9, 1)]
    await db.close()

    class Shrunk(discobase.Table):
        unit: str
        price: int

        class Settings:
            name = "line"
            shards = 1

    class Lenient(discobase.Table):
        model_config = pydantic.ConfigDict(extra="ignore")
        unit: str
        price: int

        class Settings:
            name = "line"
            shards = 1

    await refused_open(simcord_env, new_db, Shrunk, "3 stored records do not fit")
    db = await reopen(simcord_env, None, new_db, Lenient)
    assert sorted(line.price for line in await Lenient.find()) == [5, 7, 9]
    await db.close()


async def test_a_snapshot_loads_as_the_log_it_folded(simcord_env, new_db):
    # A snapshot part of puts is read by column (no object per entry): each record keeps
    # the revision it had, the groups the snapshot says completed stay complete, and a
    # record that does not fit the class sends the part the general way, which reports it.
    class Crate(discobase.Table):
        label: str
        size: int

        class Settings:
            indexes = ["size"]
            shards = 3  # an insert_many spans the shards: snapshots carry its completion

    db = new_db()
    db.table(Crate)
    await db.open()
    crates = await Crate.insert_many([Crate(label=f"c{n:03d}", size=n % 5) for n in range(90)])
    for crate in crates[:30]:
        await crate.update(size=crate.size + 10)
    for crate in crates[30:40]:
        await crate.delete()
    before = {c.pk: (c.label, c.size, c.revision) for c in await Crate.find()}
    assert len(before) == 80 and len({revision for *_, revision in before.values()}) > 2
    await past_horizon(simcord_env)
    await db.compact()
    await db.close()
    db = await reopen(simcord_env, None, new_db, Crate)
    assert {c.pk: (c.label, c.size, c.revision) for c in await Crate.find()} == before
    assert sorted(c.label for c in await Crate.find(size=11)) == [
        f"c{n:03d}" for n in range(1, 30, 5)
    ]
    assert not (await db.check()).problems
    stale = crates[45]
    await stale.update(size=99)
    with pytest.raises(discobase.ConflictError):  # revisions from the snapshot still guard
        await (await Crate.get(crates[46].pk)).update(size=1, if_revision=stale.revision)
    await db.close()

    class Small(discobase.Table):
        label: str
        size: int = pydantic.Field(lt=14)  # refuses 14 (six records) and 99 (one)

        class Settings:
            name = "crate"

    await refused_open(simcord_env, new_db, Small, "7 stored records do not fit")
