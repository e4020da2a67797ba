"""Offboarding, suspension and reinstatement; the HR webhook."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from gateway.access.grant_requests import ReasonBody
from gateway.access.hr_hook import SIGNATURE_HEADER, TIMESTAMP_HEADER, HrEvent, verify
from gateway.config import resolve_secret
from gateway.errors import InvalidRequest, NotFound, Unauthenticated
from gateway.http.routes.deps import CallerDep, MetaDep, ServiceDep
from gateway.http.routes.responses import json_response

router = APIRouter(prefix="/v1", tags=["principals"])

MAX_HOOK_BYTES = 16 * 1024


@router.post("/principals/{ref}/offboard", summary="Turn an employee into alumni (admins)")
async def offboard(
    ref: str, body: ReasonBody, caller: CallerDep, gateway: ServiceDep, meta: MetaDep
) -> Response:
    def run() -> dict[str, object]:
        return gateway.lifecycle.offboard(ref, reason=body.reason, caller=caller, meta=meta)

    return json_response(await run_in_threadpool(run))


@router.post("/principals/{ref}/suspend", summary="Suspend a principal (admins)")
async def suspend(
    ref: str, body: ReasonBody, caller: CallerDep, gateway: ServiceDep, meta: MetaDep
) -> Response:
    def run() -> dict[str, object]:
        return gateway.lifecycle.set_principal_status(
            caller, ref, suspend=True, reason=body.reason, meta=meta
        )

    return json_response(await run_in_threadpool(run))


@router.post("/principals/{ref}/reinstate", summary="Reinstate a suspended principal (admins)")
async def reinstate(
    ref: str, body: ReasonBody, caller: CallerDep, gateway: ServiceDep, meta: MetaDep
) -> Response:
    def run() -> dict[str, object]:
        return gateway.lifecycle.set_principal_status(
            caller, ref, suspend=False, reason=body.reason, meta=meta
        )

    return json_response(await run_in_threadpool(run))


@router.post("/orgs/{org}/suspend", summary="Suspend a partner org: every member at once")
async def suspend_org(
    org: str, body: ReasonBody, caller: CallerDep, gateway: ServiceDep, meta: MetaDep
) -> Response:
    def run() -> dict[str, object]:
        return gateway.lifecycle.set_org_status(
            caller, org, suspend=True, reason=body.reason, meta=meta
        )

    return json_response(await run_in_threadpool(run))


@router.post("/orgs/{org}/reinstate", summary="Reinstate a suspended partner org")
async def reinstate_org(
    org: str, body: ReasonBody, caller: CallerDep, gateway: ServiceDep, meta: MetaDep
) -> Response:
    def run() -> dict[str, object]:
        return gateway.lifecycle.set_org_status(
            caller, org, suspend=False, reason=body.reason, meta=meta
        )

    return json_response(await run_in_threadpool(run))


@router.post(
    "/hooks/hr",
    summary="HR system: an employee departed (HMAC-signed body, no bearer token)",
)
async def hr_hook(request: Request, gateway: ServiceDep, meta: MetaDep) -> Response:
    settings = gateway.config.gateway
    if settings.hr_webhook_secret is None:
        raise NotFound("the HR webhook is not configured (gateway.hr_webhook_secret)")
    body = await request.body()
    if len(body) > MAX_HOOK_BYTES:
        raise InvalidRequest(f"the body exceeds {MAX_HOOK_BYTES} bytes")

    def run() -> dict[str, object]:
        secret = resolve_secret(settings.hr_webhook_secret or "", gateway.config.base_dir)
        problem = verify(
            secret.encode(),
            timestamp=request.headers.get(TIMESTAMP_HEADER),
            signature=request.headers.get(SIGNATURE_HEADER),
            body=body,
            max_skew_s=settings.hr_webhook_max_skew_s,
        )
        if problem is not None:
            gateway.grants.record(
                "auth.failed", meta=meta, actor="hr-webhook", decision="deny", reasons=[problem]
            )
            raise Unauthenticated("the HR webhook call is not signed, or its signature is stale")
        try:
            event = HrEvent.model_validate_json(body)
        except ValidationError as exc:
            errors = [
                {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
                for e in exc.errors()
            ]
            raise InvalidRequest("the HR event is invalid", errors=errors) from None
        return gateway.lifecycle.offboard(
            event.principal, reason=event.reason, actor="hr-webhook", meta=meta
        )

    return json_response(await run_in_threadpool(run))
