"""Gateway errors, and the one place that maps any error to an HTTP problem.

Responses follow RFC 9457 (``application/problem+json``) and always carry the request
id. Unexpected errors are logged in full and answered with a generic 500: internal
text never reaches a client.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from audit.errors import AuditError
from connectors.base import ConnectorError, DatasetNotFound, ScanCancelled, StoreUnavailable
from gateway.config import ConfigError
from gateway.read.slots import ReadAbandoned
from policies.errors import PolicyError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# nginx's status for a request whose client closed the connection first.
CLIENT_CLOSED_REQUEST = 499


class GatewayError(Exception):
    """Root of the gateway's own errors. ``status`` and ``slug`` name the problem."""

    status = 500
    slug = "internal-error"
    title = "Internal error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class Unauthenticated(GatewayError):
    status, slug, title = 401, "unauthenticated", "Authentication required"


class AccessDenied(GatewayError):
    status, slug, title = 403, "access-denied", "Access denied"

    def __init__(self, detail: str, reasons: list[str] | None = None, **extensions: Any) -> None:
        super().__init__(detail, reasons=reasons or [detail], **extensions)
        self.reasons = reasons or [detail]


class NotFound(GatewayError):
    status, slug, title = 404, "not-found", "Not found"


class InvalidRequest(GatewayError):
    status, slug, title = 400, "invalid-request", "Invalid request"


class NotAcceptable(GatewayError):
    status, slug, title = 406, "not-acceptable", "Not acceptable"


class Conflict(GatewayError):
    status, slug, title = 409, "conflict", "Conflict"


class BudgetExhausted(GatewayError):
    status, slug, title = 429, "budget-exhausted", "Budget exhausted"


class Unavailable(GatewayError):
    status, slug, title = 503, "unavailable", "Service unavailable"


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


def as_gateway_error(exc: BaseException) -> GatewayError:
    """Translate errors of the other packages into gateway errors (one mapping, here)."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, DatasetNotFound):
        return NotFound("the data behind this dataset is missing from its store")
    if isinstance(exc, StoreUnavailable):
        return Unavailable("the store holding this dataset is unavailable; no data was returned")
    if isinstance(exc, ScanCancelled):
        return Unavailable("the read was cancelled")
    if isinstance(exc, ConnectorError):
        return Unavailable("the store failed to answer; no data was returned")
    if isinstance(exc, PolicyError):
        return Unavailable("the policy engine could not decide; access is denied until it can")
    if isinstance(exc, AuditError):
        return Unavailable("the audit log could not record this request; no data was returned")
    if isinstance(exc, ConfigError):
        return Unavailable("the gateway is misconfigured")
    return GatewayError("an unexpected error occurred; quote the request id when reporting it")


def log_failure(logger: logging.Logger, message: str, exc: BaseException) -> None:
    """Log why a request failed, without text that may hold a secret or a filter value.

    A connector's own message is written to be safe (it names the location and the
    driver's error class, never server text); the driver exception chained under it is
    named by type only, because store error text can quote a literal or a DSN. Any
    other error may be a bug, so it is logged with its traceback.
    """
    store_error = connector_cause(exc)
    if store_error is not None:
        cause = store_error.__cause__
        because = f" (cause: {type(cause).__module__}.{type(cause).__name__})" if cause else ""
        logger.error("%s: %s: %s%s", message, type(store_error).__name__, store_error, because)
    else:
        logger.error("%s: %s", message, type(exc).__name__, exc_info=exc)


def connector_cause(exc: BaseException) -> ConnectorError | None:
    """The store error behind ``exc``, if the chain of causes holds one."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        if isinstance(seen, ConnectorError):
            return seen
        seen = seen.__cause__
    return None


def problem_response(request: Request, error: GatewayError) -> Response:
    request_id = getattr(request.state, "request_id", "-")
    body = problem_body(
        status=error.status,
        slug=error.slug,
        title=error.title,
        detail=error.detail,
        request_id=request_id,
        extensions=error.extensions,
    )
    headers = {"X-Request-ID": request_id}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="kiteline"'
    return Response(
        orjson.dumps(body), status_code=error.status, media_type=PROBLEM_JSON, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    async def on_any(request: Request, exc: Exception) -> Response:
        error = as_gateway_error(exc)
        if error.status >= 500 or connector_cause(exc) is not None:
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
        error = GatewayError(str(exc.detail))
        error.status, error.title = exc.status_code, str(exc.detail)
        error.slug = {404: "not-found", 405: "method-not-allowed"}.get(
            exc.status_code, "http-error"
        )
        return problem_response(request, error)

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
