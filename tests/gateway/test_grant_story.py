"""The story, end to end against a real `kiteline serve`: request, two approvals (one
from the CLI), a raw read, offboarding, and a governed alumni interface afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import httpx
import pytest
from click.testing import CliRunner

from gateway.access.principals import issue_key
from gateway.cli.main import cli
from gateway.demo.workspace import Workspace
from gateway.state.database import create_state_engine
from tests.gateway.test_serve import server  # noqa: F401  (the real server fixture)

pytestmark = pytest.mark.slow

PURPOSE = "imaging model maintenance"


@pytest.fixture
def clients() -> Iterator[Callable[[str, str], httpx.Client]]:
    with contextlib.ExitStack() as stack:

        def open_(url: str, token: str) -> httpx.Client:
            return stack.enter_context(
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            )

        yield open_


def kiteline(url: str, token: str, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env={"KITELINE_URL": url, "KITELINE_TOKEN": token})
    assert result.exit_code == 0, result.output
    return result.output


def test_erin_from_raw_to_alumni(
    server: str,  # noqa: F811
    workspace: Workspace,
    clients: Callable[[str, str], httpx.Client],
):
    as_ = clients
    tokens = workspace.tokens
    erin, bob = as_(server, tokens["erin"]), as_(server, tokens["bob"])
    raw_query = {"columns": ["patient_id", "name"], "limit": 3, "profile": "raw"}

    grant = erin.post(
        "/v1/grants",
        json={
            "dataset": "patients",
            "profile": "raw",
            "days": 10,
            "purpose": "debugging a label shift",
        },
    )
    assert grant.status_code == 201, grant.text
    grant_id = grant.json()["id"]
    out = kiteline(
        server,
        tokens["alice"],
        "grants",
        "approve",
        str(grant_id),
        "--reason",
        "needed for the label shift",
    )
    assert "requested: 1/2 approvals" in out
    raw_query["purpose"] = "debugging a label shift"
    assert erin.post("/v1/datasets/patients/query", json=raw_query).status_code == 403

    assert (
        bob.post(f"/v1/grants/{grant_id}/approve", json={"reason": "second custodian"}).json()[
            "status"
        ]
        == "active"
    )
    response = erin.post("/v1/datasets/patients/query", json=raw_query)
    assert response.status_code == 200 and response.json()["profile"] == "raw"
    assert not response.json()["rows"][0]["patient_id"].startswith("p1_")
    shown = kiteline(server, tokens["erin"], "grants", "show", str(grant_id))
    assert "alice" in shown and "bob" in shown and "activated" in shown

    out = kiteline(server, tokens["admin"], "principals", "offboard", "erin")
    assert "erin is now alumni" in out
    assert erin.get("/v1/me").status_code == 401

    engine = create_state_engine(workspace.config.state_url)
    try:
        alumni = as_(server, issue_key(engine, "erin")[1])
    finally:
        engine.dispose()
    anonymized = {"columns": ["patient_id", "birth_date"], "limit": 3, "purpose": PURPOSE}
    assert alumni.get("/v1/me").json()["kind"] == "alumni"
    assert alumni.post("/v1/datasets/patients/query", json=anonymized).status_code == 403
    refused = alumni.post(
        "/v1/grants", json={"dataset": "patients", "profile": "raw", "days": 10, "purpose": PURPOSE}
    )
    assert refused.status_code == 400 and refused.json()["field"] == "profile"
    grant = alumni.post(
        "/v1/grants",
        json={"dataset": "patients", "profile": "anonymized", "days": 30, "purpose": PURPOSE},
    ).json()
    assert alumni.post("/v1/datasets/patients/query", json=anonymized).status_code == 403
    out = kiteline(server, tokens["bob"], "grants", "list", "--status", "requested")
    assert f"{grant['id']} " in out and "user:erin" in out
    kiteline(server, tokens["bob"], "grants", "approve", str(grant["id"]), "--reason", "alumni")

    response = alumni.post("/v1/datasets/patients/query", json=anonymized)
    assert response.status_code == 200 and response.json()["profile"] == "anonymized"
    assert response.json()["rows"][0]["patient_id"].startswith("p1_")
    assert (
        alumni.post(
            "/v1/datasets/patients/query", json={**anonymized, "profile": "raw"}
        ).status_code
        == 403
    )
    assert (
        alumni.post(
            "/v1/datasets/patients/query", json={**anonymized, "columns": ["name"]}
        ).status_code
        == 403
    )
    access = kiteline(server, tokens["victor"], "access", "patients")
    assert "user:erin" in access and "anonymized" in access
