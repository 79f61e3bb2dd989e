"""A model of Discord's REST rate limits and latency, wrapped around SimCord's transport.

SimCord replaces discord.py's ``HTTPClient.request`` with its own ``FakeHTTPClient.request``, which
bypasses discord.py's rate-limit code: against SimCord every call succeeds at once. This module puts
Discord's costs back at that seam (reached through :mod:`bench.seam`, the benchmark's only use of
SimCord's private modules). Every REST call first takes a token from each bucket that applies
to it (per-route buckets kept per channel, guild or webhook, plus the global bucket), waiting in
the event loop's time when a bucket is empty, and then pays a round trip of latency. The call is
dispatched to SimCord half-way through the round trip, so message timestamps fall between the send
and the reply.

Buckets are fixed windows, the shape Discord documents: a window opens with the first request, holds
``requests`` tokens and closes ``per_seconds`` later. A client that knows the limits (as discord.py
does once it has seen the headers) waits for the next window instead of collecting 429s, so the
model never returns a 429: it waits, in FIFO order per bucket.

One SimCord gap is closed while the model is installed: SimCord answers ``GET
/channels/{id}/messages?after=X`` with the *newest* messages after X, where Discord returns the
*oldest* ``limit`` ones (newest first), so paging forward through a channel skips messages past the
first page. :func:`bench.seam.history_after_like_discord` answers such requests as Discord does.

The model keeps SimCord's backend clock (which stands still unless advanced) in step with the loop's
time, so message ids and timestamps move as they would on Discord. Run it on a virtual-time loop
(``looptime``): the waits then cost no real time and the figures are deterministic.

The model also counts the CPU time SimCord spends answering (``server_cpu_seconds``): the simulated
Discord's work, which a user of the real one would not wait for; the benchmark subtracts it from
the process's CPU time to get the client's.

This module imports only the standard library, discord.py and :mod:`bench.seam`, so the baseline
driver, which runs in its own virtual environment, can import it as a plain module.

Every figure lives in :data:`ROUTE_LIMITS` and :data:`GLOBAL_LIMIT`, each with its source;
``python -m bench --limits`` prints them as a table.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

import discord

try:  # imported as bench.model by our worker, as a plain module by the baseline driver
    from .seam import GATEWAY_CLOCK, transport_routed
except ImportError:  # pragma: no cover - the baseline driver's path
    from seam import GATEWAY_CLOCK, transport_routed  # type: ignore[no-redef,import-not-found]

__all__ = (
    "DEFAULT_LATENCY_SECONDS",
    "GLOBAL_LIMIT",
    "ROUTE_LIMITS",
    "BucketLimit",
    "DiscordModel",
    "FixedWindowBucket",
    "RestMetrics",
    "RouteLimit",
    "limits_markdown",
    "route_name",
    "virtual_sleep",
)

_T = TypeVar("_T")

#: looptime rounds loop time to 1 us: a window that ends "now" may read as 1 us in the future.
TIME_TOLERANCE_SECONDS = 1e-5

#: Round trip of one REST call or CDN download, in seconds.
DEFAULT_LATENCY_SECONDS = 0.1

_LIMITS_DOC = "shared/DISCORD_LIMITS.md"
_BASELINE_DOC = "shared/notes/baseline-1.0.0.md"


@dataclasses.dataclass(frozen=True)
class BucketLimit:
    """``requests`` per ``per_seconds``, kept separately per ``scope`` (channel, guild, webhook)."""

    requests: int
    per_seconds: float
    scope: str
    source: str


@dataclasses.dataclass(frozen=True)
class RouteLimit:
    """The buckets one route takes tokens from; some apply only to messages of some ages.

    ``min_age``/``max_age`` (seconds, of the message the route addresses) select age-dependent
    buckets; ``None`` means unbounded. ``global_bucket`` is False for routes Discord exempts.
    """

    buckets: tuple[tuple[BucketLimit, float | None, float | None], ...]
    global_bucket: bool = True


def _always(limit: BucketLimit) -> tuple[BucketLimit, float | None, float | None]:
    return (limit, None, None)


_HOUR = 3600.0
_DAY = 86400.0

#: The global bucket: 50 requests per second per bot token [D].
GLOBAL_LIMIT = BucketLimit(
    50, 1.0, "bot", f"{_LIMITS_DOC}: global, per bot token, 50 requests/s [D]"
)

#: Route limits by ``METHOD /path/template`` (discord.py's templates). Unlisted routes take
#: :data:`DEFAULT_ROUTE_LIMIT`.
ROUTE_LIMITS: Mapping[str, RouteLimit] = {
    "POST /channels/{channel_id}/messages": RouteLimit(
        (
            _always(
                BucketLimit(
                    5, 5.0, "channel", f"{_LIMITS_DOC}: create message, about 5 per 5 s [C]"
                )
            ),
        )
    ),
    "PATCH /channels/{channel_id}/messages/{message_id}": RouteLimit(
        (
            _always(
                BucketLimit(5, 5.0, "channel", f"{_LIMITS_DOC}: edit message, about 5 per 5 s [C]")
            ),
            (
                BucketLimit(
                    3,
                    6.0,
                    "channel",
                    f"{_LIMITS_DOC}: edit of a message older than 1 h, 3 per 6 s [D, 30046]; "
                    "taken in addition to the 5 per 5 s (conservative)",
                ),
                _HOUR,
                None,
            ),
        )
    ),
    "DELETE /channels/{channel_id}/messages/{message_id}": RouteLimit(
        (
            (
                BucketLimit(
                    5, 1.0, "channel", f"{_LIMITS_DOC}: delete message < 10 s old, 5 per 1 s [C]"
                ),
                None,
                10.0,
            ),
            (
                BucketLimit(
                    3, 0.333, "channel", f"{_LIMITS_DOC}: delete older message, 3 per 0.333 s [C]"
                ),
                10.0,
                14 * _DAY,
            ),
            (
                BucketLimit(
                    30, 4.0, "channel", f"{_LIMITS_DOC}: delete message > 14 days, 30 per 4 s [C]"
                ),
                14 * _DAY,
                None,
            ),
        )
    ),
    "POST /channels/{channel_id}/messages/bulk-delete": RouteLimit(
        (
            _always(
                BucketLimit(
                    1,
                    1.0,
                    "channel",
                    f"no figure in {_LIMITS_DOC} (only 2 to 100 ids, < 14 days): assumed 1 per 1 s "
                    "[U, conservative]",
                )
            ),
        )
    ),
    "GET /channels/{channel_id}/messages": RouteLimit(
        (
            _always(
                BucketLimit(
                    5, 5.0, "channel", f"{_LIMITS_DOC}: get messages (history), about 5 per 5 s [U]"
                )
            ),
        )
    ),
    "GET /channels/{channel_id}/messages/{message_id}": RouteLimit(
        (
            _always(
                BucketLimit(
                    5, 5.0, "channel", f"{_LIMITS_DOC}: get one message, about 5 per 5 s [U]"
                )
            ),
        )
    ),
    "POST /guilds/{guild_id}/channels": RouteLimit(
        (
            _always(
                BucketLimit(
                    5, 10.0, "guild", f"{_BASELINE_DOC}: create channel, 5 per 10 s per guild [U]"
                )
            ),
        )
    ),
    "PATCH /channels/{channel_id}": RouteLimit(
        (
            _always(
                BucketLimit(
                    2,
                    600.0,
                    "channel",
                    f"{_LIMITS_DOC}: edit channel name or topic, 2 per 10 min [C]",
                )
            ),
        )
    ),
    "POST /webhooks/{webhook_id}/{webhook_token}": RouteLimit(
        (_always(BucketLimit(5, 2.0, "webhook", f"{_LIMITS_DOC}: execute webhook, 5 per 2 s [C]")),)
    ),
    "POST /interactions/{webhook_id}/{webhook_token}/callback": RouteLimit((), global_bucket=False),
}

#: Any route not listed: 5 per 5 s per route and resource, an assumption (Discord's common shape).
DEFAULT_ROUTE_LIMIT = RouteLimit(
    (
        _always(
            BucketLimit(
                5,
                5.0,
                "route",
                "no figure: assumed 5 per 5 s per route and resource [U, conservative]",
            )
        ),
    )
)

_PLACEHOLDER = re.compile(r"\{[^}]+\}")


def route_name(method: str, path_template: str) -> str:
    """``POST /channels/{id}/messages``: a route's method and template with ids made alike."""
    return f"{method} {_PLACEHOLDER.sub('{id}', path_template)}"


