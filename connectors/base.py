"""The one small interface every store kind implements.

The gateway plans a read once and hands a connector a structured :class:`Scan`.
A connector never receives SQL or any other string built from caller input: it
turns the scan into its own store's query language with identifiers quoted and
values passed as parameters.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import pyarrow as pa

FilterOp = Literal["=", "!=", "<", "<=", ">", ">=", "in", "between", "like", "is_null"]
FILTER_OPS: tuple[str, ...] = ("=", "!=", "<", "<=", ">", ">=", "in", "between", "like", "is_null")

AggregateFunction = Literal["count", "sum", "avg", "min", "max"]


class ConnectorError(Exception):
    """Root of every error a connector raises."""


class DatasetNotFound(ConnectorError):
    """The object, prefix or table behind a dataset does not exist in its store."""

    def __init__(self, location: str) -> None:
        super().__init__(f"no data at {location!r}")
        self.location = location


class StoreUnavailable(ConnectorError):
    """The store could not be reached, refused our credentials, or timed out."""


class ScanCancelled(ConnectorError):
    """The scan was cancelled by the caller (client gone, offboarding, shutdown)."""


@dataclass(frozen=True, slots=True)
class Filter:
    """One predicate. ``value`` is already validated and typed for the column.

    ``in`` takes a tuple, ``between`` a pair (low, high) inclusive, ``is_null`` a bool
    (True: IS NULL, False: IS NOT NULL), ``like`` a SQL LIKE pattern string.
    """

    column: str
    op: FilterOp
    value: Any = None


@dataclass(frozen=True, slots=True)
class OrderBy:
    column: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Aggregate:
    """``function(column)`` named ``alias``; ``column`` is None only for ``count``."""

    function: AggregateFunction
    column: str | None
    alias: str


# Derived columns travel under names no store can have (see ``Scan.derived``).
_DERIVED_PREFIX = "\x00kiteline:"


def derived_name(*parts: str) -> str:
    """The batch column name of a derived column, from what it is (``kept``,
    ``generalize``, a column's name...): never a store's own column name."""
    return _DERIVED_PREFIX + ":".join(parts)


def derived_in(batch: pa.RecordBatch, name: str) -> pa.Array | None:
    """The derived column ``name`` of ``batch`` when its store handed it over."""
    found = batch.schema.get_field_index(name)
    return batch.column(found) if found >= 0 else None


@dataclass(frozen=True, slots=True)
class Derived:
    """A column computed row by row from a whole table: ``build`` maps a table (every
    column of the source) to an array of one value per row, the same values it would
    give for any slice of the rows. ``key`` names everything the result depends on
    besides the data (the rule, the index...): equal keys must mean equal builds."""

    name: str
    key: Hashable
    build: Callable[[pa.Table], pa.Array] = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Scan:
    """What to read: a projection, a conjunction of filters, an order and a window.

    ``dictionary`` names columns the caller maps value by value and so would rather
    get dictionary-encoded (each distinct value mapped once). It is a hint: a store
    may return any of them plain, and a batch's values are the same either way.

    ``derived`` are columns a store that holds a table whole may compute once per
    version of it, and then hand over beside the projected ones, under their names,
    sliced to each batch's rows. Also a hint: a store may leave out any of them, so a
    caller looks for each in the batch and computes what is missing itself."""

    columns: tuple[str, ...]
    filters: tuple[Filter, ...] = ()
    order_by: tuple[OrderBy, ...] = ()
    limit: int | None = None
    offset: int = 0
    dictionary: tuple[str, ...] = ()
    derived: tuple[Derived, ...] = ()


@dataclass(frozen=True, slots=True)
class AggregateScan:
    """A grouped aggregate: ``SELECT group_by..., aggregates... WHERE filters GROUP BY``."""

    group_by: tuple[str, ...]
    aggregates: tuple[Aggregate, ...]
    filters: tuple[Filter, ...] = ()


@dataclass(frozen=True, slots=True)
class Table:
    """Where one dataset lives inside its store, as declared in the configuration."""

    location: str
    format: Literal["parquet", "csv", "table"] = "parquet"
    options: dict[str, Any] = field(default_factory=dict)


class Cancellation:
    """A flag a scan checks between batches; setting it stops the scan promptly."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise ScanCancelled("scan cancelled")


class Connector(Protocol):
    """A store kind. Implementations are thread-safe; one instance serves many requests."""

    def schema(self, table: Table) -> pa.Schema:
        """The table's columns and Arrow types, read from the store itself."""
        ...

    def scan(
        self,
        table: Table,
        scan: Scan,
        *,
        batch_size: int = 65_536,
        cancellation: Cancellation | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream the rows, with projection, filters, order and window pushed down."""
        ...

    def aggregate(self, table: Table, scan: AggregateScan) -> pa.Table:
        """Compute a grouped aggregate in the store; the result has one row per group."""
        ...

    def close(self) -> None:
        """Release pools and connections."""
        ...
