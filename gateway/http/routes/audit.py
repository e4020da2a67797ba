"""The audit log over HTTP: checkpoints, proofs and receipts, search, export, alerts.

Officers read the log; any caller may fetch checkpoints, the public key, consistency
proofs and the inclusion proofs of its own events (a receipt of what it received).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, JsonValue
from starlette.concurrency import run_in_threadpool

from gateway.auditing.search import (
    EventFilter,
    csv_header,
    csv_line,
    iter_bodies,
    search,
    shown_filters,
)
from gateway.auditing.trail import AuditTrail
from gateway.errors import InvalidRequest, NotFound
from gateway.http.routes.deps import ActingDep, CallerDep, MetaDep, ServiceDep, answer
from gateway.http.routes.responses import json_response

router = APIRouter(prefix="/v1", tags=["audit"])

Seq = Annotated[int, Query(ge=0, le=2**62)]


def _trail(request: Request) -> AuditTrail:
    trail: AuditTrail = request.app.state.audit_trail
    return trail


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _filter(request: Request) -> EventFilter:
    return EventFilter.parse(dict(request.query_params))


@router.get("/audit/public-key", summary="The key that signs audit checkpoints")
async def public_key(request: Request) -> Response:
    checkpointer = _trail(request).checkpointer
    verifier = checkpointer.verifier
    return json_response(
        {"origin": checkpointer.origin, "vkey": verifier.vkey(), "key_id": verifier.key_id.hex()}
    )


@router.get(
    "/audit/checkpoints/latest",
    summary="The newest signed checkpoint",
    responses={200: {"content": {"application/json": {}, "text/plain": {}}}},
)
async def latest_checkpoint(request: Request, caller: CallerDep) -> Response:
    del caller  # any authenticated caller may see the tree head
    trail = _trail(request)

    def latest() -> Any:
        stored = trail.checkpointer.latest() or trail.checkpointer.checkpoint()
        if stored is None:
            raise NotFound("no checkpoint has been signed yet")
        return stored

    stored = await run_in_threadpool(latest)
    if "text/plain" in request.headers.get("accept", ""):
        return Response(stored.note, media_type="text/plain; charset=utf-8")
    return json_response(
        {
            "origin": stored.checkpoint.origin,
            "tree_size": stored.checkpoint.tree_size,
            "root_hash": _b64(stored.checkpoint.root_hash),
            "created_at": stored.created_at,
            "note": stored.note,
        }
    )


@router.get("/audit/events/{seq}/proof", summary="Inclusion proof of one event (a receipt)")
async def inclusion_proof(
    seq: int,
    request: Request,
    caller: CallerDep,
    gateway: ServiceDep,
    meta: MetaDep,
    tree_size: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    trail = _trail(request)

    def prove() -> dict[str, Any]:
        event = trail.audit.event(seq) if 0 < seq < 2**62 else None
        owner = str(event.get("actor")) if event and event.get("actor") else None
        gateway.authorize_audit(caller, meta, "audit.proof", owner=owner)
        if event is None:
            raise NotFound(f"no audit event {seq}")
        if tree_size is None:
            stored = trail.checkpointer.covering(seq)
        else:
            found = trail.checkpointer.at_size(tree_size)
            if found is None or tree_size < seq:
                raise NotFound(f"no checkpoint of size {tree_size} covers event {seq}")
            stored = found
        size = stored.checkpoint.tree_size
        leaves = trail.audit.leaf_hashes(seq - 1, seq)
        return {
            "seq": seq,
            "leaf_index": seq - 1,
            "tree_size": size,
            "leaf_hash": _b64(leaves[0]),
            "proof": [_b64(node) for node in trail.proofs.inclusion(seq - 1, size)],
            "checkpoint": stored.note,
            "body": trail.audit.body(seq),
        }

    return json_response(await run_in_threadpool(prove))


@router.get("/audit/consistency", summary="Consistency proof between two tree sizes")
async def consistency(
    request: Request,
    caller: CallerDep,
    from_size: Annotated[int, Query(alias="from", ge=0, le=2**62)],
    to_size: Annotated[int, Query(alias="to", ge=0, le=2**62)],
) -> Response:
    del caller
    trail = _trail(request)

    def prove() -> dict[str, Any]:
        size = trail.audit.head().size
        if not from_size <= to_size <= size:
            raise InvalidRequest(f"need 0 <= from <= to <= {size} (the log's size)")
        old, new = trail.checkpointer.at_size(from_size), trail.checkpointer.at_size(to_size)
        return {
            "from": from_size,
            "to": to_size,
            "old_root": _b64(trail.proofs.range_root(0, from_size)),
            "new_root": _b64(trail.proofs.range_root(0, to_size)),
            "proof": [_b64(node) for node in trail.proofs.consistency(from_size, to_size)],
            "from_checkpoint": old.note if old else None,
            "to_checkpoint": new.note if new else None,
        }

    return json_response(await run_in_threadpool(prove))


Limit = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(max_length=200)]


@router.get("/audit/events", summary="Search the audit log (officers), newest first")
async def search_events(
    request: Request, a: ActingDep, limit: Limit = 100, cursor: Cursor = None
) -> Response:
    def run() -> dict[str, Any]:
        where = _filter(request)
        a.gateway.authorize_audit(
            a.caller, a.meta, "audit.search", record=True, filters=shown_filters(where)
        )
        return _page(request, "events", where, limit, cursor)

    return await answer(run)


@router.get("/alerts", summary="Alerts raised by the audit rules (officers), newest first")
async def alerts(
    request: Request, a: ActingDep, limit: Limit = 100, cursor: Cursor = None
) -> Response:
    def run() -> dict[str, Any]:
        a.gateway.authorize_audit(a.caller, a.meta, "audit.alerts")
        return _page(request, "alerts", EventFilter(action="alert.*"), limit, cursor)

    return await answer(run)


def _page(
    request: Request, name: str, where: EventFilter, limit: int, cursor: str | None
) -> dict[str, Any]:
    """One page of matching events, newest first, under ``name``, and the next cursor."""
    events, next_cursor = search(_trail(request).audit.engine, where, limit=limit, cursor=cursor)
    return {name: events, "next_cursor": next_cursor}


@router.get(
    "/audit/export",
    summary="Export matching events (officers), streamed",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
)
async def export(
    request: Request,
    caller: CallerDep,
    gateway: ServiceDep,
    meta: MetaDep,
    format: Literal["jsonl", "csv"] = "jsonl",
) -> StreamingResponse:
    trail = _trail(request)

    def prepare() -> tuple[Iterator[str], str]:
        where = _filter(request)
        gateway.authorize_audit(
            caller, meta, "audit.export", record=True, filters=shown_filters(where), format=format
        )
        # Pin the export to a checkpoint: every line is an event it covers.
        stored = trail.checkpointer.covering(trail.audit.head().size)
        bodies = iter_bodies(trail.audit.engine, where, upto=stored.checkpoint.tree_size)
        return bodies, stored.note

    bodies, note = await run_in_threadpool(prepare)

    def lines() -> Iterator[bytes]:
        if format == "csv":
            yield csv_header().encode()
            for body in bodies:
                yield csv_line(body).encode()
        else:
            for body in bodies:
                yield body.encode() + b"\n"

    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        lines(),
        media_type=media,
        headers={"X-Kiteline-Checkpoint": _b64(note.encode())},
    )


class HashRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    value: JsonValue


@router.post("/audit/hash", summary="The keyed hash of a value, to search the log by it")
async def audit_hash(
    body: HashRequest, caller: CallerDep, gateway: ServiceDep, meta: MetaDep
) -> Response:
    def run() -> str:
        # The value is never recorded: only that an officer asked for a hash.
        gateway.authorize_audit(caller, meta, "audit.hash", record=True)
        return gateway.audit.redactor.hash(body.value)

    return json_response({"hash": await run_in_threadpool(run)})
