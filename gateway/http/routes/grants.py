"""Grant requests and approvals, and who can see a dataset."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from gateway.access.grant_requests import GrantRequestBody, ReasonBody
from gateway.http.routes.deps import CallerDep, MetaDep, ServiceDep
from gateway.http.routes.responses import json_response

router = APIRouter(prefix="/v1", tags=["grants"])

Status = Literal["requested", "active", "expired", "revoked", "denied"]
# Ids are 64-bit in the state database: a larger number names no grant (400, not 500).
GrantId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post(
    "/grants",
    status_code=201,
    summary="Request a grant (for yourself, or as org admin for your org)",
)
async def request_grant(
    body: GrantRequestBody, caller: CallerDep, gateway: ServiceDep, meta: MetaDep
) -> Response:
    grant = await run_in_threadpool(gateway.grants.request, caller, body, meta)
    return json_response(grant, status_code=201)


@router.get("/grants", summary="Your grants; custodians also see pending requests; officers all")
async def list_grants(
    caller: CallerDep, gateway: ServiceDep, status: Status | None = None
) -> Response:
    grants = await run_in_threadpool(gateway.grants.list_grants, caller, status)
    return json_response({"grants": grants})


@router.get("/grants/{grant_id}", summary="One grant with its full history")
async def show_grant(grant_id: GrantId, caller: CallerDep, gateway: ServiceDep) -> Response:
    return json_response(await run_in_threadpool(gateway.grants.show, caller, grant_id))


@router.post("/grants/{grant_id}/approve", summary="Approve a pending request (custodians)")
async def approve(
    grant_id: GrantId, body: ReasonBody, caller: CallerDep, gateway: ServiceDep, meta: MetaDep
) -> Response:
    grant = await run_in_threadpool(gateway.grants.approve, caller, grant_id, body.reason, meta)
    return json_response(grant)


@router.post("/grants/{grant_id}/deny", summary="Deny a pending request (custodians)")
async def deny(
    grant_id: GrantId, body: ReasonBody, caller: CallerDep, gateway: ServiceDep, meta: MetaDep
) -> Response:
    grant = await run_in_threadpool(gateway.grants.deny, caller, grant_id, body.reason, meta)
    return json_response(grant)


@router.post("/grants/{grant_id}/revoke", summary="Revoke a grant")
async def revoke(
    grant_id: GrantId, body: ReasonBody, caller: CallerDep, gateway: ServiceDep, meta: MetaDep
) -> Response:
    grant = await run_in_threadpool(gateway.grants.revoke, caller, grant_id, body.reason, meta)
    return json_response(grant)


@router.post(
    "/grants/{grant_id}/break-glass",
    summary="Approve a time-boxed separation exception (an admin and an officer both must)",
)
async def break_glass(
    grant_id: GrantId, body: ReasonBody, caller: CallerDep, gateway: ServiceDep, meta: MetaDep
) -> Response:
    grant = await run_in_threadpool(gateway.grants.break_glass, caller, grant_id, body.reason, meta)
    return json_response(grant)


@router.post("/grants/sweep", summary="Expire, revoke unused, list re-certifications (admins)")
async def sweep(caller: CallerDep, gateway: ServiceDep, meta: MetaDep) -> Response:
    def run() -> dict[str, object]:
        return gateway.grants.audited(
            "grant.sweep",
            lambda: gateway.grants.sweep(caller=caller, meta=meta),
            caller=caller,
            meta=meta,
        )

    return json_response(await run_in_threadpool(run))


@router.get(
    "/datasets/{name}/access",
    summary="Who can read the dataset, as the decision engine answers (custodians, officers)",
    description="For every principal holding a grant that covers the dataset (directly or "
    "through its org), and every purpose those grants name: what a read would get "
    "(profile, grant, row filters, time window, columns) or why it is refused.",
)
async def access(name: str, caller: CallerDep, gateway: ServiceDep, meta: MetaDep) -> Response:
    return json_response(await run_in_threadpool(gateway.access.for_dataset, caller, name, meta))


@router.get(
    "/principals/{ref}/access",
    summary="Everything a principal can read today, and why (officers)",
    description="The decision engine's answer for every dataset the principal holds a grant "
    "on, per purpose; refusals carry their reasons. Every call is audited.",
)
async def principal_access(
    ref: str, caller: CallerDep, gateway: ServiceDep, meta: MetaDep
) -> Response:
    return json_response(await run_in_threadpool(gateway.access.for_principal, caller, ref, meta))
