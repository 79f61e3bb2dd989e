"""Model-based test: random writes, finds, compactions, failures, a second process, late gateway
delivery, schema changes and reloads against plain dicts, with hypothesis shrinking any
divergence to a minimal sequence.

After every step a fresh process (a new ``Database`` reading the guild) must show exactly the
model, and so must the first process whenever no gateway event is held back.

CI runs a bounded number of examples; for a longer run set DISCOBASE_MODEL_EXAMPLES (and
DISCOBASE_MODEL_STEPS), e.g.
``DISCOBASE_MODEL_EXAMPLES=500 python -m pytest tests/discobase/test_model_based.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import zlib
from typing import Any

import simcord
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import discobase
from tests.conftest import HeldGateway, make_bot

KEYS = st.sampled_from([f"k{i}" for i in range(8)])
VALUES = st.integers(min_value=-5, max_value=5)
EXAMPLES = int(os.environ.get("DISCOBASE_MODEL_EXAMPLES", "40"))
STEPS = int(os.environ.get("DISCOBASE_MODEL_STEPS", "25"))


class Item(discobase.Table):
    key: str
    n: int
    label: str = ""

    class Settings:
        name = "item"
        primary_key = "key"
        indexes = ["n"]
        shards = 2


class ItemWithNote(discobase.Table):
    """``Item`` after a schema change: an optional field added."""

    key: str
    n: int
    label: str = ""
    note: str | None = None

    class Settings:
        name = "item"
        primary_key = "key"
        indexes = ["n"]
        shards = 2


class Tally(discobase.Table):
    """Generated keys: the engine picks each record's shard."""

    n: int

    class Settings:
        shards = 3


def shard_of(key: str) -> int:
    return zlib.crc32(json.dumps(key).encode()) % 2


Record = tuple[int, str, str | None]


