"""Every obligation on every data-releasing path, over HTTP against a real ``kiteline serve``.

One server per module: the principals and grants each test needs are seeded into the
state database before it starts, and each test only sends requests.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from gateway.access.grants import add_grant
from gateway.access.principals import add_principal, issue_key
from gateway.demo.workspace import ALUMNI_PURPOSE, Workspace
from gateway.state.database import create_state_engine
from tests.conftest import copy_workspace
from tests.gateway.serving import serving

pytestmark = pytest.mark.slow

MEN_ONLY = [{"column": "gender", "op": "=", "value": "男"}]
COUNT_BY_GENDER = {"group_by": ["gender"], "aggregates": [{"fn": "count"}], "epsilon": 1.0}


def seed_principal(
    engine: Engine, name: str, kind: str = "employee", org: str | None = None
) -> str:
    add_principal(engine, name=name, kind=kind, org=org)
    return issue_key(engine, name)[1]


@pytest.fixture(scope="module")
def world(demo_template: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    workspace = copy_workspace(demo_template, tmp_path_factory.mktemp("enforce") / "ws")
    config = workspace.config
    engine = create_state_engine(config.state_url)
    tokens = dict(workspace.tokens)
    try:
        tokens["rita"] = seed_principal(engine, "rita")
        add_grant(
            engine,
            config,
            subject_type="principal",
            subject="rita",
            dataset="patients",
            profile="anonymized",
            days=30,
            created_by="test",
            approvals=1,
            row_filter=MEN_ONLY,
        )
    finally:
        engine.dispose()
    with serving(workspace.config_path) as url:
        yield {"url": url, "tokens": tokens, "workspace": workspace}


def http_for(world: dict, name: str) -> httpx.Client:
    return httpx.Client(
        base_url=world["url"],
        headers={"Authorization": f"Bearer {world['tokens'][name]}"},
        timeout=60,
    )


def query(world: dict, name: str, dataset: str, body: dict) -> httpx.Response:
    with http_for(world, name) as http:
        return http.post(f"/v1/datasets/{dataset}/query", json=body)


def test_a_row_read_obeys_the_grant_row_filter(world: dict):
    response = query(world, "rita", "patients", {"columns": ["gender"], "limit": 500})
    assert response.status_code == 200, response.text
    assert {row["gender"] for row in response.json()["rows"]} == {"男"}


def test_an_aggregate_obeys_the_grant_row_filter(world: dict):
    response = query(world, "rita", "patients", COUNT_BY_GENDER)
    assert response.status_code == 200, response.text
    assert {row["gender"] for row in response.json()["rows"]} == {"男"}


def test_an_aggregate_refuses_the_callers_own_filter_rather_than_dropping_it(world: dict):
    body = {
        **COUNT_BY_GENDER,
        "where": [{"column": "gender", "op": "=", "value": "女"}],
        "purpose": ALUMNI_PURPOSE,
    }
    response = query(world, "lin", "patients", body)
    assert response.status_code == 403, response.text
    assert response.json()["rule"] == "no filters under aggregate"


def test_read_events_name_their_module(world: dict):
    assert query(world, "rita", "patients", {"limit": 3}).status_code == 200
    with http_for(world, "victor") as http:
        found = http.get("/v1/audit/events", params={"module": "imaging", "action": "data.read"})
    assert found.status_code == 200, found.text
    events = found.json()["events"]
    assert events and all(e["module"] == "imaging" for e in events)
