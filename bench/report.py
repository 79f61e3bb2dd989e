"""Turning a run's results into what it prints and into ``docs/performance.md``.

Tables of phases (ours, 1.0.0's), REST calls by route, ratios against 1.0.0, the targets side by
side (1.0.0, the run recorded before the engine's speed-ups, this run), and W8's curve as a table,
a figure (:mod:`bench.figure`) and a sentence per cost on how it grows. The targets themselves
are data, in :mod:`bench.targets`.
"""

from __future__ import annotations

import math
from typing import Any

from .targets import (
    MB,
    Phases,
    Target,
    calls_per_op,
    evaluate_targets,
    figure_of,
    find_phase,
    phases_by_name,
    ratio,
    w8_phase,
    w8_sizes,
)


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
    "effective s",
    "ops/effective s",
    "effective p99 s",
    "peak RSS MB",
    "outcome",
)


def phase_row(phase: dict[str, Any]) -> list[str]:
    if phase.get("unsupported") or "simulated_seconds" not in phase:
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
        _number(phase.get("effective_seconds")),
        _number(phase.get("ops_per_effective_second")),
        _number(phase.get("effective_latency_p99_s")),
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
    for name in ours:
        theirs = theirs_by_name.get(comparable_name(name))
        if theirs is None:
            continue
        theirs_name = theirs["phase"]
        calls = ratio(
            figure_of(ours, name, "calls/op"), figure_of(baseline, theirs_name, "calls/op")
        )
        rate = ratio(
            figure_of(ours, name, "ops/sim s"), figure_of(baseline, theirs_name, "ops/sim s")
        )
        rows.append([name, _number(calls), _number(rate), outcome(theirs)])
    return rows


def shown(target: Target) -> str:
    return "-" if target.value is None else f"{_number(target.value)}{target.unit}"


TARGET_COLUMNS = ("workload", "target", "value", "verdict", "note")


def target_rows(targets: list[Target]) -> list[list[str]]:
    return [
        [target.workload, target.text, shown(target), target.verdict, target.note]
        for target in targets
    ]


SIDE_BY_SIDE_COLUMNS = ("workload", "target", "1.0.0", "before", "now", "verdict (now)")


def side_by_side_rows(
    now: list[Target], before: list[Target] | None, baseline: list[Target] | None
) -> list[list[str]]:
    """Every target's value on 1.0.0, on the run recorded before, and now (``-``: no figure)."""
    rows = []
    for index, target in enumerate(now):
        if target.workload.endswith("vs 1.0.0"):
            continue
        then = shown(before[index]) if before is not None else "-"
        theirs = shown(baseline[index]) if baseline is not None else "-"
        rows.append([target.workload, target.text, theirs, then, shown(target), target.verdict])
    return rows


W8_COLUMNS = (
    "records",
    "insert_many µs/record",
    "insert_many effective s",
    "find µs (median)",
    "scan ms (median)",
    "scan ns/record",
    "cold open µs/record",
    "cold open effective s",
    "held bytes/record",
    "RSS growth bytes/record",
    "real s",
)


def w8_rows(phases: Phases) -> list[list[str]]:
    """W8's costs at each size; CPU is the process's (SimCord's share included)."""
    rows = []
    for records in w8_sizes(phases):
        scan_us = figure_of(phases, w8_phase("scan", records), "median op CPU us")
        open_phase = w8_phase("open", records)
        opened = find_phase(phases, open_phase)
        rss_growth = opened.get("rss_growth_bytes_per_record") if opened is not None else None
        rows.append(
            [
                f"{records:,}",
                _number(figure_of(phases, w8_phase("insert_many", records), "CPU us/record")),
                _number(figure_of(phases, w8_phase("insert_many", records), "effective s")),
                _number(figure_of(phases, w8_phase("find", records), "median op CPU us")),
                _number(figure_of(phases, w8_phase("scan", records), "median op CPU ms")),
                _number(None if scan_us is None else scan_us * 1000 / records),
                _number(figure_of(phases, open_phase, "CPU us/record")),
                _number(figure_of(phases, open_phase, "effective s")),
                _number(figure_of(phases, open_phase, "held bytes/record")),
                _number(rss_growth),
                _number(_size_real_seconds(phases, records)),
            ]
        )
    return rows


