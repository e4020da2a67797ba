"""The query route reads a bounded body and authenticates before it looks at it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from gateway.demo import Workspace
from gateway.service import MAX_QUERY_BYTES
from tests.conftest import bearer

OVERSIZED = b"{" + b" " * (MAX_QUERY_BYTES + 10) + b"}"


def test_oversized_body_is_refused_as_a_bad_request(client: TestClient, workspace: Workspace):
    response = client.post(
        "/v1/datasets/studies/query", content=OVERSIZED, headers=bearer(workspace, "erin")
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "exceeds" in response.json()["detail"]


def test_unauthenticated_caller_gets_401_whatever_the_body(client: TestClient):
    for body in (OVERSIZED, b"not json"):
        response = client.post("/v1/datasets/studies/query", content=body)
        assert response.status_code == 401


def test_scan_batches_fit_the_page_and_the_table_width():
    from gateway.service import MAX_SCAN_BATCH_ROWS, MIN_SCAN_BATCH_ROWS, scan_batch_rows

    assert scan_batch_rows(1000, 9) == 2001  # a page: about twice its rows
    assert scan_batch_rows(1, 9) == MIN_SCAN_BATCH_ROWS
    assert scan_batch_rows(10_000_000, 4) == MAX_SCAN_BATCH_ROWS  # bulk, narrow
    assert scan_batch_rows(10_000_000, 40) == 104_857  # bulk, wide: bounded in cells
