"""Grant requests, approval rules, separation, expiry and hygiene, through the HTTP API."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from gateway.access.principals import add_principal, issue_key
from gateway.demo.workspace import ALUMNI_PURPOSE, Workspace
from tests.conftest import bearer, client_for
from tests.gateway.test_api import audit_rows


def call(
    client: TestClient, ws: Workspace, who: str, method: str, path: str, body: Any = None
) -> httpx.Response:
    return client.request(method, path, json=body, headers=bearer(ws, who))


def ask(client: TestClient, ws: Workspace, who: str, **body: Any) -> httpx.Response:
    return call(client, ws, who, "POST", "/v1/grants", {"days": 10, **body})


# A request an employee may make with one custodian's approval.
DEBUGGING = {"dataset": "patients", "profile": "pseudonymized", "purpose": "model debugging"}


def decide(
    client: TestClient,
    ws: Workspace,
    who: str,
    grant_id: int,
    verb: str = "approve",
    reason: str = "ok",
) -> httpx.Response:
    return call(client, ws, who, "POST", f"/v1/grants/{grant_id}/{verb}", {"reason": reason})


def read(client: TestClient, ws: Workspace, who: str, dataset: str, **body: Any) -> httpx.Response:
    return call(client, ws, who, "POST", f"/v1/datasets/{dataset}/query", {"limit": 3, **body})


def newcomer(ws: Workspace, name: str, kind: str = "employee", org: str | None = None) -> None:
    from gateway.state.database import create_state_engine

    engine = create_state_engine(ws.config.state_url)
    try:
        add_principal(engine, name=name, kind=kind, org=org)
        ws.tokens[name] = issue_key(engine, name)[1]
    finally:
        engine.dispose()


def sql(ws: Workspace, statement: str, *params: Any) -> None:
    with sqlite3.connect(ws.root / "state.db") as conn:
        conn.execute(statement, params)


def grant_count(ws: Workspace) -> int:
    with sqlite3.connect(ws.root / "state.db") as conn:
        return int(conn.execute("SELECT count(*) FROM grants").fetchone()[0])


def test_approval_takes_effect_on_the_next_query(client: TestClient, workspace: Workspace):
    assert read(client, workspace, "erin", "patients").status_code == 403
    response = ask(client, workspace, "erin", **DEBUGGING)
    assert response.status_code == 201, response.text
    grant = response.json()
    assert (grant["status"], grant["approvals"], grant["approvals_needed"]) == ("requested", 0, 1)
    assert read(client, workspace, "erin", "patients").status_code == 403
    approved = decide(client, workspace, "alice", grant["id"])
    assert approved.status_code == 200 and approved.json()["status"] == "active"
    response = read(client, workspace, "erin", "patients", purpose="model debugging")
    assert response.status_code == 200 and response.json()["profile"] == "pseudonymized"
    history = call(client, workspace, "erin", "GET", f"/v1/grants/{grant['id']}").json()
    assert [(e["actor"], e["action"]) for e in history["history"]] == [
        ("erin", "requested"),
        ("alice", "approved"),
        ("alice", "activated"),
    ]
    assert history["history"][1]["reason"] == "ok"
    actions = [e["action"] for e in audit_rows(workspace)]
    assert {"grant.requested", "grant.approved", "grant.activated"} <= set(actions)


def test_raw_needs_two_custodians_and_one_person_counts_once(
    client: TestClient, workspace: Workspace
):
    grant = ask(client, workspace, "erin", dataset="patients", profile="raw").json()
    assert grant["approvals_needed"] == 2  # the module asks for one; raw always needs two
    first = decide(client, workspace, "alice", grant["id"]).json()
    again = decide(client, workspace, "alice", grant["id"]).json()
    assert (first["status"], first["approvals"]) == ("requested", 1)
    assert (again["status"], again["approvals"]) == ("requested", 1)
    done = decide(client, workspace, "bob", grant["id"]).json()
    assert (done["status"], done["approvals"]) == ("active", 2)
    assert read(client, workspace, "erin", "patients").json()["profile"] == "raw"


@pytest.mark.parametrize(
    ("who", "rule"),
    [
        ("carol", "custodian"),  # custodian of crm, not of imaging
        ("victor", "custodian"),  # officers govern, custodians approve
    ],
)
def test_who_may_approve(client: TestClient, workspace: Workspace, who: str, rule: str):
    grant = ask(client, workspace, "erin", dataset="patients", profile="pseudonymized").json()
    response = decide(client, workspace, who, grant["id"])
    assert response.status_code == 403
    assert response.json()["rule"] == rule
    assert (
        call(client, workspace, "erin", "GET", f"/v1/grants/{grant['id']}").json()["approvals"] == 0
    )


def test_a_custodian_never_approves_their_own_request(client: TestClient, workspace: Workspace):
    grant = ask(client, workspace, "alice", dataset="patients", profile="pseudonymized").json()
    own = decide(client, workspace, "alice", grant["id"])
    assert own.status_code == 403 and own.json()["rule"] == "own-request"
    assert decide(client, workspace, "bob", grant["id"]).json()["status"] == "active"


def test_decisions_on_a_closed_grant_are_409(client: TestClient, workspace: Workspace):
    grant = ask(client, workspace, "erin", dataset="patients", profile="pseudonymized").json()
    denied = decide(client, workspace, "alice", grant["id"], "deny", "not needed")
    assert denied.status_code == 200 and denied.json()["status"] == "denied"
    assert decide(client, workspace, "bob", grant["id"]).status_code == 409
    assert decide(client, workspace, "bob", grant["id"], "deny").status_code == 409
    assert decide(client, workspace, "bob", grant["id"], "revoke").status_code == 409


def test_revocation(client: TestClient, workspace: Workspace):
    grant = ask(client, workspace, "erin", dataset="patients", profile="pseudonymized").json()
    decide(client, workspace, "alice", grant["id"])
    assert decide(client, workspace, "carol", grant["id"], "revoke").status_code == 403
    assert (
        decide(client, workspace, "victor", grant["id"], "revoke", "audit finding").json()["status"]
        == "revoked"
    )
    assert read(client, workspace, "erin", "patients").status_code == 403


@pytest.mark.parametrize(
    ("who", "body", "field"),
    [
        ("erin", {"dataset": "nope", "profile": "anonymized"}, "dataset"),
        ("erin", {"module": "nope", "profile": "anonymized"}, "module"),
        ("erin", {"profile": "anonymized"}, "dataset"),
        ("lin", {"dataset": "patients", "profile": "raw", "purpose": ALUMNI_PURPOSE}, "profile"),
        ("victor", {"dataset": "patients", "profile": "aggregate"}, "profile"),
        ("lin", {"dataset": "patients", "profile": "anonymized"}, "purpose"),
        ("erin", {"dataset": "patients", "profile": "pseudonymized", "days": 0}, "days"),
        ("erin", {"dataset": "patients", "profile": "raw", "days": 31}, "days"),
        ("erin", {"dataset": "patients", "profile": "anonymized", "columns": ["nope"]}, "columns"),
        (
            "erin",
            {
                "dataset": "patients",
                "profile": "anonymized",
                "row_filter": [{"column": "nope", "op": "=", "value": 1}],
            },
            "row_filter[0].column",
        ),
        ("erin", {"module": "imaging", "profile": "anonymized", "columns": ["name"]}, "columns"),
    ],
)
def test_bad_requests_name_the_field_and_write_nothing(
    client: TestClient, workspace: Workspace, who: str, body: dict[str, Any], field: str
):
    before = grant_count(workspace)
    response = call(client, workspace, who, "POST", "/v1/grants", {"days": 10, **body})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert grant_count(workspace) == before


def test_malformed_bodies_are_400(client: TestClient, workspace: Workspace):
    for body in (
        {"dataset": "patients", "profile": "secret", "days": 1},
        {"dataset": "patients", "profile": "raw"},
        {"dataset": "patients", "profile": "raw", "days": 1, "extra": 1},
    ):
        assert call(client, workspace, "erin", "POST", "/v1/grants", body).status_code == 400
    grant = ask(client, workspace, "erin", dataset="patients", profile="anonymized").json()
    assert (
        call(
            client, workspace, "alice", "POST", f"/v1/grants/{grant['id']}/approve", {}
        ).status_code
        == 400
    )


def test_partners_request_only_for_their_org_as_org_admin(client: TestClient, workspace: Workspace):
    body = {"dataset": "annotations", "profile": "anonymized", "purpose": "labelling"}
    refused = ask(client, workspace, "mei", org="surgibot", **body)
    assert refused.status_code == 403 and refused.json()["rule"] == "request:org-admin"
    sql(workspace, "UPDATE principals SET org_admin = 1 WHERE name = 'mei'")
    assert ask(client, workspace, "mei", org="stellar", **body).status_code == 403
    grant = ask(client, workspace, "mei", org="surgibot", **body)
    assert grant.status_code == 201 and grant.json()["subject"] == "org:surgibot"
    by_admin = ask(client, workspace, "admin", org="stellar", **{**body, "dataset": "customers"})
    assert by_admin.status_code == 201


def test_visibility_of_grants(client: TestClient, workspace: Workspace):
    pending = ask(client, workspace, "erin", dataset="patients", profile="anonymized").json()
    mine = call(client, workspace, "erin", "GET", "/v1/grants").json()["grants"]
    assert {g["subject"] for g in mine} == {"user:erin"}
    alice = call(client, workspace, "alice", "GET", "/v1/grants").json()["grants"]
    assert pending["id"] in [g["id"] for g in alice]
    assert all(g["status"] == "requested" or g["subject"] == "user:alice" for g in alice)
    carol = call(client, workspace, "carol", "GET", "/v1/grants").json()["grants"]
    assert pending["id"] not in [g["id"] for g in carol]
    assert call(client, workspace, "carol", "GET", f"/v1/grants/{pending['id']}").status_code == 404
    everything = call(client, workspace, "victor", "GET", "/v1/grants").json()["grants"]
    assert len(everything) == grant_count(workspace)
    active = call(client, workspace, "victor", "GET", "/v1/grants?status=active").json()["grants"]
    assert active and all(g["status"] == "active" for g in active)


def test_exclusive_modules_at_request_time(client: TestClient, workspace: Workspace):
    # sam's org holds crm; imaging and crm are exclusive in the demo.
    response = ask(
        client,
        workspace,
        "sam",
        dataset="patients",
        profile="anonymized",
        purpose="market analysis",
    )
    assert response.status_code == 403
    problem = response.json()
    assert problem["rule"] == "separation.exclusive"
    assert problem["conflicting_grant"] == 5 and "crm" in problem["detail"]


def test_exclusive_modules_at_approval_time(client: TestClient, workspace: Workspace):
    newcomer(workspace, "zed")
    imaging = ask(client, workspace, "zed", dataset="patients", profile="anonymized").json()
    crm = ask(client, workspace, "zed", dataset="customers", profile="anonymized").json()
    assert decide(client, workspace, "alice", imaging["id"]).json()["status"] == "active"
    refused = decide(client, workspace, "carol", crm["id"])
    assert refused.status_code == 403
    assert refused.json()["rule"] == "separation.exclusive"
    assert refused.json()["conflicting_grant"] == imaging["id"]


def test_max_modules_per_principal(workspace: Workspace):
    text = workspace.config_path.read_text().replace(
        "max_modules_per_principal: 2", "max_modules_per_principal: 1"
    )
    workspace.config_path.write_text(text)
    with client_for(workspace) as client:
        response = ask(client, workspace, "erin", dataset="annotations", profile="anonymized")
        assert response.status_code == 403
        assert response.json()["rule"] == "separation.max_modules_per_principal"
        assert response.json()["conflicting_grant"] == 1  # erin's grant on studies


def test_break_glass_needs_an_admin_and_an_officer(client: TestClient, workspace: Workspace):
    newcomer(workspace, "zed")
    imaging = ask(client, workspace, "zed", dataset="patients", profile="anonymized").json()
    decide(client, workspace, "alice", imaging["id"])
    over = ask(
        client, workspace, "zed", dataset="customers", profile="anonymized", break_glass_hours=25
    )
    assert over.status_code == 400 and over.json()["field"] == "break_glass_hours"
    grant = ask(
        client, workspace, "zed", dataset="customers", profile="anonymized", break_glass_hours=4
    ).json()
    assert decide(client, workspace, "carol", grant["id"]).json()["status"] == "requested"
    assert decide(client, workspace, "erin", grant["id"], "break-glass").status_code == 403
    assert (
        decide(client, workspace, "admin", grant["id"], "break-glass", "incident 42").json()[
            "status"
        ]
        == "requested"
    )
    done = decide(client, workspace, "victor", grant["id"], "break-glass", "incident 42").json()
    assert done["status"] == "active"
    expires = datetime.fromisoformat(done["expires_at"])
    assert expires <= datetime.fromisoformat(done["activated_at"]) + timedelta(hours=4)
    alerts = [e for e in audit_rows(workspace) if e["action"] == "grant.break_glass"]
    assert len(alerts) == 1 and alerts[0]["grant_id"] == grant["id"]
    assert read(client, workspace, "zed", "customers").status_code == 200


def test_expiry_is_checked_at_decision_time_and_swept(client: TestClient, workspace: Workspace):
    assert read(client, workspace, "erin", "studies").status_code == 200
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(" ")
    sql(workspace, "UPDATE grants SET expires_at = ? WHERE id = 1", past)
    sql(workspace, "UPDATE versions SET value = value + 1 WHERE name = 'grants'")
    response = read(client, workspace, "erin", "studies")
    assert response.status_code == 403 and "expired" in response.json()["detail"]
    assert call(client, workspace, "erin", "POST", "/v1/grants/sweep").status_code == 403
    swept = call(client, workspace, "victor", "POST", "/v1/grants/sweep").json()
    assert swept["expired"] == [1]
    shown = call(client, workspace, "victor", "GET", "/v1/grants/1").json()
    assert shown["status"] == "expired" and shown["history"][-1]["action"] == "expired"
    assert any(e["action"] == "grant.expired" and e["grant_id"] == 1 for e in audit_rows(workspace))


def test_sweep_revokes_unused_and_lists_recertification(client: TestClient, workspace: Workspace):
    old = (datetime.now(UTC) - timedelta(days=100)).isoformat(" ")
    recent = datetime.now(UTC).isoformat(" ")
    sql(workspace, "UPDATE grants SET created_at = ? WHERE id IN (2, 3)", old)
    sql(workspace, "UPDATE grants SET last_used_at = ? WHERE id = 3", recent)
    result = call(client, workspace, "admin", "POST", "/v1/grants/sweep").json()
    assert result["revoked_unused"] == [2]
    assert result["recertify"] == {"alice": [3], "bob": [3]}
    assert call(client, workspace, "victor", "GET", "/v1/grants/2").json()["status"] == "revoked"


def test_reads_record_grant_use(client: TestClient, workspace: Workspace):
    read(client, workspace, "erin", "studies")
    assert call(client, workspace, "victor", "GET", "/v1/grants/1").json()["last_used_at"]
