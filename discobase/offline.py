"""The command line's ``--offline`` Discord: SimCord (an in-memory Discord) kept in a file.

Each command runs in a fresh SimCord world restored from the state file (when there is one)
and saves the world back when it ends, so ``discobase --offline import`` and then
``discobase --offline export`` see the same guild. The file holds the simulated Discord's
users, guilds, channels, messages, attachments and clock; it is a Python pickle, so load only
a file this program wrote (it is created readable by its owner only).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import discord

__all__ = ("OfflineStateError", "default_state_path", "offline_guild")

STATE_VERSION = 1
#: The parts of SimCord's backend that make up the world a command left behind.
_WORLD = ("users", "guilds", "channels", "messages", "cdn", "application_id", "bot_user")


class OfflineStateError(Exception):
    """The state file cannot be used (another SimCord version, or not a state file)."""


def default_state_path() -> Path:
    """``$DISCOBASE_OFFLINE_STATE``, else ``discobase/offline.pickle`` in the user's data
    directory (``$XDG_DATA_HOME``, default ``~/.local/share``)."""
    given = os.environ.get("DISCOBASE_OFFLINE_STATE")
    if given:
        return Path(given)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "discobase" / "offline.pickle"


def _load(backend: Any, path: Path, version: str) -> None:
    if not path.exists():
        return  # the first run: an empty world
    try:
        with path.open("rb") as file:
            state = pickle.load(file)
    except Exception as error:  # a damaged pickle can fail in any of many ways
        raise OfflineStateError(f"{path} is not an offline state file: {error}") from None
    if not isinstance(state, dict) or state.get("discobase_offline") != STATE_VERSION:
        raise OfflineStateError(f"{path} is not an offline state file")
    if state.get("simcord") != version:
        raise OfflineStateError(
            f"{path} was written with SimCord {state.get('simcord')}, this is {version}: "
            "delete it to start an empty offline guild"
        )
    for name in _WORLD:
        setattr(backend, name, state[name])
    # Ids are made from the clock: a later run must not make ids below the stored ones.
    backend.clock.elapsed = state["elapsed"] + 1.0


def _save(backend: Any, path: Path, version: str) -> None:
    state = {"discobase_offline": STATE_VERSION, "simcord": version}
    state |= {name: getattr(backend, name) for name in _WORLD}
    state["elapsed"] = backend.clock.elapsed
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        pickle.dump(state, file)
    os.replace(partial, path)


@asynccontextmanager
async def offline_guild(bot: discord.Client, guild: str, state: Path | None) -> AsyncIterator[None]:
    """Run ``bot`` on SimCord with the world of ``state`` (None: an empty one, not kept), a
    guild named ``guild`` in it, and save the world to ``state`` at the end."""
    import simcord

    env = simcord.Env(bot)
    if state is not None:
        _load(env.backend, state, simcord.__version__)
    await env.start()
    try:
        with env.time_context():
            if not any(g.name == guild for g in env.backend.guilds.values()):
                env.create_guild(guild)
            yield
    finally:
        await env.shutdown()
        if state is not None:
            _save(env.backend, state, simcord.__version__)
