"""The OpenAPI document, made to tell the truth about what the routes send.

FastAPI derives the document from the handlers' signatures, which here say little: the
handlers return hand-built responses (no response models), answer validation errors
with 400 (not FastAPI's 422), take some inputs straight from the request (the audit
filters, the query body) and authenticate inside a dependency it cannot see. This
module adds what the signatures do not say: the bearer security scheme, a response
schema per route, the RFC 9457 problem schema for every error status each route can
answer, and the parameters read by hand. ``tests/gateway/test_openapi.py`` checks the
result against the statuses and bodies the test suite actually receives.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway.auditing.search import FILTER_KEYS

PROBLEM_JSON = "application/problem+json"
BEARER = "HTTPBearer"
# Routes any caller may use without a token.
PUBLIC = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/v1/audit/public-key"),
    ("post", "/v1/hooks/hr"),  # signed with the webhook's HMAC instead
}

_STRING = {"type": "string"}
_INT = {"type": "integer"}
_NUMBER = {"type": "number"}
_BOOL = {"type": "boolean"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _list(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """An object with these members; more may be added in later versions."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": sorted(required),
        "additionalProperties": True,
    }


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": {
        **_object(
            {"type": _STRING, "title": _STRING, "status": _INT, "detail": _STRING},
            {
                "request_id": _STRING,
                "reasons": _list(_STRING),
                "rule": _STRING,
                "errors": _list(_object({}, {"field": _STRING, "message": _STRING})),
                "budget": _STRING,
                "remaining": _nullable(_NUMBER),
                "needed": _NUMBER,
                "resets_at": {**_nullable(_STRING), "format": "date-time"},
                "max_rows": _INT,
            },
        ),
        "description": "An RFC 9457 problem. `type` is `urn:kiteline:problem:<slug>`; "
        "`request_id` names the request in the logs and the audit log. Access-denied "
        "problems carry `reasons` (and `rule`), budget problems `budget`, `remaining`, "
        "`needed` and `resets_at` (RFC 3339, UTC; null for a total budget, which never resets; "
        "a `Retry-After` header too when the reset is within a day), invalid requests "
        "`errors`.",
    },
    "Status": _object({"status": _STRING}),
    "Grant": _object(
        {"id": _INT, "subject": _STRING, "profile": _STRING},
        {
            "module": _nullable(_STRING),
            "dataset": _nullable(_STRING),
            "purpose": _nullable(_STRING),
            "status": _STRING,
            "approvals": _INT,
            "approvals_needed": _INT,
            "requested_by": _nullable(_STRING),
            "created_at": _nullable(_STRING),
            "activated_at": _nullable(_STRING),
            "expires_at": _nullable(_STRING),
            "columns": _nullable(_list(_STRING)),
            "row_cap": _nullable(_INT),
            "last_used_at": _nullable(_STRING),
            "history": _list({"type": "object"}),
        },
    ),
    "Column": _object(
        {"name": _STRING, "type": _STRING},
        {"classification": _STRING, "treatment": _STRING},
    ),
    "Dataset": _object(
        {"name": _STRING, "module": _STRING, "profile": _nullable(_STRING)},
        {
            "description": _nullable(_STRING),
            "grant_id": _nullable(_INT),
            "purpose": _nullable(_STRING),
            "columns": _list(_ref("Column")),
        },
    ),
    "QueryPage": _object(
        {
            "columns": _list(_ref("Column")),
            "rows": _list({"type": "object", "additionalProperties": True}),
        },
        {
            "dataset": _STRING,
            "profile": _STRING,
            "next_cursor": {
                **_nullable(_STRING),
                "description": "Send it back as `cursor` for the next page; null on the last.",
            },
        },
    ),
    "AuditEvent": _object({"seq": _INT, "ts": _STRING, "action": _STRING}),
}

