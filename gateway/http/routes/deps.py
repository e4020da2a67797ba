"""Shared route dependencies: the service, the request's metadata and its caller; and
the one shape of a route that acts for its caller (``Acting`` and ``answer``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from gateway.access.principals import Caller
from gateway.auditing.log import RequestMeta
from gateway.http.routes.responses import json_response
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


@dataclass(frozen=True, slots=True)
class Acting:
    """An authenticated caller acting through the API: who, on which service, in which
    request (the metadata its audit events carry)."""

    gateway: Gateway
    caller: Caller
    meta: RequestMeta


async def acting(caller: CallerDep, gateway: ServiceDep, meta: MetaDep) -> Acting:
    return Acting(gateway, caller, meta)


ActingDep = Annotated[Acting, Depends(acting)]


async def answer(act: Callable[[], Any], *, status_code: int = 200) -> Response:
    """Run ``act`` in the thread pool (the services block on the state database) and
    answer its result as JSON. The service audits the act and any refusal itself; an
    error reaches the problem handlers as it is."""
    return json_response(await run_in_threadpool(act), status_code=status_code)
