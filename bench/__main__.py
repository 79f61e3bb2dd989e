"""``python -m bench``: run the workloads on ours and on 1.0.0, print and record the figures.

- ``python -m bench``: the full sizes (the issue's), ours and the baseline; writes
  ``bench/results.json``, W8's figure and ``docs/performance.md`` (only a complete run writes
  them). W8 goes to 1,000,000 records: a few minutes and a few GB of memory.
- ``python -m bench --quick``: CI sizes (W8 at 2,000 records only), ours only, no baseline
  install; prints the tables and writes nothing unless ``--json PATH`` is given (a quick run
  never overwrites the full results).
- ``--render`` rewrites ``docs/performance.md`` and the figure from ``bench/results.json`` (after
  editing the page's template in :mod:`bench.report`);
- ``--before PATH`` records a complete run's results there instead (``bench/results-before.json``
  is the run before the engine's speed-ups, shown beside every later one);
- ``--groups W1,W6`` runs some groups only; ``--no-baseline`` skips 1.0.0; ``--shards N`` sets
  the benchmark table's ``Settings.shards`` (default 8; the ``W1 library defaults`` group measures
  the library's default, ``discobase.engine.schema.DEFAULT_SHARDS``); ``--limits`` prints the
  model's table and exits.

Each workload group runs in a subprocess of its own (ours: ``bench.worker``; 1.0.0:
``bench/baseline_driver.py`` in its virtual environment); ours run first, then the
baseline, one after the other, so that neither's CPU figures slow the other's.
Subprocesses run with ``PYTHONHASHSEED=0``: 1.0.0 iterates over sets of field names, whose order
would otherwise change from run to run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from discobase.engine.schema import DEFAULT_SHARDS

from . import baseline, report
from .figure import draw_w8
from .model import DEFAULT_LATENCY_SECONDS, limits_markdown
from .records import FULL, QUICK, Sizes
from .targets import MB, evaluate_targets, phases_by_name

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results.json"
BEFORE = REPO / "bench" / "results-before.json"
PERFORMANCE_DOC = REPO / "docs" / "performance.md"
FIGURE = REPO / "docs" / "images" / "performance-w8.png"
OUR_GROUPS = ("W1", "W1-defaults", "W2", "W3-W5", "W6", "W7", "W8", "W9", "W10", "W11")
BASELINE_GROUPS = ("W1", "W2", "W3-W5", "W6", "W7")
#: Real seconds a group of ours may take before it is reported as timed out.
OUR_TIMEOUT_SECONDS = 1800.0
#: Real seconds the baseline driver spends per phase before it stops issuing operations.
BASELINE_BUDGET_SECONDS = 120.0
#: Our table's Settings.shards: the workloads include awaited writes, which one channel's
#: 5 messages per 5 s would cap at 1 per second.
BENCH_SHARDS = 8


def run_subprocess(command: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run a worker that writes JSON to the path after ``--out``; collect its result."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        command = [*command, "--out", str(out)]
        started = time.monotonic()
        try:
            completed = subprocess.run(
                command,
                check=False,
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"phases": [], "error": f"timed out after {timeout:g} real seconds"}
        real_seconds = time.monotonic() - started
        if out.exists():
            result: dict[str, Any] = json.loads(out.read_text())
        else:
            result = {"phases": [], "error": f"exit {completed.returncode}: {completed.stderr}"}
        result["real_seconds"] = round(real_seconds, 1)
        return result


def run_ours(groups: list[str], sizes: Sizes, shards: int) -> dict[str, dict[str, Any]]:
    results = {}
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    for group in groups:
        print(f"ours: {group} ...", flush=True)
        command = [
            sys.executable,
            "-m",
            "bench.worker",
            group,
            "--sizes",
            json.dumps(sizes.as_json()),
            "--shards",
            str(shards),
        ]
        results[group] = run_subprocess(command, env, OUR_TIMEOUT_SECONDS)
    return results


def run_baseline(groups: list[str], sizes: Sizes) -> dict[str, dict[str, Any]]:
    results = {}
    for group in groups:
        print(f"1.0.0: {group} ...", flush=True)
        command = baseline.driver_command(
            group, json.dumps(sizes.as_json()), BASELINE_BUDGET_SECONDS
        )
        results[group] = run_subprocess(
            command, baseline.driver_environment(), BASELINE_BUDGET_SECONDS * 10
        )
    return results


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    with contextlib.suppress(ValueError, OSError):
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MB
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_mb": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "discord.py": version("discord.py"),
        "simcord": version("simcord"),
        "looptime": version("looptime"),
    }


def code_version() -> str:
    """The repository's commit, and whether the working tree differed from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "discobase", "bench", "bot.py", "cogs"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"commit {commit}" + (" with uncommitted changes" if dirty else "")


