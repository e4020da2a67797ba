"""Who am I, and what do I hold?"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from gateway.http.routes.deps import CallerDep, ServiceDep
from gateway.http.routes.responses import json_response

router = APIRouter(prefix="/v1", tags=["me"])


@router.get("/me", summary="The authenticated principal and the grants it holds")
async def me(caller: CallerDep, gateway: ServiceDep) -> Response:
    def grants() -> list[dict[str, object]]:
        index = gateway.decider.snapshot().grants
        held = [g for subject in caller.subjects for g in index.held_by(subject)]
        return [g.as_dict() for g in sorted(held, key=lambda g: g.id)]

    return json_response(
        {
            "name": caller.name,
            "kind": caller.kind,
            "status": caller.status,
            "org": caller.org,
            "grants": await run_in_threadpool(grants),
        }
    )
