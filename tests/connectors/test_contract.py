"""The connector contract: one suite, every store kind, the same answers.

The same people table (``people_table()``: integers, text with NULLs, decimals, dates,
timestamps, booleans) is put into each real store: a Parquet file for ``local``, an
object on the S3-protocol server for ``s3``, a table in PostgreSQL for ``postgres`` and
a Parquet file read by the Spark Connect server for ``spark``. Every test asks each
connector the same question and checks the answer against the table itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.base import (
    Aggregate,
    AggregateScan,
    Cancellation,
    Connector,
    ConnectorError,
    DatasetNotFound,
    Filter,
    OrderBy,
    Scan,
    ScanCancelled,
    Table,
)
from tests.connectors.conftest import people_table
from tests.connectors.reading import (
    PEOPLE_AGGREGATE_TYPES,
    PEOPLE_AGGREGATES,
    check_people_groups,
)

KINDS = ("local", "s3", "postgres", "spark")
Row = dict[str, Any]


@dataclass
class Store:
    kind: str
    connector: Connector
    people: Table
    missing: Table


@pytest.fixture(scope="session")
def people() -> pa.Table:
    return people_table()


@pytest.fixture(scope="session")
def people_dir(people: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("contract")
    pq.write_table(people, root / "people.parquet", row_group_size=250)
    return root


def _local(request: pytest.FixtureRequest) -> Iterator[Store]:
    from connectors.local import LocalConnector

    connector = LocalConnector(request.getfixturevalue("people_dir"))
    yield Store("local", connector, Table("people.parquet"), Table("missing.parquet"))
    connector.close()


def _s3(request: pytest.FixtureRequest) -> Iterator[Store]:
    from connectors.s3 import S3Connector

    server = request.getfixturevalue("s3_server")
    request.getfixturevalue("s3_data")  # uploads data/people.parquet, the same rows
    connector = S3Connector(
        server.endpoint_url,
        server.bucket,
        prefix="data",
        access_key_id=server.access_key_id,
        secret_access_key=server.secret_access_key,
    )
    yield Store("s3", connector, Table("people.parquet"), Table("missing.parquet"))
    connector.close()


_PG_TYPES = {
    pa.int64(): "bigint",
    pa.int32(): "integer",
    pa.string(): "text",
    pa.float64(): "double precision",
    pa.decimal128(12, 2): "numeric(12, 2)",
    pa.date32(): "date",
    pa.timestamp("us"): "timestamp",
    pa.bool_(): "boolean",
}


def _postgres(request: pytest.FixtureRequest) -> Iterator[Store]:
    import psycopg
    from psycopg import sql

    from connectors.postgres import PostgresConnector

    url = request.getfixturevalue("pg_url")
    schema = request.getfixturevalue("pg_schema")  # private to this session, dropped after
    people: pa.Table = request.getfixturevalue("people")
    table = sql.Identifier(schema, "contract_people")
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(_PG_TYPES[f.type]))
        for f in people.schema
    )
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE TABLE {} ({})").format(table, columns))
        names = sql.SQL(", ").join(sql.Identifier(n) for n in people.column_names)
        with connection.cursor() as cursor:
            copy_in = sql.SQL("COPY {} ({}) FROM STDIN").format(table, names)
            with cursor.copy(copy_in) as copy:
                for row in people.to_pylist():
                    copy.write_row(list(row.values()))
    connector = PostgresConnector(url)
    yield Store(
        "postgres",
        connector,
        Table(f"{schema}.contract_people", format="table"),
        Table(f"{schema}.missing", format="table"),
    )
    connector.close()


def _spark(request: pytest.FixtureRequest) -> Iterator[Store]:
    from connectors.spark import SparkConnector

    server = request.getfixturevalue("spark_server")
    connector = SparkConnector(
        server.url, token=server.token, tls=False, root=str(request.getfixturevalue("people_dir"))
    )
    yield Store("spark", connector, Table("people.parquet"), Table("missing.parquet"))
    connector.close()


_BUILDERS = {"local": _local, "s3": _s3, "postgres": _postgres, "spark": _spark}


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("local"),
        pytest.param("s3", marks=pytest.mark.slow),
        pytest.param("postgres", marks=[pytest.mark.slow, pytest.mark.pg]),
        pytest.param("spark", marks=pytest.mark.slow),
    ],
)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    yield from _BUILDERS[request.param](request)


def known_deviation(request: pytest.FixtureRequest, store: Store, reasons: dict[str, str]) -> None:
    """Mark a store that does not keep this part of the contract yet (strict: the test
    fails once it does, so the mark is removed with the fix)."""
    if store.kind in reasons:
        request.node.add_marker(pytest.mark.xfail(reason=reasons[store.kind], strict=True))


def read(store: Store, scan: Scan, **options: Any) -> pa.Table:
    batches = list(store.connector.scan(store.people, scan, **options))
    if not batches:
        return pa.table({name: [] for name in scan.columns})
    return pa.Table.from_batches(batches)


def column(table: pa.Table, name: str = "id") -> list[Any]:
    return list(table.column(name).to_pylist())


# --- schema ----------------------------------------------------------------------------


def test_schema_is_the_tables_own(store: Store, people: pa.Table) -> None:
    assert store.connector.schema(store.people).equals(people.schema, check_metadata=False)


# --- projection and filters ------------------------------------------------------------


def test_projection_returns_the_requested_columns_in_order(store: Store, people: pa.Table) -> None:
    result = read(store, Scan(columns=("name", "id")))
    assert result.column_names == ["name", "id"]
    assert sorted(column(result)) == list(range(people.num_rows))
    assert result.schema.field("name").type == pa.string()


def _null_safe(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is not None and test(value)


FILTER_CASES: list[tuple[Filter, Callable[[Row], bool]]] = [
    (Filter("city", "=", "Paris"), lambda r: r["city"] == "Paris"),
    (Filter("city", "!=", "Paris"), lambda r: _null_safe(lambda v: v != "Paris")(r["city"])),
    (Filter("age", "<", 20), lambda r: _null_safe(lambda v: v < 20)(r["age"])),
    (Filter("age", "<=", 20), lambda r: _null_safe(lambda v: v <= 20)(r["age"])),
    (Filter("score", ">", 90.0), lambda r: r["score"] > 90.0),
    (Filter("score", ">=", 90.0), lambda r: r["score"] >= 90.0),
    (Filter("city", "in", ("Oslo", "Kyoto", None)), lambda r: r["city"] in ("Oslo", "Kyoto")),
    (Filter("city", "in", ()), lambda _: False),
    (Filter("id", "between", (100, 120)), lambda r: 100 <= r["id"] <= 120),
    (
        Filter("name", "like", "person-00_5"),
        lambda r: r["name"].startswith("person-00") and r["name"].endswith("5"),
    ),
    (Filter("name", "like", "%99"), lambda r: r["name"].endswith("99")),
    (Filter("age", "is_null", True), lambda r: r["age"] is None),
    (Filter("age", "is_null", False), lambda r: r["age"] is not None),
    (Filter("balance", "<", Decimal("1.00")), lambda r: r["balance"] < Decimal("1.00")),
    (Filter("born", ">=", dt.date(2000, 1, 1)), lambda r: r["born"] >= dt.date(2000, 1, 1)),
    (
        Filter("seen", "between", (dt.datetime(2024, 1, 1, 9), dt.datetime(2024, 1, 1, 10))),
        lambda r: dt.datetime(2024, 1, 1, 9) <= r["seen"] <= dt.datetime(2024, 1, 1, 10),
    ),
    (Filter("active", "=", False), lambda r: r["active"] is False),
]


@pytest.mark.parametrize(
    ("item", "test"),
    FILTER_CASES,
    ids=[f"{c[0].op}-{c[0].column}" + ("-empty" if c[0].value == () else "") for c in FILTER_CASES],
)
def test_each_filter_operator(
    store: Store,
    people: pa.Table,
    item: Filter,
    test: Callable[[Row], bool],
) -> None:
    expected = [row["id"] for row in people.to_pylist() if test(row)]
    result = read(store, Scan(columns=("id",), filters=(item,)))
    assert sorted(column(result)) == expected


def test_filters_are_a_conjunction(store: Store, people: pa.Table) -> None:
    filters = (Filter("city", "=", "Lyon"), Filter("age", ">", 50), Filter("active", "=", True))
    expected = [
        row["id"]
        for row in people.to_pylist()
        if row["city"] == "Lyon" and row["age"] is not None and row["age"] > 50 and row["active"]
    ]
    assert expected
    assert sorted(column(read(store, Scan(columns=("id",), filters=filters)))) == expected


def test_filter_values_are_data_not_code(store: Store) -> None:
    hostile = Filter("name", "=", "x' OR '1'='1")
    assert read(store, Scan(columns=("id",), filters=(hostile,))).num_rows == 0


def test_unknown_column_is_refused(store: Store) -> None:
    with pytest.raises(ConnectorError, match="nope"):
        read(store, Scan(columns=("id", "nope")))


# --- order, limit, offset --------------------------------------------------------------


def test_order_limit_offset(store: Store, people: pa.Table) -> None:
    scan = Scan(
        columns=("id", "city"),
        order_by=(OrderBy("city"), OrderBy("id", descending=True)),
        limit=15,
        offset=5,
    )
    ordered = sorted(
        people.to_pylist(), key=lambda r: (r["city"] is None, r["city"] or "", -r["id"])
    )
    result = read(store, scan)
    assert result.column_names == ["id", "city"]
    assert column(result) == [row["id"] for row in ordered[5:20]]


def test_nulls_sort_last_in_both_directions(store: Store) -> None:
    for descending in (False, True):
        scan = Scan(columns=("age",), order_by=(OrderBy("age", descending=descending),))
        ages = column(read(store, scan), "age")
        present = [age for age in ages if age is not None]
        assert present and len(present) < len(ages)
        assert ages[len(present) :] == [None] * (len(ages) - len(present))
        assert present == sorted(present, reverse=descending)


def test_order_by_a_column_outside_the_projection(store: Store, people: pa.Table) -> None:
    scan = Scan(columns=("id",), order_by=(OrderBy("seen", descending=True),), limit=3)
    assert column(read(store, scan)) == [
        people.num_rows - 1,
        people.num_rows - 2,
        people.num_rows - 3,
    ]


def test_results_keep_the_tables_types(store: Store, people: pa.Table) -> None:
    columns = ("id", "age", "balance", "born", "seen", "active")
    result = read(store, Scan(columns=columns, order_by=(OrderBy("id"),), limit=3))
    assert result.schema.equals(pa.schema([people.schema.field(name) for name in columns]))
    assert result.to_pylist() == people.select(list(columns)).slice(0, 3).to_pylist()


def test_limit_zero_and_empty_results_still_carry_the_schema(store: Store) -> None:
    empty = list(store.connector.scan(store.people, Scan(columns=("id", "name"), limit=0)))
    none_match = Scan(columns=("id", "name"), filters=(Filter("id", "<", -1),))
    nothing = list(store.connector.scan(store.people, none_match))
    for batches in (empty, nothing):
        assert sum(batch.num_rows for batch in batches) == 0
        assert batches and batches[0].schema.names == ["id", "name"]


def test_batches_keep_to_the_batch_size(store: Store, people: pa.Table) -> None:
    batches = list(store.connector.scan(store.people, Scan(columns=("id",)), batch_size=128))
    assert len(batches) > 1
    assert all(batch.num_rows <= 128 for batch in batches)
    assert sum(batch.num_rows for batch in batches) == people.num_rows


def test_cancellation_stops_a_scan(store: Store) -> None:
    cancellation = Cancellation()
    batches = store.connector.scan(
        store.people, Scan(columns=("id",)), batch_size=100, cancellation=cancellation
    )
    assert next(batches).num_rows > 0
    cancellation.cancel()
    with pytest.raises(ScanCancelled):
        next(batches)


# --- aggregates ------------------------------------------------------------------------


def test_grouped_aggregate(store: Store, people: pa.Table) -> None:
    scan = AggregateScan(
        group_by=("city",), aggregates=PEOPLE_AGGREGATES, filters=(Filter("age", ">", 30),)
    )
    result = store.connector.aggregate(store.people, scan)
    assert result.schema.types == PEOPLE_AGGREGATE_TYPES
    rows = [row for row in people.to_pylist() if row["age"] is not None and row["age"] > 30]
    for got, group in check_people_groups(result, rows):
        assert got["n_age"] == len(group)


def test_aggregate_without_groups(store: Store, people: pa.Table) -> None:
    scan = AggregateScan(
        group_by=(),
        aggregates=(Aggregate("count", None, "n"), Aggregate("min", "id", "low")),
        filters=(Filter("id", ">=", 1500),),
    )
    assert store.connector.aggregate(store.people, scan).to_pylist() == [
        {"n": people.num_rows - 1500, "low": 1500}
    ]


def test_sum_of_text_is_refused(store: Store) -> None:
    scan = AggregateScan(group_by=(), aggregates=(Aggregate("sum", "name", "s"),))
    with pytest.raises(ConnectorError, match="numeric"):
        store.connector.aggregate(store.people, scan)


# --- errors ----------------------------------------------------------------------------


def test_missing_dataset_is_not_found(store: Store) -> None:
    with pytest.raises(DatasetNotFound):
        store.connector.schema(store.missing)
    with pytest.raises(DatasetNotFound):
        read_missing = store.connector.scan(store.missing, Scan(columns=("id",)))
        list(read_missing)
    with pytest.raises(DatasetNotFound):
        store.connector.aggregate(
            store.missing, AggregateScan(group_by=(), aggregates=(Aggregate("count", None, "n"),))
        )
