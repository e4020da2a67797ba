"""The shape of the code: a star, not a web (STYLE.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LEAVES = ("policies", "connectors", "audit")
OWN = {"gateway", *LEAVES}
PROOFS = ROOT / "proofs" / "src" / "kiteline_proofs"
CLIENT = ROOT / "client" / "src" / "kiteline_client"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


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
        others = (imported_packages(path) & (OWN | {"kiteline_client"})) - {package}
        assert not others, f"{path.relative_to(ROOT)} imports {sorted(others)}"


def test_the_shared_proofs_import_only_the_standard_library_and_cryptography():
    files = list(PROOFS.rglob("*.py"))
    assert {p.name for p in files} >= {"merkle.py", "checkpoints.py", "errors.py"}
    for path in files:
        extra = imported_packages(path) - STDLIB - {"cryptography", "kiteline_proofs"}
        assert not extra, f"{path.relative_to(ROOT)} imports {sorted(extra)}"


def test_the_client_imports_none_of_the_servers_packages():
    # pandas and polars are optional extras, imported where a frame is asked for.
    allowed = STDLIB | {"httpx", "pyarrow", "kiteline_client", "kiteline_proofs", "polars"}
    files = list(CLIENT.rglob("*.py"))
    assert files
    for path in files:
        extra = imported_packages(path) - allowed
        assert not extra, f"{path.relative_to(ROOT)} imports {sorted(extra)}"


def test_the_proof_check_has_one_implementation():
    # audit.merkle and audit.checkpoints re-export kiteline_proofs; no second copy.
    import kiteline_proofs.checkpoints
    import kiteline_proofs.merkle

    import audit.checkpoints
    import audit.merkle

    assert audit.merkle.verify_inclusion is kiteline_proofs.merkle.verify_inclusion
    assert audit.checkpoints.Verifier is kiteline_proofs.checkpoints.Verifier
    for module in ("merkle", "checkpoints"):
        source = (ROOT / "audit" / f"{module}.py").read_text(encoding="utf-8")
        assert "def " not in source and "class " not in source


def test_no_print_outside_the_cli():
    roots = [ROOT / package for package in OWN] + [PROOFS, CLIENT]
    for root in roots:
        for path in root.rglob("*.py"):
            calls = [
                n
                for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"
            ]
            assert not calls, f"print() in {path.relative_to(ROOT)}"
