"""The edge: authentication before parsing, bounded and strict bodies, rate limits, and an
audit event for every answer, including those no handler ever saw."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient

from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from tests.conftest import bearer, client_for, raising
from tests.gateway.test_api import audit_rows

READ = {"columns": ["patient_id", "diagnosis"], "limit": 3, "purpose": SURGICAL_PURPOSE}


def events_for(workspace: Workspace, request_id: str) -> list[dict[str, object]]:
    return [e for e in audit_rows(workspace) if e.get("request_id") == request_id]


# -- finding 1: every refused request is audited, with its caller when known ------------


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/v1/audit/events?since=garbage", {}, 400),
        ("GET", "/v1/grants?status=bogus", {}, 400),
        ("POST", "/v1/grants", {"content": b"{not json"}, 400),
        ("POST", "/v1/grants", {"content": b'{"profile":"raw"}'}, 400),
        ("GET", "/v1/grants/abc", {}, 400),
        ("GET", "/v1/nowhere", {}, 404),
        ("DELETE", "/v1/grants", {}, 405),
    ],
)
def test_a_request_refused_before_its_handler_is_audited_with_its_caller(
    client: TestClient, workspace: Workspace, method: str, path: str, kwargs: dict, status: int
):
    response = client.request(method, path, headers=bearer(workspace, "mei"), **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    events = events_for(workspace, response.headers["x-request-id"])
    assert len(events) == 1, events
    assert events[0]["decision"] in ("reject", "deny")
    if status != 404:  # an unknown path authenticates nobody
        assert events[0]["actor"] == "mei"
        assert events[0]["actor_kind"] == "partner"


@pytest.mark.parametrize("authorization", [None, "Bearer garbage", "Basic Zm9vOmJhcg=="])
def test_a_bad_token_gets_401_before_any_body_or_query_validation(
    client: TestClient, authorization: str | None
):
    headers = {"Authorization": authorization} if authorization else {}
    for method, path, body in [
        ("POST", "/v1/grants", b"{not json"),
        ("POST", "/v1/grants", b'{"a":1,"a":2}'),
        ("POST", "/v1/datasets/patients/query", b"{not json"),
        ("GET", "/v1/audit/events?since=garbage", None),
        ("GET", "/v1/grants/99999999999999999999999", None),
    ]:
        response = client.request(method, path, content=body, headers=headers)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_crash_is_a_generic_500_problem_and_is_audited(
    client: TestClient, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
):
    gateway = client.app.state.gateway  # type: ignore[attr-defined]
    monkeypatch.setattr(
        gateway.grants, "list_grants", raising(ZeroDivisionError("a secret detail"))
    )
    response = client.get("/v1/grants", headers=bearer(workspace, "mei"))
    assert response.status_code == 500
    assert "secret" not in response.text
    [event] = events_for(workspace, response.headers["x-request-id"])
    assert (event["action"], event["decision"], event["actor"]) == (
        "request.failed",
        "error",
        "mei",
    )


def test_a_success_no_handler_recorded_is_audited_before_it_is_sent(
    client: TestClient, workspace: Workspace
):
    response = client.get("/v1/me", headers=bearer(workspace, "mei"))
    assert response.status_code == 200
    [event] = events_for(workspace, response.headers["x-request-id"])
    assert (event["action"], event["actor"], event["status"]) == ("request.served", "mei", 200)


def test_a_read_is_audited_once_by_its_handler(client: TestClient, workspace: Workspace):
    response = client.post(
        "/v1/datasets/patients/query", content=orjson.dumps(READ), headers=bearer(workspace, "mei")
    )
    assert response.status_code == 200, response.text
    actions = [e["action"] for e in events_for(workspace, response.headers["x-request-id"])]
    assert "request.served" not in actions and actions


# -- finding 3: bounded bodies and headers ---------------------------------------------


def test_a_declared_oversized_body_is_refused_unread(client: TestClient, workspace: Workspace):
    oversized = b"x" * (64 * 1024 + 1)
    headers = {"Content-Type": "application/json"}
    # An outsider's body is never read: authentication comes first.
    assert client.post("/v1/grants", content=oversized, headers=headers).status_code == 401
    response = client.post(
        "/v1/grants", content=oversized, headers={**headers, **bearer(workspace, "mei")}
    )
    assert response.status_code == 413
    [event] = events_for(workspace, response.headers["x-request-id"])
    assert (event["action"], event["actor"]) == ("request.rejected", "mei")


def test_a_streamed_body_is_cut_off_at_the_route_limit(client: TestClient, workspace: Workspace):
    def chunks():  # no Content-Length: chunked transfer
        for _ in range(10_000):
            yield b" " * 1024

    response = client.post(
        "/v1/datasets/patients/query", content=chunks(), headers=bearer(workspace, "mei")
    )
    assert response.status_code == 413, response.text


def test_the_trace_route_takes_larger_bodies_than_json_routes(
    client: TestClient, workspace: Workspace
):
    body = b"patient_id\n" + b"x\n" * 40_000  # 80 kB: over the JSON default
    response = client.post(
        "/v1/trace",
        content=body,
        headers={**bearer(workspace, "victor"), "Content-Type": "text/csv"},
    )
    assert response.status_code != 413, response.text


# -- strict JSON -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (orjson.dumps(READ), "text/plain", 415),
        (orjson.dumps(READ), "application/x-www-form-urlencoded", 415),
        (b'{"limit": 3, "limit": 4, "purpose": "x"}', "application/json", 400),
        (b'{"limit": NaN}', "application/json", 400),
        (b'{"limit": Infinity}', "application/json", 400),
        (orjson.dumps({**READ, "limit": "3"}), "application/json", 400),
        (b"\xff\xfe{}", "application/json", 400),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
        (orjson.dumps(READ), "application/json; charset=utf-8", 200),
    ],
)
def test_json_bodies_are_strict(
    client: TestClient, workspace: Workspace, content: bytes, content_type: str, status: int
):
    response = client.post(
        "/v1/datasets/patients/query",
        content=content,
        headers={**bearer(workspace, "mei"), "Content-Type": content_type},
    )
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"]
    assert events_for(workspace, response.headers["x-request-id"])


def test_grant_bodies_coerce_nothing(client: TestClient, workspace: Workspace):
    body = {"dataset": "patients", "profile": "anonymized", "days": "30", "purpose": "x"}
    response = client.post("/v1/grants", json=body, headers=bearer(workspace, "mei"))
    assert response.status_code == 400, response.text
    assert "days" in response.text


def test_a_405_names_the_allowed_methods(client: TestClient, workspace: Workspace):
    response = client.put("/v1/grants", headers=bearer(workspace, "mei"))
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


# -- finding 4: bounded ids ----------------------------------------------------------------


@pytest.mark.parametrize("number", [2**63, 2**64 + 1, 10**40])
def test_ids_beyond_64_bits_are_a_client_error(
    client: TestClient, workspace: Workspace, number: int
):
    for method, path in [
        ("GET", f"/v1/grants/{number}"),
        ("POST", f"/v1/grants/{number}/approve"),
        ("POST", f"/v1/grants/{number}/revoke"),
        ("POST", f"/v1/principals/{number}/suspend"),
        ("POST", f"/v1/principals/{number}/offboard"),
        ("GET", f"/v1/audit/events/{number}/proof"),
    ]:
        response = client.request(
            method, path, json={"reason": "x"}, headers=bearer(workspace, "admin")
        )
        assert response.status_code in (400, 403, 404), (path, response.text)


# -- rate limits ---------------------------------------------------------------------------


def with_limits(workspace: Workspace, limits: str) -> Workspace:
    text = workspace.config_path.read_text(encoding="utf-8")
    workspace.config_path.write_text(text.replace("gateway:\n", f"gateway:\n{limits}", 1))
    return workspace


def test_a_principal_over_its_rate_is_told_when_to_retry_and_is_audited(workspace: Workspace):
    limits = "  rate_limits:\n    per_principal: {per_s: 0.5, burst: 3}\n    per_ip: null\n"
    with client_for(with_limits(workspace, limits)) as client:
        answers = [client.get("/v1/me", headers=bearer(workspace, "mei")) for _ in range(5)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
        refused = answers[3]
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["content-type"] == "application/problem+json"
        [event] = events_for(workspace, refused.headers["x-request-id"])
        assert (event["actor"], event["status"]) == ("mei", 429)
        # Another principal has its own bucket.
        assert client.get("/v1/me", headers=bearer(workspace, "sam")).status_code == 200


def test_an_address_over_its_rate_is_refused_before_authentication(workspace: Workspace):
    limits = "  rate_limits:\n    per_ip: {per_s: 0.5, burst: 2}\n"
    with client_for(with_limits(workspace, limits)) as client:
        codes = [client.get("/v1/me").status_code for _ in range(3)]
        assert codes == [401, 401, 429]
        # Health checks are never limited.
        assert client.get("/healthz").status_code == 200


# -- finding 6: lesser holes ----------------------------------------------------------------


def test_a_cursor_issued_to_one_principal_is_refused_from_another(
    client: TestClient, workspace: Workspace
):
    body = {"columns": ["patient_id"], "limit": 2, "purpose": SURGICAL_PURPOSE}
    first = client.post(
        "/v1/datasets/patients/query", content=orjson.dumps(body), headers=bearer(workspace, "mei")
    )
    assert first.status_code == 200, first.text
    cursor = first.json()["next_cursor"]
    assert cursor
    again = {**body, "cursor": cursor}
    own = client.post(
        "/v1/datasets/patients/query", content=orjson.dumps(again), headers=bearer(workspace, "mei")
    )
    assert own.status_code == 200, own.text
    # lin reads patients too (for her own purpose): the cursor is still not hers.
    hers = {**again, "purpose": "imaging model maintenance"}
    other = client.post(
        "/v1/datasets/patients/query", content=orjson.dumps(hers), headers=bearer(workspace, "lin")
    )
    assert other.status_code == 400, other.text
    assert "cursor" in other.text
    # Bound to the principal itself, not only to what differs between their views.
    from gateway.read.query import QueryRequest

    request = QueryRequest.model_validate(body)
    assert request.fingerprint("patients", "anonymized", "mei") != request.fingerprint(
        "patients", "anonymized", "lin"
    )


def test_the_state_database_file_is_private(workspace: Workspace):
    import stat

    db = workspace.root / "state.db"
    db.chmod(0o644)
    with client_for(workspace) as client:
        assert client.get("/healthz").status_code == 200
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_the_query_schema_references_resolve(client: TestClient):
    spec = client.get("/openapi.json").json()
    text = orjson.dumps(spec).decode()
    assert "#/$defs/" not in text
    schemas = spec["components"]["schemas"]
    for name in ("Condition", "Aggregation", "Order"):
        assert name in schemas


@pytest.mark.parametrize(
    "condition",
    [
        {"column": "birth_date", "op": "=", "value": "not a date"},
        {"column": "birth_date", "op": "between", "value": [1, "x"]},
        {"column": "patient_id", "op": "in", "value": [{"nested": 1}]},
    ],
)
def test_a_grant_row_filter_of_the_wrong_type_is_refused_at_request(
    client: TestClient, workspace: Workspace, condition: dict
):
    body = {
        "dataset": "patients",
        "profile": "anonymized",
        "days": 7,
        "purpose": SURGICAL_PURPOSE,
        "row_filter": [condition],
    }
    response = client.post("/v1/grants", json=body, headers=bearer(workspace, "lin"))
    assert response.status_code == 400, response.text
    assert "row_filter[0]" in response.text
