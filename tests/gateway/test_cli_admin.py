"""The HTTP CLI: requests, decisions, sweep, suspension and refusals, as readable text."""

from __future__ import annotations

import contextlib

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from gateway.cli import remote as cli_admin
from gateway.cli.main import cli
from gateway.demo.workspace import Workspace


@pytest.fixture
def kl(client: TestClient, workspace: Workspace, monkeypatch: pytest.MonkeyPatch):
    class Borrowed(contextlib.nullcontext):
        """The test client, lent without being closed after each command."""

        def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
            return client.request(method, path, **kwargs)  # type: ignore[arg-type]

    def run(who: str, *args: str) -> tuple[int, str]:
        def http() -> Borrowed:
            client.headers["Authorization"] = f"Bearer {workspace.tokens[who]}"
            borrowed = Borrowed()
            borrowed.enter_result = borrowed
            return borrowed

        monkeypatch.setattr(cli_admin, "http_client", http)
        result = CliRunner().invoke(cli, list(args), env={"KITELINE_TOKEN": "set"})
        return result.exit_code, result.output

    return run


def test_request_deny_revoke_and_refusals(kl):
    code, out = kl(
        "erin",
        "grants",
        "request",
        "--dataset",
        "patients",
        "--profile",
        "pseudonymized",
        "--days",
        "5",
        "--columns",
        "patient_id,diagnosis",
    )
    assert code == 0 and out.startswith("grant 6 requested: 0/1 approvals")
    code, out = kl(
        "erin", "grants", "request", "--dataset", "patients", "--profile", "raw", "--days", "99"
    )
    assert code == 2 and "days:" in out
    code, out = kl("carol", "grants", "approve", "6", "--reason", "no")
    assert code == 2 and "rule: custodian" in out
    code, out = kl("alice", "grants", "deny", "6", "--reason", "use anonymized")
    assert code == 0 and "grant 6 denied" in out
    code, out = kl("bob", "grants", "approve", "6", "--reason", "late")
    assert code == 2 and "error 409" in out
    code, out = kl("victor", "grants", "list")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["ID", "SUBJECT", "MODULE"]
    code, out = kl("victor", "grants", "revoke", "1", "--reason", "review")
    assert code == 0 and "grant 1 revoked" in out


def test_sweep_and_suspension(kl):
    code, out = kl("victor", "grants", "sweep")
    assert code == 0 and "expired: -" in out
    code, out = kl("admin", "principals", "suspend", "surgibot", "--org", "--reason", "audit")
    assert code == 0 and "surgibot is suspended" in out
    code, out = kl("admin", "principals", "reinstate", "surgibot", "--org", "--reason", "ok")
    assert code == 0 and "surgibot is active" in out
    code, out = kl("erin", "access", "patients")
    assert code == 2 and "rule: access" in out
