"""Operators' signals from a real ``kiteline serve``: metrics worth alerting on, JSON logs
with the request id, and no secret in any log line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from gateway.cli.main import cli
from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from tests.serving import serve_gateway

pytestmark = pytest.mark.slow

LITERAL = "Zq-filter-literal-7731"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def test_metrics_json_logs_and_no_secret_in_them(workspace: Workspace, tmp_path: Path):
    runner = CliRunner(env={"KITELINE_TOKEN": workspace.tokens["admin"]})
    # A daily row budget on surgibot's patients grant, so budget_remaining has a value.
    result = runner.invoke(
        cli,
        ["--config", str(workspace.config_path), "budgets", "set", "3", "--rows-per-day", "900"],
    )
    assert result.exit_code == 0, result.output
    log = tmp_path / "serve.log"
    env = {"KITELINE_LOG_FORMAT": "json"}
    mei = {"Authorization": f"Bearer {workspace.tokens['mei']}"}
    with (
        serve_gateway(workspace.config_path, log, env=env) as url,
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        read = {"columns": ["patient_id", "diagnosis"], "limit": 40, "purpose": SURGICAL_PURPOSE}
        ok = http.post("/v1/datasets/patients/query", json=read, headers=mei)
        assert ok.status_code == 200
        filtered = {**read, "filters": [{"column": "diagnosis", "op": "=", "value": LITERAL}]}
        http.post("/v1/datasets/patients/query", json=filtered, headers=mei)
        denied = http.post(
            "/v1/datasets/patients/query", json={**read, "columns": ["name"]}, headers=mei
        )
        assert denied.status_code == 403
        bad = http.get(
            "/v1/datasets", headers={"Authorization": f"Bearer {workspace.tokens['mei']}x"}
        )
        assert bad.status_code == 401
        assert http.get("/docs").status_code == 200
        # /metrics needs an officer's or a service principal's key.
        officer = {"Authorization": f"Bearer {workspace.tokens['victor']}"}
        found = samples(http.get("/metrics", headers=officer).text)

    assert value(found, "kiteline_decisions_total", result="allow", rule="grant") >= 1
    assert sum(v for (n, labels), v in found.items() if n == "kiteline_decisions_total" and (
        ("result", "deny") in labels)) >= 1  # fmt: skip
    assert value(found, "kiteline_rows_released_total", org="surgibot", dataset="patients") >= 40
    assert value(found, "kiteline_bytes_released_total", org="surgibot", dataset="patients") > 0
    assert value(found, "kiteline_audit_append_seconds_count") >= 4
    assert value(found, "kiteline_store_seconds_count", kind="local", op="scan") >= 1
    assert value(found, "kiteline_live_reads") == 0
    assert value(found, "kiteline_audit_backlog") == 0
    assert value(found, "kiteline_webhook_deliveries_pending") == 0
    assert value(found, "kiteline_audit_checkpoint_age_seconds") >= -1
    left = value(found, "kiteline_budget_remaining", grant="3", budget="rows today")
    assert left <= 900 - 40
    routes = {dict(labels).get("route") for (n, labels) in found if n.startswith("kiteline_http")}
    assert "/docs" in routes and "/v1/datasets/{name}/query" in routes

    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    refused = [r for r in records if r.get("status") == 403]
    assert refused and refused[0]["request_id"] == denied.headers["x-request-id"]
    assert refused[0]["route"] == "/v1/datasets/{name}/query"
    text = log.read_text()
    for token in workspace.tokens.values():
        assert token.split("_", 2)[2] not in text
    assert LITERAL not in text
    assert not re.search(r"kl_[a-z0-9]{12}_[A-Za-z0-9_-]{43}", text)
