"""The console's pages: login, the officers' audit pages, the custodians' requests and
the admins' principals. Handlers are plain functions (FastAPI runs them in its thread
pool) that call the gateway's services, as the API routes do."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from gateway.access import budgets
from gateway.access.permissions import ensure_role
from gateway.access.principals import caller_by_name, list_principals
from gateway.auditing.search import EventFilter, search
from gateway.errors import (
    AccessDenied,
    GatewayError,
    InvalidRequest,
    NotFound,
    Unauthenticated,
)
from gateway.http.console.charts import (
    approval_latency,
    bar_chart,
    bar_list,
    denial_rule,
    events_since,
    per_day,
)
from gateway.http.console.pages import (
    SECURITY_HEADERS,
    LoginRequired,
    Visit,
    awaiting,
    console_of,
    page,
    redirect,
    render,
    visit,
)
from gateway.http.console.proofs import check_event, checkpoint_status
from gateway.http.console.sessions import ABSOLUTE_S, COOKIE, LOGIN_COOKIE, same_secret
from gateway.http.routes.audit import _shown
from gateway.http.routes.deps import request_meta_of, service_of

router = APIRouter(prefix="/console", include_in_schema=False)

FormText = Annotated[str, Form(max_length=4096)]
Csrf = Annotated[str, Form(max_length=128)]
PAGE_SIZE = 50
TAIL_POLL_S = 1.0
TAIL_LIFETIME_S = 300.0
TAIL_START = 20
TAIL_MOST = 500
CHART_DAYS = 14
MAX_UPLOAD = 64 * 1024 * 1024


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


# -- login and logout --------------------------------------------------------------------


@router.get("/login")
@page
def login_form(request: Request) -> Response:
    if console_of(request).sessions.get(request.cookies.get(COOKIE)) is not None:
        return redirect("/console")
    nonce = secrets.token_urlsafe(32)
    response = render(request, console_of(request), "login.html", csrf=nonce, error=None)
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=600,
        path="/console/login",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.post("/login")
@page
def login(request: Request, token: FormText = "", csrf: Csrf = "") -> Response:
    console = console_of(request)
    gateway = service_of(request)
    meta = request_meta_of(request)
    if not same_secret(csrf, request.cookies.get(LOGIN_COOKIE)):
        raise AccessDenied("the login form's CSRF token is missing or wrong", rule="csrf")
    try:
        caller = gateway.authenticate(f"Bearer {token.strip()}", meta)
    except Unauthenticated:
        return render(
            request,
            console,
            "login.html",
            status_code=401,
            csrf=request.cookies.get(LOGIN_COOKIE),
            error="That token is invalid, revoked, or its principal is not active.",
        )
    try:
        ensure_role(caller, "console.use")
    except AccessDenied as refused:
        gateway.grants.record(
            "console.login", meta=meta, caller=caller, decision="deny", reasons=[refused.detail]
        )
        raise
    cookie, _ = console.sessions.open(token.strip())
    gateway.grants.record("console.login", meta=meta, caller=caller, decision="allow")
    response = redirect("/console")
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(ABSOLUTE_S),
        path="/console",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/console/login")
    return response


@router.post("/logout")
@page
def logout(request: Request, csrf: Csrf = "") -> Response:
    v = visit(request)
    v.check_csrf(csrf)
    v.console.sessions.close(request.cookies.get(COOKIE))
    v.gateway.grants.record("console.logout", meta=v.meta, caller=v.caller, decision="allow")
    response = redirect("/console/login")
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("")
@page
def home(request: Request) -> Response:
    v = visit(request)
    return v.render("home.html", title="Console")


# -- officers: the audit log ---------------------------------------------------------


@router.get("/audit")
@page
def audit_explorer(request: Request, cursor: str | None = None) -> Response:
    v = visit(request)
    params = {k: val for k, val in request.query_params.items() if k != "cursor"}
    where = EventFilter.parse(params)
    v.gateway.authorize_audit(
        v.caller, v.meta, "audit.search", record=True, filters=_shown(where), via="console"
    )
    events, next_cursor = search(v.trail.audit.engine, where, limit=PAGE_SIZE, cursor=cursor)
    query = "&".join(f"{k}={_q(val)}" for k, val in params.items() if val)
    return v.render(
        "audit.html",
        title="Audit explorer",
        events=events,
        filters=params,
        next_cursor=next_cursor,
        query=query,
        decisions=("", "allow", "deny", "reject", "error"),
    )


@router.get("/audit/{seq}")
@page
def audit_event(request: Request, seq: int) -> Response:
    v = visit(request)
    v.gateway.authorize_audit(
        v.caller, v.meta, "audit.view", record=True, event_seq=seq, via="console"
    )
    event = v.trail.audit.event(seq) if 0 < seq < 2**62 else None
    if event is None:
        raise NotFound(f"no audit event {seq}")
    check = check_event(v.trail, seq)
    body = orjson.dumps(event, option=orjson.OPT_INDENT_2).decode()
    return v.render("event.html", title=f"Event {seq}", event=event, body=body, check=check)


@router.get("/checkpoints")
@page
def checkpoints(request: Request) -> Response:
    v = visit(request)
    v.gateway.authorize_audit(v.caller, v.meta, "audit.checkpoints", record=True, via="console")
    section = v.gateway.config.gateway
    witness = v.gateway.config.resolve_path(section.witness_file) if section.witness_file else None
    status = checkpoint_status(v.trail, witness)
    return v.render("checkpoints.html", title="Checkpoints", status=status)


@router.get("/tail")
@page
def tail_page(request: Request) -> Response:
    v = visit(request)
    v.gateway.authorize_audit(v.caller, v.meta, "audit.tail")
    return v.render("tail.html", title="Live tail")


@router.get("/tail/events")
async def tail_events(request: Request) -> Response:
    """Server-sent events: each new audit event as one ``data:`` line of JSON."""
    try:
        v = await run_in_threadpool(visit, request)
        await run_in_threadpool(
            v.gateway.authorize_audit, v.caller, v.meta, "audit.tail", record=True, via="console"
        )
    except LoginRequired:
        return Response("not signed in", status_code=401, headers=SECURITY_HEADERS)
    except GatewayError as error:
        return Response(error.detail, status_code=error.status, headers=SECURITY_HEADERS)
    last = request.headers.get("last-event-id", "")

    async def stream() -> AsyncIterator[bytes]:
        after = int(last) if last.isdigit() else 0
        started = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - started < TAIL_LIFETIME_S:
            if await request.is_disconnected():
                return
            try:
                # Re-authenticated on every poll: a revoked session stops the stream.
                await run_in_threadpool(visit, request)
            except (LoginRequired, GatewayError):
                return
            for event in await run_in_threadpool(_newer, v.trail.audit.engine, after):
                after = event["seq"]
                data = orjson.dumps(_tail_row(event)).decode()
                yield f"id: {after}\ndata: {data}\n\n".encode()
            yield b": keep-alive\n\n"
            await asyncio.sleep(TAIL_POLL_S)

    headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _newer(engine: Engine, after: int) -> list[dict[str, Any]]:
    """Events after ``after``, oldest first: the last TAIL_START when the tail starts
    (``after`` is 0), else every newer one up to TAIL_MOST per poll."""
    if not after:
        events, _ = search(engine, EventFilter(), limit=TAIL_START)
        return events[::-1]
    found: list[dict[str, Any]] = []
    cursor = None
    while len(found) < TAIL_MOST:
        events, cursor = search(engine, EventFilter(), limit=100, cursor=cursor)
        fresh = [e for e in events if e["seq"] > after]
        found.extend(fresh)
        if len(fresh) < len(events) or cursor is None:
            break
    return found[::-1]


def _tail_row(event: dict[str, Any]) -> dict[str, Any]:
    keys = ("seq", "ts", "actor", "actor_kind", "actor_org", "action", "dataset", "decision")
    return {k: event.get(k) for k in keys}


@router.get("/alerts")
@page
def alerts(request: Request) -> Response:
    v = visit(request)
    v.gateway.authorize_audit(v.caller, v.meta, "audit.alerts", record=True, via="console")
    engine = v.trail.audit.engine
    raised, _ = search(engine, EventFilter(action="alert.*"), limit=200)
    acks, _ = search(engine, EventFilter(action="audit.alert_acknowledged"), limit=1000)
    acknowledged = {a.get("alert_seq"): a for a in acks}
    return v.render("alerts.html", title="Alerts", alerts=raised, acknowledged=acknowledged)


@router.post("/alerts/{seq}/acknowledge")
@page
def acknowledge(request: Request, seq: int, note: FormText = "", csrf: Csrf = "") -> Response:
    v = visit(request)
    v.check_csrf(csrf)
    if not note.strip():
        raise InvalidRequest("say what was done about the alert in the note")
    # Refused (and audited) before the log is read: a non-officer learns nothing of it.
    v.gateway.authorize_audit(v.caller, v.meta, "audit.alert_acknowledged")
    event = v.trail.audit.event(seq) if 0 < seq < 2**62 else None
    if event is None or not str(event.get("action", "")).startswith("alert."):
        raise NotFound(f"no alert {seq}")
    v.gateway.authorize_audit(
        v.caller, v.meta, "audit.alert_acknowledged", record=True, alert_seq=seq, note=note.strip()
    )
    return redirect("/console/alerts")


@router.get("/trace")
@page
def trace_form(request: Request) -> Response:
    v = visit(request)
    if v.caller.kind != "officer":
        raise AccessDenied("only security officers may trace leaked extracts")
    return v.render("trace.html", title="Leak trace", report=None)


@router.post("/trace")
@page
def trace(
    request: Request,
    csrf: Csrf = "",
    pasted: Annotated[str, Form(max_length=MAX_UPLOAD)] = "",
    extract: Annotated[UploadFile | None, File()] = None,
) -> Response:
    v = visit(request)
    v.check_csrf(csrf)
    if extract is not None and extract.filename:
        body, name, media = (
            extract.file.read(MAX_UPLOAD + 1),
            extract.filename,
            extract.content_type,
        )
    else:
        body, name, media = pasted.encode(), "pasted.csv", "text/csv"
    if not body:
        raise InvalidRequest("paste an extract or choose a file")
    report = v.gateway.trace(v.caller, body, name, media, v.meta)
    return v.render("trace.html", title="Leak trace", report=report)


@router.get("/access")
@page
def access(request: Request, dataset: str = "", principal: str = "") -> Response:
    v = visit(request)
    by_dataset = None
    by_principal: list[dict[str, Any]] = []
    if dataset:
        by_dataset = v.gateway.grants.access(v.caller, dataset, v.meta)
    if principal:
        # Explained under the purpose of the grant that would apply: a purpose-bound
        # grant allows nothing to a request stating no purpose.
        person = caller_by_name(v.gateway.engine, principal)
        held = [
            g
            for g in v.gateway.grants.list_grants(v.caller, "active")
            if person is not None and g["subject"] in person.subjects
        ]
        for name, spec in v.gateway.config.datasets.items():
            purposes = [
                g["purpose"]
                for g in held
                if g["module"] == spec.module and g["dataset"] in (None, name)
            ]
            body = {"principal": principal, "dataset": name, "purpose": (purposes or [None])[0]}
            by_principal.append(v.gateway.explain(v.caller, orjson.dumps(body), v.meta))
    return v.render(
        "access.html",
        title="Who can see what",
        datasets=sorted(v.gateway.config.datasets),
        dataset=dataset,
        principal=principal,
        by_dataset=by_dataset,
        by_principal=by_principal,
    )


@router.get("/charts")
@page
def charts_page(request: Request) -> Response:
    v = visit(request)
    v.gateway.authorize_audit(v.caller, v.meta, "audit.charts", record=True, via="console")
    engine = v.trail.audit.engine
    upto = v.trail.audit.head().size
    since = datetime.now(UTC) - timedelta(days=CHART_DAYS)
    reads = list(events_since(engine, EventFilter(action="data.read", since=since), upto=upto))
    denials = [
        {**e, "rule": denial_rule(e)}
        for e in events_since(engine, EventFilter(decision="deny", since=since), upto=upto)
    ]
    figures = [
        (
            bar_chart(
                per_day(reads, span=CHART_DAYS, group="actor_org"),
                title="Reads per day by org",
                unit="reads",
            ),
            "action=data.read",
        ),
        (
            bar_chart(
                per_day(reads, span=CHART_DAYS, group="actor_org", value="rows"),
                title="Rows released per day by org",
                unit="rows",
            ),
            "action=data.read",
        ),
        (
            bar_chart(
                per_day(denials, span=CHART_DAYS, group="rule"),
                title="Denials per day by rule (or action)",
                unit="denials",
            ),
            "decision=deny",
        ),
    ]
    requested = events_since(engine, EventFilter(action="grant.requested", since=since), upto=upto)
    activated = events_since(engine, EventFilter(action="grant.activated", since=since), upto=upto)
    figures.append(
        (
            bar_list(
                approval_latency(requested, activated),
                title="Approval latency (request to activation)",
                unit="h",
            ),
            "action=grant.activated",
        )
    )
    figures.append(
        (
            bar_list(_budget_use(v), title="Row budget used per active grant", unit="rows"),
            "action=data.read",
        )
    )
    return v.render("charts.html", title="Charts", figures=figures, days=CHART_DAYS)


def _budget_use(v: Visit) -> list[tuple[str, float, float | None]]:
    """Rows released in total per active grant, against its cap (grants without a
    total cap are left out: their budget is not tracked against anything)."""
    rows: list[tuple[str, float, float | None]] = []
    for grant in v.gateway.grants.list_grants(v.caller, "active"):
        limits = budgets.limits_for(v.gateway.engine, v.gateway.config, grant["id"])
        if limits.rows_total is None:
            continue
        charges = budgets.row_charges(grant["id"], limits, 0, budgets.today())
        left = budgets.remaining(v.gateway.engine, charges[1:])["rows in total"] or 0.0
        label = f"{grant['id']} {grant['subject']} {grant['dataset'] or grant['module']}"
        rows.append((label, limits.rows_total - left, float(limits.rows_total)))
    return rows


# -- custodians: requests and grants -------------------------------------------------------


@router.get("/requests")
@page
def requests_page(request: Request, done: str = "") -> Response:
    v = visit(request)
    pending = awaiting(v.gateway, v.caller)
    separation: dict[int, str | None] = {}
    config = v.gateway.config
    for grant in pending:
        conflict = v.gateway.grants.separation_conflict(grant["id"])
        separation[grant["id"]] = conflict.detail if conflict else None
    rules = {
        "max_modules": config.separation.max_modules_per_principal,
        "exclusive": [list(pair) for pair in config.separation.exclusive],
    }
    return v.render(
        "requests.html",
        title="Pending requests",
        requests=pending,
        separation=separation,
        rules=rules,
        done=done,
    )


@router.post("/requests/{grant_id}/{verdict}")
@page
def decide(
    request: Request, grant_id: int, verdict: str, reason: FormText = "", csrf: Csrf = ""
) -> Response:
    v = visit(request)
    v.check_csrf(csrf)
    if verdict not in ("approve", "deny"):
        raise NotFound(f"no action {verdict!r}")
    if not reason.strip():
        raise InvalidRequest("give a reason: it is recorded with the decision")
    act = v.gateway.grants.approve if verdict == "approve" else v.gateway.grants.deny
    grant = act(v.caller, grant_id, reason.strip(), v.meta)
    return redirect(f"/console/requests?done={verdict}d:{grant_id}:{grant['status']}")


@router.get("/grants")
@page
def grants_page(request: Request) -> Response:
    v = visit(request)
    grants = v.gateway.grants.list_grants(v.caller)
    now = datetime.now(UTC)
    soon = now + timedelta(days=14)
    # The sweep's rule: an active grant older than recertify_after_days needs its
    # custodians to confirm it (the sweep lists it to them, and audits the list).
    recertify_before = now - timedelta(days=v.gateway.config.grants.recertify_after_days)
    return v.render(
        "grants.html",
        title="Grants",
        grants=grants,
        recertify={
            g["id"]
            for g in grants
            if g["status"] == "active"
            and datetime.fromisoformat(g["activated_at"] or g["created_at"]) < recertify_before
        },
        expiring={
            g["id"]
            for g in grants
            if g["status"] == "active"
            and g["expires_at"]
            and datetime.fromisoformat(g["expires_at"]) < soon
        },
    )


@router.get("/grants/{grant_id}")
@page
def grant_page(request: Request, grant_id: int) -> Response:
    v = visit(request)
    grant = v.gateway.grants.show(v.caller, grant_id)
    return v.render("grant.html", title=f"Grant {grant_id}", grant=grant)


@router.post("/grants/{grant_id}/revoke")
@page
def revoke(request: Request, grant_id: int, reason: FormText = "", csrf: Csrf = "") -> Response:
    v = visit(request)
    v.check_csrf(csrf)
    if not reason.strip():
        raise InvalidRequest("give a reason: it is recorded with the revocation")
    v.gateway.grants.revoke(v.caller, grant_id, reason.strip(), v.meta)
    return redirect(f"/console/grants/{grant_id}")


# -- admins: principals --------------------------------------------------------------


@router.get("/principals")
@page
def principals_page(request: Request, done: str = "") -> Response:
    v = visit(request)
    ensure_role(v.caller, "principals.suspend")
    people = list_principals(v.gateway.engine)
    orgs: dict[str, dict[str, Any]] = {}
    for person in people:
        if person["org"]:
            org = orgs.setdefault(
                person["org"],
                {"name": person["org"], "status": person["org_status"], "members": []},
            )
            org["members"].append(person["name"])
    return v.render(
        "principals.html",
        title="Principals",
        principals=people,
        orgs=sorted(orgs.values(), key=lambda o: o["name"]),
        done=done,
    )


@router.post("/orgs/{org}/{verb}")
@page
def set_org_status(
    request: Request, org: str, verb: str, reason: FormText = "", csrf: Csrf = ""
) -> Response:
    v = visit(request)
    v.check_csrf(csrf)
    if verb not in ("suspend", "reinstate"):
        raise NotFound(f"no action {verb!r}")
    if not reason.strip():
        raise InvalidRequest("give a reason: it is recorded with the change")
    v.gateway.lifecycle.set_org_status(
        v.caller, org, suspend=verb == "suspend", reason=reason.strip(), meta=v.meta
    )
    return redirect(f"/console/principals?done={verb}:org {org}")


@router.get("/principals/{name}/offboard")
@page
def offboard_confirm(request: Request, name: str) -> Response:
    v = visit(request)
    preview = v.gateway.lifecycle.offboard_preview(v.caller, name)
    return v.render("offboard.html", title=f"Offboard {name}", preview=preview, result=None)


@router.post("/principals/{name}/offboard")
@page
def offboard(request: Request, name: str, reason: FormText = "", csrf: Csrf = "") -> Response:
    v = visit(request)
    v.check_csrf(csrf)
    if not reason.strip():
        raise InvalidRequest("give a reason: it is recorded with the offboarding")
    result = v.gateway.lifecycle.offboard(name, reason=reason.strip(), caller=v.caller, meta=v.meta)
    return v.render("offboard.html", title=f"Offboarded {name}", preview=None, result=result)


@router.post("/principals/{name}/{verb}")
@page
def set_status(
    request: Request, name: str, verb: str, reason: FormText = "", csrf: Csrf = ""
) -> Response:
    v = visit(request)
    v.check_csrf(csrf)
    if verb not in ("suspend", "reinstate"):
        raise NotFound(f"no action {verb!r}")
    if not reason.strip():
        raise InvalidRequest("give a reason: it is recorded with the change")
    v.gateway.lifecycle.set_principal_status(
        v.caller, name, suspend=verb == "suspend", reason=reason.strip(), meta=v.meta
    )
    return redirect(f"/console/principals?done={verb}:{name}")


def _q(value: str) -> str:
    return quote(value, safe="")


__all__ = ["router", "Visit"]
