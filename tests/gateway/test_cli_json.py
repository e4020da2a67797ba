"""``--json``: commands that print a result print it as one JSON document for scripts."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from gateway.cli.main import cli
from gateway.demo.workspace import Workspace
from tests.gateway.test_cli_admin import kl  # noqa: F401  (the HTTP CLI's fixture)


def local(ws: Workspace, *args: str, who: str = "admin") -> tuple[int, Any]:
    """Run a command on this host's state database as ``who``; its output parsed."""
    result = CliRunner(env={"KITELINE_TOKEN": ws.tokens[who]}).invoke(
        cli, ["--config", str(ws.config_path), *args, "--json"]
    )
    return result.exit_code, json.loads(result.stdout)


def test_a_grant_requested_shown_and_approved_as_json(kl):  # noqa: F811
    request = ("grants", "request", "--dataset", "patients", "--profile", "anonymized")
    code, out = kl("erin", *request, "--days", "5", "--purpose", "study", "--json")
    assert code == 0
    grant = json.loads(out)
    assert (grant["status"], grant["dataset"], grant["days"]) == ("requested", "patients", 5)
    code, out = kl("alice", "grants", "approve", str(grant["id"]), "--reason", "ok", "--json")
    assert code == 0 and json.loads(out)["status"] == "active"
    code, out = kl("erin", "grants", "show", str(grant["id"]), "--json")
    shown = json.loads(out)
    assert [e["action"] for e in shown["history"]] == ["requested", "approved", "activated"]
    code, out = kl("erin", "grants", "list", "--json")
    assert grant["id"] in {g["id"] for g in json.loads(out)["grants"]}


def test_principals_keys_and_grants_on_this_host_as_json(workspace: Workspace):
    code, added = local(workspace, "principals", "add", "zoe", "--kind", "employee")
    assert code == 0 and added == {
        "name": "zoe",
        "kind": "employee",
        "org": None,
        "department": None,
        "org_admin": False,
    }
    code, listed = local(workspace, "principals", "list")
    assert (
        code == 0
        and {"name": "zoe", "kind": "employee", "status": "active", "org": None}
        in (listed["principals"])
    )
    code, issued = local(workspace, "keys", "issue", "zoe")
    assert code == 0 and issued["principal"] == "zoe" and issued["token"].startswith("kl_")
    grant = ("--principal", "zoe", "--dataset", "studies", "--profile", "anonymized")
    code, added = local(workspace, "grants", "add", *grant, "--reason", "pilot")
    assert code == 0 and added["status"] == "active"
    code, listed = local(workspace, "grants", "list", "--local")
    assert added["id"] in {g["id"] for g in listed["grants"]}


def test_check_and_policy_test_as_json(workspace: Workspace):
    code, checked = local(workspace, "check")
    assert code == 0 and checked["ok"] and checked["problems"] == []
    assert checked["datasets"] == 4
    code, tested = local(workspace, "policy", "test")
    assert code == 0 and tested["rego"]["passed"] and tested["rego"]["failed"] == []
    assert tested["casbin"]["failed"] == []
