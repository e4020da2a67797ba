"""The documentation tells the truth about the settings, and the site builds cleanly."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from gateway import config

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
#: Placeholder a reference row uses for the key of each mapping in the configuration.
PLACEHOLDERS = {
    "stores": "<name>",
    "modules": "<name>",
    "datasets": "<name>",
    "columns": "<column>",
}


def _models_in(annotation: object) -> list[type[BaseModel]]:
    """The models a field's annotation holds: directly, in a union or as mapping values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _models_in(args[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in args for m in _models_in(a)]
    if origin is dict:
        return _models_in(args[1])
    return []


def settings_of(model: type[BaseModel], prefix: str) -> set[str]:
    """Every leaf setting of ``model`` as a dotted path with placeholders."""
    found: set[str] = set()
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        key = field.alias or name
        path = f"{prefix}{key}"
        inner = _models_in(field.annotation)
        if not inner:
            found.add(path)
            continue
        if typing.get_origin(field.annotation) is dict:
            path = f"{path}.{PLACEHOLDERS[key]}"
        for nested in inner:
            found |= settings_of(nested, f"{path}.")
    return found


def documented_settings() -> set[str]:
    """The keys of the reference table: `a.b.c`, `d`, `e` names a.b.c, a.b.d and a.b.e."""
    documented: set[str] = set()
    table = REFERENCE.split("The file itself:", 1)[1]
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        keys = re.findall(r"`([^`]+)`", line.split("|")[1])
        first = keys[0]
        documented.add(first)
        stem = first.rsplit(".", 1)[0]
        documented.update(f"{stem}.{key}" for key in keys[1:])
    return documented


def test_every_setting_is_documented_and_nothing_else_is():
    expected = settings_of(config.Config, "")
    documented = documented_settings()
    assert not expected - documented, f"undocumented: {sorted(expected - documented)}"
    assert not documented - expected, f"documented but unknown: {sorted(documented - expected)}"


def test_every_process_setting_is_documented():
    for name in config.Settings.model_fields:
        assert f"`KITELINE_{name.upper()}`" in REFERENCE, f"KITELINE_{name.upper()}"


def test_the_walk_reads_nested_mappings_and_aliases():
    paths = settings_of(config.Config, "")
    assert "datasets.<name>.columns.<column>.class" in paths
    assert "stores.<name>.endpoint_url" in paths
    assert "datasets.<name>.l_diversity.l" in paths
    assert "base_dir" not in paths


@pytest.mark.slow
def test_the_documentation_site_builds_without_warnings(tmp_path: Path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    assert mkdocs, "mkdocs is part of the dev extra"
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").exists()
