"""Run one workload group of ours in this process, in virtual time; write its results as JSON.

``python -m bench.worker GROUP --sizes JSON --out PATH``. The orchestrator (:mod:`bench.__main__`)
starts one process per group so that CPU time and peak RSS belong to that group alone.
``python -m bench.worker cold-open --world PATH --guild ID --records N --name PHASE --out PATH``
is W5's or W8's new process, started by its group with the world it built.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import looptime

from .model import DiscordModel
from .records import Sizes
from .workloads import GROUPS, INDEXES, cold_open, run_group

_T = TypeVar("_T")


def run_in_virtual_time(workload: Coroutine[Any, Any, _T]) -> _T:
    """Run ``workload`` on a looptime loop whose clock starts at 0; waits cost no real time."""
    loop = looptime.new_event_loop(start=0)
    try:
        return loop.run_until_complete(workload)
    finally:
        loop.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("group", choices=[*sorted(GROUPS), "cold-open"])
    parser.add_argument("--sizes", help="workload sizes as JSON (records.Sizes)")
    parser.add_argument("--world", type=Path, help="cold-open: the pickled SimCord world")
    parser.add_argument("--guild", type=int, help="cold-open: the world's guild id")
    parser.add_argument("--records", type=int, help="cold-open: records the table must hold")
    parser.add_argument("--name", help="cold-open: the phase's name")
    parser.add_argument("--indexes", default=",".join(INDEXES), help="cold-open: indexed fields")
    parser.add_argument("--shards", type=int, help="the table's Settings.shards (default: unset)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args.group == "cold-open":
        workload = cold_open(
            args.world.read_bytes(),
            args.guild,
            args.records,
            args.shards,
            args.indexes.split(","),
            args.name,
        )
    else:
        sizes = Sizes.from_json(json.loads(args.sizes))
        workload = run_group(args.group, sizes, DiscordModel(), args.shards)
    try:
        outcome: dict[str, Any] = {"phases": run_in_virtual_time(workload)}
    except Exception as error:
        outcome = {"phases": [], "error": "".join(traceback.format_exception(error))[-3000:]}
    args.out.write_text(json.dumps(outcome, indent=1, default=str))
    return 0 if "error" not in outcome else 1


if __name__ == "__main__":
    sys.exit(main())
