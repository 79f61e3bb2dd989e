"""Run one workload group of ours in this process, in virtual time; write its results as JSON.

``python -m bench.worker GROUP --sizes JSON --out PATH``. The orchestrator (:mod:`bench.__main__`)
starts one process per group so that CPU time and peak RSS belong to that group alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

import looptime

from .model import DiscordModel
from .records import Sizes
from .workloads import GROUPS, run_group


def run_in_virtual_time(group: str, sizes: Sizes) -> list[dict[str, Any]]:
    """Run ``group`` on a looptime loop whose clock starts at 0; waits cost no real time."""
    loop = looptime.new_event_loop(start=0)
    try:
        return loop.run_until_complete(run_group(group, sizes, DiscordModel()))
    finally:
        loop.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("group", choices=sorted(GROUPS))
    parser.add_argument("--sizes", required=True, help="workload sizes as JSON (records.Sizes)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    sizes = Sizes(**json.loads(args.sizes))
    try:
        outcome: dict[str, Any] = {"phases": run_in_virtual_time(args.group, sizes)}
    except Exception as error:
        outcome = {"phases": [], "error": "".join(traceback.format_exception(error))[-3000:]}
    args.out.write_text(json.dumps(outcome, indent=1, default=str))
    return 0 if "error" not in outcome else 1


if __name__ == "__main__":
    sys.exit(main())
