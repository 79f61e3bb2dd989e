"""Measuring one phase of a workload: REST calls, simulated time, latencies, CPU and memory.

A :class:`Phase` snapshots the model's counters, the loop's (virtual) time, the process's CPU time
and resets the kernel's peak-RSS mark when it starts; :meth:`Phase.finish` turns the differences into
the figures the benchmark reports. Operations are timed one by one with :meth:`Phase.op`, which
also records failures instead of letting one failed operation end the workload.

**Effective time** is what a user would wait: the simulated time (rate limits and round trips, in
which the loop's virtual clock moves) plus the CPU time the client spends (during which it does
not). The client's CPU time is the process's minus the part SimCord spent answering calls (the
model's ``server_cpu_seconds``). Adding them counts CPU work done while a call is in flight as if
it were not overlapped, so effective time is an upper bound of the wall-clock time on Discord.

Standard library plus :mod:`model` only, so the baseline driver (its own virtual environment,
without our package) can import it as a plain module.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import simcord

try:  # imported as bench.measure by our worker, as a plain module by the baseline driver
    from .model import DiscordModel, RestMetrics
except ImportError:  # pragma: no cover - the baseline driver's path
    from model import DiscordModel, RestMetrics  # type: ignore[no-redef,import-not-found]

__all__ = ("Phase", "peak_rss_bytes", "percentile", "reset_peak_rss")

_T = TypeVar("_T")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")
_ERROR_EXAMPLES = 3


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux); False if not possible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_bytes() -> int:
    """Peak resident set size since the last reset (or since the process started)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * 1024


def current_rss_bytes() -> int:
    kib = _status_kib("VmRSS")
    return (kib or 0) * 1024


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile (``fraction`` in 0..1) of ``values``, None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


class Phase:
    """One measured phase; use as ``phase = Phase(name, model).start()`` then ``phase.finish()``."""

    def __init__(self, name: str, model: DiscordModel, *, unit: str = "op") -> None:
        self.name = name
        self.model = model
        self.unit = unit
        self.latencies: list[float] = []
        #: Client CPU seconds of each operation (the process's, SimCord's share taken out).
        self.op_cpu: list[float] = []
        self.ops = 0
        self.failures: Counter[str] = Counter()
        self.failure_examples: list[str] = []
        self.notes: list[str] = []
        self.extra: dict[str, Any] = {}
        self._metrics_before = RestMetrics()
        self._loop_started = 0.0
        self._cpu_started = 0.0
        self._rss_started = 0
        self._peak_reset = False

    def start(self) -> Phase:
        self._metrics_before = self.model.metrics.copy()
        self._loop_started = asyncio.get_running_loop().time()
        self._cpu_started = time.process_time()
        self._rss_started = current_rss_bytes()
        self._peak_reset = reset_peak_rss()
        return self

    async def op(self, awaitable: Awaitable[_T], *, count: int = 1) -> _T | None:
        """Await one operation (standing for ``count`` records), timing it; None if it failed."""
        loop = asyncio.get_running_loop()
        metrics = self.model.metrics
        started, server_started = loop.time(), metrics.server_cpu_seconds
        cpu_started = time.thread_time()
        try:
            result = await awaitable
        except Exception as error:
            self.record_failure(error)
            return None
        finally:
            cpu = time.thread_time() - cpu_started
            self.latencies.append(loop.time() - started)
            self.op_cpu.append(cpu - (metrics.server_cpu_seconds - server_started))
        self.ops += count
        return result

    async def call(
        self, function: Callable[..., Awaitable[_T]], *args: Any, **kwargs: Any
    ) -> _T | None:
        """Like :meth:`op`, the call that makes the awaitable timed with it: ``find()``
        builds its cursor when called, work a user waits for too."""

        async def made() -> _T:
            return await function(*args, **kwargs)

        return await self.op(made())

    def record_failure(self, error: BaseException) -> None:
        kind = f"{type(error).__module__}.{type(error).__qualname__}"
        self.failures[kind] += 1
        if len(self.failure_examples) < _ERROR_EXAMPLES:
            lines = traceback.format_exception_only(type(error), error)
            self.failure_examples.append("".join(lines).strip()[:500])

    @contextlib.contextmanager
    def guarded(self) -> Iterator[None]:
        """Record an exception that ends the whole phase as a failure of the phase."""
        try:
            yield
        except Exception as error:
            self.record_failure(error)
            self.notes.append(f"phase aborted: {type(error).__name__}: {error}"[:500])

    def finish(self) -> dict[str, Any]:
        loop_seconds = asyncio.get_running_loop().time() - self._loop_started
        cpu_seconds = time.process_time() - self._cpu_started
        metrics = self.model.metrics.since(self._metrics_before)
        ops = self.ops
        attempted = ops + sum(self.failures.values())
        p50 = percentile(self.latencies, 0.50)
        p99 = percentile(self.latencies, 0.99)
        cpu_p50 = percentile(self.op_cpu, 0.50)
        client_cpu = max(0.0, cpu_seconds - metrics.server_cpu_seconds)
        effective = loop_seconds + client_cpu
        effective_latencies = [
            latency + cpu for latency, cpu in zip(self.latencies, self.op_cpu, strict=True)
        ]
        return {
            "phase": self.name,
            "unit": self.unit,
            "ops": ops,
            "failed_ops": sum(self.failures.values()),
            "failures": dict(self.failures),
            "failure_examples": self.failure_examples,
            **metrics.as_json(),
            "rest_calls_per_op": metrics.rest_calls / attempted if attempted else None,
            "calls_per_op_by_route": {
                route: count / attempted for route, count in sorted(metrics.calls_by_route.items())
            }
            if attempted
            else {},
            "simulated_seconds": round(loop_seconds, 6),
            "ops_per_simulated_second": ops / loop_seconds if loop_seconds > 0 else None,
            "latency_p50_s": p50,
            "latency_p99_s": p99,
            "op_cpu_p50_s": cpu_p50,
            "op_cpu_max_s": max(self.op_cpu) if self.op_cpu else None,
            "cpu_seconds": round(cpu_seconds, 4),
            "client_cpu_seconds": round(client_cpu, 4),
            "client_cpu_per_op_s": client_cpu / ops if ops else None,
            "effective_seconds": round(effective, 6),
            "ops_per_effective_second": ops / effective if effective > 0 else None,
            "effective_latency_p50_s": percentile(effective_latencies, 0.50),
            "effective_latency_p99_s": percentile(effective_latencies, 0.99),
            "peak_rss_bytes": peak_rss_bytes(),
            "rss_at_start_bytes": self._rss_started,
            "peak_rss_is_phase_peak": self._peak_reset,
            "notes": self.notes,
            **self.extra,
        }


async def slash_raising_bot_errors(
    env: simcord.Env, member: simcord.MemberActor, channel: Any, name: str, **options: Any
) -> simcord.InteractionResult:
    """Run a slash command; raise the first error the bot's command raised, if any."""
    cursor = env.error_cursor
    answer = await member.slash(channel, name, **options)
    errors = env.errors_since(cursor)
    if errors:
        raise errors[0]
    return answer
