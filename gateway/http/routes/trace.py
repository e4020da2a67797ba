"""Leak tracing for security officers: ``POST /v1/trace`` with the leaked file as the body."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.http.routes.deps import CallerDep, MetaDep, ServiceDep
from gateway.http.routes.responses import json_response

router = APIRouter(prefix="/v1", tags=["officers"])


@router.post(
    "/trace",
    summary="Name the recipient of a leaked extract (officers)",
    description="Send the leaked file as the body: CSV (text/csv), Parquet "
    "(application/vnd.apache.parquet) or JSON lines (application/x-ndjson). The answer "
    "names the recipients whose pseudonyms it holds, with the evidence. Every trace is "
    "audited.",
)
async def trace(
    request: Request, caller: CallerDep, gateway: ServiceDep, meta: MetaDep
) -> Response:
    body = await request.body()
    report = await run_in_threadpool(
        gateway.trace,
        caller,
        body,
        request.query_params.get("filename"),
        request.headers.get("content-type"),
        meta,
    )
    return json_response(report)
