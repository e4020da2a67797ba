"""The OpenAPI document tells the truth: every status and body the test run saw is
documented for its route, the bearer scheme is declared, and the docs need no CDN.

This module runs after the others in a whole-suite run (pytest collects ``tests/``'s
subfolders first), so it checks everything the suite's in-process apps answered; run
alone, it checks the representative requests below."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from gateway.demo.workspace import MARKET_PURPOSE, SURGICAL_PURPOSE, Workspace
from gateway.http.problems import CLIENT_CLOSED_REQUEST
from tests.conftest import bearer
from tests.openapi_record import seen


@pytest.fixture
def spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def exercise(client: TestClient, workspace: Workspace) -> None:
    """A tour of the API that meets most statuses: successes, refusals, mistakes."""
    mei, sam, victor, alice = (bearer(workspace, n) for n in ("mei", "sam", "victor", "alice"))
    read = {"limit": 3, "purpose": SURGICAL_PURPOSE}
    ok = client.post("/v1/datasets/patients/query", json=read, headers=mei)
    seq = ok.headers["x-kiteline-audit-seq"]
    client.post("/v1/datasets/patients/query", json=read, headers={**mei, "Accept": "image/png"})
    client.post("/v1/datasets/patients/query", json={"limit": 0}, headers=mei)
    client.post("/v1/datasets/patients/query", json=read)
    client.post("/v1/datasets/patients/query", json={"purpose": MARKET_PURPOSE}, headers=sam)
    client.post("/v1/datasets/nope/query", json=read, headers=mei)
    aggregate = {"aggregates": [{"fn": "count"}], "epsilon": 2.0, "purpose": MARKET_PURPOSE}
    for _ in range(6):
        client.post("/v1/datasets/customers/query", json=aggregate, headers=sam)
    for path in ("/healthz", "/readyz", "/v1/me", "/v1/datasets", "/v1/datasets/patients"):
        client.get(path, headers=mei)
    client.get("/v1/datasets/nope", headers=mei)
    client.get("/v1/audit/public-key")
    client.get("/v1/audit/checkpoints/latest", headers=mei)
    client.get(f"/v1/audit/events/{seq}/proof", headers=mei)
    client.get(f"/v1/audit/events/{seq}/proof", headers=sam)
    client.get("/v1/audit/events/abc/proof", headers=mei)
    client.get("/v1/audit/consistency", params={"from": 1, "to": 2}, headers=mei)
    client.get("/v1/audit/consistency", params={"from": 2, "to": 1}, headers=mei)
    client.get("/v1/audit/events", params={"actor": "mei", "limit": 2}, headers=victor)
    client.get("/v1/audit/events", params={"since": "not a time"}, headers=victor)
    client.get("/v1/audit/events", headers=mei)
    client.get("/v1/alerts", headers=victor)
    client.post("/v1/audit/hash", json={"value": "x"}, headers=victor)
    client.post("/v1/decisions/explain", json={"dataset": "patients"}, headers=mei)
    client.post("/v1/decisions/explain", json={}, headers=mei)
    request = {"dataset": "annotations", "profile": "anonymized", "days": 30}
    created = client.post("/v1/grants", json={**request, "purpose": MARKET_PURPOSE}, headers=sam)
    client.post("/v1/grants", json={"profile": "nope"}, headers=sam)
    grant = created.json()["id"]
    client.get("/v1/grants", headers=sam)
    client.get(f"/v1/grants/{grant}", headers=sam)
    client.get("/v1/grants/999999", headers=victor)
    client.post(f"/v1/grants/{grant}/approve", json={"reason": "in scope"}, headers=alice)
    client.post(f"/v1/grants/{grant}/approve", json={"reason": "again"}, headers=alice)
    client.post(f"/v1/grants/{grant}/deny", json={"reason": "late"}, headers=sam)
    client.get("/v1/datasets/patients/access", headers=victor)


def documented(spec: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    operation: dict[str, Any] | None = spec["paths"].get(path, {}).get(method)
    return operation


def test_every_status_and_body_seen_is_documented(
    client: TestClient, workspace: Workspace, spec: dict[str, Any]
):
    exercise(client, workspace)
    statuses = {status for (_, _, status) in seen}
    assert {200, 201, 400, 401, 403, 404, 406, 409, 429} <= statuses
    undocumented = []
    wrong = []
    resolver_root = {"components": spec["components"]}
    for (method, path, status), samples in sorted(seen.items()):
        operation = documented(spec, method, path)
        if operation is None:
            continue  # not part of the API: /metrics, /docs, their assets
        if status == CLIENT_CLOSED_REQUEST:
            continue  # logged and counted for a client that left; no client receives it
        response = operation["responses"].get(str(status))
        if response is None:
            undocumented.append(f"{method.upper()} {path} -> {status}")
            continue
        for media, body in samples:
            content = response.get("content", {})
            described = content.get(media) or content.get("application/json")
            if described is None:
                wrong.append(f"{method.upper()} {path} -> {status}: {media} not documented")
                continue
            schema = {**described["schema"], **resolver_root}
            try:
                jsonschema.validate(body, schema)
            except jsonschema.ValidationError as exc:
                wrong.append(f"{method.upper()} {path} -> {status}: {exc.message}")
    assert not undocumented, "undocumented statuses:\n" + "\n".join(undocumented)
    assert not wrong, "bodies that do not fit their schema:\n" + "\n".join(wrong)


def test_no_route_documents_a_status_fastapi_made_up(spec: dict[str, Any]):
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
            assert operation["responses"], (method, path)
    assert "201" in spec["paths"]["/v1/grants"]["post"]["responses"]
    assert "200" not in spec["paths"]["/v1/grants"]["post"]["responses"]


def test_every_route_has_a_response_schema_and_errors_are_problems(spec: dict[str, Any]):
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                content = response.get("content")
                assert content, f"{method} {path} {status} has no schema"
                if int(status) >= 400:
                    assert list(content) == ["application/problem+json"]
                else:
                    assert all(c.get("schema") not in (None, {}) for c in content.values()), (
                        f"{method} {path} {status} has an empty schema"
                    )


def test_the_bearer_scheme_guards_every_authenticated_route(spec: dict[str, Any]):
    assert spec["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["HTTPBearer"]["description"],
    }
    public = {("get", "/healthz"), ("get", "/readyz"), ("get", "/v1/audit/public-key")}
    public.add(("post", "/v1/hooks/hr"))
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if (method, path) in public:
                assert operation["security"] == [], (method, path)
            else:
                assert operation["security"] == [{"HTTPBearer": []}], (method, path)
                assert "401" in operation["responses"], (method, path)


def test_query_parameters_read_by_hand_are_documented(spec: dict[str, Any]):
    search = spec["paths"]["/v1/audit/events"]["get"]
    names = {p["name"] for p in search["parameters"]}
    assert {"actor", "action", "dataset", "since", "until", "text", "limit", "cursor"} <= names
    query = spec["paths"]["/v1/datasets/{name}/query"]["post"]
    assert set(query["responses"]["200"]["content"]) == {
        "application/json",
        "text/csv",
        "application/vnd.apache.arrow.stream",
        "application/vnd.apache.parquet",
    }
    assert "X-Kiteline-Audit-Seq" in query["responses"]["200"]["headers"]


def test_the_docs_pages_load_nothing_from_another_host(client: TestClient):
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        hosts = re.findall(r"(?:src|href)=[\"']((?:https?:)?//[^\"']+)", response.text)
        assert hosts == [], hosts
        for asset in re.findall(r"(?:src|href)=[\"'](/docs/assets/[^\"']+)", response.text):
            assert client.get(asset).status_code == 200, asset
    assert "swagger-ui-bundle.js" in client.get("/docs").text
    assert "redoc.standalone.js" in client.get("/redoc").text
