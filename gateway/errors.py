"""The gateway's own errors, and the translation of the other packages' errors into them.

Each error names its problem (``status``, ``slug``, ``title``), which the audit log
records; the HTTP wing (``gateway.http.problems``) turns them into RFC 9457 responses.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import psycopg
from pydantic import ValidationError
from sqlalchemy import exc as sa_exc

from audit import AuditError
from connectors import ConnectorError, DatasetNotFound, ScanCancelled, StoreUnavailable
from gateway.config import ConfigError
from policies import PolicyError


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
    """``retry_after_s``: seconds until the budget resets, named only when that is soon
    enough to wait for (the ``Retry-After`` header); the body's ``resets_at`` always
    says when it resets, or null for a budget that never does."""

    status, slug, title = 429, "budget-exhausted", "Budget exhausted"

    def __init__(self, detail: str, retry_after_s: int | None = None, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.retry_after_s = retry_after_s


class Unavailable(GatewayError):
    status, slug, title = 503, "unavailable", "Service unavailable"


class PayloadTooLarge(GatewayError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(GatewayError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class TooManyRequests(GatewayError):
    status, slug, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s


# A state database that cannot answer: locked by another process, out of disk, refusing
# connections, or slower than the pool's wait. Its callers see a 503, never a 500.
STATE_FAILURES: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.TimeoutError,
    sa_exc.InterfaceError,
    sqlite3.OperationalError,
    psycopg.OperationalError,
)


def is_state_failure(exc: BaseException) -> bool:
    if isinstance(exc, STATE_FAILURES):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


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
    if is_state_failure(exc):
        return Unavailable("the state database is unavailable; nothing was changed or returned")
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


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    """A pydantic validation error as the fields and messages of a problem response."""
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "message": e["msg"]}
        for e in exc.errors()
    ]
