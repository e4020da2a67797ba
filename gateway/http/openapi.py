"""The OpenAPI document, with every ``$ref`` resolvable from its root.

Bodies documented by hand (``openapi_extra``, for routes that read their own body)
carry their model's JSON Schema, whose nested models sit under a local ``$defs`` that
``#/$defs/...`` cannot reach from the document's root. They are moved to
``components.schemas``, where the references then point.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

_LOCAL = "#/$defs/"
_COMPONENTS = "#/components/schemas/"


def _rewrite(node: Any, found: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        found.update(node.pop("$defs", None) or {})
        return {
            k: (_COMPONENTS + v[len(_LOCAL) :])
            if k == "$ref" and isinstance(v, str) and v.startswith(_LOCAL)
            else _rewrite(v, found)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite(item, found) for item in node]
    return node


def hoist_defs(spec: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    spec = _rewrite(spec, found)
    while found:  # definitions may themselves hold $defs
        pending, found = found, {}
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in pending.items():
            schemas.setdefault(name, _rewrite(schema, found))
    return spec


def install_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = hoist_defs(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
