"""The import rules, checked on the source (an import under ``if TYPE_CHECKING:`` does not run):

- only ``discobase/transport.py`` imports discord at run time;
- the engine (``discobase/engine/``) does not import the transport, even for types: it sees
  storage through ``discobase.engine.storage``;
- the bot (``bot.py``, ``discobot/``, ``cogs/``) uses only public ``discobase`` names: what
  ``discobase.__all__`` lists, and the public module ``discobase.transfer``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import discobase

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "discobase"
BOT = [
    ROOT / "bot.py",
    *sorted((ROOT / "discobot").glob("*.py")),
    *sorted((ROOT / "cogs").glob("*.py")),
]
PUBLIC_MODULES = {"transfer"}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, *, runtime_only: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file at ``path`` (for ``from m
    import n``: both ``m`` and ``m.n``)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    return module_imports(path.read_text(), package, runtime_only=runtime_only)


def module_imports(source: str, package: str, *, runtime_only: bool) -> list[tuple[int, str]]:
    def absolute(module: str | None, level: int) -> str:
        if level == 0:
            return module or ""
        parts = package.split(".")
        return ".".join([*parts[: len(parts) - level + 1], *([module] if module else [])])

    def walk(node: ast.AST) -> Iterator[tuple[int, str]]:
        if isinstance(node, ast.If) and runtime_only and _is_type_checking(node):
            children: list[ast.AST] = list(node.orelse)
        else:
            children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = absolute(node.module, node.level)
            yield node.lineno, module
            yield from ((node.lineno, f"{module}.{a.name}") for a in node.names)
        for child in children:
            yield from walk(child)

    return list(walk(ast.parse(source)))


def library_files() -> list[Path]:
    return sorted(LIBRARY.rglob("*.py"))


def test_the_checker_finds_relative_nested_and_type_only_imports() -> None:
    source = """
from typing import TYPE_CHECKING
from ..transport import Transport
from . import core
if TYPE_CHECKING:
    import discord
else:
    import json
def later():
    import discord.ext
    if True:
        from .. import transport
"""
    everything = [m for _, m in module_imports(source, "discobase.engine", runtime_only=False)]
    assert everything == [
        "typing",
        "typing.TYPE_CHECKING",
        "discobase.transport",
        "discobase.transport.Transport",
        "discobase.engine",
        "discobase.engine.core",
        "discord",
        "json",
        "discord.ext",
        "discobase",
        "discobase.transport",
    ]
    at_run_time = [m for _, m in module_imports(source, "discobase.engine", runtime_only=True)]
    assert at_run_time == [m for m in everything if m != "discord"]
    assert public("discobase.Table") and public("discobase.transfer.read_rows")
    assert not public("discobase.engine.table") and not public("discobase.transport")


@pytest.mark.parametrize(
    "path",
    [p for p in library_files() if p != LIBRARY / "transport.py"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_only_the_transport_imports_discord(path: Path) -> None:
    found = [
        (line, module)
        for line, module in imports(path, runtime_only=True)
        if module == "discord" or module.startswith("discord.")
    ]
    assert found == []


@pytest.mark.parametrize("path", sorted((LIBRARY / "engine").rglob("*.py")), ids=lambda p: p.name)
def test_the_engine_does_not_import_the_transport(path: Path) -> None:
    found = [
        (line, module)
        for line, module in imports(path, runtime_only=False)
        if module == "discobase.transport" or module.startswith("discobase.transport.")
    ]
    assert found == []


def public(module: str) -> bool:
    if module == "discobase":
        return True
    name = module.removeprefix("discobase.").split(".")[0]
    return name in discobase.__all__ or name in PUBLIC_MODULES


@pytest.mark.parametrize("path", BOT, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_bot_uses_only_public_discobase_names(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    private = [
        (line, module)
        for line, module in imports(path, runtime_only=False)
        if (module == "discobase" or module.startswith("discobase.")) and not public(module)
    ]
    private += [
        (node.lineno, f"discobase.{node.attr}")
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "discobase"
        and not public(f"discobase.{node.attr}")
    ]
    assert private == []