def limits_markdown(latency: float = DEFAULT_LATENCY_SECONDS) -> str:
    """The model's figures as a Markdown table, each with its source."""
    rows = ["| route | bucket | kept per | applies to | source |", "|---|---|---|---|---|"]
    rows.append(
        f"| every REST call | {GLOBAL_LIMIT.requests} per {GLOBAL_LIMIT.per_seconds:g} s | bot "
        f"| all routes except interaction callbacks | {GLOBAL_LIMIT.source} |"
    )
    for route, limit in [*ROUTE_LIMITS.items(), ("any other route", DEFAULT_ROUTE_LIMIT)]:
        if not limit.buckets:
            rows.append(
                f"| `{route}` | none | - | - | outside the global bucket [D], no per-route figure |"
            )
        for bucket, min_age, max_age in limit.buckets:
            ages = _age_text(min_age, max_age)
            rows.append(
                f"| `{route}` | {bucket.requests} per {bucket.per_seconds:g} s | {bucket.scope} "
                f"| {ages} | {bucket.source} |"
            )
    rows.append(
        f"| round trip | {latency * 1000:g} ms per REST call and per attachment download | - | - "
        "| the issue's default |"
    )
    rows += [
        "",
        "Not modelled: channel- and guild-wide write limits (codes 20028/20029, no figures), the",
        "invalid-request limit (10,000 per 10 min: the model never answers 429), message age",
        "rules of bulk delete (SimCord's own checks apply), and gateway latency (events arrive",
        "at once).",
    ]
    return "\n".join(rows)


