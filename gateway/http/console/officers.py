"""The officers' pages: the audit log, its checkpoints and alerts, leak tracing, who
can see what, and the charts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from gateway.access import budgets
from gateway.auditing.search import EventFilter, search, shown_filters
from gateway.errors import AccessDenied, InvalidRequest, NotFound
from gateway.http.console.charts import (
    approval_latency,
    bar_chart,
    bar_list,
    denial_rule,
    events_since,
    per_day,
)
from gateway.http.console.forms import Csrf, FormText
from gateway.http.console.pages import Visit, page, redirect, visit
from gateway.http.console.proofs import check_event, checkpoint_status

router = APIRouter(prefix="/console", include_in_schema=False)
PAGE_SIZE = 50
CHART_DAYS = 14
MAX_UPLOAD = 64 * 1024 * 1024


@router.get("/audit")
@page
def audit_explorer(request: Request, cursor: str | None = None) -> Response:
    v = visit(request)
    params = {k: val for k, val in request.query_params.items() if k != "cursor"}
    where = EventFilter.parse(params)
    v.review("audit.search", filters=shown_filters(where))
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
    v.review("audit.view", event_seq=seq)
    event = _event(v, seq)
    if event is None:
        raise NotFound(f"no audit event {seq}")
    check = check_event(v.trail, seq)
    body = orjson.dumps(event, option=orjson.OPT_INDENT_2).decode()
    return v.render("event.html", title=f"Event {seq}", event=event, body=body, check=check)


@router.get("/checkpoints")
@page
def checkpoints(request: Request) -> Response:
    v = visit(request)
    v.review("audit.checkpoints")
    section = v.gateway.config.gateway
    witness = v.gateway.config.resolve_path(section.witness_file) if section.witness_file else None
    status = checkpoint_status(v.trail, witness)
    return v.render("checkpoints.html", title="Checkpoints", status=status)


@router.get("/alerts")
@page
def alerts(request: Request) -> Response:
    v = visit(request)
    v.review("audit.alerts")
    engine = v.trail.audit.engine
    raised, _ = search(engine, EventFilter(action="alert.*"), limit=200)
    acks, _ = search(engine, EventFilter(action="audit.alert_acknowledged"), limit=1000)
    acknowledged = {a.get("alert_seq"): a for a in acks}
    return v.render("alerts.html", title="Alerts", alerts=raised, acknowledged=acknowledged)


@router.post("/alerts/{seq}/acknowledge")
@page
def acknowledge(request: Request, seq: int, note: FormText = "", csrf: Csrf = "") -> Response:
    v = visit(request)
    note = v.act(csrf, note, "say what was done about the alert in the note")
    # Refused (and audited) before the log is read: a non-officer learns nothing of it.
    v.gateway.authorize_audit(v.caller, v.meta, "audit.alert_acknowledged")
    event = _event(v, seq)
    if event is None or not str(event.get("action", "")).startswith("alert."):
        raise NotFound(f"no alert {seq}")
    v.gateway.authorize_audit(
        v.caller, v.meta, "audit.alert_acknowledged", record=True, alert_seq=seq, note=note
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
    # Both views are the decision engine's answers (gateway/access/listing.py).
    if dataset:
        by_dataset = v.gateway.access.for_dataset(v.caller, dataset, v.meta)
    if principal:
        by_principal = v.gateway.access.for_principal(v.caller, principal, v.meta)["access"]
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
    v.review("audit.charts")
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


def _event(v: Visit, seq: int) -> dict[str, Any] | None:
    """The audit event ``seq``, or None; a number outside the log's range is not looked up."""
    return v.trail.audit.event(seq) if 0 < seq < 2**62 else None


def _q(value: str) -> str:
    return quote(value, safe="")
