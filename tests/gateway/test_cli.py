"""The kiteline command: keys, principals, grants and audit verification."""

from __future__ import annotations

import sqlite3

from click.testing import CliRunner

from gateway.cli.main import cli
from gateway.demo.workspace import Workspace


def run(ws: Workspace, *args: str, who: str | None = None) -> tuple[int, str]:
    """Run a command as ``who`` (default: the officer for audit commands, else the admin)."""
    who = who or ("victor" if args[0] == "audit" else "admin")
    result = CliRunner(env={"KITELINE_TOKEN": ws.tokens[who]}).invoke(
        cli, ["--config", str(ws.config_path), *args]
    )
    return result.exit_code, result.output


def newco_grant(dataset: str, *options: str) -> tuple[str, ...]:
    """The command line that grants the org newco anonymized reads of ``dataset``."""
    return (
        "grants",
        "add",
        "--org",
        "newco",
        "--dataset",
        dataset,
        "--profile",
        "anonymized",
        *options,
    )


def test_audit_verify_detects_an_edited_row(client, workspace: Workspace):
    client.get("/v1/datasets", headers={"Authorization": f"Bearer {workspace.tokens['mei']}"})
    client.get("/v1/datasets", headers={"Authorization": "Bearer nope"})
    code, out = run(workspace, "audit", "verify")
    assert code == 0 and out.startswith("ok: 2 events")  # its own audit.verify comes after
    with sqlite3.connect(workspace.root / "state.db") as conn:
        conn.execute("UPDATE audit_events SET body = replace(body, 'deny', 'allow') WHERE seq = 2")
    code, out = run(workspace, "audit", "verify")
    assert code == 1
    assert "event 2 was edited" in out


def test_principals_keys_and_grants(workspace: Workspace):
    code, out = run(workspace, "principals", "add", "zoe", "--kind", "partner", "--org", "newco")
    assert code == 0, out
    code, out = run(workspace, "principals", "add", "zoe", "--kind", "partner", "--org", "x")
    assert code == 2 and "already exists" in out
    code, token = run(workspace, "keys", "issue", "zoe")
    assert code == 0 and token.startswith("kl_")
    reason = "pilot agreed with newco"
    grant = newco_grant("studies", "--purpose", "research", "--days", "5", "--reason", reason)
    code, out = run(workspace, *grant)
    assert code == 0 and "active" in out
    code, out = run(workspace, "grants", "list", "--local")
    assert "org:newco" in out
    code, out = run(workspace, *newco_grant("nope", "--reason", "x"))
    assert code == 2 and "unknown dataset" in out
    code, out = run(workspace, "principals", "list")
    assert "zoe" in out and "newco" in out
    code, out = run(workspace, "audit", "tail", "-n", "1")
    assert code == 0


def test_tokens_never_reach_the_audit_log(client, workspace: Workspace):
    token = workspace.tokens["mei"]
    client.get("/v1/datasets", headers={"Authorization": f"Bearer {token}x"})
    code, out = run(workspace, "audit", "tail", "-n", "50")
    assert code == 0
    # The secret is everything after the key id; it may itself hold "_".
    secret = token.split("_", 2)[2]
    assert len(secret) == 43
    assert secret not in out
