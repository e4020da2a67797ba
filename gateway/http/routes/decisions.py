"""``POST /v1/decisions/explain``: why a principal may or may not read a dataset."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from gateway.http.routes.deps import CallerDep, MetaDep, ServiceDep
from gateway.http.routes.responses import json_response
from gateway.service import ExplainRequest

router = APIRouter(prefix="/v1", tags=["decisions"])


@router.post(
    "/decisions/explain",
    summary="Explain a decision: each engine's verdict, matched lines, reasons, obligations",
    description="Anyone may explain their own access; officers may explain anyone's.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ExplainRequest.model_json_schema()}},
        }
    },
)
async def explain(
    request: Request, caller: CallerDep, gateway: ServiceDep, meta: MetaDep
) -> Response:
    body = await request.body()
    return json_response(await run_in_threadpool(gateway.explain, caller, body, meta))
