"""Strict mode: a simulated Discord closer to the real one than plain SimCord.

SimCord is kinder than Discord: it ignores ``enforce_nonce``, hands out snowflakes in send order,
delivers every gateway event synchronously inside the REST call that caused it, never loses a
response, never answers with a long 429 and, because it replaces ``HTTPClient.request`` whole,
never runs discord.py's own retry loop. :class:`Strict` layers the missing behaviour over a
running SimCord ``Env``, at three seams: ``FakeHTTPClient.request`` (discord.py's retry loop and
the faults a request can meet on the way), ``simcord.http.router.dispatch`` (what Discord does
with a request) and ``Backend.emit``/``Backend.snowflake`` (gateway delivery and ids).

Always on: ``enforce_nonce``, snowflakes skewed per process, interaction deadlines counted in
modelled time, gateway events of a REST call that may arrive before or after its response, and
Discord's thread rules (archived threads: no edits, a message unarchives, not in GUILD_CREATE;
the guild's cap of active threads; no THREAD_CREATED message for a private thread).
Knobs (methods of :class:`Strict`): lost responses, held/reordered/dropped gateway events and a
fresh READY, 429s and 5xx answers, raw posts by an owner or Administrator, guild outages, and a
second process on the same guild. ``tests/README.md`` ("Strict mode") lists what each models and
its source.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import os
import random
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import discord
import pytest
import simcord
from discord.ext import commands
from simcord import _dpy_internals
from simcord.backend import serializers
from simcord.backend.errors import BackendError
from simcord.backend.models import Channel, User
from simcord.enums import ChannelType, MessageType
from simcord.gateway import ShardRouter
from simcord.http import router
from simcord.http.client import FakeHTTPClient, _FakeResponse, _path_of
from simcord.types import HttpLogEntry

#: ``DISCOBASE_STRICT=1`` runs every SimCord test in strict mode.
STRICT_RUN = os.environ.get("DISCOBASE_STRICT", "") not in ("", "0")

#: Discord returns the earlier message for a repeated nonce "in the past few minutes".
NONCE_WINDOW = 300.0
#: An interaction must get its initial response within 3 s; its token lives 15 minutes.
INITIAL_RESPONSE_DEADLINE = 3.0
TOKEN_LIFETIME = 15 * 60.0
#: discord.py retries these statuses itself (``HTTPClient.request``), sleeping 1 + 2 * tries s.
DPY_RETRIED_5XX = frozenset({500, 502, 504, 524})
#: discord.py's retry loop makes at most this many tries.
DPY_TRIES = 5
#: aiohttp's default total timeout for a session's requests (discord.py sets none).
AIOHTTP_TIMEOUT = 300.0
#: A guild's cap of active threads: about 1,000 (community reports; Discord documents the cap
#: but not its figure, resources/channel.mdx). ``Strict.active_thread_cap`` lowers it.
ACTIVE_THREAD_CAP = 1000

#: Request kinds the fault knobs take, as (method, path pattern).
KINDS: dict[str, tuple[tuple[str, str], ...]] = {
    "message_create": (("POST", "/channels/*/messages"),),
    "channel_create": (("POST", "/guilds/*/channels"),),
    "thread_create": (("POST", "/channels/*/threads"),),
    "delete": (("DELETE", "/channels/*"), ("DELETE", "/channels/*/messages/*")),
    "bulk_delete": (("POST", "/channels/*/messages/bulk-delete"),),
    "history": (("GET", "/channels/*/messages"),),
    "any": (("*", "*"),),
}

_DISCORD_EPOCH_MS = 1420070400000
#: discord.py's HTTP logger: its retry loop logs every 429 it waits out here.
_DPY_LOG = logging.getLogger("discord.http")


def no_thread_created_message(env: simcord.Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """SimCord posts a THREAD_CREATED message in the parent for every thread it makes; Discord
    does for a public thread made from an older message only, never for a private thread
    (topics/threads.mdx, "New Message Types"). Turned on for every SimCord test."""
    backend = env.backend
    original = backend.create_system_message

    def system_message(channel_id: int, message_type: Any, *args: Any, **kwargs: Any) -> Any:
        target = backend.channels.get(kwargs.get("target_channel_id") or 0)
        if message_type == MessageType.THREAD_CREATED and (
            target is not None and target.type == ChannelType.PRIVATE_THREAD
        ):
            return None
        return original(channel_id, message_type, *args, **kwargs)

    monkeypatch.setattr(backend, "create_system_message", system_message)


@dataclass
class Fault:
    """One scheduled fault for requests of ``kind`` (see :data:`KINDS`)."""

    kind: str
    times: int | None
    #: "lost" (applied, then the response is lost), "429", "5xx" or "hang".
    what: str
    error: BaseException | None = None
    status: int = 0
    retry_after: float = 0.0
    applied: bool = False
    process: Process | None = None
    #: For a rate limit by time: the modelled instant its bucket opens again.
    until: float | None = None
    hits: int = 0

    def matches(self, method: str, path: str, process: Process, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        if self.process is not None and self.process is not process:
            return False
        return any(_route_matches(pattern, method, path) for pattern in KINDS[self.kind])


def _route_matches(pattern: tuple[str, str], method: str, path: str) -> bool:
    """``*`` stands for one path segment; the pattern ``("*", "*")`` for every request."""
    want_method, want_path = pattern
    if want_path == "*":
        return want_method in ("*", method)
    parts, wanted = path.strip("/").split("/"), want_path.strip("/").split("/")
    return (
        want_method in ("*", method)
        and len(parts) == len(wanted)
        and all(w in ("*", p) for w, p in zip(wanted, parts, strict=True))
    )


@dataclass(eq=False)
class Process:
    """A process talking to the simulated Discord: the test's bot, or a second one."""

    name: str
    #: Milliseconds added to the timestamp of every snowflake made for this process's requests
    #: (Discord's API workers and their clocks: ids are not in send order across processes).
    skew_ms: int = 0
    user: User | None = None
    bot: discord.Client | None = None
    pipe: Pipe | None = None


