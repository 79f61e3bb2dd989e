"""Turning phase results into targets met or missed, ratios against 1.0.0, and tables.

The targets are the issue's (issue 4); each is checked against a named phase and printed as met,
not met, or not measured (a phase that did not run, failed, or a quick run's smaller sizes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

Phases = dict[str, dict[str, Any]]

W1 = "W1 inserts awaited one by one"
W3 = "W3 insert_many"
W5_OPEN = "W5 cold open by a new process, then count()"
W6_UPDATE = "W6 updates awaited one by one"
W6_DELETE = "W6 deletes awaited one by one"
W6_CONCURRENT_UPDATE = "W6 concurrent updates"
W6_CONCURRENT_DELETE = "W6 concurrent deletes"
MB = 1024 * 1024


def phases_by_name(groups: dict[str, dict[str, Any]]) -> Phases:
    return {phase["phase"]: phase for group in groups.values() for phase in group.get("phases", [])}


def find_phase(phases: Phases, prefix: str) -> dict[str, Any] | None:
    for name, phase in phases.items():
        if name.startswith(prefix):
            return phase
    return None


def calls_per_op(phase: dict[str, Any]) -> float | None:
    """REST calls per operation attempted (failed ones too), counting calls the library made
    after the phase's operations returned (``trailing_rest_calls``)."""
    attempted = int(phase.get("ops", 0)) + int(phase.get("failed_ops", 0))
    if not attempted:
        return None
    return (int(phase["rest_calls"]) + int(phase.get("trailing_rest_calls", 0))) / attempted


@dataclasses.dataclass
class Target:
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

    def shown_value(self) -> str:
        return "-" if self.value is None else f"{_number(self.value)}{self.unit}"

    def as_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "target": self.text,
            "value": self.value,
            "limit": self.limit,
            "met": self.met,
            "note": self.note,
        }


def _get(phase: dict[str, Any] | None, read: Callable[[dict[str, Any]], Any]) -> float | None:
    if phase is None or phase.get("unsupported") or not phase.get("ops"):
        return None
    value = read(phase)
    return None if value is None else float(value)


def evaluate_targets(ours: Phases, baseline: Phases | None) -> list[Target]:
    w1, w3 = ours.get(W1), ours.get(W3)
    w2 = find_phase(ours, "W2 inserts")
    w4_phases = [find_phase(ours, prefix) for prefix in ("W4 finds", "W4 range", "W4 unindexed")]
    w4_find, w4_scan = w4_phases[0], w4_phases[2]
    w5 = ours.get(W5_OPEN)
    targets = [
        Target("W1", "REST calls per insert <= 1", _get(w1, calls_per_op), 1, True),
        Target(
            "W1",
            "inserts per simulated second >= 5",
            _get(w1, lambda p: p["ops_per_simulated_second"]),
            5,
            False,
        ),
        Target("W2", "REST calls per insert <= 0.02", _get(w2, calls_per_op), 0.02, True),
        Target(
            "W2",
            "inserts per simulated second >= 2000",
            _get(w2, lambda p: p["ops_per_simulated_second"]),
            2000,
            False,
        ),
        Target(
            "W2", "p99 latency <= 2 simulated s", _get(w2, lambda p: p["latency_p99_s"]), 2, True
        ),
        Target(
            "W3",
            "records per simulated second >= 20000",
            _get(w3, lambda p: p["ops_per_simulated_second"]),
            20000,
            False,
        ),
        Target(
            "W4",
            "REST calls during the queries = 0",
            None
            if any(p is None or not p.get("ops") for p in w4_phases)
            else float(sum(p["rest_calls"] for p in w4_phases if p)),
            0,
            True,
        ),
        Target(
            "W4",
            "indexed find CPU, median <= 50 us",
            _get(w4_find, lambda p: p["op_cpu_p50_s"] * 1e6),
            50,
            True,
            " us",
        ),
        Target(
            "W4",
            "unindexed scan CPU, slowest <= 100 ms",
            _get(w4_scan, lambda p: p["op_cpu_max_s"] * 1e3),
            100,
            True,
            " ms",
        ),
        Target("W5", "REST calls <= 20", _get(w5, lambda p: p["rest_calls"]), 20, True),
        Target("W5", "simulated seconds <= 5", _get(w5, lambda p: p["simulated_seconds"]), 5, True),
        Target(
            "W5",
            "peak RSS <= 500 MB",
            _get(w5, lambda p: p["peak_rss_bytes"] / MB),
            500,
            True,
            " MB",
            "peak of the new process while opening, SimCord's simulated guild included",
        ),
    ]
    for name, limit in (
        (W6_UPDATE, 1.0),
        (W6_DELETE, 1.0),
        (W6_CONCURRENT_UPDATE, 0.05),
        (W6_CONCURRENT_DELETE, 0.05),
    ):
        targets.append(
            Target(
                "W6",
                f"{name[3:]}: REST calls per op <= {limit:g}",
                _get(ours.get(name), calls_per_op),
                limit,
                True,
            )
        )
    if baseline is not None:
        for workload, ours_phase, theirs_phase in (
            ("W1", w1, baseline.get(W1)),
            ("W2", w2, find_phase(baseline, "W2 inserts")),
        ):
            theirs_calls = _get(theirs_phase, calls_per_op)
            ours_calls = _get(ours_phase, calls_per_op)
            theirs_rate = _get(theirs_phase, lambda p: p["ops_per_simulated_second"])
            ours_rate = _get(ours_phase, lambda p: p["ops_per_simulated_second"])
            targets.append(
                Target(
                    f"{workload} vs 1.0.0",
                    "times fewer REST calls per insert >= 10",
                    _ratio(theirs_calls, ours_calls),
                    10,
                    False,
                    "x",
                )
            )
            targets.append(
                Target(
                    f"{workload} vs 1.0.0",
                    "times the inserts per simulated second >= 10",
                    _ratio(ours_rate, theirs_rate),
                    10,
                    False,
                    "x",
                )
            )
    return targets


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None:
        return None
    if denominator == 0:
        return float("inf") if numerator > 0 else None
    return numerator / denominator


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "inf"
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def outcome(phase: dict[str, Any]) -> str:
    if phase.get("unsupported"):
        return f"unsupported: {phase['unsupported']}"
    parts = []
    if phase.get("failed_ops"):
        kinds = ", ".join(f"{count} {kind}" for kind, count in phase["failures"].items())
        parts.append(f"{phase['failed_ops']} failed ({kinds})")
    if phase.get("wrong_results"):
        parts.append(f"{phase['wrong_results']} wrong results")
    verified = phase.get("verified")
    if verified and verified != "ok":
        parts.append(str(verified))
    if "findable_after" in phase:
        parts.append(f"after the phase: {phase['findable_after']}")
    parts.extend(phase.get("notes", []))
    return "; ".join(parts) or "ok"


