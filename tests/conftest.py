"""Shared fixtures: a SimCord world with a guild, and databases bound to it.

SimCord gaps handled here (reported upstream in our notes):
- ``GET /channels/{id}/messages`` with only ``after=`` returns the newest page instead of the
  page right after the id. discobase pages newest first with ``before=`` only, so no patch is
  needed; ``test_history_paging`` pins that down.
- Files over 10 MiB are accepted: discobase enforces the limit itself (``MAX_ATTACHMENT``).
- ``enforce_nonce`` is not honoured (a resent nonce makes a second message): discobase's
  readers drop a batch whose id they have seen, which tests cover.

And one CPython gap: on 3.11.7, ``ast.parse`` can fail with "SystemError: AST constructor
recursion depth mismatch" after some exception paths through asyncio tasks (a CPython bug in
the AST constructor's recursion bookkeeping, fixed in later releases). Hypothesis's pytest plugin imports ``hypothesis`` lazily in the terminal
summary, where pytest's assertion rewriter parses it; importing it here parses it at start-up.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import discord
import hypothesis  # noqa: F401  (see below)
import pytest
import simcord
from discord.ext import commands

import discobase
from tests.strict import STRICT_RUN, Strict, no_thread_created_message


def make_bot() -> commands.Bot:
    """A bot like the one discobase users share with their database."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    return commands.Bot(command_prefix="!", intents=intents, help_command=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "strict: run this test in strict mode (tests/strict.py)")


@pytest.fixture(autouse=True)
def _strict_mode(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Strict | None]:
    """Strict mode for SimCord tests: every one with ``DISCOBASE_STRICT=1``, else those marked
    ``strict`` or asking for the ``strict`` fixture."""
    wanted = (
        STRICT_RUN
        or request.node.get_closest_marker("strict") is not None
        or "strict" in request.fixturenames
    )
    if "simcord_env" not in request.fixturenames:
        yield None
        return
    env = request.getfixturevalue("simcord_env")
    no_thread_created_message(env, monkeypatch)  # a SimCord gap no test should rely on
    if not wanted:
        yield None
        return
    seed = f"{os.environ.get('DISCOBASE_STRICT_SEED', '0')}:{request.node.nodeid}"
    controller = Strict(env, seed=seed).install(monkeypatch)
    yield controller
    controller.close()


@pytest.fixture
def strict(_strict_mode: Strict | None) -> Strict:
    """The strict-mode controller (strict mode is on for the test that asks for it)."""
    assert _strict_mode is not None, "the strict fixture needs a SimCord test (simcord_env)"
    return _strict_mode


@pytest.fixture
def simcord_bot() -> commands.Bot:
    return make_bot()


@pytest.fixture
def guild(simcord_env: simcord.Env) -> simcord.GuildHandle:
    return simcord_env.create_guild("storage")


@pytest.fixture
def fast_retry() -> discobase.RetryPolicy:
    """Retries without waiting real seconds (SimCord's clock only moves when told)."""
    return discobase.RetryPolicy(attempts=4, base_delay=0.0, max_delay=0.0)


@pytest.fixture
def new_db(
    simcord_env: simcord.Env, guild: simcord.GuildHandle, fast_retry: discobase.RetryPolicy
) -> Callable[..., discobase.Database]:
    """Make a Database on the current bot (after ``env.restart_bot``: the new one)."""

    def make(**options: object) -> discobase.Database:
        options.setdefault("retry", fast_retry)
        return discobase.Database(guild.id, bot=simcord_env.bot, **options)  # type: ignore[arg-type]

    return make


async def reopen(
    env: simcord.Env,
    db: discobase.Database | None,
    new_db: Callable[..., discobase.Database],
    *tables: type[discobase.Table],
) -> discobase.Database:
    """Close ``db`` (if given), restart the bot (a new process on the same guild) and open a
    fresh Database with ``tables`` registered."""
    if db is not None:
        await db.close()
    await env.restart_bot(make_bot())
    fresh = new_db()
    for table in tables:
        fresh.table(table)
    await fresh.open()
    return fresh


async def past_horizon(env: simcord.Env) -> None:
    """Move the clock past the horizon margin: what was written so far may be snapshotted
    (a compaction folds only messages made that long before it reads the channel)."""
    await env.advance_time(discobase.Compaction().margin + 1)


def rest_calls(env: simcord.Env, since: int = 0) -> list[str]:
    """The REST calls made since index ``since`` as ``METHOD path``."""
    return [f"{r.method} {r.path}" for r in env.http_requests[since:]]


DISCOBASE_SOURCE = Path(discobase.__file__).parent
BOT_SOURCES = (DISCOBASE_SOURCE.parent / "bot.py", DISCOBASE_SOURCE.parent / "cogs")


def discobase_tasks(*, with_bot: bool = False) -> list[asyncio.Task[object]]:
    """The unfinished tasks running discobase's own code (its writers, compactions, catch-ups);
    ``with_bot`` counts those running bot.py's and the cogs' code too."""
    sources = (DISCOBASE_SOURCE, *BOT_SOURCES) if with_bot else (DISCOBASE_SOURCE,)
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if task.done() or code is None:
            continue
        path = Path(code.co_filename)
        if any(path == source or source in path.parents for source in sources):
            found.append(task)
    return found


class HeldGateway:
    """Holds the bot's MESSAGE_CREATE events back, as a slow gateway does, until released:
    they then arrive after the REST answers to later writes."""

    def __init__(self, bot: Any) -> None:
        self.state = bot._connection  # gateway events reach the client through it
        self.real = self.state.dispatch
        self.held: list[tuple[Any, ...]] = []
        self.holding = False
        self.state.dispatch = self.dispatch

    def dispatch(self, event: str, *args: Any, **kwargs: Any) -> None:
        if event == "message" and self.holding:
            self.held.append(args)
            return
        self.real(event, *args, **kwargs)

    def release(self) -> None:
        self.holding = False
        held, self.held = self.held, []
        for args in held:
            self.real("message", *args)
