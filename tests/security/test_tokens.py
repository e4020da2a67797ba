"""Token attacks: malformed, forged, revoked, expired and cross-principal tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from gateway.access.principals import issue_key, now, revoke_key
from gateway.cli.main import cli
from gateway.demo.workspace import Workspace
from tests.gateway.test_api import audit_rows


def status(client: TestClient, token: str) -> int:
    return client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],  # truncated secret
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # one character changed
        lambda t: t + "A",  # one character more
        lambda t: t.upper(),
        lambda t: t.replace("kl_", "KL_", 1),
        lambda t: t + "\x00",
        lambda t: t.split("_")[0] + "_" + t.split("_")[1] + "_",  # key id, no secret
        lambda t: "kl_" + "a" * 12 + "_" + t.rsplit("_", 1)[1],  # secret, another key id
        lambda t: t * 50,
    ],
)
def test_a_mangled_token_is_refused_and_audited(client: TestClient, workspace: Workspace, mangle):
    before = len(audit_rows(workspace))
    assert status(client, mangle(workspace.tokens["mei"])) == 401
    events = audit_rows(workspace)[before:]
    assert [e["action"] for e in events] == ["auth.failed"]
    assert workspace.tokens["mei"].rsplit("_", 1)[1] not in str(events)


def test_one_principals_secret_under_anothers_key_id_is_refused(
    client: TestClient, workspace: Workspace
):
    mei_id = workspace.tokens["mei"].split("_")[1]
    victor_secret = workspace.tokens["victor"].rsplit("_", 1)[1]
    assert status(client, f"kl_{mei_id}_{victor_secret}") == 401


def test_a_revoked_key_is_refused_on_the_very_next_request(client: TestClient):
    engine = client.app.state.gateway.engine  # type: ignore[attr-defined]
    key_id, token = issue_key(engine, "mei")
    assert status(client, token) == 200
    revoke_key(engine, key_id)
    assert status(client, token) == 401


def test_an_expired_key_is_refused_and_a_fresh_one_rotates_in(client: TestClient):
    engine = client.app.state.gateway.engine  # type: ignore[attr-defined]
    _, old = issue_key(engine, "mei", expires_at=now() + timedelta(seconds=1))
    _, new = issue_key(engine, "mei", expires_at=now() + timedelta(days=90))
    assert (status(client, old), status(client, new)) == (200, 200)
    _, lapsed = issue_key(engine, "mei", expires_at=now() - timedelta(seconds=1))
    assert status(client, lapsed) == 401
    [event] = [e for e in audit_rows_of(client) if e["action"] == "auth.failed"][-1:]
    assert event["reasons"] == ["expired key"]


def audit_rows_of(client: TestClient) -> list[dict[str, object]]:
    gateway = client.app.state.gateway  # type: ignore[attr-defined]
    return [dict(e) for e in gateway.audit.tail(50)]


def test_keys_issue_takes_an_expiry(workspace: Workspace):
    # Issuing a key is an admin's act, audited as the key's principal.
    runner = CliRunner(env={"KITELINE_TOKEN": workspace.tokens["admin"]})
    args = ["--config", str(workspace.config_path), "keys", "issue", "mei"]
    issued = runner.invoke(cli, [*args, "--expires", "90d"])
    assert issued.exit_code == 0, issued.output
    assert runner.invoke(cli, [*args, "--expires", "soon"]).exit_code == 2
    from tests.conftest import client_for

    token = issued.stdout.strip().splitlines()[0]
    with client_for(workspace) as client:
        assert status(client, token) == 200
