"""discobase 1.0.0 from PyPI in its own virtual environment, driven by ``baseline_driver.py``.

Its package is named ``discobase`` like ours, so it lives in ``bench/.baseline-venv`` (git-ignored)
with the same SimCord, looptime and discord.py versions as this environment, and runs in a
subprocess whose ``sys.path`` does not contain the repository root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".baseline-venv"
DRIVER = BENCH_DIR / "baseline_driver.py"
BASELINE_VERSION = "1.0.0"
_STAMP = VENV / "bench-requirements.json"


def requirements() -> list[str]:
    """1.0.0 plus the simulation stack, pinned to the versions this environment runs."""
    return [
        f"discobase=={BASELINE_VERSION}",
        f"discord.py=={version('discord.py')}",
        f"simcord=={version('simcord')}",
        f"looptime=={version('looptime')}",
    ]


def python() -> Path:
    return VENV / "bin" / "python"


def ensure_installed() -> None:
    """Create the virtual environment and install the requirements, unless already done."""
    wanted = requirements()
    if _STAMP.exists() and json.loads(_STAMP.read_text()) == wanted and python().exists():
        return
    print(f"installing the baseline into {VENV.relative_to(BENCH_DIR.parent)} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run(
        [str(python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *wanted],
        check=True,
    )
    _STAMP.write_text(json.dumps(wanted))


def driver_command(group: str, sizes_json: str, budget_seconds: float) -> list[str]:
    """The driver's command line, without its ``--out PATH``."""
    return [
        str(python()),
        str(DRIVER),
        group,
        "--sizes",
        sizes_json,
        "--budget",
        str(budget_seconds),
    ]


def driver_environment() -> dict[str, str]:
    """This process's environment without PYTHONPATH (our package cannot leak in), with a fixed
    hash seed (1.0.0 iterates over sets of field names)."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment["PYTHONHASHSEED"] = "0"
    return environment
