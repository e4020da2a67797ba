"""Failures of the S3 store, translated into the connector errors.

pyarrow reports every S3 failure as OSError; the AWS SDK's error name in the text
is the only thing that tells a missing object from a refused or unreachable store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from connectors.base import Cancellation, ConnectorError, DatasetNotFound, StoreUnavailable
from connectors.batches import check_cancelled

_NOT_FOUND_ERRORS = ("NO_SUCH_KEY", "NO_SUCH_BUCKET", "RESOURCE_NOT_FOUND")
_UNAVAILABLE_ERRORS = (
    "ACCESS_DENIED",
    "INVALID_ACCESS_KEY_ID",
    "INVALID_CLIENT_TOKEN_ID",
    "SIGNATURE_DOES_NOT_MATCH",
    "INVALID_SIGNATURE",
    "INCOMPLETE_SIGNATURE",
    "MISSING_AUTHENTICATION_TOKEN",
    "UNRECOGNIZED_CLIENT",
    "EXPIRED_TOKEN",
    "REQUEST_EXPIRED",
    "REQUEST_TIME_TOO_SKEWED",
    "NETWORK_CONNECTION",
    "REQUEST_TIMEOUT",
    "SERVICE_UNAVAILABLE",
    "SLOW_DOWN",
    "THROTTLING",
    "INTERNAL_FAILURE",
    "curlCode",
)


class SourceTrap:
    """Remembers why the Arrow stream feeding DuckDB failed.

    DuckDB rewraps a failing source as its own InvalidInputException, losing the
    original type; the trap keeps it so that a refused credential or a cancellation is
    still reported as such.
    """

    def __init__(self, cancellation: Cancellation | None) -> None:
        self.error: Exception | None = None
        self._cancellation = cancellation

    def watch(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        try:
            while True:
                check_cancelled(self._cancellation)
                batch = next(batches, None)
                if batch is None:
                    return
                yield batch
        except Exception as exc:
            self.error = exc
            raise


def guarded(
    batches: Iterator[pa.RecordBatch],
    location: str,
    cancellation: Cancellation | None,
    trap: SourceTrap | None = None,
) -> Iterator[pa.RecordBatch]:
    """Pull batches with driver errors translated, checking for cancellation before each."""
    while True:
        check_cancelled(cancellation)
        with store_errors(location, trap):
            batch = next(batches, None)
        if batch is None:
            return
        yield batch


@contextmanager
def store_errors(location: str, trap: SourceTrap | None = None) -> Iterator[None]:
    """Translate pyarrow, AWS SDK and DuckDB failures into the connector errors."""
    try:
        yield
    except ConnectorError:
        raise
    except (OSError, pa.ArrowException, duckdb.Error) as exc:
        cause: Exception = exc
        if trap is not None and trap.error is not None:
            cause = trap.error
        if isinstance(cause, ConnectorError):
            raise cause from None
        raise _translate(cause, location) from cause


def _translate(exc: Exception, location: str) -> ConnectorError:
    # Only the AWS error name goes into the message: driver text can quote filter
    # literals (Arrow cast errors do), and messages end up in logs. The full text stays
    # on the chained cause for whoever debugs the store.
    if isinstance(exc, FileNotFoundError):
        return DatasetNotFound(location)
    if isinstance(exc, OSError):
        text = str(exc)
        if any(name in text for name in _NOT_FOUND_ERRORS):
            return DatasetNotFound(location)
        for name in _UNAVAILABLE_ERRORS:
            if name in text:
                return StoreUnavailable(f"object store unavailable reading {location!r} ({name})")
        return ConnectorError(f"object store error reading {location!r}")
    return ConnectorError(f"cannot read {location!r}: {type(exc).__name__}")
