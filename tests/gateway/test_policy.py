"""The policy layer through the HTTP API: decisions for every principal kind, explain,
reload of edited Rego files, and fail-closed behaviour."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from gateway.access.policy_files import POLICY_DIR
from gateway.access.principals import add_principal, issue_key, set_status
from gateway.cli.main import cli
from gateway.demo.workspace import ALUMNI_PURPOSE, SURGICAL_PURPOSE, Workspace
from gateway.state.database import create_state_engine
from tests.conftest import add_test_grant, bearer, client_for


def read(client: TestClient, token: str, dataset: str, **body: object):
    return client.post(
        f"/v1/datasets/{dataset}/query",
        content=orjson.dumps(body),
        headers={"Authorization": f"Bearer {token}"},
    )


def explain(client: TestClient, workspace: Workspace, who: str, **body: object):
    return client.post(
        "/v1/decisions/explain", content=orjson.dumps(body), headers=bearer(workspace, who)
    )


@pytest.fixture
def people(workspace: Workspace) -> dict[str, str]:
    """Extra principals of every kind, with grants, on top of the demo's."""
    config = workspace.config
    engine = create_state_engine(config.state_url)
    tokens = dict(workspace.tokens)
    add_principal(engine, name="etl", kind="service")
    tokens["etl"] = issue_key(engine, "etl")[1]
    add_principal(engine, name="ravi", kind="partner", org="medlab")
    tokens["ravi"] = issue_key(engine, "ravi")[1]
    for subject_type, subject, profile, approvals, purpose in [
        ("principal", "erin", "raw", 2, None),
        ("principal", "etl", "raw", 2, None),
        ("org", "medlab", "raw", 2, "triage research"),
        ("principal", "lin", "raw", 2, ALUMNI_PURPOSE),
        ("principal", "alice", "raw", 1, None),
    ]:
        add_test_grant(
            engine,
            config,
            subject,
            profile,
            subject_type=subject_type,
            dataset="patients",
            approvals=approvals,
            purpose=purpose,
            days=5,
        )
    engine.dispose()
    return tokens


@pytest.mark.parametrize(
    ("who", "purpose", "profile", "expected"),
    [
        # employee with a two-approval raw grant reads raw, or less when asking for less
        ("erin", None, None, "raw"),
        ("erin", None, "anonymized", "anonymized"),
        # a raw grant approved once reads pseudonymized only
        ("alice", None, None, "pseudonymized"),
        ("alice", None, "raw", 403),
        # services are capped at pseudonymized
        ("etl", None, None, "pseudonymized"),
        ("etl", None, "raw", 403),
        # partners: capped at anonymized; purpose required and must match
        ("ravi", "triage research", None, "anonymized"),
        ("ravi", "triage research", "raw", 403),
        ("ravi", None, None, 403),
        ("ravi", "marketing", None, 403),
        ("mei", SURGICAL_PURPOSE, None, "anonymized"),
        ("mei", SURGICAL_PURPOSE, "pseudonymized", 403),
        # alumni: capped at anonymized even with a raw grant
        ("lin", ALUMNI_PURPOSE, None, "anonymized"),
        ("lin", ALUMNI_PURPOSE, "raw", 403),
        ("lin", None, None, 403),
        # officers and admins never read data
        ("victor", None, None, 403),
        ("admin", None, None, 403),
        # no grant at all
        ("sam", "market analysis", None, 403),
    ],
)
def test_profile_matrix(
    client: TestClient,
    people: dict[str, str],
    who: str,
    purpose: str | None,
    profile: str | None,
    expected: object,
):
    body: dict[str, object] = {"limit": 1}
    if purpose:
        body["purpose"] = purpose
    if profile:
        body["profile"] = profile
    response = read(client, people[who], "patients", **body)
    if isinstance(expected, int):
        assert response.status_code == expected, response.text
        assert response.json()["reasons"]
    else:
        assert response.status_code == 200, response.text
        assert response.json()["profile"] == expected


