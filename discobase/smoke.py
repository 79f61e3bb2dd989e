"""``python -m discobase.smoke --guild ID``: a short end-to-end run against real Discord.

For people with a bot token and a throwaway guild (see ``docs/real-discord.md``). It opens a
database in a category of its own (``discobase-smoke-<random>``, so nothing else in the guild is
touched), creates a table, writes, opens a second client that must see those writes and catch
up with later ones, compacts, reopens, checks, drops the table and deletes everything it made.
It prints what each step cost: REST calls, wall time per call, and the time discord.py spent
waiting out rate limits. The token comes from ``DISCORD_TOKEN`` (the environment, or a
``.env`` file), never from the command line. It never runs in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .database import Database
from .errors import DiscobaseError

__all__ = ("SmokeReport", "main", "run_smoke")

#: Records the script writes: 10 saved one by one, 40 in one insert_many.
SINGLE_WRITES = 10
BATCH_WRITES = 40
#: How long the second client may take to see a write through the gateway.
LIVE_TIMEOUT = 20.0


@dataclass
class Step:
    name: str
    seconds: float
    calls: int
    rate_limit_wait: float
    detail: str = ""

    def __str__(self) -> str:
        per_call = f"{self.seconds / self.calls * 1000:.0f} ms/call" if self.calls else "no calls"
        waited = (
            f", waited {self.rate_limit_wait:.1f} s on rate limits" if self.rate_limit_wait else ""
        )
        detail = f"; {self.detail}" if self.detail else ""
        return f"{self.name:<12} {self.seconds:7.2f} s  {self.calls:4d} calls  {per_call}{waited}{detail}"


@dataclass
class SmokeReport:
    """What the run did and measured; ``ok`` when every check held."""

    steps: list[Step] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    rate_limits: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        lines = [str(step) for step in self.steps]
        lines.append(f"REST calls: {sum(self.calls.values())}")
        lines.extend(f"  {n:5d}  {route}" for route, n in sorted(self.calls.items()))
        lines.append(
            f"rate limits: {len(self.rate_limits)} waits, {sum(self.rate_limits):.1f} s in all"
        )
        lines.extend(f"FAILED: {failure}" for failure in self.failures)
        lines.append("smoke test passed" if self.ok else "smoke test FAILED")
        return "\n".join(lines)


class _RateLimitLog(logging.Handler):
    """Collects the waits discord.py logs when Discord answers 429 ("Retrying in N seconds")."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.waits: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "rate limited" in str(record.msg) and record.args and isinstance(record.args, tuple):
            seconds = record.args[-1]
            if isinstance(seconds, int | float):
                self.waits.append(float(seconds))


Connect = Callable[[], Awaitable[Database]]


