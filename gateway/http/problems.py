"""The one place that maps any error to an HTTP problem: its status, type and title.

Responses follow RFC 9457 (``application/problem+json``) and always carry the request
id. Unexpected errors are logged in full and answered with a generic 500: internal
text never reaches a client. The console's HTML error pages and the audit log's record
of a refusal take their status from here too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from audit import AuditError
from connectors import ConnectorError
from gateway.config import ConfigError
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    as_gateway_error,
    connector_cause,
    log_failure,
)
from gateway.read.slots import ReadAbandoned
from policies import PolicyError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# nginx's status for a request whose client closed the connection first.
CLIENT_CLOSED_REQUEST = 499


@dataclass(frozen=True, slots=True)
class Problem:
    """How one kind of error is answered over HTTP."""

    status: int
    title: str


# Each kind of problem (a GatewayError's ``slug``) and its answer; the problem's type
# is ``urn:kiteline:problem:<slug>``.
PROBLEMS: dict[str, Problem] = {
    "internal-error": Problem(500, "Internal error"),
    "unauthenticated": Problem(401, "Authentication required"),
    "access-denied": Problem(403, "Access denied"),
    "not-found": Problem(404, "Not found"),
    "method-not-allowed": Problem(405, "Method not allowed"),
    "invalid-request": Problem(400, "Invalid request"),
    "not-acceptable": Problem(406, "Not acceptable"),
    "conflict": Problem(409, "Conflict"),
    "budget-exhausted": Problem(429, "Budget exhausted"),
    "unavailable": Problem(503, "Service unavailable"),
    "payload-too-large": Problem(413, "Payload too large"),
    "unsupported-media-type": Problem(415, "Unsupported media type"),
    "rate-limited": Problem(429, "Too many requests"),
}


class HttpProblem(GatewayError):
    """An answer of the web framework itself (an unknown route, a wrong method), with
    the status it chose."""

    def __init__(self, status: int, title: str, slug: str) -> None:
        super().__init__(title)
        self.problem = Problem(status, title)
        self.slug = slug


def problem_of(error: GatewayError) -> Problem:
    """The status and title ``error`` is answered with (a kind not in the table is an
    internal error)."""
    if isinstance(error, HttpProblem):
        return error.problem
    return PROBLEMS.get(error.slug, PROBLEMS["internal-error"])


def status_of(error: GatewayError) -> int:
    return problem_of(error).status


def problem_body(
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    request_id: str,
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:kiteline:problem:{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }
    body.update(extensions or {})
    return body


def problem_response(
    request: Request, error: GatewayError, headers: dict[str, str] | None = None
) -> Response:
    return problem_for(getattr(request.state, "request_id", "-"), error, headers)


def problem_for(
    request_id: str, error: GatewayError, extra_headers: dict[str, str] | None = None
) -> Response:
    problem = problem_of(error)
    body = problem_body(
        status=problem.status,
        slug=error.slug,
        title=problem.title,
        detail=error.detail,
        request_id=request_id,
        extensions=error.extensions,
    )
    headers = {"X-Request-ID": request_id, **(extra_headers or {})}
    if problem.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="kiteline"'
    retry_after = getattr(error, "retry_after_s", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Response(
        orjson.dumps(body), status_code=problem.status, media_type=PROBLEM_JSON, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    async def on_any(request: Request, exc: Exception) -> Response:
        error = as_gateway_error(exc)
        if status_of(error) >= 500 or connector_cause(exc) is not None:
            log_failure(log, f"request {getattr(request.state, 'request_id', '-')} failed", exc)
        return problem_response(request, error)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        return problem_response(request, InvalidRequest("the request is invalid", errors=errors))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        error = HttpProblem(exc.status_code, str(exc.detail), slug)
        # A 405 names the methods the resource allows (RFC 9110, 15.5.6).
        return problem_response(request, error, dict(exc.headers or {}))

    async def on_abandoned(request: Request, _exc: Exception) -> Response:
        # Never sent (the client is gone); the metrics record it under this status.
        log.info(
            "request %s: the client left before its read started",
            getattr(request.state, "request_id", "-"),
        )
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    # Known error families are handled inside the app; a bare Exception handler runs in
    # Starlette's outermost middleware, which re-raises after answering (a true 500).
    for family in (GatewayError, PolicyError, ConnectorError, AuditError, ConfigError, Exception):
        app.add_exception_handler(family, on_any)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(ReadAbandoned, on_abandoned)
