"""Workloads W1..W11 on our discobase, on SimCord under the Discord model, in virtual time.

Each workload group runs in its own process (see :mod:`bench.worker`) against a fresh simulated
guild, and returns one result per measured phase (see :class:`bench.measure.Phase`). Workloads are
driven from the top-level coroutine, never from bot event handlers: work started in bot scope runs
on SimCord timers bridged to real time, which would make a virtual-time loop jump. W7 is the
exception by nature (a slash command runs in bot scope); the model's own waits stay virtual there
(:func:`bench.model.virtual_sleep`), and the bot's /find makes no other timed waits.

W5's and W8's cold opens run in a new process: the group pickles SimCord's world (the simulated
Discord) after compaction and starts ``python -m bench.worker cold-open`` on it. That process opens
the database :data:`OPEN_REPEATS` times (each on a fresh copy of the world, with a fresh model:
buckets start empty, as for a restarted bot) and reports the open whose CPU time is the median,
then opens it once more under ``tracemalloc`` to measure the memory the loaded table holds.

W8 draws the curve: at each of its sizes, a table of five fields and one index (``name``) is
built with one ``insert_many``, queried by its index and scanned on an unindexed field, read
whole with a cursor (``async for``: CPU per record and the memory held), compacted and opened
cold.

W9 measures the change feed's latency (a write's acknowledgement to a watcher yielding it), for
writes of the watcher's process and of another client through the gateway; W10 the CPU of
``Table.aggregate`` per call over the whole table. W11 grows a table of one shard holding
10,000 records to 6 shards (``Database.reshard``: REST calls and simulated seconds) and runs
W1's awaited inserts before and after.

W6's phases write to the same channels one after another; each starts once the model's buckets
have rested (:meth:`bench.model.DiscordModel.rest`, outside the measured time), so a phase pays its
own rate limits and not the windows its predecessor left spent.

A phase ends when its operations have returned. Calls the library makes later (a background flush,
for instance) are counted when the database closes, and reported as ``trailing_rest_calls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import simcord
from discord.ext import commands

import discobase

from .measure import Phase, current_rss_bytes, slash_raising_bot_errors
from .model import DiscordModel
from .records import (
    Sizes,
    range_bounds,
    record_fields,
    record_name,
    scan_bounds,
)
from .seam import pickled_world, run_on_world, second_client

__all__ = ("GROUPS", "OPEN_REPEATS", "cold_open", "run_group")

GUILD_NAME = "discobase-bench"
TABLE_NAME = "rec"
#: W1-W7's table: two indexed fields. W8's: one (the issue's shape: five fields, one index).
INDEXES = ("name", "n")
W8_INDEXES = ("name",)
#: Cold opens per measurement; the one with the median CPU time is reported.
OPEN_REPEATS = 3

Result = dict[str, Any]


def new_bot() -> commands.Bot:
    """A bot as an application would make one: default intents, no privileged ones."""
    return commands.Bot(command_prefix="!", intents=discord.Intents.default())


def define_record_table(
    db: discobase.Database, shards: int | None, indexes: Sequence[str] = INDEXES
) -> type[discobase.Table]:
    """A fresh table class bound to ``db``: five fields, ``indexes`` indexed.

    ``shards`` sets ``Settings.shards``; None leaves the library's default.
    """
    table_shards, table_indexes = shards, list(indexes)

    class Rec(discobase.Table):
        name: str
        n: int
        x: float
        flag: bool
        at: datetime.datetime

        class Settings:
            name = TABLE_NAME
            indexes = table_indexes
            if table_shards is not None:
                shards = table_shards

    db.table(Rec)
    return Rec


@dataclass
class World:
    """A running SimCord environment with the bench guild."""

    env: simcord.Env
    guild_id: int

    async def open_database(
        self, bot: commands.Bot, shards: int | None, indexes: Sequence[str] = INDEXES
    ) -> tuple[discobase.Database, Any]:
        db = discobase.Database(self.guild_id, bot=bot)
        table = define_record_table(db, shards, indexes)
        await db.open()
        return db, table


@contextlib.asynccontextmanager
async def simulated_guild(model: DiscordModel) -> AsyncIterator[World]:
    """SimCord with the model installed, one guild, one bot at READY."""
    with model.installed():
        async with simcord.run(new_bot()) as env:
            guild = env.create_guild(GUILD_NAME)
            yield World(env, guild.id)


async def close_counting_trailing_calls(
    db: discobase.Database, model: DiscordModel, results: list[Result]
) -> None:
    """Close ``db``; attribute the calls made since the last phase to that phase."""
    before = model.metrics.copy()
    await db.close()
    if results:
        calls = model.metrics.since(before).rest_calls
        results[-1]["trailing_rest_calls"] = results[-1].get("trailing_rest_calls", 0) + calls


async def rest(model: DiscordModel, results: list[Result]) -> None:
    """Let the model's buckets rest before the next phase (:meth:`DiscordModel.rest`); calls
    the library makes meanwhile (the phase before's background work) are that phase's
    ``trailing_rest_calls``."""
    before = model.metrics.copy()
    await model.rest()
    if results:
        calls = model.metrics.since(before).rest_calls
        results[-1]["trailing_rest_calls"] = results[-1].get("trailing_rest_calls", 0) + calls


def records(numbers: range) -> list[dict[str, Any]]:
    return [record_fields(number) for number in numbers]


async def verify_count(phase_result: Result, table: Any, expected: int) -> None:
    """Count the table's records and note whether the phase left what it should."""
    try:
        found = await table.count()
    except Exception as error:
        phase_result["verified"] = f"count failed: {type(error).__name__}: {error}"[:300]
        return
    phase_result["verified"] = (
        "ok" if found == expected else f"MISMATCH: {found} records, expected {expected}"
    )


async def awaited_inserts(sizes: Sizes, model: DiscordModel, shards: int | None) -> list[Result]:
    """W1 on the benchmark's table (``shards`` as set by ``--shards``)."""
    return await _awaited_inserts(sizes, model, shards, W1)


async def awaited_inserts_library_defaults(
    sizes: Sizes, model: DiscordModel, shards: int | None
) -> list[Result]:
    """W1 on a table with the library's default settings, whatever ``--shards`` says."""
    return await _awaited_inserts(sizes, model, None, W1_DEFAULTS)


W1 = "W1 inserts awaited one by one"
W1_DEFAULTS = "W1 inserts awaited one by one, library defaults"


async def _awaited_inserts(
    sizes: Sizes, model: DiscordModel, shards: int | None, name: str
) -> list[Result]:
    results: list[Result] = []
    async with simulated_guild(model) as world:
        db, table = await world.open_database(world.env.bot, shards)  # type: ignore[arg-type]
        rows = records(range(sizes.w1_inserts))
        phase = Phase(name, model, unit="insert").start()
        with phase.guarded():
            for fields in rows:
                await phase.op(table(**fields).save())
        results.append(phase.finish())
        await verify_count(results[-1], table, phase.ops)
        await close_counting_trailing_calls(db, model, results)
    return results


async def concurrent_inserts(sizes: Sizes, model: DiscordModel, shards: int | None) -> list[Result]:
    results: list[Result] = []
    async with simulated_guild(model) as world:
        db, table = await world.open_database(world.env.bot, shards)  # type: ignore[arg-type]
        per_task = sizes.w2_inserts // sizes.w2_tasks
        rows = records(range(per_task * sizes.w2_tasks))
        phase = Phase(
            f"W2 inserts from {sizes.w2_tasks} concurrent tasks", model, unit="insert"
        ).start()

        async def task(first: int) -> None:
            for fields in rows[first : first + per_task]:
                await phase.op(table(**fields).save())

        with phase.guarded():
            await asyncio.gather(*(task(n * per_task) for n in range(sizes.w2_tasks)))
        results.append(phase.finish())
        await verify_count(results[-1], table, phase.ops)
        await close_counting_trailing_calls(db, model, results)
    return results


async def build_query_reopen(sizes: Sizes, model: DiscordModel, shards: int | None) -> list[Result]:
    """W3 builds the table, W4 queries it, W5 compacts it and opens it cold in a new process."""
    results: list[Result] = []
    total = sizes.w3_records
    async with simulated_guild(model) as world:
        db, table = await world.open_database(world.env.bot, shards)  # type: ignore[arg-type]
        rows = [table(**fields) for fields in records(range(total))]
        phase = Phase("W3 insert_many", model, unit="record").start()
        with phase.guarded():
            await phase.op(table.insert_many(rows), count=total)
        results.append(phase.finish())
        del rows
        await verify_count(results[-1], table, total)

        results.extend(await w4_queries(sizes, model, table, total))

        results.append(await compaction(world, model, db, "W5 compaction (before the cold open)"))
        await close_counting_trailing_calls(db, model, results)
        del db, table
        results.append(cold_open_in_new_process(world, total, shards, INDEXES, W5_OPEN))
    return results


W5_OPEN = "W5 cold open by a new process, then count()"


async def compaction(
    world: World, model: DiscordModel, db: discobase.Database, name: str
) -> Result:
    """Compact the table after idling past the horizon margin (the snapshot covers the log)."""
    await asyncio.sleep(discobase.Compaction().margin + 1)
    model.sync_clock(world.env.backend)
    phase = Phase(name, model, unit="compaction").start()
    with phase.guarded():
        await phase.op(db.compact(TABLE_NAME))
    return phase.finish()


def cold_open_in_new_process(
    world: World, total: int, shards: int | None, indexes: Sequence[str], name: str
) -> Result:
    """Hand SimCord's world to a new process, which opens the database cold there (see
    :func:`cold_open`); its result, or the error that stopped it."""
    with tempfile.TemporaryDirectory() as scratch:
        world_path, out = Path(scratch) / "world.pickle", Path(scratch) / "result.json"
        world_path.write_bytes(pickled_world(world.env))
        command = [sys.executable, "-m", "bench.worker", "cold-open", "--world", str(world_path)]
        command += ["--guild", str(world.guild_id), "--records", str(total), "--name", name]
        command += ["--indexes", ",".join(indexes), "--out", str(out)]
        if shards is not None:
            command += ["--shards", str(shards)]
        # Blocking on purpose: nothing else may run meanwhile, and the loop's time stands still.
        completed = subprocess.run(command, check=False, capture_output=True, text=True)
        if not out.exists():
            return {"phase": name, "error": completed.stderr[-3000:], "ops": 0}
        outcome: dict[str, Any] = json.loads(out.read_text())
    if outcome.get("error"):
        return {"phase": name, "error": outcome["error"], "ops": 0}
    return outcome["phases"][0]  # type: ignore[no-any-return]


async def cold_open(
    world: bytes,
    guild_id: int,
    total: int,
    shards: int | None,
    indexes: Sequence[str],
    name: str,
) -> list[Result]:
    """In a new process: open the database on the handed-over world, :data:`OPEN_REPEATS` times.

    Reports the open with the median client CPU time, the others' CPU times, and the memory a
    last open holds (``tracemalloc``: Python allocations still alive after the open and a
    garbage collection, from a start just before the database was made).
    """
    opens = [
        await _open_once(world, guild_id, total, shards, indexes, name, traced=False)
        for _ in range(OPEN_REPEATS)
    ]
    cpu = [result["client_cpu_seconds"] for result in opens]
    chosen = next(
        result for result in opens if result["client_cpu_seconds"] == statistics.median_low(cpu)
    )
    traced = await _open_once(world, guild_id, total, shards, indexes, name, traced=True)
    chosen["repeat_client_cpu_seconds"] = cpu
    chosen["records"] = total
    chosen["held_bytes"] = traced["held_bytes"]
    chosen["held_bytes_per_record"] = traced["held_bytes"] / total if total else None
    chosen["rss_growth_bytes_per_record"] = chosen["rss_growth_bytes"] / total if total else None
    chosen["notes"].append(
        f"median client CPU of {OPEN_REPEATS} opens; memory held measured by tracemalloc on a "
        "further open; peak RSS includes SimCord's simulated guild, loaded before the phase "
        f"({chosen['rss_at_start_bytes'] // 2**20} MB at its start)"
    )
    return [chosen]


async def _open_once(
    world: bytes,
    guild_id: int,
    total: int,
    shards: int | None,
    indexes: Sequence[str],
    name: str,
    *,
    traced: bool,
) -> Result:
    """One cold open and count() with a new bot and a new model on a fresh copy of ``world``."""
    model = DiscordModel()
    bot = new_bot()
    with model.installed():
        async with run_on_world(bot, world):
            gc.collect()
            if traced:
                tracemalloc.start()
            rss_before = current_rss_bytes()
            db = discobase.Database(guild_id, bot=bot)
            table = define_record_table(db, shards, indexes)
            phase = Phase(name, model, unit="open").start()
            counted: int | None = None
            with phase.guarded():
                await phase.op(db.open())
                counted = await table.count()
            result = phase.finish()
            gc.collect()
            result["rss_growth_bytes"] = current_rss_bytes() - rss_before
            if traced:
                result["held_bytes"] = tracemalloc.get_traced_memory()[0]
                tracemalloc.stop()
            result["verified"] = (
                "ok" if counted == total else f"MISMATCH: count() = {counted}, expected {total}"
            )
            await db.close()
    return result


async def w4_queries(sizes: Sizes, model: DiscordModel, table: Any, total: int) -> list[Result]:
    results: list[Result] = []

    async def queries(
        phase: Phase, count: int, query: Callable[[int], Awaitable[list[Any]]], expect: Any
    ) -> None:
        wrong: Counter[str] = Counter()
        with phase.guarded():
            for q in range(count):
                found = await phase.call(query, q)
                if found is not None and len(found) != expect(q):
                    wrong["wrong result size"] += 1
        phase.extra["wrong_results"] = sum(wrong.values())

    names = [record_name((q * 7919 + 13) % total) for q in range(sizes.w4_finds)]
    phase = Phase("W4 finds by an indexed field (name)", model, unit="find").start()
    await queries(
        phase,
        sizes.w4_finds,
        lambda q: table.find(name=names[q]),
        lambda q: 1,
    )
    results.append(phase.finish())

    records_by_n = Counter(record_fields(number)["n"] for number in range(total))
    x_of = [record_fields(number)["x"] for number in range(total)]

    def range_expect(q: int) -> int:
        lo, hi = range_bounds(q)
        return sum(records_by_n[n] for n in range(lo, hi))

    def range_query(q: int) -> Awaitable[list[Any]]:
        lo, hi = range_bounds(q)
        return table.find((table.n >= lo) & (table.n < hi))  # type: ignore[no-any-return]

    phase = Phase("W4 range queries on an indexed field (n)", model, unit="query").start()
    await queries(phase, sizes.w4_ranges, range_query, range_expect)
    results.append(phase.finish())

    def scan_expect(q: int) -> int:
        lo, hi = scan_bounds(q)
        return sum(1 for x in x_of if lo <= x < hi)

    def scan_query(q: int) -> Awaitable[list[Any]]:
        lo, hi = scan_bounds(q)
        return table.find((table.x >= lo) & (table.x < hi))  # type: ignore[no-any-return]

    phase = Phase(f"W4 unindexed scans (x) of {total} records", model, unit="scan").start()
    await queries(phase, sizes.w4_scans, scan_query, scan_expect)
    results.append(phase.finish())
    return results


async def updates_deletes(sizes: Sizes, model: DiscordModel, shards: int | None) -> list[Result]:
    results: list[Result] = []
    ops = sizes.w6_ops
    async with simulated_guild(model) as world:
        db, table = await world.open_database(world.env.bot, shards)  # type: ignore[arg-type]
        rows = [table(**fields) for fields in records(range(2 * ops))]
        await table.insert_many(rows)
        one_by_one, concurrent = rows[:ops], rows[ops:]

        # Each phase starts on rested buckets: awaited writes leave some shard's window spent,
        # and a concurrent phase's batch to that shard would wait out the previous phase's limit.
        await rest(model, results)
        phase = Phase("W6 updates awaited one by one", model, unit="update").start()
        with phase.guarded():
            for row in one_by_one:
                await phase.op(row.update(n=row.n + 1))
        results.append(phase.finish())

        await rest(model, results)
        phase = Phase("W6 deletes awaited one by one", model, unit="delete").start()
        with phase.guarded():
            for row in one_by_one:
                await phase.op(row.delete())
        results.append(phase.finish())
        await verify_count(results[-1], table, ops)

        await rest(model, results)
        phase = Phase("W6 concurrent updates", model, unit="update").start()
        with phase.guarded():
            await asyncio.gather(*(phase.op(row.update(n=row.n + 1)) for row in concurrent))
        results.append(phase.finish())

        await rest(model, results)
        phase = Phase("W6 concurrent deletes", model, unit="delete").start()
        with phase.guarded():
            await asyncio.gather(*(phase.op(row.delete()) for row in concurrent))
        results.append(phase.finish())
        await verify_count(results[-1], table, 0)
        await close_counting_trailing_calls(db, model, results)
    return results


def response_text(result: simcord.InteractionResult) -> str:
    """Everything a slash command answered, as text: contents and embeds, follow-ups included."""
    messages = [result.response, *result.followups]
    parts = []
    for message in messages:
        if message is None:
            continue
        parts.append(message.content or "")
        for embed in message.embeds:
            parts.append(json.dumps(embed.to_dict()))
    return "\n".join(parts)


async def slash_find(sizes: Sizes, model: DiscordModel, shards: int | None) -> list[Result]:
    """``/find`` through the bot's slash command, end to end, on a table built beforehand."""
    from discobot import Settings, create_bot

    results: list[Result] = []
    total = sizes.w7_records
    # No guild in the settings: the bot's on_ready would open the database in bot scope.
    bot = create_bot(Settings())
    with model.installed():
        async with simcord.run(bot, check_errors=False) as env:
            guild = env.create_guild(GUILD_NAME)
            channel = guild.create_text_channel("general")
            owner = simcord.MemberActor(env, guild, guild.owner)
            loader = discobase.Database(guild.id, bot=bot)
            table = define_record_table(loader, shards)
            await loader.open()
            await table.insert_many([table(**fields) for fields in records(range(total))])
            await loader.close()
            await bot.database(guild.id)

            phase = Phase(f"W7 /find by name on {total} records", model, unit="command").start()
            wrong = 0
            with phase.guarded():
                for q in range(sizes.w7_commands):
                    name = record_name((q * 7919 + 13) % total)
                    answer = await phase.op(
                        slash_raising_bot_errors(
                            env, owner, channel, "find", table=TABLE_NAME, query=f"name={name}"
                        )
                    )
                    if answer is not None and name[:12] not in response_text(answer):
                        wrong += 1
                        if wrong == 1:
                            phase.notes.append(f"first wrong answer: {response_text(answer)[:300]}")
            phase.extra["wrong_results"] = wrong
            results.append(phase.finish())
            await bot.close_databases()
    return results


def w8_scans(total: int) -> int:
    """Unindexed scans W8 runs on ``total`` records: 100, fewer past 100,000 (at least 10)."""
    return max(10, min(100, 10_000_000 // total))


async def cursor_over(model: DiscordModel, table: Any, total: int) -> Result:
    """``async for record in table.all()`` over the whole table: CPU per record, then the
    memory it holds, as ``tracemalloc``'s peak over a second pass (which it slows down). A
    collection first, so that the garbage earlier phases left is not collected in this one."""
    gc.collect()
    phase = Phase(f"W8 cursor (async for, all()) over {total} records", model, unit="record")
    phase.start()
    with phase.guarded():
        count = 0
        async for _ in table.all():
            count += 1
        phase.ops = count
    result = phase.finish()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        async for _ in table.all():
            pass
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    result["cursor_peak_traced_bytes"] = peak
    result["verified"] = "ok" if count == total else f"MISMATCH: {count} of {total} records"
    return result


async def w8_curve(sizes: Sizes, model: DiscordModel, shards: int | None) -> list[Result]:
    """W8: each cost at every size of :attr:`Sizes.w8_records`, one simulated guild per size."""
    results: list[Result] = []
    for total in sizes.w8_records:
        results.extend(await _w8_at(total, sizes.w8_finds, model, shards))
        gc.collect()
    return results


async def _w8_at(total: int, finds: int, model: DiscordModel, shards: int | None) -> list[Result]:
    """W8 at one size; the insert_many phase also records the real seconds the size took."""
    started = time.monotonic()
    results: list[Result] = []
    async with simulated_guild(model) as world:
        db, table = await world.open_database(
            world.env.bot,  # type: ignore[arg-type]
            shards,
            W8_INDEXES,
        )
        fields = records(range(total))
        x_of = [row["x"] for row in fields]
        rows = [table(**row) for row in fields]
        del fields
        phase = Phase(f"W8 insert_many of {total} records", model, unit="record").start()
        with phase.guarded():
            await phase.op(table.insert_many(rows), count=total)
        results.append(phase.finish())
        del rows
        gc.collect()
        await verify_count(results[-1], table, total)

        names = [record_name((q * 7919 + 13) % total) for q in range(finds)]
        phase = Phase(f"W8 finds by an indexed field (name) on {total} records", model, unit="find")
        phase.start()
        wrong = 0
        with phase.guarded():
            for q in range(finds):
                found = await phase.call(table.find, name=names[q])
                wrong += found is not None and len(found) != 1
        phase.extra["wrong_results"] = wrong
        results.append(phase.finish())

        phase = Phase(f"W8 unindexed scans (x) of {total} records", model, unit="scan").start()
        wrong = 0
        with phase.guarded():
            for q in range(w8_scans(total)):
                lo, hi = scan_bounds(q)
                found = await phase.call(table.find, (table.x >= lo) & (table.x < hi))
                expected = sum(1 for x in x_of if lo <= x < hi)
                wrong += found is not None and len(found) != expected
        phase.extra["wrong_results"] = wrong
        results.append(phase.finish())
        del x_of

        results.append(await cursor_over(model, table, total))

        results.append(await compaction(world, model, db, f"W8 compaction of {total} records"))
        await close_counting_trailing_calls(db, model, results)
        del db, table
        gc.collect()
        name = f"W8 cold open of {total} records by a new process, then count()"
        results.append(cold_open_in_new_process(world, total, shards, W8_INDEXES, name))
    results[0]["size_real_seconds"] = round(time.monotonic() - started, 1)
    return results


W9_THIS = "W9 change feed: a write of this process until a watcher yields it"
W9_OTHER = "W9 change feed: a write of another process (gateway) until a watcher yields it"


async def watch_latency(sizes: Sizes, model: DiscordModel, shards: int | None) -> list[Result]:
    """W9: the change feed's latency, in simulated seconds from a write's acknowledgement to a
    watcher (``table.watch()``) yielding it; first for writes of the watcher's process, then
    for writes of another process (another client of the bot, whose messages reach the
    watcher's process through the gateway). One write a second. A change is yielded once
    every shard is known complete past it: ``Compaction.margin`` behind the newest id the
    process has seen, when the watcher next reads (docs/library.md, "Change feed").

    The model moves SimCord's clock (the processes' wall clock) when it handles a call; a
    watcher that waits for the horizon reads the clock between calls, so a task keeps it in
    step with the loop here, a tenth of a second at a time."""
    results: list[Result] = []
    margin = discobase.Compaction().margin
    async with simulated_guild(model) as world:

        async def tick() -> None:
            while True:
                model.sync_clock(world.env.backend)
                await asyncio.sleep(0.1)

        ticking = asyncio.create_task(tick())
        db, table = await world.open_database(world.env.bot, shards)  # type: ignore[arg-type]
        other = discobase.Database(world.guild_id, bot=await second_client(world.env))
        other_table = define_record_table(other, shards)
        await other.open()
        loop = asyncio.get_running_loop()
        first = 0
        for name, writer in ((W9_THIS, table), (W9_OTHER, other_table)):
            numbers = range(first, first + sizes.w9_writes)
            first += sizes.w9_writes
            yielded: dict[str, float] = {}
            expected = {record_name(number) for number in numbers}

            async def watch(into: dict[str, float], names: set[str]) -> None:
                async for change in table.watch():
                    if change.record.name in names:
                        into[change.record.name] = loop.time()
                        if len(into) >= len(names):
                            return

            phase = Phase(name, model, unit="change").start()
            watching = asyncio.create_task(watch(yielded, expected))
            acknowledged: dict[str, float] = {}
            with phase.guarded():
                for number in numbers:
                    fields = record_fields(number)
                    await writer(**fields).save()
                    acknowledged[fields["name"]] = loop.time()
                    await asyncio.sleep(1.0)
                await asyncio.wait_for(watching, timeout=10 * margin + len(numbers))
            watching.cancel()
            phase.latencies = [
                yielded[key] - at for key, at in acknowledged.items() if key in yielded
            ]
            phase.op_cpu = [0.0] * len(phase.latencies)
            phase.ops = len(phase.latencies)
            phase.extra["horizon_margin_s"] = margin
            phase.extra["verified"] = (
                "ok"
                if phase.ops == len(numbers)
                else f"MISMATCH: {phase.ops} of {len(numbers)} changes yielded"
            )
            results.append(phase.finish())
        ticking.cancel()
        await other.close()
        await close_counting_trailing_calls(db, model, results)
    return results


#: W10's aggregates: (what, keyword arguments of ``aggregate``).
W10_AGGREGATES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("count per flag", {"group_by": "flag"}),
    ("count, sum and avg of x per flag", {"group_by": "flag", "sum": "x", "avg": "x"}),
    ("count per n (indexed, 10,000 groups)", {"group_by": "n"}),
    ("sum, min and max of x per n", {"group_by": "n", "sum": "x", "min": "x", "max": "x"}),
    ("count and sum of x, no groups", {"sum": "x"}),
)


async def aggregate_cpu(sizes: Sizes, model: DiscordModel, shards: int | None) -> list[Result]:
    """W10: the CPU of ``Table.aggregate`` over the whole table, per call, for a few shapes
    (reads from memory: no REST call, no simulated time)."""
    results: list[Result] = []
    total = sizes.w10_records
    async with simulated_guild(model) as world:
        db, table = await world.open_database(world.env.bot, shards)  # type: ignore[arg-type]
        await table.insert_many([table(**fields) for fields in records(range(total))])
        flags = Counter(record_fields(number)["flag"] for number in range(total))
        for what, arguments in W10_AGGREGATES:
            phase = Phase(f"W10 aggregate {what} of {total} records", model, unit="call")
            phase.start()
            wrong = 0
            with phase.guarded():
                for _ in range(sizes.w10_calls):
                    found = await phase.op(table.aggregate(**arguments))
                    if arguments.get("group_by") == "flag" and found is not None:
                        wrong += {g["group"]["flag"]: g["count"] for g in found} != flags
                    elif found is not None and "group_by" not in arguments:
                        wrong += found["count"] != total
            phase.extra["wrong_results"] = wrong
            results.append(phase.finish())
        await close_counting_trailing_calls(db, model, results)
    return results


W11_BEFORE = "W11 inserts awaited one by one, 1 shard"
W11_RESHARD = "W11 reshard from 1 to 6 shards"
W11_AFTER = "W11 inserts awaited one by one, after the reshard to 6 shards"


async def reshard_growth(sizes: Sizes, model: DiscordModel, shards: int | None) -> list[Result]:
    """W11: a table of one shard (made with ``shards=1``, before threads, or by 1.0) holding
    ``w11_records`` in a snapshot grows to 6 shards (``Database.reshard``); W1's awaited
    inserts before and after."""
    results: list[Result] = []
    async with simulated_guild(model) as world:
        db, table = await world.open_database(world.env.bot, 1)  # type: ignore[arg-type]
        await table.insert_many(records(range(sizes.w11_records)))
        results.append(await compaction(world, model, db, "W11 compaction before the reshard"))
        inserted = sizes.w11_records
        for name in (W11_BEFORE, W11_RESHARD, W11_AFTER):
            phase = Phase(name, model, unit="reshard" if name == W11_RESHARD else "insert")
            phase.start()
            with phase.guarded():
                if name == W11_RESHARD:
                    await phase.op(db.reshard(TABLE_NAME, shards=6))
                else:
                    for fields in records(range(inserted, inserted + sizes.w11_inserts)):
                        await phase.op(table(**fields).save())
                    inserted += sizes.w11_inserts
            results.append(phase.finish())
            await verify_count(results[-1], table, inserted)
        await close_counting_trailing_calls(db, model, results)
    return results


Group = Callable[[Sizes, DiscordModel, int | None], Awaitable[list[Result]]]

#: Workload groups by name; each runs in a process of its own.
GROUPS: dict[str, Group] = {
    "W1": awaited_inserts,
    "W1-defaults": awaited_inserts_library_defaults,
    "W2": concurrent_inserts,
    "W3-W5": build_query_reopen,
    "W6": updates_deletes,
    "W7": slash_find,
    "W8": w8_curve,
    "W9": watch_latency,
    "W10": aggregate_cpu,
    "W11": reshard_growth,
}


async def run_group(
    name: str, sizes: Sizes, model: DiscordModel, shards: int | None = None
) -> list[Result]:
    """Run workload group ``name``; ``shards`` sets the table's shards (None: the default)."""
    return await GROUPS[name](sizes, model, shards)
