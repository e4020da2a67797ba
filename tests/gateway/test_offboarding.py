"""Offboarding, suspension, the HR webhook, stream cut-off and the access listing."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from audit.errors import AuditError
from connectors.base import ScanCancelled
from gateway.access.hr_hook import sign
from gateway.access.principals import authenticate, issue_key
from gateway.auditing.log import RequestMeta
from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from tests.conftest import client_for, raising
from tests.gateway.test_api import audit_rows
from tests.gateway.test_grant_requests import DEBUGGING, ask, call, decide, read

SECRET = "hr-shared-secret-for-tests"


def offboard(client: TestClient, ws: Workspace, who: str, name: str) -> Any:
    return call(
        client, ws, who, "POST", f"/v1/principals/{name}/offboard", {"reason": "left the company"}
    )


def test_offboarding_turns_an_employee_into_alumni(client: TestClient, workspace: Workspace):
    raw = ask(client, workspace, "erin", dataset="patients", profile="raw").json()
    decide(client, workspace, "alice", raw["id"])
    decide(client, workspace, "bob", raw["id"])
    pending = ask(client, workspace, "erin", dataset="annotations", profile="raw").json()
    assert offboard(client, workspace, "alice", "erin").status_code == 403
    response = offboard(client, workspace, "admin", "erin")
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["kind"] == "alumni"
    assert sorted(result["grants_revoked"]) == [1, raw["id"]]
    assert result["requests_denied"] == [pending["id"]]
    assert len(result["keys_revoked"]) == 1
    # The old key is dead on the very next request.
    assert read(client, workspace, "erin", "patients").status_code == 401
    assert offboard(client, workspace, "admin", "erin").status_code == 409
    events = [e for e in audit_rows(workspace) if e["action"] == "principal.offboarded"]
    assert len(events) == 1 and events[0]["grants_revoked"] == result["grants_revoked"]


def test_offboarding_a_custodian_flags_their_modules(client: TestClient, workspace: Workspace):
    pending = ask(client, workspace, "erin", dataset="patients", profile="anonymized").json()
    result = offboard(client, workspace, "admin", "alice").json()
    assert result["custodianships_removed"] == ["imaging", "labels"]
    assert result["modules_below_two_custodians"] == {"imaging": ["bob"], "labels": ["bob"]}
    events = [e for e in audit_rows(workspace) if e["action"] == "principal.offboarded"]
    assert events[0]["alert"] is True
    # With a new (alumni) key, alice is no longer a custodian of imaging.
    engine_url = workspace.config.state_url
    from gateway.state.database import create_state_engine

    engine = create_state_engine(engine_url)
    try:
        workspace.tokens["alice"] = issue_key(engine, "alice")[1]
    finally:
        engine.dispose()
    refused = decide(client, workspace, "alice", pending["id"])
    assert refused.status_code == 403 and refused.json()["rule"] == "custodian"
    assert decide(client, workspace, "bob", pending["id"]).json()["status"] == "active"


def test_offboarding_may_downgrade_instead(workspace: Workspace):
    text = workspace.config_path.read_text() + "\ngrants:\n  downgrade_on_offboarding: true\n"
    workspace.config_path.write_text(text)
    with client_for(workspace) as client:
        grant = ask(client, workspace, "erin", **DEBUGGING).json()
        decide(client, workspace, "alice", grant["id"])
        result = offboard(client, workspace, "admin", "erin").json()
        assert result["grants_downgraded"] == [grant["id"]]
        assert result["grants_revoked"] == [1]  # no purpose: an alumni grant needs one
        shown = call(client, workspace, "victor", "GET", f"/v1/grants/{grant['id']}").json()
        assert (shown["status"], shown["profile"]) == ("active", "anonymized")


def test_suspend_and_reinstate_a_principal(client: TestClient, workspace: Workspace):
    body = {"reason": "investigation"}
    assert (
        call(client, workspace, "victor", "POST", "/v1/principals/mei/suspend", body).status_code
        == 403
    )
    assert (
        call(client, workspace, "admin", "POST", "/v1/principals/mei/suspend", body).json()[
            "status"
        ]
        == "suspended"
    )
    assert read(client, workspace, "mei", "patients", purpose=SURGICAL_PURPOSE).status_code == 401
    assert (
        call(client, workspace, "admin", "POST", "/v1/principals/mei/suspend", body).status_code
        == 409
    )
    call(client, workspace, "admin", "POST", "/v1/principals/mei/reinstate", body)
    assert read(client, workspace, "mei", "patients", purpose=SURGICAL_PURPOSE).status_code == 200


def test_suspending_an_org_denies_every_member(client: TestClient, workspace: Workspace):
    body = {"reason": "contract breach"}
    result = call(client, workspace, "admin", "POST", "/v1/orgs/surgibot/suspend", body).json()
    assert result["members"] == ["mei"]
    response = read(client, workspace, "mei", "patients", purpose=SURGICAL_PURPOSE)
    assert response.status_code == 403 and "suspended" in response.json()["detail"]
    missing = call(client, workspace, "admin", "POST", "/v1/orgs/nope/suspend", body)
    assert missing.status_code == 404
    call(client, workspace, "admin", "POST", "/v1/orgs/surgibot/reinstate", body)
    assert read(client, workspace, "mei", "patients", purpose=SURGICAL_PURPOSE).status_code == 200


def test_access_listing(client: TestClient, workspace: Workspace):
    response = call(client, workspace, "alice", "GET", "/v1/datasets/patients/access")
    assert response.status_code == 200
    entries = {e["principal"]: e for e in response.json()["access"]}
    assert set(entries) == {"lin", "mei"}
    mei = entries["mei"]
    assert mei["via"] == ["org:surgibot"] and mei["allowed"] is True
    assert mei["profile"] == "anonymized"
    assert mei["purpose"] == SURGICAL_PURPOSE and "name" not in mei["columns"]
    assert entries["lin"]["kind"] == "alumni"
    assert (
        call(client, workspace, "victor", "GET", "/v1/datasets/patients/access").status_code == 200
    )
    assert call(client, workspace, "erin", "GET", "/v1/datasets/patients/access").status_code == 403
    assert (
        call(client, workspace, "carol", "GET", "/v1/datasets/patients/access").status_code == 403
    )
    assert call(client, workspace, "victor", "GET", "/v1/datasets/nope/access").status_code == 404


@pytest.fixture
def hr_client(workspace: Workspace, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KL_TEST_HR_SECRET", SECRET)
    text = workspace.config_path.read_text().replace(
        "  max_rows_per_request: 10000\n",
        "  max_rows_per_request: 10000\n  hr_webhook_secret: env:KL_TEST_HR_SECRET\n",
    )
    workspace.config_path.write_text(text)
    with client_for(workspace) as client:
        yield client


def hr_call(client: TestClient, body: bytes, timestamp: int, secret: str = SECRET) -> Any:
    return client.post(
        "/v1/hooks/hr",
        content=body,
        headers={
            "X-Kiteline-Timestamp": str(timestamp),
            "X-Kiteline-Signature": sign(secret.encode(), timestamp, body),
        },
    )


def test_hr_webhook_offboards_on_a_signed_call(hr_client: TestClient, workspace: Workspace):
    body = orjson.dumps({"event": "employee.departed", "principal": "erin"})
    moment = int(time.time())
    assert hr_call(hr_client, body, moment, secret="wrong").status_code == 401
    assert hr_call(hr_client, body, moment - 3600).status_code == 401
    assert hr_client.post("/v1/hooks/hr", content=body).status_code == 401
    tampered = hr_client.post(
        "/v1/hooks/hr",
        content=body.replace(b"erin", b"bob!"),
        headers={
            "X-Kiteline-Timestamp": str(moment),
            "X-Kiteline-Signature": sign(SECRET.encode(), moment, body),
        },
    )
    assert tampered.status_code == 401
    assert read(hr_client, workspace, "erin", "studies").status_code == 200
    response = hr_call(hr_client, body, moment)
    assert response.status_code == 200 and response.json()["kind"] == "alumni"
    assert read(hr_client, workspace, "erin", "studies").status_code == 401
    offboarded = [e for e in audit_rows(workspace) if e["action"] == "principal.offboarded"]
    assert offboarded[0]["actor"] == "hr-webhook"
    assert hr_call(hr_client, b'{"event":"party"}', moment).status_code == 400


def test_hr_webhook_is_off_unless_configured(client: TestClient):
    assert client.post("/v1/hooks/hr", content=b"{}").status_code == 404


def test_offboarding_cuts_off_a_read_under_way(client: TestClient, workspace: Workspace):
    gateway = client.app.state.gateway  # type: ignore[attr-defined]
    caller = authenticate(gateway.engine, workspace.tokens["erin"])
    meta = RequestMeta(request_id="stream-cut-off-test")
    result = gateway.read(caller, "studies", orjson.dumps({"limit": 10000}), None, meta)
    chunks, delivery = iter(result.chunks), result.delivery
    delivery.handed_over(next(chunks))  # the response has started
    delivery.handed_over(next(chunks))  # and the first rows are out
    assert len(gateway.inflight) == 1
    outcome = gateway.lifecycle.offboard("erin", reason="left", actor="test")
    assert outcome["reads_cancelled"] == 1
    assert delivery.stop_reason() is not None
    with pytest.raises(ScanCancelled):
        for chunk in chunks:
            delivery.handed_over(chunk)
    delivery.finish(complete=False, reason="cut")
    assert len(gateway.inflight) == 0
    reads = [e for e in audit_rows(workspace) if e["action"] == "data.read"]
    assert reads[-1]["complete"] is False and reads[-1]["rows"] < 10000
    assert reads[-1]["bytes"] == delivery.delivered


def test_grant_changes_fail_closed_without_audit(
    client: TestClient, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
):
    gateway = client.app.state.gateway  # type: ignore[attr-defined]
    monkeypatch.setattr(gateway.audit, "append", raising(AuditError("disk full")))
    response = ask(client, workspace, "erin", dataset="patients", profile="anonymized")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("the audit log could not record")
