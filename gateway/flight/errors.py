"""The only place that maps the gateway's errors to Flight errors (as problems.py does
for HTTP). Each carries the problem as JSON in its ``extra_info``: type, detail, rule."""

from __future__ import annotations

import orjson
import pyarrow.flight as flight

from gateway.errors import (
    AccessDenied,
    BudgetExhausted,
    GatewayError,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
    is_failure,
)


def flight_error(error: GatewayError, request_id: str) -> flight.FlightError:
    problem = {
        "type": error.slug,
        "detail": error.detail,
        "rule": error.extensions.get("rule"),
        "request_id": request_id,
    }
    info = orjson.dumps(problem)
    if isinstance(error, Unauthenticated):
        return flight.FlightUnauthenticatedError(error.detail, info)
    if isinstance(error, AccessDenied | BudgetExhausted | TooManyRequests):
        return flight.FlightUnauthorizedError(f"{error.slug}: {error.detail}", info)
    if isinstance(error, Unavailable):
        return flight.FlightUnavailableError(error.detail, info)
    if is_failure(error):
        return flight.FlightInternalError(f"{error.detail} (request {request_id})", info)
    return flight.FlightServerError(f"{error.slug}: {error.detail}", info)
