"""What the in-process apps of a test run answered, to check the OpenAPI against.

Every response sent through ``gateway.app.RequestContext`` is recorded by (method,
route, status), with a few JSON bodies per key; ``tests/test_openapi.py`` asserts that
each was documented for its route, with a schema its bodies fit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import orjson

from gateway.http.app import RequestContext

MAX_SAMPLES = 3
MAX_BODY = 256 * 1024

Key = tuple[str, str, int]
seen: dict[Key, list[tuple[str, Any]]] = defaultdict(list)


def recording() -> Iterator[None]:
    original = RequestContext.__call__

    async def record(self: RequestContext, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await original(self, scope, receive, send)
            return
        status = 0
        media = ""
        body = bytearray()

        async def capture(message: Any) -> None:
            nonlocal status, media
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = dict(message.get("headers", []))
                media = headers.get(b"content-type", b"").decode().split(";")[0]
            elif message["type"] == "http.response.body" and len(body) <= MAX_BODY:
                body.extend(message.get("body", b""))
            await send(message)

        try:
            await original(self, scope, receive, capture)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or scope.get("state", {}).get("edge_route")
            if path == "unmatched":
                path = None
            if path is not None and status:
                samples = seen[(scope["method"].lower(), path, status)]
                if len(samples) < MAX_SAMPLES and media.endswith("json") and len(body) <= MAX_BODY:
                    try:
                        samples.append((media, orjson.loads(bytes(body))))
                    except orjson.JSONDecodeError:
                        pass

    RequestContext.__call__ = record  # type: ignore[method-assign]
    try:
        yield
    finally:
        RequestContext.__call__ = original  # type: ignore[method-assign]
