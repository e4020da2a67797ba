"""Every route x every role x no, garbage and revoked tokens, from the route inventory.

A route added without a row here fails ``test_every_route_has_an_expected_answer``;
each row is the exact status each caller gets for one representative request (the
request itself is in ``inventory.py``), so a wrong allow shows up as a changed code.
Each route runs against a fresh workspace: the answers do not depend on test order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.access.principals import issue_key, revoke_key
from gateway.demo.workspace import Workspace
from tests.conftest import client_for, copy_workspace
from tests.gateway.test_api import audit_rows
from tests.security.inventory import ROLES, inventory, request_for

GARBAGE = "Bearer kl_aaaaaaaaaaaa_" + "A" * 43
TOKENLESS = ("none", "garbage", "revoked")
CALLERS = ROLES + TOKENLESS

# (method, path): statuses for mei (partner), lin (alumni), alice (employee, imaging
# custodian), victor (officer), admin; then no token, a garbage token, a revoked key.
PUBLIC = (200,) * 8
EXPECTED: dict[tuple[str, str], tuple[int, ...]] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/v1/audit/public-key"): PUBLIC,
    # The HR hook is signed, not authenticated by token; unconfigured in the demo.
    ("POST", "/v1/hooks/hr"): (404,) * 8,
    ("GET", "/metrics"): (403, 403, 403, 200, 403),
    ("POST", "/v1/datasets/{name}/query"): (200, 403, 403, 403, 403),
    ("GET", "/v1/me"): (200, 200, 200, 200, 200),
    ("GET", "/v1/datasets"): (200, 200, 200, 200, 200),
    ("GET", "/v1/datasets/{name}"): (200, 200, 403, 403, 403),
    ("POST", "/v1/decisions/explain"): (200, 200, 200, 200, 200),
    ("POST", "/v1/trace"): (403, 403, 403, 200, 403),
    ("POST", "/v1/grants"): (201, 201, 201, 400, 400),
    ("GET", "/v1/grants"): (200, 200, 200, 200, 200),
    ("GET", "/v1/grants/{grant_id}"): (404, 404, 200, 200, 200),
    ("POST", "/v1/grants/{grant_id}/approve"): (403, 403, 409, 403, 403),
    ("POST", "/v1/grants/{grant_id}/deny"): (403, 403, 409, 403, 403),
    ("POST", "/v1/grants/{grant_id}/revoke"): (403, 403, 200, 409, 409),
    ("POST", "/v1/grants/{grant_id}/break-glass"): (403, 403, 403, 409, 409),
    ("POST", "/v1/grants/sweep"): (403, 403, 403, 200, 200),
    ("GET", "/v1/datasets/{name}/access"): (403, 403, 200, 200, 403),
    ("GET", "/v1/principals/{ref}/access"): (403, 403, 403, 200, 403),
    ("POST", "/v1/principals/{ref}/offboard"): (403, 403, 403, 403, 200),
    ("POST", "/v1/principals/{ref}/suspend"): (403, 403, 403, 403, 200),
    ("POST", "/v1/principals/{ref}/reinstate"): (403, 403, 403, 403, 409),
    ("POST", "/v1/orgs/{org}/suspend"): (403, 403, 403, 403, 200),
    ("POST", "/v1/orgs/{org}/reinstate"): (403, 403, 403, 403, 409),
    ("GET", "/v1/audit/checkpoints/latest"): (200, 200, 200, 200, 200),
    ("GET", "/v1/audit/events/{seq}/proof"): (403, 403, 403, 200, 403),
    ("GET", "/v1/audit/consistency"): (200, 200, 200, 200, 200),
    ("GET", "/v1/audit/events"): (403, 403, 403, 200, 403),
    ("GET", "/v1/alerts"): (403, 403, 403, 200, 403),
    ("GET", "/v1/audit/export"): (403, 403, 403, 200, 403),
    ("POST", "/v1/audit/hash"): (403, 403, 403, 200, 403),
    # The console authenticates by its session cookie, never by a bearer token: without
    # a session every page sends the caller to the login form, whatever the token.
    ("GET", "/console/login"): (200,) * 8,
    ("POST", "/console/login"): (403,) * 8,  # no CSRF cookie
    ("GET", "/console/tail/events"): (401,) * 8,
    **{
        route: (303,) * 8
        for route in [
            ("POST", "/console/logout"),
            ("GET", "/console"),
            ("GET", "/console/audit"),
            ("GET", "/console/audit/{seq}"),
            ("GET", "/console/checkpoints"),
            ("GET", "/console/tail"),
            ("GET", "/console/alerts"),
            ("POST", "/console/alerts/{seq}/acknowledge"),
            ("GET", "/console/trace"),
            ("POST", "/console/trace"),
            ("GET", "/console/access"),
            ("GET", "/console/charts"),
            ("GET", "/console/requests"),
            ("POST", "/console/requests/{grant_id}/{verdict}"),
            ("GET", "/console/grants"),
            ("GET", "/console/grants/{grant_id}"),
            ("POST", "/console/grants/{grant_id}/revoke"),
            ("GET", "/console/principals"),
            ("POST", "/console/orgs/{org}/{verb}"),
            ("GET", "/console/principals/{name}/offboard"),
            ("POST", "/console/principals/{name}/offboard"),
            ("POST", "/console/principals/{name}/{verb}"),
        ]
    },
}


def expected(route: tuple[str, str]) -> tuple[int, ...]:
    row = EXPECTED[route]
    return row if len(row) == len(CALLERS) else row + (401,) * len(TOKENLESS)


@pytest.fixture
def fresh(demo_template: Workspace, tmp_path: Path) -> Iterator[tuple[TestClient, Workspace]]:
    workspace = copy_workspace(demo_template, tmp_path / "ws")
    with client_for(workspace) as client:
        yield client, workspace


def authorization(client: TestClient, workspace: Workspace, who: str) -> dict[str, str]:
    if who == "none":
        return {}
    if who == "garbage":
        return {"Authorization": GARBAGE}
    if who == "revoked":
        engine = client.app.state.gateway.engine  # type: ignore[attr-defined]
        key_id, token = issue_key(engine, "mei")
        revoke_key(engine, key_id)
        return {"Authorization": f"Bearer {token}"}
    return {"Authorization": f"Bearer {workspace.tokens[who]}"}


def test_every_route_has_an_expected_answer(client: TestClient):
    assert sorted(inventory(client.app)) == sorted(EXPECTED)  # type: ignore[arg-type]


@pytest.mark.parametrize("route", sorted(EXPECTED), ids=" ".join)
def test_each_caller_gets_exactly_its_answer_and_each_answer_is_audited(
    fresh: tuple[TestClient, Workspace], route: tuple[str, str]
):
    client, workspace = fresh
    got = []
    unaudited = []
    for who in CALLERS:
        kwargs = request_for(*route)
        headers = {**(kwargs.pop("headers", None) or {}), **authorization(client, workspace, who)}
        response = client.request(headers=headers, **kwargs)
        got.append(response.status_code)
        if route[1].startswith("/v1/"):
            request_id = response.headers["x-request-id"]
            if not any(e.get("request_id") == request_id for e in audit_rows(workspace)):
                unaudited.append(who)
    assert dict(zip(CALLERS, got, strict=True)) == dict(zip(CALLERS, expected(route), strict=True))
    assert not unaudited, f"answers with no audit event: {unaudited}"