def _size_real_seconds(phases: Phases, records: int) -> float | None:
    built = find_phase(phases, w8_phase("insert_many", records))
    return built.get("size_real_seconds") if built is not None else None


#: W8's costs for the growth sentences: (what, phase kind, figure, per query rather than
#: per record, unit).
W8_GROWTH = (
    ("The CPU time of `insert_many`", "insert_many", "CPU us/record", False, "µs"),
    ("The CPU time of a cold open", "open", "CPU us/record", False, "µs"),
    ("The memory held", "open", "held bytes/record", False, "bytes"),
    ("The CPU time of one unindexed scan", "scan", "median op CPU us", True, "µs"),
    ("The CPU time of one indexed find", "find", "median op CPU us", True, "µs"),
)


def growth_sentences(phases: Phases) -> list[str]:
    """How each W8 cost grows from the smallest size to the largest, as an exponent of N."""
    sizes = w8_sizes(phases)
    if len(sizes) < 2:
        return []
    small, large = sizes[0], sizes[-1]
    sentences = []
    for what, kind, figure, per_query, unit in W8_GROWTH:
        first = figure_of(phases, w8_phase(kind, small), figure)
        last = figure_of(phases, w8_phase(kind, large), figure)
        if not first or not last:
            continue
        # Per-record figures times the size give totals; per-query figures are the cost itself.
        total_first = first if per_query else first * small
        total_last = last if per_query else last * large
        exponent = math.log(total_last / total_first) / math.log(large / small)
        sentences.append(
            f"- {what} grows as N^{exponent:.2f} ({_shape(exponent)}) "
            f"from {small:,} to {large:,} records"
            + f": {_number(first)} then {_number(last)} {unit} "
            + ("per query" if per_query else "per record")
            + "."
        )
    return sentences


def _shape(exponent: float) -> str:
    if abs(exponent) < 0.15:
        return "about constant"
    if exponent < 0.9:
        return "sub-linear"
    if exponent <= 1.1:
        return "linear"
    return "faster than linear"


FEED_COLUMNS = ("phase", "changes", "p50 s", "p99 s", "horizon margin s", "outcome")
AGGREGATE_COLUMNS = ("phase", "calls", "CPU per call p50 ms", "CPU per call max ms", "outcome")
CURSOR_COLUMNS = ("phase", "records", "CPU per record us", "peak held KB", "keys alone KB")


def cursor_rows(phases: Phases) -> list[list[str]]:
    """W8's cursors: CPU per record, and the peak memory held while reading (against what a
    list of the keys alone would take: 8 bytes a key)."""
    return [
        [
            name,
            str(phase["ops"]),
            _number(phase["cpu_seconds"] / phase["ops"] * 1e6 if phase["ops"] else None),
            _number(phase["cursor_peak_traced_bytes"] / 1024),
            _number(phase["ops"] * 8 / 1024),
        ]
        for name, phase in phases.items()
        if "cursor_peak_traced_bytes" in phase
    ]


def feed_rows(phases: Phases) -> list[list[str]]:
    """W9: simulated seconds from a write's acknowledgement to a watcher yielding it."""
    return [
        [
            name,
            str(phase["ops"]),
            _number(phase["latency_p50_s"]),
            _number(phase["latency_p99_s"]),
            _number(phase.get("horizon_margin_s")),
            outcome(phase),
        ]
        for name, phase in phases.items()
        if name.startswith("W9 ") and "simulated_seconds" in phase
    ]


def aggregate_rows(phases: Phases) -> list[list[str]]:
    """W10: the client CPU of one ``aggregate`` call."""
    return [
        [
            name,
            str(phase["ops"]),
            _number(None if phase["op_cpu_p50_s"] is None else phase["op_cpu_p50_s"] * 1000),
            _number(None if phase["op_cpu_max_s"] is None else phase["op_cpu_max_s"] * 1000),
            outcome(phase),
        ]
        for name, phase in phases.items()
        if name.startswith("W10 ") and "simulated_seconds" in phase
    ]