_GRANT = _ref("Grant")
_LIST = _list({})
# One principal's access to one dataset for one purpose, as the decision engine answers.
_ACCESS_ENTRY = _object(
    {"principal": _STRING, "dataset": _STRING, "allowed": _BOOL, "reasons": _list(_STRING)},
    {
        "kind": _STRING,
        "status": _STRING,
        "org": _nullable(_STRING),
        "purpose": _nullable(_STRING),
        "grants": _list(_INT),
        "via": _list(_STRING),
        "grant_id": _nullable(_INT),
        "profile": _nullable(_STRING),
        "columns": _nullable(_list(_STRING)),
        "row_filters": _LIST,
        "row_cap": _nullable(_INT),
        "window": {},
        "expires_at": _nullable(_STRING),
    },
)
RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/healthz"): _ref("Status"),
    ("get", "/readyz"): _ref("Status"),
    ("get", "/v1/me"): _object(
        {"name": _STRING, "kind": _STRING, "status": _STRING, "grants": _list(_GRANT)},
        {"org": _nullable(_STRING)},
    ),
    ("get", "/v1/datasets"): _object({"datasets": _list(_ref("Dataset"))}),
    ("get", "/v1/datasets/{name}"): _ref("Dataset"),
    ("post", "/v1/decisions/explain"): _object(
        {"dataset": _STRING, "allowed": _BOOL, "reasons": _list(_STRING)},
        {
            "principal": _STRING,
            "action": _STRING,
            "policy_version": _STRING,
            "engines": {"type": "object"},
            "obligations": _nullable({"type": "object"}),
        },
    ),
    ("post", "/v1/trace"): _object(
        {"verdict": _STRING, "rows": _INT},
        {"attributed": {}, "extract_sha256": _STRING},
    ),
    ("post", "/v1/grants"): _GRANT,
    ("get", "/v1/grants"): _object({"grants": _list(_GRANT)}),
    ("get", "/v1/grants/{grant_id}"): _GRANT,
    ("post", "/v1/grants/{grant_id}/approve"): _GRANT,
    ("post", "/v1/grants/{grant_id}/deny"): _GRANT,
    ("post", "/v1/grants/{grant_id}/revoke"): _GRANT,
    ("post", "/v1/grants/{grant_id}/break-glass"): _GRANT,
    ("post", "/v1/grants/sweep"): _object(
        {"expired": _LIST, "revoked_unused": _LIST, "recertify": {"type": "object"}}
    ),
    ("get", "/v1/datasets/{name}/access"): _object(
        {"dataset": _STRING, "access": _list(_ACCESS_ENTRY)},
        {"module": _STRING, "at": _STRING},
    ),
    ("get", "/v1/principals/{ref}/access"): _object(
        {"principal": _STRING, "access": _list(_ACCESS_ENTRY)},
        {
            "kind": _STRING,
            "status": _STRING,
            "org": _nullable(_STRING),
            "org_status": _nullable(_STRING),
            "at": _STRING,
        },
    ),
    ("post", "/v1/principals/{ref}/offboard"): {"type": "object"},
    ("post", "/v1/principals/{ref}/suspend"): _object({"principal": _STRING, "status": _STRING}),
    ("post", "/v1/principals/{ref}/reinstate"): _object({"principal": _STRING, "status": _STRING}),
    ("post", "/v1/orgs/{org}/suspend"): {"type": "object"},
    ("post", "/v1/orgs/{org}/reinstate"): {"type": "object"},
    ("post", "/v1/hooks/hr"): {"type": "object"},
    ("get", "/v1/audit/public-key"): _object(
        {"origin": _STRING, "vkey": _STRING, "key_id": _STRING}
    ),
    ("get", "/v1/audit/checkpoints/latest"): _object(
        {
            "origin": _STRING,
            "tree_size": _INT,
            "root_hash": _STRING,
            "created_at": _STRING,
            "note": _STRING,
        }
    ),
    ("get", "/v1/audit/events/{seq}/proof"): _object(
        {
            "seq": _INT,
            "leaf_index": _INT,
            "tree_size": _INT,
            "leaf_hash": _STRING,
            "proof": _list(_STRING),
            "checkpoint": {**_STRING, "description": "The signed note of the checkpoint."},
            "body": {**_STRING, "description": "The event, exactly as the log hashed it."},
        }
    ),
    ("get", "/v1/audit/consistency"): _object(
        {
            "from": _INT,
            "to": _INT,
            "old_root": _STRING,
            "new_root": _STRING,
            "proof": _list(_STRING),
        },
        {"from_checkpoint": _nullable(_STRING), "to_checkpoint": _nullable(_STRING)},
    ),
    ("get", "/v1/audit/events"): _object(
        {"events": _list(_ref("AuditEvent")), "next_cursor": _nullable(_STRING)}
    ),
    ("get", "/v1/alerts"): _object(
        {"alerts": _list({"type": "object"}), "next_cursor": _nullable(_STRING)}
    ),
    ("post", "/v1/audit/hash"): _object({"hash": _STRING}),
}

