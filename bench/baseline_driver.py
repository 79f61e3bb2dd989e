"""Drive discobase 1.0.0 (from PyPI) through the benchmark's workloads, on the same SimCord + model.

Run by :mod:`bench.baseline` with the interpreter of ``bench/.baseline-venv`` as a script:
``python bench/baseline_driver.py GROUP --sizes JSON --out PATH --budget SECONDS``. Its directory
is first on ``sys.path``, so it imports the model, the measurements and the records as plain
modules; the repository root is not on the path and our ``discobase`` package is never imported
(the name ``discobase`` is 1.0.0 here).

How 1.0.0 is driven (see shared/notes/baseline-1.0.0.md):

- its ``Database(name)`` owns a bot and looks its guild up by name: the guild is created in SimCord
  first;
- it would run ``init()`` from its ``on_ready`` handler, in bot scope, where SimCord's timers
  follow real time and a virtual-time loop jumps; the handler is removed and the same steps (add
  its two cogs, ``await db.init()``) run from the driving coroutine, then ``db.open = True``;
- ``save()``/``update()``/``delete()`` return tasks, awaited here;
- it stores only str, int and bool: records use ``x_milli: int`` and ``at: str`` (ISO 8601);
- it has no ``insert_many``, no range queries and no predicate queries (W3 and W4's range queries
  are reported as unsupported); its only scan is ``find()`` without a query (every record), which
  W4's scans use, filtering in Python;
- it cannot build tables of the workloads' sizes: inserts run until ``MAX_CONSECUTIVE_FAILURES``
  fail in a row or the phase's real-time budget is spent, and the later phases run on what was
  built (finds look up records it holds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
import traceback
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import looptime
import simcord
from discobase.cogs.utility import Utility
from discobase.cogs.visualization import Visualization
from measure import Phase, slash_raising_bot_errors
from model import DiscordModel
from records import Sizes, baseline_fields, record_name, scan_bounds

import discobase

if discobase.__version__ != "1.0.0":  # the repository root leaked onto sys.path
    raise SystemExit(
        f"baseline_driver.py imported discobase {discobase.__version__} from "
        f"{discobase.__file__}, not 1.0.0: run it with bench/.baseline-venv"
    )

GUILD_NAME = "discobase-bench"
MAX_CONSECUTIVE_FAILURES = 10
#: SimCord's settle timeout for slash commands, in (virtual) seconds; its default is 5.
SLASH_SETTLE_SECONDS = 3600.0
Result = dict[str, Any]


class Rec(discobase.Table):
    """The benchmark's record in the shape 1.0.0 can store."""

    name: str
    n: int
    x_milli: int
    flag: bool
    at: str


def new_database() -> tuple[discobase.Database, type[Rec]]:
    """A 1.0.0 database with the record table, its on_ready handler removed."""
    db = discobase.Database(GUILD_NAME)
    table = type("Rec", (Rec,), {"__annotations__": {}})
    db.table(table)
    delattr(db.bot, "on_ready")
    return db, table


async def init_database(db: discobase.Database) -> None:
    """What 1.0.0's on_ready does, awaited from the driving coroutine."""
    await db.bot.add_cog(Utility(db.bot))
    await db.bot.add_cog(Visualization(db.bot))
    await db.init()
    db.open = True


async def attempt(action: Callable[[], Awaitable[Any]]) -> Any:
    """Await ``action()``, so that an error raised when making the task counts as a failure."""
    return await action()


