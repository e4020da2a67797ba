"""Every package the shipped code imports is a declared runtime dependency.

The dev extra installs numpy, pandas and friends for the tests, so a runtime import of
one of them works in every test run and breaks a plain `pip install kiteline`. This test
reads the imports of the four shipped packages and checks each against
`[project].dependencies`, not against what happens to be installed.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("gateway", "policies", "connectors", "audit")
#: Modules loaded only when an optional store is configured, or whose imports of an
#: extra run only when its feature is turned on (tracing), and the extra that brings
#: those imports. The plain-install test (tests/test_packaging.py) proves nothing else
#: loads them.
OPTIONAL_MODULES = {
    "connectors/spark.py": "spark",
    "connectors/spark_errors.py": "spark",
    "gateway/demo/spark.py": "spark",
    "gateway/observability/tracing.py": "otel",
    "gateway/http/tracing.py": "otel",
}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"unreadable requirement {requirement!r}"
    return _normalize(match.group(1))


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def declared_runtime() -> set[str]:
    return {_requirement_name(r) for r in _project()["dependencies"]}


def declared_extra(extra: str) -> set[str]:
    return {_requirement_name(r) for r in _project()["optional-dependencies"][extra]}


def top_level_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def third_party_imports(*, optional: bool = False) -> dict[str, set[str]]:
    """Import name -> the shipped files importing it (stdlib and own packages left out):
    of the modules every install loads, or with ``optional`` of the optional ones."""
    imports: dict[str, set[str]] = {}
    for package in SHIPPED:
        for path in (ROOT / package).rglob("*.py"):
            if (str(path.relative_to(ROOT)) in OPTIONAL_MODULES) != optional:
                continue
            for name in top_level_imports(path):
                if name in sys.stdlib_module_names or name in SHIPPED:
                    continue
                imports.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return imports


def test_every_runtime_import_is_a_declared_dependency():
    declared = declared_runtime()
    distributions = packages_distributions()
    undeclared = []
    for name, files in sorted(third_party_imports().items()):
        providers = {_normalize(d) for d in distributions.get(name, [])}
        if not providers:
            undeclared.append(f"{name} (not installed at all) imported by {sorted(files)}")
        elif not providers & declared:
            undeclared.append(f"{name} ({sorted(providers)}) imported by {sorted(files)}")
    assert not undeclared, "imports missing from [project].dependencies:\n" + "\n".join(undeclared)


def test_optional_modules_import_only_their_extra_and_the_runtime():
    distributions = packages_distributions()
    undeclared = []
    for name, files in sorted(third_party_imports(optional=True).items()):
        providers = {_normalize(d) for d in distributions.get(name, [])}
        allowed = declared_runtime().union(*(declared_extra(OPTIONAL_MODULES[f]) for f in files))
        if not providers & allowed:
            undeclared.append(f"{name} ({sorted(providers)}) imported by {sorted(files)}")
    assert not undeclared, "\n".join(undeclared)


def test_optional_modules_exist():
    for module in OPTIONAL_MODULES:
        assert (ROOT / module).is_file(), module


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import numpy as np\n", {"numpy"}),
        ("from pyarrow import compute as pc\n", {"pyarrow"}),
        ("def f():\n    import yaml.constructor\n", {"yaml"}),
        ("from . import sibling\nfrom .x import y\n", set()),
    ],
)
def test_imports_are_read_at_every_depth(tmp_path: Path, source: str, expected: set[str]):
    module = tmp_path / "module.py"
    module.write_text(source, encoding="utf-8")
    assert top_level_imports(module) == expected


def test_requirement_names_are_normalized():
    assert _requirement_name("psycopg[binary]>=3.2") == "psycopg"
    assert _requirement_name("uvloop>=0.19; sys_platform != 'win32'") == "uvloop"
    assert _requirement_name("PyYAML>=6.0") == "pyyaml"
    assert _requirement_name("opa_python.client>=3") == "opa-python-client"
