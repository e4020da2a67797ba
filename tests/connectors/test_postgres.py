"""PostgresConnector against a real PostgreSQL server (see conftest for the URL): its own
types, catalog, transactions and failures; the shared behaviour is in test_contract.py."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Generator, Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from connectors import postgres
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
from connectors.postgres import PostgresConnector
from tests.connectors.reading import (
    PEOPLE_AGGREGATE_TYPES,
    PEOPLE_AGGREGATES,
    check_people_groups,
    ids,
    null_safe,
    read,
)

pytestmark = pytest.mark.pg

Row = dict[str, Any]
INJECTION = "x'; DROP TABLE t; --"


@pytest.fixture
def connector(pg_url: str, pg_schema: str) -> Iterator[PostgresConnector]:
    del pg_schema  # requested so the tables exist
    instance = PostgresConnector(pg_url, statement_timeout_ms=10_000, pool_max=2, pool_timeout=5)
    yield instance
    instance.close()


@pytest.fixture
def people(pg_schema: str) -> Table:
    return Table(f"{pg_schema}.people", format="table")


def count_rows(pg_url: str, pg_schema: str, relation: str) -> int:
    with psycopg.connect(pg_url) as connection:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(pg_schema, relation))
        row = connection.execute(query).fetchone()
    assert row is not None
    return int(row[0])


# --- schema ----------------------------------------------------------------------------


def test_schema_maps_catalog_types_to_arrow(connector: PostgresConnector, people: Table) -> None:
    schema = connector.schema(people)
    assert [(field.name, field.type) for field in schema] == [
        ("id", pa.int32()),
        ("name", pa.string()),
        ("city", pa.string()),
        ("age", pa.int16()),
        ("big", pa.int64()),
        ("score", pa.float64()),
        ("ratio", pa.float32()),
        ("balance", pa.decimal128(12, 2)),
        ("loose", pa.float64()),
        ("active", pa.bool_()),
        ("born", pa.date32()),
        ("seen", pa.timestamp("us")),
        ("seen_tz", pa.timestamp("us", tz="UTC")),
        ("uid", pa.string()),
        ("doc", pa.string()),
        ("tags", pa.string()),
    ]
    assert not schema.field("id").nullable
    assert schema.field("city").nullable


def test_schema_of_a_view(connector: PostgresConnector, pg_schema: str) -> None:
    schema = connector.schema(Table(f"{pg_schema}.adults", format="table"))
    assert schema.names == ["id", "name"]
    assert schema.field("id").type == pa.int32()


def test_unqualified_location_resolves_through_search_path(
    pg_url: str, pg_schema: str, pg_people: list[Row]
) -> None:
    dsn = make_conninfo(pg_url, options=f"-csearch_path={pg_schema}")
    connector = PostgresConnector(dsn, pool_max=1)
    try:
        result = read(connector, Table("people", format="table"), Scan(columns=("id",)))
    finally:
        connector.close()
    assert result.num_rows == len(pg_people)


# --- projection, values and filters ----------------------------------------------------


def test_values_keep_their_types(
    connector: PostgresConnector, people: Table, pg_people: list[Row]
) -> None:
    result = read(connector, people, Scan(columns=tuple(pg_people[0]), order_by=(OrderBy("id"),)))
    assert result.schema.equals(connector.schema(people))
    got, want = result.to_pylist()[1], pg_people[1]
    for name in ("id", "name", "city", "age", "big", "score", "balance", "active", "born", "seen"):
        assert got[name] == want[name], name
    assert got["ratio"] == pytest.approx(want["ratio"])
    assert got["loose"] == pytest.approx(float(want["loose"]))
    assert got["seen_tz"] == want["seen_tz"]
    assert got["uid"] == str(want["uid"])
    assert got["doc"] == '{"n": 1}'
    assert got["tags"] == "{t1}"


def test_batches_stream_at_the_requested_size(connector: PostgresConnector, people: Table) -> None:
    batches = list(connector.scan(people, Scan(columns=("id",)), batch_size=500))
    assert [batch.num_rows for batch in batches] == [500] * 6


def test_row_tuples_are_fetched_in_bounded_batches(
    connector: PostgresConnector, people: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "MAX_FETCH_ROWS", 1000)
    batches = list(connector.scan(people, Scan(columns=("id",)), batch_size=100_000))
    assert [batch.num_rows for batch in batches] == [1000] * 3


AFTER_NINE = dt.datetime(2024, 1, 1, 9)
TEN_UTC = dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC)

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
    (Filter("id", "between", (100, 120)), "id", lambda v: 100 <= v <= 120),
    (
        Filter("name", "like", "person-00_5"),
        "name",
        lambda v: v.startswith("person-00") and v.endswith("5") and len(v) == 11,
    ),
    (Filter("name", "like", "%99"), "name", lambda v: v.endswith("99")),
    (Filter("age", "is_null", True), "age", lambda v: v is None),
    (Filter("age", "is_null", False), "age", lambda v: v is not None),
    (Filter("balance", "<", Decimal("1.00")), "balance", lambda v: v < Decimal("1.00")),
    (Filter("born", ">=", dt.date(2000, 1, 1)), "born", lambda v: v >= dt.date(2000, 1, 1)),
    (
        Filter("seen", "between", (AFTER_NINE, AFTER_NINE + dt.timedelta(hours=1))),
        "seen",
        lambda v: AFTER_NINE <= v <= AFTER_NINE + dt.timedelta(hours=1),
    ),
    (Filter("seen_tz", ">=", TEN_UTC), "seen_tz", lambda v: v >= TEN_UTC),
    (Filter("active", "=", False), "active", lambda v: v is False),
    (Filter("big", "in", (0, 7_000_000_000)), "big", lambda v: v in (0, 7_000_000_000)),
    (Filter("loose", ">", 990.0), "loose", lambda v: float(v) > 990.0),
    (
        Filter("uid", "=", "00000000-0000-0000-0000-00000000002a"),
        "uid",
        lambda v: v == uuid.UUID(int=42),
    ),
    (Filter("uid", "like", "%000ff"), "uid", lambda v: str(v).endswith("000ff")),
    (Filter("doc", "=", '{"n": 7}'), "doc", lambda v: v == {"n": 7}),
]


@pytest.mark.parametrize(
    ("item", "column", "test"),
    FILTER_CASES,
    ids=[f"{case[0].op}-{case[0].column}" for case in FILTER_CASES],
)
def test_each_filter_operator(
    connector: PostgresConnector,
    people: Table,
    pg_people: list[Row],
    item: Filter,
    column: str,
    test: Callable[[Any], bool],
) -> None:
    expected = [row["id"] for row in pg_people if test(row[column])]
    assert expected, "each case must select something"
    result = read(connector, people, Scan(columns=("id",), filters=(item,)))
    assert sorted(ids(result)) == expected


# --- injection and read-only -----------------------------------------------------------


def test_sql_in_a_filter_value_is_only_data(
    connector: PostgresConnector, pg_url: str, pg_schema: str, people: Table
) -> None:
    secrets = Table(f"{pg_schema}.secrets", format="table")
    matched = read(
        connector, secrets, Scan(columns=("id",), filters=(Filter("note", "=", INJECTION),))
    )
    assert ids(matched) == [1]
    for item in (
        Filter("name", "=", "x'; DROP TABLE people; --"),
        Filter("name", "in", ("a", "b'); DROP TABLE people; --")),
        Filter("name", "like", "%'; DROP TABLE people; --"),
        Filter("name", "between", ("a'--", 'b"; DROP TABLE people')),
    ):
        assert read(connector, people, Scan(columns=("id",), filters=(item,))).num_rows == 0
    assert count_rows(pg_url, pg_schema, "people") == 3_000
    assert count_rows(pg_url, pg_schema, "secrets") == 2


def test_hostile_names_never_reach_sql(connector: PostgresConnector, pg_schema: str) -> None:
    people = Table(f"{pg_schema}.people", format="table")
    with pytest.raises(ConnectorError, match="unknown column"):
        read(connector, people, Scan(columns=('id"; DROP TABLE people; --',)))
    with pytest.raises(DatasetNotFound):
        connector.schema(Table(f"{pg_schema}.people; DROP TABLE people", format="table"))


def test_the_transaction_is_read_only(
    connector: PostgresConnector, pg_url: str, pg_schema: str
) -> None:
    writer = Table(f"{pg_schema}.writer", format="table")
    with pytest.raises(ConnectorError, match="ReadOnlySqlTransaction") as caught:
        read(connector, writer, Scan(columns=("n",)))
    assert not isinstance(caught.value, StoreUnavailable)
    assert count_rows(pg_url, pg_schema, "sink") == 0


def test_wrongly_typed_filter_value_is_an_error_that_does_not_echo_it(
    connector: PostgresConnector, people: Table
) -> None:
    secret = "Jane Q. Patient"
    with pytest.raises(ConnectorError) as caught:
        read(connector, people, Scan(columns=("id",), filters=(Filter("id", "=", secret),)))
    assert secret not in str(caught.value)


# --- order, limit, offset --------------------------------------------------------------


# --- aggregates ------------------------------------------------------------------------


def test_grouped_aggregate(
    connector: PostgresConnector, people: Table, pg_people: list[Row]
) -> None:
    scan = AggregateScan(
        group_by=("city",),
        aggregates=(
            *PEOPLE_AGGREGATES,
            Aggregate("sum", "big", "sum_big"),
            Aggregate("max", "uid", "last_uid"),
        ),
        filters=(Filter("id", "<", 2_000),),
    )
    result = connector.aggregate(people, scan)
    assert result.schema.types == [*PEOPLE_AGGREGATE_TYPES, pa.int64(), pa.string()]
    rows = [row for row in pg_people if row["id"] < 2_000]
    for got, group in check_people_groups(result, rows):
        assert got["sum_big"] == sum(row["big"] for row in group)
        assert got["last_uid"] == max(str(row["uid"]) for row in group)


def test_count_without_groups(connector: PostgresConnector, people: Table) -> None:
    scan = AggregateScan(
        group_by=(), aggregates=(Aggregate("count", None, "n"),), filters=(Filter("id", "<", 10),)
    )
    assert connector.aggregate(people, scan).to_pylist() == [{"n": 10}]


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("location", ["{schema}.nope", "kiteline_no_such_schema.people", "nope"])
def test_missing_table(connector: PostgresConnector, pg_schema: str, location: str) -> None:
    table = Table(location.format(schema=pg_schema), format="table")
    with pytest.raises(DatasetNotFound):
        connector.schema(table)
    with pytest.raises(DatasetNotFound):
        read(connector, table, Scan(columns=("id",)))
    with pytest.raises(DatasetNotFound):
        connector.aggregate(
            table, AggregateScan(group_by=(), aggregates=(Aggregate("count", None, "n"),))
        )


def test_statement_timeout_means_store_unavailable(pg_url: str, pg_schema: str) -> None:
    connector = PostgresConnector(pg_url, statement_timeout_ms=100, pool_max=1)
    try:
        with pytest.raises(StoreUnavailable, match="timed out"):
            read(connector, Table(f"{pg_schema}.slow", format="table"), Scan(columns=("x",)))
    finally:
        connector.close()


def test_unreachable_server(unused_port: int) -> None:
    connector = PostgresConnector(
        f"postgresql://postgres@127.0.0.1:{unused_port}/test", connect_timeout=1, pool_timeout=1.5
    )
    try:
        with pytest.raises(StoreUnavailable):
            connector.schema(Table("people", format="table"))
    finally:
        connector.close()


def test_refused_credentials(pg_url: str, pg_schema: str) -> None:
    dsn = make_conninfo(pg_url, user="kiteline_no_such_role", password="wrong-secret")
    connector = PostgresConnector(dsn, connect_timeout=2, pool_timeout=1.5)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            connector.schema(Table(f"{pg_schema}.people", format="table"))
    finally:
        connector.close()
    assert "wrong-secret" not in str(caught.value)


def test_only_tables(connector: PostgresConnector) -> None:
    with pytest.raises(ConnectorError, match="tables"):
        connector.schema(Table("people.parquet", format="parquet"))


# --- cancellation and the pool ---------------------------------------------------------


def test_cancellation_stops_a_scan_and_frees_the_connection(pg_url: str, people: Table) -> None:
    connector = PostgresConnector(pg_url, pool_max=1, pool_timeout=2)
    try:
        cancellation = Cancellation()
        batches = connector.scan(
            people, Scan(columns=("id",)), batch_size=100, cancellation=cancellation
        )
        assert next(batches).num_rows == 100
        cancellation.cancel()
        with pytest.raises(ScanCancelled):
            next(batches)
        # The single pooled connection must be back, its transaction rolled back.
        assert read(connector, people, Scan(columns=("id",), limit=1)).num_rows == 1
    finally:
        connector.close()


def test_an_abandoned_scan_returns_its_connection(pg_url: str, people: Table) -> None:
    connector = PostgresConnector(pg_url, pool_max=1, pool_timeout=2)
    try:
        batches = connector.scan(people, Scan(columns=("id",)), batch_size=10)
        next(batches)
        assert isinstance(batches, Generator)
        batches.close()
        assert read(connector, people, Scan(columns=("id",), limit=1)).num_rows == 1
    finally:
        connector.close()


def test_a_closed_connector_refuses_work(pg_url: str, people: Table) -> None:
    connector = PostgresConnector(pg_url)
    connector.close()
    with pytest.raises(ConnectorError, match="closed"):
        connector.schema(people)
