"""The governed read: ``POST /v1/datasets/{name}/query``."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from gateway.access.principals import Caller
from gateway.http.routes.deps import request_meta_of, service_of
from gateway.http.streaming import GovernedStream
from gateway.read.chokepoint import MAX_QUERY_BYTES
from gateway.read.encoders import MEDIA_TYPES
from gateway.read.query import QueryRequest
from gateway.read.result import ReadResult
from gateway.read.slots import ReadSlots


class DirectRoute(APIRoute):
    """A route whose endpoint takes ``(name, request)`` and reads the request itself.

    FastAPI's per-request handling (solving path, query and body fields and dependencies
    in exit stacks) costs more than a small governed read's plan and scan together, all
    for one path parameter. The signature still documents the route; the body is
    validated by the service, after authentication."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            response: Response = await endpoint(request.path_params["name"], request)
            return response

        return handle


router = APIRouter(prefix="/v1", tags=["datasets"])


async def query(name: str, request: Request) -> Response:
    # The hot route takes the service and metadata straight from the request: resolving
    # them as dependencies costs more per request than everything they do.
    gateway, meta = service_of(request), request_meta_of(request)
    # The body is read (bounded) first, then authentication, the read's preparation and,
    # for a small answer, the whole read run in one call: on the event loop when it can
    # run there without waiting, else in one of a few worker threads (see ReadSlots).
    # The service still authenticates before it parses the body, so an unauthenticated
    # caller learns nothing from validation errors.
    body = await _bounded_body(request)
    authorization = request.headers.get("authorization")
    accept = request.headers.get("accept")
    authenticated: Caller | None = getattr(request.state, "caller", None)

    def run() -> tuple[ReadResult, bytes | None]:
        caller = authenticated or gateway.authenticate(authorization, meta)
        request.state.caller_org = caller.org  # the bytes released are counted by org
        result = gateway.read(caller, name, body, accept, meta)
        if not result.small:
            return result, None
        # Draining the chunks runs the whole audited read, data.read event included.
        return result, b"".join(result.chunks)

    slots: ReadSlots = request.app.state.read_slots
    result, whole = await slots.run(
        run, abandoned=request.is_disconnected, may_inline=gateway.reads_locally(name)
    )
    if whole is not None:
        return Response(whole, media_type=result.media_type, headers=result.headers)
    assert result.delivery is not None, "a streamed answer has a delivery to report to"
    return GovernedStream(
        result.chunks,
        delivery=result.delivery,
        media_type=result.media_type,
        headers=result.headers,
    )


router.add_api_route(
    "/datasets/{name}/query",
    query,
    methods=["POST"],
    # This route alone: any other on this router keeps FastAPI's parameter solving.
    route_class_override=DirectRoute,
    summary="Read a dataset under the caller's grant",
    description="Structured query (never SQL). The answer is streamed as JSON (default), "
    "CSV, Arrow IPC stream or Parquet, chosen by the Accept header. The "
    "X-Kiteline-Audit-Seq header names the audit event that recorded the read.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": QueryRequest.model_json_schema()}},
        },
    },
    responses={200: {"content": {m: {} for m in MEDIA_TYPES}}},
)


async def _bounded_body(request: Request) -> bytes:
    # One byte past the limit is enough for the service to refuse the body as too large;
    # the rest is never held in memory.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_QUERY_BYTES:
            break
    return b"".join(chunks)[: MAX_QUERY_BYTES + 1]
