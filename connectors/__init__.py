"""The connectors' public face: the scan contract and one connector per store kind.

Store drivers that pull in heavy libraries load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from connectors.base import (
    FILTER_OPS,
    Cancellation,
    Connector,
    ConnectorError,
    DatasetNotFound,
    Derived,
    Filter,
    OrderBy,
    Scan,
    ScanCancelled,
    StoreUnavailable,
    Table,
    derived_in,
    derived_name,
)
from connectors.batches import coalesced
from connectors.inline import NeedsWorkerThread, decline_inline, running_inline
from connectors.local import LocalConnector

if TYPE_CHECKING:
    from connectors.postgres import PostgresConnector
    from connectors.s3 import S3Connector
    from connectors.spark import SparkConnector

_LAZY = {
    "PostgresConnector": "connectors.postgres",
    "S3Connector": "connectors.s3",
    "SparkConnector": "connectors.spark",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Cancellation",
    "Connector",
    "ConnectorError",
    "DatasetNotFound",
    "Derived",
    "FILTER_OPS",
    "Filter",
    "LocalConnector",
    "NeedsWorkerThread",
    "OrderBy",
    "PostgresConnector",
    "S3Connector",
    "Scan",
    "ScanCancelled",
    "SparkConnector",
    "StoreUnavailable",
    "Table",
    "decline_inline",
    "coalesced",
    "derived_in",
    "derived_name",
    "running_inline",
]
