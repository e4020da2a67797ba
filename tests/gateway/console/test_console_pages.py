"""The console in process: session expiry, cookies, CSP, refusals, the admin and grant pages."""

from __future__ import annotations

import re
import shutil

import httpx
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import text

from gateway.access.principals import revoke_key
from gateway.cli.main import cli
from gateway.config import Settings
from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from gateway.http.app import create_app
from gateway.http.console.pages import CSP
from gateway.http.console.tail import _newer
from gateway.http.console.sessions import SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_ends_after_its_idle_time_and_after_its_absolute_time():
    clock = Clock()
    store = SessionStore(idle_s=60, absolute_s=300, clock=clock)
    cookie, _ = store.open("kl_token")
    for _ in range(4):
        clock.now += 59
        assert store.get(cookie) is not None  # each visit restarts the idle clock
    clock.now += 61
    assert store.get(cookie) is None

    cookie, _ = store.open("kl_token")
    for _ in range(5):
        clock.now += 59
        assert store.get(cookie) is not None
    clock.now += 59
    assert store.get(cookie) is None  # 354 s after login: past the absolute limit


def test_a_closed_or_unknown_session_is_gone():
    store = SessionStore()
    cookie, session = store.open("kl_token")
    assert store.get(cookie) is session
    assert store.get(cookie + "x") is None
    store.close(cookie)
    assert store.get(cookie) is None


def login(client: TestClient, token: str) -> httpx.Response:
    form = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    return client.post(
        "/console/login", data={"token": token, "csrf": csrf.group(1)}, follow_redirects=False
    )


def test_the_session_cookie_is_secure_over_tls_and_pages_carry_a_strict_csp(
    workspace: Workspace,
):
    app = create_app(Settings(config=workspace.config_path))
    with TestClient(app, base_url="https://console.test") as client:
        response = login(client, workspace.tokens["victor"])
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        assert "kl_console=" in cookie
        for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/console"):
            assert attribute in cookie
        page = client.get("/console/audit")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == CSP
        assert "'unsafe-inline'" not in CSP
        assert page.headers["x-frame-options"] == "DENY"
        assert "<script>" not in page.text and " style=" not in page.text


def test_a_login_post_without_the_login_forms_token_is_refused(workspace: Workspace):
    app = create_app(Settings(config=workspace.config_path))
    with TestClient(app, base_url="http://console.test") as client:
        for csrf in ("", "guessed"):
            refused = client.post(
                "/console/login",
                data={"token": workspace.tokens["victor"], "csrf": csrf},
                follow_redirects=False,
            )
            assert refused.status_code == 403
            assert "kl_console=" not in refused.headers.get("set-cookie", "")


def test_a_revoked_key_ends_its_console_session_on_the_next_page(workspace: Workspace):
    app = create_app(Settings(config=workspace.config_path))
    with TestClient(app, base_url="http://console.test") as client:
        login(client, workspace.tokens["admin"])
        assert client.get("/console/principals").status_code == 200
        key_id = workspace.tokens["admin"].split("_")[1]
        revoke_key(app.state.gateway.engine, key_id)
        page = client.get("/console/principals", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == "/console/login"


def test_pages_refuse_what_the_api_refuses(workspace: Workspace):
    app = create_app(Settings(config=workspace.config_path))
    with TestClient(app, base_url="http://console.test") as client:
        login(client, workspace.tokens["alice"])
        # A custodian is no officer: the audit log and the principals stay closed.
        assert client.get("/console/audit").status_code == 403
        assert client.get("/console/principals").status_code == 403
        assert client.get("/console/requests").status_code == 200
    with TestClient(app, base_url="http://console.test") as client:
        refused = login(client, workspace.tokens["sam"])
        assert refused.status_code == 403
        assert "kl_console=" not in refused.headers.get("set-cookie", "")


def test_the_demo_prints_the_console_and_the_officer_token(tmp_path, demo_template: Workspace):
    shutil.copytree(demo_template.root, tmp_path / "ws")
    result = CliRunner().invoke(
        cli, ["demo", "--workspace", str(tmp_path / "ws"), "--port", "8799", "--no-serve"]
    )
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "console:" in line)
    assert "http://127.0.0.1:8799/console" in line
    assert demo_template.tokens["victor"] in line


