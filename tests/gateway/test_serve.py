"""End to end: a real `kiteline serve` process on a free loopback port, read with httpx."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pyarrow as pa
import pytest

from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from tests.serving import free_port, running, serve_command

pytestmark = pytest.mark.slow


@pytest.fixture
def server(workspace: Workspace) -> Iterator[str]:
    port = free_port()
    command = serve_command(workspace.config_path, port)
    with running(command, port, workspace.root / "serve.log") as url:
        yield url


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