def code_during(at_start: str, at_end: str) -> str:
    """The code version of a run; both versions if the repository changed while it ran."""
    if at_start == at_end:
        return at_start
    return f"{at_start} at the start, {at_end} at the end (the code changed during the run)"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI sizes, ours only")
    parser.add_argument("--groups", help=f"comma-separated subset of {', '.join(OUR_GROUPS)}")
    parser.add_argument("--no-baseline", action="store_true", help="skip discobase 1.0.0")
    parser.add_argument("--json", type=Path, help="write the results here (default: full runs)")
    parser.add_argument(
        "--before",
        type=Path,
        help="write the results here as the run to compare later ones with, and nothing else",
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=BENCH_SHARDS,
        help=f"Settings.shards of our table (default {BENCH_SHARDS}; the library's default is "
        f"{DEFAULT_SHARDS})",
    )
    parser.add_argument("--limits", action="store_true", help="print the model's figures")
    parser.add_argument(
        "--render",
        action="store_true",
        help="rewrite docs/performance.md from bench/results.json without running anything",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.limits:
        print(limits_markdown())
        return 0
    if args.render:
        write_page(json.loads(RESULTS.read_text()))
        print(f"wrote {PERFORMANCE_DOC.relative_to(REPO)} from {RESULTS.relative_to(REPO)}")
        return 0
    sizes = QUICK if args.quick else FULL
    groups = args.groups.split(",") if args.groups else list(OUR_GROUPS)
    unknown = sorted(set(groups) - set(OUR_GROUPS))
    if unknown:
        print(f"unknown groups: {', '.join(unknown)}", file=sys.stderr)
        return 2
    with_baseline = not (args.quick or args.no_baseline)
    command = "python -m bench" + (" --quick" if args.quick else "")
    if args.groups:
        command += f" --groups {args.groups}"
    if args.no_baseline and not args.quick:
        command += " --no-baseline"
    if args.shards != BENCH_SHARDS:
        command += f" --shards {args.shards}"
    started = time.monotonic()
    code_at_start = code_version()
    baseline_setup_error = None
    if with_baseline:
        try:
            baseline.ensure_installed()
        except (subprocess.CalledProcessError, OSError) as error:
            baseline_setup_error = (
                f"could not install discobase {baseline.BASELINE_VERSION}: {error}"
            )
    # One after the other: 1.0.0's groups are CPU-bound, and run beside ours they would
    # slow our process's CPU figures (the machine's cores share their caches).
    ours = run_ours(groups, sizes, args.shards)
    baseline_groups = [group for group in groups if group in BASELINE_GROUPS]
    theirs = (
        run_baseline(baseline_groups, sizes)
        if with_baseline and baseline_setup_error is None
        else None
    )

    results = {
        "command": command,
        "mode": "quick" if args.quick else "full",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "real_seconds": round(time.monotonic() - started, 1),
        "sizes": sizes.as_json(),
        "table_shards": args.shards,
        "machine": machine(),
        "code": code_during(code_at_start, code_version()),
        "model": {"latency_seconds": DEFAULT_LATENCY_SECONDS, "limits": limits_markdown()},
        "ours": ours,
        "baseline": theirs,
        "baseline_setup_error": baseline_setup_error,
    }
    results["targets"] = [
        target.as_json()
        for target in evaluate_targets(
            phases_by_name(ours), phases_by_name(theirs) if theirs is not None else None
        )
    ]
    before = load_before()
    print()
    print(report.render_text(results, before))
    complete_run = not (args.quick or args.groups or args.no_baseline)
    json_path = args.before or args.json or (RESULTS if complete_run else None)
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
        print(f"\nwrote {json_path}")
    if complete_run and args.before is None:
        write_page(results)
        print(f"wrote {PERFORMANCE_DOC.relative_to(REPO)} and {FIGURE.relative_to(REPO)}")
    broken = broken_phases(ours)
    if broken:
        print(f"\nours went wrong (exit 1): {', '.join(broken)}", file=sys.stderr)
    return 1 if broken else 0


def load_before() -> dict[str, Any] | None:
    """The run recorded before the engine's speed-ups, if there is one."""
    return json.loads(BEFORE.read_text()) if BEFORE.exists() else None


def write_page(results: dict[str, Any]) -> None:
    """W8's figure and docs/performance.md for ``results``."""
    before = load_before()
    drawn = draw_w8(
        phases_by_name(results["ours"]),
        phases_by_name(before["ours"]) if before is not None else None,
        FIGURE,
    )
    figure = str(FIGURE.relative_to(PERFORMANCE_DOC.parent)) if drawn else None
    PERFORMANCE_DOC.write_text(
        report.render_markdown(results, before, figure, BASELINE_BUDGET_SECONDS)
    )


def broken_phases(ours: dict[str, dict[str, Any]]) -> list[str]:
    """Our groups that crashed and phases with failed operations, wrong or lost results.

    Targets missed are findings, not errors; these are: they fail ``--quick`` in CI.
    """
    broken = [f"{name} (crashed)" for name, group in ours.items() if group.get("error")]
    for phase in phases_by_name(ours).values():
        verified = phase.get("verified", "ok")
        if phase.get("failed_ops") or phase.get("wrong_results") or verified != "ok":
            broken.append(phase["phase"])
    return broken


if __name__ == "__main__":
    sys.exit(main())
