"""The benchmark's one seam into SimCord's private modules; nothing else in ``bench/`` uses them.

SimCord's public API runs a bot on a simulated Discord; the benchmark needs four things it does
not offer, all here:

- routing every REST call and attachment download through a function of ours (the Discord model):
  :func:`transport_routed` patches ``FakeHTTPClient.request``, ``FakeWebhookAdapter.request`` and
  ``FakeHTTPClient.get_from_cdn``;
- answering ``GET /channels/{id}/messages?after=`` as Discord does
  (:func:`history_after_like_discord`, swapped into SimCord's router while routed);
- telling the simulated server's CPU time from the client's: a REST call reaches SimCord's router
  synchronously, and the router delivers gateway events (MESSAGE_CREATE, ...) to the bot's
  discord.py parsers synchronously too. :data:`GATEWAY_CLOCK` counts the CPU time spent in those
  deliveries (the client's work on a real Discord: parsing events), so that the server's share of
  a call is its CPU time minus the gateway time within it;
- handing a whole simulated Discord to another process (:func:`pickled_world`,
  :func:`run_on_world`);
- a second client on the same simulated Discord, as another process of the same bot would
  connect (:func:`second_client`).

Standard library, discord.py and SimCord only: the baseline driver (its own virtual environment)
imports this as a plain module, through :mod:`model`.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import pickle
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import discord
import simcord
from discord.ext import commands
from simcord import _dpy_internals
from simcord.backend import serializers
from simcord.backend.access import channel_accessible
from simcord.backend.ops.base import BackendBase
from simcord.gateway import ShardRouter
from simcord.http import router as simcord_router
from simcord.http._helpers import message_response
from simcord.http.client import FakeHTTPClient, FakeWebhookAdapter
from simcord.http.routes import messages as simcord_message_routes

__all__ = (
    "GATEWAY_CLOCK",
    "CallThrough",
    "DownloadThrough",
    "GatewayClock",
    "history_after_like_discord",
    "pickled_world",
    "run_on_world",
    "second_client",
    "transport_routed",
)

#: ``(method, path_template, url, send, backend)``: performs ``send()`` (SimCord's answer) and
#: returns its result.
CallThrough = Callable[[str, str, str, Callable[[], Awaitable[Any]], Any], Awaitable[Any]]
#: ``(fetch, backend)``: performs ``fetch()`` (SimCord's CDN) and returns the bytes.
DownloadThrough = Callable[[Callable[[], Awaitable[bytes]], Any], Awaitable[bytes]]


class GatewayClock:
    """CPU time (``time.thread_time``) spent delivering gateway events to the bot's parsers."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        """Count the time of every ``Backend.emit`` inside the block."""
        emit = BackendBase.emit
        clock = self

        def timed_emit(self: BackendBase, event: str, payload: Mapping[str, Any]) -> None:
            started = time.thread_time()
            try:
                emit(self, event, payload)
            finally:
                clock.seconds += time.thread_time() - started

        BackendBase.emit = timed_emit  # type: ignore[method-assign]
        try:
            yield
        finally:
            BackendBase.emit = emit  # type: ignore[method-assign]


#: The process's gateway clock; counting while :func:`transport_routed` is active.
GATEWAY_CLOCK = GatewayClock()


@contextlib.contextmanager
def transport_routed(call: CallThrough, download: DownloadThrough) -> Iterator[None]:
    """Route SimCord's REST calls through ``call`` and its CDN downloads through ``download``.

    Also answers forward history pages as Discord does, and counts gateway deliveries on
    :data:`GATEWAY_CLOCK`; everything is restored when the block ends.
    """
    http_request = FakeHTTPClient.request
    webhook_request = FakeWebhookAdapter.request
    get_from_cdn = FakeHTTPClient.get_from_cdn

    async def routed_http_request(
        client: FakeHTTPClient, route: discord.http.Route, **kwargs: Any
    ) -> Any:
        return await call(
            route.method,
            route.path,
            route.url,
            lambda: http_request(client, route, **kwargs),
            client.backend,
        )

    async def routed_webhook_request(
        adapter: FakeWebhookAdapter, route: Any, session: Any, **kwargs: Any
    ) -> Any:
        return await call(
            route.method,
            route.path,
            route.url,
            lambda: webhook_request(adapter, route, session, **kwargs),
            adapter.backend,
        )

    async def routed_get_from_cdn(client: FakeHTTPClient, url: str) -> bytes:
        return await download(lambda: get_from_cdn(client, url), client.backend)

    FakeHTTPClient.request = routed_http_request  # type: ignore[method-assign,assignment]
    FakeWebhookAdapter.request = routed_webhook_request  # type: ignore[method-assign,assignment]
    FakeHTTPClient.get_from_cdn = routed_get_from_cdn  # type: ignore[method-assign,assignment]
    history_routes = simcord_router._ROUTES["GET"]
    original_routes = list(history_routes)
    history_routes[:] = [
        (template, history_after_like_discord(handler))
        if handler is simcord_message_routes.get_history
        else (template, handler)
        for template, handler in history_routes
    ]
    try:
        with GATEWAY_CLOCK.counting():
            yield
    finally:
        history_routes[:] = original_routes
        FakeHTTPClient.request = http_request  # type: ignore[method-assign]
        FakeWebhookAdapter.request = webhook_request  # type: ignore[method-assign]
        FakeHTTPClient.get_from_cdn = get_from_cdn  # type: ignore[method-assign]


