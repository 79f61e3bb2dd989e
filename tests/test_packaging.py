"""What an install of discobase ships (every package of the library, its type marker), what it
relies on of its dependencies (their public names only), and the layout around it: the bot is
the `discobot` package, `cogs/` holds its extensions only."""

from __future__ import annotations

import ast
import importlib
import inspect
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_of_the_library_is_installed() -> None:
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "discobase").rglob("__init__.py")
    }
    assert set(pyproject()["tool"]["setuptools"]["packages"]) == on_disk


def test_the_type_marker_is_shipped() -> None:
    assert (ROOT / "discobase" / "py.typed").is_file()
    assert "py.typed" in pyproject()["tool"]["setuptools"]["package-data"]["discobase"]


def test_requirements_install_this_checkout() -> None:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    assert "-e ." in lines


def test_the_type_check_covers_the_library_and_the_bot() -> None:
    checked = set(pyproject()["tool"]["mypy"]["files"])
    assert {"discobase", "discobot", "bot.py", "cogs"} <= checked


def test_cogs_holds_only_the_bots_extensions() -> None:
    modules = sorted(path.stem for path in (ROOT / "cogs").glob("*.py") if path.stem != "__init__")
    assert "records" in modules
    for name in modules:
        setup = getattr(importlib.import_module(f"cogs.{name}"), "setup", None)
        assert inspect.iscoroutinefunction(setup), f"cogs/{name}.py has no async setup(bot)"


def test_the_library_imports_no_private_module_of_its_dependencies() -> None:
    """A private module (``pydantic._internal``) may change in any release of the dependency."""
    private = []
    for path in (ROOT / "discobase").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            private += [
                f"{path.relative_to(ROOT)}: {name}"
                for name in names
                if any(part.startswith("_") and not part.endswith("__") for part in name.split("."))
            ]
    assert private == []
