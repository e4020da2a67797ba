"""Custodians learn of a new grant request without polling: the demo's alert rule on
``grant.requested`` posts it to the alert webhooks."""

from __future__ import annotations

from gateway.demo.workspace import Workspace
from tests.conftest import bearer, client_for
from tests.webhooks import point_rules_at, receiver


def test_a_grant_request_is_posted_to_the_webhooks(workspace: Workspace):
    with receiver() as hook:
        point_rules_at(workspace.root, hook)
        with client_for(workspace) as client:
            response = client.post(
                "/v1/grants",
                json={"dataset": "annotations", "profile": "pseudonymized", "days": 30},
                headers=bearer(workspace, "erin"),
            )
            assert response.status_code == 201, response.text
            assert client.app.state.audit_trail.alerts.wait_idle(10)  # type: ignore[attr-defined]
            assert hook.wait_for(1)
            requested = client.get(
                "/v1/audit/events?action=grant.requested", headers=bearer(workspace, "victor")
            ).json()["events"]
    alert = hook.deliveries[0]["data"]
    assert isinstance(alert, dict)
    assert alert["rule"] == "grant-requested"
    assert alert["subject"] == "erin"
    assert alert["matched_action"] == "grant.requested"
    assert alert["related_seqs"] == [requested[0]["seq"]]
    assert hook.bad_signatures == 0
