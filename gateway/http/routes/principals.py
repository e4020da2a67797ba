"""Offboarding, suspension and reinstatement; the HR webhook."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from gateway.access.grant_requests import ReasonBody
from gateway.access.hr_hook import SIGNATURE_HEADER, TIMESTAMP_HEADER, HrEvent, verify
from gateway.config import resolve_secret
from gateway.errors import InvalidRequest, NotFound, Unauthenticated, validation_errors
from gateway.http.routes.deps import Acting, ActingDep, MetaDep, ServiceDep, answer

router = APIRouter(prefix="/v1", tags=["principals"])

MAX_HOOK_BYTES = 16 * 1024


@router.post("/principals/{ref}/offboard", summary="Turn an employee into alumni (admins)")
async def offboard(ref: str, body: ReasonBody, a: ActingDep) -> Response:
    lifecycle = a.gateway.lifecycle
    return await answer(
        lambda: lifecycle.offboard(ref, reason=body.reason, caller=a.caller, meta=a.meta)
    )


@router.post("/principals/{ref}/suspend", summary="Suspend a principal (admins)")
async def suspend(ref: str, body: ReasonBody, a: ActingDep) -> Response:
    return await _principal_status(a, ref, body, suspend=True)


@router.post("/principals/{ref}/reinstate", summary="Reinstate a suspended principal (admins)")
async def reinstate(ref: str, body: ReasonBody, a: ActingDep) -> Response:
    return await _principal_status(a, ref, body, suspend=False)


@router.post("/orgs/{org}/suspend", summary="Suspend a partner org: every member at once")
async def suspend_org(org: str, body: ReasonBody, a: ActingDep) -> Response:
    return await _org_status(a, org, body, suspend=True)


@router.post("/orgs/{org}/reinstate", summary="Reinstate a suspended partner org")
async def reinstate_org(org: str, body: ReasonBody, a: ActingDep) -> Response:
    return await _org_status(a, org, body, suspend=False)


async def _principal_status(a: Acting, ref: str, body: ReasonBody, *, suspend: bool) -> Response:
    lifecycle = a.gateway.lifecycle
    return await answer(
        lambda: lifecycle.set_principal_status(
            a.caller, ref, suspend=suspend, reason=body.reason, meta=a.meta
        )
    )


async def _org_status(a: Acting, org: str, body: ReasonBody, *, suspend: bool) -> Response:
    lifecycle = a.gateway.lifecycle
    return await answer(
        lambda: lifecycle.set_org_status(
            a.caller, org, suspend=suspend, reason=body.reason, meta=a.meta
        )
    )


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
            errors = validation_errors(exc)
            raise InvalidRequest("the HR event is invalid", errors=errors) from None
        return gateway.lifecycle.offboard(
            event.principal, reason=event.reason, actor="hr-webhook", meta=meta
        )

    return await answer(run)
