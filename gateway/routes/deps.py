"""Shared route dependencies: the service, the request's metadata and its caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from gateway.audit_log import RequestMeta
from gateway.principals import Caller
from gateway.service import Gateway

# The cheap dependencies are coroutines: FastAPI runs a plain `def` dependency in the
# thread pool, and a hop there costs more than building these objects.


def _service(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _request_meta(request: Request) -> RequestMeta:
    return RequestMeta(
        request_id=request.state.request_id,
        client=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


async def service(request: Request) -> Gateway:
    return _service(request)


async def request_meta(request: Request) -> RequestMeta:
    return _request_meta(request)


async def caller(request: Request) -> Caller:
    gateway = _service(request)
    return await run_in_threadpool(
        gateway.authenticate, request.headers.get("authorization"), _request_meta(request)
    )


CallerDep = Annotated[Caller, Depends(caller)]
ServiceDep = Annotated[Gateway, Depends(service)]
MetaDep = Annotated[RequestMeta, Depends(request_meta)]
