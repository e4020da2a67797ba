"""Shared route dependencies: the service, the request's metadata and its caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from gateway.access.principals import Caller
from gateway.auditing.log import RequestMeta
from gateway.service import Gateway

# The cheap dependencies are coroutines: FastAPI runs a plain `def` dependency in the
# thread pool, and a hop there costs more than building these objects.


def service_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def request_meta_of(request: Request) -> RequestMeta:
    return RequestMeta(
        request_id=request.state.request_id,
        client=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


async def service(request: Request) -> Gateway:
    return service_of(request)


async def request_meta(request: Request) -> RequestMeta:
    return request_meta_of(request)


async def caller(request: Request) -> Caller:
    # The edge authenticates every non-public route before the body is read.
    authenticated: Caller | None = getattr(request.state, "caller", None)
    if authenticated is not None:
        return authenticated
    gateway = service_of(request)
    return await run_in_threadpool(
        gateway.authenticate, request.headers.get("authorization"), request_meta_of(request)
    )


CallerDep = Annotated[Caller, Depends(caller)]
ServiceDep = Annotated[Gateway, Depends(service)]
MetaDep = Annotated[RequestMeta, Depends(request_meta)]