def test_the_checkpoints_page_shows_a_witness_that_saw_more_than_the_log_signs(
    workspace: Workspace,
):
    config = workspace.config_path
    config.write_text(
        config.read_text().replace(
            "  key_dir: keys\n", "  key_dir: keys\n  witness_file: witness.jsonl\n"
        )
    )
    app = create_app(Settings(config=config))
    with TestClient(app, base_url="http://console.test") as client:
        login(client, workspace.tokens["victor"])
        checkpointer = app.state.audit_trail.checkpointer
        first = checkpointer.checkpoint()
        assert "only grew" in client.get("/console/checkpoints").text
        last = checkpointer.checkpoint()
        assert first is not None and last is not None
        assert last.checkpoint.tree_size > first.checkpoint.tree_size
        page = client.get("/console/checkpoints").text
        assert f"Signed checkpoint</strong> of {last.checkpoint.tree_size} events" in page
        assert "only grew" in page
        # The state database rolled back to an older checkpoint: the witness shows it.
        with app.state.gateway.engine.begin() as conn:
            conn.execute(
                text("DELETE FROM audit_checkpoints WHERE tree_size > :size"),
                {"size": first.checkpoint.tree_size},
            )
        page = client.get("/console/checkpoints").text
        assert "Witness disagrees" in page
        assert "truncated or rolled back" in page


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_an_admin_suspends_and_reinstates_a_partner_org(workspace: Workspace):
    app = create_app(Settings(config=workspace.config_path))
    with TestClient(app, base_url="http://console.test") as client:
        login(client, workspace.tokens["admin"])
        csrf = csrf_of(client.get("/console/principals").text)
        done = client.post(
            "/console/orgs/surgibot/suspend", data={"reason": "contract paused", "csrf": csrf}
        )
        assert done.status_code == 200
        assert "org surgibot: suspend done" in done.text
        mei = {"Authorization": f"Bearer {workspace.tokens['mei']}"}
        query = {"columns": ["patient_id"], "limit": 1, "purpose": SURGICAL_PURPOSE}
        refused = client.post("/v1/datasets/patients/query", json=query, headers=mei)
        assert refused.status_code == 403 and "suspended" in refused.json()["detail"]
        client.post("/console/orgs/surgibot/reinstate", data={"reason": "resumed", "csrf": csrf})
        assert (
            client.post("/v1/datasets/patients/query", json=query, headers=mei).status_code == 200
        )


def test_the_grants_page_flags_grants_due_for_recertification(workspace: Workspace):
    app = create_app(Settings(config=workspace.config_path))
    with app.state.gateway.engine.begin() as conn:
        conn.execute(text("UPDATE grants SET activated_at = '2020-01-01 00:00:00' WHERE id = 1"))
    with TestClient(app, base_url="http://console.test") as client:
        login(client, workspace.tokens["victor"])
        rows = client.get("/console/grants").text.split("<tr>")
        due = [row for row in rows if "re-certification due" in row]
        assert len(due) == 1 and "/console/grants/1" in due[0]


def test_the_tail_sends_every_new_event_in_order_even_past_one_search_page(
    workspace: Workspace,
):
    app = create_app(Settings(config=workspace.config_path))
    with TestClient(app):
        audit = app.state.gateway.audit
        first = audit.append("test.marker", decision="allow")
        appended = [audit.append("test.burst", decision="allow") for _ in range(150)]
        assert [e["seq"] for e in _newer(audit.engine, first)] == appended
        assert [e["seq"] for e in _newer(audit.engine, 0)] == appended[-20:]