def history_after_like_discord(
    get_history: Callable[[simcord_router.RequestContext], Any],
) -> Callable[[simcord_router.RequestContext], Any]:
    """SimCord's history handler, except that ``after`` alone pages forward as on Discord.

    Discord answers ``after=X`` (without ``before``/``around``) with the ``limit`` messages right
    after X, newest first; discord.py pages forward from the first (newest) of them. SimCord
    answers with the newest ``limit`` messages after X, which skips messages past the first page.
    """

    def handler(ctx: simcord_router.RequestContext) -> Any:
        params = ctx.params
        if "after" not in params or "before" in params or "around" in params:
            return get_history(ctx)
        backend = ctx.backend
        channel_id = ctx.int_arg("channel_id")
        ctx.require_channel_permissions(channel_id)
        bot_id = backend.bot_user.id
        if not channel_accessible(backend, channel_id, bot_id, history=True):
            return []
        after = int(params["after"])
        oldest = heapq.nsmallest(
            int(params.get("limit", 50)),
            (
                message
                for message in backend.messages[channel_id].values()
                if message.id > after and not message.is_ephemeral
            ),
            key=lambda message: message.id,
        )
        return [message_response(ctx, message) for message in oldest[::-1]]

    return handler


def pickled_world(env: simcord.Env) -> bytes:
    """The whole simulated Discord of ``env`` (its backend), pickled for another process.

    The backend's event subscribers (the running bot's gateway) stay behind; its request logs
    are dropped.
    """
    backend = env.backend
    backend.http_requests.clear()
    backend.transcript.clear()
    subscribers, backend.subscribers = backend.subscribers, []
    try:
        return pickle.dumps(backend, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        backend.subscribers = subscribers


def run_on_world(bot: discord.Client, world: bytes) -> Any:
    """``simcord.run(bot)`` started on a world from :func:`pickled_world` instead of a new one.

    Returns the async context manager; ``async with`` it as with ``simcord.run``.
    """
    runner = simcord.run(bot)
    runner._env.backend = pickle.loads(world)
    return runner


async def second_client(env: simcord.Env) -> commands.Bot:
    """Another discord.py client of the same bot user, on the same simulated Discord: another
    process's connection. Its REST calls go through the same routes (and the Discord model,
    when installed); gateway events reach it as they reach the first client. Like the strict
    test layer's second process (tests/strict.py), without its faults."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    bot = commands.Bot(command_prefix="!", intents=intents, help_command=None)
    backend = env.backend
    _dpy_internals.install_http(bot, FakeHTTPClient(backend, asyncio.get_running_loop()))
    _dpy_internals.set_guild_ready_timeout(bot, 0.0)
    state = _dpy_internals.get_state(bot)
    state.shard_count, state.shard_ids = 1, [0]
    shards = ShardRouter(backend, state, bot.dispatch, 1, (0,))
    _dpy_internals.install_websocket(bot, shards.websockets[0])

    def feed(event: str, payload: Mapping[str, Any]) -> None:
        with env._bot_scope():
            shards.feed(event, payload)

    with env._bot_scope():
        await bot.login("simcord.fake.token")
    feed(
        "READY",
        {
            "v": 10,
            "user": dict(serializers.user_payload(backend.bot_user)),
            "guilds": [{"id": str(g), "unavailable": True} for g in backend.guilds],
            "session_id": "bench-second-client",
            "resume_gateway_url": "wss://simcord.invalid",
            "shard": [0, 1],
            "application": {"id": str(backend.application_id), "flags": 0},
        },
    )
    for guild in list(backend.guilds.values()):
        feed("GUILD_CREATE", serializers.guild_create_payload(backend, guild))
    backend.subscribers.append(feed)
    return bot
