"""Tests of how the benchmark judges its results: percentiles, targets, ratios, broken phases,
W8's table and how its costs grow."""

from __future__ import annotations

from typing import Any

import pytest

from bench.__main__ import broken_phases
from bench.measure import percentile
from bench.report import comparable_name, growth_sentences, ratio_rows, side_by_side_rows
from bench.targets import (
    W1,
    W1_DEFAULTS,
    calls_per_op,
    evaluate_targets,
    find_phase,
    phases_by_name,
    w8_phase,
)


def phase(name: str, **figures: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "phase": name,
        "ops": 100,
        "failed_ops": 0,
        "rest_calls": 100,
        "ops_per_simulated_second": 1.0,
        "ops_per_effective_second": 1.0,
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


def test_targets_hold_on_effective_time_too() -> None:
    ours = {W1: phase(W1, ops_per_simulated_second=8.0, ops_per_effective_second=4.0)}
    judged = {t.text: t for t in evaluate_targets(ours, None) if t.workload == "W1"}
    assert judged["inserts per simulated second >= 5"].met is True
    assert judged["inserts per effective second >= 5"].met is False


def test_the_library_default_w1_is_judged_on_its_own_phase() -> None:
    ours = {W1: phase(W1, ops_per_simulated_second=8.0)}
    defaults = [t for t in evaluate_targets(ours, None) if t.workload == "W1 library defaults"]
    assert defaults
    assert all(t.verdict == "not measured" for t in defaults)
    assert find_phase(ours, W1_DEFAULTS) is None
    ours[W1_DEFAULTS] = phase(W1_DEFAULTS, ops_per_simulated_second=1.0)
    judged = {
        t.text: t for t in evaluate_targets(ours, None) if t.workload == "W1 library defaults"
    }
    assert judged["inserts per simulated second >= 5"].value == 1.0
    assert judged["inserts per simulated second >= 5"].verdict == "NOT MET"


def test_cpu_and_memory_targets_are_per_record_of_the_process() -> None:
    open_name = "W5 cold open by a new process, then count()"
    ours = {
        "W3 insert_many": phase("W3 insert_many", ops=100_000, cpu_seconds=1.0),
        open_name: phase(
            open_name, ops=1, records=100_000, cpu_seconds=0.5, held_bytes_per_record=700.0
        ),
    }
    judged = {t.text: t for t in evaluate_targets(ours, None) if t.workload in ("W3", "W5")}
    assert judged["insert_many CPU per record <= 12 us"].value == pytest.approx(10.0)
    assert judged["insert_many CPU per record <= 12 us"].met is True
    assert judged["cold open CPU per record <= 6 us"].value == pytest.approx(5.0)
    assert judged["bytes held per loaded record <= 600"].met is False


def test_side_by_side_shows_each_target_on_the_baseline_before_and_now() -> None:
    now = evaluate_targets({W1: phase(W1, ops_per_simulated_second=8.0)}, None)
    before = evaluate_targets({W1: phase(W1, ops_per_simulated_second=2.0)}, None)
    rows = {(row[0], row[1]): row for row in side_by_side_rows(now, before, None)}
    assert rows[("W1", "inserts per simulated second >= 5")][2:] == ["-", "2", "8", "met"]


def w8(records: int, insert_us: float, open_us: float, scan_ms: float, find_us: float) -> Any:
    return {
        w8_phase("insert_many", records): phase(
            w8_phase("insert_many", records), ops=records, cpu_seconds=insert_us * records / 1e6
        ),
        w8_phase("open", records) + " by a new process, then count()": phase(
            w8_phase("open", records),
            ops=1,
            records=records,
            cpu_seconds=open_us * records / 1e6,
            held_bytes_per_record=500.0,
        ),
        w8_phase("scan", records): phase(w8_phase("scan", records), op_cpu_p50_s=scan_ms / 1e3),
        w8_phase("find", records): phase(w8_phase("find", records), op_cpu_p50_s=find_us / 1e6),
    }


def test_growth_is_the_exponent_of_the_total_cost_over_the_sizes() -> None:
    phases = {**w8(10_000, 10.0, 5.0, 3.0, 4.0), **w8(1_000_000, 10.0, 10.0, 300.0, 4.0)}
    sentences = "\n".join(growth_sentences(phases))
    assert "CPU time of `insert_many` grows as N^1.00 (linear)" in sentences
    assert "CPU time of a cold open grows as N^1.15 (faster than linear)" in sentences
    assert "CPU time of one unindexed scan grows as N^1.00 (linear)" in sentences
    assert "CPU time of one indexed find grows as N^0.00 (about constant)" in sentences
    assert "memory held grows as N^1.00 (linear)" in sentences
