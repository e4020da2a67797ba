"""Custodians learn of a new grant request without polling: the demo's alert rule on
``grant.requested`` posts it to the alert webhooks."""

from __future__ import annotations

from gateway.demo.workspace import Workspace
from tests.conftest import bearer, client_for
from tests.gateway.test_cli_audit import Receiver, webhook

__all__ = ["webhook"]  # the fixture, used by name below


def test_a_grant_request_is_posted_to_the_webhooks(
    workspace: Workspace, webhook: tuple[str, type[Receiver]]
):
    url, receiver = webhook
    rules = workspace.root / "alerts.yaml"
    rules.write_text(rules.read_text().replace("webhooks: []", f"webhooks:\n  - url: {url}\n"))
    with client_for(workspace) as client:
        response = client.post(
            "/v1/grants",
            json={"dataset": "annotations", "profile": "pseudonymized", "days": 30},
            headers=bearer(workspace, "erin"),
        )
        assert response.status_code == 201, response.text
        assert client.app.state.audit_trail.alerts.wait_idle(10)  # type: ignore[attr-defined]
        assert receiver.arrived.wait(10)
        requested = client.get(
            "/v1/audit/events?action=grant.requested", headers=bearer(workspace, "victor")
        ).json()["events"]
    alert = receiver.received[0]["alert"]
    assert isinstance(alert, dict)
    assert alert["rule"] == "grant-requested"
    assert alert["subject"] == "erin"
    assert alert["matched_action"] == "grant.requested"
    assert alert["related_seqs"] == [requested[0]["seq"]]
