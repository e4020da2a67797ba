"""Shared route dependencies: the service, the request's metadata and its caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from gateway.audit_log import RequestMeta
from gateway.principals import Caller
from gateway.service import Gateway


def service(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def request_meta(request: Request) -> RequestMeta:
    return RequestMeta(
        request_id=request.state.request_id,
        client=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


async def caller(request: Request) -> Caller:
    gateway = service(request)
    return await run_in_threadpool(
        gateway.authenticate, request.headers.get("authorization"), request_meta(request)
    )


CallerDep = Annotated[Caller, Depends(caller)]
ServiceDep = Annotated[Gateway, Depends(service)]
MetaDep = Annotated[RequestMeta, Depends(request_meta)]
