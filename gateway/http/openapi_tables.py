"""The tables the OpenAPI document is built from: a response schema per route, the
error statuses each route answers, and the descriptions of what routes read by hand
(see ``gateway.http.openapi``)."""

from __future__ import annotations

from typing import Any

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


def ref(name: str) -> dict[str, Any]:
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
            "columns": _list(ref("Column")),
        },
    ),
    "QueryPage": _object(
        {
            "columns": _list(ref("Column")),
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

_GRANT = ref("Grant")
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
    ("get", "/healthz"): ref("Status"),
    ("get", "/readyz"): ref("Status"),
    ("get", "/v1/me"): _object(
        {"name": _STRING, "kind": _STRING, "status": _STRING, "grants": _list(_GRANT)},
        {"org": _nullable(_STRING)},
    ),
    ("get", "/v1/datasets"): _object({"datasets": _list(ref("Dataset"))}),
    ("get", "/v1/datasets/{name}"): ref("Dataset"),
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
        {"events": _list(ref("AuditEvent")), "next_cursor": _nullable(_STRING)}
    ),
    ("get", "/v1/alerts"): _object(
        {"alerts": _list({"type": "object"}), "next_cursor": _nullable(_STRING)}
    ),
    ("post", "/v1/audit/hash"): _object({"hash": _STRING}),
}

# Error statuses a route answers, beyond those of every authenticated route (401: no
# or a bad token, 403: refused, 500: a bug, 503: a dependency could not answer).
AUTHENTICATED = (401, 403, 500, 503)
# What the HTTP edge may answer for any route before it runs: a body over the route's
# limit, a body that is not JSON, a rate limit.
EDGE = (413, 415, 429)
EXTRA_STATUSES: dict[tuple[str, str], tuple[int, ...]] = {
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

QUERY_HEADERS = {
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

AUDIT_FILTERS = {
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