def _age_text(min_age: float | None, max_age: float | None) -> str:
    if min_age is None and max_age is None:
        return "every call"
    if min_age is None:
        return f"messages < {_duration(max_age)} old"
    if max_age is None:
        return f"messages > {_duration(min_age)} old"
    return f"messages {_duration(min_age)} to {_duration(max_age)} old"


def _duration(seconds: float | None) -> str:
    assert seconds is not None
    if seconds >= _DAY:
        return f"{seconds / _DAY:g} days"
    if seconds >= _HOUR:
        return f"{seconds / _HOUR:g} h"
    return f"{seconds:g} s"


async def virtual_sleep(seconds: float) -> None:
    """``asyncio.sleep`` on the loop's own timer heap, also from SimCord's bot scope.

    In bot scope (event handlers, command callbacks) SimCord replaces the loop's ``call_at`` with
    timers that fire on real time or when SimCord advances its clock, which under looptime makes
    the loop jump. The model's waits are the simulated Discord's, not the bot's: they go straight
    to ``BaseEventLoop.call_at``, which looptime runs in virtual time.
    """
    loop = asyncio.get_running_loop()
    woken = loop.create_future()
    timer = asyncio.BaseEventLoop.call_at(
        loop,  # type: ignore[arg-type]
        loop.time() + seconds,
        _wake,
        woken,
    )
    try:
        await woken
    finally:
        timer.cancel()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class FixedWindowBucket:
    """``limit.requests`` tokens per window of ``limit.per_seconds``, opened by the first request.

    :meth:`take` waits (in loop time) for the next window when the current one is spent. Waiters
    are served first come, first served.
    """

    def __init__(self, limit: BucketLimit) -> None:
        self.limit = limit
        self.remaining = limit.requests
        self.window_ends: float | None = None
        self._lock = asyncio.Lock()

    async def take(self) -> float:
        """Take one token, waiting for a new window if needed; return the seconds waited."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            started = loop.time()
            window_over = (
                self.window_ends is not None
                and started >= self.window_ends - TIME_TOLERANCE_SECONDS
            )
            if window_over:
                self._open_window(None)
            if self.remaining == 0:
                assert self.window_ends is not None
                await virtual_sleep(self.window_ends - started)
                self._open_window(None)
            if self.window_ends is None:
                self._open_window(loop.time())
            self.remaining -= 1
            return loop.time() - started

    def _open_window(self, now: float | None) -> None:
        self.remaining = self.limit.requests
        self.window_ends = None if now is None else now + self.limit.per_seconds


@dataclasses.dataclass
class RestMetrics:
    """What the model counted: REST calls by route, attachment downloads, time spent waiting."""

    calls_by_route: Counter[str] = dataclasses.field(default_factory=Counter)
    failed_calls_by_route: Counter[str] = dataclasses.field(default_factory=Counter)
    attachment_downloads: int = 0
    attachment_bytes: int = 0
    rate_limit_wait_seconds: float = 0.0
    #: CPU time spent inside SimCord answering calls: the simulated server's work, not the client's.
    server_cpu_seconds: float = 0.0

    @property
    def rest_calls(self) -> int:
        return sum(self.calls_by_route.values())

    def copy(self) -> RestMetrics:
        return dataclasses.replace(
            self,
            calls_by_route=Counter(self.calls_by_route),
            failed_calls_by_route=Counter(self.failed_calls_by_route),
        )

    def since(self, earlier: RestMetrics) -> RestMetrics:
        """The calls made after ``earlier`` was copied."""
        return RestMetrics(
            calls_by_route=self.calls_by_route - earlier.calls_by_route,
            failed_calls_by_route=self.failed_calls_by_route - earlier.failed_calls_by_route,
            attachment_downloads=self.attachment_downloads - earlier.attachment_downloads,
            attachment_bytes=self.attachment_bytes - earlier.attachment_bytes,
            rate_limit_wait_seconds=self.rate_limit_wait_seconds - earlier.rate_limit_wait_seconds,
            server_cpu_seconds=self.server_cpu_seconds - earlier.server_cpu_seconds,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "rest_calls": self.rest_calls,
            "calls_by_route": dict(sorted(self.calls_by_route.items())),
            "failed_calls_by_route": dict(sorted(self.failed_calls_by_route.items())),
            "attachment_downloads": self.attachment_downloads,
            "attachment_bytes": self.attachment_bytes,
            "rate_limit_wait_seconds": round(self.rate_limit_wait_seconds, 6),
            "server_cpu_seconds": round(self.server_cpu_seconds, 4),
        }


#: The path parameters that key each scope's buckets. A thread is a channel: a message sent
#: to a thread is ``POST /channels/{channel_id}/messages`` with the thread's id, so each
#: thread gets buckets of its own, as Discord keeps limits per top-level resource
#: (discord-api-docs, topics/rate-limits.mdx: "Top-level resources are currently limited to
#: channels (channel_id), guilds (guild_id), and webhooks"; topics/threads.mdx: threads reuse
#: the channel object and endpoints).
_SCOPE_PARAMETERS = {
    "channel": ("channel_id",),
    "guild": ("guild_id",),
    "webhook": ("webhook_id", "webhook_token"),
    "route": ("channel_id", "guild_id", "webhook_id", "webhook_token"),
}


class DiscordModel:
    """Rate-limit buckets, the global bucket, latency and call counts for every REST call.

    Use :meth:`installed` around the SimCord run: it patches SimCord's two transports
    (``FakeHTTPClient.request`` for bot calls, ``FakeWebhookAdapter.request`` for interaction
    responses and webhooks) and ``FakeHTTPClient.get_from_cdn`` for attachment downloads.
    """

    def __init__(
        self,
        *,
        latency: float = DEFAULT_LATENCY_SECONDS,
        route_limits: Mapping[str, RouteLimit] = ROUTE_LIMITS,
        default_limit: RouteLimit = DEFAULT_ROUTE_LIMIT,
        global_limit: BucketLimit = GLOBAL_LIMIT,
    ) -> None:
        self.latency = latency
        self.route_limits = route_limits
        self.default_limit = default_limit
        self.global_bucket = FixedWindowBucket(global_limit)
        self.metrics = RestMetrics()
        self._buckets: dict[tuple[str, int, str], FixedWindowBucket] = {}
        self._loop_epoch: float | None = None
        self._clock_epoch = 0.0

    async def call(
        self,
        method: str,
        path_template: str,
        parameters: Mapping[str, str],
        send: Callable[[], Awaitable[_T]],
        *,
        backend: Any = None,
    ) -> _T:
        """Take the tokens for one call, pay the round trip and run ``send`` half-way through.

        ``parameters`` are the path's values by placeholder name (``channel_id``, ...);
        ``backend`` is SimCord's backend, whose clock the model moves along with the loop.
        """
        key = f"{method} {path_template}"
        limit = self.route_limits.get(key, self.default_limit)
        age = self._message_age(parameters, backend)
        waited = 0.0
        for index, (bucket_limit, min_age, max_age) in enumerate(limit.buckets):
            if not _age_applies(age, min_age, max_age):
                continue
            waited += await self._bucket(key, index, bucket_limit, parameters).take()
        if limit.global_bucket:
            waited += await self.global_bucket.take()
        name = route_name(method, path_template)
        self.metrics.calls_by_route[name] += 1
        self.metrics.rate_limit_wait_seconds += waited
        await virtual_sleep(self.latency / 2)
        self.sync_clock(backend)
        server_cpu = _ServerCpu()
        try:
            with server_cpu:
                result = await send()
        except BaseException:
            self.metrics.failed_calls_by_route[name] += 1
            raise
        finally:
            self.metrics.server_cpu_seconds += server_cpu.seconds
            await virtual_sleep(self.latency / 2)
            self.sync_clock(backend)
        return result

    async def rest(self) -> float:
        """Wait (in loop time) until every bucket's window has closed; return the seconds waited.

        A workload calls it between phases that write to the same channels, so that a phase
        measures its own rate limits, not the windows the previous phase left spent.
        """
        now = asyncio.get_running_loop().time()
        ends = [
            bucket.window_ends
            for bucket in (self.global_bucket, *self._buckets.values())
            if bucket.window_ends is not None
        ]
        wait = max(ends, default=now) - now
        if wait <= 0:
            return 0.0
        await virtual_sleep(wait)
        return wait

    async def download(self, fetch: Callable[[], Awaitable[bytes]], *, backend: Any) -> bytes:
        """One attachment download from the CDN: a round trip, counted apart from REST calls."""
        await virtual_sleep(self.latency / 2)
        self.sync_clock(backend)
        server_cpu = _ServerCpu()
        with server_cpu:
            data = await fetch()
        self.metrics.server_cpu_seconds += server_cpu.seconds
        await virtual_sleep(self.latency / 2)
        self.sync_clock(backend)
        self.metrics.attachment_downloads += 1
        self.metrics.attachment_bytes += len(data)
        return data

    def sync_clock(self, backend: Any) -> None:
        """Move SimCord's backend clock forward to the loop's time (it never moves back)."""
        if backend is None:
            return
        now = asyncio.get_running_loop().time()
        if self._loop_epoch is None:
            self._loop_epoch = now
            self._clock_epoch = backend.clock.elapsed
        target = self._clock_epoch + (now - self._loop_epoch)
        if target > backend.clock.elapsed:
            backend.advance_clock(target - backend.clock.elapsed)

    def _bucket(
        self, route: str, index: int, limit: BucketLimit, parameters: Mapping[str, str]
    ) -> FixedWindowBucket:
        resource = "+".join(parameters.get(name, "") for name in _SCOPE_PARAMETERS[limit.scope])
        key = (route, index, resource)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = FixedWindowBucket(limit)
        return bucket

    @staticmethod
    def _message_age(parameters: Mapping[str, str], backend: Any) -> float | None:
        message_id = parameters.get("message_id")
        if message_id is None or not message_id.isdigit():
            return None
        created = discord.utils.snowflake_time(int(message_id))
        now = backend.clock.now() if backend is not None else discord.utils.utcnow()
        return max(0.0, (now - created).total_seconds())

    @contextlib.contextmanager
    def installed(self) -> Iterator[DiscordModel]:
        """Route SimCord's transports through this model for the duration of the block."""

        async def call(
            method: str,
            path_template: str,
            url: str,
            send: Callable[[], Awaitable[_T]],
            backend: Any,
        ) -> _T:
            parameters = _path_parameters(path_template, url)
            return await self.call(method, path_template, parameters, send, backend=backend)

        async def download(fetch: Callable[[], Awaitable[bytes]], backend: Any) -> bytes:
            return await self.download(fetch, backend=backend)

        with transport_routed(call, download):
            yield self


