"""Three real ``kiteline serve`` processes on one PostgreSQL schema, driven at once.

A row budget is never overspent, a revocation taken by one process holds on the
others from their next request, the audit log verifies with every served request in it
exactly once, and an alert is raised (and posted) once, not once per process.
"""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from gateway.cli.main import cli
from gateway.config import load_config
from gateway.demo.workspace import ALUMNI_PURPOSE, SURGICAL_PURPOSE, Workspace, seed_state
from gateway.state.database import create_state_engine
from tests.conftest import copy_workspace
from tests.serving import serve_gateway
from tests.webhooks import Receiver, point_rules_at, receiver

pytestmark = [pytest.mark.slow, pytest.mark.pg]

ARROW = "application/vnd.apache.arrow.stream"
PROCESSES = 3
ROW_BUDGET = 700
ROWS_PER_READ = 50


@pytest.fixture
def pg_workspace(demo_template: Workspace, tmp_path: Path, pg_schema_url: str) -> Workspace:
    ws = copy_workspace(demo_template, tmp_path / "ws")
    text = ws.config_path.read_text().replace("sqlite:///state.db", pg_schema_url)
    ws.config_path.write_text(text)
    tokens = seed_state(load_config(ws.config_path))
    return Workspace(ws.root, ws.config_path, tokens)


@pytest.fixture
def gateways(pg_workspace: Workspace, tmp_path: Path) -> Iterator[tuple[list[str], Receiver]]:
    with receiver() as hook, ExitStack() as stack:
        point_rules_at(pg_workspace.root, hook)
        servers = [
            stack.enter_context(
                serve_gateway(pg_workspace.config_path, tmp_path / f"serve-{i}.log")
            )
            for i in range(PROCESSES)
        ]
        yield servers, hook


def cli_as(ws: Workspace, who: str, *args: str) -> tuple[int, str]:
    result = CliRunner(env={"KITELINE_TOKEN": ws.tokens[who]}).invoke(
        cli, ["--config", str(ws.config_path), *args]
    )
    return result.exit_code, result.output


def grant_id(ws: Workspace, subject: str, dataset: str) -> int:
    engine = create_state_engine(ws.config.state_url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT id FROM grants WHERE subject = :s AND dataset = :d"),
                    {"s": subject, "d": dataset},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def events(ws: Workspace) -> list[dict[str, Any]]:
    import orjson

    engine = create_state_engine(ws.config.state_url)
    try:
        with engine.connect() as conn:
            bodies = conn.execute(sa.text("SELECT body FROM audit_events ORDER BY seq")).scalars()
            return [orjson.loads(b) for b in bodies]
    finally:
        engine.dispose()


def test_three_gateways_on_one_postgres_stay_consistent(
    pg_workspace: Workspace, gateways: tuple[list[str], Receiver]
):
    ws = pg_workspace
    servers, hook = gateways
    patients = grant_id(ws, "surgibot", "patients")
    code, out = cli_as(ws, "admin", "budgets", "set", str(patients), "--rows-total", "700")
    assert code == 0, out
    served: list[tuple[str, int]] = []  # (request id, status) of every read answered

    def read(server: str, who: str, body: dict[str, Any], dataset: str = "patients") -> int:
        response = httpx.post(
            f"{server}/v1/datasets/{dataset}/query",
            json=body,
            headers={"Authorization": f"Bearer {ws.tokens[who]}", "Accept": ARROW},
            timeout=60,
        )
        served.append((response.headers["x-request-id"], response.status_code))
        if response.status_code != 200:
            return -response.status_code
        return pa.ipc.open_stream(io.BytesIO(response.content)).read_all().num_rows

    # 1. A row budget shared by three processes, spent concurrently, is never overspent.
    body = {"columns": ["patient_id"], "limit": ROWS_PER_READ, "purpose": SURGICAL_PURPOSE}
    rounds = list(zip(range(30), itertools.cycle(servers), strict=False))
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda pair: read(pair[1], "mei", body), rounds))
    rows = sum(r for r in results if r > 0)
    refused = [r for r in results if r < 0]
    assert rows == ROW_BUDGET, results
    assert len(refused) == 30 - ROW_BUDGET // ROWS_PER_READ and set(refused) == {-429}

    # 2. A revocation taken by one process holds on the others from their next request.
    studies = {"columns": ["study_id"], "limit": 3, "purpose": "model debugging"}
    erin = grant_id(ws, "erin", "studies")
    assert [read(s, "erin", studies, "studies") for s in servers] == [3, 3, 3]
    revoked = httpx.post(
        f"{servers[0]}/v1/grants/{erin}/revoke",
        json={"reason": "project over"},
        headers={"Authorization": f"Bearer {ws.tokens['admin']}"},
    )
    assert revoked.status_code == 200, revoked.text
    assert [read(s, "erin", studies, "studies") for s in servers[1:]] == [-403, -403]

    # 3. Five denials spread over the three processes raise one alert, posted once.
    denied = {"columns": ["name"], "purpose": ALUMNI_PURPOSE}
    assert [read(servers[i % PROCESSES], "lin", denied) for i in range(5)] == [-403] * 5
    assert hook.wait_for(1, timeout_s=30)
    time.sleep(2.0)  # every process has had time to evaluate, were it to
    alerts = [e for e in events(ws) if e["action"].startswith("alert.")]
    assert [(a["rule"], a["subject"]) for a in alerts] == [("repeated-denials", "lin")]
    assert len(hook.deliveries) == 1 and hook.bad_signatures == 0

    # 4. The log verifies, and every served read is in it exactly once.
    code, out = cli_as(ws, "victor", "audit", "verify")
    assert code == 0 and out.startswith("ok:"), out
    # One decision per request (allowed, denied or refused over budget); an allowed
    # read's data.read follows its data.query and is linked to it.
    logged = [e for e in events(ws) if e["request_id"] and e["action"] != "data.read"]
    by_request: dict[str, int] = {}
    for event in logged:
        by_request[event["request_id"]] = by_request.get(event["request_id"], 0) + 1
    actions = {e["action"] for e in logged if e["request_id"] in dict(served)}
    assert actions <= {"data.query", "data.denied", "request.rejected"}, actions
    assert {rid: by_request.get(rid, 0) for rid, _ in served} == {rid: 1 for rid, _ in served}
    assert len(served) == 30 + 3 + 2 + 5


