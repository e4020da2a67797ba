"""The shape of the code: a star, not a web (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LEAVES = ("policies", "connectors", "audit")
OWN = {"gateway", *LEAVES}


def imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", LEAVES)
def test_leaf_packages_import_only_themselves(package: str):
    for path in (ROOT / package).rglob("*.py"):
        others = (imported_packages(path) & OWN) - {package}
        assert not others, f"{path.relative_to(ROOT)} imports {sorted(others)}"


def test_no_print_outside_the_cli():
    for package in OWN:
        for path in (ROOT / package).rglob("*.py"):
            calls = [
                n
                for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"
            ]
            assert not calls, f"print() in {path.relative_to(ROOT)}"
