"""The governed read: ``POST /v1/datasets/{name}/query``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from gateway.encoders import MEDIA_TYPES
from gateway.query import QueryRequest
from gateway.routes.deps import CallerDep, MetaDep, ServiceDep
from gateway.streaming import GovernedStream

router = APIRouter(prefix="/v1", tags=["datasets"])


@router.post(
    "/datasets/{name}/query",
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
async def query(
    name: str, request: Request, caller: CallerDep, gateway: ServiceDep, meta: MetaDep
) -> GovernedStream:
    # The body is parsed by the service after authentication and the decision, so an
    # unauthenticated caller learns nothing from validation errors.
    body = await request.body()
    result = await run_in_threadpool(
        gateway.read, caller, name, body, request.headers.get("accept"), meta
    )
    return GovernedStream(result.chunks, media_type=result.media_type, headers=result.headers)
