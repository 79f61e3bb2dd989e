"""Model-based test: random saves, updates, deletes, finds, compactions and reloads against a
plain dict, with hypothesis shrinking any divergence to a minimal sequence.

CI runs a bounded number of examples; for a longer run set DISCOBASE_MODEL_EXAMPLES, e.g.
``DISCOBASE_MODEL_EXAMPLES=500 python -m pytest tests/discobase/test_model_based.py``.
"""

from __future__ import annotations

import asyncio
import os

import simcord
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import discobase
from tests.conftest import make_bot

KEYS = st.sampled_from([f"k{i}" for i in range(8)])
VALUES = st.integers(min_value=-5, max_value=5)
EXAMPLES = int(os.environ.get("DISCOBASE_MODEL_EXAMPLES", "40"))


class Item(discobase.Table):
    key: str
    n: int
    label: str = ""

    class Settings:
        primary_key = "key"
        indexes = ["n"]
        shards = 2


class Tally(discobase.Table):
    """Generated keys: the engine picks each record's shard."""

    n: int

    class Settings:
        shards = 3


class StorageMachine(RuleBasedStateMachine):
    """The database against a dict of key -> (n, label)."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.env = simcord.Env(make_bot())
        self.run(self.env.start())
        self.clock = self.env.time_context()
        self.clock.__enter__()
        self.guild = self.env.create_guild("storage")
        self.model: dict[str, tuple[int, str]] = {}
        self.tallies: dict[str, int] = {}
        self.db = self.run(self.open())

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    async def open(self) -> discobase.Database:
        db = discobase.Database(
            self.guild.id,
            bot=self.env.bot,
            retry=discobase.RetryPolicy(attempts=2, base_delay=0, max_delay=0),
            compaction=discobase.Compaction(min_messages=6),
        )
        db.table(Item)
        db.table(Tally)
        await db.open()
        return db

    def teardown(self) -> None:
        async def stop() -> None:
            await self.db.close()
            await self.env.shutdown()

        self.run(stop())
        self.clock.__exit__(None, None, None)
        self.loop.close()

    @rule(key=KEYS, n=VALUES, label=st.text(max_size=5))
    def save(self, key: str, n: int, label: str) -> None:
        self.run(Item(key=key, n=n, label=label).save())
        self.model[key] = (n, label)

    @rule(key=KEYS, n=VALUES)
    def update(self, key: str, n: int) -> None:
        async def go() -> bool:
            try:
                await (await Item.get(key)).update(n=n)
            except discobase.RecordNotFoundError:
                return False
            return True

        assert self.run(go()) == (key in self.model)
        if key in self.model:
            self.model[key] = (n, self.model[key][1])

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        async def go() -> bool:
            try:
                await Item(key=key, n=0).delete()
            except discobase.RecordNotFoundError:
                return False
            return True

        assert self.run(go()) == (key in self.model)
        self.model.pop(key, None)

    @rule(items=st.dictionaries(KEYS, VALUES, min_size=1, max_size=4))
    def insert_many(self, items: dict[str, int]) -> None:
        async def go() -> bool:
            try:
                await Item.insert_many([Item(key=k, n=v) for k, v in items.items()])
            except discobase.UniqueViolationError:
                return False
            return True

        fits = not (set(items) & set(self.model))
        assert self.run(go()) == fits
        if fits:
            self.model.update({k: (v, "") for k, v in items.items()})

    @rule(key=KEYS, n=VALUES)
    def concurrent_saves(self, key: str, n: int) -> None:
        async def go() -> None:
            await asyncio.gather(Item(key=key, n=n).save(), Item(key=key + "x", n=-n).save())

        self.run(go())
        self.model[key] = (n, "")
        self.model[key + "x"] = (-n, "")

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

    @rule(low=VALUES)
    def find_range(self, low: int) -> None:
        found = self.run(Item.find(Item.n >= low, order_by="key"))
        assert [(i.key, i.n) for i in found] == sorted(
            (k, v[0]) for k, v in self.model.items() if v[0] >= low
        )

    @rule()
    def compact(self) -> None:
        self.run(self.db.compact())

    @precondition(lambda self: True)
    @rule()
    def reload(self) -> None:
        async def go() -> discobase.Database:
            await self.db.close()
            await self.env.restart_bot(make_bot())
            return await self.open()

        self.db = self.run(go())

    @invariant()
    def same_as_model(self) -> None:
        records = self.run(Item.find())
        assert {r.key: (r.n, r.label) for r in records} == self.model
        assert {t.pk: t.n for t in self.run(Tally.find())} == self.tallies


StorageMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=25, deadline=None, derandomize=True
)
TestStorageMachine = StorageMachine.TestCase
