"""The OpenAPI document, made to tell the truth about what the routes send.

FastAPI derives the document from the handlers' signatures, which here say little: the
handlers return hand-built responses (no response models), answer validation errors
with 400 (not FastAPI's 422), take some inputs straight from the request (the audit
filters, the query body) and authenticate inside a dependency it cannot see. This
module adds what the signatures do not say: the bearer security scheme, a response
schema per route, the RFC 9457 problem schema for every error status each route can
answer, and the parameters read by hand. ``tests/test_openapi.py`` checks the
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
from gateway.http.openapi_tables import (
    AUDIT_FILTERS,
    AUTHENTICATED,
    EDGE,
    EXTRA_STATUSES,
    QUERY_HEADERS,
    RESPONSES,
    SCHEMAS,
    ref,
)

PROBLEM_JSON = "application/problem+json"
BEARER = "HTTPBearer"
# Routes any caller may use without a token.
PUBLIC = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/v1/audit/public-key"),
    ("post", "/v1/hooks/hr"),  # signed with the webhook's HMAC instead
}


def _problem_responses(statuses: tuple[int, ...]) -> dict[str, Any]:
    problem = {PROBLEM_JSON: {"schema": ref("Problem")}}
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
            "description": AUDIT_FILTERS.get(key, ""),
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
    statuses = EXTRA_STATUSES.get(key, (400,) if operation.get("parameters") else ())
    statuses = (*EDGE, *statuses)
    if key not in PUBLIC:
        statuses = (*AUTHENTICATED, *statuses)
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
    body["schema"] = ref(name)


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
    content["application/json"] = {"schema": ref("QueryPage")}
    content["text/csv"] = {"schema": {"type": "string"}}
    content["application/vnd.apache.arrow.stream"] = {
        "schema": {"type": "string", "format": "binary"}
    }
    content["application/vnd.apache.parquet"] = {"schema": {"type": "string", "format": "binary"}}
    operation["responses"]["200"]["headers"] = {
        name: {"description": text, "schema": {"type": "string"}}
        for name, text in QUERY_HEADERS.items()
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
