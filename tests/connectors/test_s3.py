"""S3Connector against a real S3-protocol server (moto over HTTP on loopback): what the
connector contract suite (test_contract.py) does not cover, S3 of its own and CSV."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest

from connectors.base import (
    Aggregate,
    AggregateScan,
    Cancellation,
    ConnectorError,
    DatasetNotFound,
    Filter,
    OrderBy,
    Scan,
    ScanCancelled,
    StoreUnavailable,
    Table,
)
from connectors.s3 import S3Connector
from tests.connectors.reading import ids, null_safe, read

if TYPE_CHECKING:
    from tests.connectors.conftest import S3Data, S3Server

pytestmark = pytest.mark.slow

PEOPLE = Table("people.parquet")
PEOPLE_CSV = Table("people.csv", format="csv")
EVENTS = Table("events", options={"partitioning": "hive"})

Row = dict[str, Any]


def make_connector(server: S3Server, **overrides: Any) -> S3Connector:
    settings: dict[str, Any] = {
        "prefix": "data",
        "access_key_id": server.access_key_id,
        "secret_access_key": server.secret_access_key,
        "connect_timeout": 2.0,
        "retry_max_attempts": 1,
    }
    settings.update(overrides)
    endpoint = settings.pop("endpoint_url", server.endpoint_url)
    return S3Connector(endpoint, server.bucket, **settings)


@pytest.fixture
def connector(s3_server: S3Server, s3_data: S3Data) -> Iterator[S3Connector]:
    del s3_data  # requested so the objects exist before any test reads them
    instance = make_connector(s3_server)
    yield instance
    instance.close()


# --- schema ----------------------------------------------------------------------------


def test_schema_of_parquet_object(connector: S3Connector, s3_data: S3Data) -> None:
    assert connector.schema(PEOPLE).equals(s3_data.people.schema, check_metadata=False)


def test_schema_reads_only_the_footer(connector: S3Connector, s3_data: S3Data) -> None:
    before = connector.bytes_read
    connector.schema(PEOPLE)
    assert 0 < connector.bytes_read - before < s3_data.parquet_size


def test_schema_of_csv_object(connector: S3Connector) -> None:
    schema = connector.schema(PEOPLE_CSV)
    assert schema.names == ["id", "name", "city", "age", "score"]
    assert schema.field("id").type == pa.int64()
    assert schema.field("name").type == pa.string()
    assert schema.field("score").type == pa.float64()


@pytest.mark.parametrize("options", [{"partitioning": "hive"}, {"hive_partitioning": True}])
def test_schema_of_hive_prefix_includes_partition_key(
    connector: S3Connector, options: dict[str, Any]
) -> None:
    schema = connector.schema(Table("events", options=options))
    assert schema.names == ["event_id", "kind", "payload", "day"]
    assert schema.field("day").type == pa.int32()


# --- projection and filters ------------------------------------------------------------


FILTER_CASES: list[tuple[Filter, str, Callable[[Any], bool]]] = [
    (Filter("city", "=", "Paris"), "city", null_safe(lambda v: v == "Paris")),
    (Filter("city", "!=", "Paris"), "city", null_safe(lambda v: v != "Paris")),
    (Filter("age", "<", 20), "age", null_safe(lambda v: v < 20)),
    (Filter("age", "<=", 20), "age", null_safe(lambda v: v <= 20)),
    (Filter("score", ">", 90.0), "score", null_safe(lambda v: v > 90.0)),
    (Filter("score", ">=", 90.0), "score", null_safe(lambda v: v >= 90.0)),
    (
        Filter("city", "in", ("Oslo", "Kyoto", None)),
        "city",
        null_safe(lambda v: v in ("Oslo", "Kyoto")),
    ),
    (Filter("id", "between", (100, 120)), "id", null_safe(lambda v: 100 <= v <= 120)),
    (
        Filter("name", "like", "person-00_5"),
        "name",
        lambda v: v[:8] == "person-0" and v[8] == "0" and v[-1] == "5" and len(v) == 11,
    ),
    (Filter("name", "like", "%99"), "name", lambda v: v.endswith("99")),
    (Filter("age", "is_null", True), "age", lambda v: v is None),
    (Filter("age", "is_null", False), "age", lambda v: v is not None),
]


# The Parquet object keeps the contract suite (tests/connectors/test_contract.py); the
# CSV object, read by its own path, is checked here.
@pytest.mark.parametrize("table", [PEOPLE_CSV], ids=["csv"])
@pytest.mark.parametrize(
    ("item", "column", "test"), FILTER_CASES, ids=[f"{c[0].op}-{c[0].column}" for c in FILTER_CASES]
)
def test_each_filter_operator(
    connector: S3Connector,
    s3_data: S3Data,
    table: Table,
    item: Filter,
    column: str,
    test: Callable[[Any], bool],
) -> None:
    expected = [row["id"] for row in s3_data.people.to_pylist() if test(row[column])]
    assert expected, "each case must select something"
    columns = ("id",) if column == "id" else ("id", column)
    result = read(connector, table, Scan(columns=columns, filters=(item,)))
    assert sorted(ids(result)) == expected


def test_filter_on_partition_key(connector: S3Connector, s3_data: S3Data) -> None:
    result = read(
        connector, EVENTS, Scan(columns=("event_id", "day"), filters=(Filter("day", "=", 3),))
    )
    assert result.num_rows == s3_data.events_per_day
    assert set(result.column("day").to_pylist()) == {3}


def test_wrongly_typed_filter_value_is_an_error_that_does_not_echo_it(
    connector: S3Connector,
) -> None:
    secret = "Jane Q. Patient"
    with pytest.raises(ConnectorError) as caught:
        read(connector, PEOPLE, Scan(columns=("id",), filters=(Filter("id", "=", secret),)))
    assert secret not in str(caught.value)


# --- order, limit, offset --------------------------------------------------------------


def test_window_without_order_streams_in_stored_order(connector: S3Connector) -> None:
    batches = list(
        connector.scan(PEOPLE, Scan(columns=("id",), limit=250, offset=995), batch_size=100)
    )
    assert all(batch.num_rows <= 100 for batch in batches)
    assert ids(pa.Table.from_batches(batches)) == list(range(995, 1245))


# --- aggregates ------------------------------------------------------------------------


def test_count_without_groups_uses_metadata(connector: S3Connector, s3_data: S3Data) -> None:
    scan = AggregateScan(group_by=(), aggregates=(Aggregate("count", None, "n"),))
    result = connector.aggregate(PEOPLE, scan)
    assert result.to_pylist() == [{"n": s3_data.people.num_rows}]
    filtered = connector.aggregate(
        EVENTS,
        AggregateScan(
            group_by=(),
            aggregates=(Aggregate("count", None, "n"),),
            filters=(Filter("day", "<=", 2),),
        ),
    )
    assert filtered.to_pylist() == [{"n": 2 * s3_data.events_per_day}]


def test_aggregate_over_partitions(connector: S3Connector, s3_data: S3Data) -> None:
    scan = AggregateScan(group_by=("day",), aggregates=(Aggregate("count", None, "n"),))
    result = connector.aggregate(EVENTS, scan)
    days = range(1, s3_data.event_days + 1)
    assert result.to_pylist() == [{"day": day, "n": s3_data.events_per_day} for day in days]


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "table", [Table("missing.parquet"), Table("no/such/prefix", options={"partitioning": "hive"})]
)
def test_missing_object_or_prefix(connector: S3Connector, table: Table) -> None:
    with pytest.raises(DatasetNotFound):
        connector.schema(table)
    with pytest.raises(DatasetNotFound):
        read(connector, table, Scan(columns=("id",)))


def test_refused_credentials(s3_server: S3Server, s3_data: S3Data) -> None:
    del s3_data
    wrong = make_connector(s3_server, secret_access_key="not-the-secret")
    with pytest.raises(StoreUnavailable) as caught:
        wrong.schema(PEOPLE)
    assert "not-the-secret" not in str(caught.value)


def test_unreachable_endpoint(s3_server: S3Server, unused_port: int) -> None:
    started = time.monotonic()
    unreachable = make_connector(s3_server, endpoint_url=f"http://127.0.0.1:{unused_port}")
    with pytest.raises(StoreUnavailable):
        unreachable.schema(PEOPLE)
    assert time.monotonic() - started < 20


def test_table_format_must_be_a_file_format(connector: S3Connector) -> None:
    with pytest.raises(ConnectorError, match="parquet or csv"):
        connector.schema(Table("people", format="table"))


def test_disabling_tls_verification_is_refused(s3_server: S3Server) -> None:
    with pytest.raises(ConnectorError, match="ca_bundle"):
        make_connector(s3_server, verify_tls=False)


# --- bytes, pruning, cancellation ------------------------------------------------------


def _bytes_for(connector: S3Connector, table: Table, scan: Scan) -> tuple[int, int]:
    before, opened = connector.bytes_read, connector.files_opened
    read(connector, table, scan)
    return connector.bytes_read - before, connector.files_opened - opened


def test_partition_pruning_reads_fewer_bytes(connector: S3Connector, s3_data: S3Data) -> None:
    columns = ("event_id", "kind", "payload", "day")
    full_bytes, full_files = _bytes_for(connector, EVENTS, Scan(columns=columns))
    one_day = Scan(columns=columns, filters=(Filter("day", "=", 3),))
    selective_bytes, selective_files = _bytes_for(connector, EVENTS, one_day)
    # Discovery opens one object for its schema on every call; the scan opens the rest.
    assert full_files == 1 + s3_data.event_days
    assert selective_files == 1 + 1
    assert full_bytes >= s3_data.events_prefix_size
    assert selective_bytes * (s3_data.event_days // 2) < full_bytes


def test_row_group_pruning_reads_part_of_an_object(connector: S3Connector, s3_data: S3Data) -> None:
    table = Table("events.parquet")
    lowest = s3_data.events_per_day * 2
    selective = Scan(
        columns=("event_id", "payload"),
        filters=(Filter("event_id", "between", (lowest + 100, lowest + 120)),),
    )
    selective_bytes, _ = _bytes_for(connector, table, selective)
    assert 0 < selective_bytes < s3_data.events_object_size / 3


def test_cancellation_stops_a_streaming_scan(connector: S3Connector) -> None:
    cancellation = Cancellation()
    batches = connector.scan(
        EVENTS, Scan(columns=("event_id",)), batch_size=500, cancellation=cancellation
    )
    first = next(batches)
    assert first.num_rows > 0
    cancellation.cancel()
    with pytest.raises(ScanCancelled):
        next(batches)


class CancelAfter(Cancellation):
    """Cancels itself after a number of checks, as another thread would mid-scan."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.remaining = checks

    def raise_if_cancelled(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0:
            self.cancel()
        super().raise_if_cancelled()


def test_cancellation_stops_an_ordered_scan_while_it_sorts(connector: S3Connector) -> None:
    scan = Scan(columns=("event_id",), order_by=(OrderBy("payload"),), limit=10)
    with pytest.raises(ScanCancelled):
        list(connector.scan(EVENTS, scan, batch_size=500, cancellation=CancelAfter(5)))


def test_a_cancelled_scan_never_starts(connector: S3Connector) -> None:
    cancellation = Cancellation()
    cancellation.cancel()
    before = connector.bytes_read
    with pytest.raises(ScanCancelled):
        next(connector.scan(PEOPLE, Scan(columns=("id",)), cancellation=cancellation))
    assert connector.bytes_read == before
