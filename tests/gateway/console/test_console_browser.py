"""The console's stories, in headless chromium against a real ``kiteline serve``."""

from __future__ import annotations

import re
import sqlite3
import time

import httpx
import pytest
from playwright.sync_api import Page, expect

from gateway.demo.workspace import SURGICAL_PURPOSE, Workspace
from tests.gateway.console.conftest import Shots, sign_in

pytestmark = pytest.mark.slow


def api(server: str, workspace: Workspace, who: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {workspace.tokens[who]}"}
    return httpx.Client(base_url=server, headers=headers, timeout=30)


def partner_read(server: str, workspace: Workspace, **extra: object) -> httpx.Response:
    body = {
        "columns": ["patient_id", "birth_date", "diagnosis"],
        "limit": 50,
        "purpose": SURGICAL_PURPOSE,
    }
    with api(server, workspace, "mei") as http:
        response = http.post("/v1/datasets/patients/query", json=body, **extra)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return response


def test_login_and_logout(server: str, workspace: Workspace, page: Page, shot: Shots):
    page.goto(f"{server}/console")
    expect(page).to_have_url(f"{server}/console/login")
    expect(page.get_by_role("heading", name="Sign in to the console")).to_be_visible()
    shot(page, "login")

    page.get_by_label("API token").fill("kl_notarealkey0_" + "x" * 43)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("invalid")

    sign_in(page, server, workspace.tokens["victor"])
    expect(page.get_by_role("heading", name="Welcome, victor")).to_be_visible()
    shot(page, "home")
    cookie = next(c for c in page.context.cookies() if c["name"] == "kl_console")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/console"
    # The session cookie is opaque: it is not the API token.
    assert workspace.tokens["victor"] not in cookie["value"]

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{server}/console/login")
    page.goto(f"{server}/console/audit")
    expect(page).to_have_url(f"{server}/console/login")

    with api(server, workspace, "victor") as http:
        actions = [
            e["action"] for e in http.get("/v1/audit/events?action=console.*").json()["events"]
        ]
    assert actions[:2] == ["console.logout", "console.login"]


def test_a_form_without_the_session_csrf_token_is_refused(
    server: str, workspace: Workspace, page: Page, shot: Shots
):
    sign_in(page, server, workspace.tokens["admin"])
    page.goto(f"{server}/console/principals")
    row = page.get_by_role("row").filter(has_text="carol")
    row.locator("input[name=csrf]").evaluate("input => { input.value = 'forged' }")
    row.get_by_placeholder("reason").fill("testing a forged form")
    row.get_by_role("button", name="Suspend").click()
    expect(page.get_by_role("alert")).to_contain_text("CSRF token is missing or wrong")
    assert page.title().startswith("Access denied")
    shot(page, "refused")

    # A cross-site post carries no token at all; it is refused the same way.
    forged = page.context.request.post(
        f"{server}/console/principals/carol/suspend", form={"reason": "cross-site"}
    )
    assert forged.status == 403
    with api(server, workspace, "carol") as http:
        assert http.get("/v1/me").json()["status"] == "active"


@pytest.mark.parametrize("who", ["mei", "lin"])
def test_partner_and_alumni_tokens_get_no_console(
    server: str, workspace: Workspace, page: Page, shot: Shots, who: str
):
    sign_in(page, server, workspace.tokens[who])
    expect(page.get_by_role("alert")).to_contain_text("console.use")
    assert not [c for c in page.context.cookies() if c["name"] == "kl_console"]
    shot(page, who)
    page.goto(f"{server}/console/audit")
    expect(page).to_have_url(f"{server}/console/login")


def test_officer_finds_an_event_whose_proof_verifies_until_the_row_is_edited(
    server: str, workspace: Workspace, page: Page, shot: Shots
):
    seq = int(partner_read(server, workspace).headers["X-Kiteline-Audit-Seq"])
    sign_in(page, server, workspace.tokens["victor"])
    page.get_by_role("navigation").get_by_role("link", name="Audit").click()
    # htmx, shipped in the package, is loaded under the Content-Security-Policy.
    assert page.evaluate("typeof htmx === 'object' && htmx.version") == "2.0.11"
    page.get_by_label("Actor").fill("mei")
    page.get_by_label("Action (e.g. grant.*)").fill("data.query")
    page.get_by_role("button", name="Search").click()
    results = page.locator("#results tbody tr")
    expect(results).to_have_count(1)
    expect(page).to_have_url(re.compile(r"actor=mei"))
    # htmx keeps no copy of audit pages in the browser's storage for its history.
    stored = "[sessionStorage.getItem('htmx-history-cache'), localStorage.length]"
    assert page.evaluate(stored) == [None, 0]
    shot(page, "explorer")

    results.get_by_role("link", name=str(seq)).click()
    expect(page.get_by_role("heading", name=f"Audit event {seq}")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Verified")
    expect(page.locator("pre.body")).to_contain_text('"actor": "mei"')
    shot(page, "event-verified")

    with sqlite3.connect(workspace.root / "state.db") as db:
        edited = db.execute(
            'UPDATE audit_events SET body = replace(body, \'"actor":"mei"\', \'"actor":"sam"\')'
            " WHERE seq = ?",
            (seq,),
        ).rowcount
    assert edited == 1
    page.reload()
    expect(page.get_by_role("alert")).to_contain_text("NOT verified")
    expect(page.locator("pre.body")).to_contain_text('"actor": "sam"')
    shot(page, "event-edited")

    with api(server, workspace, "victor") as http:
        views = http.get("/v1/audit/events?action=audit.view").json()["events"]
    # Each view of the event was itself recorded.
    assert [e["event_seq"] for e in views] == [seq, seq]
    assert {e["actor"] for e in views} == {"victor"}


def test_custodian_approves_a_request_with_a_reason(
    server: str, workspace: Workspace, page: Page, shot: Shots
):
    with api(server, workspace, "erin") as http:
        response = http.post(
            "/v1/grants",
            json={
                "dataset": "annotations",
                "profile": "pseudonymized",
                "purpose": "标注质量复核 (label quality review)",
                "days": 30,
            },
        )
    assert response.status_code == 201, response.text
    grant_id = response.json()["id"]

    sign_in(page, server, workspace.tokens["alice"])
    expect(page.locator(".badge")).to_have_text("1")
    page.get_by_role("navigation").get_by_role("link", name=re.compile("Requests")).click()
    request = page.get_by_role("region", name=re.compile(f"Grant {grant_id}"))
    expect(request.locator(".approvals")).to_have_text("0 of 1")
    expect(request).to_contain_text("no conflict")
    expect(request).to_contain_text("标注质量复核")
    shot(page, "pending")
    request.get_by_label("Reason (recorded)").fill("reviewed with the labels team")
    request.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text(f"Grant {grant_id} approved")
    expect(page.get_by_role("status")).to_contain_text("active")
    expect(page.locator(".badge")).to_have_count(0)
    shot(page, "approved")

    with api(server, workspace, "erin") as http:
        grant = http.get(f"/v1/grants/{grant_id}").json()
    assert grant["status"] == "active"
    assert grant["approved_by"][0]["name"] == "alice"
    approved = next(h for h in grant["history"] if h["action"] == "approved")
    assert approved["reason"] == "reviewed with the labels team"


def test_admin_offboards_and_the_next_api_call_is_refused(
    server: str, workspace: Workspace, page: Page, shot: Shots
):
    with api(server, workspace, "erin") as http:
        assert http.get("/v1/me").status_code == 200
        key_id = workspace.tokens["erin"].split("_")[1]
    sign_in(page, server, workspace.tokens["admin"])
    page.get_by_role("navigation").get_by_role("link", name="Principals").click()
    expect(page.get_by_role("row").filter(has_text="erin").locator(".keys")).to_have_text("1")
    shot(page, "principals")
    page.get_by_role("row").filter(has_text="erin").get_by_role("link", name="Offboard…").click()
    expect(page.get_by_role("heading", name="Offboard erin?")).to_be_visible()
    consequences = page.locator("ul.consequences")
    expect(consequences).to_contain_text("revoke grants: 1")
    expect(consequences).to_contain_text(f"revoke API keys: {key_id}")
    shot(page, "offboard-confirm")
    page.get_by_label("Reason (recorded)").fill("left the company")
    page.get_by_role("button", name="Offboard erin").click()
    expect(page.get_by_role("heading", name="erin was offboarded")).to_be_visible()
    shot(page, "offboarded")
    page.get_by_role("navigation").get_by_role("link", name="Principals").click()
    erin = page.get_by_role("row").filter(has_text="erin")
    expect(erin).to_contain_text("alumni")
    expect(erin.locator(".keys")).to_have_text("0")

    with api(server, workspace, "erin") as http:
        assert http.get("/v1/me").status_code == 401


def test_officer_pages_tail_alerts_trace_access_and_charts(
    server: str, workspace: Workspace, page: Page, shot: Shots
):
    leaked = partner_read(server, workspace, headers={"Accept": "text/csv"}).text
    sign_in(page, server, workspace.tokens["victor"])

    page.get_by_role("navigation").get_by_role("link", name="Live tail").click()
    expect(page.locator("#tail-status")).to_have_text("live")
    with api(server, workspace, "sam") as http:
        http.get("/v1/datasets")
    expect(page.locator("#tail tr").filter(has_text="sam").first).to_be_visible()
    shot(page, "tail")

    # Six refused reads in a minute raise the repeated-denials alert.
    with api(server, workspace, "mei") as http:
        for _ in range(6):
            body = {"columns": ["patient_id", "name"], "limit": 5, "purpose": SURGICAL_PURPOSE}
            assert http.post("/v1/datasets/patients/query", json=body).status_code == 403
    deadline = time.monotonic() + 20
    page.goto(f"{server}/console/alerts")
    while not page.locator("tbody tr form").count() and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    alert_row = page.locator("tbody tr").filter(has=page.locator("form")).first
    expect(alert_row).to_contain_text("alert.repeated_denials")
    alert_row.get_by_role("textbox").fill("called surgibot: a misconfigured notebook")
    alert_row.get_by_role("button", name="Acknowledge").click()
    expect(page.locator("tbody")).to_contain_text("victor: called surgibot")
    shot(page, "alerts")

    page.get_by_role("navigation").get_by_role("link", name="Leak trace").click()
    page.get_by_label("Pasted extract (CSV)").fill(leaked)
    page.get_by_role("button", name="Trace").click()
    expect(page.get_by_role("status")).to_contain_text("attributed to org:surgibot")
    shot(page, "trace")

    page.get_by_role("navigation").get_by_role("link", name="Who can see what").click()
    page.get_by_label("Dataset").select_option("patients")
    page.get_by_label("Principal").fill("mei")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("main")).to_contain_text("org:surgibot (mei)")
    readable = page.get_by_role("row").filter(has_text="patients").last
    expect(readable).to_contain_text("yes")
    expect(readable).to_contain_text(SURGICAL_PURPOSE)
    expect(page.get_by_role("row").filter(has_text="customers").last).to_contain_text("no")
    shot(page, "access")

    page.get_by_role("navigation").get_by_role("link", name="Charts").click()
    expect(page.locator("svg.chart")).to_have_count(5)
    expect(page.locator("svg.chart").first).to_contain_text("surgibot")
    expect(page.locator("svg.chart").last).to_contain_text("3 org:surgibot patients")
    shot(page, "charts")

    page.get_by_role("navigation").get_by_role("link", name="Checkpoints").click()
    expect(page.get_by_role("status").first).to_contain_text("Signed checkpoint")
    shot(page, "checkpoints")

    page.get_by_role("navigation").get_by_role("link", name="Grants").click()
    expect(page.locator("tbody tr")).to_have_count(5)
    page.get_by_role("link", name="3", exact=True).click()
    expect(page.get_by_role("heading", name="Grant 3")).to_be_visible()
    shot(page, "grant")
