"""kiteline.yaml: validation with located problems, secret references, and `check`."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gateway.cli.main import cli
from gateway.config import ConfigError, load_config, resolve_secret
from gateway.demo.workspace import Workspace

BASE = """\
gateway:
  master_key: env:KITELINE_MASTER_KEY
stores:
  files: {kind: local, root: data}
modules:
  imaging: {custodians: [alice, bob]}
datasets:
  patients:
    module: imaging
    store: files
    location: patients.parquet
    columns:
      patient_id: {class: identifier, domain: patient}
      name: direct_identifier
      birth_date: {class: quasi_identifier, generalize: year}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kiteline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return info.value.problems


def test_a_valid_file_loads(tmp_path: Path):
    config = load_config(write(tmp_path, BASE))
    assert config.datasets["patients"].columns["name"].classification == "direct_identifier"
    assert config.resolve_path("data") == tmp_path / "data"
    assert config.state_url == f"sqlite:///{tmp_path / 'state.db'}"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("custodians: [alice, bob]", "custodians: [alice]", ":6: modules.imaging.custodians"),
        ("custodians: [alice, bob]", "custodians: [a, b, c, d]", "2 or 3 custodians"),
        ("    module: imaging", "    module: radiology", "unknown module 'radiology'"),
        ("    store: files", "    store: s3", "unknown store 's3'"),
        (
            "master_key: env:KITELINE_MASTER_KEY",
            "master_key: 00ff00ff",
            ":2: gateway.master_key: Value error, must be a reference",
        ),
        ("name: direct_identifier", "name: secret", ":14: datasets.patients.columns.name"),
        ("generalize: year", "generalize: decade", "must be keep, year, month"),
        (
            "{class: identifier, domain: patient}",
            "{class: public, domain: patient}",
            "'domain' applies to identifier columns only",
        ),
        ("kind: local, root: data", "kind: ftp, root: data", "stores.files"),
    ],
)
def test_problems_name_their_location(tmp_path: Path, old: str, new: str, expected: str):
    assert old in BASE
    problems = problems_of(tmp_path, BASE.replace(old, new))
    assert any(expected in p for p in problems), problems
    assert all(p.startswith(str(tmp_path / "kiteline.yaml")) for p in problems)


def test_every_problem_is_reported_at_once(tmp_path: Path):
    text = BASE.replace("[alice, bob]", "[alice]").replace("store: files", "store: nope")
    assert len(problems_of(tmp_path, text)) == 2


def test_unreadable_or_invalid_yaml(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "gateway: [unclosed"))


def test_secret_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KL_TEST_SECRET", "s3cr3t")
    (tmp_path / "secret.txt").write_text("from-file\n")
    assert resolve_secret("env:KL_TEST_SECRET", tmp_path) == "s3cr3t"
    assert resolve_secret("file:secret.txt", tmp_path) == "from-file"
    with pytest.raises(ConfigError, match="not set"):
        resolve_secret("env:KL_TEST_MISSING", tmp_path)
    with pytest.raises(ConfigError, match="must start with"):
        resolve_secret("s3cr3t", tmp_path)


def test_check_reports_store_mismatches(workspace: Workspace):
    table = pq.read_table(workspace.root / "data/crm/customers.parquet")
    table = table.drop_columns(["city"]).append_column("iban", pa.array(["x"] * table.num_rows))
    pq.write_table(table, workspace.root / "data/crm/customers.parquet")
    result = CliRunner().invoke(cli, ["--config", str(workspace.config_path), "check"])
    assert result.exit_code == 2
    assert "store column 'iban' is not classified" in result.output
    assert "datasets.customers.columns.city: classified column is missing" in result.output


def test_check_passes_on_the_demo(workspace: Workspace):
    result = CliRunner().invoke(cli, ["--config", str(workspace.config_path), "check"])
    assert result.exit_code == 0, result.output
    assert "ok (4 datasets" in result.output


def test_master_key_must_be_private(workspace: Workspace):
    from gateway.access.keyring import Keyring

    key = workspace.root / "keys/master.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (workspace.root / "tokens.json").stat().st_mode & 0o777 == 0o600
    key.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        Keyring.from_config(workspace.config)