def _feed_and_aggregate_section(phases: Phases) -> list[str]:
    feed, aggregates, cursors = feed_rows(phases), aggregate_rows(phases), cursor_rows(phases)
    if not feed and not aggregates and not cursors:
        return []
    return [
        "## Cursors, change-feed latency (W9) and aggregate CPU (W10)",
        "",
        "W8 also reads its whole table with `async for record in table.all()` (batches of",
        "1,000): the CPU per record, and the peak memory `tracemalloc` sees while a second pass",
        "reads it, next to what a list of the keys alone would take (docs/library.md,",
        '"Cursors": a cursor holds a batch of keys and the record being read).',
        "",
        markdown_table(CURSOR_COLUMNS, cursors),
        "",
        "",
        "W9 writes one record a second, first from the watcher's process, then from another",
        "client of the bot (its messages reach the watcher's process through the gateway), and",
        "measures the simulated seconds from each write's acknowledgement to `table.watch()`",
        "yielding it. The feed yields a change only once every shard is known complete past",
        "it: its horizon, `Compaction.margin` (the margin column) behind the newest id seen,",
        'read back from Discord (docs/library.md, "Change feed"). So the latency is the',
        "margin plus the watcher's read: the price of a gapless, resumable feed. SimCord",
        "delivers gateway events at once, so both sources cost the same here.",
        "",
        markdown_table(FEED_COLUMNS, feed),
        "",
        "W10 times `Table.aggregate` over the whole table (from memory: no REST call), per",
        "call; the CPU is the process's (`time.thread_time`), the median over the calls.",
        "",
        markdown_table(AGGREGATE_COLUMNS, aggregates),
        "",
    ]


def render_text(results: dict[str, Any], before: dict[str, Any] | None) -> str:
    """What ``python -m bench`` prints at the end of a run."""
    ours, theirs = results["ours"], results["baseline"]
    targets = evaluate_targets(phases_by_name(ours), _phases(theirs))
    parts = [
        f"discobase benchmark ({results['mode']}; {results['real_seconds']} real s)",
        "",
        "ours:",
        text_table(COLUMNS, group_rows(ours)),
    ]
    if theirs is not None:
        parts += ["", "discobase 1.0.0:", text_table(COLUMNS, group_rows(theirs))]
        ratios = ratio_rows(phases_by_name(ours), phases_by_name(theirs))
        parts += [
            "",
            "ours/1.0.0:",
            text_table(["phase", "calls/op", "ops/sim s", "1.0.0 outcome"], ratios),
        ]
    elif results["baseline_setup_error"]:
        parts += ["", results["baseline_setup_error"]]
    if w8_sizes(phases_by_name(ours)):
        parts += ["", "W8:", text_table(W8_COLUMNS, w8_rows(phases_by_name(ours)))]
    if feed_rows(phases_by_name(ours)):
        parts += ["", "W9:", text_table(FEED_COLUMNS, feed_rows(phases_by_name(ours)))]
    if aggregate_rows(phases_by_name(ours)):
        parts += ["", "W10:", text_table(AGGREGATE_COLUMNS, aggregate_rows(phases_by_name(ours)))]
    parts += ["", "targets:"]
    if before is None:
        parts.append(text_table(TARGET_COLUMNS, target_rows(targets)))
    else:
        parts.append(text_table(SIDE_BY_SIDE_COLUMNS, _side_by_side(results, before)))
    if results["mode"] == "quick":
        parts.append("(quick sizes: the targets are meant for the full run)")
    return "\n".join(parts)


def _phases(groups: dict[str, dict[str, Any]] | None) -> Phases | None:
    return phases_by_name(groups) if groups is not None else None


def _side_by_side(results: dict[str, Any], before: dict[str, Any] | None) -> list[list[str]]:
    baseline = _phases(results["baseline"])
    now = evaluate_targets(phases_by_name(results["ours"]), baseline)
    then = evaluate_targets(phases_by_name(before["ours"]), None) if before is not None else None
    theirs = evaluate_targets(baseline, None) if baseline is not None else None
    return side_by_side_rows(now, then, theirs)