def test_suspended_org_gets_nothing(client: TestClient, workspace: Workspace):
    from sqlalchemy import text

    engine = create_state_engine(workspace.config.state_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE orgs SET status = 'suspended' WHERE name = 'surgibot'"))
        conn.execute(text("UPDATE versions SET value = value + 1 WHERE name = 'principals'"))
    engine.dispose()
    response = read(client, workspace.tokens["mei"], "patients", limit=1, purpose=SURGICAL_PURPOSE)
    assert response.status_code == 403
    assert "suspended" in response.text


def test_time_windows(client: TestClient, workspace: Workspace):
    engine = create_state_engine(workspace.config.state_url)
    add_principal(engine, name="night", kind="employee")
    token = issue_key(engine, "night")[1]
    # a window that is never open: no weekday listed
    add_test_grant(
        engine,
        workspace.config,
        "night",
        "pseudonymized",
        dataset="studies",
        days=1,
        window={"days": [], "start": "00:00", "end": "23:59", "timezone": "UTC"},
    )
    engine.dispose()
    response = read(client, token, "studies", limit=1)
    assert response.status_code == 403


def test_explain_own_and_others(client: TestClient, workspace: Workspace):
    ask = partial(explain, client, workspace)
    mine = ask("mei", dataset="patients", purpose=SURGICAL_PURPOSE)
    assert mine.status_code == 200, mine.text
    out = mine.json()
    assert out["allowed"] is True
    assert out["engines"]["casbin"]["allowed"] is True
    assert out["engines"]["casbin"]["matched"] == ["org:surgibot, imaging, patients, read, allow"]
    assert out["engines"]["rego"]["obligations"]["profile"] == "anonymized"
    assert out["obligations"]["profile"] == "anonymized"
    no_purpose = ask("mei", dataset="patients").json()
    assert no_purpose["allowed"] is False
    assert any("surgical robot training" in r for r in no_purpose["reasons"])
    assert ask("mei", principal="lin", dataset="patients").status_code == 403
    other = ask("victor", principal="lin", dataset="patients", profile="raw")
    assert other.status_code == 200
    assert other.json()["allowed"] is False
    assert any("alumni" in r for r in other.json()["reasons"])
    assert ask("victor", principal="ghost", dataset="patients").status_code == 404
    assert ask("victor", dataset="nope").status_code == 404
    assert ask("victor", dataset="patients", action="delete").status_code == 400


@pytest.fixture
def own_policies(workspace: Workspace) -> Path:
    """The workspace reads its policies from its own copy of the directory."""
    target = workspace.root / "policies"
    shutil.copytree(POLICY_DIR, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    text = workspace.config_path.read_text()
    workspace.config_path.write_text(
        text.replace("  engine: embedded", "  engine: embedded\n  directory: policies")
    )
    return target


def test_reload_changes_the_next_decision_and_refuses_broken_files(
    workspace: Workspace, own_policies: Path
):
    runner = CliRunner(env={"KITELINE_TOKEN": workspace.tokens["admin"]})
    args = ["--config", str(workspace.config_path)]
    with client_for(workspace) as client:
        assert read(client, workspace.tokens["erin"], "studies", limit=1).status_code == 200
        # A new rule, wired into the union of denials the decision runs.
        access = own_policies / "access.rego"
        text = access.read_text()
        anchor = "\tdeny_separation(req, best),\n"
        assert anchor in text
        access.write_text(text.replace(anchor, anchor + "\tdeny_lockdown(req, best),\n"))
        extra = own_policies / "lockdown.rego"
        extra.write_text(
            "package kiteline.access\n\nimport rego.v1\n\n"
            "deny_lockdown(req, _) := {msg |\n"
            '\treq.name == "erin"\n'
            '\tmsg := "lockdown: erin\'s reads are suspended"\n}\n'
        )
        result = runner.invoke(cli, [*args, "policy", "reload"])
        assert result.exit_code == 0, result.output
        response = read(client, workspace.tokens["erin"], "studies", limit=1)
        assert response.status_code == 403
        assert "lockdown" in response.text
        version = explain(client, workspace, "erin", dataset="studies").json()["policy_version"]
        extra.write_text("package kiteline.access\n\nthis is not rego {{{\n")
        broken = runner.invoke(cli, [*args, "policy", "reload"])
        assert broken.exit_code == 2
        assert "lockdown.rego" in broken.output
        after = explain(client, workspace, "erin", dataset="studies").json()["policy_version"]
        assert after == version


def test_policy_test_command_passes(workspace: Workspace):
    result = CliRunner().invoke(cli, ["--config", str(workspace.config_path), "policy", "test"])
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output


def test_explain_command(workspace: Workspace):
    # An officer's act: the key is the officer's, from the environment.
    result = CliRunner(env={"KITELINE_TOKEN": workspace.tokens["victor"]}).invoke(
        cli,
        [
            "--config",
            str(workspace.config_path),
            "explain",
            "lin",
            "patients",
            "--profile",
            "raw",
            "--purpose",
            ALUMNI_PURPOSE,
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("DENY")
    assert "alumni" in result.output


def test_policy_engine_failure_fails_closed(client: TestClient, workspace: Workspace):
    gateway = client.app.state.gateway  # type: ignore[attr-defined]

    class Down:
        version = "down"

        def evaluate(self, _document: dict[str, object]) -> dict[str, object]:
            from policies.errors import PolicyUnavailable

            raise PolicyUnavailable("engine is down")

    gateway.decider.use_policy(Down())
    response = read(client, workspace.tokens["mei"], "patients", limit=1, purpose=SURGICAL_PURPOSE)
    assert response.status_code == 503
    assert "rows" not in response.text
    engine = create_state_engine(workspace.config.state_url)
    from sqlalchemy import text

    with engine.connect() as conn:
        last = orjson.loads(
            conn.execute(
                text("SELECT body FROM audit_events ORDER BY seq DESC LIMIT 1")
            ).scalar_one()
        )
    engine.dispose()
    assert last["action"] == "data.denied" and last["decision"] == "deny"


def test_suspension_by_status(client: TestClient, workspace: Workspace):
    engine = create_state_engine(workspace.config.state_url)
    set_status(engine, "lin", "suspended")
    engine.dispose()
    response = read(client, workspace.tokens["lin"], "studies", limit=1, purpose=ALUMNI_PURPOSE)
    assert response.status_code == 401