async def run_smoke(
    connect: Connect,
    *,
    pause: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    out: Callable[[str], Any] = print,
) -> SmokeReport:
    """The script. ``connect()`` returns an open :class:`Database` on a new client (a new
    process) for the guild and storage category under test; ``pause(seconds)`` lets time pass
    (compaction only folds messages older than its margin)."""
    report = SmokeReport()
    limits = _RateLimitLog()
    discord_log = logging.getLogger("discord.http")
    discord_log.addHandler(limits)
    databases: list[Database] = []

    def calls() -> int:
        return sum(sum(db.transport.calls.values()) for db in databases)

    @contextmanager
    def step(name: str) -> Iterator[Step]:
        start, before, waited = time.monotonic(), calls(), sum(limits.waits)
        result = Step(name, 0.0, 0, 0.0)
        try:
            yield result
        finally:
            result.seconds = time.monotonic() - start
            result.calls = calls() - before
            result.rate_limit_wait = sum(limits.waits) - waited
            report.steps.append(result)
            out(str(result))

    def expect(condition: bool, failure: str) -> None:
        if not condition:
            report.failures.append(failure)
            out(f"FAILED: {failure}")

    async def new_process() -> Database:
        db = await connect()
        databases.append(db)
        return db

    try:
        with step("open"):
            first = await new_process()
        with step("create"):
            table = await first.create_table(
                "smoke", {"key": str, "n": int, "text": str}, primary_key="key", shards=2
            )
        expected: dict[str, int] = {}
        with step("writes") as s:
            for i in range(SINGLE_WRITES):
                await table(key=f"k{i}", n=i, text="x" * 100).save()
                expected[f"k{i}"] = i
            await table.insert_many(
                [table(key=f"b{i}", n=i, text="y" * 100) for i in range(BATCH_WRITES)]
            )
            expected.update({f"b{i}": i for i in range(BATCH_WRITES)})
            await table(key="k0", n=100, text="").update(n=100)
            expected["k0"] = 100
            await table(key="k1", n=1, text="").delete()
            del expected["k1"]
            s.detail = (
                f"{SINGLE_WRITES} saves, {BATCH_WRITES} in one insert_many, 1 update, 1 delete"
            )
        expect(await _state(first) == expected, "the writing client does not read its writes")
        with step("2nd client") as s:
            second = await new_process()
            expect(await _state(second) == expected, "a second client opened with other data")
        with step("catch-up") as s:
            await table(key="late", n=7, text="").save()
            expected["late"] = 7
            deadline = time.monotonic() + LIVE_TIMEOUT
            while await _state(second) != expected and time.monotonic() < deadline:
                await pause(0.25)
            live = await _state(second) == expected
            if not live:
                await second.sync()
            s.detail = "live through the gateway" if live else "only after sync()"
            expect(await _state(second) == expected, "the second client did not catch up")
        with step("compact") as s:
            await pause(_margin(first) + 1)
            folded = await first.compact()
            s.detail = f"{folded} messages folded"
            expect(await _state(first) == expected, "compaction changed the records")
            await second.sync()
            expect(await _state(second) == expected, "the second client differs after compaction")
        with step("reopen"):
            await first.close()
            reopened = await new_process()
            expect(await _state(reopened) == expected, "a reopened client reads other records")
        with step("check") as s:
            found = await reopened.check()
            s.detail = str(found).splitlines()[0] if str(found) else ""
            expect(found.ok, f"check() reported problems: {found}")
        with step("drop"):
            await reopened.drop_table("smoke")
            expect("smoke" not in reopened.tables, "the dropped table is still there")
    except DiscobaseError as error:
        report.failures.append(f"{type(error).__name__}: {error}")
        out(f"FAILED: {type(error).__name__}: {error}")
    finally:
        with step("clean up"):
            for db in reversed(databases):
                if db.is_open:
                    await db.clean()
                    break
            for db in databases:
                await db.close()
        discord_log.removeHandler(limits)
        for db in databases:
            for route, n in db.transport.calls.items():
                report.calls[route] = report.calls.get(route, 0) + n
        report.rate_limits = list(limits.waits)
    return report


async def _state(db: Database) -> dict[str, int]:
    rows = [record.model_dump() for record in await db.tables["smoke"].find()]
    return {row["key"]: row["n"] for row in rows}


def _margin(db: Database) -> float:
    return float(db.compaction.margin) if db.compaction is not None else 0.0


def read_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[str, int]:
    """The token and guild id from the command line, the environment and ``.env``; raises
    :class:`SystemExit` (status 2, with a message) when either is missing or malformed."""
    parser = argparse.ArgumentParser(
        prog="python -m discobase.smoke",
        description="Run a short end-to-end test against real Discord in a throwaway guild. "
        "The bot token is read from DISCORD_TOKEN (environment or --env-file).",
    )
    parser.add_argument(
        "--guild",
        help="id of a throwaway guild the bot is in (default: DISCOBASE_SMOKE_GUILD)",
    )
    parser.add_argument(
        "--env-file", default=".env", help="a file of KEY=VALUE lines to read (default: .env)"
    )
    args = parser.parse_args(argv)
    values = dict(_dotenv(Path(args.env_file)))
    values.update(os.environ if environ is None else environ)
    token = values.get("DISCORD_TOKEN", "").strip()
    if not token:
        parser.error("DISCORD_TOKEN is not set (environment or --env-file); nothing was run")
    guild = args.guild or values.get("DISCOBASE_SMOKE_GUILD", "")
    if not guild.isdigit():
        parser.error(
            "give the id of a throwaway guild: --guild ID or DISCOBASE_SMOKE_GUILD (digits)"
        )
    return token, int(guild)


def _dotenv(path: Path) -> Iterator[tuple[str, str]]:
    if not path.is_file():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            yield key.strip(), value.strip().strip("'\"")


def main(argv: Sequence[str] | None = None) -> int:
    token, guild = read_settings(argv)
    category = f"discobase-smoke-{secrets.token_hex(3)}"
    print(f"smoke test in guild {guild}, category {category}")

    async def connect() -> Database:
        return await Database(guild, category=category).connect(token)

    report = asyncio.run(run_smoke(connect))
    print(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
