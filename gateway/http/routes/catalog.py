"""The catalog: the datasets a caller may read, with columns as the caller will see them."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from gateway.http.routes.deps import CallerDep, MetaDep, ServiceDep
from gateway.http.routes.responses import json_response

router = APIRouter(prefix="/v1", tags=["datasets"])


@router.get("/datasets", summary="Datasets the caller may read")
async def list_datasets(
    caller: CallerDep,
    gateway: ServiceDep,
    meta: MetaDep,
    purpose: str | None = Query(None, max_length=256),
) -> Response:
    datasets = await run_in_threadpool(gateway.list_datasets, caller, meta, purpose)
    return json_response({"datasets": datasets})


@router.get("/datasets/{name}", summary="One dataset as the caller sees it")
async def describe(
    name: str,
    caller: CallerDep,
    gateway: ServiceDep,
    meta: MetaDep,
    purpose: str | None = Query(None, max_length=256),
) -> Response:
    return json_response(await run_in_threadpool(gateway.describe, caller, name, meta, purpose))
