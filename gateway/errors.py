"""The gateway's own errors, and the translation of the other packages' errors into them.

Each error names its kind of problem (``slug``) and carries its data; none knows HTTP.
The HTTP wing (``gateway.http.problems``) alone maps a kind to its status and title and
turns errors into RFC 9457 responses.
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
    """Root of the gateway's own errors. ``slug`` names the kind of problem."""

    slug = "internal-error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class Unauthenticated(GatewayError):
    slug = "unauthenticated"


class AccessDenied(GatewayError):
    slug = "access-denied"

    def __init__(self, detail: str, reasons: list[str] | None = None, **extensions: Any) -> None:
        super().__init__(detail, reasons=reasons or [detail], **extensions)
        self.reasons = reasons or [detail]


class NotFound(GatewayError):
    slug = "not-found"


class InvalidRequest(GatewayError):
    slug = "invalid-request"


class NotAcceptable(GatewayError):
    slug = "not-acceptable"


class Conflict(GatewayError):
    slug = "conflict"


class BudgetExhausted(GatewayError):
    """``retry_after_s``: seconds until the budget resets, named only when that is soon
    enough to wait for (the ``Retry-After`` header); the body's ``resets_at`` always
    says when it resets, or null for a budget that never does."""

    slug = "budget-exhausted"

    def __init__(self, detail: str, retry_after_s: int | None = None, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.retry_after_s = retry_after_s


class Unavailable(GatewayError):
    slug = "unavailable"


class PayloadTooLarge(GatewayError):
    slug = "payload-too-large"


class UnsupportedMediaType(GatewayError):
    slug = "unsupported-media-type"


class TooManyRequests(GatewayError):
    slug = "rate-limited"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s


def is_failure(error: GatewayError) -> bool:
    """Whether the gateway failed to answer (a dependency down, or an unexpected error),
    rather than refused or rejected the request."""
    return isinstance(error, Unavailable) or type(error) is GatewayError


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