# Error statuses a route answers, beyond those of every authenticated route (401: no
# or a bad token, 403: refused, 500: a bug, 503: a dependency could not answer).
_AUTHENTICATED = (401, 403, 500, 503)
# What the HTTP edge may answer for any route before it runs: a body over the route's
# limit, a body that is not JSON, a rate limit.
_EDGE = (413, 415, 429)
_EXTRA: dict[tuple[str, str], tuple[int, ...]] = {
    ("get", "/healthz"): (),
    ("get", "/readyz"): (503,),
    ("get", "/v1/audit/public-key"): (500, 503),
    ("post", "/v1/hooks/hr"): (400, 401, 404, 409, 500, 503),
    ("post", "/v1/datasets/{name}/query"): (400, 404, 406, 429),
    ("get", "/v1/datasets/{name}"): (400, 404),
    ("get", "/v1/datasets"): (400,),
    ("get", "/v1/datasets/{name}/access"): (404,),
    ("get", "/v1/principals/{ref}/access"): (404,),
    ("post", "/v1/decisions/explain"): (400, 404),
    ("post", "/v1/trace"): (400,),
    ("post", "/v1/grants"): (400, 404, 409),
    ("get", "/v1/grants"): (400,),
    ("get", "/v1/grants/{grant_id}"): (400, 404),
    ("post", "/v1/grants/{grant_id}/approve"): (400, 404, 409),
    ("post", "/v1/grants/{grant_id}/deny"): (400, 404, 409),
    ("post", "/v1/grants/{grant_id}/revoke"): (400, 404, 409),
    ("post", "/v1/grants/{grant_id}/break-glass"): (400, 404, 409),
    ("post", "/v1/principals/{ref}/offboard"): (400, 404, 409),
    ("post", "/v1/principals/{ref}/suspend"): (400, 404, 409),
    ("post", "/v1/principals/{ref}/reinstate"): (400, 404, 409),
    ("post", "/v1/orgs/{org}/suspend"): (400, 404, 409),
    ("post", "/v1/orgs/{org}/reinstate"): (400, 404, 409),
    ("get", "/v1/audit/checkpoints/latest"): (404,),
    ("get", "/v1/audit/events/{seq}/proof"): (400, 404),
    ("get", "/v1/audit/consistency"): (400,),
    ("get", "/v1/audit/events"): (400,),
    ("get", "/v1/alerts"): (400,),
    ("get", "/v1/audit/export"): (400, 406),
    ("post", "/v1/audit/hash"): (400,),
}

_QUERY_HEADERS = {
    "X-Kiteline-Audit-Seq": "The audit event that recorded the read (its receipt).",
    "X-Kiteline-Profile": "The access profile the answer was shaped by.",
    "X-Kiteline-Resume-Cursor": "Where the next page starts if this one is full. Under "
    "k-anonymity suppression it is exact, counted before the answer, and sent only for CSV "
    "when another page follows. Formats with "
    "a closing part carry the exact next cursor there: JSON's `next_cursor`, the custom "
    "metadata `kiteline.next_cursor` of a last, empty Arrow batch, the Parquet footer's "
    "key-value metadata `kiteline.next_cursor`.",
    "X-Kiteline-Rows-Remaining-Today": "Rows the grant may still receive today.",
    "X-Kiteline-Rows-Remaining-Total": "Rows the grant may still receive in all.",
    "X-Kiteline-Epsilon-Remaining": "Privacy budget left on the grant (aggregates).",
    "X-Kiteline-Org-Epsilon-Remaining": "Privacy budget left to the partner org.",
}

