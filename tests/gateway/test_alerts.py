"""Every shipped alert rule fires once from a real event and reaches a real webhook.

A real ``kiteline serve`` process runs the demo with its shipped ``alerts.yaml``; a
receiver on loopback checks every delivery's Standard Webhooks signature. The receiver
is down at first: the alert waits in the state database and arrives on a retry.
"""

from __future__ import annotations

import io
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import yaml
from click.testing import CliRunner

from gateway.auditing.alerts import backoff_s
from gateway.cli.main import cli
from gateway.demo.workspace import ALERT_RULES, ALUMNI_PURPOSE, SURGICAL_PURPOSE, Workspace
from tests.gateway.test_api import audit_rows
from tests.serving import serve_gateway
from tests.webhooks import point_rules_at, receiver

pytestmark = pytest.mark.slow

ARROW = "application/vnd.apache.arrow.stream"


def until(check: Any, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def deliveries(ws: Workspace) -> list[tuple[int, int, str | None, str | None]]:
    with sqlite3.connect(ws.root / "state.db") as conn:
        return conn.execute(
            "SELECT seq, attempts, delivered_at, last_error FROM webhook_deliveries ORDER BY id"
        ).fetchall()


def cli_as(ws: Workspace, who: str, *args: str) -> str:
    result = CliRunner(env={"KITELINE_TOKEN": ws.tokens[who]}).invoke(
        cli, ["--config", str(ws.config_path), *args]
    )
    assert result.exit_code == 0, result.output
    return result.output


def shipped_rules() -> set[str]:
    return {rule["name"] for rule in yaml.safe_load(ALERT_RULES)["rules"]}


# How often each shipped rule fires in the story below: once per triggering event (zed
# requests two grants on the way to the break-glass).
EXPECTED = Counter(
    {"repeated-denials": 1, "row-volume": 1, "trace-hit": 1, "break-glass": 1, "grant-requested": 2}
)


def test_backoff_doubles_up_to_the_ceiling():
    assert [backoff_s(n, 10) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_every_shipped_rule_fires_once_and_reaches_a_signed_webhook(
    workspace: Workspace, tmp_path: Path
):
    with receiver() as hook, httpx.Client(timeout=60) as http:
        point_rules_at(workspace.root, hook)
        hook.refuse = True  # the receiver is down when the first alert is raised
        with serve_gateway(workspace.config_path, tmp_path / "serve.log") as url:

            def call(who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
                headers = {"Authorization": f"Bearer {workspace.tokens[who]}"}
                headers.update(kwargs.pop("headers", {}))
                return http.request(method, url + path, headers=headers, **kwargs)

            # repeated-denials: lin asks five times for a column no grant shows.
            for _ in range(5):
                denied = call(
                    "lin",
                    "POST",
                    "/v1/datasets/patients/query",
                    json={"columns": ["name"], "purpose": ALUMNI_PURPOSE},
                )
                assert denied.status_code == 403
            # Kept in the state database while the receiver is down, then retried.
            until(lambda: hook.refused >= 1)
            [(_seq, _attempts, delivered, _error)] = until(lambda: deliveries(workspace))
            assert delivered is None
            until(lambda: deliveries(workspace)[0][1] >= 1)
            assert deliveries(workspace)[0][3] == "status 503"
            hook.refuse = False
            assert hook.wait_for(1)
            until(lambda: deliveries(workspace)[0][2] is not None)  # marked delivered

            # row-volume: mei's usual two rows, then five thousand.
            read = {"columns": ["patient_id", "diagnosis"], "purpose": SURGICAL_PURPOSE}
            for _ in range(5):
                ok = call("mei", "POST", "/v1/datasets/patients/query", json={**read, "limit": 2})
                assert ok.status_code == 200
            bulk = call(
                "mei",
                "POST",
                "/v1/datasets/patients/query",
                json={**read, "limit": 5000},
                headers={"Accept": ARROW},
            )
            assert bulk.status_code == 200
            table = pa.ipc.open_stream(io.BytesIO(bulk.content)).read_all()
            assert table.num_rows >= 1000

            # trace-hit: twenty of those rows turn up in a leak; the officer traces them.
            leak = io.BytesIO()
            pacsv.write_csv(table.slice(0, 20), leak)
            traced = call(
                "victor",
                "POST",
                "/v1/trace?filename=leak.csv",
                content=leak.getvalue(),
                headers={"Content-Type": "text/csv"},
            )
            assert traced.status_code == 200 and traced.json()["attributed"]

            # break-glass: zed holds imaging and gets crm through a separation exception.
            cli_as(workspace, "admin", "principals", "add", "zed", "--kind", "employee")
            workspace.tokens["zed"] = cli_as(workspace, "admin", "keys", "issue", "zed").split()[0]
            imaging = call(
                "zed",
                "POST",
                "/v1/grants",
                json={"dataset": "patients", "profile": "anonymized", "days": 10},
            ).json()
            approve = {"reason": "ok"}
            call("alice", "POST", f"/v1/grants/{imaging['id']}/approve", json=approve)
            crm = call(
                "zed",
                "POST",
                "/v1/grants",
                json={
                    "dataset": "customers",
                    "profile": "anonymized",
                    "days": 10,
                    "break_glass_hours": 4,
                },
            ).json()
            call("carol", "POST", f"/v1/grants/{crm['id']}/approve", json=approve)
            glass = {"reason": "incident 42"}
            call("admin", "POST", f"/v1/grants/{crm['id']}/break-glass", json=glass)
            done = call("victor", "POST", f"/v1/grants/{crm['id']}/break-glass", json=glass)
            assert done.json()["status"] == "active"

            assert hook.wait_for(EXPECTED.total()), hook.actions()
            time.sleep(1.0)  # nothing more arrives: each alert is delivered once
    fired = [e for e in audit_rows(workspace) if str(e["action"]).startswith("alert.")]
    assert set(EXPECTED) == shipped_rules()  # a new shipped rule needs its event above
    assert sorted(str(e["rule"]) for e in fired) == sorted(EXPECTED.elements())
    assert sorted(str(d["data"]["rule"]) for d in hook.deliveries) == sorted(EXPECTED.elements())
    assert hook.bad_signatures == 0 and len(set(hook.ids)) == len(hook.ids) == EXPECTED.total()
    by_rule = {d["data"]["rule"]: d for d in hook.deliveries}
    assert by_rule["repeated-denials"]["data"]["subject"] == "lin"
    assert by_rule["row-volume"]["data"]["subject"] == "mei"
    assert by_rule["trace-hit"]["data"]["matched_action"] == "trace.hit"
    assert by_rule["break-glass"]["data"]["matched_action"] == "grant.break_glass"
    assert by_rule["grant-requested"]["data"]["subject"] == "zed"
    assert all(d["type"] == d["data"]["action"] for d in hook.deliveries)
    until(lambda: all(row[2] is not None for row in deliveries(workspace)))


def test_a_webhook_without_a_secret_is_refused(workspace: Workspace):
    rules = workspace.root / "alerts.yaml"
    rules.write_text(
        rules.read_text().replace("webhooks: []", "webhooks:\n  - url: http://127.0.0.1:9/x\n")
    )
    from gateway.auditing.trail import AuditTrail

    with pytest.raises(Exception, match="secret"):
        AuditTrail.from_config(workspace.config, None)  # type: ignore[arg-type]


def test_json_bodies_are_what_the_signature_covers():
    # Sanity of the receiver itself: a tampered body fails verification.
    from audit import SignatureInvalid, secret_key, signed_headers, verify_delivery
    from tests.webhooks import new_secret

    key = secret_key(new_secret())
    body = orjson.dumps({"type": "alert.x"})
    headers = signed_headers(key, "msg_1", body)
    verify_delivery(key, headers, body)
    with pytest.raises(SignatureInvalid):
        verify_delivery(key, headers, body + b" ")
    with pytest.raises(SignatureInvalid):
        verify_delivery(key, headers, body, now=time.time() + 3600)


def test_an_unreadable_webhook_secret_stops_the_gateway_not_the_cli(workspace: Workspace):
    rules = workspace.root / "alerts.yaml"
    rules.write_text(
        rules.read_text().replace(
            "webhooks: []",
            "webhooks:\n  - url: http://127.0.0.1:9/x\n"
            "    secret: env:KITELINE_TEST_UNSET_SECRET\n",
        )
    )
    from gateway.config import ConfigError
    from tests.conftest import client_for

    with pytest.raises(ConfigError, match="KITELINE_TEST_UNSET_SECRET"), client_for(workspace):
        pass
    # An officer's search never needs the webhook secrets.
    assert "0 event(s)" in cli_as(workspace, "victor", "audit", "search", "--actor", "nobody")