class Budget:
    """A real-time budget per phase, and the rule that stops a failing run."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.consecutive_failures = 0

    def restart(self) -> None:
        """Give the next phase a budget of its own."""
        self.deadline = time.monotonic() + self.seconds
        self.consecutive_failures = 0

    def spent(self) -> bool:
        return time.monotonic() >= self.deadline

    def stop(self, phase: Phase) -> bool:
        """True when the phase should stop issuing operations; notes why once."""
        reason = None
        if self.spent():
            reason = f"stopped: real-time budget of {self.seconds:g} s spent"
        elif self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            reason = f"stopped after {MAX_CONSECUTIVE_FAILURES} consecutive failures"
        if reason and reason not in phase.notes:
            phase.notes.append(reason)
        return reason is not None

    async def op(self, phase: Phase, awaitable: Awaitable[Any]) -> Any:
        failures = sum(phase.failures.values())
        result = await phase.op(awaitable)
        failed = sum(phase.failures.values()) > failures
        self.consecutive_failures = self.consecutive_failures + 1 if failed else 0
        return result


@contextlib.asynccontextmanager
async def simulated_guild(model: DiscordModel, db: discobase.Database) -> AsyncIterator[Any]:
    with model.installed():
        async with simcord.run(db.bot) as env:
            env.create_guild(GUILD_NAME)
            await init_database(db)
            yield env


async def insert_one_by_one(
    phase: Phase, budget: Budget, table: type[Rec], count: int
) -> list[Rec]:
    saved = []
    for number in range(count):
        if budget.stop(phase):
            break
        record = table(**baseline_fields(number))
        if await budget.op(phase, attempt(record.save)) is not None:
            saved.append(record)
    phase.extra["attempted_ops"] = phase.ops + sum(phase.failures.values())
    return saved


async def findable(table: type[Rec], records: list[Rec], budget: Budget) -> str:
    """How many of ``records`` a find by name returns (a check after the phase, not measured)."""
    budget.restart()
    found = checked = 0
    for record in records:
        if budget.spent():
            break
        checked += 1
        with contextlib.suppress(Exception):
            found += len(await table.find(name=record.name)) == 1
    return f"{found} of {checked} saved records checked are findable by name"


async def w1(sizes: Sizes, model: DiscordModel, budget: Budget) -> list[Result]:
    db, table = new_database()
    async with simulated_guild(model, db):
        phase = Phase("W1 inserts awaited one by one", model, unit="insert").start()
        with phase.guarded():
            await insert_one_by_one(phase, budget, table, sizes.w1_inserts)
        return [phase.finish()]


async def w2(sizes: Sizes, model: DiscordModel, budget: Budget) -> list[Result]:
    db, table = new_database()
    async with simulated_guild(model, db):
        per_task = sizes.w2_inserts // sizes.w2_tasks
        phase = Phase(
            f"W2 inserts from {sizes.w2_tasks} concurrent tasks", model, unit="insert"
        ).start()
        saved: list[Rec] = []

        async def task(first: int) -> None:
            for number in range(first, first + per_task):
                if budget.spent():
                    return
                record = table(**baseline_fields(number))
                if await phase.op(attempt(record.save)) is not None:
                    saved.append(record)

        tasks = [asyncio.ensure_future(task(n * per_task)) for n in range(sizes.w2_tasks)]
        with phase.guarded():
            await cancel_when_spent(tasks, budget, phase)
        result = phase.finish()
        result["findable_after"] = await findable(table, saved, budget)
        return [result]


async def cancel_when_spent(
    tasks: list[asyncio.Future[None]], budget: Budget, phase: Phase
) -> None:
    """Wait for ``tasks``; cancel those still running once the real-time budget is spent."""
    while not all(task.done() for task in tasks):
        if budget.spent():
            running = [task for task in tasks if not task.done()]
            for task in running:
                task.cancel()
            phase.notes.append(
                f"stopped: real-time budget of {budget.seconds:g} s spent; "
                f"{len(running)} tasks cancelled mid-insert"
            )
            break
        await asyncio.wait(tasks, timeout=1.0)
    await asyncio.gather(*tasks, return_exceptions=True)


def unsupported(name: str, reason: str) -> Result:
    return {"phase": name, "unsupported": reason}


async def build_query_reopen(sizes: Sizes, model: DiscordModel, budget: Budget) -> list[Result]:
    results = [unsupported("W3 insert_many", "1.0.0 has no insert_many (one save() per record)")]
    db, table = new_database()
    async with simulated_guild(model, db) as env:
        phase = Phase(
            f"W4 setup: {sizes.w3_records} inserts awaited one by one (1.0.0 has no bulk insert)",
            model,
            unit="insert",
        ).start()
        with phase.guarded():
            saved = await insert_one_by_one(phase, budget, table, sizes.w3_records)
        results.append(phase.finish())
        built = len(saved)
        if not built:
            return results
        note = f"on the {built} records 1.0.0 holds, not {sizes.w3_records}"
        budget.restart()

        phase = Phase("W4 finds by an indexed field (name)", model, unit="find").start()
        wrong = 0
        with phase.guarded():
            for q in range(sizes.w4_finds):
                if budget.stop(phase):
                    break
                number = (q * 7919 + 13) % built
                found = await budget.op(phase, table.find(name=record_name(number)))
                wrong += found is not None and len(found) != 1
        phase.notes.append(note)
        phase.extra["wrong_results"] = wrong
        results.append(phase.finish())
        results.append(
            unsupported(
                "W4 range queries on an indexed field (n)",
                "1.0.0 has no range queries (find() takes equality only)",
            )
        )

        budget.restart()
        phase = Phase("W4 unindexed scans (x)", model, unit="scan").start()
        with phase.guarded():
            for q in range(sizes.w4_scans):
                if budget.stop(phase):
                    break
                lo, hi = scan_bounds(q)
                await budget.op(phase, scan(table, lo, hi))
        phase.notes.append(
            note + "; every 1.0.0 field is indexed, so the scan is find() without a query "
            "(every record) filtered in Python"
        )
        results.append(phase.finish())

        results.append(
            unsupported("W5 compaction (before the cold open)", "1.0.0 has no compaction")
        )
        cold_db, cold_table = new_database()
        await env.restart_bot(cold_db.bot)
        phase = Phase("W5 cold open by a new client, then one find", model, unit="open").start()
        with phase.guarded():
            await phase.op(init_database(cold_db))
            found = await cold_table.find(name=saved[0].name)
            phase.extra["verified"] = "ok" if len(found) == 1 else f"MISMATCH: {len(found)} found"
        phase.notes.append(note)
        results.append(phase.finish())
    return results


async def scan(table: type[Rec], lo: float, hi: float) -> list[Rec]:
    records = await table.find()
    return [record for record in records if lo * 1000 <= record.x_milli < hi * 1000]


async def w6(sizes: Sizes, model: DiscordModel, budget: Budget) -> list[Result]:
    db, table = new_database()
    results: list[Result] = []
    async with simulated_guild(model, db):
        phase = Phase(
            f"W6 setup: {2 * sizes.w6_ops} inserts awaited one by one", model, unit="insert"
        ).start()
        with phase.guarded():
            saved = await insert_one_by_one(phase, budget, table, 2 * sizes.w6_ops)
        results.append(phase.finish())
        half = len(saved) // 2
        one_by_one, concurrent = saved[:half], saved[half:]
        note = f"on {half} records, not {sizes.w6_ops}: 1.0.0 held {len(saved)}"

        async def update(record: Rec) -> Any:
            record.n += 1
            return await record.update()

        async def delete(record: Rec) -> Any:
            return await record.delete()

        # As for ours: each phase starts on rested buckets (bench.workloads, W6).
        for name, action in (("updates", update), ("deletes", delete)):
            budget.restart()
            await model.rest()
            phase = Phase(f"W6 {name} awaited one by one", model, unit=name[:-1]).start()
            with phase.guarded():
                for record in one_by_one:
                    if budget.stop(phase):
                        break
                    await budget.op(phase, action(record))
            phase.notes.append(note)
            results.append(phase.finish())
        for name, action in (("updates", update), ("deletes", delete)):
            await model.rest()
            phase = Phase(f"W6 concurrent {name}", model, unit=name[:-1]).start()
            with phase.guarded():
                await asyncio.gather(*(phase.op(action(record)) for record in concurrent))
            phase.notes.append(note)
            results.append(phase.finish())
    return results


async def w7(sizes: Sizes, model: DiscordModel, budget: Budget) -> list[Result]:
    """``/find`` through 1.0.0's own slash command (options: table channel, column, value)."""
    db, table = new_database()
    results: list[Result] = []
    with model.installed():
        # Its /find makes many REST calls; SimCord's settling must outlast their simulated time.
        async with simcord.run(
            db.bot, settle_timeout=SLASH_SETTLE_SECONDS, check_errors=False
        ) as env:
            guild = env.create_guild(GUILD_NAME)
            await init_database(db)
            phase = Phase(
                f"W7 setup: {sizes.w7_records} inserts awaited one by one", model, unit="insert"
            ).start()
            with phase.guarded():
                saved = await insert_one_by_one(phase, budget, table, sizes.w7_records)
            results.append(phase.finish())
            if not saved:
                return results
            budget.restart()
            cursor = table.__disco_cursor__
            assert cursor is not None
            channel = next(
                c for c in guild.channels.values() if c.id == cursor.metadata.table_channel
            )
            owner = simcord.MemberActor(env, guild, guild.owner)
            phase = Phase(f"W7 /find by name on {len(saved)} records", model, unit="command")
            phase.start()
            wrong = 0
            with phase.guarded():
                for q in range(sizes.w7_commands):
                    if budget.stop(phase):
                        break
                    name = saved[(q * 7919 + 13) % len(saved)].name
                    answer = await budget.op(
                        phase,
                        slash_raising_bot_errors(
                            env, owner, channel, "find", table=channel, column="name", value=name
                        ),
                    )
                    if answer is not None and name[:12] not in answer_text(answer):
                        wrong += 1
            phase.extra["wrong_results"] = wrong
            phase.notes.append(f"on the {len(saved)} records 1.0.0 holds, not {sizes.w7_records}")
            results.append(phase.finish())
    return results


