"""Aggregate queries under the aggregate profile: noisy answers, budgets, refusals."""

from __future__ import annotations

import duckdb
import orjson
import pytest
from fastapi.testclient import TestClient

from gateway.demo.workspace import MARKET_PURPOSE, SURGICAL_PURPOSE, Workspace
from tests.conftest import bearer

BY_CITY = {
    "group_by": ["city"],
    "purpose": MARKET_PURPOSE,
    "aggregates": [{"fn": "count"}, {"fn": "avg", "column": "contract_value", "as": "avg"}],
}


def aggregate(
    client: TestClient, ws: Workspace, body: dict, who: str = "sam", dataset: str = "customers"
):
    return client.post(
        f"/v1/datasets/{dataset}/query", content=orjson.dumps(body), headers=bearer(ws, who)
    )


def test_sam_gets_noisy_aggregates_with_a_visible_budget(client: TestClient, workspace: Workspace):
    response = aggregate(client, workspace, BY_CITY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["profile"] == "aggregate" and body["epsilon"] == 1.0
    assert [c["name"] for c in body["columns"]] == ["city", "count", "avg"]
    assert len(body["rows"]) == 8
    assert response.headers["x-kiteline-epsilon-remaining"] == "9"
    assert response.headers["x-kiteline-org-epsilon-remaining"] == "9"
    second = aggregate(client, workspace, {**BY_CITY, "epsilon": 0.5})
    assert second.headers["x-kiteline-epsilon-remaining"] == "8.5"
    assert second.json()["rows"] != body["rows"]  # fresh noise every time


def test_exhausted_budget_is_a_429_problem_and_nothing_is_charged(
    client: TestClient, workspace: Workspace
):
    for _ in range(5):
        assert aggregate(client, workspace, {**BY_CITY, "epsilon": 2}).status_code == 200
    refused = aggregate(client, workspace, {**BY_CITY, "epsilon": 0.1})
    assert refused.status_code == 429
    problem = refused.json()
    assert problem["budget"] == "epsilon" and "exhausted" in problem["detail"]
    assert problem["remaining"] == pytest.approx(0)


@pytest.mark.parametrize(
    ("body", "status", "column", "rule"),
    [
        (
            {"group_by": ["contact_name"], "aggregates": [{"fn": "count"}]},
            403,
            "contact_name",
            "direct_identifier is not groupable",
        ),
        (
            {"group_by": ["customer_id"], "aggregates": [{"fn": "count"}]},
            403,
            "customer_id",
            "identifier is not groupable",
        ),
        (
            {"aggregates": [{"fn": "sum", "column": "customer_id"}]},
            403,
            "customer_id",
            "identifier count only",
        ),
        (
            {"aggregates": [{"fn": "count", "column": "contact_phone"}]},
            403,
            "contact_phone",
            "direct_identifier dropped",
        ),
        (
            {
                "where": [{"column": "city", "op": "=", "value": "北京"}],
                "aggregates": [{"fn": "count"}],
            },
            403,
            "city",
            "no filters under aggregate",
        ),
    ],
)
def test_refusals_name_the_column_and_rule(
    client: TestClient, workspace: Workspace, body: dict, status: int, column: str, rule: str
):
    response = aggregate(client, workspace, {**body, "purpose": MARKET_PURPOSE})
    assert response.status_code == status, response.text
    assert response.json()["column"] == column
    assert response.json()["rule"] == rule
    assert aggregate(client, workspace, BY_CITY).headers["x-kiteline-epsilon-remaining"] == "9"


def test_sum_without_bounds_is_refused(workspace: Workspace):
    text = workspace.config_path.read_text().replace(
        "contract_value: {class: sensitive, bounds: [0, 5000000]}",
        "contract_value: {class: sensitive}",
    )
    workspace.config_path.write_text(text)
    from tests.conftest import client_for

    with client_for(workspace) as fresh:
        response = aggregate(
            fresh,
            workspace,
            {"aggregates": [{"fn": "sum", "column": "contract_value"}], "purpose": MARKET_PURPOSE},
        )
    assert response.status_code == 400
    assert response.json()["column"] == "contract_value"
    assert response.json()["rule"] == "bounds required"


@pytest.mark.parametrize("fn", ["min", "max"])
def test_min_and_max_are_not_offered(client: TestClient, workspace: Workspace, fn: str):
    body = {"aggregates": [{"fn": fn, "column": "contract_value"}], "purpose": MARKET_PURPOSE}
    assert aggregate(client, workspace, body).status_code == 400


def test_partner_with_anonymized_grant_aggregates_at_the_aggregate_profile(
    client: TestClient, workspace: Workspace
):
    body = {"group_by": ["gender"], "aggregates": [{"fn": "count"}], "purpose": SURGICAL_PURPOSE}
    response = aggregate(client, workspace, body, who="mei", dataset="patients")
    assert response.status_code == 200, response.text
    assert {r["gender"] for r in response.json()["rows"]} == {"男", "女"}


def test_epsilon_above_the_per_query_maximum_is_refused(client: TestClient, workspace: Workspace):
    response = aggregate(client, workspace, {**BY_CITY, "epsilon": 5})
    assert response.status_code == 400 and response.json()["rule"] == "epsilon per query"


def test_a_count_of_every_row_counts_them(client: TestClient, workspace: Workspace):
    # No group and no column: the store is still read for its rows.
    ((rows,),) = duckdb.sql(
        f"SELECT count(*) FROM '{workspace.root / 'data' / 'crm' / 'customers.parquet'}'"
    ).fetchall()
    response = aggregate(
        client, workspace, {"aggregates": [{"fn": "count"}], "purpose": MARKET_PURPOSE}
    )
    assert response.status_code == 200, response.text
    (answer,) = response.json()["rows"]
    assert rows > 100 and abs(answer["count"] - rows) < 40