def test_serve_with_workers_shares_one_port_and_one_log(pg_workspace: Workspace, tmp_path: Path):
    ws = pg_workspace
    body = {"columns": ["patient_id"], "limit": 5, "purpose": SURGICAL_PURPOSE}
    headers = {"Authorization": f"Bearer {ws.tokens['mei']}"}
    log = tmp_path / "serve.log"
    with serve_gateway(ws.config_path, log, "--workers", "2") as url:
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(
                pool.map(
                    lambda _: (
                        httpx.post(
                            f"{url}/v1/datasets/patients/query",
                            json=body,
                            headers=headers,
                            timeout=60,
                        ).status_code
                    ),
                    range(12),
                )
            )
        assert statuses == [200] * 12
        # The second worker may still be starting when the first one answers.
        deadline = time.monotonic() + 60
        while log.read_text().count("Started server process") < 2:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        assert log.read_text().count("Started server process") == 2
    code, out = cli_as(ws, "victor", "audit", "verify")
    assert code == 0 and out.startswith("ok:"), out
    reads = [e for e in events(ws) if e["action"] == "data.read"]
    assert len(reads) == 12


def test_a_scrape_of_several_workers_counts_every_workers_requests(
    pg_workspace: Workspace, tmp_path: Path
):
    ws = pg_workspace
    body = {"columns": ["patient_id"], "limit": 5, "purpose": SURGICAL_PURPOSE}
    mei = {"Authorization": f"Bearer {ws.tokens['mei']}"}
    officer = {"Authorization": f"Bearer {ws.tokens['victor']}"}
    log = tmp_path / "serve.log"
    reads = 40
    with serve_gateway(ws.config_path, log, "--workers", "2") as url:
        deadline = time.monotonic() + 60
        while log.read_text().count("Started server process") < 2:
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(
                pool.map(
                    lambda _: (
                        httpx.post(
                            f"{url}/v1/datasets/patients/query", json=body, headers=mei, timeout=60
                        ).status_code
                    ),
                    range(reads),
                )
            )
        assert statuses == [200] * reads
        # Whichever worker answers a scrape, it reports the reads both served.
        for _ in range(4):
            scraped = httpx.get(f"{url}/metrics", headers=officer, timeout=30)
            assert scraped.status_code == 200, scraped.text
            found = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(scraped.text)
                for s in family.samples
            }
            route = (("method", "POST"), ("route", "/v1/datasets/{name}/query"), ("status", "200"))
            assert found[("kiteline_http_requests_total", route)] == reads
            released = (("dataset", "patients"), ("org", "surgibot"))
            assert found[("kiteline_rows_released_total", released)] == reads * 5
            # The gauges of the shared state come once, not once per worker.
            assert found[("kiteline_webhook_deliveries_pending", ())] == 0
