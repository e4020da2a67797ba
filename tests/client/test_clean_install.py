"""kiteline-client installed alone in a fresh virtual environment, against a real server.

The wheels are built from this repository; their dependencies come from the package
index as a partner would get them. None of the server's packages may come along."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from tests.client.conftest import Server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = ["duckdb", "opendp", "psycopg", "casbin", "fastapi", "sqlalchemy", "gateway", "audit"]

SMOKE = """
import importlib.util, json, sys
from kiteline_client import Client, read_info, verify_receipt

url, token, purpose, vkey = sys.argv[1:5]
present = [m for m in {server_only!r} if importlib.util.find_spec(m) is not None]
with Client(url, token) as client:
    table = client.query("patients", columns=["diagnosis"], limit=25, purpose=purpose)
    seq = read_info(table).audit_seqs[0]
    checkpoint = verify_receipt(client.receipt(seq), vkey)
print(json.dumps({{"rows": table.num_rows, "present": present, "tree_size": checkpoint.tree_size}}))
"""


def run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_client_installs_and_reads_without_the_servers_dependencies(
    tmp_path: Path, workspace: Workspace
):
    wheels = tmp_path / "wheels"
    run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", wheels,
        ROOT / "proofs", ROOT / "client",
        cwd=tmp_path,
    )  # fmt: skip
    built = sorted(p.name.split("-")[0] for p in wheels.glob("*.whl"))
    assert built == ["kiteline_client", "kiteline_proofs"]
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", *sorted(wheels.glob("*.whl")), cwd=tmp_path)
    installed = {
        p["name"].lower()
        for p in json.loads(run(python, "-m", "pip", "list", "--format=json", cwd=tmp_path))
    }
    assert {"kiteline-client", "kiteline-proofs", "httpx", "pyarrow"} <= installed
    assert not installed & {"duckdb", "opendp", "psycopg", "pycasbin", "fastapi", "kiteline"}

    server = Server(workspace.config_path)
    server.start()
    try:
        from kiteline_client import Client

        with Client(server.url, workspace.tokens["mei"]) as pinning:
            vkey = pinning.public_key()
        script = tmp_path / "smoke.py"
        script.write_text(textwrap.dedent(SMOKE.format(server_only=SERVER_ONLY)))
        # Run from an empty folder with isolated mode: nothing of this repository on sys.path.
        out = run(
            python, "-I", script, server.url, workspace.tokens["mei"], SURGICAL_PURPOSE, vkey,
            cwd=tmp_path,
        )  # fmt: skip
    finally:
        server.stop()
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"rows": 25, "present": [], "tree_size": result["tree_size"]}
    assert result["tree_size"] > 0
