"""Tests of the benchmark's workloads at toy sizes: W8's curve, the library-default W1, W9's feed
latency and W10's aggregates, and the rule that only ``bench/seam.py`` reaches into SimCord's private modules."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

import discobase
from bench.__main__ import parse_args
from bench.model import DiscordModel
from bench.records import QUICK
from bench.report import aggregate_rows
from bench.targets import W1_DEFAULTS, phases_by_name, w8_phase
from bench.worker import run_in_virtual_time
from bench.workloads import (
    OPEN_REPEATS,
    W9_OTHER,
    W9_THIS,
    W10_AGGREGATES,
    W11_AFTER,
    W11_BEFORE,
    W11_RESHARD,
    run_group,
)

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_w8_measures_every_cost_at_every_size() -> None:
    sizes = dataclasses.replace(QUICK, w8_records=(200, 400), w8_finds=20)
    phases = phases_by_name(
        {"W8": {"phases": run_in_virtual_time(run_group("W8", sizes, DiscordModel(), 2))}}
    )
    for records in (200, 400):
        built = phases[w8_phase("insert_many", records)]
        assert built["ops"] == records
        assert built["verified"] == "ok"
        assert built["size_real_seconds"] > 0
        assert phases[w8_phase("find", records)]["wrong_results"] == 0
        assert phases[w8_phase("scan", records)]["wrong_results"] == 0
        cursor = phases[f"W8 cursor (async for, all()) over {records} records"]
        assert (cursor["ops"], cursor["verified"]) == (records, "ok")
        assert cursor["cursor_peak_traced_bytes"] > 0
        opened = phases[w8_phase("open", records) + " by a new process, then count()"]
        assert opened["verified"] == "ok"
        assert opened["records"] == records
        assert len(opened["repeat_client_cpu_seconds"]) == OPEN_REPEATS
        assert opened["client_cpu_seconds"] in opened["repeat_client_cpu_seconds"]
        assert opened["held_bytes_per_record"] > 0
        assert opened["effective_seconds"] >= opened["simulated_seconds"]


def test_library_default_w1_ignores_the_shards_option_and_uses_a_table_without_settings() -> None:
    sizes = dataclasses.replace(QUICK, w1_inserts=12)
    (defaults,) = run_in_virtual_time(run_group("W1-defaults", sizes, DiscordModel(), 8))
    (unset,) = run_in_virtual_time(run_group("W1", sizes, DiscordModel(), None))
    assert defaults["phase"] == W1_DEFAULTS
    assert (defaults["ops"], defaults["verified"]) == (12, "ok")
    # Virtual time makes calls and simulated seconds exact: the same as a table that sets nothing.
    same = ("calls_by_route", "simulated_seconds", "latency_p99_s")
    assert [defaults[key] for key in same] == [unset[key] for key in same]


def test_w6_phases_start_on_rested_buckets_so_concurrent_writes_wait_for_no_earlier_phase() -> None:
    # One channel: the awaited writes (5 per 5 s) leave its window spent at each phase's end.
    sizes = dataclasses.replace(QUICK, w6_ops=10)
    phases = {
        phase["phase"]: phase
        for phase in run_in_virtual_time(run_group("W6", sizes, DiscordModel(), 1))
    }
    awaited = phases["W6 deletes awaited one by one"]
    assert (awaited["ops"], awaited["verified"]) == (10, "ok")
    # Two windows of five: the sixth delete waits for the second window, nothing more.
    assert awaited["rate_limit_wait_seconds"] == pytest.approx(4.5, abs=0.01)
    for name in ("W6 concurrent updates", "W6 concurrent deletes"):
        phase = phases[name]
        assert (phase["ops"], phase["failed_ops"], phase["rest_calls"]) == (10, 0, 1)
        assert phase["rate_limit_wait_seconds"] == 0.0
        assert phase["latency_p99_s"] == pytest.approx(0.1, abs=1e-6)


def test_the_shards_help_names_the_default_a_table_gets_from_the_library(
    capsys: pytest.CaptureFixture[str],
) -> None:
    default = inspect.signature(discobase.Database.create_table).parameters["shards"].default
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"the library's default is {default})" in help_text


def test_w11_reshards_a_table_of_one_shard_and_its_awaited_inserts_speed_up() -> None:
    sizes = dataclasses.replace(QUICK, w11_records=300, w11_inserts=12)
    run = run_in_virtual_time(run_group("W11", sizes, DiscordModel(), None))
    phases = {phase["phase"]: phase for phase in run}
    assert [phases[name]["verified"] for name in (W11_BEFORE, W11_RESHARD, W11_AFTER)] == ["ok"] * 3
    assert phases[W11_RESHARD]["calls_by_route"]["POST /channels/{id}/threads"] == 5
    before = phases[W11_BEFORE]["ops_per_simulated_second"]
    assert before < 1.5 and phases[W11_AFTER]["ops_per_simulated_second"] > 3


def test_only_the_seam_module_uses_simcords_private_modules_and_the_bot_is_the_package() -> None:
    private = re.compile(r"from simcord\.|import simcord\.|\._env\b|_ROUTES|\.subscribers")
    offenders = [
        path.name
        for path in BENCH.glob("*.py")
        if path.name != "seam.py" and private.search(path.read_text())
    ]
    assert offenders == []
    sources = "".join(path.read_text() for path in BENCH.glob("*.py"))
    assert "from bot import" not in sources
    assert "from discobot import" in sources


def test_w9_measures_the_feed_latency_of_both_processes_past_the_horizon() -> None:
    sizes = dataclasses.replace(QUICK, w9_writes=3)
    phases = run_in_virtual_time(run_group("W9", sizes, DiscordModel(), None))
    assert [phase["phase"] for phase in phases] == [W9_THIS, W9_OTHER]
    margin = discobase.Compaction().margin
    for phase in phases:
        assert (phase["ops"], phase["verified"], phase["failed_ops"]) == (3, "ok", 0)
        assert phase["horizon_margin_s"] == margin
        # Settled, so never before the margin; read at the next tick, so soon after it.
        assert margin <= phase["latency_p50_s"] <= phase["latency_p99_s"] < margin + 2


def test_w10_times_each_aggregate_and_checks_its_result() -> None:
    sizes = dataclasses.replace(QUICK, w10_records=300, w10_calls=3)
    phases = run_in_virtual_time(run_group("W10", sizes, DiscordModel(), None))
    assert len(phases) == len(W10_AGGREGATES)
    for phase in phases:
        assert phase["phase"].endswith("of 300 records")
        assert (phase["ops"], phase["wrong_results"], phase["rest_calls"]) == (3, 0, 0)
        assert phase["op_cpu_p50_s"] > 0
    rows = aggregate_rows(phases_by_name({"W10": {"phases": phases}}))
    assert [row[0] for row in rows] == [phase["phase"] for phase in phases]
