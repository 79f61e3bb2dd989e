"""The benchmark's targets, as data, and how a run's phases are judged against them.

A target names the phases it reads (by name or name prefix), a :data:`FIGURES` entry to read from
each (summed when there are several), a limit and its direction. It is met, not met, or not
measured (a phase that did not run or failed; quick runs use smaller sizes than the targets mean).

Time targets hold on simulated time and on **effective** time (simulated time plus the client's CPU
time, see :mod:`bench.measure`). The CPU and memory targets are per record on the issue's shape
(five fields): their CPU is the process's, SimCord's share included, as the targets define it;
memory is what ``tracemalloc`` finds held after a cold open.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

Phases = dict[str, dict[str, Any]]
Figure = Callable[[dict[str, Any]], float | None]
MB = 1024 * 1024

W1 = "W1 inserts awaited one by one"
W1_DEFAULTS = "W1 inserts awaited one by one, library defaults"
W2 = "W2 inserts from"
W3 = "W3 insert_many"
W4_FIND = "W4 finds by an indexed field"
W4_RANGE = "W4 range queries"
W4_SCAN = "W4 unindexed scans"
W5_OPEN = "W5 cold open by a new process, then count()"
W6_UPDATE = "W6 updates awaited one by one"
W6_DELETE = "W6 deletes awaited one by one"
W6_CONCURRENT_UPDATE = "W6 concurrent updates"
W6_CONCURRENT_DELETE = "W6 concurrent deletes"
#: W8's size the per-record targets are judged at.
W8_TARGET_RECORDS = 100_000


def w8_phase(kind: str, records: int = W8_TARGET_RECORDS) -> str:
    """The name prefix of W8's ``kind`` phase at ``records`` records."""
    return {
        "insert_many": f"W8 insert_many of {records} records",
        "find": f"W8 finds by an indexed field (name) on {records} records",
        "scan": f"W8 unindexed scans (x) of {records} records",
        "open": f"W8 cold open of {records} records",
    }[kind]


def w8_sizes(phases: Phases) -> list[int]:
    """The table sizes W8 ran at, from its insert_many phases' names."""
    prefix = "W8 insert_many of "
    return sorted(int(name[len(prefix) :].split()[0]) for name in phases if name.startswith(prefix))


def calls_per_op(phase: dict[str, Any]) -> float | None:
    """REST calls per operation attempted (failed ones too), counting calls the library made
    after the phase's operations returned (``trailing_rest_calls``)."""
    attempted = int(phase.get("ops", 0)) + int(phase.get("failed_ops", 0))
    if not attempted:
        return None
    return (int(phase["rest_calls"]) + int(phase.get("trailing_rest_calls", 0))) / attempted


def _key(name: str, scale: float = 1.0) -> Figure:
    def read(phase: dict[str, Any]) -> float | None:
        value = phase.get(name)
        return None if value is None else float(value) * scale

    return read


def _cpu_per_record_us(phase: dict[str, Any]) -> float | None:
    """Process CPU (SimCord's share included) per record: per op, or per record of an open."""
    records = phase.get("records") or phase.get("ops")
    return phase["cpu_seconds"] / records * 1e6 if records else None


#: Every figure a target can read from a phase.
FIGURES: dict[str, Figure] = {
    "calls/op": calls_per_op,
    "REST calls": _key("rest_calls"),
    "ops/sim s": _key("ops_per_simulated_second"),
    "ops/effective s": _key("ops_per_effective_second"),
    "sim s": _key("simulated_seconds"),
    "effective s": _key("effective_seconds"),
    "p99 sim s": _key("latency_p99_s"),
    "p99 effective s": _key("effective_latency_p99_s"),
    "peak RSS MB": _key("peak_rss_bytes", 1 / MB),
    "CPU us/record": _cpu_per_record_us,
    "median op CPU us": _key("op_cpu_p50_s", 1e6),
    "median op CPU ms": _key("op_cpu_p50_s", 1e3),
    "slowest op CPU ms": _key("op_cpu_max_s", 1e3),
    "held bytes/record": _key("held_bytes_per_record"),
}