class StorageMachine(RuleBasedStateMachine):
    """The database against a dict of key -> (n, label, note) and one of tally key -> n."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.env = simcord.Env(make_bot())
        self.run(self.env.start())
        self.clock = self.env.time_context()
        self.clock.__enter__()
        self.guild = self.env.create_guild("storage")
        self.model: dict[str, Record] = {}
        self.tallies: dict[str, int] = {}
        self.item: type[discobase.Table] = Item
        self.db, self.other = self.run(self.open())
        self.other_schema_current = True
        self.gateway = HeldGateway(self.env.bot)

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def database(self, **options: Any) -> discobase.Database:
        options.setdefault("retry", discobase.RetryPolicy(attempts=2, base_delay=0, max_delay=0))
        return discobase.Database(self.guild.id, bot=self.env.bot, **options)

    async def open(self) -> tuple[discobase.Database, discobase.Database]:
        """This process (the class tables, automatic compaction after 6 messages) and a second
        one on the same guild (runtime classes, no automatic compaction)."""
        db = self.database(compaction=discobase.Compaction(min_messages=6))
        db.table(self.item)
        db.table(Tally)
        await db.open()
        other = self.database(compaction=None)
        await other.open()
        return db, other

    def teardown(self) -> None:
        async def stop() -> None:
            await self.other.close()
            await self.db.close()
            await self.env.shutdown()

        self.run(stop())
        self.clock.__exit__(None, None, None)
        self.loop.close()

    def expect(self, key: str, n: int, label: str = "", note: str | None = None) -> None:
        self.model[key] = (n, label, note)

    # -- writes of this process -------------------------------------------------------------

    @rule(key=KEYS, n=VALUES, label=st.text(max_size=5), noted=st.booleans())
    def save(self, key: str, n: int, label: str, noted: bool) -> None:
        note = "x" if noted and self.item is ItemWithNote else None
        fields: dict[str, Any] = {"key": key, "n": n, "label": label}
        if note is not None:
            fields["note"] = note
        self.run(self.item(**fields).save())
        self.expect(key, n, label, note)

    @precondition(lambda self: not self.gateway.holding)
    @rule(key=KEYS, n=VALUES)
    def update(self, key: str, n: int) -> None:
        async def go() -> bool:
            try:
                await (await self.item.get(key)).update(n=n)
            except discobase.RecordNotFoundError:
                return False
            return True

        assert self.run(go()) == (key in self.model)
        if key in self.model:
            _, label, note = self.model[key]
            self.expect(key, n, label, note)

    @precondition(lambda self: not self.gateway.holding)
    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        async def go() -> bool:
            try:
                await self.item(key=key, n=0).delete()
            except discobase.RecordNotFoundError:
                return False
            return True

        assert self.run(go()) == (key in self.model)
        self.model.pop(key, None)

    @precondition(lambda self: not self.gateway.holding)
    @rule(items=st.dictionaries(KEYS, VALUES, min_size=1, max_size=4))
    def insert_many(self, items: dict[str, int]) -> None:
        async def go() -> bool:
            try:
                await self.item.insert_many([self.item(key=k, n=v) for k, v in items.items()])
            except discobase.UniqueViolationError:
                return False
            return True

        fits = not (set(items) & set(self.model))
        assert self.run(go()) == fits
        if fits:
            for k, v in items.items():
                self.expect(k, v)

    @precondition(lambda self: not self.gateway.holding)
    @rule(
        items=st.dictionaries(KEYS, VALUES, min_size=2, max_size=4), failing=st.sampled_from([0, 1])
    )
    def insert_many_that_fails_on_one_shard(self, items: dict[str, int], failing: int) -> None:
        """A group whose part on one shard fails for good: the parts that landed stay pending
        forever and must never show, nor be lost from other records by compactions."""
        if set(items) & set(self.model):
            return
        channel = self.db.schema("item").channels[failing]
        self.env.inject_error("POST", f"/channels/{channel}/messages", status=503, times=None)

        async def go() -> bool:
            try:
                await self.item.insert_many([self.item(key=k, n=v) for k, v in items.items()])
            except discobase.DiscordUnavailableError:
                return False
            return True

        spans_failing = any(shard_of(k) == failing for k in items)
        try:
            assert self.run(go()) == (not spans_failing)
        finally:
            self.env.backend.faults.clear()
        if not spans_failing:
            for k, v in items.items():
                self.expect(k, v)

    @rule(key=KEYS, n=VALUES)
    def concurrent_saves(self, key: str, n: int) -> None:
        async def go() -> None:
            await asyncio.gather(
                self.item(key=key, n=n).save(), self.item(key=key + "x", n=-n).save()
            )

        self.run(go())
        self.expect(key, n)
        self.expect(key + "x", -n)

    @rule(values=st.lists(VALUES, min_size=1, max_size=5), together=st.booleans())
    def save_tallies(self, values: list[int], together: bool) -> None:
        async def go() -> list[Tally]:
            if together:
                return await Tally.insert_many([Tally(n=v) for v in values])
            return list(await asyncio.gather(*(Tally(n=v).save() for v in values)))

        for tally in self.run(go()):
            assert tally.pk not in self.tallies
            self.tallies[tally.pk] = tally.n

    @rule(data=st.data())
    def change_a_tally(self, data: st.DataObject) -> None:
        if not self.tallies:
            return
        key = data.draw(st.sampled_from(sorted(self.tallies)))
        n = data.draw(st.one_of(st.none(), VALUES))

        async def go() -> None:
            tally = await Tally.get(key)
            await (tally.delete() if n is None else tally.update(n=n))

        self.run(go())
        if n is None:
            del self.tallies[key]
        else:
            self.tallies[key] = n

    # -- a second process -------------------------------------------------------------------

    @rule(key=KEYS, n=VALUES, late=st.booleans())
    def other_process_saves(self, key: str, n: int, late: bool) -> None:
        """Another process saves; with ``late`` the gateway brings it to this one only after
        later steps (saves, compactions, time) have run. Meanwhile checks that depend on this
        process knowing every key wait (unique checks are per process, see reliability.md)."""
        self.gateway.holding = self.gateway.holding or late
        self.run(self.other.tables["item"](key=key, n=n).save())
        self.expect(key, n)

    # On the old schema the other process cannot read records written with the new field.
    @precondition(lambda self: not self.gateway.holding and self.other_schema_current)
    @rule(key=KEYS)
    def other_process_deletes(self, key: str) -> None:
        async def go() -> bool:
            try:
                await self.other.tables["item"](key=key, n=0).delete()
            except discobase.RecordNotFoundError:
                return False
            return True

        self.run(self.env.settle())
        assert self.run(go()) == (key in self.model)
        self.model.pop(key, None)

    @rule()
    def deliver_late_events(self) -> None:
        self.gateway.release()
        self.run(self.env.settle())

    # -- time, compaction, schema, reload ---------------------------------------------------

    @rule(seconds=st.sampled_from([1, 8, 16]))
    def time_passes(self, seconds: int) -> None:
        self.run(self.env.advance_time(seconds))

    @rule()
    def compact(self) -> None:
        self.run(self.db.compact())

    @rule(key=KEYS, n=VALUES)
    def overlapping_compactions(self, key: str, n: int) -> None:
        async def go() -> None:
            first = asyncio.ensure_future(self.db.compact())
            await self.item(key=key, n=n).save()
            await self.env.advance_time(16)
            await asyncio.gather(first, self.db.compact("item"))

        self.run(go())
        self.expect(key, n)

    @precondition(lambda self: self.item is Item)
    @rule()
    def add_an_optional_field(self) -> None:
        """Reopen this process with the class that has one more optional field (an alter);
        the other process keeps running on the old schema."""

        async def go() -> discobase.Database:
            await self.db.close()
            self.item = ItemWithNote
            db = self.database(compaction=discobase.Compaction(min_messages=6))
            db.table(self.item)
            db.table(Tally)
            await db.open()
            return db

        self.db = self.run(go())
        self.other_schema_current = False

    @rule()
    def reload(self) -> None:
        async def go() -> tuple[discobase.Database, discobase.Database]:
            await self.other.close()
            await self.db.close()
            await self.env.restart_bot(make_bot())
            return await self.open()

        self.db, self.other = self.run(go())
        self.other_schema_current = True
        self.gateway = HeldGateway(self.env.bot)

    # -- checks -----------------------------------------------------------------------------

    @precondition(lambda self: not self.gateway.holding)
    @rule(low=VALUES)
    def find_range(self, low: int) -> None:
        found = self.run(self.item.find(self.item.n >= low, order_by="key"))
        assert [(i.key, i.n) for i in found] == sorted(
            (k, v[0]) for k, v in self.model.items() if v[0] >= low
        )

    def seen(self, items: list[Any]) -> dict[str, Record]:
        return {i.key: (i.n, i.label, getattr(i, "note", None)) for i in items}

    @invariant()
    def same_as_model(self) -> None:
        if not self.gateway.holding:
            self.run(self.env.settle())
            assert self.seen(self.run(self.item.find())) == self.model
            assert {t.pk: t.n for t in self.run(Tally.find())} == self.tallies

    @invariant()
    def a_fresh_process_sees_the_model(self) -> None:
        async def go() -> tuple[dict[str, Record], dict[str, int]]:
            fresh = self.database(compaction=None)
            await fresh.open()
            try:
                items = self.seen(await fresh.tables["item"].find())
                tallies = {t.pk: t.n for t in await fresh.tables["tally"].find()}
            finally:
                await fresh.close()
            return items, tallies

        items, tallies = self.run(go())
        assert items == self.model
        assert tallies == self.tallies


StorageMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, derandomize=True
)
TestStorageMachine = StorageMachine.TestCase
