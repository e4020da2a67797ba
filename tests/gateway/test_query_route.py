"""The query route reads a bounded body and authenticates before it looks at it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from gateway.demo.workspace import Workspace
from gateway.read.chokepoint import MAX_QUERY_BYTES
from tests.conftest import bearer

OVERSIZED = b"{" + b" " * (MAX_QUERY_BYTES + 10) + b"}"


def test_oversized_body_is_refused_as_too_large(client: TestClient, workspace: Workspace):
    response = client.post(
        "/v1/datasets/studies/query", content=OVERSIZED, headers=bearer(workspace, "erin")
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert "exceeds" in response.json()["detail"]


def test_unauthenticated_caller_gets_401_whatever_the_body(client: TestClient):
    for body in (OVERSIZED, b"not json"):
        response = client.post("/v1/datasets/studies/query", content=body)
        assert response.status_code == 401


def test_scan_batches_fit_the_page_and_the_table_width():
    from gateway.read.rows import MAX_SCAN_BATCH_ROWS, MIN_SCAN_BATCH_ROWS, scan_batch_rows

    assert scan_batch_rows(1000, 9) == 1102  # a page and the next row, a tenth more
    # A suppressing read expects to read past the rows it may not return.
    assert scan_batch_rows(100, 9, released_share=0.5) == 223
    assert scan_batch_rows(100, 9, released_share=0.0) == 11_110  # counted as 1%
    assert scan_batch_rows(1, 9) == MIN_SCAN_BATCH_ROWS
    assert scan_batch_rows(10_000_000, 4) == MAX_SCAN_BATCH_ROWS  # bulk, narrow
    assert scan_batch_rows(10_000_000, 40) == 104_857  # bulk, wide: bounded in cells


def test_a_client_gone_before_its_read_starts_costs_no_read(client: TestClient, workspace):
    # Servers do not cancel a handler whose client disconnects: the route asks before
    # the read starts, so a queued read of a departed client is never run or charged.
    import asyncio

    from gateway.read.slots import ReadSlots
    from tests.gateway.test_api import audit_rows

    app = client.app
    # Only a read waiting for a worker thread can be abandoned; one on the event loop
    # starts at once.
    app.state.read_slots = ReadSlots(1)  # type: ignore[attr-defined]
    token = bearer(workspace, "mei")["Authorization"]
    body = b'{"limit": 5, "purpose": "surgical robot training"}'
    sent: list[dict[str, object]] = []
    messages = iter(
        [
            {"type": "http.request", "body": body, "more_body": False},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> dict[str, object]:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/datasets/patients/query",
        "raw_path": b"/v1/datasets/patients/query",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", token.encode()), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8787),
        "state": {},
    }
    before = len(audit_rows(workspace))
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    assert sent[0]["status"] == 499
    assert len(audit_rows(workspace)) == before  # no query, no read, no refusal