class _ServerCpu:
    """CPU time of SimCord answering one call: the call's time minus the gateway deliveries it
    made to the bot (discord.py parsing events is the client's work on a real Discord).

    SimCord answers synchronously (nothing else runs meanwhile), so the thread's CPU time over
    the block is SimCord's and the bot's parsers' only.
    """

    seconds = 0.0

    def __enter__(self) -> None:
        self._started = time.thread_time()
        self._gateway_started = GATEWAY_CLOCK.seconds

    def __exit__(self, *exc_info: object) -> None:
        gateway = GATEWAY_CLOCK.seconds - self._gateway_started
        self.seconds = time.thread_time() - self._started - gateway


def _age_applies(age: float | None, min_age: float | None, max_age: float | None) -> bool:
    if min_age is None and max_age is None:
        return True
    if age is None:
        return min_age is None
    return (min_age is None or age >= min_age) and (max_age is None or age < max_age)


def _path_parameters(template: str, url: str) -> dict[str, str]:
    """The values of a route's placeholders, read from its formatted URL."""
    path = url.split("?", 1)[0]
    template_parts = template.strip("/").split("/")
    path_parts = path.strip("/").split("/")[-len(template_parts) :]
    return {
        part[1:-1]: value
        for part, value in zip(template_parts, path_parts, strict=True)
        if part.startswith("{") and part.endswith("}")
    }