def render_markdown(
    results: dict[str, Any],
    before: dict[str, Any] | None,
    figure: str | None,
    baseline_budget_seconds: float,
) -> str:
    """``docs/performance.md`` for ``results``; ``figure`` is W8's PNG relative to docs/."""
    ours, theirs = results["ours"], results["baseline"]
    ours_phases = phases_by_name(ours)
    machine_info = results["machine"]
    sizes = ", ".join(f"{key}={value}" for key, value in results["sizes"].items())
    parts = [
        "# Performance",
        "",
        "Generated by `python -m bench` (do not edit by hand; rerun it). Figures come from a model",
        "of Discord's rate limits wrapped around SimCord's REST transport, in virtual time",
        "(looptime): simulated seconds are what the workload would take against Discord under",
        "the model; CPU seconds and RSS are real, of the workload's process. REST calls and",
        "simulated times are the same on every run, except in 1.0.0's phases that a real-time",
        "budget stopped (those depend on the machine's speed). CPU times are not: the machine",
        "is shared, so a figure can be off by tens of percent under load. Per-query figures",
        "are medians over the phase's queries, a cold open's the median of 3 opens.",
        "",
        f"- command: `{results['command']}` ({results['real_seconds']} real seconds)",
        f"- date: {results['date']}; code: {results.get('code', 'not recorded')}",
        f"- machine: {machine_info['cpu']}, {machine_info['cpus']} CPUs, "
        f"{machine_info['memory_mb']} MB; {machine_info['platform']}; Python "
        f"{machine_info['python']}; discord.py {machine_info['discord.py']}, SimCord "
        f"{machine_info['simcord']}, looptime {machine_info['looptime']}",
        f"- sizes: {sizes}",
        f"- our table: `Settings.shards = {results.get('table_shards')}` (a log spread over that "
        "many shards, the table's channel and private threads of it, each with its own rate "
        "limit), except in `W1 ..., library defaults`, whose table sets nothing (6 shards: "
        "the channel and 5 threads)",
        "",
        "## Reading the table",
        "",
        "- **calls/op**: REST calls per operation attempted (failed ones included), counted at",
        "  SimCord's transport (not by the library), including calls the library made after the",
        "  phase's operations returned (`trailing_rest_calls` in `bench/results.json`).",
        "- **ops**: operations that succeeded; failures are listed under outcome.",
        "- **sim s**, **ops/sim s**, **p50 s**, **p99 s**: simulated time of the phase and of each",
        "  operation (rate-limit waits and 100 ms round trips).",
        "- **CPU s**: process CPU time of the phase, which includes SimCord answering the calls;",
        "  **server CPU s** is that part (the simulated Discord's work: the CPU time inside",
        "  SimCord's handling of each call, less the gateway events it delivers to the bot, whose",
        "  parsing is the client's work on a real Discord), so the client's share is the",
        "  difference.",
        "- **effective s**: what a user would wait, simulated time plus the client's CPU time (the",
        "  loop's virtual clock stands still while the process computes); an upper bound, since",
        "  CPU work done while a call is in flight is counted as if not overlapped.",
        "  **ops/effective s** and **effective p99 s** (each operation's simulated latency plus",
        "  the client CPU spent during it) follow from it.",
        "- **peak RSS MB**: the process's peak during the phase (the kernel's high-water mark is",
        "  reset when a phase starts), SimCord's world included.",
        "",
        "## Ours",
        "",
        markdown_table(COLUMNS, group_rows(ours)),
        "",
        "### REST calls per operation by route",
        "",
        markdown_table(["phase", "route", "calls/op"], route_rows(ours)),
        "",
        "## Targets",
        "",
        "Time targets hold on simulated and on effective time. CPU targets are per record or per",
        "query, of the process (SimCord's share included, as they are defined); the memory",
        "target is what `tracemalloc` finds still allocated after a cold open and a garbage",
        "collection, from a start just before the database is made. **before** is",
        _before_text(before),
        "**1.0.0** is the baseline below, run on the records it could hold (a few hundred, not",
        "the workload's size: its per-query figures are not comparable with ours) with its",
        "failed operations counted; `-` where it has no such phase.",
        "",
        markdown_table(SIDE_BY_SIDE_COLUMNS, _side_by_side(results, before)),
        "",
    ]
    baseline_targets = [
        target
        for target in evaluate_targets(ours_phases, _phases(theirs))
        if target.workload.endswith("vs 1.0.0")
    ]
    if baseline_targets:
        parts += [markdown_table(TARGET_COLUMNS, target_rows(baseline_targets)), ""]
    parts += _w8_section(ours_phases, before, figure)
    parts += _feed_and_aggregate_section(ours_phases)
    if theirs is not None:
        parts += [
            "## discobase 1.0.0 (the baseline)",
            "",
            "Installed from PyPI into `bench/.baseline-venv` and driven by",
            "`bench/baseline_driver.py` on the same SimCord and model (its docstring says how).",
            "It stores only str, int and bool: its records carry `x` as `x_milli: int` and `at` as",
            "an ISO 8601 string. It has no bulk insert, no range queries and no compaction; it",
            "cannot build tables of the workloads' sizes, so its later phases run on the records",
            "it holds. A phase stops after 10 consecutive failures or "
            f"{baseline_budget_seconds:g} real seconds.",
            "",
            markdown_table(COLUMNS, group_rows(theirs)),
            "",
            "### REST calls per operation by route (1.0.0)",
            "",
            markdown_table(["phase", "route", "calls/op"], route_rows(theirs)),
            "",
            "### Ours / 1.0.0",
            "",
            "Below 1 is better for calls/op, above 1 for ops/sim s; `-` where a side has no",
            "figure (ours took no simulated time, or 1.0.0 could not run the phase).",
            "",
            markdown_table(
                ["phase", "calls/op ours/1.0.0", "ops/sim s ours/1.0.0", "1.0.0 outcome"],
                ratio_rows(ours_phases, phases_by_name(theirs)),
            ),
            "",
        ]
    elif results["baseline_setup_error"]:
        parts += ["## discobase 1.0.0", "", results["baseline_setup_error"], ""]
    parts += [
        "## The model of Discord",
        "",
        "`bench/model.py`; figures from `shared/DISCORD_LIMITS.md` (tags: D documented, C observed",
        "by the community, U uncertain; where uncertain the model is conservative). Buckets are",
        "fixed windows opened by their first request; a call takes a token from every bucket that",
        "applies, waiting (first come, first served) when one is empty, then pays the round trip,",
        "reaching SimCord half-way. SimCord's clock moves with the loop's virtual time. While the",
        "model is installed, `GET /channels/{id}/messages?after=` pages forward as on Discord",
        "(SimCord returns the newest messages instead).",
        "",
        results["model"]["limits"],
        "",
    ]
    return "\n".join(parts)


