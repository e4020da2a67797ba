"""The PostgreSQL connector's scan against the fastest plain Arrow read of the same rows.

Subject: ``PostgresConnector.scan`` of every row of a 1M-row table (quick: 250k) with
six columns (int8, text, date, float8, int4, numeric(12,2)), every batch consumed.
Baseline: the ADBC PostgreSQL driver reading the same columns into one Arrow table
(``fetch_arrow_table``), in the same run. Also measured: the row-tuple path through
psycopg that the connector still takes for filter values the driver cannot bind, so
the gain is visible. The table lives in a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import os

import adbc_driver_postgresql.dbapi as adbc
import psycopg
from psycopg import sql

from bench import common
from bench.common import Result, Target
from connectors import Scan, Table
from connectors.postgres import PostgresConnector

PG_URL_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
COLUMNS = ("id", "name", "day", "amount", "small", "price")
REPEATS = 3


def run() -> list[Result]:
    from tests.pg_schemas import private_schema  # the tests' schema, made and dropped

    rows = 250_000 if common.quick() else 1_000_000
    url = os.environ.get("KITELINE_TEST_PG_URL", PG_URL_DEFAULT)
    schema = f"bench_pg_read_{os.getpid()}"
    with private_schema(url, schema):
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(
                sql.SQL(
                    "CREATE TABLE {}.events AS SELECT g::int8 AS id, 'user' || g AS name, "
                    "date '2020-01-01' + (g %% 1000) AS day, g * 1.5::float8 AS amount, "
                    "(g %% 7)::int4 AS small, (g * 0.01)::numeric(12, 2) AS price "
                    "FROM generate_series(1, %s) AS g"
                ).format(sql.Identifier(schema)),
                [rows],
            )
        connector = PostgresConnector(url)
        table = Table(f"{schema}.events", format="table")
        scan = Scan(columns=COLUMNS)
        plain_sql = f'SELECT {", ".join(COLUMNS)} FROM "{schema}".events'

        def governed() -> int:
            return sum(b.num_rows for b in connector.scan(table, scan))

        def row_tuples() -> int:
            batches = connector._scan(table, scan, 65_536, None, arrow=False)
            return sum(b.num_rows for b in batches)

        def plain() -> int:
            with adbc.connect(url) as connection, connection.cursor() as cursor:
                cursor.execute(plain_sql)
                return int(cursor.fetch_arrow_table().num_rows)

        try:
            if governed() != rows or plain() != rows:
                raise RuntimeError("the reads disagree on the number of rows")
            timings = common.interleaved(
                {"connector": governed, "row tuples": row_tuples, "plain": plain},
                repeats=REPEATS,
                warmup=0,
            )
        finally:
            connector.close()
    label = f"{rows // 1000}k"
    plain_s = timings["plain"].median
    return [
        Result(
            f"postgres_read.connector_scan_{label}",
            timings["connector"].median,
            "s",
            baseline=plain_s,
            target=Target("ratio", "<=", 1.5),
            row="pg_read",
            note=f"median of {REPEATS}; baseline: ADBC fetch_arrow_table of the same "
            "6 columns; the connector alone (the governed read adds the gateway's cost)",
        ),
        Result(
            f"postgres_read.row_tuples_{label}",
            timings["row tuples"].median,
            "s",
            baseline=plain_s,
            note="the psycopg row-tuple path the connector replaced for bindable filters",
        ),
    ]
