"""Every script in examples/ runs as its docstring says, offline, and prints what it promises.

Each runs in a fresh interpreter from a directory outside the checkout, with no token: the way
a reader runs it after installing discobase (the checkout is put on ``PYTHONPATH`` so that the
code under test is what runs; ``test_packaging.py`` checks what an install ships).
"""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import simcord

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"
#: The helper the other examples import, not an example of its own.
HELPERS = {"connect.py"}

EXPECTED = {
    "quickstart.py": [
        "four legs or more: ['rex']",
        "VIPs: ['rex', 'tweety']",
        "pets: 3",
    ],
    "queries.py": [
        "by Austen: ['Emma', 'Persuasion']",
        "after 1960: ['Beloved', 'Neuromancer', 'Dune', 'Solaris']",
        "short or old: ['Emma', 'Persuasion', 'Solaris']",
        "sf, not Lem: ['Dune', 'Neuromancer']",
        "N or P: ['Neuromancer', 'Persuasion']",
        "from a list: ['Neuromancer', 'Solaris']",
        "pages of two: ['Beloved', 'Dune'] ['Emma', 'Neuromancer']",
        "how many sf: 3",
        "oldest: Emma",
        "no such book: None",
        "unknown field: colour",
        "pages in all: 1934",
    ],
    "runtime_table.py": [
        "refused: ('points',) Input should be a valid integer, unable to parse string as an integer",
        "top players: [('ada', 120), ('cy', 95)]",
        "fields: [('player', 'str', False), ('points', 'int', False), ('level', 'int', True), "
        "('seen', 'datetime', True)]",
        "records: 3",
        "tables left: []",
    ],
    "shared_client.py": [
        "ada: /adopt -> You adopted rex.",
        "ada: /adopt -> You adopted tweety.",
        "bob: /adopt -> rex already has a home.",
        "bob: /adopt -> You adopted nemo.",
        "ada: /my-pets -> Your pets: rex (4 legs), tweety (2 legs)",
        "bob: /my-pets -> Your pets: nemo (0 legs)",
    ],
}


def test_the_readmes_library_example_is_a_complete_script(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "readme_example.py"
    script.write_text(example)

    compile(example, str(script), "exec")  # a script: no top-level await
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--isolated",
            "--no-cache",
            "--select",
            "F",
            script,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout  # no undefined or unused names
    assert "asyncio.run(main())" in example


def test_every_example_is_run_here() -> None:
    scripts = {path.name for path in EXAMPLES.glob("*.py")} - HELPERS
    assert scripts == set(EXPECTED)


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs_offline_and_prints_its_results(script: str, tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "DISCORD_TOKEN": "",
        "DISCOBASE_GUILD": "",
        "PYTHONPATH": str(ROOT),
    }
    ran = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == EXPECTED[script]
    assert "Traceback" not in ran.stderr


@pytest.mark.parametrize(
    ("script", "body"),
    [
        ("quickstart.py", "use_the_database"),
        ("queries.py", "run_queries"),
        ("runtime_table.py", "use_a_runtime_table"),
    ],
)
async def test_example_runs_again_on_a_server_that_has_its_data(
    script: str, body: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On Discord the data stays: a second run on the same server must work and say the same."""
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    example = runpy.run_path(str(EXAMPLES / script), run_name="example")
    db = example["db"]
    async with simcord.run(db.bot) as env:
        env.create_guild(db.guild_ref)
        await db.open()
        await example[body]()
        first = capsys.readouterr().out
        await example[body]()
        second = capsys.readouterr().out
        await db.close()

    assert first.splitlines() == second.splitlines() == EXPECTED[script]


def test_the_tutorial_links_to_files_that_exist() -> None:
    tutorial = ROOT / "docs" / "tutorial.md"
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", tutorial.read_text())
    images = {target for target in targets if target.startswith("images/")}

    assert images == {
        f"images/{path.name}" for path in (ROOT / "docs" / "images").glob("tutorial-*.png")
    }
    for target in targets:
        assert (tutorial.parent / target).exists(), target
