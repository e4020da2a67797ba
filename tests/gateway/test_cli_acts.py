"""Every act of the local CLI leaves exactly one audit event naming the authenticated actor."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from click.testing import CliRunner

from gateway.cli.main import cli
from gateway.demo.workspace import ALUMNI_PURPOSE, SURGICAL_PURPOSE, Workspace, create_workspace
from tests.conftest import bearer, client_for
from tests.gateway.test_api import audit_rows
from tests.gateway.test_cli import newco_grant


def run(ws: Workspace, *args: str, token: str | None) -> tuple[int, str]:
    env = {"KITELINE_TOKEN": token} if token is not None else {"KITELINE_TOKEN": ""}
    result = CliRunner(env=env).invoke(cli, ["--config", str(ws.config_path), *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def acted(ws: Workspace, *args: str, who: str | None, expect: int = 0) -> dict[str, object]:
    """Run one command as ``who`` and return the one audit event it appended."""
    before = len(audit_rows(ws))
    token = ws.tokens[who] if who else None
    code, out = run(ws, *args, token=token)
    assert code == expect, out
    # A checkpoint signed on the way is the log's own record, not the operator's act.
    new = [e for e in audit_rows(ws)[before:] if e["action"] != "checkpoint.signed"]
    assert len(new) == 1, [e["action"] for e in new]
    return new[0]


def acts_by(
    ws: Workspace, acts: list[tuple[tuple[str, ...], str]], who: str, kind: str
) -> list[dict[str, object]]:
    """Run each command line as ``who``; each records its action, naming ``who`` a ``kind``."""
    events = []
    for args, action in acts:
        event = acted(ws, *args, who=who)
        assert (event["action"], event["actor"], event["actor_kind"]) == (action, who, kind), args
        events.append(event)
    return events


def leak_file(ws: Workspace, path: Path) -> Path:
    with client_for(ws) as client:
        response = client.post(
            "/v1/datasets/patients/query",
            headers={**bearer(ws, "mei"), "Accept": "application/vnd.apache.arrow.stream"},
            content=orjson.dumps({"limit": 30, "purpose": SURGICAL_PURPOSE}),
        )
    assert response.status_code == 200
    pacsv.write_csv(pa.ipc.open_stream(io.BytesIO(response.content)).read_all(), path)
    return path


# (command line, who runs it, action recorded)
ADMIN_ACTS = [
    (("principals", "add", "zoe", "--kind", "partner", "--org", "newco"), "principal.added"),
    (("keys", "issue", "zoe"), "key.issued"),
    (("keys", "rotate"), "pseudonym_key.rotated"),
    (("budgets", "set", "1", "--rows-per-day", "500"), "budget.set"),
    (
        newco_grant("studies", "--purpose", "research", "--reason", "pilot signed 2026-12-01"),
        "grant.added",
    ),
    (("principals", "list"), "principals.list"),
    (("grants", "list", "--local"), "grants.list"),
    (("budgets", "show", "1"), "budget.shown"),
    (("audit", "reindex"), "audit.reindexed"),
    (("policy", "reload"), "policy.reload_requested"),
]
OFFICER_ACTS = [
    (("audit", "search", "--actor", "mei"), "audit.search"),
    (("audit", "tail", "-n", "3"), "audit.tail"),
    (("audit", "alerts"), "audit.alerts"),
    (("audit", "hash", "secret literal"), "audit.hash"),
    (("audit", "checkpoint"), "audit.checkpoint"),
    (("audit", "verify"), "audit.verify"),
]


def test_every_admin_write_and_officer_read_is_one_event_naming_its_actor(
    workspace: Workspace, tmp_path: Path
):
    for event in acts_by(workspace, ADMIN_ACTS, "admin", "admin"):
        assert event["channel"] == "cli" and event["decision"] == "allow"
    key_id = next(e for e in audit_rows(workspace) if e["action"] == "key.issued")["key_id"]
    event = acted(workspace, "keys", "revoke", str(key_id), who="admin")
    assert (event["action"], event["actor"], event["key_id"]) == ("key.revoked", "admin", key_id)
    added = next(e for e in audit_rows(workspace) if e["action"] == "grant.added")
    assert added["reasons"] == ["pilot signed 2026-12-01"] and added["module"] == "imaging"

    export = tmp_path / "out.jsonl"
    witness = tmp_path / "witness.jsonl"
    leak = leak_file(workspace, tmp_path / "leak.csv")
    officer_acts = [
        *OFFICER_ACTS,
        (("audit", "export", "--actor", "mei", "--out", str(export)), "audit.export"),
        (("audit", "witness", "--out", str(witness)), "audit.witness"),
        (("trace", str(leak)), "trace.hit"),
    ]
    acts_by(workspace, officer_acts, "victor", "officer")
    searched = next(e for e in audit_rows(workspace) if e["action"] == "audit.search")
    assert searched["filters"] == {"actor": "mei"}
    hashed = next(e for e in audit_rows(workspace) if e["action"] == "audit.hash")
    assert "secret literal" not in orjson.dumps(hashed).decode()


@pytest.mark.parametrize(
    ("args", "who"),
    [
        (("principals", "add", "eve", "--kind", "admin"), "mei"),
        (("keys", "issue", "mei"), "victor"),
        (("grants", "add", "--org", "surgibot", "--dataset", "patients", "--profile", "raw",
          "--reason", "x"), "alice"),
        (("audit", "search"), "admin"),
        (("trace", "/dev/null"), "mei"),
    ],
)  # fmt: skip
def test_a_role_refused_is_audited_as_the_caller(
    workspace: Workspace, args: tuple[str, ...], who: str
):
    event = acted(workspace, *args, who=who, expect=2)
    assert (event["action"], event["actor"], event["decision"]) == ("cli.denied", who, "deny")
    assert event["attempted"] == " ".join(args[:2]) if args[0] != "trace" else "trace"


EXPLAIN_LIN = ("explain", "lin", "patients", "--profile", "raw", "--purpose", ALUMNI_PURPOSE)


def test_explain_is_an_officers_act_audited_as_the_officer(workspace: Workspace):
    event = acted(workspace, *EXPLAIN_LIN, who="victor")
    assert (event["action"], event["actor"], event["actor_kind"], event["channel"]) == (
        "decision.explain",
        "victor",
        "officer",
        "cli",
    )
    assert (event["subject"], event["dataset"], event["module"]) == ("lin", "patients", "imaging")
    # Alumni never read raw: the explanation says deny, and records what it decided on.
    assert event["outcome"] == "deny" and event["decision_basis"]["decided"]
    missing = acted(workspace, "explain", "nobody", "patients", who="victor", expect=2)
    assert (missing["action"], missing["decision"]) == ("decision.explain", "deny")
    assert missing["reasons"] == ["no principal named 'nobody'"]


def test_explain_without_an_officers_key_is_refused_and_audited(workspace: Workspace):
    for who, action in ((None, "auth.failed"), ("mei", "cli.denied"), ("admin", "cli.denied")):
        before = len(audit_rows(workspace))
        token = workspace.tokens[who] if who else None
        code, out = run(workspace, *EXPLAIN_LIN, token=token)
        assert code == 2 and "DENY" not in out and "ALLOW" not in out, out
        [event] = audit_rows(workspace)[before:]
        assert (event["action"], event["actor"], event["decision"]) == (action, who, "deny")


def versions(ws: Workspace) -> int:
    with sqlite3.connect(ws.root / "state.db") as conn:
        return int(conn.execute("SELECT count(*) FROM pseudonym_keys").fetchone()[0])


def test_no_token_or_a_bad_one_is_refused_and_audited(workspace: Workspace):
    kept = versions(workspace)
    for token in (None, workspace.tokens["admin"] + "x"):
        before = len(audit_rows(workspace))
        code, out = run(workspace, "keys", "rotate", token=token)
        assert code == 2, out
        [event] = audit_rows(workspace)[before:]
        assert (event["action"], event["decision"], event["actor"]) == ("auth.failed", "deny", None)
        assert workspace.tokens["admin"].split("_", 2)[2] not in orjson.dumps(event).decode()
    assert versions(workspace) == kept


def test_only_the_first_admin_is_set_up_without_a_key(tmp_path: Path):
    ws = create_workspace(tmp_path / "ws")
    fresh = Workspace(ws.root, ws.config_path, {})
    # A state database with no admin key yet.
    with sqlite3.connect(ws.root / "state.db") as conn:
        conn.execute(
            "UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE principal_id IN "
            "(SELECT id FROM principals WHERE kind = 'admin')"
        )
    refused = acted(fresh, "principals", "add", "root2", "--kind", "officer", who=None, expect=2)
    assert refused["action"] == "auth.failed"
    added = acted(fresh, "principals", "add", "root", "--kind", "admin", who=None)
    assert (added["action"], added["actor"]) == ("principal.added", "bootstrap")
    code, token = run(fresh, "keys", "issue", "root", token=None)
    assert code == 0 and token.startswith("kl_")
    issued = audit_rows(fresh)[-1]
    assert (issued["action"], issued["actor"], issued["principal"]) == (
        "key.issued",
        "bootstrap",
        "root",
    )
    # From now on the admin's key is needed, and names the actor.
    again = acted(fresh, "principals", "add", "root3", "--kind", "admin", who=None, expect=2)
    assert again["action"] == "auth.failed"
    fresh.tokens["root"] = token.splitlines()[0]
    event = acted(fresh, "principals", "add", "ops", "--kind", "officer", who="root")
    assert (event["action"], event["actor"]) == ("principal.added", "root")
