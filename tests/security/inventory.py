"""The route inventory and one representative request per route, for the security suite."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from gateway.demo.workspace import SURGICAL_PURPOSE
from gateway.http.edge import flat_routes

# The principals of the demo workspace the matrix calls as, one per kind (alice is a
# custodian of the imaging module).
ROLES = ("mei", "lin", "alice", "victor", "admin")
PATH_VALUES = {
    "name": "patients",
    "grant_id": "1",
    "ref": "carol",
    "org": "stellar",
    "seq": "1",
    "verdict": "approve",
    "verb": "suspend",
}
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/datasets/{name}/query"): {"limit": 2, "purpose": SURGICAL_PURPOSE},
    ("POST", "/v1/decisions/explain"): {"dataset": "patients", "purpose": SURGICAL_PURPOSE},
    ("POST", "/v1/grants"): {
        "dataset": "patients",
        "profile": "anonymized",
        "days": 7,
        "purpose": SURGICAL_PURPOSE,
    },
    ("POST", "/v1/audit/hash"): {"value": "x"},
    ("POST", "/v1/hooks/hr"): {"principal": "carol", "reason": "left"},
}
QUERIES = {"/v1/audit/consistency": {"from": "0", "to": "0"}}
REASON = {"reason": "matrix"}


def inventory(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, HEAD aside."""
    found = []
    for route in flat_routes(app.router.routes):
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                found.append((method, str(getattr(route, "path", ""))))
    return found


def request_for(method: str, path: str) -> dict[str, Any]:
    url = path
    for key, value in PATH_VALUES.items():
        url = url.replace("{" + key + "}", value)
    kwargs: dict[str, Any] = {
        "method": method,
        "url": url,
        "params": QUERIES.get(path),
        "follow_redirects": False,
    }
    if method == "POST":
        if path.startswith("/console"):
            kwargs["data"] = {"reason": "matrix"}
        elif path == "/v1/trace":
            kwargs["content"] = b"patient_id\nabc\n"
            kwargs["headers"] = {"Content-Type": "text/csv"}
        else:
            kwargs["json"] = BODIES.get((method, path), REASON)
    return kwargs