@dataclasses.dataclass(frozen=True)
class Spec:
    """One target: ``figure`` of ``phases`` (summed) compared with ``limit``."""

    workload: str
    text: str
    phases: tuple[str, ...]
    figure: str
    limit: float
    at_most: bool
    unit: str = ""
    note: str = ""


def _at_most(
    workload: str,
    text: str,
    phase: str | tuple[str, ...],
    figure: str,
    limit: float,
    unit: str = "",
) -> Spec:
    phases = phase if isinstance(phase, tuple) else (phase,)
    return Spec(workload, text, phases, figure, limit, True, unit)


def _at_least(workload: str, text: str, phase: str, figure: str, limit: float) -> Spec:
    return Spec(workload, text, (phase,), figure, limit, False)


_W8 = f"W8 at {W8_TARGET_RECORDS:,}"

#: The targets, in the order they are shown.
TARGETS: tuple[Spec, ...] = (
    _at_most("W1", "REST calls per insert <= 1", W1, "calls/op", 1),
    _at_least("W1", "inserts per simulated second >= 5", W1, "ops/sim s", 5),
    _at_least("W1", "inserts per effective second >= 5", W1, "ops/effective s", 5),
    _at_least(
        "W1 library defaults", "inserts per simulated second >= 5", W1_DEFAULTS, "ops/sim s", 5
    ),
    _at_least(
        "W1 library defaults",
        "inserts per effective second >= 5",
        W1_DEFAULTS,
        "ops/effective s",
        5,
    ),
    _at_most("W2", "REST calls per insert <= 0.02", W2, "calls/op", 0.02),
    _at_least("W2", "inserts per simulated second >= 2000", W2, "ops/sim s", 2000),
    _at_least("W2", "inserts per effective second >= 2000", W2, "ops/effective s", 2000),
    _at_most("W2", "p99 latency <= 2 simulated s", W2, "p99 sim s", 2),
    _at_most("W2", "p99 latency <= 2 effective s", W2, "p99 effective s", 2),
    _at_most("W2", "concurrent save() CPU <= 30 us", W2, "CPU us/record", 30, " us"),
    _at_least("W3", "records per simulated second >= 20000", W3, "ops/sim s", 20000),
    _at_least("W3", "records per effective second >= 20000", W3, "ops/effective s", 20000),
    _at_most("W3", "insert_many CPU per record <= 12 us", W3, "CPU us/record", 12, " us"),
    _at_most(
        "W4", "REST calls during the queries = 0", (W4_FIND, W4_RANGE, W4_SCAN), "REST calls", 0
    ),
    _at_most("W4", "indexed find CPU, median <= 5 us", W4_FIND, "median op CPU us", 5, " us"),
    _at_most(
        "W4",
        "unindexed scan of 100,000 CPU, median <= 30 ms",
        W4_SCAN,
        "median op CPU ms",
        30,
        " ms",
    ),
    _at_most(
        "W4", "unindexed scan CPU, slowest <= 100 ms", W4_SCAN, "slowest op CPU ms", 100, " ms"
    ),
    _at_most("W5", "REST calls <= 20", W5_OPEN, "REST calls", 20),
    _at_most("W5", "simulated seconds <= 5", W5_OPEN, "sim s", 5),
    _at_most("W5", "effective seconds <= 5", W5_OPEN, "effective s", 5),
    _at_most("W5", "cold open CPU per record <= 6 us", W5_OPEN, "CPU us/record", 6, " us"),
    _at_most("W5", "bytes held per loaded record <= 600", W5_OPEN, "held bytes/record", 600),
    dataclasses.replace(
        _at_most("W5", "peak RSS <= 500 MB", W5_OPEN, "peak RSS MB", 500, " MB"),
        note="peak of the new process while opening, SimCord's simulated guild included",
    ),
    _at_most("W6", "updates awaited one by one: REST calls per op <= 1", W6_UPDATE, "calls/op", 1),
    _at_most("W6", "deletes awaited one by one: REST calls per op <= 1", W6_DELETE, "calls/op", 1),
    _at_most(
        "W6",
        "concurrent updates: REST calls per op <= 0.05",
        W6_CONCURRENT_UPDATE,
        "calls/op",
        0.05,
    ),
    _at_most(
        "W6",
        "concurrent deletes: REST calls per op <= 0.05",
        W6_CONCURRENT_DELETE,
        "calls/op",
        0.05,
    ),
    _at_most(
        _W8,
        "insert_many CPU per record <= 12 us",
        w8_phase("insert_many"),
        "CPU us/record",
        12,
        " us",
    ),
    _at_most(
        _W8, "indexed find CPU, median <= 5 us", w8_phase("find"), "median op CPU us", 5, " us"
    ),
    _at_most(
        _W8,
        "unindexed scan of 100,000 CPU, median <= 30 ms",
        w8_phase("scan"),
        "median op CPU ms",
        30,
        " ms",
    ),
    _at_most(_W8, "cold open CPU per record <= 6 us", w8_phase("open"), "CPU us/record", 6, " us"),
    _at_most(_W8, "cold open effective seconds <= 5", w8_phase("open"), "effective s", 5),
    _at_most(
        _W8, "bytes held per loaded record <= 600", w8_phase("open"), "held bytes/record", 600
    ),
)

