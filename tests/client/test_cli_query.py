"""`kiteline query` and `kiteline login` against a real server, as a shell user runs them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from gateway.demo.workspace import MARKET_PURPOSE, SURGICAL_PURPOSE, Workspace
from tests.client.conftest import BIG_STUDIES, Server, free_port

pytestmark = pytest.mark.slow


def kiteline(
    *args: str, env: dict[str, str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        input=stdin.encode() if stdin is not None else None,
        timeout=300,
    )


def test_query_writes_whole_extracts_in_each_format(
    served: Server, workspace: Workspace, tmp_path: Path
):
    env = {"KITELINE_URL": served.url, "KITELINE_TOKEN": workspace.tokens["mei"]}
    out = tmp_path / "studies.parquet"
    done = kiteline(
        "query", "studies", "-o", str(out), "--columns", "study_id,modality",
        "--purpose", SURGICAL_PURPOSE, "--json", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["rows"] == BIG_STUDIES and summary["pages"] == 12
    assert len(summary["audit_seqs"]) == 12
    table = pq.read_table(out)
    assert table.num_rows == BIG_STUDIES and table.column_names == ["study_id", "modality"]
    # Piped, not a terminal: no progress bar, and no httpx request log either.
    assert b"HTTP Request" not in done.stderr and b"rows" not in done.stderr

    arrow = tmp_path / "studies.arrow"
    done = kiteline(
        "query", "studies", "-o", str(arrow), "--limit", "15000",
        "--purpose", SURGICAL_PURPOSE, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with ipc.open_stream(arrow.read_bytes()) as reader:
        assert reader.read_all().num_rows == 15000

    csv = kiteline(
        "query", "studies", "-o", "-", "--columns", "modality", "--limit", "12000",
        "--purpose", SURGICAL_PURPOSE, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert csv.returncode == 0, csv.stderr
    read = pacsv.read_csv(pa.py_buffer(csv.stdout))
    assert read.num_rows == 12000 and read.column_names == ["modality"]
    assert b"12,000 rows of studies" in csv.stderr


def test_query_exit_codes_tell_outcomes_apart(served: Server, workspace: Workspace, tmp_path: Path):
    sam = {"KITELINE_URL": served.url, "KITELINE_TOKEN": workspace.tokens["sam"]}
    refused = kiteline(
        "query", "patients", "-o", "x.csv", "--purpose", MARKET_PURPOSE, env=sam, cwd=tmp_path
    )
    assert refused.returncode == 3, refused.stderr
    assert not (tmp_path / "x.csv").exists()  # no half-written extract
    missing = kiteline("query", "nope", "--purpose", MARKET_PURPOSE, env=sam, cwd=tmp_path)
    assert missing.returncode == 4, missing.stderr
    rejected = kiteline("query", "customers", "--columns", "nope", env=sam, cwd=tmp_path)
    assert rejected.returncode in (2, 3), rejected.stderr
    usage = kiteline("query", "customers", "-o", "out.xlsx", env=sam, cwd=tmp_path)
    assert usage.returncode == 2
    down = {**sam, "KITELINE_URL": f"http://127.0.0.1:{free_port()}"}
    unavailable = kiteline("query", "customers", "-o", "-", env=down, cwd=tmp_path)
    assert unavailable.returncode == 5, unavailable.stderr


def test_login_saves_a_private_profile_that_query_uses(
    served: Server, workspace: Workspace, tmp_path: Path
):
    profile = tmp_path / "config" / "profile.json"
    env = {
        "KITELINE_PROFILE": str(profile),
        "KITELINE_TOKEN": "",
        "MEI_TOKEN": workspace.tokens["mei"],
    }
    login = kiteline(
        "login", "--url", served.url, "--token-env", "MEI_TOKEN", "--json", env=env, cwd=tmp_path
    )
    assert login.returncode == 0, login.stderr
    assert json.loads(login.stdout)["name"] == "mei"
    assert stat.S_IMODE(profile.stat().st_mode) == 0o600
    assert workspace.tokens["mei"] not in profile.read_text()  # only the reference is kept
    done = kiteline(
        "query", "patients", "-o", "p.parquet", "--limit", "10", "--purpose", SURGICAL_PURPOSE,
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert pq.read_table(tmp_path / "p.parquet").num_rows == 10

    # A token typed at the prompt is kept in the profile, which must stay private.
    prompted = kiteline(
        "login", "--url", served.url, env=env, cwd=tmp_path, stdin=workspace.tokens["mei"] + "\n"
    )
    assert prompted.returncode == 0, prompted.stderr
    profile.chmod(0o644)
    exposed = kiteline("query", "patients", "--limit", "1", env=env, cwd=tmp_path)
    assert exposed.returncode == 2 and b"chmod 600" in exposed.stderr