def _before_text(before: dict[str, Any] | None) -> str:
    if before is None:
        return "not recorded (`bench/results-before.json` is missing)."
    return (
        f"`bench/results-before.json` ({before.get('date')}): the library of {before.get('code')}"
        " (the changes: this benchmark's `bench/`), before the engine's speed-ups for CPU and"
        " memory;"
    )


def _w8_section(ours: Phases, before: dict[str, Any] | None, figure: str | None) -> list[str]:
    if not w8_sizes(ours):
        return []
    parts = [
        "## W8: the curve to a million records",
        "",
        "A table of five fields and one index (`name`), built with one `insert_many` at each",
        "size, then 10,000 finds by `name`, unindexed scans on `x` (100, or 10 at 1,000,000",
        "records), a compaction, and a cold open by a new process (the median of 3; memory from a",
        "fourth under `tracemalloc`; **RSS growth** is the resident set's growth over the",
        "untraced open, which also keeps memory the allocator did not give back). CPU is the",
        "process's, SimCord's share included; effective seconds as above. **real s** is the",
        "wall-clock time of the whole size on this machine, making the records included.",
        "",
        markdown_table(W8_COLUMNS, w8_rows(ours)),
        "",
    ]
    if before is not None and w8_sizes(phases_by_name(before["ours"])):
        parts += [
            "Before the engine's speed-ups (`bench/results-before.json`):",
            "",
            markdown_table(W8_COLUMNS, w8_rows(phases_by_name(before["ours"]))),
            "",
        ]
    if figure is not None:
        parts += [
            f"![W8: CPU per record or query and memory per record against the table's size; "
            f"dashed: before the speed-ups]({figure})",
            "",
        ]
    sentences = growth_sentences(ours)
    if sentences:
        parts += ["How each cost grows (N: records in the table):", "", *sentences, ""]
    return parts