_AUDIT_FILTERS = {
    "actor": "Principal name.",
    "org": "Partner org of the actor.",
    "kind": "Principal kind (employee, alumni, partner, officer, admin, service).",
    "dataset": "Dataset name.",
    "module": "Module name.",
    "action": "An action such as data.query, or a prefix ending in '*' such as grant.*",
    "decision": "allow, deny or error.",
    "since": "ISO 8601 time, inclusive.",
    "until": "ISO 8601 time, exclusive.",
    "request_id": "The request id a problem or a response header named.",
    "text": "Text anywhere in the event.",
}


def _problem_responses(statuses: tuple[int, ...]) -> dict[str, Any]:
    problem = {PROBLEM_JSON: {"schema": _ref("Problem")}}
    described = {
        400: "The request is invalid (the problem's `errors` say where).",
        401: "No token, or a token that is unknown, expired or revoked.",
        403: "Refused by policy, or the caller may not use this route.",
        404: "No such resource (or not visible to the caller).",
        406: "None of the media types in Accept can be produced.",
        409: "The resource's state does not allow this (e.g. already decided).",
        413: "The body exceeds this route's limit.",
        415: "The body is not JSON (`Content-Type: application/json`).",
        429: "A rate limit, or a row or privacy budget that cannot pay for the request.",
        500: "An unexpected error; quote the request id.",
        503: "A dependency (state database, policy engine, audit log, store) cannot answer.",
    }
    return {
        str(status): {"description": described[status], "content": problem}
        for status in sorted(set(statuses))
    }


def _audit_filter_parameters() -> list[dict[str, Any]]:
    return [
        {
            "name": key,
            "in": "query",
            "required": False,
            "description": _AUDIT_FILTERS.get(key, ""),
            "schema": {"type": "string", "maxLength": 256},
        }
        for key in FILTER_KEYS
    ]


def _describe(path: str, method: str, operation: dict[str, Any]) -> None:
    key = (method, path)
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    # The route's own success status (201 for a created grant), as its decorator says.
    success = next((s for s in responses if s.startswith("2")), "200")
    ok = responses.setdefault(success, {"description": "Success"})
    if key in RESPONSES:
        ok["content"] = {"application/json": {"schema": RESPONSES[key]}}
    statuses = _EXTRA.get(key, (400,) if operation.get("parameters") else ())
    statuses = (*_EDGE, *statuses)
    if key not in PUBLIC:
        statuses = (*_AUTHENTICATED, *statuses)
        operation["security"] = [{BEARER: []}]
    else:
        operation["security"] = []
    responses.update(_problem_responses(statuses))
    if path in ("/v1/audit/events", "/v1/audit/export"):
        present = {p["name"] for p in operation.get("parameters", [])}
        operation.setdefault("parameters", []).extend(
            p for p in _audit_filter_parameters() if p["name"] not in present
        )


def _hoist_definitions(operation: dict[str, Any], schemas: dict[str, Any], name: str) -> None:
    """Move a request body's inline JSON schema (pydantic's, with ``$defs``) into the
    components, where OpenAPI tools resolve references."""
    body = operation["requestBody"]["content"]["application/json"]
    schema = dict(body["schema"])
    for key, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(key, definition)
    schemas[name] = schema
    body["schema"] = _ref(name)


