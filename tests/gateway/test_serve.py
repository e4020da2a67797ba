"""End to end: a real `kiteline serve` process on a free loopback port, read with httpx."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pyarrow as pa
import pytest

from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(workspace: Workspace) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "--config",
            str(workspace.config_path),
            "serve",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            process.kill()
            output = process.communicate()[0].decode(errors="replace")
            pytest.fail(f"kiteline serve did not become ready:\n{output}")
        yield url
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def test_governed_read_over_a_real_socket(server: str, workspace: Workspace):
    headers = {"Authorization": f"Bearer {workspace.tokens['mei']}"}
    body = {
        "columns": ["patient_id", "birth_date", "diagnosis"],
        "limit": 5,
        "purpose": SURGICAL_PURPOSE,
    }
    with httpx.Client(base_url=server, headers=headers, timeout=30) as http:
        response = http.post("/v1/datasets/patients/query", json=body)
        assert response.status_code == 200
        assert response.json()["profile"] == "anonymized"
        arrow = http.post(
            "/v1/datasets/patients/query",
            json={**body, "limit": 5000},
            headers={"Accept": "application/vnd.apache.arrow.stream"},
        )
        assert pa.ipc.open_stream(arrow.content).read_all().num_rows == 5000
        refused = http.post("/v1/datasets/patients/query", json={**body, "columns": ["name"]})
        assert refused.status_code == 403
        assert http.get("/v1/me", headers={"Authorization": "Bearer x"}).status_code == 401