def answer_text(result: simcord.InteractionResult) -> str:
    parts = []
    for message in [result.response, *result.followups]:
        if message is not None:
            parts.append(message.content or "")
            parts.extend(json.dumps(embed.to_dict()) for embed in message.embeds)
    return "\n".join(parts)


Group = Callable[[Sizes, DiscordModel, Budget], Awaitable[list[Result]]]
GROUPS: dict[str, Group] = {"W1": w1, "W2": w2, "W3-W5": build_query_reopen, "W6": w6, "W7": w7}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("group", choices=sorted(GROUPS))
    parser.add_argument("--sizes", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--budget", type=float, default=120.0, help="real seconds per phase")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    warnings.simplefilter("ignore", DeprecationWarning)
    sizes = Sizes.from_json(json.loads(args.sizes))
    loop = looptime.new_event_loop(start=0)
    try:
        phases = loop.run_until_complete(
            GROUPS[args.group](sizes, DiscordModel(), Budget(args.budget))
        )
        outcome: dict[str, Any] = {"phases": phases, "version": discobase.__version__}
    except Exception as error:
        outcome = {"phases": [], "error": "".join(traceback.format_exception(error))[-3000:]}
    finally:
        loop.close()
    args.out.write_text(json.dumps(outcome, indent=1, default=str))
    return 0 if "error" not in outcome else 1


if __name__ == "__main__":
    sys.exit(main())