@dataclass(eq=False)
class Pipe:
    """Gateway delivery to one connection: in order, but possibly after the REST response,
    held, released out of order, or dropped."""

    listener: Callable[[str, Mapping[str, Any]], None]
    queue: deque[tuple[str, Mapping[str, Any]]] = field(default_factory=deque)
    #: Guilds in an outage: none of their events reach this connection.
    unavailable: set[int] = field(default_factory=set)
    holding: bool = False
    draining: bool = False


class Strict:
    """The strict layer over one SimCord ``Env``; ``install`` it, then turn its knobs."""

    def __init__(self, env: simcord.Env, *, seed: str = "0") -> None:
        self.env = env
        self.backend = env.backend
        self.rng = random.Random(seed)
        #: Modelled seconds each REST call takes (counts toward interaction deadlines only).
        self.rest_latency = 0.1
        #: Real seconds per modelled second for waits (429 retry_after, discord.py's backoff).
        self.time_scale = 0.001
        #: Chance that a REST call's gateway events arrive after its response.
        self.late_gateway = 0.5
        #: Modelled seconds spent so far on REST calls and waits.
        self.modelled = 0.0
        #: Every wait discord.py would have made: (route, seconds, why).
        self.waits: list[tuple[str, float, str]] = []
        #: Repeated nonces answered with the earlier message.
        self.nonce_hits = 0
        self.faults: list[Fault] = []
        self.processes: list[Process] = []
        self._pipes: dict[int, Pipe] = {}
        self._nonces: dict[tuple[int, int, str], tuple[int, float]] = {}
        self._interactions: dict[int, tuple[float, float]] = {}
        self._current: Process | None = None
        self._defer = False
        self._primary = Process("bot")
        #: The guild's cap of active threads (topics/threads.mdx): at it, no thread can be
        #: created or unarchived (resources/channel.mdx), code 160006.
        self.active_thread_cap = ACTIVE_THREAD_CAP

    # -- installation ---------------------------------------------------------------------------

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Strict:
        strict = self
        original_request = FakeHTTPClient.request
        original_dispatch = router.dispatch

        async def request(http: FakeHTTPClient, route: Any, **kwargs: Any) -> Any:
            if http.backend is not strict.backend:
                return await original_request(http, route, **kwargs)
            return await strict._request(http, original_request, route, **kwargs)

        def dispatch(backend: Any, method: str, path: str, **kwargs: Any) -> Any:
            if backend is not strict.backend:
                return original_dispatch(backend, method, path, **kwargs)
            return strict._dispatch(original_dispatch, method, path, **kwargs)

        original_guild_create = serializers.guild_create_payload

        def guild_create(backend: Any, guild: Any) -> Any:
            # SimCord sends every thread; Discord only the active ones ("archived threads are
            # not synced up-front via the gateway", topics/threads.mdx).
            payload = dict(original_guild_create(backend, guild))
            payload["threads"] = [
                t for t in payload.get("threads", ()) if not t["thread_metadata"]["archived"]
            ]
            return payload

        monkeypatch.setattr(FakeHTTPClient, "request", request)
        monkeypatch.setattr(router, "dispatch", dispatch)
        monkeypatch.setattr(self.backend, "emit", self._emit)
        monkeypatch.setattr(self.backend, "snowflake", self._snowflake)
        monkeypatch.setattr(serializers, "guild_create_payload", guild_create)
        no_thread_created_message(self.env, monkeypatch)
        return self

    def close(self) -> None:
        """Disconnect the second processes (the test's bot is SimCord's to stop)."""
        for process in self.processes:
            if process.pipe is not None and process.pipe.listener in self.backend.subscribers:
                self.backend.subscribers.remove(process.pipe.listener)
            if process.bot is not None:
                ws = process.bot.ws
                if ws is not None:
                    ws.open = False
        self.processes.clear()

    # -- processes --------------------------------------------------------------------------------

    @property
    def bot(self) -> Process:
        """The test's bot (the ``Env``'s current client)."""
        return self._primary

    def _process_of(self, http: Any) -> Process:
        for process in self.processes:
            if process.bot is not None and process.bot.http is http:
                return process
        return self._primary

    def _pipe_of(self, process: Process) -> Pipe:
        if process is self._primary:
            return self._pipe_for(self.env._gateway_feed)
        assert process.pipe is not None
        return process.pipe

    def _pipe_for(self, listener: Callable[[str, Mapping[str, Any]], None]) -> Pipe:
        pipe = self._pipes.get(id(listener))
        if pipe is None or pipe.listener is not listener:
            pipe = self._pipes[id(listener)] = Pipe(listener)
        return pipe

    @contextmanager
    def _as(self, process: Process) -> Iterator[None]:
        """Run backend code as ``process`` (its bot user, its snowflake worker)."""
        saved_user, saved_current = self.backend.bot_user, self._current
        if process.user is not None:
            self.backend.bot_user = process.user
        self._current = process
        try:
            yield
        finally:
            self.backend.bot_user, self._current = saved_user, saved_current

    async def second_process(
        self,
        *,
        another_bot: str | None = None,
        guilds: tuple[simcord.GuildHandle, ...] = (),
        skew_ms: int = -5,
    ) -> Process:
        """Connect a second discord.py client to the same simulated Discord, as the same bot
        user (same token) or, with ``another_bot="name"``, as another bot user that joins
        ``guilds`` with the Administrator permission. Its requests get snowflakes ``skew_ms``
        milliseconds off (by default: lower than the test bot's at the same moment), and its
        gateway delivery has its own pipe (hold/release/drop apply per process)."""
        user = None
        if another_bot is not None:
            handle = self.env.create_user(another_bot, bot=True)
            for guild in guilds:
                role = guild.create_role(
                    f"{another_bot}-role", permissions=discord.Permissions(administrator=True)
                )
                guild.add_member(handle, roles=[role])
            user = self.backend.users[handle.id]
        process = Process(f"process-{len(self.processes) + 2}", skew_ms=skew_ms, user=user)
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        bot = commands.Bot(command_prefix="!", intents=intents, help_command=None)
        loop = asyncio.get_running_loop()
        _dpy_internals.install_http(bot, FakeHTTPClient(self.backend, loop))
        _dpy_internals.set_guild_ready_timeout(bot, 0.0)
        state = _dpy_internals.get_state(bot)
        state.shard_count, state.shard_ids = 1, [0]
        shards = ShardRouter(self.backend, state, bot.dispatch, 1, (0,))
        _dpy_internals.install_websocket(bot, shards.websockets[0])
        process.bot = bot

        def feed(event: str, payload: Mapping[str, Any]) -> None:
            with self.env._bot_scope(), self._as(process):
                shards.feed(event, payload)

        process.pipe = self._pipes[id(feed)] = Pipe(feed)
        self.processes.append(process)
        with self.env._bot_scope():
            await bot.login("simcord.fake.token")
        self._identify(process)
        self.backend.subscribers.append(feed)
        await self.env.settle()
        assert bot.is_ready()
        return process

    def _identify(self, process: Process, unavailable: tuple[int, ...] = ()) -> None:
        """A fresh READY (and the GUILD_CREATEs that follow it) on ``process``'s connection."""
        pipe = self._pipe_of(process)
        user = process.user or self.backend.bot_user
        ready = {
            "v": 10,
            "user": dict(serializers.user_payload(user)),
            "guilds": [{"id": str(g), "unavailable": True} for g in self.backend.guilds],
            "session_id": f"strict-{self.rng.getrandbits(32):08x}",
            "resume_gateway_url": "wss://simcord.invalid",
            "shard": [0, 1],
            "application": {"id": str(self.backend.application_id), "flags": 0},
        }
        pipe.listener("READY", ready)
        # Discord sends none of an unavailable guild's events until its GUILD_CREATE.
        pipe.unavailable.difference_update(self.backend.guilds)
        pipe.unavailable.update(unavailable)
        for guild in list(self.backend.guilds.values()):
            if guild.id not in unavailable and (
                process.user is None or process.user.id in guild.members
            ):
                pipe.listener("GUILD_CREATE", serializers.guild_create_payload(self.backend, guild))

    # -- REST: discord.py's retry loop and the faults on the way -------------------------------

    async def _request(self, http: FakeHTTPClient, original: Any, route: Any, **kwargs: Any) -> Any:
        process = self._process_of(http)
        method, path = route.method, _path_of(route.url)
        files = kwargs.get("files") or ()

        async def send() -> Any:
            self._defer = self.rng.random() < self.late_gateway
            self.modelled += self.rest_latency
            try:
                with self._as(process):
                    return await original(http, route, **kwargs)
            finally:
                self._defer = False
                self._schedule_drains()

        status = 0
        data: dict[str, Any] = {}
        for tries in range(DPY_TRIES):
            for f in files:
                f.reset(seek=tries)
            fault = self._take(method, path, process)
            if fault is None:
                try:
                    return await send()
                except discord.HTTPException as error:  # e.g. SimCord's env.inject_error
                    if error.status not in DPY_RETRIED_5XX:
                        raise
                    status, data = error.status, {"message": error.text, "code": error.code}
                await self._wait(f"{method} {path}", 1 + tries * 2, f"{status}")
                continue
            if fault.what == "lost":
                await send()
                assert fault.error is not None
                raise fault.error
            if fault.what == "hang":
                if fault.applied:
                    await send()
                timeout = kwargs.get("timeout")
                total = timeout.total if isinstance(timeout, aiohttp.ClientTimeout) else None
                seconds = total / self.time_scale if total else AIOHTTP_TIMEOUT
                await self._wait(f"{method} {path}", seconds, "hang")
                raise aiohttp.ServerTimeoutError("Timeout on reading data from socket")
            if fault.what == "429":
                retry_after = fault.retry_after
                if fault.until is not None:
                    retry_after = fault.until - self.now()
                status, data = 429, {"message": "You are being rate limited.", "code": 0}
                data |= {"retry_after": retry_after, "global": False}
                limit = http.max_ratelimit_timeout
                if limit and retry_after > limit:
                    raise discord.RateLimited(retry_after)
                _DPY_LOG.warning(
                    "We are being rate limited. %s %s responded with 429. Retrying in %.2f seconds.",
                    method,
                    route.url,
                    retry_after,
                )
                await self._wait(f"{method} {path}", retry_after, "429")
                continue
            status, data = fault.status, {"message": "Server error", "code": 0}
            if fault.applied:
                await send()
            if fault.status in DPY_RETRIED_5XX:
                await self._wait(f"{method} {path}", 1 + tries * 2, f"{fault.status}")
                continue
            raise discord.DiscordServerError(_FakeResponse(status), data)  # type: ignore[arg-type]
        if status >= 500:
            raise discord.DiscordServerError(_FakeResponse(status), data)  # type: ignore[arg-type]
        raise discord.HTTPException(_FakeResponse(status), data)  # type: ignore[arg-type]

    def now(self) -> float:
        """Modelled seconds since the world began: the virtual clock plus REST time and waits."""
        return float(self.backend.clock.elapsed) + self.modelled

    def _take(self, method: str, path: str, process: Process) -> Fault | None:
        now = self.now()
        for fault in self.faults:
            if fault.matches(method, path, process, now):
                fault.hits += 1
                return fault
        return None

    async def _wait(self, route: str, seconds: float, why: str) -> None:
        """Wait ``seconds`` of modelled time; a wait cut short counts only what it took."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.waits.append((route, seconds, why))
        try:
            await asyncio.sleep(seconds * self.time_scale)
        finally:
            self.modelled += min(seconds, (loop.time() - start) / self.time_scale)

    # -- what Discord does with a request ---------------------------------------------------------

    def _dispatch(self, original: Any, method: str, path: str, **kwargs: Any) -> Any:
        parts = path.strip("/").split("/")
        if parts[0] == "channels" and len(parts) >= 2 and parts[1].isdigit():
            self._thread_rules(method, parts, kwargs.get("json"))
        if (
            method == "POST"
            and len(parts) == 3
            and parts[0] == "channels"
            and parts[2] == "messages"
        ):
            return self._create_message(original, int(parts[1]), method, path, **kwargs)
        if parts[0] == "interactions" and len(parts) == 4:
            self._check_deadline(int(parts[1]), initial=True)
        if parts[0] == "webhooks" and len(parts) >= 3:
            interaction = self.backend.interaction_tokens.get(parts[2])
            if interaction is not None:
                self._check_deadline(interaction, initial=False)
        return original(self.backend, method, path, **kwargs)

    def _create_message(
        self, original: Any, channel_id: int, method: str, path: str, **kwargs: Any
    ) -> Any:
        body = kwargs.get("json") if isinstance(kwargs.get("json"), dict) else {}
        nonce = body.get("nonce") if body.get("enforce_nonce") else None
        now = self.backend.clock.elapsed
        if nonce is not None:
            key = (channel_id, self.backend.bot_user.id, str(nonce))
            earlier = self._nonces.get(key)
            if earlier is not None and now - earlier[1] < NONCE_WINDOW:
                message = self.backend.messages.get(channel_id, {}).get(earlier[0])
                if message is not None:
                    self.nonce_hits += 1
                    self.backend.http_requests.append(
                        HttpLogEntry(method, path, {}, copy.deepcopy(body), None)
                    )
                    return serializers.message_payload(self.backend, message)
        result = original(self.backend, method, path, **kwargs)
        if nonce is not None:
            self._nonces[(channel_id, self.backend.bot_user.id, str(nonce))] = (
                int(result["id"]),
                now,
            )
        return result

    def _thread_rules(self, method: str, parts: list[str], body: Any) -> None:
        """What Discord does with a request on a thread that SimCord leaves out
        (topics/threads.mdx, "Active & Archived Threads"; resources/channel.mdx, threads):

        - editing a message of an archived thread: 400, 50083 (SimCord edits it);
        - a message sent into an archived thread unarchives it, unless it is locked (SimCord
          stores the message and leaves the thread archived);
        - at the guild's cap of active threads, no thread can be created or unarchived
          (160006; SimCord has no cap): a create, an unarchive, or a message into an archived
          thread fails."""
        channel = self.backend.channels.get(int(parts[1]))
        if channel is None:
            return
        meta = channel.thread_metadata
        archived = meta is not None and meta.archived
        if method == "POST" and parts[2:] == ["threads"]:
            self._below_thread_cap(channel.guild_id)
        elif archived and method == "PATCH" and parts[2:3] == ["messages"]:
            raise BackendError(400, 50083, "Thread is archived")
        elif archived and method == "PATCH" and len(parts) == 2:
            if isinstance(body, dict) and body.get("archived") is False:
                self._below_thread_cap(channel.guild_id)
        elif archived and method == "POST" and parts[2:] == ["messages"]:
            if meta is not None and meta.locked:
                raise BackendError(400, 160005, "Thread is locked")
            self._below_thread_cap(channel.guild_id)
            self.backend.edit_channel(channel.id, {}, thread_metadata={"archived": False})

    def _below_thread_cap(self, guild_id: int | None) -> None:
        if guild_id is not None and (
            len(self.backend.active_threads(guild_id)) >= self.active_thread_cap
        ):
            raise BackendError(400, 160006, "Maximum number of active threads reached")

    def _check_deadline(self, interaction_id: int, *, initial: bool) -> None:
        born = self._interactions.get(interaction_id)
        record = self.backend.interactions.get(interaction_id)
        if born is None or record is None:
            return
        elapsed = (self.backend.clock.elapsed - born[0]) + (self.modelled - born[1])
        if initial and not record.responded and elapsed > INITIAL_RESPONSE_DEADLINE:
            raise BackendError(404, 10062, "Unknown interaction")
        if not initial and elapsed > TOKEN_LIFETIME:
            raise BackendError(401, 50027, "Invalid Webhook Token")

    def _snowflake(self) -> int:
        skew = self._current.skew_ms if self._current is not None else 0
        milliseconds = int(self.backend.clock.now().timestamp() * 1000) - _DISCORD_EPOCH_MS + skew
        return int(self.backend._allocate_at(milliseconds))

    # -- the gateway ------------------------------------------------------------------------------

    def _emit(self, event: str, payload: Mapping[str, Any]) -> None:
        self.backend.transcript.append(("GATEWAY", event, payload))
        if event == "INTERACTION_CREATE":
            self._interactions[int(payload["id"])] = (self.backend.clock.elapsed, self.modelled)
        guild_id = payload.get("guild_id")
        for listener in list(self.backend.subscribers):
            pipe = self._pipe_for(listener)
            if guild_id is not None and int(guild_id) in pipe.unavailable:
                continue
            if pipe.queue or pipe.holding or self._defer:
                pipe.queue.append((event, payload))
            else:
                self._deliver(pipe, event, payload)

    def _deliver(self, pipe: Pipe, event: str, payload: Mapping[str, Any]) -> None:
        if pipe.listener in self.backend.subscribers:  # not a process that has gone
            pipe.listener(event, payload)

    def _schedule_drains(self) -> None:
        for pipe in list(self._pipes.values()):
            if pipe.queue and not pipe.holding and not pipe.draining:
                pipe.draining = True
                with self.env._bot_scope():
                    asyncio.get_running_loop().call_soon(self._drain, pipe)

    def _drain(self, pipe: Pipe) -> None:
        pipe.draining = False
        while pipe.queue and not pipe.holding:
            event, payload = pipe.queue.popleft()
            self._deliver(pipe, event, payload)

    # -- knobs --------------------------------------------------------------------------------------

    def lose_responses(
        self,
        kind: str,
        *,
        times: int | None = 1,
        error: str = "timeout",
        process: Process | None = None,
    ) -> Fault:
        """Discord applies the next ``times`` requests of ``kind``, then the response is lost:
        ``error="timeout"`` (the read times out) or ``"drop"`` (the connection closes)."""
        lost: BaseException = (
            aiohttp.ServerTimeoutError("Timeout on reading data from socket")
            if error == "timeout"
            else aiohttp.ServerDisconnectedError()
        )
        return self._add(Fault(kind, times, "lost", error=lost, process=process))

    def rate_limit(
        self,
        kind: str,
        *,
        retry_after: float = 45.0,
        times: int | None = 1,
        process: Process | None = None,
    ) -> Fault:
        """Answer the next ``times`` requests of ``kind`` with 429 and ``retry_after`` seconds
        (not applied). discord.py sleeps that long and retries inside ``request`` unless it
        exceeds the client's ``max_ratelimit_timeout``, which raises ``RateLimited`` instead."""
        return self._add(Fault(kind, times, "429", retry_after=retry_after, process=process))

    def rate_limited_for(
        self, kind: str, seconds: float, *, process: Process | None = None
    ) -> Fault:
        """The bucket of ``kind`` is spent for the next ``seconds`` of modelled time: every request
        in that window gets a 429 whose ``retry_after`` is the time left (a re-send does not
        help; waiting does)."""
        fault = Fault(kind, None, "429", process=process, until=self.now() + seconds)
        return self._add(fault)

    def hang(
        self,
        kind: str,
        *,
        times: int | None = 1,
        applied: bool = False,
        process: Process | None = None,
    ) -> Fault:
        """The next ``times`` requests of ``kind`` get no answer (with ``applied``: after Discord
        did the work). aiohttp gives up after the request's ``timeout`` (discord.py passes extra
        ``request`` keywords to aiohttp; real seconds, so ``timeout / time_scale`` modelled ones),
        else after its session default of 300 s, raising ``aiohttp.ServerTimeoutError``."""
        return self._add(Fault(kind, times, "hang", applied=applied, process=process))

    def server_errors(
        self,
        kind: str,
        *,
        status: int = 502,
        times: int | None = 1,
        applied: bool = False,
        process: Process | None = None,
    ) -> Fault:
        """Answer the next ``times`` requests of ``kind`` with ``status``; with ``applied`` Discord
        did the work first (a gateway timeout behind a request that went through). discord.py
        resends 500/502/504/524 itself after 1 + 2 * tries s (so an applied create is made
        again); other 5xx raise ``DiscordServerError``."""
        return self._add(Fault(kind, times, "5xx", status=status, applied=applied, process=process))

    def _add(self, fault: Fault) -> Fault:
        if fault.kind not in KINDS:
            raise ValueError(f"unknown request kind {fault.kind!r}; one of {sorted(KINDS)}")
        self.faults.append(fault)
        return fault

    def hold_gateway(self, process: Process | None = None) -> None:
        """Keep every gateway event for ``process`` (default: the test's bot) until released."""
        self._pipe_of(process or self._primary).holding = True

    def held(self, process: Process | None = None) -> list[tuple[str, Mapping[str, Any]]]:
        return list(self._pipe_of(process or self._primary).queue)

    def release_gateway(self, process: Process | None = None, *, order: str = "fifo") -> int:
        """Deliver the held events (``order``: "fifo", "reverse" or "shuffle"); return how many."""
        pipe = self._pipe_of(process or self._primary)
        events = list(pipe.queue)
        pipe.queue.clear()
        pipe.holding = False
        if order == "reverse":
            events.reverse()
        elif order == "shuffle":
            self.rng.shuffle(events)
        elif order != "fifo":
            raise ValueError(f"unknown order {order!r}")
        for event, payload in events:
            self._deliver(pipe, event, payload)
        return len(events)

    def drop_gateway(
        self,
        process: Process | None = None,
        *,
        unavailable: tuple[int, ...] = (),
        shard: int | None = None,
    ) -> int:
        """The connection dies and cannot resume: the held events are lost and the client gets a
        fresh READY (``on_ready`` again), with the guilds in ``unavailable`` left unavailable.
        For the test's bot as an ``AutoShardedClient``, ``shard`` re-identifies that one shard
        (discord.py then fires ``on_shard_ready``, not ``on_ready``). Returns how many events
        were lost."""
        process = process or self._primary
        pipe = self._pipe_of(process)
        lost = len(pipe.queue)
        pipe.queue.clear()
        pipe.holding = False
        if shard is not None:
            if process is not self._primary or unavailable:
                raise ValueError("shard= re-identifies one shard of the test's own bot")
            feed = inspect.getclosurevars(self.env._gateway_feed).nonlocals["raw_feed"]
            with self.env._bot_scope():
                feed.__self__.identify(shard, replay_guilds=True)
        else:
            self._identify(process, unavailable)
        return lost

    def guild_outage(self, guild_id: int, process: Process | None = None) -> None:
        """The guild becomes unavailable (GUILD_DELETE with ``unavailable: true``); none of its
        events reach the client until :meth:`guild_available`."""
        for pipe in self._targets(process):
            self._deliver(pipe, "GUILD_DELETE", {"id": str(guild_id), "unavailable": True})
            pipe.unavailable.add(guild_id)

    def guild_available(self, guild_id: int, process: Process | None = None) -> None:
        """The outage ends: GUILD_CREATE with ``unavailable: false`` (``on_guild_available``).
        What happened in the guild meanwhile is not replayed."""
        guild = self.backend.guilds[guild_id]
        payload = dict(serializers.guild_create_payload(self.backend, guild))
        payload["unavailable"] = False
        for pipe in self._targets(process):
            pipe.unavailable.discard(guild_id)
            self._deliver(pipe, "GUILD_CREATE", payload)

    def archive_threads(self, *thread_ids: int) -> list[int]:
        """Archive threads as Discord does after they have been idle (at most 7 days,
        sooner as a guild nears its cap: topics/threads.mdx); SimCord never archives by
        itself. No ids: every active thread. A THREAD_UPDATE follows (discord.py then drops
        the thread from its cache). Returns the ids archived."""
        threads: list[Channel] = (
            [self.backend.get_channel(t) for t in thread_ids]
            if thread_ids
            else [
                t for guild_id in self.backend.guilds for t in self.backend.active_threads(guild_id)
            ]
        )
        for thread in threads:
            self.backend.edit_channel(thread.id, {}, thread_metadata={"archived": True})
        return [t.id for t in threads]

    def _targets(self, process: Process | None) -> list[Pipe]:
        if process is not None:
            return [self._pipe_of(process)]
        return [self._pipe_of(self._primary)] + [self._pipe_of(p) for p in self.processes]

    async def post_as(
        self,
        member: simcord.MemberActor,
        channel_id: int,
        content: str,
        *,
        attachments: tuple[tuple[str, bytes], ...] = (),
    ) -> int:
        """``member`` posts a raw message into any channel they can reach; the guild owner and
        Administrators bypass channel overwrites, so they reach hidden storage channels.
        Returns the new message's id."""
        channel = self.backend.get_channel(channel_id)
        self.backend.require_permissions(channel.guild_id, member.id, channel_id, "send_messages")
        stored = self.backend.store_attachments(channel_id, attachments)
        message = self.backend.create_message(channel_id, member.id, content, attachments=stored)
        await self.env.settle()
        return int(message.id)