COLUMNS = (
    "phase",
    "ops",
    "REST calls",
    "calls/op",
    "sim s",
    "ops/sim s",
    "p50 s",
    "p99 s",
    "CPU s",
    "server CPU s",
    "peak RSS MB",
    "outcome",
)


def phase_row(phase: dict[str, Any]) -> list[str]:
    if phase.get("unsupported"):
        return [phase["phase"], *["-"] * (len(COLUMNS) - 2), outcome(phase)]
    calls = phase["rest_calls"] + phase.get("trailing_rest_calls", 0)
    return [
        phase["phase"],
        str(phase["ops"]),
        str(calls),
        _number(calls_per_op(phase)),
        _number(phase["simulated_seconds"]),
        _number(phase["ops_per_simulated_second"]),
        _number(phase["latency_p50_s"]),
        _number(phase["latency_p99_s"]),
        _number(phase["cpu_seconds"]),
        _number(phase["server_cpu_seconds"]),
        f"{phase['peak_rss_bytes'] / MB:.0f}",
        outcome(phase),
    ]


def group_rows(groups: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for name, group in groups.items():
        if group.get("error"):
            summary = error_summary(group["error"])
            rows.append([f"{name} (whole group)", *["-"] * (len(COLUMNS) - 2), summary])
        rows.extend(phase_row(phase) for phase in group.get("phases", []))
    return rows


def error_summary(error: str) -> str:
    """The exception line of a traceback (its last unindented line that is not a hint)."""
    lines = [line for line in error.strip().splitlines() if line and not line[0].isspace()]
    for line in reversed(lines):
        if not line.startswith(("For further information", "Traceback")):
            return line
    return lines[-1] if lines else error


def markdown_table(header: list[str] | tuple[str, ...], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: list[str] | tuple[str, ...], rows: list[list[str]]) -> str:
    """A plain-text table; the last column (free text) is not padded."""
    widths = [
        max(len(str(row[i])) for row in [list(header), *rows]) for i in range(len(header) - 1)
    ]

    def line(row: list[str] | tuple[str, ...]) -> str:
        cells = [str(value).ljust(width) for value, width in zip(row, widths, strict=False)]
        return "  ".join([*cells, str(row[-1])])

    return "\n".join([line(header), *(line(row) for row in rows)])


def route_rows(groups: dict[str, dict[str, Any]]) -> list[list[str]]:
    """REST calls per operation by route, one row per phase and route."""
    rows = []
    for phase in phases_by_name(groups).values():
        for route, per_op in phase.get("calls_per_op_by_route", {}).items():
            rows.append([phase["phase"], route, _number(per_op)])
        attempted = phase.get("ops", 0) + phase.get("failed_ops", 0)
        if phase.get("attachment_downloads"):
            per_op = phase["attachment_downloads"] / attempted if attempted else None
            rows.append([phase["phase"], "attachment downloads (CDN)", _number(per_op)])
    return rows


def comparable_name(phase_name: str) -> str:
    """A phase's name without what differs between ours and 1.0.0 (sizes held, how it opens)."""
    for cut in (" on ", " of ", " by a new "):
        phase_name = phase_name.split(cut, maxsplit=1)[0]
    return phase_name


def ratio_rows(ours: Phases, baseline: Phases) -> list[list[str]]:
    """ours/theirs for phases both ran: REST calls per op and ops per simulated second."""
    theirs_by_name = {comparable_name(name): phase for name, phase in baseline.items()}
    rows = []
    for name, phase in ours.items():
        theirs = theirs_by_name.get(comparable_name(name))
        if theirs is None:
            continue
        calls = _ratio(_get(phase, calls_per_op), _get(theirs, calls_per_op))
        rate = _ratio(
            _get(phase, lambda p: p["ops_per_simulated_second"]),
            _get(theirs, lambda p: p["ops_per_simulated_second"]),
        )
        rows.append([name, _number(calls), _number(rate), outcome(theirs)])
    return rows


def target_rows(targets: list[Target]) -> list[list[str]]:
    return [
        [target.workload, target.text, target.shown_value(), target.verdict, target.note]
        for target in targets
    ]
