"""Grant requests and approvals, and who can see a dataset."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from fastapi.responses import Response

from gateway.access.grant_requests import GrantRequestBody, ReasonBody
from gateway.http.routes.deps import ActingDep, answer

router = APIRouter(prefix="/v1", tags=["grants"])

Status = Literal["requested", "active", "expired", "revoked", "denied"]
# Ids are 64-bit in the state database: a larger number names no grant (400, not 500).
GrantId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post(
    "/grants",
    status_code=201,
    summary="Request a grant (for yourself, or as org admin for your org)",
)
async def request_grant(body: GrantRequestBody, a: ActingDep) -> Response:
    return await answer(lambda: a.gateway.grants.request(a.caller, body, a.meta), status_code=201)


@router.get("/grants", summary="Your grants; custodians also see pending requests; officers all")
async def list_grants(a: ActingDep, status: Status | None = None) -> Response:
    return await answer(lambda: {"grants": a.gateway.grants.list_grants(a.caller, status)})


@router.get("/grants/{grant_id}", summary="One grant with its full history")
async def show_grant(grant_id: GrantId, a: ActingDep) -> Response:
    return await answer(lambda: a.gateway.grants.show(a.caller, grant_id))


@router.post("/grants/{grant_id}/approve", summary="Approve a pending request (custodians)")
async def approve(grant_id: GrantId, body: ReasonBody, a: ActingDep) -> Response:
    return await answer(lambda: a.gateway.grants.approve(a.caller, grant_id, body.reason, a.meta))


@router.post("/grants/{grant_id}/deny", summary="Deny a pending request (custodians)")
async def deny(grant_id: GrantId, body: ReasonBody, a: ActingDep) -> Response:
    return await answer(lambda: a.gateway.grants.deny(a.caller, grant_id, body.reason, a.meta))


@router.post("/grants/{grant_id}/revoke", summary="Revoke a grant")
async def revoke(grant_id: GrantId, body: ReasonBody, a: ActingDep) -> Response:
    return await answer(lambda: a.gateway.grants.revoke(a.caller, grant_id, body.reason, a.meta))


@router.post(
    "/grants/{grant_id}/break-glass",
    summary="Approve a time-boxed separation exception (an admin and an officer both must)",
)
async def break_glass(grant_id: GrantId, body: ReasonBody, a: ActingDep) -> Response:
    return await answer(
        lambda: a.gateway.grants.break_glass(a.caller, grant_id, body.reason, a.meta)
    )


@router.post("/grants/sweep", summary="Expire, revoke unused, list re-certifications (admins)")
async def sweep(a: ActingDep) -> Response:
    grants = a.gateway.grants
    return await answer(
        lambda: grants.audited(
            "grant.sweep",
            lambda: grants.sweep(caller=a.caller, meta=a.meta),
            caller=a.caller,
            meta=a.meta,
        )
    )


@router.get(
    "/datasets/{name}/access",
    summary="Who can read the dataset, as the decision engine answers (custodians, officers)",
    description="For every principal holding a grant that covers the dataset (directly or "
    "through its org), and every purpose those grants name: what a read would get "
    "(profile, grant, row filters, time window, columns) or why it is refused.",
)
async def access(name: str, a: ActingDep) -> Response:
    return await answer(lambda: a.gateway.access.for_dataset(a.caller, name, a.meta))


@router.get(
    "/principals/{ref}/access",
    summary="Everything a principal can read today, and why (officers)",
    description="The decision engine's answer for every dataset the principal holds a grant "
    "on, per purpose; refusals carry their reasons. Every call is audited.",
)
async def principal_access(ref: str, a: ActingDep) -> Response:
    return await answer(lambda: a.gateway.access.for_principal(a.caller, ref, a.meta))
