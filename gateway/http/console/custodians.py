"""The custodians' pages: pending requests and their decisions, grants and revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.http.console.forms import Csrf, FormText
from gateway.http.console.pages import awaiting, page, redirect, visit

router = APIRouter(prefix="/console", include_in_schema=False)


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
    reason = v.act(
        csrf,
        reason,
        "give a reason: it is recorded with the decision",
        verb=verdict,
        verbs=("approve", "deny"),
    )
    act = v.gateway.grants.approve if verdict == "approve" else v.gateway.grants.deny
    grant = act(v.caller, grant_id, reason, v.meta)
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
    reason = v.act(csrf, reason, "give a reason: it is recorded with the revocation")
    v.gateway.grants.revoke(v.caller, grant_id, reason, v.meta)
    return redirect(f"/console/grants/{grant_id}")
