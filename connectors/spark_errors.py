"""Failures of the Spark store, translated into the connector errors.

Messages carry Spark's error class, never its text, which can quote a filter literal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from connectors.base import (
    Cancellation,
    ConnectorError,
    DatasetNotFound,
    ScanCancelled,
    StoreUnavailable,
)

_NOT_FOUND = {"PATH_NOT_FOUND", "TABLE_OR_VIEW_NOT_FOUND", "SCHEMA_NOT_FOUND"}


@contextlib.contextmanager
def spark_errors(location: str, cancellation: Cancellation | None = None) -> Iterator[None]:
    """Translate pyspark and gRPC failures into the connector errors, keeping the cause."""
    import grpc
    from pyspark.errors import PySparkException
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException

    try:
        yield
    except ConnectorError:
        raise
    except SparkConnectGrpcException as exc:
        if cancellation is not None and cancellation.cancelled:
            raise ScanCancelled("scan cancelled") from exc
        raise _translate(exc, exc.getCondition(), exc.getGrpcStatusCode(), location) from exc
    except PySparkException as exc:
        raise _translate(exc, exc.getCondition(), None, location) from exc
    except grpc.RpcError as exc:
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        raise _translate(exc, None, code, location) from exc


def _translate(exc: Exception, condition: str | None, code: Any, location: str) -> ConnectorError:
    import grpc

    kind = condition or type(exc).__name__
    if condition in _NOT_FOUND:
        return DatasetNotFound(location)
    if condition == "OPERATION_CANCELED" or "OPERATION_CANCELED" in kind:
        return StoreUnavailable(f"Spark interrupted the read of {location!r}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return StoreUnavailable(f"Spark Connect timed out reading {location!r}")
    if code == grpc.StatusCode.UNAVAILABLE:
        return StoreUnavailable(f"Spark Connect unavailable reading {location!r}")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return StoreUnavailable(f"Spark Connect refused access to {location!r}")
    return ConnectorError(f"Spark error reading {location!r}: {kind}")
