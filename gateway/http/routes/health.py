"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from gateway.errors import AccessDenied
from gateway.http.routes.deps import CallerDep, ServiceDep
from gateway.http.routes.responses import json_response

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> Response:
    return json_response({"status": "ok"})


METRICS_READERS = frozenset({"officer", "service"})


@router.get("/readyz", summary="The state database and the audit log can take writes")
async def readyz(gateway: ServiceDep) -> Response:
    def probe() -> bool:
        if gateway.audit.failing:
            return False
        try:
            # Taking the write lock, not just a read, is what a request needs: a SQLite
            # lock held by another process or a read-only PostgreSQL is not ready.
            with gateway.engine.connect() as conn:
                if gateway.engine.dialect.name == "sqlite":
                    with conn.execution_options(sqlite_begin="IMMEDIATE").begin():
                        conn.execute(text("SELECT 1"))
                else:
                    read_only = conn.execute(text("SHOW transaction_read_only")).scalar()
                    conn.rollback()
                    if read_only != "off":
                        return False
            return True
        except Exception:
            return False

    ready = await run_in_threadpool(probe)
    return json_response(
        {"status": "ready" if ready else "unavailable"}, status_code=200 if ready else 503
    )


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request, caller: CallerDep) -> Response:
    # Route names and counts describe who uses what: officers and service principals
    # (a Prometheus scraper with a service principal's API key) only.
    if caller.kind not in METRICS_READERS:
        raise AccessDenied("only officers and service principals read the metrics")
    return Response(
        generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST
    )