def _rewrite_refs(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (v.replace("#/$defs/", "#/components/schemas/") if k == "$ref" else _rewrite_refs(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rewrite_refs(v) for v in value]
    return value


def _describe_query(operation: dict[str, Any]) -> None:
    content = operation["responses"]["200"]["content"]
    content["application/json"] = {"schema": _ref("QueryPage")}
    content["text/csv"] = {"schema": {"type": "string"}}
    content["application/vnd.apache.arrow.stream"] = {
        "schema": {"type": "string", "format": "binary"}
    }
    content["application/vnd.apache.parquet"] = {"schema": {"type": "string", "format": "binary"}}
    operation["responses"]["200"]["headers"] = {
        name: {"description": text, "schema": {"type": "string"}}
        for name, text in _QUERY_HEADERS.items()
    }
    operation["parameters"] = [
        *operation.get("parameters", []),
        {
            "name": "Accept",
            "in": "header",
            "required": False,
            "description": "The answer's format: application/json (default), text/csv, "
            "application/vnd.apache.arrow.stream or application/vnd.apache.parquet.",
            "schema": {"type": "string"},
        },
    ]


def _describe_trace(operation: dict[str, Any]) -> None:
    operation["requestBody"] = {
        "required": True,
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}}
            for media in ("text/csv", "application/vnd.apache.parquet", "application/x-ndjson")
        },
    }
    operation.setdefault("parameters", []).append(
        {
            "name": "filename",
            "in": "query",
            "required": False,
            "description": "The leaked file's name, when its format is not in Content-Type.",
            "schema": {"type": "string"},
        }
    )


def _describe_export(operation: dict[str, Any]) -> None:
    operation["responses"]["200"]["content"] = {
        "application/x-ndjson": {"schema": {"type": "string"}},
        "text/csv": {"schema": {"type": "string"}},
    }


_SPECIAL: dict[tuple[str, str], Callable[[dict[str, Any]], None]] = {
    ("post", "/v1/datasets/{name}/query"): _describe_query,
    ("post", "/v1/trace"): _describe_trace,
    ("get", "/v1/audit/export"): _describe_export,
}


def build(app: FastAPI) -> dict[str, Any]:
    spec = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(SCHEMAS)
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`kiteline keys issue`) or an OIDC access token.",
        }
    }
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            _describe(path, method, operation)
            special = _SPECIAL.get((method, path))
            if special is not None:
                special(operation)
    _hoist_definitions(spec["paths"]["/v1/datasets/{name}/query"]["post"], schemas, "QueryRequest")
    _name_operations(spec)
    rewritten: dict[str, Any] = _rewrite_refs(spec)
    return rewritten


def _name_operations(spec: dict[str, Any]) -> None:
    """Operation ids are the handlers' names (``request_grant``), not FastAPI's
    ``request_grant_v1_grants_post``: generated clients name their functions by them."""
    operations = [
        (path, method, operation)
        for path, by_method in spec["paths"].items()
        for method, operation in by_method.items()
    ]
    short = {}
    for path, method, operation in operations:
        suffix = re.sub(r"\W", "_", path) + "_" + method
        current = operation.get("operationId", "")
        short[(path, method)] = current.removesuffix(suffix) or current
    counts = Counter(short.values())
    for path, method, operation in operations:
        if counts[short[(path, method)]] == 1:
            operation["operationId"] = short[(path, method)]


_LOCAL = "#/$defs/"
_COMPONENTS = "#/components/schemas/"


def _localized(node: Any, found: dict[str, Any]) -> Any:
    """``node`` with every ``#/$defs/`` reference pointed at the components; the local
    definitions it held are collected in ``found``."""
    if isinstance(node, dict):
        found.update(node.pop("$defs", None) or {})
        return {
            k: (_COMPONENTS + v[len(_LOCAL) :])
            if k == "$ref" and isinstance(v, str) and v.startswith(_LOCAL)
            else _localized(v, found)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_localized(item, found) for item in node]
    return node


def hoist_defs(spec: dict[str, Any]) -> dict[str, Any]:
    """Move every local ``$defs`` (a hand-documented body's nested models) to the
    components, where ``#/$defs/...`` references could not reach them from the root."""
    found: dict[str, Any] = {}
    spec = _localized(spec, found)
    while found:  # definitions may themselves hold $defs
        pending, found = found, {}
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in pending.items():
            schemas.setdefault(name, _localized(schema, found))
    return spec


def install(app: FastAPI) -> None:
    """Serve the truthful document at ``/openapi.json`` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = hoist_defs(build(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