#: Targets against 1.0.0: (workload, phase, figure, how many times better, better is lower).
BASELINE_TARGETS: tuple[tuple[str, str, str, float, bool], ...] = (
    ("W1", W1, "calls/op", 10, True),
    ("W1", W1, "ops/sim s", 10, False),
    ("W2", W2, "calls/op", 10, True),
    ("W2", W2, "ops/sim s", 10, False),
)
_BASELINE_TEXT = {
    "calls/op": "times fewer REST calls per insert >= {limit:g}",
    "ops/sim s": "times the inserts per simulated second >= {limit:g}",
}


@dataclasses.dataclass
class Target:
    """A target judged on one run."""

    workload: str
    text: str
    value: float | None
    limit: float
    at_most: bool
    unit: str = ""
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT MET", None: "not measured"}[self.met]

    def as_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "target": self.text,
            "value": self.value,
            "limit": self.limit,
            "met": self.met,
            "note": self.note,
        }


def phases_by_name(groups: dict[str, dict[str, Any]]) -> Phases:
    return {phase["phase"]: phase for group in groups.values() for phase in group.get("phases", [])}


def find_phase(phases: Phases, prefix: str) -> dict[str, Any] | None:
    """The phase named ``prefix``, or the first whose name continues it after a space."""
    if prefix in phases:
        return phases[prefix]
    for name, phase in phases.items():
        if name.startswith(prefix + " "):
            return phase
    return None


def figure_of(phases: Phases, prefix: str, figure: str) -> float | None:
    """``figure`` of the phase ``prefix`` names; None if it did not run, failed or is unsupported."""
    phase = find_phase(phases, prefix)
    if phase is None or phase.get("unsupported") or not phase.get("ops"):
        return None
    return FIGURES[figure](phase)


def evaluate(spec: Spec, phases: Phases) -> Target:
    values = [figure_of(phases, prefix, spec.figure) for prefix in spec.phases]
    value = None if any(v is None for v in values) else sum(v for v in values if v is not None)
    return Target(spec.workload, spec.text, value, spec.limit, spec.at_most, spec.unit, spec.note)


def evaluate_targets(ours: Phases, baseline: Phases | None) -> list[Target]:
    """Every target judged on ``ours``; the ones against 1.0.0 too when ``baseline`` is given."""
    targets = [evaluate(spec, ours) for spec in TARGETS]
    if baseline is None:
        return targets
    for workload, prefix, figure, times, lower_is_better in BASELINE_TARGETS:
        theirs, mine = figure_of(baseline, prefix, figure), figure_of(ours, prefix, figure)
        value = ratio(theirs, mine) if lower_is_better else ratio(mine, theirs)
        text = _BASELINE_TEXT[figure].format(limit=times)
        targets.append(Target(f"{workload} vs 1.0.0", text, value, times, False, "x"))
    return targets


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None:
        return None
    if denominator == 0:
        return float("inf") if numerator > 0 else None
    return numerator / denominator
