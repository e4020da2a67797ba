"""The admins' pages: principals and orgs, suspension, reinstatement and offboarding."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.access.permissions import ensure_role
from gateway.access.principals import list_principals
from gateway.http.console.forms import Csrf, FormText
from gateway.http.console.pages import page, redirect, visit

router = APIRouter(prefix="/console", include_in_schema=False)


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
    return _suspension(request, verb, reason, csrf, org=org)


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
    reason = v.act(csrf, reason, "give a reason: it is recorded with the offboarding")
    result = v.gateway.lifecycle.offboard(name, reason=reason, caller=v.caller, meta=v.meta)
    return v.render("offboard.html", title=f"Offboarded {name}", preview=None, result=result)


@router.post("/principals/{name}/{verb}")
@page
def set_status(
    request: Request, name: str, verb: str, reason: FormText = "", csrf: Csrf = ""
) -> Response:
    return _suspension(request, verb, reason, csrf, name=name)


def _suspension(
    request: Request, verb: str, reason: str, csrf: str, *, name: str = "", org: str = ""
) -> Response:
    """Suspend or reinstate (``verb``) a principal or a whole org, then back to the list."""
    v = visit(request)
    why = v.act(
        csrf,
        reason,
        "give a reason: it is recorded with the change",
        verb=verb,
        verbs=("suspend", "reinstate"),
    )
    lifecycle, suspend = v.gateway.lifecycle, verb == "suspend"
    if org:
        lifecycle.set_org_status(v.caller, org, suspend=suspend, reason=why, meta=v.meta)
    else:
        lifecycle.set_principal_status(v.caller, name, suspend=suspend, reason=why, meta=v.meta)
    return redirect(f"/console/principals?done={verb}:{f'org {org}' if org else name}")
