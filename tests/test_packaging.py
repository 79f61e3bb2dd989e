"""What an install of discobase ships: every package of the library, and its type marker."""

from __future__ import annotations

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
