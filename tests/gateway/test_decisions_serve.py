"""Listings, explain and explicit denies against a real ``kiteline serve``, over HTTP.

One server for the module, on a copy of the demo with a few additions that make the
decisions interesting: an org whose grants break the separation rules, a filtered and
windowed grant, a grant held by a suspended principal, and a closed window.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from gateway.access.budgets import set_limits
from gateway.access.grants import add_grant
from gateway.access.policy_files import POLICY_DIR
from gateway.access.principals import add_principal, issue_key
from gateway.cli.main import cli
from gateway.demo.workspace import (
    ALUMNI_PURPOSE,
    MARKET_PURPOSE,
    PRINCIPALS,
    SURGICAL_PURPOSE,
    Workspace,
)
from gateway.state.database import create_state_engine
from tests.conftest import copy_workspace
from tests.serving import free_port, running, serve_command

pytestmark = pytest.mark.slow

ALWAYS = {
    "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    "start": "00:00",
    "end": "24:00",
    "timezone": "UTC",
}
NEVER = {"days": [], "start": "00:00", "end": "24:00", "timezone": "UTC"}
NODULES = [{"column": "label", "op": "=", "value": "nodule"}]


@dataclass
class Scene:
    workspace: Workspace
    url: str
    grants: dict[str, int]

    def http(self, who: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.workspace.tokens[who]}"},
            timeout=60,
        )


@pytest.fixture(scope="module")
def scene(demo_template: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    workspace = copy_workspace(demo_template, tmp_path_factory.mktemp("decide") / "ws")
    # The workspace reads its policies from its own copy, so a test can change them.
    policies = workspace.root / "policies"
    policies.mkdir()
    for path in POLICY_DIR.iterdir():
        if path.suffix in (".rego", ".conf"):
            (policies / path.name).write_text(path.read_text())
    text = workspace.config_path.read_text()
    workspace.config_path.write_text(
        text.replace("  engine: embedded", "  engine: embedded\n  directory: policies")
    )
    config = workspace.config
    engine = create_state_engine(config.state_url)
    grants = {}
    try:

        def grant(key: str, **fields: Any) -> None:
            grants[key] = add_grant(
                engine, config, created_by="test", approvals=1, days=30, **fields
            )

        # surgibot also holds crm now: imaging and crm may never be held together, so
        # every read of its members is refused, whatever the grants table says.
        grant(
            "surgibot-crm",
            subject_type="org",
            subject="surgibot",
            dataset="customers",
            profile="aggregate",
            purpose=MARKET_PURPOSE,
        )
        grant(
            "bob-annotations",
            subject_type="principal",
            subject="bob",
            dataset="annotations",
            profile="pseudonymized",
            row_filter=NODULES,
            window=ALWAYS,
        )
        grant(
            "dan-customers",
            subject_type="principal",
            subject="dan",
            dataset="customers",
            profile="pseudonymized",
            window=NEVER,
        )
        add_principal(engine, name="zed", kind="employee", status="suspended")
        grant(
            "zed-studies",
            subject_type="principal",
            subject="zed",
            dataset="studies",
            profile="pseudonymized",
        )
        # A second partner org with one member, for the budget and replay tests.
        add_principal(engine, name="pia", kind="partner", org="orbit")
        workspace.tokens["pia"] = issue_key(engine, "pia")[1]
        grant(
            "orbit-customers",
            subject_type="org",
            subject="orbit",
            dataset="customers",
            profile="aggregate",
            purpose=MARKET_PURPOSE,
        )
    finally:
        engine.dispose()
    port = free_port()
    command = serve_command(workspace.config_path, port)
    with running(command, port, workspace.root / "serve.log") as url:
        yield Scene(workspace, url, grants)


DEMO_NAMES = [str(p["name"]) for p in PRINCIPALS] + ["zed", "pia"]


def _explain(officer: httpx.Client, **body: Any) -> dict[str, Any]:
    response = officer.post("/v1/decisions/explain", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _read_body(profile: str | None, purpose: str | None) -> dict[str, Any]:
    if profile == "aggregate":
        return {"group_by": [], "aggregates": [{"fn": "count"}], "purpose": purpose}
    return {"limit": 1, "purpose": purpose}


# -- finding 6: the listing is the decision engine's answer -----------------------------


def test_access_listing_equals_the_decision_engine_for_every_demo_principal(scene: Scene):
    config = scene.workspace.config
    with scene.http("victor") as officer:
        for dataset in config.datasets:
            response = officer.get(f"/v1/datasets/{dataset}/access")
            assert response.status_code == 200, response.text
            listing = response.json()["access"]
            listed = {(e["principal"], e["purpose"]): e for e in listing}
            assert len(listed) == len(listing)
            for name in DEMO_NAMES:
                mine = {p: e for (who, p), e in listed.items() if who == name}
                if not mine:
                    # Not listed: the engine refuses them this dataset, whatever they state.
                    assert _explain(officer, principal=name, dataset=dataset)["allowed"] is False
                    continue
                for purpose, entry in mine.items():
                    answer = _explain(officer, principal=name, dataset=dataset, purpose=purpose)
                    assert entry["allowed"] is answer["decision"]["allowed"], (name, dataset)
                    assert entry["reasons"] == answer["decision"]["reasons"], (name, dataset)
                    obligations = answer["obligations"] or {}
                    assert entry["profile"] == obligations.get("profile")
                    assert entry["grant_id"] == obligations.get("grant_id")
                    assert entry["row_filters"] == obligations.get("row_filters", [])
                    assert entry["window"] == obligations.get("window")
                    _check_against_a_real_read(scene, name, dataset, entry)
        # The cases the grants table used to misstate.
        patients = {
            e["principal"]: e for e in officer.get("/v1/datasets/patients/access").json()["access"]
        }
        mei = patients["mei"]
        assert mei["allowed"] is False and mei["profile"] is None
        assert mei["via"] == ["org:surgibot"]
        assert any("may not be held together" in r for r in mei["reasons"])
        assert patients["lin"]["allowed"] is True and patients["lin"]["profile"] == "anonymized"
        annotations = officer.get("/v1/datasets/annotations/access").json()["access"]
        bob = next(e for e in annotations if e["principal"] == "bob")
        assert bob["allowed"] is True and bob["row_filters"] == NODULES
        assert bob["window"] == ALWAYS
        customers = officer.get("/v1/datasets/customers/access").json()["access"]
        dan = next(e for e in customers if e["principal"] == "dan")
        assert dan["allowed"] is False and any("may be used only" in r for r in dan["reasons"])
        studies = officer.get("/v1/datasets/studies/access").json()["access"]
        zed = next(e for e in studies if e["principal"] == "zed")
        assert zed["allowed"] is False and any("suspended" in r for r in zed["reasons"])
    with scene.http("erin") as erin:
        assert erin.get("/v1/datasets/patients/access").status_code == 403


def _check_against_a_real_read(scene: Scene, name: str, dataset: str, entry: dict[str, Any]):
    if name not in scene.workspace.tokens or entry["status"] != "active":
        return
    with scene.http(name) as http:
        response = http.post(
            f"/v1/datasets/{dataset}/query",
            json=_read_body(entry["profile"], entry["purpose"]),
        )
    if entry["allowed"]:
        assert response.status_code == 200, (name, dataset, response.text)
        assert response.headers["X-Kiteline-Profile"] == entry["profile"]
    else:
        assert response.status_code == 403, (name, dataset, response.text)
        assert response.json()["detail"] in entry["reasons"]


def test_principal_access_view_is_for_officers_and_audited(scene: Scene):
    with scene.http("victor") as officer:
        mei = officer.get("/v1/principals/mei/access")
        assert mei.status_code == 200, mei.text
        entries = mei.json()["access"]
        assert {e["dataset"] for e in entries} == {"patients", "studies", "customers"}
        assert not any(e["allowed"] for e in entries)
        lin = officer.get("/v1/principals/lin/access").json()
        readable = {
            (e["dataset"], e["profile"], e["purpose"]) for e in lin["access"] if e["allowed"]
        }
        assert readable == {
            ("patients", "anonymized", ALUMNI_PURPOSE),
            ("studies", "anonymized", ALUMNI_PURPOSE),
        }
        assert officer.get("/v1/principals/ghost/access").status_code == 404
        events = officer.get(
            "/v1/audit/events", params={"action": "access.principal", "actor": "victor"}
        ).json()["events"]
        assert {e.get("subject") for e in events} >= {"mei", "lin"}
    env = {"KITELINE_URL": scene.url, "KITELINE_TOKEN": scene.workspace.tokens["victor"]}
    result = CliRunner(env=env).invoke(cli, ["access", "--principal", "lin"])
    assert result.exit_code == 0, result.output
    assert "principal lin (alumni, active)" in result.output and "anonymized" in result.output
    result = CliRunner(env=env).invoke(cli, ["access", "patients"])
    assert result.exit_code == 0, result.output
    assert "refused: " in result.output and "mei" in result.output
    with scene.http("alice") as custodian:
        refused = custodian.get("/v1/principals/mei/access")
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("application/problem+json")


# -- finding 7: casbin's explicit deny in the real request path -------------------------


def test_an_explicit_casbin_deny_overrides_an_allow_line_in_a_real_request(scene: Scene):
    with scene.http("mei") as mei:
        refused = mei.post(
            "/v1/datasets/patients/query", json={"limit": 1, "purpose": SURGICAL_PURPOSE}
        )
    assert refused.status_code == 403
    with scene.http("victor") as officer:
        answer = _explain(officer, principal="mei", dataset="patients", purpose=SURGICAL_PURPOSE)
        casbin = answer["engines"]["casbin"]
        # surgibot's grant on patients is an allow line; the derived deny line wins.
        assert casbin["allowed"] is False
        assert casbin["matched"] == ["org:surgibot, *, *, read, deny"]
        # A suspended org: its deny line refuses a member, then reinstating lifts it.
        with scene.http("admin") as admin:
            reason = {"reason": "contract review"}
            assert admin.post("/v1/orgs/stellar/suspend", json=reason).status_code == 200
            with scene.http("sam") as sam:
                body = {"aggregates": [{"fn": "count"}], "purpose": MARKET_PURPOSE}
                assert sam.post("/v1/datasets/customers/query", json=body).status_code == 403
                suspended = _explain(
                    officer, principal="sam", dataset="customers", purpose=MARKET_PURPOSE
                )["engines"]["casbin"]
                assert suspended == {"allowed": False, "matched": ["org:stellar, *, *, read, deny"]}
                assert admin.post("/v1/orgs/stellar/reinstate", json=reason).status_code == 200
                assert sam.post("/v1/datasets/customers/query", json=body).status_code == 200
        allowed = _explain(officer, principal="sam", dataset="customers", purpose=MARKET_PURPOSE)
        assert allowed["engines"]["casbin"] == {
            "allowed": True,
            "matched": ["org:stellar, crm, customers, read, allow"],
        }


# -- finding 8: explain the full query, and replay a past decision ----------------------


def _read_and_explain(
    scene: Scene, who: str, dataset: str, body: dict[str, Any]
) -> tuple[httpx.Response, dict[str, Any]]:
    with scene.http(who) as http:
        explained = http.post("/v1/decisions/explain", json={"dataset": dataset, **body})
        assert explained.status_code == 200, explained.text
        read = http.post(f"/v1/datasets/{dataset}/query", json=body)
    return read, explained.json()


def test_explain_answers_what_the_full_query_would_get(scene: Scene):
    columns = {"columns": ["patient_id", "birth_date", "diagnosis"], "limit": 5}
    read, answer = _read_and_explain(
        scene, "lin", "patients", {**columns, "purpose": ALUMNI_PURPOSE}
    )
    assert read.status_code == 200 and answer["allowed"] is True and answer["refusals"] == []
    obligations = answer["obligations"]
    assert obligations["profile"] == read.headers["X-Kiteline-Profile"] == "anonymized"
    assert obligations["k"] == 5 and obligations["limit"] == 5
    assert [c["name"] for c in obligations["columns"]] == columns["columns"]
    assert obligations["columns"][1]["treatment"] == "generalize"

    # A hidden column and a filter on a generalized column: the read names the first,
    # explain names both, in the read's own words.
    bad = {
        "columns": ["patient_id", "name"],
        "where": [{"column": "birth_date", "op": ">", "value": "1980-01-01"}],
        "purpose": ALUMNI_PURPOSE,
    }
    read, answer = _read_and_explain(scene, "lin", "patients", bad)
    assert read.status_code == 403 and answer["allowed"] is False
    kinds = {r["kind"]: r for r in answer["refusals"]}
    assert set(kinds) == {"column", "filter"}
    assert read.json()["detail"] == answer["refusals"][0]["detail"]
    assert kinds["column"]["column"] == "name" and kinds["filter"]["column"] == "birth_date"
    assert kinds["filter"]["detail"].startswith("where[0]")

    # The grant's row filter and window are obligations of the read.
    read, answer = _read_and_explain(scene, "bob", "annotations", {"limit": 3})
    assert read.status_code == 200 and answer["allowed"] is True
    assert answer["obligations"]["row_filters"] == NODULES
    assert answer["obligations"]["window"] == ALWAYS
    assert {row["label"] for row in read.json()["rows"]} == {"nodule"}

    # A closed window and a separation refusal come from the decision.
    read, answer = _read_and_explain(scene, "dan", "customers", {"limit": 1})
    assert read.status_code == 403 and answer["allowed"] is False
    assert [r["kind"] for r in answer["refusals"]] == ["decision"]
    assert any("may be used only" in r["detail"] for r in answer["refusals"])
    read, answer = _read_and_explain(scene, "mei", "studies", {"purpose": SURGICAL_PURPOSE})
    assert read.status_code == 403
    assert any("may not be held together" in r for r in answer["reasons"])

    # Aggregates: grouping, epsilon, and the budget that cannot pay.
    grouped = {
        "group_by": ["city"],
        "aggregates": [{"fn": "count"}],
        "epsilon": 0.5,
        "purpose": MARKET_PURPOSE,
    }
    read, answer = _read_and_explain(scene, "pia", "customers", grouped)
    assert read.status_code == 200 and answer["allowed"] is True
    assert answer["obligations"]["profile"] == "aggregate"
    assert answer["obligations"]["epsilon"] == 0.5
    bad = {
        "group_by": ["contact_name"],
        "aggregates": [{"fn": "sum", "column": "hospital"}],
        "purpose": MARKET_PURPOSE,
    }
    read, answer = _read_and_explain(scene, "pia", "customers", bad)
    assert read.status_code in (400, 403)
    assert {r["kind"] for r in answer["refusals"]} == {"group_by", "aggregate"}
    assert read.json()["detail"] == answer["refusals"][0]["detail"]
    # Leave the grant 0.1 of epsilon: the next query, at 0.5, cannot be paid.
    left = answer["obligations"]["budgets"]["epsilon"]
    spent = scene.workspace.config.budgets.epsilon_per_grant - left
    engine = create_state_engine(scene.workspace.config.state_url)
    try:
        set_limits(engine, scene.grants["orbit-customers"], epsilon=spent + 0.1)
    finally:
        engine.dispose()
    read, answer = _read_and_explain(scene, "pia", "customers", grouped)
    assert read.status_code == 429 and answer["allowed"] is False
    assert [(r["kind"], r["budget"]) for r in answer["refusals"]] == [("budget", "epsilon")]
    assert answer["obligations"]["budgets"]["epsilon"] == pytest.approx(0.1)
    assert read.json()["detail"] == answer["refusals"][0]["detail"]


def test_explain_event_replays_a_past_decision_under_its_policy_version(scene: Scene):
    with scene.http("sam") as sam:
        body = {"aggregates": [{"fn": "count"}], "purpose": MARKET_PURPOSE}
        allowed = sam.post("/v1/datasets/customers/query", json=body)
        assert allowed.status_code == 200
        seq = int(allowed.headers["X-Kiteline-Audit-Seq"])
    with scene.http("mei") as mei:
        assert (
            mei.post("/v1/datasets/studies/query", json={"purpose": SURGICAL_PURPOSE}).status_code
            == 403
        )
    with scene.http("victor") as officer:
        denied = officer.get(
            "/v1/audit/events", params={"action": "data.denied", "actor": "mei", "limit": 1}
        ).json()["events"][0]["seq"]
        before = officer.post("/v1/decisions/explain", json={"event": seq}).json()
        assert before["matches"] is True and before["replayed"]["allowed"] is True
        old_version = before["policy_version"]
        refusal = officer.post("/v1/decisions/explain", json={"event": denied}).json()
        assert refusal["matches"] is True and refusal["replayed"]["allowed"] is False
        assert any("may not be held together" in r for r in refusal["replayed"]["reasons"])

        # A new policy refuses sam; the old decision still replays as it was made.
        access = scene.workspace.root / "policies" / "access.rego"
        original = access.read_text()
        anchor = "\tdeny_separation(req, best),\n"
        lockdown = scene.workspace.root / "policies" / "lockdown.rego"
        try:
            access.write_text(original.replace(anchor, anchor + "\tdeny_lockdown(req, best),\n"))
            lockdown.write_text(
                "package kiteline.access\n\nimport rego.v1\n\n"
                "deny_lockdown(req, _) := {msg |\n"
                '\treq.name == "sam"\n'
                '\tmsg := "lockdown: sam\'s reads are suspended"\n}\n'
            )
            args = ["--config", str(scene.workspace.config_path), "policy", "reload"]
            # Reloading the policy is an admin's act, audited as the key's principal.
            admin = CliRunner(env={"KITELINE_TOKEN": scene.workspace.tokens["admin"]})
            assert admin.invoke(cli, args).exit_code == 0
            with scene.http("sam") as sam:
                now_refused = sam.post("/v1/datasets/customers/query", json=body)
            assert now_refused.status_code == 403 and "lockdown" in now_refused.text
            after = officer.post("/v1/decisions/explain", json={"event": seq}).json()
            assert after["policy_version"] == old_version != after["current_policy_version"]
            assert after["matches"] is True and after["replayed"]["allowed"] is True
        finally:
            access.write_text(original)
            lockdown.unlink(missing_ok=True)
            assert admin.invoke(cli, args).exit_code == 0

        # The command line asks the gateway (as the officer whose token it holds).
        env = {"KITELINE_URL": scene.url, "KITELINE_TOKEN": scene.workspace.tokens["victor"]}
        result = CliRunner(env=env).invoke(cli, ["explain", "--event", str(denied)])
        assert result.exit_code == 0, result.output
        assert "replayed: DENY" in result.output and "matches the record" in result.output
        missing = officer.post("/v1/decisions/explain", json={"event": 10**9})
        assert missing.status_code == 404
    with scene.http("sam") as sam:
        assert sam.post("/v1/decisions/explain", json={"event": seq}).status_code == 403
    assert os.environ.get("KITELINE_TOKEN") is None
