"""The benchmark's records and workload sizes, shared by our workloads and the baseline driver.

A record has five fields (str, int, float, bool, datetime) and serialises to about 200 bytes of
JSON. Every value derives from the record's number, so every run writes the same data and a
workload can find a record again from its number. discobase 1.0.0 stores only str, int and bool:
:func:`baseline_fields` gives it the same record with ``x`` as an int in thousandths and ``at`` as an
ISO 8601 string.

Standard library only: the baseline driver imports this as a plain module.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from typing import Any

__all__ = (
    "FULL",
    "QUICK",
    "Sizes",
    "baseline_fields",
    "range_bounds",
    "record_fields",
    "record_name",
    "scan_bounds",
)

EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
#: Distinct values of the indexed int field ``n``.
N_VALUES = 10_000
#: Values of ``x`` fall in [0, X_RANGE).
X_RANGE = 1000.0


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Sizes of every workload; the full run uses the issue's figures."""

    w1_inserts: int
    w2_inserts: int
    w2_tasks: int
    w3_records: int
    w4_finds: int
    w4_ranges: int
    w4_scans: int
    w6_ops: int
    w7_records: int
    w7_commands: int
    #: W8's table sizes: the curve of each cost as the table grows.
    w8_records: tuple[int, ...]
    w8_finds: int
    #: W9: writes of each process, one a second, that a watcher yields.
    w9_writes: int = 20
    #: W10: the table aggregated, and the calls of each aggregate.
    w10_records: int = 100_000
    w10_calls: int = 20
    #: W11: the records of the table that grows from 1 to 6 shards, and the awaited inserts
    #: before and after.
    w11_records: int = 10_000
    w11_inserts: int = 100

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sizes:
        return cls(**{**data, "w8_records": tuple(data["w8_records"])})


FULL = Sizes(
    w1_inserts=1_000,
    w2_inserts=10_000,
    w2_tasks=1_000,
    w3_records=100_000,
    w4_finds=10_000,
    w4_ranges=1_000,
    w4_scans=100,
    w6_ops=1_000,
    w7_records=10_000,
    w7_commands=100,
    w8_records=(10_000, 100_000, 1_000_000),
    w8_finds=10_000,
    w9_writes=30,
    w10_records=100_000,
    w10_calls=20,
)

#: CI-sized: every workload runs, small enough for well under two minutes; W8 at one small size.
QUICK = Sizes(
    w1_inserts=50,
    w2_inserts=500,
    w2_tasks=50,
    w3_records=5_000,
    w4_finds=500,
    w4_ranges=50,
    w4_scans=5,
    w6_ops=50,
    w7_records=500,
    w7_commands=10,
    w8_records=(2_000,),
    w8_finds=500,
    w9_writes=5,
    w10_records=2_000,
    w10_calls=5,
    w11_records=1_000,
    w11_inserts=10,
)


def record_name(number: int) -> str:
    """The ``name`` of record ``number``: unique, 141 characters of hex after a readable prefix."""
    return f"user-{number:07d}-{hashlib.sha512(str(number).encode()).hexdigest()}"


def record_fields(number: int) -> dict[str, Any]:
    """The fields of record ``number``."""
    return {
        "name": record_name(number),
        "n": (number * 7919) % N_VALUES,
        "x": ((number * 104729) % 100_000) / 100.0,
        "flag": number % 2 == 0,
        "at": EPOCH + datetime.timedelta(seconds=number),
    }


def baseline_fields(number: int) -> dict[str, Any]:
    """Record ``number`` in the shape discobase 1.0.0 can store (str, int and bool only)."""
    fields = record_fields(number)
    return {
        "name": fields["name"],
        "n": fields["n"],
        "x_milli": round(fields["x"] * 1000),
        "flag": fields["flag"],
        "at": fields["at"].isoformat(),
    }


def range_bounds(query: int) -> tuple[int, int]:
    """Range query ``query`` selects ``lo <= n < hi``: 10 values of n, about 0.1% of records."""
    lo = (query * 37) % (N_VALUES - 10)
    return lo, lo + 10


def scan_bounds(query: int) -> tuple[float, float]:
    """Unindexed scan ``query`` selects ``lo <= x < hi`` (``x`` has no index): about 0.1%."""
    lo = float((query * 7) % (int(X_RANGE) - 1))
    return lo, lo + 1.0
