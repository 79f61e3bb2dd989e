"""Tests of how the benchmark judges its results: percentiles, targets, ratios, broken phases."""

from __future__ import annotations

from typing import Any

from bench.__main__ import broken_phases
from bench.measure import percentile
from bench.report import (
    W1,
    calls_per_op,
    comparable_name,
    evaluate_targets,
    phases_by_name,
    ratio_rows,
)


def phase(name: str, **figures: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "phase": name,
        "ops": 100,
        "failed_ops": 0,
        "rest_calls": 100,
        "ops_per_simulated_second": 1.0,
        "latency_p99_s": 0.1,
        "simulated_seconds": 100.0,
    }
    return {**base, **figures}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) is None


def test_calls_per_op_counts_failed_operations_and_trailing_calls() -> None:
    assert calls_per_op(phase("p", ops=90, failed_ops=10, rest_calls=150)) == 1.5
    assert calls_per_op(phase("p", rest_calls=100, trailing_rest_calls=50)) == 1.5
    assert calls_per_op(phase("p", ops=0)) is None


def test_targets_are_met_missed_or_not_measured() -> None:
    ours = {W1: phase(W1, rest_calls=101, ops_per_simulated_second=5.0)}
    targets = {t.text: t for t in evaluate_targets(ours, None) if t.workload == "W1"}
    assert targets["REST calls per insert <= 1"].met is False
    assert targets["inserts per simulated second >= 5"].met is True
    w2 = [t for t in evaluate_targets(ours, None) if t.workload == "W2"]
    assert w2
    assert all(t.met is None and t.verdict == "not measured" for t in w2)


def test_targets_against_the_baseline_need_ten_times_fewer_calls_and_ten_times_the_rate() -> None:
    ours = {W1: phase(W1, rest_calls=100, ops_per_simulated_second=1.0)}
    theirs = {W1: phase(W1, rest_calls=999, ops_per_simulated_second=0.1)}
    judged = {t.text: t for t in evaluate_targets(ours, theirs) if t.workload == "W1 vs 1.0.0"}
    assert judged["times fewer REST calls per insert >= 10"].met is False
    assert judged["times the inserts per simulated second >= 10"].met is True


def test_ratios_pair_phases_that_differ_only_in_size_or_how_they_open() -> None:
    assert comparable_name("W7 /find by name on 10000 records") == "W7 /find by name"
    assert comparable_name("W5 cold open by a new process, then count()") == "W5 cold open"
    ours = {"W7 /find by name on 10000 records": phase("W7 /find by name on 10000 records")}
    theirs = {
        "W7 /find by name on 194 records": phase(
            "W7 /find by name on 194 records", rest_calls=400, ops_per_simulated_second=0.5
        )
    }
    assert ratio_rows(ours, theirs)[0][:3] == ["W7 /find by name on 10000 records", "0.25", "2"]


def test_failed_operations_wrong_results_and_lost_records_make_a_run_broken() -> None:
    groups = {
        "A": {"phases": [phase("fine", verified="ok"), phase("lossy", verified="MISMATCH")]},
        "B": {"phases": [phase("failing", failed_ops=1), phase("wrong", wrong_results=2)]},
        "C": {"phases": [], "error": "Traceback ...\nRuntimeError: boom"},
    }
    assert sorted(broken_phases(groups)) == ["C (crashed)", "failing", "lossy", "wrong"]
    assert set(phases_by_name(groups)) == {"fine", "lossy", "failing", "wrong"}
