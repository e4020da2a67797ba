"""The officers' live tail of the audit log: a page, and its server-sent events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from gateway.auditing.search import EventFilter, search
from gateway.errors import GatewayError
from gateway.http.console.pages import SECURITY_HEADERS, LoginRequired, page, visit
from gateway.http.problems import status_of

router = APIRouter(prefix="/console", include_in_schema=False)
TAIL_POLL_S = 1.0
TAIL_LIFETIME_S = 300.0
TAIL_START = 20
TAIL_MOST = 500


@router.get("/tail")
@page
def tail_page(request: Request) -> Response:
    v = visit(request)
    v.gateway.authorize_audit(v.caller, v.meta, "audit.tail")
    return v.render("tail.html", title="Live tail")


@router.get("/tail/events")
async def tail_events(request: Request) -> Response:
    """Server-sent events: each new audit event as one ``data:`` line of JSON."""
    try:
        v = await run_in_threadpool(visit, request)
        await run_in_threadpool(v.review, "audit.tail")
    except LoginRequired:
        return Response("not signed in", status_code=401, headers=SECURITY_HEADERS)
    except GatewayError as error:
        return Response(error.detail, status_code=status_of(error), headers=SECURITY_HEADERS)
    last = request.headers.get("last-event-id", "")

    async def stream() -> AsyncIterator[bytes]:
        after = int(last) if last.isdigit() else 0
        started = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - started < TAIL_LIFETIME_S:
            if await request.is_disconnected():
                return
            try:
                # Re-authenticated on every poll: a revoked session stops the stream.
                await run_in_threadpool(visit, request)
            except (LoginRequired, GatewayError):
                return
            for event in await run_in_threadpool(_newer, v.trail.audit.engine, after):
                after = event["seq"]
                data = orjson.dumps(_tail_row(event)).decode()
                yield f"id: {after}\ndata: {data}\n\n".encode()
            yield b": keep-alive\n\n"
            await asyncio.sleep(TAIL_POLL_S)

    headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _newer(engine: Engine, after: int) -> list[dict[str, Any]]:
    """Events after ``after``, oldest first: the last TAIL_START when the tail starts
    (``after`` is 0), else every newer one up to TAIL_MOST per poll."""
    if not after:
        events, _ = search(engine, EventFilter(), limit=TAIL_START)
        return events[::-1]
    found: list[dict[str, Any]] = []
    cursor = None
    while len(found) < TAIL_MOST:
        events, cursor = search(engine, EventFilter(), limit=100, cursor=cursor)
        fresh = [e for e in events if e["seq"] > after]
        found.extend(fresh)
        if len(fresh) < len(events) or cursor is None:
            break
    return found[::-1]


def _tail_row(event: dict[str, Any]) -> dict[str, Any]:
    keys = ("seq", "ts", "actor", "actor_kind", "actor_org", "action", "dataset", "decision")
    return {k: event.get(k) for k in keys}
